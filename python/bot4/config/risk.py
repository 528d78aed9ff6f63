"""Engine, risk, venue-simulator and strategy configuration: frozen msgspec Structs loaded from TOML.

Every section is declared once, in the core (an X-macro field list per stage: type, default,
bounds, unit, doc; see core/common/config_fields.hpp); the Structs here are made from that
declaration (``bot4._core.engine.schema()``), so a field the core has is a field the TOML has, with
the same name, default, bounds and unit, and nothing else. Unknown TOML fields are rejected with
the field named; so are values outside the declared bounds or beyond 64 bits.

File layout::

    [engine]             # starting equity, sizer volatility source, crisis flag, STP policy
    [risk.sizing]        # position sizing, METHODS §7
    [risk.pre_trade]     # pre-trade limits (integer ticks / lots / ns)
    [risk.kill_switch]   # kill-switch triggers
    [sim]                # venue simulator (latency, fees, queue model) for backtests
    [ensemble]           # combination of several model slots (mode, weights, breaker; none by default)
    [strategy]           # name = "<built-in>" (default threshold_bracket) + that strategy's fields
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import msgspec

from bot4.errors import ConfigError

_STRUCT: dict[str, Any] = dict(frozen=True, forbid_unknown_fields=True, kw_only=True)
_TYPES = {"float": float, "int": int, "bool": bool, "str": str}
_INT64 = (-(2**63), 2**63 - 1)

#: Strategy keys of the former TOML layout and where each went.
RENAMED = {"entry_probability": "strategy.long_threshold", "exit_probability": "strategy.exit_threshold",
           "equity": "engine.equity", "vol_from_features": "engine.vol_from_features",
           "crisis_vpin": "engine.crisis_vpin", "current_vol": "engine.current_vol",
           "instrument": "nothing (the data names the instrument; remove the key)",
           "horizon_ns": "nothing (the model's label horizon is in its sidecar; remove the key)"}


def schema() -> dict:
    """The core's declaration of every section, built-in strategy and counter."""
    from bot4 import _core

    return _core.engine.schema()


def _field_type(f: dict) -> Any:
    meta: dict[str, Any] = {"description": f"{f['doc']}" + (f" [{f['unit']}]" if f["unit"] else "")}
    if f["type"] == "float_list":  # a list of floats, each within the field's bounds
        element = _field_type(dict(f, type="float", doc="", unit=""))
        return Annotated[list[element], msgspec.Meta(**meta)]  # type: ignore[valid-type]
    if f["type"] in ("float", "int"):
        for bound, strict, plain, key in ((f["min"], f["min_exclusive"], "ge", "gt"),
                                          (f["max"], f["max_exclusive"], "le", "lt")):
            if bound is not None:
                value = int(bound) if f["type"] == "int" and float(bound).is_integer() else bound
                meta[key if strict else plain] = value
        if f["type"] == "int":
            if "gt" not in meta:
                meta.setdefault("ge", _INT64[0])
            if "lt" not in meta:
                meta.setdefault("le", _INT64[1])
    return Annotated[_TYPES[f["type"]], msgspec.Meta(**meta)]


def _default(f: dict) -> Any:
    # a list default is a factory (a Struct's mutable default may not be shared)
    d = f["default"]
    return msgspec.field(default_factory=lambda: list(d)) if isinstance(d, list) else d


def _make_struct(name: str, fields: list[dict], doc: str) -> type[msgspec.Struct]:
    cls = msgspec.defstruct(name, [(f["name"], _field_type(f), _default(f)) for f in fields],
                            module=__name__, **_STRUCT)
    cls.__doc__ = doc + "\n\nFields (unit): " + "; ".join(
        f"{f['name']} ({f['unit'] or '-'}): {f['doc']}" for f in fields)
    return cls


