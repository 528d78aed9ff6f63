"""Bounded calibration maps (isotonic, Platt, beta) exported as the core's breakpoint table, and
the choice between them on validation data (METHODS.md §3, §17).

Every map is a function of the model's raw P(y = 1) and is exported as an IsotonicTable: breakpoints
x (raw p, strictly increasing) and y (calibrated p), applied with linear interpolation and clipped
outside, which is exactly what core/inference/isotonic_table applies. The probabilities this
module reports are always `table.apply(raw)`, so research and the core use the same numbers.

Bounds. Raw isotonic maps reach exact 0 and 1 on small or separable blocks (log-loss ~5 out of
sample). Here each isotonic block's rate is shrunk toward the pooled rate p_bar with k pseudo-rows,
(n_b y_b + k p_bar) / (n_b + k), re-made monotone by a weighted PAVA, and every map (isotonic, Platt,
beta) is clipped to [eps, 1 - eps] with eps = 1 / (2 n) for n calibration rows: no probability is
more extreme than half an observation of the calibration set.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize, special

from bot4.research.calibration import IsotonicTable, _check_binary, fit_isotonic, log_loss

METHODS = ("isotonic", "platt", "beta")
LOGIT_CLIP = 1e-12           # raw p is clipped to [c, 1 - c] before any logarithm
TABLE_POINTS = 257           # breakpoints of an exported smooth (Platt / beta) map
TABLE_MARGIN_LOGIT = 2.0     # the table extends this far (log-odds) beyond the calibration scores
MIN_ISOTONIC_ROWS = 1000     # isotonic overfits below ~1k rows (METHODS.md §3): not offered there


def _raw(p, n=None) -> np.ndarray:
    a = np.asarray(p, dtype=np.float64)
    if a.ndim != 1 or a.size == 0 or (n is not None and a.size != n):
        raise ValueError(f"raw probabilities must be a non-empty 1-D array, got shape {a.shape}")
    if not np.all(np.isfinite(a)) or np.any(a < 0) or np.any(a > 1):
        raise ValueError("raw probabilities must be finite and in [0, 1]")
    return a


def _logit(p):
    q = np.clip(p, LOGIT_CLIP, 1 - LOGIT_CLIP)
    return np.log(q) - np.log1p(-q)


@dataclass(frozen=True)
class FittedCalibration:
    """A fitted map: `table` is what the core applies; `params` the map's own parameters."""
    method: str
    table: IsotonicTable
    eps: float
    rows: int
    params: dict = field(default_factory=dict)

    def apply(self, raw) -> np.ndarray:
        """Calibrated probabilities, float64 with the shape of `raw` (uncalibrated P(up) in [0, 1])."""
        return self.table.apply(raw)

    def to_dict(self) -> dict:
        """method, eps, rows, params and the table's x/y, JSON-able (the model sidecar's calibration entry).
        """
        return {"method": self.method, "eps": self.eps, "rows": self.rows, "params": self.params,
                **self.table.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> FittedCalibration:
        """The calibration written by to_dict."""
        return cls(method=str(d["method"]), table=IsotonicTable.from_dict(d), eps=float(d["eps"]),
                   rows=int(d["rows"]), params=dict(d.get("params", {})))


def _logistic_fit(F: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Unpenalised logistic regression of targets t in [0, 1] on columns F plus an intercept:
    w minimising sum -t log s(Fw) - (1 - t) log(1 - s(Fw)). Returns w (last entry the intercept)."""
    X = np.column_stack([F, np.ones(F.shape[0])])

    def loss_grad(w):
        z = X @ w
        # log(1 + e^z) - t z, the binomial deviance in a stable form
        loss = np.sum(np.logaddexp(0.0, z) - t * z)
        grad = X.T @ (special.expit(z) - t)
        return loss, grad

    res = optimize.minimize(loss_grad, np.zeros(X.shape[1]), jac=True, method="L-BFGS-B",
                            options={"gtol": 1e-10, "ftol": 1e-15, "maxiter": 10_000})
    return res.x


def _smooth_table(fn, raw: np.ndarray, eps: float) -> IsotonicTable:
    s = _logit(raw)
    limit = float(_logit(np.array([1 - LOGIT_CLIP]))[0])
    lo = max(float(s.min()) - TABLE_MARGIN_LOGIT, -limit)
    hi = min(float(s.max()) + TABLE_MARGIN_LOGIT, limit)
    if not hi > lo:
        lo, hi = lo - 1.0, hi + 1.0
    x = special.expit(np.linspace(lo, hi, TABLE_POINTS))
    x = np.unique(x)                     # expit can merge neighbours at the extremes
    return IsotonicTable(x, np.clip(fn(x), eps, 1 - eps))


def platt_map(raw, a: float, b: float) -> np.ndarray:
    """Platt: p' = 1 / (1 + exp(a s + b)) with s = logit(raw p) (xgboost's margin)."""
    return special.expit(-(a * _logit(np.asarray(raw, dtype=np.float64)) + b))


def fit_platt(raw, y, eps: float | None = None) -> FittedCalibration:
    """Platt scaling on s = logit(raw), with Platt's smoothed targets (N+ + 1)/(N+ + 2) and
    1/(N- + 2) (as sklearn's sigmoid calibration)."""
    p = _raw(raw)
    t = _check_binary(y, p.size)
    n1 = float(t.sum())
    n0 = t.size - n1
    target = np.where(t > 0, (n1 + 1) / (n1 + 2), 1 / (n0 + 2))
    w = _logistic_fit(_logit(p)[:, None], target)
    a, b = -float(w[0]), -float(w[1])
    e = 1 / (2 * p.size) if eps is None else float(eps)
    table = _smooth_table(lambda x: platt_map(x, a, b), p, e)
    return FittedCalibration("platt", table, e, int(p.size), {"a": a, "b": b})


def beta_map(raw, a: float, b: float, c: float) -> np.ndarray:
    """Beta calibration: p' = 1 / (1 + 1 / (e^c p^a / (1 - p)^b)) = s(c + a ln p - b ln(1 - p))."""
    q = np.clip(np.asarray(raw, dtype=np.float64), LOGIT_CLIP, 1 - LOGIT_CLIP)
    return special.expit(c + a * np.log(q) - b * np.log1p(-q))


def fit_beta(raw, y, eps: float | None = None) -> FittedCalibration:
    """Beta calibration (Kull, Silva Filho & Flach 2017): logistic regression of y on
    [ln p, -ln(1 - p)] with a, b >= 0; a negative coefficient is dropped and the fit redone."""
    p = _raw(raw)
    t = _check_binary(y, p.size)
    q = np.clip(p, LOGIT_CLIP, 1 - LOGIT_CLIP)
    F = np.column_stack([np.log(q), -np.log1p(-q)])
    keep = [0, 1]
    while True:
        w = _logistic_fit(F[:, keep], t)
        coef = dict(zip(keep, w[:-1]))
        negative = [k for k, v in coef.items() if v < 0]
        if not negative:
            break
        keep = [k for k in keep if k != min(negative, key=lambda k: coef[k])]
    a, b, c = float(coef.get(0, 0.0)), float(coef.get(1, 0.0)), float(w[-1])
    e = 1 / (2 * p.size) if eps is None else float(eps)
    table = _smooth_table(lambda x: beta_map(x, a, b, c), p, e)
    return FittedCalibration("beta", table, e, int(p.size), {"a": a, "b": b, "c": c})


def fit_bounded_isotonic(raw, y, shrink_rows: float = 10.0, eps: float | None = None) -> FittedCalibration:
    """Isotonic (PAVA, sklearn's IsotonicRegression) with each block shrunk toward the pooled rate
    by `shrink_rows` pseudo-rows, made monotone again, and clipped to [eps, 1 - eps]."""
    from sklearn.isotonic import isotonic_regression

    p = _raw(raw)
    t = _check_binary(y, p.size)
    if not shrink_rows >= 0:
        raise ValueError(f"shrink_rows must be >= 0, got {shrink_rows!r}")
    table = fit_isotonic(p, t)
    fitted = table.apply(p)                    # every calibration row sits on its block's value
    values, inverse = np.unique(table.y, return_inverse=True)
    # rows per distinct fitted value (blocks sharing a value are one block for the shrinkage)
    counts = np.bincount(np.searchsorted(values, fitted), minlength=values.size).astype(np.float64)
    pbar = float(t.mean())
    k = float(shrink_rows)
    shrunk = (counts * values + k * pbar) / np.maximum(counts + k, 1e-300)
    shrunk = np.where(counts + k > 0, shrunk, values)
    mono = isotonic_regression(shrunk, sample_weight=counts + k + 1e-12)
    e = 1 / (2 * p.size) if eps is None else float(eps)
    y_new = np.clip(mono[inverse], e, 1 - e)
    return FittedCalibration("isotonic", IsotonicTable(table.x, y_new), e, int(p.size),
                             {"shrink_rows": k, "pooled_rate": pbar, "blocks": int(values.size)})


FITTERS: dict[str, Callable[..., FittedCalibration]] = {"isotonic": fit_bounded_isotonic, "platt": fit_platt,
                                                         "beta": fit_beta}


def fit_calibration(method: str, raw, y, **kwargs) -> FittedCalibration:
    """Fit calibration `method` (one of METHODS: isotonic, platt, beta) of raw P(up) to 0/1 labels `y`
    (1-D arrays of equal length, time order); keyword arguments go to the method's fitter.
    ValueError for an unknown method.
    """
    if method not in FITTERS:
        raise ValueError(f"unknown calibration method {method!r} (one of {METHODS})")
    return FITTERS[method](raw, y, **kwargs)


@dataclass(frozen=True)
class Selection:
    """What select_calibration chose and the validation log-loss of every method offered."""

    chosen: FittedCalibration             # refitted on all the calibration rows
    scores: dict                          # method -> validation log-loss (None if not offered)
    fit_rows: int
    validation_rows: int


def select_calibration(raw, y, methods=METHODS, *, validation_fraction: float = 0.3, purge_rows: int = 0,
                       min_isotonic_rows: int = MIN_ISOTONIC_ROWS) -> Selection:
    """Fit each method on the earlier part of the (time-ordered) calibration rows, score log-loss on
    the last `validation_fraction`, with `purge_rows` rows dropped between the two (the label
    horizon, so no fitting label overlaps a validation label); refit the best on all the rows.
    Isotonic is offered only with at least `min_isotonic_rows` fitting rows."""
    p = _raw(raw)
    t = _check_binary(y, p.size)
    bad = [m for m in methods if m not in FITTERS]
    if bad or not methods:
        raise ValueError(f"methods must be a non-empty subset of {METHODS}, got {methods!r}")
    if not 0 < validation_fraction < 1:
        raise ValueError(f"validation_fraction must be in (0, 1), got {validation_fraction!r}")
    n = p.size
    cut = int(math.floor(n * (1 - validation_fraction)))
    fit_end = max(0, cut - int(purge_rows))
    scores: dict[str, float | None] = {}
    if fit_end >= 2 and n - cut >= 2 and 0 < t[:fit_end].sum() < fit_end:
        for m in methods:
            if m == "isotonic" and fit_end < min_isotonic_rows:
                scores[m] = None
                continue
            f = fit_calibration(m, p[:fit_end], t[:fit_end])
            scores[m] = log_loss(t[cut:], f.apply(p[cut:]))
    offered = {m: s for m, s in scores.items() if s is not None}
    if offered:
        best = min(offered, key=lambda m: offered[m])
    else:   # too few rows to validate: the smoothest map offered
        best = "platt" if "platt" in methods else methods[0]
    if 0 < t.sum() < t.size:
        chosen = fit_calibration(best, p, t)
    else:
        raise ValueError("calibration rows hold a single class; no map can be fitted")
    return Selection(chosen, scores, int(fit_end), int(n - cut))
