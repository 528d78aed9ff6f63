"""A constrained RL sizer: a policy that scales the fixed sizer's sizes, learned offline from
logged decisions (METHODS.md §10 and §16).

The decision. At each logged decision the fixed risk-budget sizer (`sizing.risk_budget_notional`)
proposes a signed exposure vector `base` (a fraction of equity per instrument). The policy picks a
multiplier m from a bounded discrete set (default {0, 0.25, 0.5, 1, 1.5}; m = 1 is the fixed sizer)
and the proposal m * base * equity goes through `sizing.project_report`, the safety projection of
the fixed sizer (there is no second one here), before it is used. Positions are opened at the
decision and closed at the label end (a one-step, contextual-bandit decision), so the reward of a
decision is the executed exposure times the realised forward return minus a round-trip cost,
  r = sum_j e_j R_j - 2 sum_j c_j |e_j|      (e: executed exposure / equity, c: cost per unit traded).
Multipliers a policy emits are sanitised before the projection: NaN is a counted rejection (the
multiplier becomes 0, no new risk), +-inf and values outside [0, max multiplier] are clipped and
counted; non-finite base sizes are rejected per instrument (size 0) and counted. Nothing non-finite
reaches an order.

The objective (METHODS §16, Tessler et al. 2019): maximise
  J(pi) = E_pi[r] - lambda_cvar * CVaR_alpha(L),   L = -r,
subject to E_pi[C_k] <= d_k for
  exposure    gross proposal / equity                    (a mean-exposure budget),
  cvar        CVaR_alpha of the per-decision loss       (a tail budget, fraction of equity),
  projection  1{the safety projection changed the proposal}  (how often the policy leans on it).
CVaR enters through Rockafellar-Uryasev, CVaR_alpha(L) = min_nu nu + E[(L - nu)^+]/(1 - alpha):
for fixed nu it is an expectation of the hinge h = (L - nu)^+, so the CVaR-aware reward is linear
in expectations and every term is estimated the same way; nu is re-set each dual step to the
policy's alpha-quantile of L (self-normalised importance weights), which is the minimiser.
Lagrangian L(theta, lambda) = J/s - sum_k lambda_k (E[C_k]/d_k - 1) (s: the logged reward's standard
deviation, the budgets normalise the constraints so one dual step size fits all); a few Adam steps
on theta, then lambda_k <- max(0, lambda_k + eta (C_k/d_k - 1)) (projected dual ascent, so the
multipliers are never negative).

The off-policy method: a doubly robust (DR) policy gradient. The policy is a softmax over the
multipliers, linear in the standardised state features. Each expectation under pi is its DR
estimate (Dudik, Langford & Li 2011; METHODS §10):
  V(theta) = (1/n) sum_i [ sum_a pi(a|x_i) q(x_i, a) + min(w_i, clip) (y_i - q(x_i, a_i)) ],
  w_i = pi(a_i|x_i) / p_i,
with p_i the logged propensity and q a cross-fitted reward model (`ope.fit_reward_model`; a
second one for the hinge). V is differentiable in theta and its gradient uses only the logged
outcome of the logged action: it is unbiased when either the propensities (they are logged, so
known) or q are right, and q removes most of the IPS variance. Fitted-Q was not chosen because
its argmax exploits the model's errors on actions the logger rarely took, with nothing to correct
them; here the IPS residual corrects q on the logged actions, weights are clipped at `clip` (bias
for variance, METHODS §10 pitfalls) and an L2 penalty keeps the policy near uniform scores where
the data say little. Without it the gradient steers the policy onto the logged actions that
happened to pay (propensity overfitting, Swaminathan & Joachims 2015); `select_l2` picks its weight
off-policy on a purged validation tail of the training rows. The constraint costs exposure and projection are deterministic functions of
the logged state and the action (the projection is), so their expectations under pi are exact.
The counterfactual reward of every action (available in a replay because the returns are
exogenous) is never used in training: only in evaluation, as the truth the DR estimate is checked
against. Assumption stated by METHODS §10: the decisions do not move the market (no impact).

Logging (`log_decisions`): the fixed sizer with epsilon-greedy exploration over the multipliers
(propensities recorded, `ope.epsilon_greedy`), on its own equity path; the state gets that path's
drawdown and the base gross exposure. Rows after the logger's drawdown stop decide nothing (the
book is flat and reduce-only) and are left out, counted in `dropped_stopped`.

Evaluation (`compare`): a chronological split purged with `bot4.research.splits.purge_mask`
(no training label overlaps the test span; optional embargo), the policy trained on the first
part and replayed on the held-out part beside the fixed sizer (m = 1) on each policy's own equity
path (drawdown stop included; a "drawdown" state column is replaced by the policy's own):
after-cost mean return per decision, Sharpe per decision, CVaR95,
max drawdown, proposals that breached a limit before projection and projections that bit, by
limit; and the learned policy's value estimated off-policy from the held-out logs (IPS, SNIPS, DR
with intervals, `bot4.portfolio.ope`) beside its true value at the logged states.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import msgspec
import numpy as np

from bot4.errors import InputError
from bot4.portfolio import ope
from bot4.portfolio.risk_measures import historical
from bot4.portfolio.sizing import LIMIT_NAMES, PortfolioState, Projection, SizingLimits, project_report, violations

MULTIPLIERS = (0.0, 0.25, 0.5, 1.0, 1.5)
CONSTRAINTS = ("exposure", "cvar", "projection")
#: counters of `safe_exposure` (rejections and clips of what a policy emitted)
SAFETY_COUNTERS = ("rejected_nan_multiplier", "clipped_multiplier", "rejected_base", "clipped_proposal")
#: a proposal beyond this many times equity per instrument is clipped to it (and counted) before
#: the limits are measured: the box clips it anyway, and the scenario P&L must stay finite
MAX_PROPOSAL = 1e12


# ----------------------------------------------------------------------------------------------
# logged decisions


@dataclass(frozen=True)
class LoggedDecisions:
    """Logged sizing decisions, one row per decision, in time order.

    features: n x d state (finite; e.g. the signal's |mu|/sigma, volatility, drawdown, exposure);
    names: the d column names (a column named "drawdown" is replaced by the policy's own drawdown
    in a replay); base: n x k the fixed sizer's proposal as a fraction of equity; returns: n x k
    realised simple returns over the holding period; action: n logged multiplier indices; pscore:
    n propensities of those actions in (0, 1]; reward: n logged after-cost returns (fraction of
    equity); equity, peak: n logged equity and peak equity; t0, t1: n decision and label-end times
    (ns); groups, allow_short: per instrument; scenarios: optional n x T x k return scenarios for
    the portfolio CVaR limit; cost_rate: cost per unit notional traded (scalar or per instrument);
    multipliers: the action set; dropped_stopped: rows `log_decisions` left out because the
    logger's drawdown stop had triggered (a stopped book decides nothing)."""

    features: np.ndarray
    names: tuple[str, ...]
    base: np.ndarray
    returns: np.ndarray
    action: np.ndarray
    pscore: np.ndarray
    reward: np.ndarray
    equity: np.ndarray
    peak: np.ndarray
    t0: np.ndarray
    t1: np.ndarray
    groups: np.ndarray
    allow_short: np.ndarray | None = None
    scenarios: np.ndarray | None = None
    cost_rate: float | np.ndarray = 0.0
    multipliers: tuple[float, ...] = MULTIPLIERS
    dropped_stopped: int = 0

    def __post_init__(self) -> None:
        x = np.asarray(self.features)
        n = x.shape[0] if x.ndim == 2 else -1
        if x.ndim != 2 or n < 2 or not np.all(np.isfinite(x)):
            raise InputError("features", f"must be a finite n x d matrix with n >= 2, got shape {x.shape}")
        if len(self.names) != x.shape[1]:
            raise InputError("names", f"needs one name per feature column ({x.shape[1]}), got {len(self.names)}")
        b = np.asarray(self.base)
        if b.ndim != 2 or b.shape[0] != n or not np.all(np.isfinite(b)):
            raise InputError("base", f"must be a finite {n} x k matrix, got shape {b.shape}")
        if np.shape(self.returns) != b.shape or not np.all(np.isfinite(self.returns)):
            raise InputError("returns", f"must be a finite {b.shape} matrix, got shape {np.shape(self.returns)}")
        m = _check_multipliers(self.multipliers)
        a = np.asarray(self.action)
        if a.shape != (n,) or np.any(a < 0) or np.any(a >= len(m)) or np.any(a != np.round(a)):
            raise InputError("action", f"needs {n} integer indices into the {len(m)} multipliers")
        p = np.asarray(self.pscore)
        if p.shape != (n,) or not np.all((p > 0) & (p <= 1)):
            raise InputError("pscore", "needs one propensity in (0, 1] per decision",
                             "log the probability of the action actually taken (a greedy logger has none)")
        for name in ("reward", "equity", "peak"):
            v = np.asarray(getattr(self, name))
            if v.shape != (n,) or not np.all(np.isfinite(v)):
                raise InputError(name, f"needs {n} finite values, got shape {v.shape}")
        if np.any(np.asarray(self.equity) <= 0):
            raise InputError("equity", "must be > 0 at every logged decision")
        from bot4.research.splits import check_intervals

        try:
            t0, t1 = check_intervals(self.t0, self.t1)
        except ValueError as exc:
            raise InputError("t0", str(exc)) from None
        if t0.shape != (n,):
            raise InputError("t0", f"needs {n} decision times")
        k = b.shape[1]
        if np.shape(self.groups) != (k,):
            raise InputError("groups", f"needs one group per instrument ({k})")
        if self.allow_short is not None and np.shape(self.allow_short) != (k,):
            raise InputError("allow_short", f"needs one flag per instrument ({k})")
        if self.scenarios is not None:
            s = np.asarray(self.scenarios)
            if s.ndim != 3 or s.shape[0] != n or s.shape[2] != k or not np.all(np.isfinite(s)):
                raise InputError("scenarios", f"must be a finite {n} x T x {k} array, got shape {s.shape}")
        c = np.broadcast_to(np.asarray(self.cost_rate, np.float64), (k,))
        if not np.all(np.isfinite(c)) or np.any(c < 0):
            raise InputError("cost_rate", "must be finite and >= 0 (scalar or one per instrument)")

    @property
    def n(self) -> int:
        return int(np.asarray(self.features).shape[0])

    def subset(self, idx) -> LoggedDecisions:
        """The rows `idx` (time order kept)."""
        i = np.sort(np.asarray(idx, np.int64))
        pick: dict[str, Any] = {name: np.asarray(getattr(self, name))[i] for name in
                ("features", "base", "returns", "action", "pscore", "reward", "equity", "peak", "t0", "t1")}
        if self.scenarios is not None:
            pick["scenarios"] = np.asarray(self.scenarios)[i]
        return replace(self, **pick)

    def state(self, i: int, equity: float | None = None, peak: float | None = None) -> PortfolioState:
        """The feasible set's inputs at decision i (flat book: positions are opened here)."""
        eq = float(self.equity[i]) if equity is None else equity
        pk = float(self.peak[i]) if peak is None else peak
        scen = None if self.scenarios is None else np.asarray(self.scenarios[i], np.float64)
        k = np.asarray(self.base).shape[1]
        return PortfolioState(eq, pk, np.zeros(k), np.asarray(self.groups), self.allow_short, scen)


def _check_multipliers(m) -> np.ndarray:
    arr = np.asarray(m, np.float64)
    if arr.ndim != 1 or len(arr) < 2 or not np.all(np.isfinite(arr)) or np.any(arr < 0) or np.any(np.diff(arr) <= 0):
        raise InputError("multipliers", f"must be >= 2 finite, increasing values >= 0, got {m!r}")
    return arr


def reward_of(exposure, returns, cost_rate) -> float:
    """After-cost return of holding `exposure` (fraction of equity) over `returns`: a round trip."""
    e = np.asarray(exposure, np.float64)
    c = np.broadcast_to(np.asarray(cost_rate, np.float64), e.shape)
    return float(e @ np.asarray(returns, np.float64) - 2.0 * np.sum(c * np.abs(e)))


# ----------------------------------------------------------------------------------------------
# the safety layer around a policy's output


@dataclass(frozen=True)
class SafeAction:
    """What reached the market: the executed exposure (account currency, projected), the proposal
    it came from, the multiplier actually used, and which limits the proposal breached."""

    projection: Projection
    proposal: np.ndarray
    multiplier: float
    breached: tuple[str, ...]


def sanitize_multiplier(multiplier, max_multiplier: float, counters: dict[str, int]) -> float:
    """NaN -> 0 (counted rejected_nan_multiplier); +-inf, < 0 or > max_multiplier -> clipped into
    [0, max_multiplier] (counted clipped_multiplier)."""
    try:
        m = float(multiplier)
    except (TypeError, ValueError):
        m = math.nan
    if math.isnan(m):
        counters["rejected_nan_multiplier"] = counters.get("rejected_nan_multiplier", 0) + 1
        return 0.0
    if not 0.0 <= m <= max_multiplier:
        counters["clipped_multiplier"] = counters.get("clipped_multiplier", 0) + 1
        return min(max(m, 0.0), max_multiplier)
    return m


def safe_exposure(multiplier, base, state: PortfolioState, limits: SizingLimits, counters: dict[str, int], *,
                  max_multiplier: float = MULTIPLIERS[-1]) -> SafeAction:
    """The one path from a policy's multiplier to an exposure: sanitise the multiplier and the base
    sizes (non-finite base entries become 0, counted rejected_base), scale (clipping at
    MAX_PROPOSAL x equity, counted clipped_proposal), and project with
    `sizing.project_report`. `base` is a fraction of equity per instrument."""
    m = sanitize_multiplier(multiplier, max_multiplier, counters)
    b = np.array(base, dtype=np.float64, copy=True).reshape(-1)
    bad = ~np.isfinite(b)
    if bad.any():
        counters["rejected_base"] = counters.get("rejected_base", 0) + int(bad.sum())
        b[bad] = 0.0
    eq = max(0.0, state.equity)
    with np.errstate(over="ignore", invalid="ignore"):
        proposal = m * b * eq
    cap = MAX_PROPOSAL * eq
    huge = ~(np.abs(proposal) <= cap)
    if huge.any():
        counters["clipped_proposal"] = counters.get("clipped_proposal", 0) + int(huge.sum())
        proposal = np.clip(proposal, -cap, cap)
    breached = tuple(name for name, v in violations(proposal, state, limits).items() if v > 0)
    return SafeAction(project_report(proposal, state, limits), proposal, m, breached)


def safe_exposure_core(multiplier, base, state: PortfolioState, limits: SizingLimits, counters: dict[str, int], *,
                       max_multiplier: float = MULTIPLIERS[-1]) -> SafeAction:
    """`safe_exposure` run by the core (bot4._core.portfolio.safe_exposure,
    RiskBudgetSizer::safe_exposure, what the core portfolio step's finish_safe calls): the same
    sanitising, counters, proposal, breached limits and projection."""
    from bot4._core.portfolio import safe_exposure as core_safe
    from bot4.portfolio.core_step import LIMIT_FIELDS

    try:
        m = float(multiplier)
    except (TypeError, ValueError):
        m = math.nan
    pos = np.ascontiguousarray(state.positions, np.float64)
    r = core_safe(m, np.ascontiguousarray(np.asarray(base, np.float64).reshape(-1)), float(state.equity),
                  float(state.peak_equity), pos, np.asarray(state.groups, np.int64),
                  None if state.allow_short is None else [bool(v) for v in state.allow_short],
                  None if state.scenarios is None else np.ascontiguousarray(state.scenarios, np.float64),
                  [float(getattr(limits, f)) for f in LIMIT_FIELDS], float(max_multiplier))
    for k, v in r["counters"].items():
        if v:
            counters[k] = counters.get(k, 0) + int(v)
    return SafeAction(Projection(r["action"], tuple(r["binding"])), r["proposal"], float(r["multiplier"]),
                      tuple(r["breached"]))


# ----------------------------------------------------------------------------------------------
# the policy


@dataclass(frozen=True)
class SoftmaxPolicy:
    """pi(a | x) = softmax_a(theta_a . [1, (x - mean)/scale]) over `multipliers`; deployed greedily."""

    theta: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    multipliers: tuple[float, ...] = MULTIPLIERS

    def design(self, features) -> np.ndarray:
        """(rows, 1 + p) design matrix: an intercept column and the features standardised by the
        training mean and scale (a 1-D input is one row)."""
        x = np.asarray(features, np.float64)
        if x.ndim == 1:
            x = x[None, :]
        return np.column_stack([np.ones(len(x)), (x - self.mean) / self.scale])

    def probs(self, features) -> np.ndarray:
        """n x K action probabilities (rows of NaN where the features or theta are not finite)."""
        with np.errstate(over="ignore", invalid="ignore"):
            # Each logit summed in one fixed order whatever the batch: a BLAS matmul sums in an order
            # of its own per batch shape, and at the edge of overflow one row came out finite in a
            # batch and NaN alone (replay scores one row at a time).
            design = self.design(features)
            s = (design[:, None, :] * np.asarray(self.theta, np.float64)[None, :, :]).sum(axis=2)
            s = s - s.max(axis=1, keepdims=True)
            e = np.exp(s)
            return e / e.sum(axis=1, keepdims=True)

    def greedy(self, features) -> np.ndarray:
        """The most probable action index per row."""
        return np.argmax(self.probs(features), axis=1)

    def multiplier(self, features) -> float:
        """The greedy multiplier for one state (NaN if the policy's output is not finite)."""
        p = self.probs(features)[0]
        if not np.all(np.isfinite(p)):
            return math.nan
        return float(self.multipliers[int(np.argmax(p))])

    def action_dist(self, features) -> np.ndarray:
        """The deployed (greedy, deterministic) policy as an n x K one-hot distribution for OPE."""
        g = self.greedy(features)
        out = np.zeros((len(g), len(self.multipliers)))
        out[np.arange(len(g)), g] = 1.0
        return out


class RLSizerConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Training settings. Budgets are the constraint levels d_k (inf disables one)."""

    lambda_cvar: float = 0.5          # weight of CVaR_alpha(per-decision loss) in the objective
    cvar_level: float = 0.95          # alpha
    exposure_budget: float = 1.0      # E[gross proposal / equity] <= this
    cvar_budget: float = 0.02         # CVaR_alpha of the per-decision loss (fraction of equity) <= this
    projection_budget: float = 0.25   # P(the safety projection changes the proposal) <= this
    epochs: int = 150                 # dual (multiplier) updates
    inner_steps: int = 5              # Adam steps on theta per dual update
    lr: float = 0.05                  # Adam step on theta
    dual_lr: float = 0.02             # eta of the multiplier update (larger overshoots: a saturated softmax recovers slowly)
    l2: float = 1e-3                  # ridge on theta (not on the intercepts)
    clip: float = 20.0                # importance-weight clip of the DR correction
    n_folds: int = 2                  # cross-fitting folds of the reward models
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("lambda_cvar", "l2", "dual_lr"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise InputError(name, f"must be finite and >= 0, got {v!r}")
        for name in ("exposure_budget", "cvar_budget", "projection_budget", "lr", "clip"):
            v = getattr(self, name)
            if math.isnan(v) or v <= 0:
                raise InputError(name, f"must be > 0 (inf disables), got {v!r}")
        if not 0 < self.cvar_level < 1:
            raise InputError("cvar_level", f"must be in (0, 1), got {self.cvar_level!r}")
        if self.epochs < 1 or self.inner_steps < 1 or self.n_folds < 2:
            raise InputError("epochs", "epochs and inner_steps must be >= 1, n_folds >= 2")


@dataclass
class TrainResult:
    """The learned policy and the primal-dual trace: multipliers (epochs + 1 x 3, starting at 0,
    columns CONSTRAINTS), the constraint estimates C_k at each dual step (epochs x 3), nu (the
    RU VaR) per step, and the DR estimate of E[r] and the ESS of the final policy's weights."""

    policy: SoftmaxPolicy
    lambdas: np.ndarray
    constraint_values: np.ndarray
    nu: np.ndarray
    value_dr: float
    ess: float
    budgets: tuple[float, float, float]
    counters: dict[str, int] = field(default_factory=dict)

    @property
    def final_lambdas(self) -> dict[str, float]:
        return dict(zip(CONSTRAINTS, map(float, self.lambdas[-1])))


def constraint_costs(d: LoggedDecisions, limits: SizingLimits) -> tuple[np.ndarray, np.ndarray]:
    """(exposure, projected): n x K gross proposal / equity and 1.0 where the safety projection
    changes the proposal, for every action at every logged state. Deterministic given the state;
    uses no outcome."""
    m = np.asarray(d.multipliers)
    base = np.asarray(d.base, np.float64)
    exposure = np.abs(base).sum(axis=1)[:, None] * m[None, :]
    projected = np.zeros((d.n, len(m)))
    scratch: dict[str, int] = {}
    for i in range(d.n):
        st = d.state(i)
        for a, mult in enumerate(m):
            projected[i, a] = float(safe_exposure(mult, base[i], st, limits, scratch, max_multiplier=m[-1]).projection.changed)
    return exposure, projected


def counterfactual_rewards(d: LoggedDecisions, limits: SizingLimits) -> np.ndarray:
    """n x K after-cost return of every action at every logged state (needs the realised returns;
    for evaluation only: training never sees it)."""
    m = np.asarray(d.multipliers)
    out = np.zeros((d.n, len(m)))
    scratch: dict[str, int] = {}
    for i in range(d.n):
        st = d.state(i)
        for a, mult in enumerate(m):
            e = safe_exposure(mult, d.base[i], st, limits, scratch, max_multiplier=m[-1]).projection.action / st.equity
            out[i, a] = reward_of(e, d.returns[i], d.cost_rate)
    return out


def _weighted_quantile(x: np.ndarray, w: np.ndarray, q: float) -> float:
    order = np.argsort(x)
    cw = np.cumsum(w[order])
    if cw[-1] <= 0:
        return float(np.quantile(x, q))
    k = int(np.searchsorted(cw, q * cw[-1], side="left"))
    return float(x[order][min(k, len(x) - 1)])


def _dr_values(q: np.ndarray, y: np.ndarray, action: np.ndarray, pscore: np.ndarray, pi: np.ndarray,
               clip: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-row, per-action coefficients v with DR value = mean_i sum_a pi_ia v_ia where the weight is
    not clipped, and the constant clipped part per row."""
    n = len(y)
    rows = np.arange(n)
    resid = y - q[rows, action]
    w = pi[rows, action] / pscore
    v = q.copy()
    unclipped = w <= clip
    v[rows[unclipped], action[unclipped]] += resid[unclipped] / pscore[unclipped]
    const = np.where(unclipped, 0.0, clip * resid)
    return v, const


def train(d: LoggedDecisions, limits: SizingLimits, config: RLSizerConfig | None = None, *,
          costs: tuple[np.ndarray, np.ndarray] | None = None) -> TrainResult:
    """Primal-dual DR policy gradient on the logged decisions (see the module text). costs:
    `constraint_costs(d, limits)` when already computed."""
    cfg = config or RLSizerConfig()
    m = _check_multipliers(d.multipliers)
    K = len(m)
    x = np.asarray(d.features, np.float64)
    y = np.asarray(d.reward, np.float64)
    a_log = np.asarray(d.action, np.int64)
    p_log = np.asarray(d.pscore, np.float64)
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    policy = SoftmaxPolicy(np.zeros((K, x.shape[1] + 1)), mean, scale, tuple(float(v) for v in m))
    phi = policy.design(x)
    s = float(np.std(y)) or 1.0
    alpha = cfg.cvar_level
    q_r = ope.fit_reward_model(x, a_log, y, K, n_folds=cfg.n_folds, seed=cfg.seed)
    exposure, projected = constraint_costs(d, limits) if costs is None else costs
    if exposure.shape != (d.n, K) or projected.shape != (d.n, K):
        raise InputError("costs", f"must be two {d.n} x {K} matrices from constraint_costs")
    budgets = (cfg.exposure_budget, cfg.cvar_budget, cfg.projection_budget)
    lam = np.zeros(3)
    lam_hist = [lam.copy()]
    c_hist, nu_hist = [], []
    theta = np.zeros_like(policy.theta)
    m1 = np.zeros_like(theta)
    m2 = np.zeros_like(theta)
    t_adam = 0
    loss = -y
    nu = math.nan
    hinge = q_h = np.zeros(0)
    for _epoch in range(cfg.epochs):
        pi = policy_probs(theta, phi)
        w = pi[np.arange(d.n), a_log] / p_log
        nu_new = _weighted_quantile(loss, w, alpha)
        if nu_new != nu:      # nu is one of the logged losses: refit the hinge model only when it moves
            nu = nu_new
            hinge = np.maximum(loss - nu, 0.0)
            # a hinge is >= 0; a linear model of it is not, so its predictions are floored at 0
            q_h = np.maximum(ope.fit_reward_model(x, a_log, hinge, K, n_folds=cfg.n_folds, seed=cfg.seed), 0.0)
        for _ in range(cfg.inner_steps):
            pi = policy_probs(theta, phi)
            v_r, _ = _dr_values(q_r, y, a_log, p_log, pi, cfg.clip)
            v_h, _ = _dr_values(q_h, hinge, a_log, p_log, pi, cfg.clip)
            coef = (v_r - cfg.lambda_cvar * v_h / (1 - alpha)) / s
            coef = coef - lam[0] * exposure / budgets[0] - lam[1] * (v_h / (1 - alpha)) / budgets[1] \
                - lam[2] * projected / budgets[2]
            centred = pi * (coef - np.sum(pi * coef, axis=1, keepdims=True))
            grad = centred.T @ phi / d.n
            grad[:, 1:] -= cfg.l2 * theta[:, 1:]
            t_adam += 1
            m1 = 0.9 * m1 + 0.1 * grad
            m2 = 0.999 * m2 + 0.001 * grad * grad
            theta = theta + cfg.lr * (m1 / (1 - 0.9 ** t_adam)) / (np.sqrt(m2 / (1 - 0.999 ** t_adam)) + 1e-8)
        pi = policy_probs(theta, phi)
        v_h, c_h = _dr_values(q_h, hinge, a_log, p_log, pi, cfg.clip)
        # E[h] >= 0, but its DR estimate is not bounded (a large weight times a negative residual)
        cvar = nu + max(0.0, float(np.mean(np.sum(pi * v_h, axis=1) + c_h))) / (1 - alpha)
        c = np.array([float(np.mean(np.sum(pi * exposure, axis=1))), cvar,
                      float(np.mean(np.sum(pi * projected, axis=1)))])
        g = np.array([ci / bi - 1.0 if math.isfinite(bi) else -1.0 for ci, bi in zip(c, budgets)])
        lam = np.maximum(0.0, lam + cfg.dual_lr * g)
        lam_hist.append(lam.copy())
        c_hist.append(c)
        nu_hist.append(nu)
    policy = replace(policy, theta=theta)
    pi = policy_probs(theta, phi)
    value = ope.dr(y, a_log, p_log, pi, q_r, clip=cfg.clip)
    return TrainResult(policy, np.array(lam_hist), np.array(c_hist), np.array(nu_hist), value.value, value.ess,
                       budgets)


def policy_probs(theta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Softmax of phi @ theta.T per row."""
    sc = phi @ theta.T
    sc = sc - sc.max(axis=1, keepdims=True)
    e = np.exp(sc)
    return e / e.sum(axis=1, keepdims=True)


# ----------------------------------------------------------------------------------------------
# logging and replay


@dataclass
class ReplayResult:
    """One policy run over decisions on its own equity path (start equity 1): per decision the
    after-cost return, the equity after it, the multiplier used and the executed exposure (n x k,
    the projection's output exactly, in units of the starting equity), and counts of breaches and
    projections."""

    returns: np.ndarray
    equity: np.ndarray
    multipliers: np.ndarray
    exposures: np.ndarray
    breached: dict[str, int]           # decisions whose proposal broke each limit before projection
    projected: dict[str, int]          # projections that bit, by limit
    counters: dict[str, int]           # safety rejections and clips
    decisions_breaching: int = 0
    projections: int = 0

    def metrics(self, level: float = 0.95) -> dict[str, float | int]:
        """After-cost mean return per decision, its std, Sharpe per decision, CVaR at `level`
        (historical, positive loss), max drawdown, final equity, breaches and projections."""
        r = self.returns
        sd = float(np.std(r, ddof=1)) if len(r) > 1 else 0.0
        eq = np.concatenate([[1.0], self.equity])
        peak = np.maximum.accumulate(eq)
        return {
            "decisions": int(len(r)), "mean_return": float(np.mean(r)), "std_return": sd,
            "sharpe": float(np.mean(r) / sd) if sd > 0 else 0.0,
            "cvar": float(historical(r, level).cvar) if len(r) >= 20 else math.nan,
            "max_drawdown": float(np.max(1.0 - eq / peak)), "final_equity": float(eq[-1]),
            "mean_multiplier": float(np.mean(self.multipliers)) if len(r) else 0.0,
            "decisions_breaching": self.decisions_breaching, "projections": self.projections,
        }


def _replay(d: LoggedDecisions, limits: SizingLimits, choose, *, record_actions: bool = False):
    m = np.asarray(d.multipliers)
    names = list(d.names)
    dd_col = names.index("drawdown") if "drawdown" in names else None
    equity = peak = 1.0
    rets, eqs, mults, acts, expo = [], [], [], [], []
    breached = dict.fromkeys(LIMIT_NAMES, 0)
    projected = dict.fromkeys(LIMIT_NAMES, 0)
    counters = dict.fromkeys(SAFETY_COUNTERS, 0)
    n_breach = n_proj = 0
    for i in range(d.n):
        st = d.state(i, equity, peak)
        x = np.array(d.features[i], np.float64)
        if dd_col is not None:
            x[dd_col] = st.drawdown
        mult, act = choose(i, x)
        sa = safe_exposure(mult, d.base[i], st, limits, counters, max_multiplier=float(m[-1]))
        for name in sa.breached:
            breached[name] += 1
        for name in sa.projection.binding:
            projected[name] += 1
        n_breach += bool(sa.breached)
        n_proj += sa.projection.changed
        e = sa.projection.action / equity if equity > 0 else np.zeros_like(sa.projection.action)
        r = reward_of(e, d.returns[i], d.cost_rate)
        expo.append(sa.projection.action)
        rets.append(r)
        mults.append(sa.multiplier)
        acts.append((act, x))
        equity *= 1.0 + r
        peak = max(peak, equity)
        eqs.append(equity)
    k = np.asarray(d.base).shape[1]
    res = ReplayResult(np.array(rets), np.array(eqs), np.array(mults), np.array(expo).reshape(-1, k), breached, projected,
                       counters, n_breach, n_proj)
    return (res, acts) if record_actions else res


def replay(d: LoggedDecisions, limits: SizingLimits, policy: SoftmaxPolicy | float) -> ReplayResult:
    """Run a policy (or a constant multiplier, 1.0 = the fixed sizer) over the decisions in time
    order on its own equity path: its drawdown feeds the state and the drawdown stop; every
    action goes through `safe_exposure`."""
    if isinstance(policy, SoftmaxPolicy):
        pol = policy
        return _replay(d, limits, lambda i, x: (pol.multiplier(x), None))
    const = float(policy)
    return _replay(d, limits, lambda i, x: (const, None))


def log_decisions(features, names, base, returns, t0, t1, groups, limits: SizingLimits, *, allow_short=None,
                  scenarios=None, cost_rate=0.0, epsilon: float = 0.3, seed: int = 0,
                  multipliers: tuple[float, ...] = MULTIPLIERS) -> LoggedDecisions:
    """Log decisions of the exploring fixed sizer: epsilon-greedy around m = 1 (propensities
    recorded), run on its own equity path (start 1). Appends two state columns: "drawdown" (of
    that path) and "gross" (the base proposal's gross exposure / equity). Once that path reaches
    the drawdown stop the book is reduce-only and flat, every action executes 0 and nothing is
    decided: those rows are left out and counted in `dropped_stopped`."""
    m = _check_multipliers(multipliers)
    if "drawdown" in names or "gross" in names:
        raise InputError("names", "'drawdown' and 'gross' are appended by log_decisions; rename those columns")
    if 1.0 not in m:
        raise InputError("multipliers", "must contain 1.0 (the fixed sizer) for the logging policy")
    if not 0 < epsilon <= 1:
        raise InputError("epsilon", f"must be in (0, 1] (a greedy logger has no propensities), got {epsilon!r}")
    x = np.asarray(features, np.float64)
    b = np.asarray(base, np.float64)
    n = len(x)
    dist = ope.epsilon_greedy(np.full(n, int(np.flatnonzero(m == 1.0)[0])), len(m), epsilon)
    actions, pscore = ope.sample_actions(dist, seed)
    gross = np.abs(b).sum(axis=1)
    full = np.column_stack([x, np.zeros(n), gross])
    names_all = (*tuple(names), "drawdown", "gross")
    zeros = np.zeros(n)
    proto = LoggedDecisions(full, names_all, b, returns, actions, pscore, zeros, np.ones(n), np.ones(n), t0, t1,
                            np.asarray(groups), None if allow_short is None else np.asarray(allow_short, bool),
                            None if scenarios is None else np.asarray(scenarios, np.float64), cost_rate,
                            tuple(float(v) for v in m))
    res, acts = _replay(proto, limits, lambda i, xi: (float(m[actions[i]]), None), record_actions=True)
    eq_before = np.concatenate([[1.0], res.equity[:-1]])
    peak_before = np.maximum.accumulate(eq_before)
    full[:, -2] = np.array([xi[-2] for _, xi in acts])
    logged = replace(proto, features=full, reward=res.returns, equity=eq_before, peak=peak_before)
    live = np.flatnonzero(full[:, -2] < limits.max_drawdown)
    if len(live) < 2:
        raise InputError("limits", f"the logging policy hit its drawdown stop after {len(live)} decisions: nothing to learn from")
    return replace(logged.subset(live), dropped_stopped=n - len(live))


def chronological_split(d: LoggedDecisions, test_fraction: float = 0.3, *, embargo_ns: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) row indices: the last `test_fraction` of the rows is the test block; training
    rows come before it and are purged when their label interval [t0, t1] meets the test span
    (bot4.research.splits.purge_mask, closed intervals) or lies in the embargo."""
    from bot4.research.splits import purge_mask

    if not 0 < test_fraction < 1:
        raise InputError("test_fraction", f"must be in (0, 1), got {test_fraction!r}")
    n_test = max(1, int(round(d.n * test_fraction)))
    test = np.arange(d.n - n_test, d.n)
    t0, t1 = np.asarray(d.t0, np.int64), np.asarray(d.t1, np.int64)
    span = (int(t0[test[0]]), int(t1[test].max()))
    before = np.arange(d.n - n_test)
    keep = purge_mask(t0[before], t1[before], [span], embargo_ns)
    return before[keep], test


def select_l2(d: LoggedDecisions, limits: SizingLimits, config: RLSizerConfig | None = None,
              grid: tuple[float, ...] = (1e-3, 1e-2, 0.1, 1.0), *, valid_fraction: float = 0.3,
              embargo_ns: int = 0) -> tuple[float, list[dict]]:
    """Choose the ridge weight off-policy: train on the purged chronological head of `d`, score the
    greedy policy on the tail by the DR estimate of its after-cost return minus lambda_cvar times its
    CVaR (self-normalised importance weights), among the candidates whose exposure and projection
    rates on the tail (exact: they need no outcome) meet the budgets; if none does, the one that
    exceeds them least. IPS-trained policies overfit the logged actions that happened to pay
    (Swaminathan & Joachims 2015); the ridge is what limits that, and this picks it without
    touching the test block. Returns (l2, one score dict per candidate)."""
    cfg = config or RLSizerConfig()
    if not grid or any(not (math.isfinite(g) and g >= 0) for g in grid):
        raise InputError("grid", f"needs at least one finite l2 >= 0, got {grid!r}")
    tr_idx, va_idx = chronological_split(d, valid_fraction, embargo_ns=embargo_ns)
    tr, va = d.subset(tr_idx), d.subset(va_idx)
    K = len(d.multipliers)
    q = ope.fit_reward_model(va.features, va.action, va.reward, K, n_folds=cfg.n_folds, seed=cfg.seed)
    exposure, projected = constraint_costs(va, limits)
    tr_costs = constraint_costs(tr, limits)
    scores = []
    for l2 in grid:
        pol = train(tr, limits, msgspec.structs.replace(cfg, l2=float(l2)), costs=tr_costs).policy
        target = pol.action_dist(va.features)
        value = ope.dr(va.reward, va.action, va.pscore, target, q, clip=cfg.clip).value
        w = target[np.arange(va.n), va.action] / va.pscore
        loss = -np.asarray(va.reward)
        if w.sum() > 0:
            nu = _weighted_quantile(loss, w, cfg.cvar_level)
            cvar = nu + float(np.sum(w * np.maximum(loss - nu, 0.0)) / w.sum()) / (1 - cfg.cvar_level)
        else:
            cvar = math.inf
        over = max(float(np.mean(np.sum(target * exposure, axis=1))) / cfg.exposure_budget - 1.0,
                   float(np.mean(np.sum(target * projected, axis=1))) / cfg.projection_budget - 1.0, 0.0)
        scores.append({"l2": float(l2), "value_dr": value, "cvar": cvar, "score": value - cfg.lambda_cvar * cvar,
                       "budget_excess": over})
    feasible = [s for s in scores if s["budget_excess"] == 0]
    best = max(feasible, key=lambda s: s["score"]) if feasible else min(scores, key=lambda s: s["budget_excess"])
    return best["l2"], scores


def compare(d: LoggedDecisions, limits: SizingLimits, config: RLSizerConfig | None = None, *,
            test_fraction: float = 0.3, embargo_ns: int = 0, l2_grid: tuple[float, ...] | None = None) -> dict:
    """Train on the purged chronological head, evaluate on the held-out tail: replay metrics of
    the fixed sizer and the learned policy, OPE of the learned policy from the held-out logs (IPS,
    SNIPS, DR with 95% normal intervals) beside its true value at the logged states, the final
    multipliers and the training rows purged. With `l2_grid`, the ridge weight is chosen first by
    `select_l2` inside the training rows."""
    cfg = config or RLSizerConfig()
    tr_idx, te_idx = chronological_split(d, test_fraction, embargo_ns=embargo_ns)
    tr, te = d.subset(tr_idx), d.subset(te_idx)
    selection: list[dict] = []
    if l2_grid is not None:
        l2, selection = select_l2(tr, limits, cfg, l2_grid, embargo_ns=embargo_ns)
        cfg = msgspec.structs.replace(cfg, l2=l2)
    res = train(tr, limits, cfg)
    fixed = replay(te, limits, 1.0)
    learned = replay(te, limits, res.policy)
    K = len(d.multipliers)
    target = res.policy.action_dist(te.features)
    q = ope.fit_reward_model(te.features, te.action, te.reward, K, n_folds=cfg.n_folds, seed=cfg.seed)
    est = ope.estimate_all(te.reward, te.action, te.pscore, target, q)
    truth = counterfactual_rewards(te, limits)
    fixed_idx = int(np.flatnonzero(np.asarray(d.multipliers) == 1.0)[0]) if 1.0 in d.multipliers else None
    out = {
        "train_rows": int(len(tr_idx)), "test_rows": int(len(te_idx)),
        "purged": int(d.n - len(te_idx) - len(tr_idx)), "logged_rows_dropped_stopped": d.dropped_stopped,
        "fixed": fixed.metrics(), "learned": learned.metrics(),
        "breached_by_limit": {"fixed": fixed.breached, "learned": learned.breached},
        "projected_by_limit": {"fixed": fixed.projected, "learned": learned.projected},
        "safety_counters": learned.counters,
        "ope": {k: v.as_dict() for k, v in est.items()},
        "true_value_at_logged_states": {"learned": float(np.mean(np.sum(target * truth, axis=1))),
                                        "fixed": float(np.mean(truth[:, fixed_idx])) if fixed_idx is not None else math.nan},
        "lambdas": res.final_lambdas, "train_constraints": dict(zip(CONSTRAINTS, map(float, res.constraint_values[-1]))),
        "train_value_dr": res.value_dr, "train_ess": res.ess, "l2": cfg.l2, "l2_selection": selection,
    }
    return out


__all__ = [
    "CONSTRAINTS", "MULTIPLIERS", "SAFETY_COUNTERS", "LoggedDecisions", "RLSizerConfig", "ReplayResult", "SafeAction",
    "SoftmaxPolicy", "TrainResult", "chronological_split", "compare", "constraint_costs", "counterfactual_rewards",
    "log_decisions", "policy_probs", "replay", "reward_of", "safe_exposure", "safe_exposure_core", "sanitize_multiplier",
    "select_l2", "train",
]
