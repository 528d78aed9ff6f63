"""GARCH(1,1) with standardized Student-t innovations, fitted by maximum likelihood (METHODS.md §6).

r_t = mu + eps_t, eps_t = sigma_t z_t, sigma2_t = omega + alpha eps2_{t-1} + beta sigma2_{t-1},
z_t a unit-variance t with nu > 2 degrees of freedom. The likelihood follows the exact-match recipe
of METHODS.md §6 (the `arch` package's conventions): the pre-sample variance is the EWMA backcast
sum_{i<75} 0.94^i e_i^2 / sum_{i<75} 0.94^i of the residuals at the starting mean (y - mean(y) for a
constant mean, y for a zero mean), and sigma2_1 = omega + (alpha + beta) * backcast. Conditional
variances are kept inside the same loose bounds `arch` uses so that the likelihood never goes NaN.

Fit on a training window only, then `filter` forward with the frozen parameters: using full-sample
parameters for in-sample volatility in a backtest is look-ahead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize, signal, special

BACKCAST_DECAY = 0.94
BACKCAST_OBS = 75
NU_BOUNDS = (2.05, 500.0)          # arch's bounds on the t degrees of freedom
MEANS = ("constant", "zero")
PARAM_NAMES = ("mu", "omega", "alpha", "beta", "nu")


def backcast(resid) -> float:
    """EWMA of the first min(75, n) squared residuals with decay 0.94 (arch's GARCH backcast)."""
    e = np.asarray(resid, dtype=np.float64)
    tau = min(BACKCAST_OBS, e.size)
    w = BACKCAST_DECAY ** np.arange(tau)
    return float(np.dot(w / w.sum(), e[:tau] ** 2))


def variance_bounds(resid) -> np.ndarray:
    """(n, 2) lower / upper bounds of sigma2_t: an EWMA of e^2 / 1e6 and * 1e6, floored at var/1e8
    and capped to [1 + max e^2, 1e7 (1 + max e^2)] (the bounds `arch` applies)."""
    e = np.asarray(resid, dtype=np.float64)
    n = e.size
    tau = min(BACKCAST_OBS, n)
    w = BACKCAST_DECAY ** np.arange(tau)
    init = float(np.dot(w / w.sum(), e[:tau] ** 2))
    # ewma_0 = init, ewma_t = 0.06 e2_{t-1} + 0.94 ewma_{t-1}
    drive = (1 - BACKCAST_DECAY) * np.concatenate([[init], e[:-1] ** 2])
    ewma = signal.lfilter([1.0], [1.0, -BACKCAST_DECAY], drive, zi=[BACKCAST_DECAY * init])[0]
    bounds = np.column_stack((ewma / 1e6, ewma * 1e6))
    var = float(np.var(e))
    max2 = 1.0 + float(np.max(e ** 2))
    bounds[bounds[:, 0] < var / 1e8, 0] = var / 1e8
    bounds[bounds[:, 1] < max2, 1] = max2
    bounds[bounds[:, 1] > 1e7 * max2, 1] = 1e7 * max2
    return bounds


def conditional_variance(eps, omega: float, alpha: float, beta: float, backcast_value: float,
                         bounds: np.ndarray | None = None) -> np.ndarray:
    """sigma2_t for t = 1..n given the residuals eps (sigma2_1 = omega + (alpha + beta) * backcast)."""
    e = np.asarray(eps, dtype=np.float64)
    drive = omega + alpha * np.concatenate([[backcast_value], e[:-1] ** 2])
    # the recursion is linear: sigma2_t - beta sigma2_{t-1} = omega + alpha e2_{t-1}
    s2 = signal.lfilter([1.0], [1.0, -beta], drive, zi=[beta * backcast_value])[0]
    if bounds is None or (np.all(s2 >= bounds[:, 0]) and np.all(s2 <= bounds[:, 1])):
        return s2
    return _bounded_variance(e, omega, alpha, beta, backcast_value, bounds)


def _bounded_variance(e, omega, alpha, beta, bc, bounds):
    # arch's rule: floor at the lower bound, and grow only logarithmically above the upper bound
    n = e.size
    s2 = np.empty(n)
    prev_e2, prev_s2 = bc, bc
    for t in range(n):
        v = omega + alpha * prev_e2 + beta * prev_s2
        lo, hi = bounds[t]
        if v < lo:
            v = lo
        elif v > hi:
            v = hi + math.log(v / hi) if math.isfinite(v) else hi + 1000.0
        s2[t] = v
        prev_e2, prev_s2 = e[t] ** 2, v
    return s2


def t_loglik_terms(eps, sigma2, nu: float) -> np.ndarray:
    """Per-observation log-likelihood of eps_t / sigma_t under a unit-variance t(nu)."""
    e = np.asarray(eps, dtype=np.float64)
    s2 = np.asarray(sigma2, dtype=np.float64)
    c = special.gammaln((nu + 1) / 2) - special.gammaln(nu / 2) - 0.5 * math.log(math.pi * (nu - 2))
    return c - 0.5 * np.log(s2) - (nu + 1) / 2 * np.log1p(e ** 2 / ((nu - 2) * s2))


@dataclass(frozen=True)
class GarchT:
    """A fitted (or fixed) GARCH(1,1)-t. `params` in PARAM_NAMES order (mu is 0 for mean='zero')."""
    mu: float
    omega: float
    alpha: float
    beta: float
    nu: float
    mean: str = "constant"
    loglikelihood: float = float("nan")
    backcast: float = float("nan")
    nobs: int = 0
    converged: bool = True

    @property
    def params(self) -> dict:
        return {k: getattr(self, k) for k in PARAM_NAMES}

    @property
    def persistence(self) -> float:
        return self.alpha + self.beta

    @property
    def unconditional_variance(self) -> float:
        """omega / (1 - alpha - beta); inf for an integrated process."""
        p = self.persistence
        return self.omega / (1.0 - p) if p < 1 else float("inf")

    def filter(self, returns, backcast_value: float | None = None):
        """(sigma2, standardized residuals z) of `returns` with these frozen parameters.

        The backcast defaults to the one the fit used, so filtering a later window forward never
        looks at that window's own start to initialise the variance."""
        y = _check_returns(returns, minimum=1)
        eps = y - self.mu
        bc = self.backcast if backcast_value is None else float(backcast_value)
        if not math.isfinite(bc):
            bc = backcast(eps)
        s2 = conditional_variance(eps, self.omega, self.alpha, self.beta, bc)
        return s2, eps / np.sqrt(s2)

    def forecast(self, last_eps: float, last_sigma2: float, horizon: int = 1) -> np.ndarray:
        """sigma2_{t+1..t+h}: omega + alpha e2_t + beta s2_t, then omega + (alpha + beta) s2_{t+h-1}."""
        if int(horizon) != horizon or horizon < 1:
            raise ValueError(f"horizon must be a positive integer, got {horizon!r}")
        out = np.empty(int(horizon))
        out[0] = self.omega + self.alpha * last_eps ** 2 + self.beta * last_sigma2
        for h in range(1, int(horizon)):
            out[h] = self.omega + self.persistence * out[h - 1]
        return out

    def to_dict(self) -> dict:
        """Parameters, mean model, log-likelihood, backcast, nobs and convergence, JSON-able."""
        return {**self.params, "mean": self.mean, "loglikelihood": self.loglikelihood,
                "backcast": self.backcast, "nobs": self.nobs, "converged": self.converged}

    @classmethod
    def from_dict(cls, d: dict) -> GarchT:
        """The model written by to_dict."""
        return cls(**{k: d[k] for k in (*PARAM_NAMES, "mean", "loglikelihood", "backcast", "nobs",
                                        "converged")})


def _check_returns(returns, minimum: int) -> np.ndarray:
    y = np.asarray(returns, dtype=np.float64)
    if y.ndim != 1:
        raise ValueError(f"returns must be 1-D, got shape {y.shape}")
    if y.size < minimum:
        raise ValueError(f"need at least {minimum} returns, got {y.size}")
    if not np.all(np.isfinite(y)):
        raise ValueError(f"returns must be finite ({int(np.sum(~np.isfinite(y)))} NaN/inf values)")
    return y


def _start_resid(y: np.ndarray, mean: str) -> np.ndarray:
    return y - y.mean() if mean == "constant" else y


def loglikelihood(returns, params, mean: str = "constant") -> float:
    """Total log-likelihood of fixed parameters (mu, omega, alpha, beta, nu); mu ignored for
    mean='zero'. Equals arch's `arch_model(y, mean=..., dist='t').fix(params).loglikelihood`."""
    if mean not in MEANS:
        raise ValueError(f"mean must be one of {MEANS}, got {mean!r}")
    y = _check_returns(returns, minimum=2)
    mu, omega, alpha, beta, nu = (float(v) for v in params)
    r0 = _start_resid(y, mean)
    eps = y - (mu if mean == "constant" else 0.0)
    s2 = conditional_variance(eps, omega, alpha, beta, backcast(r0), variance_bounds(r0))
    return float(np.sum(t_loglik_terms(eps, s2, nu)))


def _neg_ll(theta, y, mean, bc, bounds):
    if mean == "constant":
        mu, omega, alpha, beta, nu = theta
    else:
        omega, alpha, beta, nu = theta
        mu = 0.0
    eps = y - mu
    s2 = conditional_variance(eps, omega, alpha, beta, bc, bounds)
    ll = float(np.sum(t_loglik_terms(eps, s2, nu)))
    return -ll if math.isfinite(ll) else 1e300


def fit_garch_t(returns, mean: str = "constant", *, min_obs: int = 100) -> GarchT:
    """Maximum-likelihood GARCH(1,1)-t (SLSQP under omega > 0, alpha, beta >= 0, alpha + beta < 1,
    nu in (2.05, 500)), started from a small grid like arch's. Scale returns to about unit
    variance first (percent or basis points); tiny raw returns make the optimiser stall.

    Raises ValueError on too few, non-finite or constant returns."""
    if mean not in MEANS:
        raise ValueError(f"mean must be one of {MEANS}, got {mean!r}")
    y = _check_returns(returns, minimum=min_obs)
    r0 = _start_resid(y, mean)
    var = float(np.mean(r0 ** 2))
    if not var > 0:
        raise ValueError("returns have zero variance: a GARCH model is not identified")
    bc = backcast(r0)
    bounds_v = variance_bounds(r0)
    v_abs = float(np.mean(np.abs(r0) ** 2))
    box = [(1e-8 * v_abs, 10.0 * v_abs), (0.0, 1.0), (0.0, 1.0), NU_BOUNDS]
    if mean == "constant":
        scale = max(abs(float(y.mean())), float(np.std(y)))
        box = [(-10 * scale, 10 * scale)] + box
    off = 1 if mean == "constant" else 0
    cons = [{"type": "ineq", "fun": lambda th: 1.0 - th[off + 1] - th[off + 2]},
            {"type": "ineq", "fun": lambda th: th[off + 1]},
            {"type": "ineq", "fun": lambda th: th[off + 2]}]
    best = None
    for a, b in ((0.05, 0.90), (0.10, 0.80), (0.03, 0.95), (0.20, 0.50)):
        start = [var * (1 - a - b), a, b, 8.0]
        if mean == "constant":
            start = [float(y.mean())] + start
        s0 = np.asarray(start)
        res = optimize.minimize(_neg_ll, s0, args=(y, mean, bc, bounds_v), method="SLSQP",
                                bounds=box, constraints=cons,
                                options={"maxiter": 1000, "ftol": 1e-12})
        if best is None or res.fun < best.fun:
            best = res
    assert best is not None
    th = best.x
    mu = float(th[0]) if mean == "constant" else 0.0
    omega, alpha, beta, nu = (float(v) for v in th[off:])
    return GarchT(mu=mu, omega=omega, alpha=alpha, beta=beta, nu=nu, mean=mean,
                  loglikelihood=-float(best.fun), backcast=bc, nobs=int(y.size),
                  converged=bool(best.success))
