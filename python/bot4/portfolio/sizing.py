"""Risk-budget sizing across instruments and the safety projection (METHODS.md §7, §16).

Units: exposures are signed notionals in the account currency (EUR for the 500 EUR preset);
limits are fractions of equity; quantities are in each instrument's own units (coins, contracts).

Sizing a trade: the loss a position may take at the CVaR level is `risk_per_trade` of equity,
so the notional is  risk_per_trade * equity / unit_risk,  where unit_risk (a loss fraction of the
notional over the holding horizon) is the larger of the instrument's CVaR_95 per unit
(`risk_measures.conservative_cvar`: max of historical and Cornish-Fisher) and the stop distance
when the strategy has a stop, floored at `min_unit_risk`. The CVaR therefore sets the size; it is
not only reported.

The feasible set (hard limits, never left to a reward):
  box        lo_i <= a_i <= hi_i with lo_i <= 0 <= hi_i: |a_i| <= max_position * equity, no shorts
             where the instrument forbids them, and after the drawdown stop (equity at or below
             (1 - max_drawdown) * peak) reduce-only: a_i between 0 and the current position;
  group      sum_{i in g} |a_i| <= max_group_gross * equity for every group g;
  gross      sum |a_i| <= max_gross * equity;
  net        |sum a_i| <= max_net * equity;
  risk       historical CVaR of the portfolio loss -scenarios @ a <= max_portfolio_cvar * equity
             (only when return scenarios are given).

`project` maps any proposed vector into that set: clip to the box, then scale toward zero by
group, gross, net and risk in turn. Every constraint is a sublevel set of a positively homogeneous
function and the box contains 0, so a later scaling (factor <= 1) never undoes an earlier one; each
scaled result is checked with the same exact comparison the caller will use (factors are nudged
down by ulps until it holds), so a projected action satisfies every limit without tolerance, a
feasible action comes back bit-identical, and projecting twice equals projecting once. This is the
safety layer of METHODS §16, but not its Euclidean projection: it keeps the direction of the
proposal (relative sizes within a group), which is what a sizer's output means.

Orders: targets are rounded toward zero to each instrument's lot step, the trade to get there
must meet the venue's minimum quantity and notional or it is skipped and counted, and a last pass
accepts trades (reductions first) only while no limit is breached or worsened, so what rounding
and skipping leave is still feasible; vetoes are counted by limit.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec
import numpy as np

from bot4.errors import InputError
from bot4.portfolio.risk_measures import portfolio_cvar

LIMIT_NAMES = ("box", "group", "gross", "net", "risk")


class SizingLimits(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Hard limits and the risk budget; every fraction is of current equity. The core declares
    them (risk_budget_sizer.hpp; `bot4._core.portfolio.limits_schema()`): these fields, their order,
    defaults and bounds are tested against that declaration."""

    risk_per_trade: float = 0.01       # loss at the CVaR level allowed per trade (fraction of equity)
    max_position: float = 0.5          # |exposure| per instrument
    max_group_gross: float = 1.0       # sum |exposure| within a group (e.g. one underlying)
    max_gross: float = 2.0             # sum |exposure|
    max_net: float = 1.0               # |sum exposure|
    max_drawdown: float = 0.10         # from peak equity; at or beyond it the book is reduce-only
    cvar_level: float = 0.95           # confidence of the CVaR used in sizing and the risk limit
    max_portfolio_cvar: float = 0.02   # portfolio CVaR over the scenarios (fraction of equity)
    min_unit_risk: float = 0.0005      # floor of the per-unit risk (loss fraction), so a quiet tail cannot size to infinity

    def __post_init__(self) -> None:
        for name in self.__struct_fields__:
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise InputError(name, f"must be a finite number >= 0, got {v!r}")
        if not 0 < self.cvar_level < 1:
            raise InputError("cvar_level", f"must be in (0, 1), got {self.cvar_level!r}")
        if not 0 < self.max_drawdown < 1:
            raise InputError("max_drawdown", f"must be in (0, 1), got {self.max_drawdown!r}")
        if self.min_unit_risk <= 0:
            raise InputError("min_unit_risk", "must be > 0 (a zero floor lets a quiet tail size to infinity)")


