"""Risk and strategy configuration: frozen msgspec Structs loaded from TOML.

Mirrors core/risk/risk_config.hpp field for field (the core structs are filled from
``to_core_dict()`` by ``bot4._core.risk``, which rejects unknown keys as well). Unknown TOML
fields are rejected here with the field named. Units are in each field's comment and in its
``msgspec.Meta(description=...)`` so they also appear in the JSON schema.

File layout::

    [risk.sizing]        # position sizing, METHODS §7
    [risk.pre_trade]     # pre-trade limits (integer ticks / lots / ns)
    [risk.kill_switch]   # kill-switch triggers
    [strategy]           # strategy parameters
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import msgspec

from bot4.errors import ConfigError

Frac = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]

_STRUCT = dict(frozen=True, forbid_unknown_fields=True, kw_only=True)


def _f(lo: float | None = None, hi: float | None = None, *, gt: float | None = None,
       lt: float | None = None, desc: str) -> object:
    return Annotated[float, msgspec.Meta(ge=lo, le=hi, gt=gt, lt=lt, description=desc)]


def _i(lo: int | None = None, *, desc: str) -> object:
    return Annotated[int, msgspec.Meta(ge=lo, description=desc)]


class SizingConfig(msgspec.Struct, **_STRUCT):
    """size = f(p) × vol_scale × heat_room × min(Kelly, symbol cap, leverage cap, VaR cap) × crisis.

    The result is in risk units: signed notional / equity.
    """

    kelly_fraction: _f(gt=0.0, hi=1.0, desc="c in f = c·f*, dimensionless") = 0.25  # dimensionless
    payoff_ratio: _f(gt=0.0, desc="b, net win per unit lost after fees, dimensionless") = 1.0  # dimensionless
    edge_threshold: _f(0.0, lt=1.0, desc="minimum |2p-1| to trade, probability") = 0.02  # probability edge
    target_vol: _f(gt=0.0, desc="sigma_target, annualized return stdev (0.10 = 10%/yr)") = 0.10  # per year
    periods_per_year: _f(gt=0.0, desc="periods per year of the current_vol input") = 252.0  # periods / yr
    max_vol_scale: _f(gt=0.0, desc="L_max on the vol-target weight, dimensionless") = 2.0  # dimensionless
    max_symbol_fraction: _f(0.0, desc="per-symbol cap, fraction of equity") = 0.20  # fraction of equity
    max_leverage: _f(0.0, desc="gross leverage cap, fraction of equity") = 1.0  # fraction of equity
    var_limit: _f(gt=0.0, desc="max one-period VaR of the position, fraction of equity") = 0.02  # fraction of equity
    var_confidence: _f(gt=0.5, lt=1.0, desc="beta of the parametric-normal VaR") = 0.99  # probability
    max_heat: _f(gt=0.0, desc="heat at which size reaches 0, fraction of equity") = 0.06  # fraction of equity
    crisis_correlation: _f(-1.0, 1.0, desc="correlation above which size is cut") = 0.80  # correlation
    crisis_multiplier: _f(0.0, 1.0, desc="size multiplier in crisis, dimensionless") = 0.5  # dimensionless


class PreTradeConfig(msgspec.Struct, **_STRUCT):
    """Pre-trade limits; exposure counts position + open + in-flight (sent, unacked) orders."""

    max_position_lots: _i(0, desc="|position + same-side open + in-flight| cap, lots") = 100  # lots
    max_notional: _i(0, desc="same-side exposure cap, tick*lots (price ticks x lots)") = 10_000_000_000  # tick·lots
    max_open_orders: _i(0, desc="open + in-flight orders, count") = 50  # orders
    rate_capacity: _i(0, desc="token-bucket burst, orders (0 = no rate limit)") = 20  # orders
    rate_per_second: _i(0, desc="token-bucket refill, orders per second") = 10  # orders / s
    collar_ticks: _i(0, desc="max |price - mid|, ticks (0 = off)") = 0  # ticks
    collar_bps: _i(0, desc="max |price - mid| / mid, basis points (0 = off)") = 50  # bps


class KillSwitchConfig(msgspec.Struct, **_STRUCT):
    """Trips → cancel all, then reduce-only."""

    max_drawdown: _f(gt=0.0, hi=1.0, desc="(peak - equity) / peak that trips, fraction") = 0.10  # fraction of peak
    max_consecutive_rejects: _i(0, desc="consecutive rejects that trip, count (0 = off)") = 10  # count
    max_latency_ns: _i(0, desc="latency above this trips, ns (0 = off)") = 50_000_000  # ns


class RiskConfig(msgspec.Struct, **_STRUCT):
    sizing: SizingConfig = msgspec.field(default_factory=SizingConfig)
    pre_trade: PreTradeConfig = msgspec.field(default_factory=PreTradeConfig)
    kill_switch: KillSwitchConfig = msgspec.field(default_factory=KillSwitchConfig)


class StrategyConfig(msgspec.Struct, **_STRUCT):
    """Parameters of the probability-threshold strategy that feeds the sizer."""

    instrument: Annotated[str, msgspec.Meta(min_length=1, description="instrument symbol")] = "BTCUSDT"  # symbol
    horizon_ns: _i(1, desc="prediction horizon, ns") = 1_000_000_000  # ns
    entry_probability: _f(gt=0.5, lt=1.0, desc="enter when max(p, 1-p) >= this, probability") = 0.55  # probability
    exit_probability: _f(0.0, lt=1.0, desc="exit when max(p, 1-p) < this, probability") = 0.52  # probability
    stop_ticks: _i(1, desc="protective stop distance from entry VWAP, ticks") = 20  # ticks
    target_ticks: _i(1, desc="take-profit distance from entry VWAP, ticks") = 30  # ticks
    order_ttl_ns: _i(0, desc="cancel an unfilled entry after this, ns (0 = GTC)") = 5_000_000_000  # ns
    equity: _f(gt=0.0, desc="starting equity, quote currency") = 100_000.0  # quote currency
    market_entry: Annotated[bool, msgspec.Meta(
        description="entries by market order (else a limit at the touch), flag")] = False
    exit_on_flip: Annotated[bool, msgspec.Meta(
        description="flatten when the model's target turns against the position, flag")] = True
    vol_from_features: Annotated[bool, msgspec.Meta(
        description="sizer volatility from the features' ewma_vol scaled to the period, flag")] = True
    crisis_vpin: _f(0.0, 1.0, desc="crisis regime when VPIN >= this (0 = off), ratio") = 0.0  # ratio

    def __post_init__(self) -> None:
        if self.exit_probability > self.entry_probability:
            raise ValueError(f"strategy.exit_probability ({self.exit_probability}) must be <= "
                             f"strategy.entry_probability ({self.entry_probability})")


class Config(msgspec.Struct, **_STRUCT):
    risk: RiskConfig = msgspec.field(default_factory=RiskConfig)
    strategy: StrategyConfig = msgspec.field(default_factory=StrategyConfig)

    @classmethod
    def from_toml(cls, text: str | bytes) -> Config:
        return msgspec.toml.decode(text, type=cls)

    def to_core_dict(self) -> dict:
        """Flat per-section dicts for bot4._core.risk (sizing, pre_trade, kill_switch)."""
        return {k: msgspec.structs.asdict(getattr(self.risk, k)) for k in ("sizing", "pre_trade", "kill_switch")}

    def summary(self) -> dict:
        return msgspec.to_builtins(self)


def load_config(path: str | Path) -> Config:
    """Read and validate a TOML config; any problem is a ConfigError naming the file and field."""
    path = Path(path)
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    try:
        return Config.from_toml(text)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def build_risk(config: Config | None = None):
    """(PositionSizer, KillSwitch, PreTradeChecks) from a Config; the checks feed the kill switch."""
    from bot4._core import risk as core

    cfg = (config or Config()).to_core_dict()
    sizer = core.PositionSizer(cfg["sizing"])
    kill = core.KillSwitch(cfg["kill_switch"])
    checks = core.PreTradeChecks(cfg["pre_trade"], kill)
    return sizer, kill, checks
