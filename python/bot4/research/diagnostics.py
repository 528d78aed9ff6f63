"""Residual diagnostics: Ljung-Box Q and Engle's ARCH-LM test (METHODS.md §6).

Run Ljung-Box on the standardized residuals z_t and on z_t^2, and ARCH-LM on z_t, after a GARCH fit;
neither should reject after a good fit. Same conventions as statsmodels' `acorr_ljungbox` and
`het_arch` (which does not demean: pass residuals).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats


def _series(x, name: str = "x") -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1 or a.size < 3:
        raise ValueError(f"{name} must be a 1-D series of at least 3 values, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite")
    return a


@dataclass(frozen=True)
class LjungBox:
    """Ljung-Box Q test of residual autocorrelation at each lag tested (arrays of the lags' length)."""

    lags: np.ndarray        # the lags h tested
    stat: np.ndarray        # Q(h)
    pvalue: np.ndarray      # P(chi2(h - model_df) > Q(h)); NaN where h <= model_df


def ljung_box(x, lags=10, model_df: int = 0) -> LjungBox:
    """Q(h) = n (n + 2) sum_{k<=h} rho_k^2 / (n - k), rho_k the biased ACF of the demeaned series.

    `lags` is an int (every lag 1..lags) or a list of lags."""
    a = _series(x)
    n = a.size
    hs = np.arange(1, int(np.asarray(lags).item()) + 1) if np.ndim(lags) == 0 else np.asarray(lags, dtype=np.int64)
    if hs.size == 0 or hs.min() < 1 or hs.max() >= n:
        raise ValueError(f"lags must lie in [1, {n - 1}], got {lags!r}")
    d = a - a.mean()
    denom = float(np.dot(d, d))
    if denom == 0:
        raise ValueError("the series is constant: its autocorrelation is undefined")
    kmax = int(hs.max())
    acf = np.array([np.dot(d[k:], d[:n - k]) / denom for k in range(1, kmax + 1)])
    q = n * (n + 2) * np.cumsum(acf ** 2 / (n - np.arange(1, kmax + 1)))
    q = q[hs - 1]
    df = hs - int(model_df)
    with np.errstate(invalid="ignore"):
        p = np.where(df > 0, stats.chi2.sf(q, np.maximum(df, 1)), np.nan)
    return LjungBox(hs, q, p)


@dataclass(frozen=True)
class ArchLM:
    """Engle's ARCH-LM test of squared residuals on nlags of their own lags (LM and F forms)."""

    lm: float               # n_eff * R^2 of e_t^2 on a constant and e^2_{t-1..t-q}
    lm_pvalue: float        # chi2(q)
    fval: float             # the regression's F statistic
    f_pvalue: float         # F(q, n_eff - q - 1)
    nlags: int


def arch_lm(resid, nlags: int | None = None, ddof: int = 0) -> ArchLM:
    """Engle's LM test for ARCH effects in residuals (not demeaned). Default lags: statsmodels'
    min(10, n // 5)."""
    e = _series(resid, "resid")
    q = int(nlags) if nlags is not None else min(10, e.size // 5)
    if q < 1 or e.size - q < q + 2:
        raise ValueError(f"nlags must be >= 1 and leave more than nlags + 1 rows; got {nlags!r} for {e.size}")
    e2 = e ** 2
    yv = e2[q:]
    X = np.column_stack([np.ones(yv.size)] + [e2[q - k:e.size - k] for k in range(1, q + 1)])
    beta, *_ = np.linalg.lstsq(X, yv, rcond=None)
    resid2 = yv - X @ beta
    ssr = float(np.dot(resid2, resid2))
    centred = yv - yv.mean()
    tss = float(np.dot(centred, centred))
    if tss == 0:
        raise ValueError("squared residuals are constant: the ARCH-LM regression is undefined")
    r2 = 1.0 - ssr / tss
    n_eff = yv.size
    lm = (n_eff - ddof) * r2
    df_resid = n_eff - X.shape[1]
    fval = (r2 / q) / ((1 - r2) / df_resid)
    return ArchLM(lm=float(lm), lm_pvalue=float(stats.chi2.sf(lm, q)), fval=float(fval),
                  f_pvalue=float(stats.f.sf(fval, q, df_resid)), nlags=q)


def garch_diagnostics(z, lags: int = 10, arch_lags: int = 5) -> dict:
    """Ljung-Box on z and z^2 at `lags` and ARCH-LM on z, as one JSON-ready dict."""
    zz = _series(z, "z")
    lb = ljung_box(zz, [lags])
    lb2 = ljung_box(zz ** 2, [lags])
    lm = arch_lm(zz, arch_lags)
    return {"ljung_box_z": {"lag": lags, "stat": float(lb.stat[0]), "pvalue": float(lb.pvalue[0])},
            "ljung_box_z2": {"lag": lags, "stat": float(lb2.stat[0]), "pvalue": float(lb2.pvalue[0])},
            "arch_lm_z": {"nlags": lm.nlags, "lm": lm.lm, "pvalue": lm.lm_pvalue}}