class OrderRules(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One instrument's venue rules. Quantities in the instrument's units, notional in quote."""

    symbol: str
    group: str                    # exposure group (e.g. the underlying: "BTC")
    lot_step: float               # quantity grid
    min_qty: float                # smallest order quantity
    min_notional: float = 0.0     # smallest order notional (quote currency)
    allow_short: bool = True
    inverse: bool = False         # notional is qty * contract_size (quote), not qty * price
    contract_size: float = 1.0

    def __post_init__(self) -> None:
        if not (self.lot_step > 0 and math.isfinite(self.lot_step)):
            raise InputError("lot_step", f"{self.symbol}: must be > 0, got {self.lot_step!r}")
        if not (self.min_qty >= 0 and self.min_notional >= 0 and self.contract_size > 0):
            raise InputError("min_qty", f"{self.symbol}: min_qty, min_notional must be >= 0 and contract_size > 0")

    def unit_value(self, price: float) -> float:
        """Quote currency per unit of quantity at `price`."""
        return self.contract_size if self.inverse else price * self.contract_size


@dataclass(frozen=True)
class PortfolioState:
    """What the feasible set depends on. positions: signed notionals (account currency) marked at
    current prices; groups: an integer group id per instrument; scenarios: optional T x n matrix
    of one-horizon returns per instrument for the portfolio CVaR limit."""

    equity: float
    peak_equity: float
    positions: np.ndarray
    groups: np.ndarray
    allow_short: np.ndarray | None = None
    scenarios: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.positions)
        if not (math.isfinite(self.equity) and math.isfinite(self.peak_equity)):
            raise InputError("equity", f"equity {self.equity!r} and peak {self.peak_equity!r} must be finite")
        if np.asarray(self.positions).ndim != 1 or not np.all(np.isfinite(self.positions)):
            raise InputError("positions", "must be a finite 1-D vector")
        if np.asarray(self.groups).shape != (n,):
            raise InputError("groups", f"needs one group per instrument ({n}), got shape {np.shape(self.groups)}")
        if self.allow_short is not None and np.asarray(self.allow_short).shape != (n,):
            raise InputError("allow_short", f"needs one flag per instrument ({n})")
        if self.scenarios is not None:
            s = np.asarray(self.scenarios)
            if s.ndim != 2 or s.shape[1] != n or not np.all(np.isfinite(s)):
                raise InputError("scenarios", f"must be a finite T x {n} return matrix, got shape {s.shape}")

    @property
    def drawdown(self) -> float:
        peak = max(self.peak_equity, self.equity)
        return 0.0 if peak <= 0 else (peak - self.equity) / peak

    def stopped(self, limits: SizingLimits) -> bool:
        """True once the drawdown stop has triggered (reduce-only)."""
        return self.equity <= 0 or self.drawdown >= limits.max_drawdown


def box_bounds(state: PortfolioState, limits: SizingLimits) -> tuple[np.ndarray, np.ndarray]:
    """Per-instrument [lo, hi], always containing 0."""
    n = len(state.positions)
    cap = max(0.0, limits.max_position * state.equity)
    hi = np.full(n, cap)
    lo = np.full(n, -cap)
    if state.allow_short is not None:
        lo = np.where(np.asarray(state.allow_short, bool), lo, 0.0)
    if state.stopped(limits):
        pos = np.asarray(state.positions, np.float64)
        lo = np.maximum(lo, np.minimum(pos, 0.0))
        hi = np.minimum(hi, np.maximum(pos, 0.0))
    return lo, hi


def _measures(state: PortfolioState, limits: SizingLimits) -> list[tuple[str, Callable[[np.ndarray], float], float]]:
    """(limit name, positively homogeneous measure, cap) for every scaled limit, one per group."""
    eq = max(0.0, state.equity)
    out: list[tuple[str, Callable[[np.ndarray], float], float]] = []
    groups = np.asarray(state.groups)
    def group_gross(mask: np.ndarray) -> Callable[[np.ndarray], float]:
        return lambda a: float(np.abs(a[mask]).sum())

    for g in np.unique(groups):
        out.append(("group", group_gross(groups == g), limits.max_group_gross * eq))
    out.append(("gross", lambda a: float(np.abs(a).sum()), limits.max_gross * eq))
    out.append(("net", lambda a: abs(float(a.sum())), limits.max_net * eq))
    if state.scenarios is not None:
        scen = np.asarray(state.scenarios, np.float64)
        out.append(("risk", lambda a: portfolio_cvar(scen, a, limits.cvar_level), limits.max_portfolio_cvar * eq))
    return out


def _shrink(a: np.ndarray, measure: Callable[[np.ndarray], float], cap: float) -> np.ndarray:
    m = measure(a)
    if m <= cap:
        return a
    f = cap / m if m > 0 else 0.0
    b = a * f
    # Rounding can leave it a few ulps above: step the factor down, doubling the step each time, so
    # the loop ends within ~50 steps (at 0, which every cap admits) whatever the measure does; a
    # constant ulp step took ~1e15 steps on a case hypothesis found in a fresh environment.
    step = 4 * np.finfo(float).eps
    while f > 0.0 and measure(b) > cap:
        f = f * (1.0 - step) if step < 1.0 and f > 1e-300 else 0.0
        step *= 2.0
        b = a * f
    return b


@dataclass(frozen=True)
class Projection:
    """The projected action and which limits bit (a name may repeat: one per group)."""

    action: np.ndarray
    binding: tuple[str, ...]

    @property
    def changed(self) -> bool:
        return bool(self.binding)


def project_report(action, state: PortfolioState, limits: SizingLimits) -> Projection:
    """`project` that also says which limits changed the action."""
    a = np.asarray(action, dtype=np.float64)
    if a.shape != np.shape(state.positions):
        raise InputError("action", f"shape {a.shape} does not match {len(state.positions)} instruments")
    if np.isnan(a).any():
        raise InputError("action", f"{int(np.isnan(a).sum())} NaN sizes: a policy bug, there is no direction to project")
    binding: list[str] = []
    lo, hi = box_bounds(state, limits)
    b = np.minimum(np.maximum(a, lo), hi)
    if not np.array_equal(a, b):
        binding.append("box")
    for name, measure, cap in _measures(state, limits):
        c = _shrink(b, measure, cap)
        if c is not b:
            binding.append(name)
        b = c
    return Projection(b, tuple(binding))


def project(action, state: PortfolioState, limits: SizingLimits) -> np.ndarray:
    """Map any proposed exposure vector into the feasible set (see the module text)."""
    return project_report(action, state, limits).action


def violations(exposure, state: PortfolioState, limits: SizingLimits) -> dict[str, float]:
    """By how much `exposure` exceeds each limit (0 = within), exact comparisons, worst group."""
    a = np.asarray(exposure, dtype=np.float64)
    lo, hi = box_bounds(state, limits)
    out = dict.fromkeys(LIMIT_NAMES, 0.0)
    out["box"] = float(max(0.0, np.max(lo - a, initial=0.0), np.max(a - hi, initial=0.0)))
    for name, measure, cap in _measures(state, limits):
        out[name] = max(out[name], max(0.0, measure(a) - cap))
    return out


def violations_core(exposure, state: PortfolioState, limits: SizingLimits) -> dict[str, float]:
    """`violations` computed by the core (bot4._core.portfolio.violations, RiskBudgetSizer's): the
    same exact comparisons; the portfolio CVaR excess sums in its own order (a few ulps)."""
    from bot4._core.portfolio import violations as core_violations
    from bot4.portfolio.core_step import LIMIT_FIELDS

    return core_violations(np.ascontiguousarray(exposure, np.float64), float(state.equity), float(state.peak_equity),
                           np.ascontiguousarray(state.positions, np.float64), np.asarray(state.groups, np.int64),
                           None if state.allow_short is None else [bool(v) for v in state.allow_short],
                           None if state.scenarios is None else np.ascontiguousarray(state.scenarios, np.float64),
                           [float(getattr(limits, f)) for f in LIMIT_FIELDS])


def is_feasible(exposure, state: PortfolioState, limits: SizingLimits) -> bool:
    """True when no hard limit is exceeded."""
    return not any(v > 0 for v in violations(exposure, state, limits).values())


def risk_budget_notional(direction, unit_risk, equity: float, limits: SizingLimits, *, stop_distance=None,
                         scale=None) -> np.ndarray:
    """Signed notionals putting `risk_per_trade` of equity at risk per instrument.

    direction: sign of each trade (+1, -1, 0); unit_risk: CVaR per unit notional (loss fraction,
    e.g. risk_measures.conservative_cvar of the horizon returns); stop_distance: optional stop
    distance as a fraction of price; scale: optional conviction in [0, 1] (e.g. from the
    meta-weighter) multiplying the budget, never raising it."""
    d = np.sign(np.asarray(direction, np.float64))
    u = np.asarray(unit_risk, np.float64)
    if d.shape != u.shape or not np.all(np.isfinite(u)) or not np.all(np.isfinite(d)):
        raise InputError("unit_risk", "direction and unit_risk must be finite vectors of one length")
    risk = np.maximum(u, limits.min_unit_risk)
    if stop_distance is not None:
        s = np.asarray(stop_distance, np.float64)
        if s.shape != u.shape or not np.all(np.isfinite(s)) or np.any(s < 0):
            raise InputError("stop_distance", "must be finite fractions >= 0, one per instrument")
        risk = np.maximum(risk, s)
    k = np.ones_like(u) if scale is None else np.clip(np.asarray(scale, np.float64), 0.0, 1.0)
    if k.ndim == 0:
        k = np.full_like(u, float(k))
    if k.shape != u.shape or np.isnan(k).any():
        raise InputError("scale", "must be one number in [0, 1] per instrument")
    return d * k * limits.risk_per_trade * max(0.0, equity) / risk


@dataclass
class SizingDecision:
    """What the sizer decided for one step.

    targets: projected notionals before lot rounding; orders: signed quantities to trade;
    positions: the notionals after those orders (feasible); counters: skipped trades by reason,
    vetoes by limit, projections."""

    targets: np.ndarray
    orders: np.ndarray
    positions: np.ndarray
    projection: Projection
    counters: dict[str, int] = field(default_factory=dict)


def _worsens(before: dict[str, float], after: dict[str, float]) -> str | None:
    for name in LIMIT_NAMES:
        if after[name] > 0 and after[name] > before[name]:
            return name
    return None


def plan_orders(targets, positions_qty, prices, fx, rules: list[OrderRules], state: PortfolioState,
                limits: SizingLimits) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Round target notionals to orders the venues accept; returns (orders, positions, counters).

    fx: account currency per quote unit, one per instrument. A trade below the venue minimum is
    skipped (counter skipped_min_qty / skipped_min_notional); a trade that would breach or worsen a
    limit after rounding and skipping is vetoed (counter vetoed_<limit>). Reductions go first."""
    t = np.asarray(targets, np.float64)
    q0 = np.asarray(positions_qty, np.float64)
    px = np.asarray(prices, np.float64)
    fxa = np.broadcast_to(np.asarray(fx, np.float64), t.shape)
    n = len(t)
    if not (q0.shape == px.shape == t.shape and len(rules) == n):
        raise InputError("targets", "targets, positions_qty, prices and rules need one entry per instrument")
    if not (np.all(np.isfinite(px)) and np.all(px > 0) and np.all(np.isfinite(fxa)) and np.all(fxa > 0)):
        raise InputError("prices", "prices and fx must be finite and > 0")
    unit = np.array([r.unit_value(p) for r, p in zip(rules, px)]) * fxa     # account currency per qty unit
    lots = np.array([r.lot_step for r in rules])
    # toward zero, never beyond the target: trunc can land one lot short when t / unit / lots is an
    # integer computed a few ulps low, so take the next lot if its notional is still within |t|
    target_lots = np.trunc(t / unit / lots)
    step_up = target_lots + np.sign(t)
    target_lots = np.where(np.abs(step_up * lots * unit) <= np.abs(t), step_up, target_lots)
    pos_lots = np.round(q0 / lots)
    delta_lots = target_lots - pos_lots
    counters = {"skipped_min_qty": 0, "skipped_min_notional": 0} | {f"vetoed_{k}": 0 for k in LIMIT_NAMES}
    orders = np.zeros(n)
    pos = pos_lots * lots * unit
    candidates = []
    for i in np.flatnonzero(delta_lots):
        qty = abs(delta_lots[i]) * lots[i]
        if qty < rules[i].min_qty * (1 - 1e-12):
            counters["skipped_min_qty"] += 1
            continue
        if qty * rules[i].unit_value(px[i]) < rules[i].min_notional * (1 - 1e-12):
            counters["skipped_min_notional"] += 1
            continue
        new = target_lots[i] * lots[i] * unit[i]
        reduces = abs(new) <= abs(pos[i]) and new * pos[i] >= 0
        candidates.append((0 if reduces else 1, -abs(new), int(i), new))
    for _, _, j, new in sorted(candidates):
        trial = pos.copy()
        trial[j] = new
        worse = _worsens(violations(pos, state, limits), violations(trial, state, limits))
        if worse is not None:
            counters[f"vetoed_{worse}"] += 1
            continue
        pos = trial
        orders[j] = delta_lots[j] * lots[j]
    return orders, pos, counters


def size(direction, unit_risk, positions_qty, prices, fx, rules: list[OrderRules], state: PortfolioState,
         limits: SizingLimits, *, stop_distance=None, scale=None) -> SizingDecision:
    """Risk-budget notionals -> safety projection -> lot-rounded orders (see the module text).

    Instruments with direction 0 keep their current position (the sizer only sizes what a signal
    asks for); use a target of 0 through `project` + `plan_orders` to flatten."""
    want = risk_budget_notional(direction, unit_risk, state.equity, limits, stop_distance=stop_distance, scale=scale)
    d = np.asarray(direction, np.float64)
    proposal = np.where(d != 0, want, np.asarray(state.positions, np.float64))
    proj = project_report(proposal, state, limits)
    orders, positions, counters = plan_orders(proj.action, positions_qty, prices, fx, rules, state, limits)
    counters["projections"] = int(proj.changed)
    for name in LIMIT_NAMES:
        counters[f"projected_{name}"] = proj.binding.count(name)
    return SizingDecision(proj.action, orders, positions, proj, counters)


def preset_500_eur() -> tuple[SizingLimits, dict[str, OrderRules]]:
    """Limits for a 500 EUR account and Binance's order rules for the recorded instruments.

    Risk: 1% of equity (5 EUR at 500) at CVaR_95 per trade, 100% of equity per instrument, 150% per
    underlying, 200% gross, 100% net, 10% drawdown stop, portfolio CVaR_95 at most 2% of equity.
    Venue rules as published in Binance's exchangeInfo filters in 2024 (LOT_SIZE, MIN_NOTIONAL /
    NOTIONAL; COIN-M contracts are 100 USD (BTC) and 10 USD (ETH)); refresh them before trading.
    With 500 EUR, USD-M BTCUSDT's 100 USDT minimum notional skips small trades there: that is
    what the skip counters are for."""
    limits = SizingLimits(risk_per_trade=0.01, max_position=1.0, max_group_gross=1.5, max_gross=2.0, max_net=1.0,
                          max_drawdown=0.10, cvar_level=0.95, max_portfolio_cvar=0.02)
    rules = [
        OrderRules("BTCUSDT@binance-usdm", "BTC", lot_step=0.001, min_qty=0.001, min_notional=100.0),
        OrderRules("ETHUSDT@binance-usdm", "ETH", lot_step=0.001, min_qty=0.001, min_notional=20.0),
        OrderRules("BTCUSDT@binance-spot", "BTC", lot_step=0.00001, min_qty=0.00001, min_notional=5.0, allow_short=False),
        OrderRules("ETHUSDT@binance-spot", "ETH", lot_step=0.0001, min_qty=0.0001, min_notional=5.0, allow_short=False),
        OrderRules("BTCUSD_PERP@binance-coinm", "BTC", lot_step=1, min_qty=1, inverse=True, contract_size=100.0),
        OrderRules("ETHUSD_PERP@binance-coinm", "ETH", lot_step=1, min_qty=1, inverse=True, contract_size=10.0),
    ]
    return limits, {r.symbol: r for r in rules}


__all__ = [
    "LIMIT_NAMES", "OrderRules", "PortfolioState", "Projection", "SizingDecision", "SizingLimits", "box_bounds",
    "is_feasible", "plan_orders", "preset_500_eur", "project", "project_report", "risk_budget_notional", "size",
    "violations", "violations_core",
]