_SCHEMA = schema()
EngineConfig = _make_struct("EngineConfig", _SCHEMA["engine"], "Engine-wide parameters.")
SizingConfig = _make_struct("SizingConfig", _SCHEMA["sizing"],
                            "size = f(p) x vol_scale x heat_room x min(Kelly, caps) x crisis, in risk "
                            "units (signed notional / equity).")
PreTradeConfig = _make_struct("PreTradeConfig", _SCHEMA["pre_trade"],
                              "Pre-trade limits; exposure counts position + open + in-flight orders.")
KillSwitchConfig = _make_struct("KillSwitchConfig", _SCHEMA["kill_switch"],
                                "Trips -> cancel all, then reduce-only closes until flat.")
SimConfig = _make_struct("SimConfig", _SCHEMA["sim"], "Venue simulator of backtests.")
EnsembleConfig = _make_struct("EnsembleConfig", _SCHEMA["ensemble"],
                              "Combination of each instrument's model slots into the probability its strategy "
                              "trades on, with a disagreement breaker (modes and definitions: "
                              "core/inference/ensemble.hpp; mode none: slot 0 alone).")
#: Built-in strategy name -> its config Struct (fields from the core's declaration).
STRATEGIES: dict[str, type[msgspec.Struct]] = {
    name: _make_struct("".join(p.title() for p in name.split("_")) + "Config", spec["fields"], spec["doc"])
    for name, spec in _SCHEMA["strategies"].items()}
DEFAULT_STRATEGY = "threshold_bracket"
#: The default strategy's config (the name kept for the former API).
StrategyConfig = STRATEGIES[DEFAULT_STRATEGY]


class RiskConfig(msgspec.Struct, **_STRUCT):
    """The [risk] table: position sizing, pre-trade limits and kill-switch triggers (each section's fields
    and units are on its own Struct)."""

    sizing: SizingConfig = msgspec.field(default_factory=SizingConfig)  # type: ignore[valid-type]
    pre_trade: PreTradeConfig = msgspec.field(default_factory=PreTradeConfig)  # type: ignore[valid-type]
    kill_switch: KillSwitchConfig = msgspec.field(default_factory=KillSwitchConfig)  # type: ignore[valid-type]


class _Sections(msgspec.Struct, **_STRUCT):
    engine: EngineConfig = msgspec.field(default_factory=EngineConfig)  # type: ignore[valid-type]
    risk: RiskConfig = msgspec.field(default_factory=RiskConfig)
    sim: SimConfig = msgspec.field(default_factory=SimConfig)  # type: ignore[valid-type]
    ensemble: EnsembleConfig = msgspec.field(default_factory=EnsembleConfig)  # type: ignore[valid-type]


def parse_strategy(table: dict | None) -> tuple[str, msgspec.Struct]:
    """(name, config Struct) of a [strategy] table: `name` picks the built-in (default
    threshold_bracket), the other keys are its fields."""
    table = dict(table or {})
    name = table.pop("name", DEFAULT_STRATEGY)
    if name not in STRATEGIES:
        raise ValueError(f"strategy.name: unknown strategy {name!r} (built-ins: {', '.join(STRATEGIES)})")
    known = {f.name for f in msgspec.structs.fields(STRATEGIES[name])}
    for key in table:
        if key in RENAMED and key not in known:
            raise ValueError(f"strategy.{key} is no longer read: it moved to {RENAMED[key]}")
    try:
        return name, msgspec.convert(table, STRATEGIES[name])
    except msgspec.ValidationError as exc:
        raise ValueError(f"strategy ({name}): {exc}") from exc


