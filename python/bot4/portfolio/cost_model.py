"""Transaction costs learned from fills: spread + fees + square-root impact (METHODS.md §15).

Per fill (TCA against the arrival mid, the mid when the order was sent):
    shortfall_bp = side * (fill_price - arrival_mid) / arrival_mid * 1e4      (side +1 buy, -1 sell)
    cost_bp      = shortfall_bp + fee_bp
    impact_bp    = shortfall_bp - half_spread_bp   (when the half-spread at arrival is known)

Model of the shortfall (fees are known, so they are added, not fitted):
    shortfall_bp = c + a * half_spread_bp + Y * sigma_bp * (Q / V)^delta + noise
with sigma_bp the volatility and V the depth or volume over the same horizon as Q (Toth et al.
2011; Bouchaud et al. 2018: Y of order 1, delta near 0.5).

- `fit_sqrt_law` fixes delta (0.5 by default) and fits (c, a, Y) by ordinary least squares, so its
  standard errors, t-based confidence intervals and R^2 are the textbook OLS ones (checked against
  statsmodels in the tests).
- `fit_power_law` also fits delta, by nonlinear least squares on the level of the shortfall (not a
  log-log regression: additive noise makes small fills' impact negative and their logs undefined,
  and dropping them biases the slope); its intervals come from the Gauss-Newton covariance
  s^2 (J'J)^-1, valid asymptotically.

Both report the range of Q/V they were fitted on; predictions outside it are extrapolations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats

from bot4.errors import InputError


@dataclass(frozen=True)
class Tca:
    """Per-fill transaction cost analysis in basis points of the arrival mid."""

    shortfall_bp: np.ndarray
    fee_bp: np.ndarray
    cost_bp: np.ndarray
    impact_bp: np.ndarray | None
    notional: np.ndarray

    @property
    def weighted_cost_bp(self) -> float:
        """Notional-weighted mean cost (bp)."""
        return float(np.sum(self.cost_bp * self.notional) / np.sum(self.notional))


def _vec(name: str, x, n: int | None = None) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 0 and n is not None:
        a = np.full(n, float(a))
    if a.ndim != 1:
        raise InputError(name, f"must be a 1-D array, got shape {a.shape}")
    if n is not None and len(a) != n:
        raise InputError(name, f"has {len(a)} values, expected {n} (one per fill)")
    bad = np.flatnonzero(~np.isfinite(a))
    if len(bad):
        raise InputError(name, f"{len(bad)} values are NaN or infinite (first at fill {bad[0]})")
    return a


def _positive(name: str, a: np.ndarray, strict: bool = True) -> None:
    bad = np.flatnonzero(a <= 0 if strict else a < 0)
    if len(bad):
        raise InputError(name, f"{len(bad)} values are {'<= 0' if strict else '< 0'} (first at fill {bad[0]}: {a[bad[0]]!r})")


def tca(side, fill_price, arrival_mid, qty, fee_bp=0.0, half_spread=None) -> Tca:
    """Implementation shortfall per fill against the arrival mid (see the module text).

    side: +1 buy / -1 sell; qty in instrument units (only used for the notional weights);
    half_spread: optional half-spread at arrival in price units."""
    s = _vec("side", side)
    n = len(s)
    if not np.all(np.isin(s, (-1.0, 1.0))):
        raise InputError("side", "must be +1 (buy) or -1 (sell) for every fill")
    px = _vec("fill_price", fill_price, n)
    mid = _vec("arrival_mid", arrival_mid, n)
    q = _vec("qty", qty, n)
    fee = _vec("fee_bp", fee_bp, n)
    _positive("fill_price", px)
    _positive("arrival_mid", mid)
    _positive("qty", q)
    short = s * (px - mid) / mid * 1e4
    impact = None
    if half_spread is not None:
        hs = _vec("half_spread", half_spread, n)
        _positive("half_spread", hs, strict=False)
        impact = short - hs / mid * 1e4
    return Tca(short, fee, short + fee, impact, px * q)


@dataclass(frozen=True)
class CostFit:
    """A fitted cost model: parameter names, estimates, standard errors, `level` confidence
    intervals, R^2, residual standard deviation (bp), fills used and the Q/V range."""

    names: tuple[str, ...]
    params: np.ndarray
    se: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    r2: float
    resid_std: float
    n: int
    qv_range: tuple[float, float]
    level: float
    method: str

    def __getitem__(self, name: str) -> float:
        return float(self.params[self.names.index(name)])

    def ci(self, name: str) -> tuple[float, float]:
        """The `level` confidence interval (low, high) of parameter `name` ("c", "a", "Y", "delta")."""
        i = self.names.index(name)
        return float(self.ci_low[i]), float(self.ci_high[i])

    def predict_shortfall_bp(self, half_spread_bp, sigma_bp, q_over_v) -> np.ndarray:
        """Expected shortfall (bp) of an order; add the fee (bp) for its full cost."""
        p = dict(zip(self.names, self.params))
        delta = p.get("delta", 0.5)
        qv = np.maximum(np.asarray(q_over_v, np.float64), 0.0)
        return (p["c"] + p["a"] * np.asarray(half_spread_bp, np.float64)
                + p["Y"] * np.asarray(sigma_bp, np.float64) * qv**delta)

    def expected_cost(self, notional, half_spread_bp, sigma_bp, q_over_v, fee_bp=0.0) -> np.ndarray:
        """Expected cost in currency of trading `notional` (the sizer's and router's use)."""
        bp = self.predict_shortfall_bp(half_spread_bp, sigma_bp, q_over_v) + np.asarray(fee_bp, np.float64)
        return np.abs(np.asarray(notional, np.float64)) * bp / 1e4


def _inputs(shortfall_bp, half_spread_bp, sigma_bp, q_over_v, min_fills: int):
    y = _vec("shortfall_bp", shortfall_bp)
    n = len(y)
    hs = _vec("half_spread_bp", half_spread_bp, n)
    sig = _vec("sigma_bp", sigma_bp, n)
    qv = _vec("q_over_v", q_over_v, n)
    _positive("half_spread_bp", hs, strict=False)
    _positive("sigma_bp", sig, strict=False)
    _positive("q_over_v", qv)
    if n < min_fills:
        raise InputError("shortfall_bp", f"{n} fills, at least {min_fills} needed for this fit")
    if np.ptp(qv) == 0:
        raise InputError("q_over_v", "every fill has the same size relative to depth: the impact law is not identified")
    return y, hs, sig, qv


def _r2(y: np.ndarray, resid: np.ndarray) -> float:
    tss = float(np.sum((y - y.mean()) ** 2))
    return 1.0 - float(np.sum(resid**2)) / tss if tss > 0 else math.nan


def fit_sqrt_law(shortfall_bp, half_spread_bp, sigma_bp, q_over_v, *, delta: float = 0.5, level: float = 0.95) -> CostFit:
    """OLS of shortfall_bp on [1, half_spread_bp, sigma_bp * (Q/V)^delta] with delta fixed."""
    y, hs, sig, qv = _inputs(shortfall_bp, half_spread_bp, sigma_bp, q_over_v, min_fills=6)
    X = np.column_stack([np.ones_like(y), hs, sig * qv**delta])
    if np.linalg.matrix_rank(X) < X.shape[1]:
        raise InputError("half_spread_bp", "the regressors are collinear (e.g. a constant half-spread): fit cannot separate them")
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    resid = y - X @ beta
    dof = len(y) - X.shape[1]
    s2 = float(resid @ resid) / dof
    cov = s2 * np.linalg.inv(X.T @ X)
    se = np.sqrt(np.diag(cov))
    t = float(stats.t.ppf(0.5 + level / 2, dof))
    return CostFit(("c", "a", "Y"), beta, se, beta - t * se, beta + t * se, _r2(y, resid), math.sqrt(s2), len(y),
                   (float(qv.min()), float(qv.max())), level, f"ols, delta={delta}")


def fit_power_law(shortfall_bp, half_spread_bp, sigma_bp, q_over_v, *, level: float = 0.95) -> CostFit:
    """Nonlinear least squares for (c, a, Y, delta), started from the delta = 0.5 OLS fit."""
    y, hs, sig, qv = _inputs(shortfall_bp, half_spread_bp, sigma_bp, q_over_v, min_fills=8)
    start = fit_sqrt_law(y, hs, sig, qv)
    lq = np.log(qv)

    def resid(p: np.ndarray) -> np.ndarray:
        c, a, Y, d = p
        return c + a * hs + Y * sig * np.exp(d * lq) - y

    def jac(p: np.ndarray) -> np.ndarray:
        _, _, Y, d = p
        g = sig * np.exp(d * lq)
        return np.column_stack([np.ones_like(y), hs, g, Y * g * lq])

    p0 = np.append(start.params, 0.5)
    # delta is kept in [0, 2] (the law is concave near 0.5; unbounded steps overflow exp on fills
    # far beyond the depth)
    lo = np.array([-np.inf, -np.inf, -np.inf, 0.0])
    hi = np.array([np.inf, np.inf, np.inf, 2.0])
    sol = optimize.least_squares(resid, p0, jac=jac, bounds=(lo, hi), method="trf", xtol=1e-12, ftol=1e-12)
    if not sol.success:
        raise InputError("shortfall_bp", f"nonlinear fit did not converge: {sol.message}", "use fit_sqrt_law")
    if sol.x[3] <= lo[3] + 1e-9 or sol.x[3] >= hi[3] - 1e-9:
        raise InputError("q_over_v", f"the exponent ran to its bound ({sol.x[3]:.3g}): no power law on these fills",
                         "use fit_sqrt_law")
    r = sol.fun
    J = jac(sol.x)
    dof = len(y) - 4
    s2 = float(r @ r) / dof
    try:
        cov = s2 * np.linalg.inv(J.T @ J)
    except np.linalg.LinAlgError as e:
        raise InputError("q_over_v", "the impact exponent is not identified on these fills", "use fit_sqrt_law") from e
    se = np.sqrt(np.diag(cov))
    t = float(stats.t.ppf(0.5 + level / 2, dof))
    return CostFit(("c", "a", "Y", "delta"), sol.x, se, sol.x - t * se, sol.x + t * se, _r2(y, r), math.sqrt(s2), len(y),
                   (float(qv.min()), float(qv.max())), level, "nonlinear least squares")


__all__ = ["CostFit", "Tca", "fit_power_law", "fit_sqrt_law", "tca"]
