"""Feature-engine configuration: a frozen msgspec Struct mirroring core/features/feature_config.hpp.

Units: times in ns on the engine clock (the running maximum of ts_local), counts in events or
samples, sizes in lots. Unknown fields are rejected, both here and in the core.
"""

from __future__ import annotations

from typing import Literal

import msgspec


class MicropriceTable(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Stoikov micro-price adjustment g(I, S) in ticks (see bot4.features.microprice)."""

    n_spreads: int        # rows: spread 1..n_spreads ticks
    n_imbalance: int      # columns: equal-width imbalance buckets over [0, 1]
    g: list[float]        # row-major, n_spreads * n_imbalance values


def _default_microprice() -> MicropriceTable:
    from bot4.features.microprice import default_microprice

    return default_microprice()


# Fields the core keeps in int64 (ns, lots, event counts); every other int field is an int there.
_INT64_FIELDS = frozenset({"decision_every_n", "decision_interval_ns", "sample_interval_ns", "flow_window_ns",
                           "cancel_window_ns", "cancel_baseline_ns", "cancel_burst_min", "realised_horizon_ns",
                           "vpin_bar_ns", "vpin_bucket_lots", "vpin_auto_ns", "vwap_window_ns"})


class FeatureConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Feature-engine settings: when a row is written and the window of every feature family.

    Units: times in ns on the engine clock (the running maximum of ts_local), windows in samples,
    trades or events as named, sizes in lots, returns in basis points (return_scale = 1e4). Each
    field's meaning is in its comment below and in docs/features.md. Frozen; unknown fields and
    integers beyond the core's 32/64-bit fields are refused. `FeatureConfig()` writes a row per book
    message; bot4.features.trading_config() is the configuration the pipeline and `bot4 train` use.
    A trained model's sidecar records the FeatureConfig its rows were computed with.
    """

    decision: Literal["message", "events", "time", "none"] = "message"  # when rows are written
    decision_every_n: int = 100                    # events between rows (decision="events")
    decision_interval_ns: int = 100_000_000        # grid step (decision="time"), ns
    sample_interval_ns: int = 0                    # 0: a return sample per book message; else grid, ns
    window: int = 128                              # samples in the windowed kernels (power of two)
    return_scale: float = 1e4                      # returns kept in basis points
    depth_levels: int = 10                         # levels for depth imbalance, slope, MLOFI
    flow_window_ns: int = 1_000_000_000            # OFI / trade flow / OTR window, ns
    cancel_window_ns: int = 100_000_000            # cancel-burst window W, ns
    cancel_baseline_ns: int = 10_000_000_000       # baseline window before W, ns
    cancel_burst_z: float = 3.0                    # z threshold
    cancel_burst_min: int = 5                      # minimum cancels in W for a burst
    queue_probabilistic: bool = False              # L2 queue model: power-law instead of risk-averse
    queue_power: float = 2.0                       # n in f(x) = x^n
    liquidity_samples: int = 50                    # Kyle / Amihud window, samples
    roll_trades: int = 100                         # Roll window, trade price changes
    spread_halflife_trades: float = 50.0           # EWMA half-life of spreads, trades
    realised_horizon_ns: int = 1_000_000_000       # D of realised spread / impact, ns
    vpin_bar_ns: int = 1_000_000_000               # BVC bar, ns
    vpin_bucket_lots: int = 0                      # V in lots; 0 = volume of the first vpin_auto_ns / 10
    vpin_auto_ns: int = 60_000_000_000             # ns
    vpin_buckets: int = 50                         # n
    vpin_sigma_bars: int = 50                      # trailing bars for sigma(dP)
    ewma_lambda: float = 0.94                      # EWMA volatility decay per sample
    range_samples: int = 50                        # Parkinson window, samples
    garch_omega: float = 0.05                      # bp^2
    garch_alpha: float = 0.08
    garch_beta: float = 0.90
    garch_backcast: int = 75                       # samples before the GARCH filter starts
    rsi_period: int = 14                           # samples
    bollinger_period: int = 20                     # samples
    vwap_window_ns: int = 60_000_000_000           # ns
    # g(I, S) table; default: fitted on the embedded simulator stream (never on the data being
    # featurised); None: micro-price features are NaN.
    microprice: MicropriceTable | None = msgspec.field(default_factory=_default_microprice)

    def __post_init__(self) -> None:
        # The core holds these in int64 (and windows / counts in int): a larger TOML integer would
        # otherwise pass here and fail later as a raw cast error inside the engine.
        for name in self.__struct_fields__:
            value = getattr(self, name)
            if type(value) is int and not -(2**31) <= value < 2**31 and name not in _INT64_FIELDS:
                raise ValueError(f"{name} = {value} is outside the 32-bit range the engine holds it in")
            if type(value) is int and not -(2**63) <= value < 2**63:
                raise ValueError(f"{name} = {value} is outside the int64 range")

    def to_core(self) -> dict:
        """The fields as the dict the core FeatureEngine takes (microprice as a nested dict, left out when
        None)."""
        out = msgspec.structs.asdict(self)
        if self.microprice is None:
            out.pop("microprice")
        else:
            out["microprice"] = msgspec.structs.asdict(self.microprice)
        return out

    @classmethod
    def from_toml(cls, text: str | bytes) -> FeatureConfig:
        """A FeatureConfig from TOML text (msgspec.ValidationError names an unknown or invalid field)."""
        return msgspec.toml.decode(text, type=cls)


#: Return-sample grid of the train -> backtest default: returns sampled every 100 ms, so the
#: volatility/window/technical families see regular returns and the windowed kernels run once per
#: grid step on a timer, off the tick-to-decision path (a sample per book message would put them
#: on it at every message).
TRADING_SAMPLE_INTERVAL_NS = 100_000_000


def trading_config(**overrides) -> FeatureConfig:
    """The FeatureConfig `bot4 train`, `bot4 demo` and `bot4.research.train` use by default:
    FeatureConfig() with a 100 ms return-sample grid (`overrides` replace fields)."""
    return FeatureConfig(**{"sample_interval_ns": TRADING_SAMPLE_INTERVAL_NS, **overrides})
