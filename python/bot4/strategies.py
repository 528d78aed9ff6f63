"""Finding and making strategies: the built-ins (declared in the core, configured from TOML),
Python classes (`module:Class` or a `bot4.Strategy` subclass/instance), compiled Cython
strategies (`path.pyx`, built with cythonize against the installed bot4: bot4.cython_build) and
C++ plugins (`path.so`, a shared library exporting BOT4_STRATEGY_PLUGIN: core/strategy/plugin.hpp)."""
from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path
from typing import Any

from bot4 import _core


def builtins() -> dict[str, dict]:
    """Built-in strategy name -> {"doc", "fields": [{name, type, default, min, max, unit, doc}]}."""
    return {name: dict(spec) for name, spec in _core.engine.schema()["strategies"].items()}


#: File suffixes of C++ strategy plugins.
PLUGIN_SUFFIXES = (".so", ".dylib", ".dll")


def _load_object(spec: str) -> Any:
    if spec.endswith((".pyx", ".py")) and ":" not in spec:
        path = Path(spec)
        if not path.is_file():
            raise ValueError(f"strategy file {spec!r} does not exist")
        if spec.endswith(".pyx"):
            from bot4.cython_build import build_strategy

            return build_strategy(path)
        module_name = f"_bot4_user_strategy_{path.stem}"
        spec_ = importlib.util.spec_from_file_location(module_name, path)
        if spec_ is None or spec_.loader is None:
            raise ValueError(f"strategy file {spec!r} cannot be imported as a Python module")
        module = importlib.util.module_from_spec(spec_)
        spec_.loader.exec_module(module)
        classes = [c for c in vars(module).values() if inspect.isclass(c) and hasattr(c, "on_decision")
                   and c.__module__ == module_name]
        if len(classes) != 1:
            raise ValueError(f"{spec}: expected one strategy class (with on_decision), found {len(classes)}")
        return classes[0]
    if ":" not in spec:
        raise ValueError(f"unknown strategy {spec!r}: a built-in ({', '.join(builtins())}), module:Class, "
                         "a .py/.pyx file or a C++ plugin (.so)")
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"strategy {spec!r}: cannot import {module_name} ({exc})") from exc
    try:
        return getattr(module, attr)
    except AttributeError as exc:
        raise ValueError(f"strategy {spec!r}: {module_name} has no {attr}") from exc


def make(spec: Any = None, params: dict | None = None):
    """A strategy object the engine runs: `spec` is a built-in name (with `params`, its fields),
    "module:Class", a .py/.pyx path, a class (instantiated with `params` as keyword arguments), an
    instance, or None (the built-in threshold_bracket)."""
    params = dict(params or {})
    params.pop("name", None)
    if spec is None:
        spec = "threshold_bracket"
    if isinstance(spec, str) and spec in builtins():
        return _core.engine.BuiltinStrategy(spec, params)
    if isinstance(spec, str) and ":" not in spec and spec.endswith(PLUGIN_SUFFIXES):
        if not Path(spec).is_file():
            raise ValueError(f"strategy plugin {spec!r} does not exist")
        # the path as given would make dlopen search the library path: load this file
        return _core.engine.PluginStrategy(str(Path(spec).resolve()), params)
    obj = _load_object(spec) if isinstance(spec, str) else spec
    if inspect.isclass(obj):
        obj = obj(**params)
    elif params:
        raise ValueError("strategy parameters given for a strategy instance")
    if isinstance(obj, _core.engine.StrategyHandle) or hasattr(obj, "on_decision"):
        return obj
    if hasattr(obj, "__bot4_callbacks__"):  # a Cython cdef class (bot4/strategy_api.pxd)
        return _core.engine.CallbackStrategy(obj)
    raise TypeError(f"{obj!r} is not a strategy (a built-in, an object with on_decision(ctx), or a Cython "
                    "strategy with __bot4_callbacks__)")


def is_builtin(spec: Any) -> bool:
    """True if `spec` is the name of a built-in strategy."""
    return isinstance(spec, str) and spec in builtins()


def config_for(spec: Any, config: Any = None) -> dict:
    """The engine config sections (bot4.backtest.run's `config`) for running `spec` under
    `config` (None, a dict of sections or a bot4.config.Config): its [strategy] table applies when
    it names `spec`; a table left at its defaults is dropped, so `spec` runs with its own; a table
    that configures another strategy is a ValueError (two answers to what trades)."""
    from bot4.backtest.engine import engine_config

    cfg = engine_config(config)
    table = dict(cfg.pop("strategy", None) or {})
    if not table:
        return cfg
    named = table.pop("name", "threshold_bracket")
    if isinstance(spec, str) and spec == named:
        cfg["strategy"] = {"name": named, **table}
        return cfg
    defaults = {f["name"]: f["default"] for f in builtins()[named]["fields"]} if named in builtins() else {}
    changed = sorted(k for k, v in table.items() if defaults.get(k, object()) != v)
    if named != "threshold_bracket" or changed:
        what = f"[strategy] configures {named}" + (f" ({', '.join(changed)})" if changed else "")
        raise ValueError(f"{what}, but the strategy is {spec!r}: remove the table (a user strategy takes its "
                         "parameters in its own code) or name that strategy")
    return cfg
