"""User signal agents written in Python, fitted and blended beside the built-in ones
(`bot4.portfolio.job.portfolio_backtest(data, config, user_agents=[...])`).

A user agent is any object of the `UserAgent` protocol:

- `name` (str): its agent id, unique among the job's agents (the built-in four are direction,
  microprice_ofi, vol_breakout, mean_reversion);
- `horizon` (int >= 1): feature rows of the row's instrument its mu refers to;
- `model_version` (str): identifies the fitted parameters (set by `fit`);
- `fit(features, rows)`: fit on the training `rows` only (the job passes rows whose labels end
  before its later slices) and return the agent;
- `predict(features) -> AgentOutput`: one entry per feature row, with the built-in agents' fields
  and units: mu and sigma in bp (NaN together where the agent has no view, sigma >= 0), the
  quantiles q0.1 / q0.5 / q0.9 (rows x 3, ascending), confidence in [0, 1] (0 without a view),
  regime (int, -1 undefined). A row's output may depend on that row and earlier ones only.

The job checks every output (`checked_output`) and refuses a bad one with InputError naming the
agent; nothing else is assumed about the agent.

`CppAgent` is a user agent written in C++ (core/portfolio/agent_plugin.hpp: a UserSignalAgent
exported with BOT4_AGENT_PLUGIN, built as the engine's strategy plugins are, e.g.
examples/cpp_agent), loaded from its shared library and evaluated row by row in the core.

`make_agent(spec)` names a user agent as bot4.strategies names a strategy: "module:Class", a .py
file or a Cython .pyx file (built with bot4.cython_build) holding one agent class, or a C++ plugin
library (.so), as `bot4 portfolio backtest --agent SPEC` takes it.

`RowAgent` turns a function of one feature row into such an agent: `fn(row, names)` returns
(mu, sigma, q10, q50, q90, confidence, regime), the tuple bot4._core.portfolio.SignalAgent.evaluate
returns for the built-in agents, so a rule written row by row reads its inputs as the core's
agents do.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from bot4.errors import InputError
from bot4.portfolio.agents import AgentOutput


@runtime_checkable
class UserAgent(Protocol):
    """The interface the job reads from a user agent (module text)."""

    name: str
    horizon: int
    model_version: str

    def fit(self, features, rows) -> Any:
        """Fit on the training `rows` of `features` only; return the agent."""
        ...

    def predict(self, features) -> AgentOutput:
        """The agent's output on every feature row (module text: fields and units)."""
        ...


def check_user_agent(agent, taken: Sequence[str] = ()) -> None:
    """InputError unless `agent` has the UserAgent members, a positive integer horizon and a
    name not in `taken`."""
    missing = [m for m in ("name", "horizon", "fit", "predict") if not hasattr(agent, m)]
    if missing:
        raise InputError("user_agents", f"{type(agent).__name__} lacks {', '.join(missing)} "
                         "(see bot4.portfolio.user_agents.UserAgent)")
    if not isinstance(agent.name, str) or not agent.name:
        raise InputError("user_agents", f"an agent's name must be a non-empty string, got {agent.name!r}")
    if agent.name in taken:
        raise InputError("user_agents", f"agent name '{agent.name}' is already used by another agent")
    h = agent.horizon
    if isinstance(h, bool) or not isinstance(h, (int, np.integer)) or h < 1:
        raise InputError("user_agents", f"agent '{agent.name}': horizon must be an integer >= 1, got {h!r}")


