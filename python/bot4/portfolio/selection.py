"""Diversified top-K by greedy submodular maximisation (METHODS.md §9).

Two objectives over a candidate set (instruments or signals), both maximised greedily with ties
broken by the lowest index:

- correlation penalty:  f(S) = sum_{i in S} s_i - lam * sum_{i<j in S} rho+_ij,  rho+ = max(rho, 0).
  Submodular because every penalty weight is >= 0 (hence rho+; raw negative correlations make
  those pairs supermodular). Monotone, and so within (1 - 1/e) of the optimum, when
  s_min >= lam (K - 1) max rho+ (`penalty_guarantee_holds`); otherwise greedy is a heuristic.
- facility location:    f(S) = sum_{i in S} s_i + lam * sum_j max_{i in S} sim_ij  with
  sim = (1 + rho) / 2 in [0, 1]: every candidate is "covered" by its most similar selected one.
  Monotone submodular for s >= 0, lam >= 0, sim >= 0, so greedy keeps the (1 - 1/e) bound. With
  s = 0 it is apricot's FacilityLocationSelection on a precomputed similarity.

Correlations come from trailing return windows (`rolling_correlation`); a column with no variance
in its window has no correlation, which is counted and taken as 0 (not NaN) so it neither blocks
nor attracts selection.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bot4.errors import InputError


@dataclass(frozen=True)
class Selection:
    """Chosen indices in the order picked, each pick's marginal gain and f(S)."""

    indices: tuple[int, ...]
    gains: tuple[float, ...]
    objective: float


def _check_scores_corr(scores, corr) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64)
    c = np.asarray(corr, dtype=np.float64)
    if s.ndim != 1:
        raise InputError("scores", f"must be one-dimensional, got shape {s.shape}")
    if c.shape != (len(s), len(s)):
        raise InputError("corr", f"must be {len(s)} x {len(s)}, got shape {c.shape}")
    if not np.all(np.isfinite(s)) or not np.all(np.isfinite(c)):
        raise InputError("corr", "scores and correlations must be finite", "replace NaN correlations with 0 (rolling_correlation does)")
    if not np.allclose(c, c.T, atol=1e-12):
        raise InputError("corr", "must be symmetric")
    return s, c


def _check_k(k: int, n: int) -> int:
    if not isinstance(k, (int, np.integer)) or k < 0:
        raise InputError("k", f"must be an integer >= 0, got {k!r}")
    return min(int(k), n)


def penalty_objective(scores, corr, subset, lam: float) -> float:
    """f(S) = sum s_i - lam * sum_{i<j} max(rho_ij, 0) over S."""
    s, c = np.asarray(scores, float), np.asarray(corr, float)
    idx = np.asarray(list(subset), dtype=int)
    if len(idx) == 0:
        return 0.0
    sub = np.maximum(c[np.ix_(idx, idx)], 0.0)
    return float(s[idx].sum() - lam * np.triu(sub, 1).sum())


def greedy_penalty(scores, corr, k: int, lam: float = 1.0, *, stop_at_nonpositive: bool = False) -> Selection:
    """Greedy maximisation of the correlation-penalty objective (see the module text)."""
    s, c = _check_scores_corr(scores, corr)
    if not (np.isfinite(lam) and lam >= 0):
        raise InputError("lam", f"must be >= 0, got {lam!r}")
    k = _check_k(k, len(s))
    rho = np.maximum(c, 0.0)
    np.fill_diagonal(rho, 0.0)
    penalty = np.zeros(len(s))          # lam * sum_{j in S} rho+_ij, kept incrementally
    free = np.ones(len(s), bool)
    picked: list[int] = []
    gains: list[float] = []
    for _ in range(k):
        g = np.where(free, s - penalty, -np.inf)
        i = int(np.argmax(g))           # first maximum: ties go to the lowest index
        if stop_at_nonpositive and g[i] <= 0:
            break
        picked.append(i)
        gains.append(float(g[i]))
        free[i] = False
        penalty += lam * rho[:, i]
    return Selection(tuple(picked), tuple(gains), float(sum(gains)))


def penalty_guarantee_holds(scores, corr, k: int, lam: float) -> bool:
    """Sufficient condition for monotonicity (hence the (1 - 1/e) bound): s_min >= lam (K-1) max rho+."""
    s, c = _check_scores_corr(scores, corr)
    off = c[~np.eye(len(s), dtype=bool)]
    rmax = float(np.maximum(off, 0.0).max()) if off.size else 0.0
    return bool(s.min() >= 0 and s.min() >= lam * (k - 1) * rmax)


