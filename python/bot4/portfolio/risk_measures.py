"""Value at risk and conditional value at risk (expected shortfall) of a return sample
(METHODS.md §7.3 and §16).

Conventions, pinned once here because packages disagree (METHODS §7.3 lists four answers on one
sample):

- Inputs are simple returns r; losses are L = -r and VaR/CVaR are reported as positive losses
  (a fraction of the position's value). `level` is the confidence beta in (0, 1), e.g. 0.95.
- Historical VaR_beta is the lower beta-quantile of L: the order statistic L_(k), k = ceil(beta n)
  (1-based, ascending). This is skfolio 1.12.2's `value_at_risk` (-x_(floor((1-beta) n) + 1)).
- Historical CVaR_beta is the Rockafellar-Uryasev value at nu = VaR:
  CVaR = VaR + sum_i (L_i - VaR)^+ / ((1 - beta) n), i.e. the average of the worst (1 - beta) n
  losses with the fractional atom weighted in; when (1 - beta) n is an integer k it is the plain
  mean of the k largest losses.
- Cornish-Fisher (modified) VaR at alpha = 1 - beta, z = Phi^-1(alpha), skewness S and kurtosis K
  (not excess): z_cf = z + (z^2 - 1) S/6 + (z^3 - 3z)(K - 3)/24 - (2z^3 - 5z) S^2/36 and
  VaR = -(mu + z_cf sigma). mu is the sample mean, sigma the sample standard deviation (ddof=1),
  S and K the moment ratios m3/m2^1.5 and m4/m2^2 (scipy.stats.skew / kurtosis(fisher=False) with
  their default bias=True).
- Cornish-Fisher CVaR integrates the CF quantile over the tail, in closed form:
  CVaR = -mu + sigma (phi(z)/alpha) [1 + S z/6 + (K - 3)(z^2 - 1)/24 - S^2 (2 z^2 - 1)/36],
  using E[Z^k | Z <= z] of the standard normal (k = 1..3). With S = 0, K = 3 it is the normal ES.
  It is not the Boudt-Peterson-Croux "modified ES" (an Edgeworth-density expansion), which differs.
  The CF map is a valid quantile function only where it is increasing; `monotone` on the result
  says whether it is increasing on the whole real line (Maillard 2012's domain of validity).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from bot4.errors import InputError

#: fewest observations for the moment-based (Cornish-Fisher) estimate: a fourth moment from
#: fewer points is noise.
MIN_SAMPLES_CF = 30

# ceil(beta * n) with beta * n a float: 0.9 * 10 = 9.000000000000002 must give 9, not 10.
_CEIL_SLACK = 1e-9


@dataclass(frozen=True)
class RiskEstimate:
    """VaR and CVaR as positive loss fractions at confidence `level` from `n` returns.

    method: "historical" or "cornish-fisher". For Cornish-Fisher, mean/std/skew/kurtosis are the
    moments used and `monotone` says whether the CF quantile map is increasing everywhere.
    """

    method: str
    level: float
    var: float
    cvar: float
    n: int
    mean: float = math.nan
    std: float = math.nan
    skew: float = math.nan
    kurtosis: float = math.nan
    z_cf: float = math.nan
    monotone: bool = True


def _check_level(level: float) -> float:
    level = float(level)
    if not (0.0 < level < 1.0) or not math.isfinite(level):
        raise InputError("level", f"must be a confidence in (0, 1), got {level!r}", "pass e.g. 0.95")
    return level


def clean_returns(returns, *, param: str = "returns", min_samples: int = 1) -> np.ndarray:
    """A 1-D float64 copy of `returns`, refusing NaN/inf and samples shorter than `min_samples`."""
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim != 1:
        raise InputError(param, f"must be one-dimensional, got shape {r.shape}")
    bad = int(np.count_nonzero(~np.isfinite(r)))
    if bad:
        raise InputError(param, f"{bad} of {len(r)} values are NaN or infinite", "drop or fill them before estimating risk")
    if len(r) < min_samples:
        raise InputError(param, f"{len(r)} observations, at least {min_samples} needed", "use a longer window")
    return r.copy()


def min_samples_historical(level: float) -> int:
    """Fewest observations for which the (1 - level) tail holds at least one full observation."""
    level = _check_level(level)
    return max(1, math.ceil(1.0 / (1.0 - level) - _CEIL_SLACK))


def historical(returns, level: float = 0.95) -> RiskEstimate:
    """Historical VaR (lower level-quantile of losses) and Rockafellar-Uryasev CVaR."""
    level = _check_level(level)
    r = clean_returns(returns, min_samples=min_samples_historical(level))
    losses = np.sort(-r)
    n = len(losses)
    k = max(1, math.ceil(level * n - _CEIL_SLACK))
    var = float(losses[k - 1])
    excess = losses[losses > var] - var
    cvar = var + float(excess.sum()) / ((1.0 - level) * n)
    return RiskEstimate("historical", level, var, cvar, n)


def cornish_fisher_z(z: float, skew: float, kurtosis: float) -> float:
    """The Cornish-Fisher adjusted standard-normal quantile (kurtosis is not excess)."""
    ek = kurtosis - 3.0
    return z + (z * z - 1.0) * skew / 6.0 + (z**3 - 3.0 * z) * ek / 24.0 - (2.0 * z**3 - 5.0 * z) * skew * skew / 36.0


def cornish_fisher_monotone(skew: float, kurtosis: float) -> bool:
    """True when z -> z_cf is increasing on the whole real line (its derivative, a quadratic
    a z^2 + b z + c, stays positive)."""
    a = (kurtosis - 3.0) / 8.0 - skew * skew / 6.0
    b = skew / 3.0
    c = 1.0 - (kurtosis - 3.0) / 8.0 + 5.0 * skew * skew / 36.0
    if a > 0.0:
        return b * b - 4.0 * a * c < 0.0
    return a == 0.0 and b == 0.0 and c > 0.0


def cornish_fisher(returns, level: float = 0.95) -> RiskEstimate:
    """Cornish-Fisher VaR and the CVaR obtained by integrating the CF quantile over the tail."""
    level = _check_level(level)
    r = clean_returns(returns, min_samples=MIN_SAMPLES_CF)
    mu = float(r.mean())
    sigma = float(r.std(ddof=1))
    d = r - mu
    m2 = float(np.mean(d * d))
    if m2 <= 0.0:
        raise InputError("returns", "all returns are equal: skewness and kurtosis are undefined", "use historical()")
    s = float(np.mean(d**3)) / m2**1.5
    k = float(np.mean(d**4)) / m2**2
    return cornish_fisher_from_moments(mu, sigma, s, k, level, n=len(r))


def cornish_fisher_from_moments(mean: float, std: float, skew: float, kurtosis: float, level: float = 0.95,
                                n: int = 0) -> RiskEstimate:
    """Cornish-Fisher VaR/CVaR from given moments (kurtosis not excess); see the module text."""
    level = _check_level(level)
    mean, std, skew, kurtosis = float(mean), float(std), float(skew), float(kurtosis)
    for name, v in (("mean", mean), ("std", std), ("skew", skew), ("kurtosis", kurtosis)):
        if not math.isfinite(v):
            raise InputError(name, f"must be finite, got {v!r}")
    if std < 0.0:
        raise InputError("std", f"must be >= 0, got {std!r}")
    alpha = 1.0 - level
    z = float(stats.norm.ppf(alpha))
    zcf = cornish_fisher_z(z, skew, kurtosis)
    var = -(mean + zcf * std)
    tail = float(stats.norm.pdf(z)) / alpha * (
        1.0 + skew * z / 6.0 + (kurtosis - 3.0) * (z * z - 1.0) / 24.0 - skew * skew * (2.0 * z * z - 1.0) / 36.0)
    cvar = -mean + std * tail
    return RiskEstimate("cornish-fisher", level, var, cvar, n, mean, std, skew, kurtosis, zcf,
                        cornish_fisher_monotone(skew, kurtosis))


def risk_estimate(returns, level: float = 0.95, method: str = "historical") -> RiskEstimate:
    """Dispatch on `method`: "historical" or "cornish-fisher"."""
    if method == "historical":
        return historical(returns, level)
    if method == "cornish-fisher":
        return cornish_fisher(returns, level)
    raise InputError("method", f"unknown method {method!r}", "use 'historical' or 'cornish-fisher'")


def conservative_cvar(returns, level: float = 0.95) -> float:
    """The larger of the historical and the Cornish-Fisher CVaR (the sizer's per-unit risk).

    The CF figure is used only where its quantile map is monotone and the sample is long enough
    for four moments; otherwise the historical figure stands alone."""
    h = historical(returns, level)
    r = np.asarray(returns, dtype=np.float64)
    if len(r) < MIN_SAMPLES_CF or float(np.ptp(r)) == 0.0:
        return h.cvar
    cf = cornish_fisher(r, level)
    return max(h.cvar, cf.cvar) if cf.monotone else h.cvar


def portfolio_cvar(scenarios, weights, level: float = 0.95) -> float:
    """Historical CVaR of the portfolio loss -scenarios @ weights (scenarios: T x n returns,
    weights: n exposures, in currency for a currency loss). Positively homogeneous in weights."""
    s = np.asarray(scenarios, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    if s.ndim != 2 or w.ndim != 1 or s.shape[1] != len(w):
        raise InputError("scenarios", f"shape {s.shape} does not match {len(w)} weights", "pass a T x n return matrix")
    # Each scenario's P&L summed over the instruments in index order, as the core sums it
    # (core/portfolio/risk_measures.cpp): BLAS's product sums in an order of its own, and exposures
    # that cancel then leave a few ulps of P&L either side of zero, which decides a zero CVaR limit.
    pnl = np.zeros(s.shape[0])
    for j in range(len(w)):
        pnl += s[:, j] * w[j]
    return historical(pnl, level).cvar


__all__ = [
    "MIN_SAMPLES_CF", "RiskEstimate", "clean_returns", "conservative_cvar", "cornish_fisher",
    "cornish_fisher_from_moments", "cornish_fisher_monotone", "cornish_fisher_z", "historical",
    "min_samples_historical", "portfolio_cvar", "risk_estimate",
]