def checked_output(agent, out, features) -> AgentOutput:
    """`out` if it is a valid AgentOutput of `agent` on every row of `features`; InputError
    naming the agent and the field otherwise."""
    who = getattr(agent, "name", type(agent).__name__)

    def bad(field: str, problem: str) -> InputError:
        return InputError("user_agents", f"agent '{who}': {field} {problem}")

    if not isinstance(out, AgentOutput):
        raise bad("predict", f"must return an AgentOutput, got {type(out).__name__}")
    n = len(features.timestamps)
    if out.agent != who:
        raise bad("agent", f"is '{out.agent}', not the agent's name")
    for name in ("mu", "sigma", "confidence", "regime"):
        if np.shape(getattr(out, name)) != (n,):
            raise bad(name, f"must have one value per row ({n}), got shape {np.shape(getattr(out, name))}")
    if np.shape(out.quantiles) != (n, 3):
        raise bad("quantiles", f"must be rows x 3, got shape {np.shape(out.quantiles)}")
    if not np.array_equal(np.asarray(out.timestamps), np.asarray(features.timestamps)) or \
            not np.array_equal(np.asarray(out.instruments), np.asarray(features.instruments)):
        raise bad("timestamps", "and instruments must be the feature rows'")
    mu, sigma = np.asarray(out.mu, np.float64), np.asarray(out.sigma, np.float64)
    conf, q = np.asarray(out.confidence, np.float64), np.asarray(out.quantiles, np.float64)
    if np.isinf(mu).any() or np.isinf(sigma).any() or np.isinf(q).any():
        raise bad("mu", "sigma and quantiles must be finite or NaN (no view), not infinite")
    if not np.array_equal(np.isnan(mu), np.isnan(sigma)):
        raise bad("mu", "and sigma must be NaN in the same rows (no view)")
    if (sigma < 0).any():
        raise bad("sigma", "must be >= 0")
    view = np.isfinite(mu)
    if not np.isfinite(q[view]).all() or (np.diff(q[view], axis=1) < 0).any():
        raise bad("quantiles", "must be finite and ascending where the agent has a view")
    if not np.isfinite(conf).all() or (conf < 0).any() or (conf > 1).any() or (conf[~view] != 0).any():
        raise bad("confidence", "must be in [0, 1], and 0 without a view")
    reg = np.asarray(out.regime)
    if reg.dtype.kind not in "iu" or (reg < -1).any():
        raise bad("regime", "must be integers >= -1")
    return out


class RowAgent:
    """A user agent from a function of one feature row: `fn(row, names)` with row a float64 array
    (the row's features, columns named by `names`) returns (mu, sigma, q10, q50, q90, confidence,
    regime). A rule needs no fitting; give `fit_fn(features, rows)` for one that does (its return
    value is hashed into the model version)."""

    def __init__(self, name: str, fn: Callable[..., tuple], horizon: int = 1,
                 fit_fn: Callable[..., Any] | None = None):
        self.name, self.fn, self.horizon, self.fit_fn = name, fn, horizon, fit_fn
        check_user_agent(self)
        self.model_version = hashlib.sha256(name.encode()).hexdigest()[:16]

    def fit(self, features, rows) -> RowAgent:
        """Call fit_fn (if any) on the training rows; the model version hashes what it returns."""
        if self.fit_fn is not None:
            state = self.fit_fn(features, rows)
            self.model_version = hashlib.sha256(f"{self.name}:{state!r}".encode()).hexdigest()[:16]
        return self

    def predict(self, features) -> AgentOutput:
        """fn on every row (InputError naming the row when it does not return the seven fields)."""
        m = np.asarray(features.matrix, dtype=np.float64)
        names = list(features.names)
        n = m.shape[0]
        vals = np.full((n, 6), np.nan)
        reg = np.full(n, -1, dtype=np.int64)
        for i in range(n):
            try:
                res = tuple(self.fn(m[i], names))
                if len(res) != 7:
                    raise ValueError(f"got {len(res)} values")
                vals[i] = res[:6]
                reg[i] = int(res[6])
            except (TypeError, ValueError) as exc:
                raise InputError("user_agents", f"agent '{self.name}': row {i}: fn must return (mu, sigma, q10, "
                                 f"q50, q90, confidence, regime): {exc}") from None
        return AgentOutput(agent=self.name, model_version=self.model_version, horizon=int(self.horizon),
                           timestamps=np.asarray(features.timestamps, dtype=np.int64),
                           instruments=np.asarray(features.instruments), mu=vals[:, 0], sigma=vals[:, 1],
                           quantiles=vals[:, 2:5], confidence=vals[:, 5], regime=reg)