def facility_location_objective(similarity, subset, scores=None, lam: float = 1.0) -> float:
    """sum_{i in S} s_i + lam * sum_j max_{i in S} sim_ij (0 for the empty set)."""
    sim = np.asarray(similarity, float)
    idx = np.asarray(list(subset), dtype=int)
    if len(idx) == 0:
        return 0.0
    cover = float(np.maximum(sim[idx].max(axis=0), 0.0).sum())
    base = 0.0 if scores is None else float(np.asarray(scores, float)[idx].sum())
    return base + lam * cover


def greedy_facility_location(similarity, k: int, scores=None, lam: float = 1.0) -> Selection:
    """Greedy maximisation of the (score +) facility-location objective; similarity >= 0.

    The coverage of each column starts at 0, as in apricot's FacilityLocationSelection."""
    sim = np.asarray(similarity, dtype=np.float64)
    if sim.ndim != 2 or sim.shape[0] != sim.shape[1]:
        raise InputError("similarity", f"must be square, got shape {sim.shape}")
    if not np.all(np.isfinite(sim)) or np.any(sim < 0):
        raise InputError("similarity", "must be finite and >= 0 (use (1 + rho) / 2 for correlations)")
    n = sim.shape[0]
    s = np.zeros(n) if scores is None else np.asarray(scores, dtype=np.float64)
    if s.shape != (n,) or not np.all(np.isfinite(s)):
        raise InputError("scores", f"must be {n} finite numbers")
    if not (np.isfinite(lam) and lam >= 0):
        raise InputError("lam", f"must be >= 0, got {lam!r}")
    k = _check_k(k, n)
    cover = np.zeros(n)
    free = np.ones(n, bool)
    picked: list[int] = []
    gains: list[float] = []
    for _ in range(k):
        g = s + lam * (np.maximum(sim, cover[None, :]).sum(axis=1) - cover.sum())
        g = np.where(free, g, -np.inf)
        i = int(np.argmax(g))
        picked.append(i)
        gains.append(float(g[i]))
        free[i] = False
        cover = np.maximum(cover, sim[i])
    return Selection(tuple(picked), tuple(gains), float(sum(gains)))


def top_k(scores, k: int) -> tuple[int, ...]:
    """Plain top-K by score (stable: ties to the lowest index)."""
    s = np.asarray(scores, dtype=np.float64)
    k = _check_k(k, len(s))
    return tuple(int(i) for i in np.argsort(-s, kind="stable")[:k])


@dataclass(frozen=True)
class Correlation:
    """A correlation matrix and the columns that had no variance (their correlations set to 0)."""

    matrix: np.ndarray
    constant_columns: tuple[int, ...]


def correlation(returns) -> Correlation:
    """Pearson correlation of the columns of a T x n return matrix (T >= 3, finite)."""
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim != 2 or r.shape[0] < 3:
        raise InputError("returns", f"must be a T x n matrix with T >= 3, got shape {r.shape}")
    if not np.all(np.isfinite(r)):
        raise InputError("returns", f"{int((~np.isfinite(r)).sum())} values are NaN or infinite")
    d = r - r.mean(axis=0)
    sd = np.sqrt((d * d).sum(axis=0))
    const = sd == 0
    z = np.divide(d, sd, out=np.zeros_like(d), where=~const)
    c = np.clip(z.T @ z, -1.0, 1.0)
    np.fill_diagonal(c, 1.0)
    return Correlation(c, tuple(int(i) for i in np.flatnonzero(const)))


def rolling_correlation(returns, end: int, window: int) -> Correlation:
    """Correlation of rows [end - window, end) only (trailing: nothing at or after `end`)."""
    if window < 3 or end < window:
        raise InputError("window", f"needs 3 <= window <= end, got window={window}, end={end}")
    return correlation(np.asarray(returns)[end - window:end])


def mean_pairwise(corr, subset) -> float:
    """Mean off-diagonal correlation among the chosen indices (nan for fewer than two)."""
    idx = np.asarray(list(subset), dtype=int)
    if len(idx) < 2:
        return float("nan")
    sub = np.asarray(corr, float)[np.ix_(idx, idx)]
    return float(sub[np.triu_indices(len(idx), 1)].mean())


