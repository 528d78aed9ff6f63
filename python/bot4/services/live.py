"""Live changes to a running engine (control plane): a parameter set by its TOML path, a new risk
configuration, a model swap. Each is validated against the one declared schema before anything
changes, then applied to the core's StreamingBacktest between pieces; a refusal is a ChangeRefused
with a one-line reason, and then nothing changed.

TOML paths and the core's sections they change (bot4.config's file layout):
``engine.F`` -> engine, ``risk.sizing.F`` -> sizing, ``risk.pre_trade.F`` -> pre_trade,
``risk.kill_switch.F`` -> kill_switch, ``strategy.F`` -> the built-in strategy's fields. The
venue simulator (``sim``) and the feature config stay as the session started: the simulated venue
and the models' features are built with them.
"""

from __future__ import annotations

import math
import os
from typing import Any

import msgspec

from bot4.config.risk import STRATEGIES, EngineConfig, KillSwitchConfig, PreTradeConfig, RiskConfig, SizingConfig
from bot4.errors import Bot4Error, ConfigError, ModelError

#: TOML path prefix -> (core section, its Struct)
SECTIONS: dict[str, tuple[str, Any]] = {
    "engine": ("engine", EngineConfig),
    "risk.sizing": ("sizing", SizingConfig),
    "risk.pre_trade": ("pre_trade", PreTradeConfig),
    "risk.kill_switch": ("kill_switch", KillSwitchConfig),
}
_RISK = {"sizing": "risk.sizing", "pre_trade": "risk.pre_trade", "kill_switch": "risk.kill_switch"}


class ChangeRefused(Bot4Error, ValueError):
    """A live change that was not applied (the reason is the message); nothing changed."""


def _finite(key: str, value: Any) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ChangeRefused(f"{key}: {value} is not a finite number")


def _validated(struct: Any, current: dict, changes: dict, where: str, label: str = "") -> dict:
    """`current` with `changes`, checked as the TOML loader checks a section (types, bounds,
    unknown fields); the changed fields only."""
    known = {f.name for f in msgspec.structs.fields(struct)}
    for k, v in changes.items():
        if k not in known:
            raise ChangeRefused(f"unknown key {where}.{k}{label} (known: {', '.join(sorted(known))})")
        _finite(f"{where}.{k}", v)
    try:
        msgspec.convert({**current, **changes}, struct)
    except msgspec.ValidationError as exc:
        raise ChangeRefused(f"{where}{label}: {exc}") from None
    return changes


def set_parameter(engine: Any, key: str, value: bool | int | float | str) -> dict:
    """Set one field by its TOML path (see the module doc) on `engine` (a running
    bot4._core.engine.StreamingBacktest); returns {"key", "old", "new"}. ChangeRefused, with
    nothing changed, for an unknown key, a fixed section, a wrong type, a value outside the declared
    bounds or a non-finite number."""
    prefix, _, name = key.rpartition(".")
    if not prefix or not name:
        raise ChangeRefused(f"key {key!r}: expected a dotted TOML path such as risk.pre_trade.max_position_lots")
    if prefix == "strategy":
        running = engine.strategy_config()
        if running is None:
            raise ChangeRefused("strategy parameters: the session runs a user strategy (configure it in its code)")
        running = dict(running)
        strategy = running.pop("name")
        if name == "name":
            raise ChangeRefused("strategy.name: the strategy cannot change in a running session")
        _validated(STRATEGIES[strategy], running, {name: value}, "strategy", f" of {strategy}")
        try:
            engine.set_strategy_config({name: value})
        except ConfigError as exc:
            raise ChangeRefused(str(exc)) from None
        return {"key": key, "old": running[name], "new": engine.strategy_config()[name]}
    if prefix not in SECTIONS:
        fixed = prefix.split(".")[0] in ("sim", "features")
        raise ChangeRefused(f"{key}: " + ("the venue simulator and the feature config are fixed for a session"
                                          if fixed else "unknown section (live: " + ", ".join(
                                              [*SECTIONS, "strategy"]) + ")"))
    section, struct = SECTIONS[prefix]
    running = engine.config()[section]
    _validated(struct, running, {name: value}, prefix)
    try:
        engine.set_config({section: {name: value}})
    except ConfigError as exc:
        raise ChangeRefused(str(exc)) from None
    return {"key": key, "old": running[name], "new": engine.config()[section][name]}


def update_risk(engine: Any, risk: RiskConfig) -> dict:
    """Replace the sizing, pre-trade and kill-switch sections by `risk` (already validated at
    decode) as a whole; returns {"changed": {TOML path: [old, new]}} (empty when nothing
    differs). ChangeRefused, nothing changed, for a non-finite value."""
    running = engine.config()
    changes: dict[str, dict] = {}
    changed: dict[str, list] = {}
    for section, path in _RISK.items():
        new = msgspec.structs.asdict(getattr(risk, section))
        diff = {k: v for k, v in new.items() if running[section].get(k) != v}
        for k, v in diff.items():
            _finite(f"{path}.{k}", v)
            changed[f"{path}.{k}"] = [running[section][k], v]
        if diff:
            changes[section] = diff
    if changes:
        try:
            engine.set_config(changes)
        except ConfigError as exc:
            raise ChangeRefused(str(exc)) from None
    return {"changed": changed}


def load_swap_model(path: str | os.PathLike[str], sha256: str, features: Any) -> Any:
    """The model directory at `path`, loaded and checked for a swap into an engine computing the
    feature config `features` (bot4.features.FeatureConfig): sidecar and model file present, the
    file's SHA-256 equal to the sidecar's and to `sha256` (the digest the operator or the registry
    vouches for), the feature names equal the feature engine's, the model's feature config equal
    `features` but for the decision fields, the model parses. ChangeRefused naming the cause."""
    from bot4.backtest.engine import DECISION_FIELDS
    from bot4.features import FeatureConfig
    from bot4.models import load

    if not os.path.isdir(path):
        raise ChangeRefused(f"model directory {os.fspath(path)!r} does not exist")
    try:
        model = load(path, check_features=True)
        trained = model.feature_config or FeatureConfig()
    except (ModelError, ValueError) as exc:
        raise ChangeRefused(f"model refused: {exc}") from None
    digest = str(model.sidecar["sha256"]).lower()
    if digest != sha256.lower():
        raise ChangeRefused(f"model refused: its SHA-256 is {digest}, the command expects {sha256.lower()}")
    diff = [f for f in FeatureConfig.__struct_fields__
            if f not in DECISION_FIELDS and getattr(trained, f) != getattr(features, f)]
    if diff:
        raise ChangeRefused(f"model refused: trained with another feature config ({', '.join(diff)} differ from "
                            "the running engine's)")
    return model


def swap_model(engine: Any, model: Any) -> None:
    """Install `model` (from load_swap_model) in slot 0 of every instrument, from the next
    decision on; ChangeRefused (the old model keeps trading) when the core refuses it."""
    try:
        engine.swap_model(model, 0)
    except ValueError as exc:
        raise ChangeRefused(f"model refused: {exc}") from None