class CppAgent:
    """A C++ user agent from a plugin library (`path`, built with BOT4_AGENT_PLUGIN; `params`: a
    flat dict of numbers, booleans and strings its constructor reads, all of them). No fitting: the
    model version hashes the library's bytes and the parameters. InputError when the library or
    its parameters are refused, a column it needs is missing, or it returns an invalid view."""

    def __init__(self, name: str, path, params: dict | None = None, horizon: int = 1):
        import json
        from pathlib import Path

        self.name, self.horizon = name, horizon
        check_user_agent(self)
        self.path = Path(path)
        if not self.path.is_file():
            raise InputError("path", f"{self.path} is not a file (an agent plugin library)")
        self.params_json = json.dumps(dict(params or {}), sort_keys=True)
        h = hashlib.sha256(self.path.read_bytes())
        h.update(self.params_json.encode())
        self.model_version = h.hexdigest()[:16]
        self._core: Any = None
        self._names: list[str] | None = None

    def fit(self, features, rows) -> CppAgent:
        """Nothing to fit (a rule in C++); returns the agent."""
        return self

    def core(self, feature_names):
        """The loaded bot4._core.portfolio.PluginAgent bound to `feature_names` (kept per layout)."""
        from bot4._core.portfolio import PluginAgent

        names = [str(n) for n in feature_names]
        if self._core is None or self._names != names:
            self._core, self._names = PluginAgent(str(self.path), self.params_json, names), names
        return self._core

    def predict(self, features) -> AgentOutput:
        """The plugin's view of every feature row (a loop over its per-row evaluate in the core)."""
        out = self.core(features.names).evaluate_rows(np.ascontiguousarray(features.matrix, dtype=np.float64))
        return AgentOutput(agent=self.name, model_version=self.model_version, horizon=int(self.horizon),
                           timestamps=np.asarray(features.timestamps, dtype=np.int64),
                           instruments=np.asarray(features.instruments), mu=out["mu"], sigma=out["sigma"],
                           quantiles=out["quantiles"], confidence=out["confidence"], regime=out["regime"])


def _is_agent_class(c, module_name: str | None = None) -> bool:
    import inspect

    return inspect.isclass(c) and callable(getattr(c, "fit", None)) and callable(getattr(c, "predict", None)) \
        and (module_name is None or c.__module__ == module_name)


def _one_class(module, where: str, module_name: str | None = None):
    classes = [c for c in vars(module).values() if _is_agent_class(c, module_name)]
    if len(classes) != 1:
        raise InputError("agent", f"{where}: expected one agent class (with fit and predict), found {len(classes)}")
    return classes[0]


def make_agent(spec, params: dict | None = None, name: str | None = None):
    """A checked user agent from `spec`: an agent object, an agent class (made with `params` as
    keyword arguments), "module:Class", a .py or .pyx file with one agent class, or a C++ plugin
    library (.so / .dylib; `params` go to its constructor, `name` defaults to the file's stem)."""
    import importlib
    import importlib.util
    import inspect
    from pathlib import Path

    from bot4.strategies import PLUGIN_SUFFIXES

    params = dict(params or {})
    obj = spec
    if isinstance(spec, (str, Path)):
        text = str(spec)
        path = Path(text)
        if ":" not in text and text.endswith(PLUGIN_SUFFIXES):
            return CppAgent(name or path.stem.removeprefix("lib"), path.resolve(), params)
        if ":" not in text and text.endswith((".py", ".pyx")):
            if not path.is_file():
                raise InputError("agent", f"agent file {text!r} does not exist")
            if text.endswith(".pyx"):
                from bot4.cython_build import build_module

                obj = _one_class(build_module(path), text)
            else:
                module_name = f"_bot4_user_agent_{path.stem}"
                mspec = importlib.util.spec_from_file_location(module_name, path)
                if mspec is None or mspec.loader is None:
                    raise InputError("agent", f"agent file {text!r} cannot be imported as a Python module")
                module = importlib.util.module_from_spec(mspec)
                mspec.loader.exec_module(module)
                obj = _one_class(module, text, module_name)
        elif ":" in text:
            module_name, _, attr = text.partition(":")
            try:
                obj = getattr(importlib.import_module(module_name), attr)
            except (ImportError, AttributeError) as exc:
                raise InputError("agent", f"agent {text!r}: {exc}") from None
        else:
            raise InputError("agent", f"unknown agent {text!r}: module:Class, a .py/.pyx file or a C++ plugin (.so)")
    if inspect.isclass(obj):
        obj = obj(**params)
    elif params:
        raise InputError("agent", "agent parameters given for an agent instance")
    if name is not None:
        obj.name = name
    check_user_agent(obj)
    return obj


__all__ = ["CppAgent", "RowAgent", "make_agent", "UserAgent", "check_user_agent", "checked_output"]