@dataclass(frozen=True)
class ReductionReport:
    """Mean pairwise correlation of plain top-K and diversified picks over rolling decisions.

    in_sample: measured on the window the correlations came from; out_of_sample: on the next
    window (what the selection was for)."""

    decisions: int
    topk_in_sample: float
    diversified_in_sample: float
    topk_out_of_sample: float
    diversified_out_of_sample: float
    changed: int                 # decisions where the diversified set differs from top-K
    constant_columns: int        # column-windows with no variance (correlation taken as 0)

    @property
    def reduction_in_sample(self) -> float:
        return self.topk_in_sample - self.diversified_in_sample

    @property
    def reduction_out_of_sample(self) -> float:
        return self.topk_out_of_sample - self.diversified_out_of_sample


def compare_with_top_k(returns, scores, k: int, lam: float, window: int, step: int | None = None,
                       method: str = "penalty") -> ReductionReport:
    """Walk forward over a T x n return matrix: at each decision end (every `step` rows) take
    trailing correlations over `window` rows and scores[end] (a T x n matrix of scores known at
    that time), pick plain top-K and the diversified set, and measure both sets' mean pairwise
    correlation in that window and in the next one."""
    r = np.asarray(returns, dtype=np.float64)
    sc = np.asarray(scores, dtype=np.float64)
    if sc.shape != r.shape:
        raise InputError("scores", f"must match returns' shape {r.shape}, got {sc.shape}")
    if method not in ("penalty", "facility"):
        raise InputError("method", f"unknown {method!r}", "use 'penalty' or 'facility'")
    step = window if step is None else step
    ins: list[tuple[float, float]] = []
    oos: list[tuple[float, float]] = []
    changed = const = 0
    for end in range(window, r.shape[0] - window + 1, step):
        c = rolling_correlation(r, end, window)
        nxt = correlation(r[end:end + window])
        const += len(c.constant_columns)
        s = sc[end - 1]
        plain = top_k(s, k)
        if method == "penalty":
            div = greedy_penalty(s, c.matrix, k, lam).indices
        else:
            div = greedy_facility_location((1.0 + c.matrix) / 2.0, k, scores=s, lam=lam).indices
        changed += set(plain) != set(div)
        ins.append((mean_pairwise(c.matrix, plain), mean_pairwise(c.matrix, div)))
        oos.append((mean_pairwise(nxt.matrix, plain), mean_pairwise(nxt.matrix, div)))
    if not ins:
        raise InputError("window", f"{r.shape[0]} rows leave no decision with two windows of {window}")
    a, b = np.array(ins), np.array(oos)
    return ReductionReport(len(ins), float(a[:, 0].mean()), float(a[:, 1].mean()), float(b[:, 0].mean()),
                           float(b[:, 1].mean()), changed, const)


def mid_bars(ts_ns, mid, bar_ns: int, start_ns: int, end_ns: int) -> np.ndarray:
    """Last mid at or before each bar end t = start + bar, start + 2 bar, ... <= end (carried
    forward; nan before the first quote). ts_ns must be non-decreasing."""
    ts = np.asarray(ts_ns, dtype=np.int64)
    m = np.asarray(mid, dtype=np.float64)
    if ts.shape != m.shape or ts.ndim != 1:
        raise InputError("mid", "ts_ns and mid must be 1-D arrays of one length")
    if len(ts) and np.any(np.diff(ts) < 0):
        raise InputError("ts_ns", "must be non-decreasing")
    if bar_ns <= 0 or end_ns <= start_ns:
        raise InputError("bar_ns", "needs bar_ns > 0 and end_ns > start_ns")
    edges = np.arange(start_ns + bar_ns, end_ns + 1, bar_ns, dtype=np.int64)
    pos = np.searchsorted(ts, edges, side="right") - 1
    return np.where(pos >= 0, m[np.maximum(pos, 0)], np.nan)


__all__ = [
    "Correlation", "ReductionReport", "Selection", "compare_with_top_k", "correlation", "facility_location_objective",
    "greedy_facility_location", "greedy_penalty", "mean_pairwise", "mid_bars", "penalty_guarantee_holds",
    "penalty_objective", "rolling_correlation", "top_k",
]