class Config:
    """A whole config file: engine, risk, sim and strategy sections (frozen)."""

    __slots__ = ("engine", "risk", "sim", "ensemble", "strategy_name", "strategy")
    # Section Structs are made at import time from the core's schema, so their fields are not
    # known statically: Any keeps `config.engine.equity` checkable by callers without casts.
    engine: Any
    risk: RiskConfig
    sim: Any
    ensemble: Any
    strategy_name: str
    strategy: Any

    def __init__(self, sections: _Sections | None = None, strategy_name: str = DEFAULT_STRATEGY,
                 strategy: msgspec.Struct | None = None) -> None:
        sections = sections or _Sections()
        object.__setattr__(self, "engine", sections.engine)
        object.__setattr__(self, "risk", sections.risk)
        object.__setattr__(self, "sim", sections.sim)
        object.__setattr__(self, "ensemble", sections.ensemble)
        object.__setattr__(self, "strategy_name", strategy_name)
        object.__setattr__(self, "strategy", strategy if strategy is not None else STRATEGIES[strategy_name]())

    def __setattr__(self, name, value):
        raise AttributeError("Config is frozen")

    @classmethod
    def from_dict(cls, doc: dict) -> Config:
        """A Config from a decoded TOML document (sections as nested dicts).

        Raises ValueError naming the field for unknown fields, wrong types or out-of-bounds values.
        """
        doc = dict(doc)
        strategy = doc.pop("strategy", None)
        try:
            sections = msgspec.convert(doc, _Sections)
        except msgspec.ValidationError as exc:
            raise ValueError(str(exc)) from exc
        check_ensemble(sections.ensemble)
        name, strat = parse_strategy(strategy)
        return cls(sections, name, strat)

    @classmethod
    def from_toml(cls, text: str | bytes) -> Config:
        """A Config from TOML text; ValueError if the text is not TOML or a section is invalid."""
        try:
            doc = msgspec.toml.decode(text)
        except msgspec.DecodeError as exc:
            raise ValueError(f"not valid TOML: {exc}") from exc
        if not isinstance(doc, dict):
            raise ValueError("a config file is a TOML table")
        return cls.from_dict(doc)

    def to_core_dict(self) -> dict:
        """Engine config sections for bot4._core (engine, sizing, pre_trade, kill_switch, sim,
        ensemble, strategy: {name, fields})."""
        out = {k: msgspec.structs.asdict(getattr(self.risk, k)) for k in ("sizing", "pre_trade", "kill_switch")}
        out["engine"] = msgspec.structs.asdict(self.engine)
        out["sim"] = msgspec.structs.asdict(self.sim)
        out["ensemble"] = msgspec.structs.asdict(self.ensemble)
        out["strategy"] = {"name": self.strategy_name, **msgspec.structs.asdict(self.strategy)}
        return out

    def summary(self) -> dict:
        """Every section as plain JSON-able values (what `bot4 config check --json` prints)."""
        return {"engine": msgspec.to_builtins(self.engine), "risk": msgspec.to_builtins(self.risk),
                "sim": msgspec.to_builtins(self.sim), "ensemble": msgspec.to_builtins(self.ensemble),
                "strategy": {"name": self.strategy_name, **msgspec.to_builtins(self.strategy)}}


def check_ensemble(ensemble: Any) -> None:
    """The [ensemble] checks that do not depend on the slot count (mode and loss names, threshold
    and cadence order, finite weights), made by the core (ValueError naming the field); the
    per-slot checks (weight / coefficient counts, fallback slot) come when the engine gets its
    models."""
    from bot4 import _core

    _core.engine.check_ensemble(msgspec.structs.asdict(ensemble))  # ConfigError (a ValueError)


def load_config(path: str | Path) -> Config:
    """Read and validate a TOML config; any problem is a ConfigError naming the file and field."""
    path = Path(path)
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    try:
        return Config.from_toml(text)
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def build_risk(config: Config | None = None):
    """(PositionSizer, KillSwitch, PreTradeChecks) from a Config; the checks feed the kill switch."""
    from bot4._core import risk as core

    cfg = (config or Config()).to_core_dict()
    sizer = core.PositionSizer(cfg["sizing"])
    kill = core.KillSwitch(cfg["kill_switch"])
    checks = core.PreTradeChecks(cfg["pre_trade"], kill)
    return sizer, kill, checks
