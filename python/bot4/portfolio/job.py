"""The portfolio job (issue 13): agents -> meta-weighter -> diversified selection -> risk-budget
sizing -> execution in the core engine, several instruments in one backtest.

`portfolio_backtest(data, config)` (what `bot4 portfolio backtest` wraps):

1. Features (bot4.features.compute) on a time grid of `grid_s` per instrument.
2. Time split of the recording: agents are fitted on the first `agents_fraction`, the
   meta-weighter on the next `meta_fraction` (out of the agents' sample) and calibrated on the next
   `calibration_fraction`; the rest is traded. Every training row's label window (the `horizon`
   rows after it) must end before the next slice starts (purge by label end time, so at least the
   label horizon separates the slices).
3. On the decision grid of the trading part (every `grid_s`), per instrument the latest blended
   (mu, sigma, p): the agents' outputs of the instrument's latest feature row at or before the
   decision time (each a function of that row and of parameters fitted on earlier slices, so
   causal), blended by the meta-weighter at the step itself.
4. Diversified selection: greedy_penalty on trailing correlations of grid mid returns
   (`corr_window` bars ending at the decision), score |mu| / sigma, beside plain top_k; the mean
   pairwise correlation of both picks is recorded at every step with at least two candidates.
5. Sizing: risk_budget_notional with unit risk = conservative CVaR_95 of the trailing one-bar
   returns times sqrt(horizon) (square-root-of-time), scaled by the step's action, projected into
   the feasible set (project_report: projections counted by limit) and rounded to lots with venue
   minimums (plan_orders: skipped trades counted) - all against the *buffered* limits: every
   exposure limit times (1 - buffer), a margin for mark-to-market drift between steps.
6. Execution: one `bot4.Strategy` instance per instrument (lane); the lanes share one
   `Coordinator`. Lanes decide `checks_per_step` times per grid step; the first lane to decide in
   a new step has the coordinator compute the step's targets once from every lane's latest
   position, mid and P&L. Each lane then moves to its target with ctx.target(lots, "aggressive"):
   reductions (toward zero; a sign flip first goes to zero) before any increase, and an increase
   only once no reduction is outstanding. A leg is released only when the worst case over every
   partly filled combination of the legs in flight (a box of positions; the limits are convex,
   so the worst case sits at its corners and is closed form: per-coordinate max |x|, sums of those
   for gross and group, the extreme sums for net) stays within the buffered limits; legs held back
   are counted and retried at the lane's next decision.
7. `limit_breaches`: at every lane decision and every fill, the positions actually held (engine
   ctx.position and fills) marked at the latest mids, against the full limits (sizing.violations).
8. Logging and OPE: at every step each selected instrument's action (index into `actions`, a scale
   of the risk budget) is drawn epsilon-greedily around a greedy rule (largest scale when the
   calibrated |2p - 1| >= `full_confidence`, the middle one otherwise); the propensity of the drawn
   action is logged with the context (mu, sigma, p, score). The round's reward is the
   instrument's P&L change (account currency) until the next step. IPS / SNIPS / DR (ope.estimate_all,
   cross-fitted ridge reward model) estimate the per-round value of always taking
   `alternative_action`; a second backtest runs that policy deterministically and its actual
   per-round reward and P&L are reported beside the estimates. The rounds are not independent
   bandit rounds: a lane's position carries over steps (the rebalance band keeps it, a change
   pays costs on the difference, legs wait for reductions), so the reward of a round also depends
   on the lane's earlier actions. The estimators therefore weight each round by the product of
   the importance weights of its lane's rounds over the last `ope_memory` grid steps (episode =
   lane; ope.history_weights): unbiased if the carried effect lasts at most `ope_memory` steps and
   the actions do not move the market or, through the shared limits, the other lanes; `ope_bandit`
   (memory 0) is reported beside it. The actual run is the check of those assumptions.
9. Sizer (`sizer`): "fixed" scales the risk budget by the logged action only. "rl": the steps
   before `rl_train_fraction` of the trading part are sized by the fixed sizer times a multiplier
   drawn epsilon-greedily (`rl_epsilon`) around 1 from rl_sizer.MULTIPLIERS, each logged as a
   decision (state: best score, mean calibrated confidence, trailing volatility, drawdown, gross
   proposal; reward: the portfolio's P&L change until the next step over the equity at the step;
   propensity); at the split the constrained RL sizer (rl_sizer.train: DR policy gradient,
   Lagrange multipliers, CVaR-aware reward) is trained on those decisions, and every later step
   takes the policy's multiplier. Every multiplier, explored or learned, reaches the book only
   through the safety layer (sanitised, then the same projection as the fixed sizer; in the core
   step PortfolioStep.finish_safe, rl_sizer.safe_exposure in the Python one) and the
   same order planning and leg sequencing. A second run with the fixed sizer (same seed, so the
   same per-lane actions) is the comparison: P&L, drawdown, CVaR_95 of the per-step P&L, limit
   breaches and projections over the held-out steps (after the split) of both runs.

Units: notionals, equity and P&L in the account currency (quote units times `quote_to_account`);
engine positions in lots of the instrument. An inverse (COIN-M) lane's notional is its contracts
times the face value (quote units, whatever the price); its P&L comes from the engine in quote
units (the coin P&L times the mid), which for a position of notional N moving by a return r is
N r as for a linear one, so the same return-based risk sizing applies.
"""

from __future__ import annotations

import bisect
import math
import time
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import msgspec
import numpy as np

from bot4._core.portfolio import MIN_CONVICTION, MIN_RELATIVE_SIGMA
from bot4.errors import InputError
from bot4.portfolio.rl_sizer import RLSizerConfig
from bot4.portfolio.sizing import (LIMIT_NAMES, OrderRules, PortfolioState, SizingLimits, plan_orders,
                                   preset_500_eur, project_report, risk_budget_notional, violations,
                                   violations_core)

#: Exposure limits the buffer shrinks (the risk per trade and the drawdown stop are not exposures).
BUFFERED = ("max_position", "max_group_gross", "max_gross", "max_net", "max_portfolio_cvar")


class PortfolioConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Settings of `portfolio_backtest` (TOML: the same field names at the top level, `[limits]`
    for SizingLimits). Fractions of the recording are of its time span."""

    equity: float = 10_000.0            # account equity at the start (account currency)
    quote_to_account: float = 1.0       # account currency per quote unit (e.g. EUR per USDT)
    preset: Literal["none", "500eur"] = "none"   # "500eur": sizing.preset_500_eur limits and venue rules
    limits: SizingLimits = msgspec.field(default_factory=SizingLimits)
    min_notional: float = 0.0           # venue minimum (quote) for instruments without preset rules
    buffer: float = 0.1                 # targets use limits * (1 - buffer): room for drift between steps
    grid_s: float = 1.0                 # decision grid step, seconds
    checks_per_step: int = 5            # lane decisions per grid step (reductions confirmed before increases)
    horizon: int = 30                   # label / signal horizon, grid rows
    agents_fraction: float = 0.3
    meta_fraction: float = 0.15
    calibration_fraction: float = 0.1
    top_k: int = 2                      # instruments held at once
    penalty: float = 1.0                # lambda of greedy_penalty
    corr_window: int = 120              # trailing bars of the return correlations and the CVaR
    min_edge_bp: float = 0.0            # |mu| below this (bp) is no view
    full_confidence: float = 0.1        # |2p - 1| at which the greedy rule takes the largest scale
    actions: tuple[float, ...] = (0.0, 0.5, 1.0)   # scales of the risk budget (the logged action set)
    epsilon: float = 0.05               # exploration: probability of a uniformly drawn action
    seed: int = 0
    alternative_action: int = 2         # index into actions: the alternative policy always takes it
    scenarios: bool = True              # portfolio CVaR limit over the trailing horizon returns
    rebalance_band: float = 0.2         # same-sign changes below band * max_position * equity are not traded
    meta_backend: Literal["auto", "lightgbm", "linear"] = "linear"
    max_train_rows: int = 5_000         # rows per quantile fit (spread evenly in time)
    window_s: float = 0.0               # > 0: only the first window_s seconds of the recording
    common_span: bool = True            # only the span in which every instrument has book data
    run_alternative: bool = True        # the second backtest (alternative policy, deterministic)
    ope_memory: int = 1                 # grid steps a lane's action keeps affecting its rewards (OPE weights)
    sizer: Literal["fixed", "rl"] = "fixed"   # "rl": the constrained RL sizer scales the sizes after rl_train_fraction
    step: Literal["core", "python"] = "core"  # the portfolio step: in the core (C++), or the Python reference
    # the built-in agents' outputs: "core" (C++ SignalAgent; in the trading part inside the core step
    # on each decision's feature rows), "upfront" (C++ SignalAgent on every row before the run, the
    # step reading those outputs) or "python" (their predict, the reference)
    agent_eval: Literal["core", "upfront", "python"] = "core"
    rl_train_fraction: float = 0.5      # of the trading steps: logged with exploration, then the RL sizer trains
    rl_epsilon: float = 0.3             # exploration of the logged multiplier around 1 (sizer = "rl")
    rl: RLSizerConfig = msgspec.field(default_factory=RLSizerConfig)   # [rl] in TOML

    def __post_init__(self) -> None:
        def need(ok: bool, name: str, what: str) -> None:
            if not ok:
                raise InputError(name, f"{what}, got {getattr(self, name)!r}")

        for name in ("equity", "quote_to_account", "grid_s"):
            need(math.isfinite(getattr(self, name)) and getattr(self, name) > 0, name, "must be a finite number > 0")
        need(math.isfinite(self.min_notional) and self.min_notional >= 0, "min_notional", "must be >= 0")
        need(0 <= self.buffer < 1, "buffer", "must be in [0, 1)")
        need(0 <= self.rebalance_band < 1, "rebalance_band", "must be in [0, 1)")
        need(self.checks_per_step >= 1, "checks_per_step", "must be >= 1")
        need(self.horizon >= 1, "horizon", "must be >= 1 (grid rows)")
        fr = (self.agents_fraction, self.meta_fraction, self.calibration_fraction)
        need(all(f > 0 for f in fr) and sum(fr) < 0.9, "agents_fraction",
             "agents_fraction, meta_fraction and calibration_fraction must be > 0 and leave >= 10% to trade")
        need(self.top_k >= 1, "top_k", "must be >= 1")
        need(math.isfinite(self.penalty) and self.penalty >= 0, "penalty", "must be >= 0")
        need(self.corr_window >= 20, "corr_window", "must be >= 20 bars (CVaR_95 needs 20 returns)")
        need(math.isfinite(self.min_edge_bp) and self.min_edge_bp >= 0, "min_edge_bp", "must be >= 0")
        need(0 <= self.full_confidence <= 1, "full_confidence", "must be in [0, 1]")
        need(len(self.actions) >= 2 and all(0 <= a <= 1 for a in self.actions), "actions",
             "needs at least two scales in [0, 1]")
        need(0 <= self.epsilon <= 1, "epsilon", "must be in [0, 1]")
        need(0 <= self.alternative_action < len(self.actions), "alternative_action", "must index into actions")
        need(self.max_train_rows >= 100, "max_train_rows", "must be >= 100")
        need(math.isfinite(self.window_s) and self.window_s >= 0, "window_s", "must be >= 0")
        need(self.ope_memory >= 0, "ope_memory", "must be >= 0 (grid steps)")
        need(0 < self.rl_train_fraction < 1, "rl_train_fraction", "must be in (0, 1)")
        need(0 < self.rl_epsilon <= 1, "rl_epsilon", "must be in (0, 1] (a greedy logger has no propensities)")

    @classmethod
    def from_toml(cls, text: str | bytes) -> PortfolioConfig:
        """A config from TOML text; InputError names the field for an unknown or invalid one."""
        try:
            return msgspec.toml.decode(text, type=cls)
        except msgspec.ValidationError as exc:
            raise InputError("config", str(exc)) from None
        except msgspec.DecodeError as exc:
            raise InputError("config", f"not valid TOML: {exc}") from None

    @property
    def grid_ns(self) -> int:
        return int(round(self.grid_s * 1e9))

    def sizing_limits(self) -> SizingLimits:
        """The full hard limits (the preset's when `preset` is set)."""
        return preset_500_eur()[0] if self.preset == "500eur" else self.limits

    def buffered_limits(self) -> SizingLimits:
        """The limits targets are sized against: every exposure limit times (1 - buffer)."""
        full = self.sizing_limits()
        return msgspec.structs.replace(full, **{k: getattr(full, k) * (1.0 - self.buffer) for k in BUFFERED})


# ------------------------------------------------------------------------------------------------
# Signals


@dataclass
class Signals:
    """Fitted agents and meta-weighter with their outputs on every feature row, and the time split."""

    features: Any
    agents: list
    outputs: list                  # AgentOutput per agent, every row (per_decision: the rows before the trading slice)
    meta: Any                      # MetaWeighter (fitted and calibrated)
    split_ns: tuple[int, int, int]  # starts of the meta, calibration and trading slices
    rows: dict[str, int]           # training rows per slice
    # the core step evaluates the agents on each decision's feature rows (agent_eval "core", step
    # "core", every agent a built-in): outputs stop at the trading slice
    per_decision: bool = False
    # per_decision: rows x agents, the classifier P(up) of a direction agent whose classifier the
    # core does not evaluate (not logistic: computed here on every row), NaN elsewhere
    model_output: Any = None

    def rows_of(self, instrument: int) -> np.ndarray:
        """Indices of the instrument's feature rows (time order)."""
        return np.flatnonzero(np.asarray(self.features.instruments) == instrument)


def evaluate_agents(agents: list, features, how: str = "core") -> list:
    """Every agent's AgentOutput on every feature row: built-in agents in the core (SignalAgent,
    how="core" or "upfront") or by their Python `predict` (how="python", the reference); any other
    agent (a user agent, bot4.portfolio.user_agents) through its own `predict`, checked."""
    from bot4.portfolio.agents import QuantileAgent, has_core_twin, predict_core
    from bot4.portfolio.user_agents import checked_output

    if how not in ("core", "upfront", "python"):
        raise InputError("agent_eval", f"must be 'core', 'upfront' or 'python', got {how!r}")
    out = []
    for a in agents:
        if how != "python" and isinstance(a, QuantileAgent) and has_core_twin(a):
            out.append(predict_core(a, features))
        elif isinstance(a, QuantileAgent):
            out.append(a.predict(features))
        else:
            out.append(checked_output(a, a.predict(features), features))
    return out


def fit_signals(features, config: PortfolioConfig, user_agents=()) -> Signals:
    """Fit the agents (the built-in four, then `user_agents`: objects of the
    bot4.portfolio.user_agents.UserAgent protocol), the meta-weighter and its calibration on the
    training slices (module text)."""
    from bot4.portfolio.agents import default_agents, forward_returns, has_core_twin, label_end_times
    from bot4.portfolio.user_agents import check_user_agent
    from bot4.portfolio.meta import MetaWeighter

    ts = np.asarray(features.timestamps, dtype=np.int64)
    if ts.size == 0:
        raise InputError("data", "the recording gave no feature rows (too short for one grid step?)")
    t0, t1 = int(ts.min()), int(ts.max())
    span = t1 - t0
    ta = t0 + int(span * config.agents_fraction)
    tm = ta + int(span * config.meta_fraction)
    tc = tm + int(span * config.calibration_fraction)
    r, end = forward_returns(features, config.horizon)
    t_end = label_end_times(features, end)
    ok = np.isfinite(r)
    rows_a = np.flatnonzero(ok & (t_end < ta))
    rows_m = np.flatnonzero(ok & (ts >= ta) & (t_end < tm))
    rows_c = np.flatnonzero(ok & (ts >= tm) & (t_end < tc))
    for name, rows in (("agents", rows_a), ("meta", rows_m), ("calibration", rows_c)):
        if rows.size < 100:
            raise InputError("data", f"only {rows.size} labelled rows in the {name} slice",
                             "use a longer recording, a smaller grid_s or horizon, or larger fractions")
    agents: list = default_agents(config.horizon)
    for a in agents:
        if hasattr(a, "quantiles"):
            a.quantiles.max_rows = config.max_train_rows
        a.fit(features, rows_a)
    for u in user_agents:
        check_user_agent(u, [a.name for a in agents])
        u.fit(features, rows_a)
        agents.append(u)
    per_decision = config.agent_eval == "core" and config.step == "core" and all(map(has_core_twin, agents))
    model_output = None
    if per_decision:
        # the trading rows are evaluated by the core step at each decision; here only the rows
        # the meta-weighter is fitted and calibrated on (all before the trading slice)
        m = int(np.searchsorted(ts, tc, side="left")) if np.all(ts[1:] >= ts[:-1]) else ts.size
        evaluated = _rows_prefix(features, m)
        mo = [a.model_output(features) for a in agents]
        if any(v is not None for v in mo):
            model_output = np.column_stack([np.full(ts.size, np.nan) if v is None else v for v in mo])
    else:
        evaluated = features
    outputs = evaluate_agents(agents, evaluated, config.agent_eval)
    meta = MetaWeighter(backend=config.meta_backend, max_rows=config.max_train_rows,
                        min_regime_rows=max(500, rows_m.size // 10))
    n_eval = len(evaluated.timestamps)
    meta.fit(outputs, r[:n_eval], rows_m).calibrate(outputs, r[:n_eval], rows_c)
    return Signals(features, agents, outputs, meta, (ta, tm, tc),
                   {"agents": int(rows_a.size), "meta": int(rows_m.size), "calibration": int(rows_c.size)},
                   per_decision, model_output)


def _rows_prefix(features, m: int):
    """The FeatureSet of the first `m` rows of `features`."""
    from bot4.features.engine import FeatureSet

    if m == len(features.timestamps):
        return features
    return FeatureSet(timestamps=np.asarray(features.timestamps)[:m], matrix=features.matrix[:m],
                      names=list(features.names), valid=features.valid[:m],
                      instruments=np.asarray(features.instruments)[:m], counters=features.counters)


def _rows_subset(outputs: list, idx: np.ndarray) -> list:
    """The agents' outputs restricted to rows `idx` (for blending the latest rows at a step)."""
    return [replace(o, timestamps=o.timestamps[idx], instruments=o.instruments[idx], mu=o.mu[idx],
                    sigma=o.sigma[idx], quantiles=o.quantiles[idx], confidence=o.confidence[idx],
                    regime=o.regime[idx]) for o in outputs]


# ------------------------------------------------------------------------------------------------
# The coordinator (one per backtest run; the lanes share it)


@dataclass
class Round:
    """One logged decision: the instrument, the step, context, action and its propensity."""

    step: int
    lane: int
    context: tuple[float, float, float, float]    # mu (bp), sigma (bp), p, score
    action: int
    propensity: float
    greedy: int
    reward: float = float("nan")                  # the lane's P&L change until the next step


@dataclass
class Lanes:
    """Static description of the instruments (one lane each), in engine id order."""

    ids: list[int]
    symbols: list[str]
    lot_size: np.ndarray          # venue units per engine lot
    tick_size: np.ndarray
    rules: list[OrderRules]
    groups: np.ndarray            # integer group id per lane
    group_names: list[str]
    allow_short: np.ndarray
    inverse: np.ndarray | None = None         # bool per lane: coin-margined (notional = lots x lot x face value)
    contract_size: np.ndarray | None = None   # face value per contract (quote units), inverse lanes

    def unit_value(self, px: np.ndarray) -> np.ndarray:
        """Quote units per venue unit of quantity at prices `px` (inverse: the face value)."""
        if self.inverse is None or not self.inverse.any() or self.contract_size is None:
            return px
        return np.where(self.inverse, self.contract_size, px)

    @property
    def n(self) -> int:
        return len(self.ids)


def lanes_for(specs: dict, config: PortfolioConfig) -> Lanes:
    """Lanes from the data's instrument specs; venue rules from the preset (by symbol@venue) or
    from the spec (lot = the instrument's lot, minimum notional = config.min_notional)."""
    preset = preset_500_eur()[1] if config.preset == "500eur" else {}
    ids = sorted(int(i) for i in specs)
    rules, symbols = [], []
    for i in ids:
        s = specs[i]
        inverse = bool(getattr(s, "inverse", False))
        face = float(getattr(s, "contract_size", 1)) if inverse else 1.0
        key = f"{s.symbol}@{s.venue}"
        if not inverse and float(getattr(s, "contract_size", 1)) != 1.0:
            # the lanes' notionals, the sizer and the cost model take a linear lane's quantity in
            # the base asset; a multiplier (CME ES: 50) is not carried through them yet
            raise InputError("data", f"{key}: a linear contract with a multiplier (contract_size "
                             f"{s.contract_size}) is not supported by the portfolio job")
        lot = float(s.lot_size)
        base = "".join(ch for ch in str(s.symbol).upper().split("USD")[0]) or str(s.symbol)
        r = preset.get(key)
        if r is None:
            r = OrderRules(key, base, lot_step=lot, min_qty=lot, min_notional=config.min_notional,
                           allow_short="spot" not in str(s.venue), inverse=inverse, contract_size=face)
        elif r.inverse != inverse or (inverse and abs(r.contract_size - face) > 1e-9 * face):
            raise InputError("preset", f"{key}: preset rules (inverse={r.inverse}, contract_size={r.contract_size}) "
                             f"differ from the recording's spec (inverse={inverse}, contract_size={face})")
        elif abs(r.lot_step / lot - round(r.lot_step / lot)) > 1e-9:
            raise InputError("preset", f"{key}: lot step {r.lot_step} is not a multiple of the recording's lot {lot}")
        rules.append(r)
        symbols.append(key)
    names = sorted({r.group for r in rules})
    return Lanes(ids, symbols, np.array([float(specs[i].lot_size) for i in ids]),
                 np.array([float(specs[i].tick_size) for i in ids]), rules,
                 np.array([names.index(r.group) for r in rules]), names, np.array([r.allow_short for r in rules]),
                 np.array([r.inverse for r in rules], bool), np.array([r.contract_size for r in rules], np.float64))


@dataclass
class StepLog:
    """Per grid step: exposures (held, at the step), caps, risk-budget use and correlations."""

    ts: list = field(default_factory=list)
    equity: list = field(default_factory=list)
    exposure: list = field(default_factory=list)       # per lane, account currency
    gross: list = field(default_factory=list)
    net: list = field(default_factory=list)
    max_group: list = field(default_factory=list)
    caps: list = field(default_factory=list)           # (max_position, max_group, gross, net) at the step's equity
    risk_used: list = field(default_factory=list)      # sum |a_i| u_i / (risk_per_trade * equity * top_k)
    corr_topk: list = field(default_factory=list)
    corr_div: list = field(default_factory=list)
    step: list = field(default_factory=list)           # step index of each entry
    multiplier: list = field(default_factory=list)     # the sizer's multiplier (1 for the fixed sizer)
    binding: list = field(default_factory=list)        # limits the projection changed the proposal for


@dataclass
class SizerDecision:
    """One logged decision of the sizer (sizer = "rl"): the state, the fixed sizer's proposal as a
    fraction of equity, the multiplier index and its propensity; closed at the next step with the
    portfolio's P&L change over the equity (reward) and each lane's mid return (returns)."""

    step: int
    ts: int
    features: np.ndarray
    base: np.ndarray
    action: int
    propensity: float
    equity: float
    peak: float
    pnl: float
    mid: np.ndarray
    scenarios: np.ndarray | None
    reward: float = float("nan")
    returns: np.ndarray | None = None


#: state columns of the RL sizer's decisions
SIZER_FEATURES = ("score_max", "confidence", "vol_bp", "drawdown", "gross")


class Coordinator:
    """Shared state of the lanes: computes each grid step's targets once, sequences the legs and
    counts breaches on the positions held (module text, steps 3-8).

    `plan(ts)` is the portfolio step (decision -> targets); `on_lane(ctx)` is what each lane calls
    at its decisions; `on_fill(fill)` keeps positions current between decisions."""

    def __init__(self, lanes: Lanes, config: PortfolioConfig, signals: Signals | None, bars: np.ndarray,
                 bar_ends: np.ndarray, trade_start_ns: int, *, fixed_action: int | None = None,
                 latest: Any = None, split_step: int | None = None, rl_policy: Any = None, rl_learn: bool = True):
        self.lanes, self.cfg = lanes, config
        self.full = config.sizing_limits()
        self.buffered = config.buffered_limits()
        self.fx = config.quote_to_account
        self.signals = signals
        self.fixed_action = fixed_action
        self.rng = np.random.default_rng(config.seed)
        self.trade_start = int(trade_start_ns)
        self.grid = config.grid_ns
        n = lanes.n
        self.index = {i: k for k, i in enumerate(lanes.ids)}
        self.pos = np.zeros(n, np.int64)          # engine lots held
        self.mid = np.full(n, np.nan)             # price (quote per unit)
        self.pnl = np.zeros(n)                    # account currency
        self.peak = config.equity
        self.step = -1
        self.target = np.zeros(n, np.int64)
        self.has_plan = False
        self.bar_ends = np.asarray(bar_ends, np.int64)
        with np.errstate(divide="ignore", invalid="ignore"):
            self.rets = np.diff(np.log(bars), axis=0) if len(bars) > 1 else np.zeros((0, n))
        self.latest = latest if latest is not None else self._latest_rows()
        self._latest_lists: list | None = None
        self.rounds: list[Round] = []
        self.open_rounds: list[Round] = []
        self.pnl_at_step = np.zeros(n)
        self.breaches = dict.fromkeys(LIMIT_NAMES, 0)
        self.checks = 0
        self.projections = 0
        self.projected = dict.fromkeys(LIMIT_NAMES, 0)
        self.counters = {"skipped_min_qty": 0, "skipped_min_notional": 0} | {f"vetoed_{k}": 0 for k in LIMIT_NAMES}
        self.held_back = 0
        self.no_risk_estimate = 0
        self.not_probability = 0                  # lanes whose p was finite but outside [0, 1] (no view)
        self.within_band = 0
        self.steps = 0
        self.max_exposure = np.zeros(n)
        self.log = StepLog()
        self.step_ns: list[int] = []             # wall ns of plan() per step (decision -> targets)
        self.arrival: list[tuple[int, int, float]] = []   # (ts, lane, mid) at each leg sent
        self.position_mismatch = 0
        self.released: dict[int, int] = {}
        self._scen: np.ndarray | None = None
        # the sizer (module text, step 9); split_step also marks the held-out steps of a fixed run
        from bot4.portfolio.rl_sizer import MULTIPLIERS, SAFETY_COUNTERS

        self.split_step = split_step
        self.split_ns = None if split_step is None else self.trade_start + int(split_step) * self.grid
        self.rl_mode = config.sizer == "rl"
        if self.rl_mode and split_step is None:
            raise InputError("split_step", "sizer 'rl' needs the step at which the RL sizer is trained")
        self.multipliers = MULTIPLIERS
        self.rl_policy = rl_policy
        self.rl_learn = rl_learn and rl_policy is None
        self.rl_rng = np.random.default_rng([config.seed, 1])   # its own stream: the lanes' draws stay as in a fixed run
        self.rl_decisions: list[SizerDecision] = []
        self.rl_open: SizerDecision | None = None
        self.rl_counters = dict.fromkeys(SAFETY_COUNTERS, 0) | {"steps_without_policy": 0}
        self.rl_train: Any = None
        self.rl_error: str | None = None
        self.now = 0
        self.breaches_held_out = dict.fromkeys(LIMIT_NAMES, 0)
        # the step in the core (config.step == "core"): loaded once, one call per decision
        self.core: Any = None
        self.per_decision = False
        if signals is not None and signals.per_decision and config.step != "core":
            raise InputError("step", "these signals were fitted for the core step (agent_eval 'core': the trading "
                             "rows are evaluated per decision in the core)", suggest={"agent_eval": "upfront"})
        if config.step == "core" and signals is not None:
            from bot4.portfolio.core_step import build_core_step

            self.core = build_core_step(lanes, config, signals, bars, bar_ends, self.latest, self.rng,
                                        fixed_action=fixed_action)
            # the agents run inside the core step on each decision's latest feature rows
            self.per_decision = bool(signals.per_decision)
            if self.per_decision:
                self._rows = np.ascontiguousarray(signals.features.matrix, np.float64)
                na = len(signals.agents)
                mo = signals.model_output
                # the classifier P(up) computed in Python (none: NaN for every lane and agent)
                self._model_output = None if mo is None else np.ascontiguousarray(mo, np.float64)
                self._mo_nan = np.full((n, na), np.nan)

    # -- signals --------------------------------------------------------------------------------
    def _latest_rows(self):
        """Per lane: the feature-row timestamps and row indices (for the latest row at a time)."""
        out = []
        for i in self.lanes.ids:
            rows = self.signals.rows_of(i) if self.signals is not None else np.zeros(0, np.int64)
            ts = np.asarray(self.signals.features.timestamps, np.int64)[rows] if self.signals is not None else rows
            out.append((ts, rows))
        return out

    def latest_index(self, ts: int) -> np.ndarray:
        """Per lane the index of its latest feature row at or before `ts` (-1: none within two grid
        steps)."""
        return np.array(self._latest_list(ts), np.int64)

    def _latest_list(self, ts: int) -> list[int]:
        # bisect on Python lists (made once): a tenth of np.searchsorted's per-call cost
        if self._latest_lists is None:
            self._latest_lists = [(np.asarray(t, np.int64).tolist(), np.asarray(r, np.int64).tolist())
                                  for t, r in self.latest]
        out = []
        two = 2 * self.grid
        for rts, rows in self._latest_lists:
            j = bisect.bisect_right(rts, ts) - 1
            out.append(rows[j] if j >= 0 and ts - rts[j] <= two else -1)
        return out

    def blended(self, ts: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(mu, sigma, p) per lane from each lane's latest feature row at or before `ts` (NaN where
        the lane has none within two grid steps)."""
        n = self.lanes.n
        idx = self.latest_index(ts)
        mu, sigma, p = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
        have = idx >= 0
        if have.any() and self.signals is not None:
            m = self.signals.meta.predict(_rows_subset(self.signals.outputs, idx[have]))
            mu[have], sigma[have], p[have] = m.mu, m.sigma, m.p
        return mu, sigma, p

    # -- state ----------------------------------------------------------------------------------
    def equity(self) -> float:
        """Account equity: the starting equity plus every lane's P&L (account currency)."""
        return self.cfg.equity + float(self.pnl.sum())

    def notional(self, lots: np.ndarray) -> np.ndarray:
        """Signed notionals (account currency) of engine lots per lane at the latest mids (inverse
        lanes: lots x lot x face value)."""
        px = self.lanes.unit_value(np.where(np.isfinite(self.mid), self.mid, 0.0))
        return np.asarray(lots, np.float64) * self.lanes.lot_size * px * self.fx

    def state(self, scenarios: np.ndarray | None = None) -> PortfolioState:
        """The PortfolioState of the positions held (updates the peak equity)."""
        eq = self.equity()
        self.peak = max(self.peak, eq)
        return PortfolioState(eq, self.peak, self.notional(self.pos), self.lanes.groups, self.lanes.allow_short,
                              scenarios)

    def check(self) -> None:
        """Count limit breaches of the positions held against the full limits (in the core with the
        core step: sizing.violations_core)."""
        st = self.state(self._scen)
        v = violations_core(st.positions, st, self.full) if self.core is not None else violations(st.positions, st,
                                                                                                   self.full)
        self.checks += 1
        held_out = self.split_ns is not None and self.now >= self.split_ns
        for k, x in v.items():
            if x > 0:
                self.breaches[k] += 1
                if held_out:
                    self.breaches_held_out[k] += 1
        self.max_exposure = np.maximum(self.max_exposure, np.abs(st.positions))

    # -- the portfolio step ---------------------------------------------------------------------
    def _window(self, ts: int) -> np.ndarray:
        b = int(np.searchsorted(self.bar_ends, ts, side="right"))     # bars ended at or before ts
        w = self.rets[max(0, b - 1 - self.cfg.corr_window):max(0, b - 1)]
        return w[np.isfinite(w).all(axis=1)] if len(w) else w

    def plan(self, ts: int) -> np.ndarray:
        """The portfolio step at `ts`: targets (engine lots per lane) from the lanes' latest state
        (in the core unless config.step is "python"; the Python step below is the reference)."""
        if self.core is not None:
            return self._plan_core(ts)
        return self._plan_python(ts)

    def _plan_core(self, ts: int) -> np.ndarray:
        """plan() through bot4._core.portfolio.PortfolioStep (same targets, rounds, counters and
        logs as _plan_python). With per_decision the core step evaluates the agents on each lane's
        latest feature row (step_features); otherwise it reads the outputs loaded before the run. An
        instance-level `blended` (a test's or a study's views) is fed to the core's step_views
        instead."""
        t_start = time.perf_counter_ns()
        core = self.core
        core.project = not self.rl_mode
        if "blended" in self.__dict__:
            mu_, sigma_, p_ = self.blended(ts)
            r = core.step_views(ts, mu_, sigma_, p_, self.pos, self.mid, self.pnl, self.peak)
        elif self.per_decision:
            idx = self._latest_list(ts)
            safe = [max(i, 0) for i in idx]
            mo = self._mo_nan if self._model_output is None else self._model_output[safe]
            r = core.step_features(ts, self._rows[safe], mo, np.array([i >= 0 for i in idx], np.uint8),
                                   self.pos, self.mid, self.pnl, self.peak)
        else:
            r = core.step(ts, self.pos, self.mid, self.pnl, self.peak)
        mu, sigma, p, score, unit = r.mu, r.sigma, r.p, r.score, r.unit
        scen = r.scenarios
        self._scen = scen
        self.peak = r.peak
        self.no_risk_estimate += int(r.no_risk)
        self.not_probability += int(r.not_probability)
        if r.has_corr:
            self.log.corr_topk.append(r.corr_topk)
            self.log.corr_div.append(r.corr_div)
        chosen = r.chosen
        for k, a, prop, g in zip(chosen, r.action, r.propensity, r.greedy):
            self.open_rounds.append(Round(self.steps, k, (float(mu[k]), float(sigma[k]), float(p[k]), float(score[k])),
                                          int(a), float(prop), int(g)))
        positions = r.positions
        if self.rl_mode:
            st = PortfolioState(r.equity, r.peak, positions, self.lanes.groups, self.lanes.allow_short, scen)
            # the safety layer in the core (RiskBudgetSizer::safe_exposure, rl_sizer.safe_exposure's twin)
            raw = self._rl_multiplier(ts, r.want, st, score, p, chosen, r.window, scen)
            r = core.finish_safe(_as_float(raw), float(self.multipliers[-1]))
            safe = r.safe
            for key, v in safe["counters"].items():
                self.rl_counters[key] += v
            mult, binding = float(safe["multiplier"]), tuple(safe["binding"])
        else:
            mult, binding = 1.0, r.binding
        if binding:
            self.projections += 1
            for name in binding:
                self.projected[name] += 1
        for key, v in r.counters.items():
            self.counters[key] += v
        self.within_band += int(r.within_band)
        self.target = r.target
        self.has_plan = True
        self.steps += 1
        self.step_ns.append(time.perf_counter_ns() - t_start)
        self._log_step(ts, mult, binding, r.equity, positions, unit)
        return self.target

    def _plan_python(self, ts: int) -> np.ndarray:
        """The Python portfolio step (the reference of the core's)."""
        from bot4.portfolio.ope import epsilon_greedy
        from bot4.portfolio.risk_measures import conservative_cvar
        from bot4.portfolio.selection import greedy_penalty, mean_pairwise, rolling_correlation, top_k

        t_start = time.perf_counter_ns()
        cfg, n = self.cfg, self.lanes.n
        mu, sigma, p = self.blended(ts)
        w = self._window(ts)
        h = math.sqrt(cfg.horizon)
        unit = np.full(n, np.nan)
        if len(w) >= 20:
            for k in range(n):
                unit[k] = conservative_cvar(w[:, k], self.full.cvar_level) * h
        scen = w * h if (cfg.scenarios and len(w) >= 20) else None
        self._scen = scen
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            view = np.isfinite(mu) & np.isfinite(sigma) & (sigma > 0) & np.isfinite(p) & np.isfinite(self.mid)
            # a p outside [0, 1] is no probability (|2p - 1| overflowed on p ~ 1e308): no view, counted
            not_prob = np.isfinite(p) & ((p < 0) | (p > 1))
            self.not_probability += int(not_prob.sum())
            view &= ~not_prob
            view &= np.abs(mu) >= max(cfg.min_edge_bp, 1e-12)
            # the core's margins (portfolio_step.hpp): a lean toward mu's sign, a sigma above rounding residue
            view &= ((p - 0.5) * np.sign(mu) > MIN_CONVICTION) & (sigma > MIN_RELATIVE_SIGMA * np.abs(mu))
            view &= self.lanes.allow_short | (mu > 0)      # a short view on a long-only lane is no candidate
            score = np.where(view, np.abs(mu) / np.where(view, sigma, 1.0), 0.0)
        no_risk = view & ~np.isfinite(unit)
        self.no_risk_estimate += int(no_risk.sum())
        view &= ~no_risk
        score = np.where(np.isfinite(score), score, 0.0)
        cand = np.flatnonzero(view)
        chosen: list[int] = []
        if cand.size:
            corr = (rolling_correlation(w[:, cand], len(w), len(w)).matrix if len(w) >= 3
                    else np.eye(cand.size))
            plain = [int(cand[j]) for j in top_k(score[cand], cfg.top_k)]
            div = [int(cand[j]) for j in greedy_penalty(score[cand], corr, cfg.top_k, cfg.penalty).indices]
            chosen = div
            if len(plain) >= 2:
                full_corr = np.eye(n)
                full_corr[np.ix_(cand, cand)] = corr
                self.log.corr_topk.append(mean_pairwise(full_corr, plain))
                self.log.corr_div.append(mean_pairwise(full_corr, div))
        # actions and their propensities (one round per chosen lane)
        scale = np.zeros(n)
        K = len(cfg.actions)
        for k in chosen:
            conf = abs(2.0 * p[k] - 1.0)
            g = K - 1 if conf >= cfg.full_confidence else (K - 1) // 2
            if self.fixed_action is not None:
                a, prop = self.fixed_action, 1.0
            else:
                pi = epsilon_greedy(np.array([g]), K, cfg.epsilon)[0]
                a = min(int(np.searchsorted(np.cumsum(pi), self.rng.random(), side="right")), K - 1)
                prop = float(pi[a])
            scale[k] = cfg.actions[a]
            self.open_rounds.append(Round(self.steps, k, (float(mu[k]), float(sigma[k]), float(p[k]), float(score[k])),
                                          int(a), prop, int(g)))
        st = self.state(scen)
        direction = np.where(scale > 0, np.sign(np.nan_to_num(mu)), 0.0)
        want = risk_budget_notional(direction, np.where(np.isfinite(unit), unit, 1.0), st.equity, self.buffered,
                                    scale=scale)
        if self.rl_mode:
            mult, proj = self._rl_size(ts, want, st, score, p, chosen, w, scen)
        else:
            mult, proj = 1.0, project_report(want, st, self.buffered)
        if proj.changed:
            self.projections += 1
            for name in proj.binding:
                self.projected[name] += 1
        px = np.where(np.isfinite(self.mid), self.mid, 1.0)
        qty = self.pos * self.lanes.lot_size
        tradable = np.isfinite(self.mid)
        targets = np.where(tradable, proj.action, st.positions)
        orders, _, counters = plan_orders(targets, qty, px, self.fx, self.lanes.rules, st, self.buffered)
        for key, v in counters.items():
            self.counters[key] += v
        target = self.pos + np.round(orders / self.lanes.lot_size).astype(np.int64)
        # no-trade band: a same-sign resize smaller than the band keeps the position (fees), when
        # what is kept is still within the buffered limits
        band = cfg.rebalance_band * self.buffered.max_position * st.equity
        new_n, old_n = self.notional(target), st.positions
        keep = (target != self.pos) & (target * self.pos > 0) & (np.abs(new_n - old_n) < band)
        if keep.any():
            trial = np.where(keep, self.pos, target)
            if not any(v > 0 for v in violations(self.notional(trial), st, self.buffered).values()):
                target = trial
                self.within_band += int(keep.sum())
        self.target = target
        self.has_plan = True
        self.steps += 1
        self.step_ns.append(time.perf_counter_ns() - t_start)
        self._log_step(ts, mult, tuple(proj.binding), st.equity, st.positions, unit)
        return self.target

    def _log_step(self, ts: int, mult: float, binding: tuple, equity: float, positions: np.ndarray,
                  unit: np.ndarray) -> None:
        cap = lambda x: x * equity  # noqa: E731
        self.log.ts.append(ts)
        self.log.step.append(self.step)
        self.log.multiplier.append(mult)
        self.log.binding.append(tuple(binding))
        self.log.equity.append(equity)
        self.log.exposure.append(positions.copy())
        self.log.gross.append(float(np.abs(positions).sum()))
        self.log.net.append(float(positions.sum()))
        self.log.max_group.append(max(float(np.abs(positions[self.lanes.groups == g]).sum())
                                      for g in np.unique(self.lanes.groups)))
        self.log.caps.append((cap(self.full.max_position), cap(self.full.max_group_gross), cap(self.full.max_gross),
                              cap(self.full.max_net)))
        u = np.where(np.isfinite(unit), unit, 0.0)
        budget = self.full.risk_per_trade * equity * self.cfg.top_k
        self.log.risk_used.append(float(np.sum(np.abs(positions) * u) / budget) if budget > 0 else float("nan"))

    # -- the RL sizer ---------------------------------------------------------------------------
    def _rl_features(self, st: PortfolioState, score, p, chosen: list[int], w: np.ndarray,
                     base: np.ndarray) -> np.ndarray:
        """The sizer's state (SIZER_FEATURES), finite by construction."""
        conf = [abs(2.0 * float(p[k]) - 1.0) for k in chosen]
        vol = float(np.mean(np.std(w, axis=0))) * 1e4 if len(w) >= 2 else 0.0
        x = np.array([max((float(score[k]) for k in chosen), default=0.0), float(np.mean(conf)) if conf else 0.0,
                      vol, st.drawdown, float(np.abs(base).sum())])
        return np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)

    def _rl_size(self, ts: int, want: np.ndarray, st: PortfolioState, score, p, chosen: list[int], w: np.ndarray,
                 scen: np.ndarray | None):
        """(multiplier, projection) of the step (the Python step): _rl_multiplier through
        rl_sizer.safe_exposure."""
        from bot4.portfolio.rl_sizer import safe_exposure

        mult = self._rl_multiplier(ts, want, st, score, p, chosen, w, scen)
        base = want / st.equity if st.equity > 0 else np.zeros_like(want)
        sa = safe_exposure(mult, base, st, self.buffered, self.rl_counters, max_multiplier=float(self.multipliers[-1]))
        return sa.multiplier, sa.projection

    def _rl_multiplier(self, ts: int, want: np.ndarray, st: PortfolioState, score, p, chosen: list[int],
                       w: np.ndarray, scen: np.ndarray | None):
        """The policy's multiplier of the step, as emitted (the safety layer sanitises it):
        explored and logged before the split, the learned policy's after it."""
        from bot4.portfolio.ope import epsilon_greedy

        m = np.asarray(self.multipliers)
        eq = st.equity
        base = want / eq if eq > 0 else np.zeros_like(want)
        x = self._rl_features(st, score, p, chosen, w, base)
        if self.split_step is not None and self.step < self.split_step:
            pi = epsilon_greedy(np.array([int(np.flatnonzero(m == 1.0)[0])]), len(m), self.cfg.rl_epsilon)[0]
            a = min(int(np.searchsorted(np.cumsum(pi), self.rl_rng.random(), side="right")), len(m) - 1)
            mult = float(m[a])
            self.rl_open = SizerDecision(self.step, ts, x, base.copy(), a, float(pi[a]), eq, st.peak_equity,
                                         float(self.pnl.sum()), self.mid.copy(), None if scen is None else scen.copy())
        else:
            if self.rl_learn and self.rl_policy is None and self.rl_error is None:
                self._rl_fit()
            if self.rl_policy is None:
                self.rl_counters["steps_without_policy"] += 1
                mult = 1.0
            else:
                mult = self.rl_policy.multiplier(x)     # NaN is sanitised (and counted) by the safety layer
        return mult

    def _rl_close(self) -> None:
        d = self.rl_open
        if d is None:
            return
        d.reward = (float(self.pnl.sum()) - d.pnl) / d.equity
        with np.errstate(invalid="ignore", divide="ignore"):
            r = self.mid / d.mid - 1.0
        d.returns = np.where(np.isfinite(r), r, 0.0)
        self.rl_decisions.append(d)
        self.rl_open = None

    def logged_decisions(self):
        """The closed decisions before the split as rl_sizer.LoggedDecisions (InputError when there
        are too few)."""
        from bot4.portfolio.rl_sizer import LoggedDecisions

        ds = [d for d in self.rl_decisions if d.step < self.split_step and math.isfinite(d.reward)]
        if len(ds) < 2:
            raise InputError("rl_train_fraction", f"only {len(ds)} logged sizer decisions before the split")
        scen = None
        if all(d.scenarios is not None for d in ds):
            t = min(len(d.scenarios) for d in ds)
            scen = np.stack([d.scenarios[len(d.scenarios) - t:] for d in ds])
        t0 = np.array([d.ts for d in ds], np.int64)
        return LoggedDecisions(np.array([d.features for d in ds]), SIZER_FEATURES, np.array([d.base for d in ds]),
                               np.array([d.returns for d in ds]), np.array([d.action for d in ds]),
                               np.array([d.propensity for d in ds]), np.array([d.reward for d in ds]),
                               np.array([d.equity for d in ds]), np.array([d.peak for d in ds]), t0, t0 + self.grid - 1,
                               self.lanes.groups, self.lanes.allow_short, scen, 0.0, self.multipliers)

    def _rl_fit(self) -> None:
        from bot4.portfolio.rl_sizer import train

        try:
            self.rl_train = train(self.logged_decisions(), self.buffered, self.cfg.rl)
            self.rl_policy = self.rl_train.policy
        except (InputError, ValueError, np.linalg.LinAlgError) as exc:
            self.rl_error = str(exc)     # the fixed sizer sizes the rest (counted steps_without_policy)

    # -- sequencing -----------------------------------------------------------------------------
    def _leg(self, k: int) -> int:
        """The lane's next leg: its target, or 0 first when the target flips the sign."""
        p, t = int(self.pos[k]), int(self.target[k])
        return 0 if p * t < 0 else t

    @staticmethod
    def _reduces(p: int, e: int) -> bool:
        return abs(e) <= abs(p) and p * e >= 0

    def transit_ok(self, legs: dict[int, int]) -> bool:
        """Whether every partly filled combination of `legs` (lane -> end lots, from the held
        positions) stays within the buffered limits (closed-form worst case over the box)."""
        lo = self.pos.astype(np.float64).copy()
        hi = lo.copy()
        for k, e in legs.items():
            lo[k], hi[k] = min(lo[k], e), max(hi[k], e)
        nlo, nhi = self.notional(lo), self.notional(hi)
        big = np.maximum(np.abs(nlo), np.abs(nhi))
        eq = max(0.0, self.equity())
        L = self.buffered
        if np.any(big > L.max_position * eq):
            # the box limit: only what the legs change matters (a position already beyond it may shrink)
            changed = [k for k in legs if big[k] > L.max_position * eq and abs(legs[k]) > abs(self.pos[k])]
            if changed:
                return False
        for g in np.unique(self.lanes.groups):
            m = self.lanes.groups == g
            if big[m].sum() > L.max_group_gross * eq and not self._all_reduce(legs, m):
                return False
        if big.sum() > L.max_gross * eq and not self._all_reduce(legs, None):
            return False
        cap = L.max_net * eq
        now = abs(float(self.notional(self.pos).sum()))
        worst = max(abs(float(nlo.sum())), abs(float(nhi.sum())))
        return worst <= cap or worst <= now      # never worse than the net held now

    def _all_reduce(self, legs: dict[int, int], mask) -> bool:
        return all(self._reduces(int(self.pos[k]), e) for k, e in legs.items() if mask is None or mask[k])

    def in_flight(self, exclude: int) -> dict[int, int]:
        """Released legs not yet reached (lane -> leg end lots)."""
        return {k: e for k, e in self.released.items() if k != exclude and int(self.pos[k]) != e}

    # -- the lane hooks -------------------------------------------------------------------------
    def on_lane(self, ctx) -> None:
        """A lane's decision: update its state, count breaches, plan the step when it is new and
        move the lane toward its target (reductions first, legs released only when safe)."""
        k = self.index[int(ctx.instrument)]
        self.now = max(self.now, int(ctx.ts))
        if int(ctx.position) != int(self.pos[k]):
            self.position_mismatch += 1
        self.pos[k] = int(ctx.position)
        if ctx.two_sided:
            self.mid[k] = float(ctx.mid) * self.lanes.tick_size[k]
        self.pnl[k] = (float(ctx.realised) + float(ctx.unrealised) - float(ctx.fees)) * self.fx
        self.check()
        ts = int(ctx.ts)
        if ts < self.trade_start:
            return
        step = (ts - self.trade_start) // self.grid
        if step != self.step:
            self.step = step
            self._close_rounds()
            self.plan(ts)
            self.released = {}
        if not self.has_plan or ctx.open_orders():
            return
        leg = self._leg(k)
        if int(self.pos[k]) == leg:
            return
        if not self._reduces(int(self.pos[k]), leg):
            pending = [j for j in range(self.lanes.n) if j != k and self._reduces(int(self.pos[j]), self._leg(j))
                       and int(self.pos[j]) != self._leg(j)]
            if pending:
                self.held_back += 1
                return
        legs = self.in_flight(k) | {k: leg}
        if not self.transit_ok(legs):
            self.held_back += 1
            return
        self.released[k] = leg
        self.arrival.append((ts, k, float(self.mid[k])))
        ctx.target(int(leg), "aggressive")

    def on_fill(self, fill) -> None:
        """Keep the held position current between the lane's decisions and count breaches."""
        k = self.index[int(fill.instrument)]
        self.pos[k] += int(fill.qty) if str(fill.side) == "buy" else -int(fill.qty)
        self.check()

    def _close_rounds(self) -> None:
        self._rl_close()
        for r in self.open_rounds:
            r.reward = float(self.pnl[r.lane] - self.pnl_at_step[r.lane])
            self.rounds.append(r)
        self.open_rounds = []
        self.pnl_at_step = self.pnl.copy()


def lane_class(coord: Coordinator) -> type:
    """A bot4.Strategy class whose instances (one per instrument) all report to `coord`."""
    from bot4.strategy import Strategy

    class PortfolioLane(Strategy):
        """One instrument's lane of the portfolio job (targets from the shared coordinator)."""

        coordinator = coord
        # the lanes hold positions between steps on purpose: without this the router flattens a
        # position that no working order protects, and every step would reopen it (fees twice)
        holds_inventory = True

        def on_decision(self, ctx):
            self.coordinator.on_lane(ctx)
            return None

        def on_fill(self, fill) -> None:
            self.coordinator.on_fill(fill)

    return PortfolioLane


# ------------------------------------------------------------------------------------------------
# The job


@dataclass
class RunOutcome:
    """One engine run of the portfolio: the engine's result and its coordinator."""

    result: Any
    coordinator: Coordinator


@dataclass
class PortfolioResult:
    """Everything `bot4 portfolio backtest` reports (as_json) and draws (bot4.portfolio.report)."""

    config: PortfolioConfig
    lanes: Lanes
    signals: Signals
    main: RunOutcome
    alternative: RunOutcome | None
    ope: dict
    seconds: float
    fixed: RunOutcome | None = None     # sizer = "rl": the same run with the fixed sizer (the comparison)
    ope_bandit: dict = field(default_factory=dict)   # the same estimators with memory 0 (bandit rounds)

    def instruments(self) -> list[dict]:
        """Per instrument: pnl, fees (account currency), fills, max_exposure and final position."""
        fx = self.config.quote_to_account
        per = {int(d["instrument"]): d for d in self.main.result.instruments}
        out = []
        for k, i in enumerate(self.lanes.ids):
            d = per[i]
            out.append({"instrument": i, "symbol": self.lanes.symbols[k], "pnl": float(d["pnl"]) * fx,
                        "fees": float(d["fees"]) * fx, "fills": int(d["fills"]),
                        "max_exposure": float(self.main.coordinator.max_exposure[k]),
                        "position_lots": int(d["position"])})
        return out

    @property
    def pnl(self) -> float:
        return float(self.main.result.pnl) * self.config.quote_to_account

    def max_drawdown(self) -> float:
        """Largest fall of the total equity of the main run (account currency)."""
        return total_drawdown(self.main.result, self.config.quote_to_account)

    def sizer_json(self) -> dict:
        """kind; for "rl": the split, the training (decisions, Lagrange multipliers, DR value, or
        the error that left the fixed sizer in place), the safety layer's counters and the held-out
        comparison with the fixed sizer (held_out_metrics of both runs)."""
        c = self.main.coordinator
        if self.config.sizer != "rl":
            return {"kind": "fixed"}
        tr = c.rl_train
        out: dict[str, Any] = {"kind": "rl", "split_step": c.split_step, "split_ns": c.split_ns, "multipliers": list(c.multipliers),
               "logged_decisions": sum(c.split_step is not None and d.step < c.split_step for d in c.rl_decisions),
               "train_error": c.rl_error, "safety_counters": dict(c.rl_counters),
               "lambdas": tr.final_lambdas if tr is not None else None,
               "train_value_dr": tr.value_dr if tr is not None else None,
               "train_ess": tr.ess if tr is not None else None,
               "held_out": {"rl": held_out_metrics(self.main, self.config.quote_to_account)}}
        if self.fixed is not None:
            out["held_out"]["fixed"] = held_out_metrics(self.fixed, self.config.quote_to_account)
            out["fixed_limit_breaches"] = dict(self.fixed.coordinator.breaches)
        return out

    def as_json(self) -> dict:
        """The `--json` figures (account currency; correlations are means over the steps)."""
        c = self.main.coordinator
        cb, ca = np.array(c.log.corr_topk), np.array(c.log.corr_div)
        ok = np.isfinite(cb) & np.isfinite(ca)
        ru = np.array(c.log.risk_used)
        ru = ru[np.isfinite(ru)]
        lat = np.array(c.step_ns, dtype=np.float64)
        alt = None
        if self.alternative is not None:
            ac = self.alternative.coordinator
            rew = np.array([r.reward for r in ac.rounds])
            alt = {"action": self.config.alternative_action, "scale": self.config.actions[self.config.alternative_action],
                   "pnl": float(self.alternative.result.pnl) * self.config.quote_to_account,
                   "rounds": int(rew.size), "value_per_round": float(rew.mean()) if rew.size else None,
                   "limit_breaches": dict(ac.breaches)}
        return _finite({
            "instruments": self.instruments(),
            "pnl": self.pnl,
            "max_drawdown": self.max_drawdown(),
            "limit_breaches": dict(c.breaches),
            "breach_checks": int(c.checks),
            "projections": {"steps": int(c.projections), "by_limit": dict(c.projected)},
            "skipped": {k: v for k, v in c.counters.items() if k.startswith("skipped")},
            "vetoed": {k: v for k, v in c.counters.items() if k.startswith("vetoed")},
            "held_back": int(c.held_back),
            "no_risk_estimate": int(c.no_risk_estimate),
            "within_band": int(c.within_band),
            "position_mismatch": int(c.position_mismatch),
            "risk_budget_used": {"mean": float(ru.mean()) if ru.size else None,
                                 "max": float(ru.max()) if ru.size else None},
            "correlation_before": float(cb[ok].mean()) if ok.any() else None,
            "correlation_after": float(ca[ok].mean()) if ok.any() else None,
            "correlation_steps": int(ok.sum()),
            "steps": int(c.steps),
            "rounds": len(c.rounds),
            "ope": {k: v.as_dict() for k, v in self.ope.items()},
            "ope_memory": self.config.ope_memory,
            "ope_bandit": {k: v.as_dict() for k, v in self.ope_bandit.items()},
            "alternative": alt,
            "sizer": self.sizer_json(),
            "step_latency_ns": ({"p50": float(np.percentile(lat, 50)), "p99": float(np.percentile(lat, 99)),
                                 "p999": float(np.percentile(lat, 99.9))} if lat.size else None),
            "kill_reason": str(self.main.result.kill_reason),
            "split_ns": list(self.signals.split_ns),
            "training_rows": self.signals.rows,
            "agents": [{"agent": o.agent, "model_version": o.model_version, "horizon": int(o.horizon)}
                       for o in self.signals.outputs],
            "seconds": self.seconds,
        })


def held_out_metrics(run: RunOutcome, fx: float = 1.0) -> dict:
    """A run's figures over its held-out steps (from the coordinator's split on): P&L and max
    drawdown of the total equity, CVaR_95 of the per-step P&L (historical, a positive loss; None
    below 20 steps), limit breaches of the positions held, projections that bit (by limit) and the
    mean multiplier; account currency."""
    from bot4.portfolio.risk_measures import historical

    c = run.coordinator
    steps = np.asarray(c.log.step, np.int64)
    keep = steps >= (c.split_step if c.split_step is not None else 0)
    eq = np.asarray(c.log.equity, np.float64)[keep]
    final = c.cfg.equity + float(run.result.pnl) * fx
    path = np.concatenate([eq, [final]]) if eq.size else np.array([final])
    dpnl = np.diff(path)
    peak = np.maximum.accumulate(path)
    binding = [b for b, k in zip(c.log.binding, keep) if k]
    by_limit = {name: sum(name in b for b in binding) for name in LIMIT_NAMES}
    mult = np.asarray(c.log.multiplier, np.float64)[keep]
    return {"steps": int(keep.sum()), "pnl": float(path[-1] - path[0]), "max_drawdown": float(np.max(peak - path)),
            "cvar95_step_pnl": float(historical(dpnl, 0.95).cvar) if dpnl.size >= 20 else None,
            "limit_breaches": dict(c.breaches_held_out),
            "projections": {"steps": int(sum(bool(b) for b in binding)), "by_limit": by_limit},
            "mean_multiplier": float(mult.mean()) if mult.size else None}


def _finite(x):
    """JSON-safe: non-finite floats become None, recursively."""
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def total_drawdown(result, fx: float = 1.0) -> float:
    """Largest peak-to-trough fall of the run's total equity (account currency)."""
    eq = np.asarray(result.equity["total_equity"], np.float64) * fx
    if eq.size == 0:
        return 0.0
    peak = np.maximum.accumulate(np.concatenate([[0.0], eq]))[1:]
    return float(np.max(peak - eq))


def load_recordings(paths) -> Any:
    """Recordings of several venues side by side (e.g. Binance USD-M and spot of one day): the
    files are checked one by one (bot4.sources.check_sources), each venue's files are loaded
    together (bot4.data.load) and the venues merged by receive time."""
    from bot4.data import load
    from bot4.data.market_data import merge
    from bot4.sources import check_sources

    by_venue: dict[str, list] = {}
    for p in paths:
        src = check_sources([p])[0]
        by_venue.setdefault(src.venue, []).append(src.path)
    parts = [load(files) for files in by_venue.values()]
    return parts[0] if len(parts) == 1 else merge(parts)


def common_span(data) -> tuple[int, int] | None:
    """[start, end] (receive ns) in which every instrument of the data has book events: from the
    latest first book event to the earliest last one (None without book events). Recordings
    of different lengths side by side (Binance USD-M ends ~5 min before spot) would otherwise
    leave lanes quoting a stale book after their data ended, and the engine fills them there."""
    book = data.book
    if not len(book):
        return None
    firsts, lasts = [], []
    for i in np.unique(book["instrument"]):
        t = book["ts_local"][book["instrument"] == i]
        firsts.append(int(t.min()))
        lasts.append(int(t.max()))
    return max(firsts), min(lasts)


def _window_data(data, seconds: float, span: tuple[int, int] | None = None):
    if seconds <= 0 and span is None:
        return data
    from bot4.data.market_data import MarketData

    lo, hi = span if span is not None else (None, None)
    first = lo if lo is not None else min([int(a["ts_local"][0]) for a in (data.book, data.trades, data.orders) if len(a)])
    if seconds > 0:
        cut = first + int(seconds * 1e9)
    elif hi is not None:
        cut = hi + 1
    else:
        raise ValueError("a slice needs seconds > 0 or the span's end")
    if hi is not None:
        cut = min(cut, hi + 1)
    if cut <= first:
        raise InputError("data", "the instruments' recordings do not overlap in time",
                         "record them together, or set common_span = false")

    def keep(a):
        # the book before the common start is kept: it builds each instrument's book state
        if not len(a):
            return a
        return a[a["ts_local"] < cut]

    return MarketData(specs=data.specs, book=keep(data.book), orders=keep(data.orders), trades=keep(data.trades),
                      bbo=keep(data.bbo), rejections=data.rejections, sequence_gaps=data.sequence_gaps,
                      sources=data.sources, venue=data.venue, stats=data.stats)


def grid_bars(features, lanes: Lanes, grid_ns: int) -> tuple[np.ndarray, np.ndarray]:
    """(bar_ends, mids): the last mid of each lane at or before every grid bar end."""
    from bot4.portfolio.agents import MID

    ts = np.asarray(features.timestamps, np.int64)
    mid = np.asarray(features.matrix[:, list(features.names).index(MID)], np.float64)
    inst = np.asarray(features.instruments)
    start, end = int(ts.min()) - grid_ns, int(ts.max())
    from bot4.portfolio.selection import mid_bars

    cols = []
    for i in lanes.ids:
        m = inst == i
        cols.append(mid_bars(ts[m], mid[m], grid_ns, start, end))
    ends = np.arange(start + grid_ns, end + 1, grid_ns, dtype=np.int64)
    return ends, np.column_stack(cols)


def _as_float(v) -> float:
    """A policy's output as a float (NaN when it is none: the safety layer rejects and counts it)."""
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _engine_config(config: PortfolioConfig, fc) -> dict:
    # the job's own limits govern; the engine's per-order caps are in ticks x lots, which for a
    # fine lot (spot: 1e-8 BTC) reach the default max_notional at a few hundred USDT and tripped
    # the kill switch on consecutive rejects
    return {"engine": {"equity": config.equity / config.quote_to_account},
            "pre_trade": {"max_position_lots": 2**40, "max_notional": 2**62, "max_open_orders": 1000},
            "kill_switch": {"max_drawdown": 0.99}, "features": fc}


def run_lanes(data, lanes: Lanes, config: PortfolioConfig, signals: Signals, bars, bar_ends, fc,
              fixed_action: int | None = None, *, split_step: int | None = None, rl_policy: Any = None,
              rl_learn: bool = True) -> RunOutcome:
    """One engine run with a fresh coordinator (fixed_action: a deterministic policy; split_step:
    the RL sizer's split, also the held-out part of a fixed run; rl_policy: a trained sizer policy
    to use after the split instead of training one; rl_learn=False: never train one here)."""
    from bot4.backtest import run

    coord = Coordinator(lanes, config, signals, bars, bar_ends, signals.split_ns[2], fixed_action=fixed_action,
                        split_step=split_step, rl_policy=rl_policy, rl_learn=rl_learn)
    res = run(data, None, _engine_config(config, fc), progress=False, strategy=lane_class(coord))
    coord._close_rounds()
    return RunOutcome(res, coord)


def evaluate_alternative(rounds: list[Round], config: PortfolioConfig, seed: int = 0,
                         memory: int | None = None) -> dict:
    """IPS / SNIPS / DR of always taking `config.alternative_action`, from the logged rounds, with
    importance weights over each lane's last `memory` steps (default config.ope_memory; module
    text, step 8)."""
    from bot4.portfolio.ope import estimate_all, fit_reward_model

    memory = config.ope_memory if memory is None else memory
    rounds = [r for r in rounds if math.isfinite(r.reward)]
    if len(rounds) < 10:
        return {}
    K = len(config.actions)
    reward = np.array([r.reward for r in rounds])
    action = np.array([r.action for r in rounds])
    pscore = np.array([r.propensity for r in rounds])
    target = np.zeros((len(rounds), K))
    target[:, config.alternative_action] = 1.0
    x = np.array([r.context for r in rounds])
    q = fit_reward_model(x, action, reward, K, seed=seed) if len(rounds) >= 4 else None
    episode = np.array([r.lane for r in rounds])
    t = np.array([r.step for r in rounds])
    try:
        return estimate_all(reward, action, pscore, target, q, episode=episode, t=t, memory=memory)
    except InputError:
        return {}     # e.g. SNIPS undefined: the logs never took the alternative action


def portfolio_backtest(data, config: PortfolioConfig | None = None, user_agents=()) -> PortfolioResult:
    """Run the portfolio job on `data` (MarketData, a recording path or a list of them; module text);
    `user_agents` (bot4.portfolio.user_agents.UserAgent) are fitted and blended beside the built-in four."""
    from bot4.backtest.engine import _merged
    from bot4.features import compute, trading_config

    t0 = time.perf_counter()
    config = config or PortfolioConfig()
    data = _merged(data)
    span = common_span(data) if config.common_span else None
    data = _window_data(data, config.window_s, span)
    lanes = lanes_for(data.specs, config)
    fc = trading_config(decision="time", decision_interval_ns=config.grid_ns // config.checks_per_step)
    feats = compute(data, fc)
    # the signal rows: one per lane per grid step (the lanes' extra decisions in between reuse them)
    ts = np.asarray(feats.timestamps, np.int64)
    on_grid = ((ts - ts.min()) % config.grid_ns) < (config.grid_ns // config.checks_per_step)
    from bot4.features.engine import FeatureSet

    grid_feats = feats if on_grid.all() else FeatureSet(
        timestamps=ts[on_grid], matrix=feats.matrix[on_grid], names=list(feats.names), valid=feats.valid[on_grid],
        instruments=np.asarray(feats.instruments)[on_grid], counters=feats.counters)
    signals = fit_signals(grid_feats, config, user_agents)
    bar_ends, bars = grid_bars(grid_feats, lanes, config.grid_ns)
    trade_start = signals.split_ns[2]
    n_steps = max(1, (int(ts.max()) - trade_start) // config.grid_ns + 1)
    split_step = max(1, int(n_steps * config.rl_train_fraction))
    main = run_lanes(data, lanes, config, signals, bars, bar_ends, fc, split_step=split_step)
    fixed = None
    if config.sizer == "rl":
        fixed = run_lanes(data, lanes, msgspec.structs.replace(config, sizer="fixed"), signals, bars, bar_ends, fc,
                          split_step=split_step)
    alt = None
    ope = evaluate_alternative(main.coordinator.rounds, config, config.seed)
    bandit = evaluate_alternative(main.coordinator.rounds, config, config.seed, memory=0) if config.ope_memory else ope
    if config.run_alternative:
        alt = run_lanes(data, lanes, config, signals, bars, bar_ends, fc, fixed_action=config.alternative_action,
                        split_step=split_step, rl_policy=main.coordinator.rl_policy, rl_learn=False)
    return PortfolioResult(config, lanes, signals, main, alt, ope, time.perf_counter() - t0, fixed, bandit)


__all__ = ["BUFFERED", "SIZER_FEATURES", "Coordinator", "Lanes", "PortfolioConfig", "PortfolioResult", "Round",
           "RunOutcome", "Signals", "SizerDecision", "StepLog", "evaluate_agents", "evaluate_alternative", "fit_signals", "grid_bars",
           "held_out_metrics", "lane_class", "lanes_for", "load_recordings", "portfolio_backtest", "run_lanes",
           "total_drawdown"]
