"""The portfolio step in the core (bot4._core.portfolio.PortfolioStep; core/portfolio/portfolio_step.hpp).

`build_core_step` loads, once, what the Python step (bot4.portfolio.job.Coordinator.plan with
step="python", the reference) reads at every decision: the config and the buffered and full
limits, the lanes' lot sizes and venue rules, the fitted meta-weighter's linear quantile models and
isotonic table (fitted in Python as before), the fitted agents (Signals.per_decision: the step
evaluates them on each decision's feature rows, step_features) or else every agent's outputs on
every signal row, the grid bars (the core keeps the trailing returns in a ring as bars end) and
the action stream's PCG64
state (so the core's epsilon-greedy draws are numpy's). Each decision then is one call with the
lanes' positions, mids, P&L and peak equity.

Only the linear meta backend has a core twin (LightGBM quantile models stay in Python: use
step="python" with them).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bot4 import _core
from bot4.errors import InputError

#: SizingLimits fields in the order PortfolioStep takes them: the core's declaration
#: (risk_budget_sizer.hpp, BOT4_PORTFOLIO_LIMIT_FIELDS).
LIMIT_FIELDS: tuple[str, ...] = tuple(str(f["name"]) for f in _core.portfolio.limits_schema())


def _limits(lim) -> list[float]:
    return [float(getattr(lim, f)) for f in LIMIT_FIELDS]


def meta_params(meta) -> dict[str, Any]:
    """The fitted MetaWeighter's parameters as PortfolioStep takes them (InputError for a backend
    without a core twin)."""
    from bot4.portfolio.agents import LinearQuantiles
    from bot4.portfolio.meta import NORMAL_IQR

    if not meta.models:
        raise InputError("meta", "not fitted", "call fit(outputs, target, rows) first")
    models = []
    for k, m in meta.models.items():
        if not isinstance(m, LinearQuantiles):
            raise InputError("step", f"the core step has only linear quantile models, the meta-weighter uses "
                             f"{meta.backend_used!r}", suggest={"step": "python"})
        models.append((-1 if k is None else int(k), np.ascontiguousarray(m.coef, np.float64),
                       np.ascontiguousarray(m.intercept, np.float64)))
    cal = meta.calibrator
    return {"taus": [float(t) for t in meta.taus], "inputs": int(models[0][1].shape[1]), "models": models,
            "iso_x": [] if cal is None else [float(v) for v in cal.x],
            "iso_y": [] if cal is None else [float(v) for v in cal.y],
            "clip": float(meta.clip), "normal_iqr": float(NORMAL_IQR)}


def build_core_step(lanes, config, signals, bars, bar_ends, latest, rng: np.random.Generator, *,
                    fixed_action: int | None = None):
    """A PortfolioStep for a Coordinator's lanes (latest: per lane the (times, row indices) of its
    signal rows; rng: the Generator the Python step draws the actions from, whose stream the core
    continues)."""
    from scipy import stats

    from bot4._core.portfolio import PortfolioStep
    from bot4.portfolio.meta import agent_matrix

    full, buffered = config.sizing_limits(), config.buffered_limits()
    state = rng.bit_generator.state
    if state.get("bit_generator") != "PCG64":
        raise InputError("rng", f"the core step continues a PCG64 stream, got {state.get('bit_generator')!r}")
    alpha = 1.0 - full.cvar_level
    z = float(stats.norm.ppf(alpha))
    rules = lanes.rules
    n = lanes.n
    inverse = lanes.inverse if lanes.inverse is not None else np.zeros(n, bool)
    face = lanes.contract_size if lanes.contract_size is not None else np.ones(n)
    step = PortfolioStep(
        equity=float(config.equity), fx=float(config.quote_to_account), grid_ns=int(config.grid_ns),
        horizon=int(config.horizon), corr_window=int(config.corr_window), top_k=int(config.top_k),
        penalty=float(config.penalty), min_edge_bp=float(config.min_edge_bp),
        full_confidence=float(config.full_confidence), actions=[float(a) for a in config.actions],
        epsilon=float(config.epsilon), scenarios=bool(config.scenarios), rebalance_band=float(config.rebalance_band),
        fixed_action=-1 if fixed_action is None else int(fixed_action), full=_limits(full),
        buffered=_limits(buffered), tail_z=z, tail_pdf=float(stats.norm.pdf(z)),
        lot_size=[float(v) for v in lanes.lot_size], inverse=[bool(v) for v in inverse],
        contract_size=[float(v) for v in face], groups=[int(g) for g in lanes.groups],
        lot_step=[float(r.lot_step) for r in rules], min_qty=[float(r.min_qty) for r in rules],
        min_notional=[float(r.min_notional) for r in rules], allow_short=[bool(r.allow_short) for r in rules],
        rule_inverse=[bool(r.inverse) for r in rules], rule_contract_size=[float(r.contract_size) for r in rules],
        rng_state=int(state["state"]["state"]), rng_inc=int(state["state"]["inc"]),
        **meta_params(signals.meta))
    if getattr(signals, "per_decision", False):
        # the agents run inside the step on each decision's feature rows (step_features)
        from bot4.portfolio.agents import core_agent

        step.set_agents([core_agent(a, signals.features.names) for a in signals.agents])
        step.set_bars(np.asarray(bar_ends, np.int64), np.ascontiguousarray(bars, np.float64))
        return step
    x, _ = agent_matrix(signals.outputs)
    regime = np.asarray(signals.outputs[0].regime, np.int64)
    step.set_signals(np.ascontiguousarray(x, np.float64), regime, [np.asarray(t, np.int64) for t, _ in latest],
                     [np.asarray(r, np.int64) for _, r in latest])
    step.set_bars(np.asarray(bar_ends, np.int64), np.ascontiguousarray(bars, np.float64))
    return step


__all__ = ["LIMIT_FIELDS", "build_core_step", "meta_params"]
