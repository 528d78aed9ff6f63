"""Bayesian online change-point detection (Adams & MacKay 2007; METHODS.md §8).

Run length r_t, constant hazard H = 1 / lam, a Normal-Gamma prior (mu0, kappa0, alpha0, beta0) on the
mean and precision of the observations, so the predictive of each run is a Student-t with 2 alpha
degrees of freedom, location mu and scale sqrt(beta (kappa + 1) / (alpha kappa)).

    growth: P(r_t = r + 1, x_1:t) = P(r_{t-1} = r, x_1:t-1) pi_t^(r) (1 - H)
    cp:     P(r_t = 0,     x_1:t) = sum_r P(r_{t-1} = r, x_1:t-1) pi_t^(r) H

then normalise. With a constant hazard P(r_t = 0 | x_1:t) is exactly H at every step, so it is useless
as a detector; the signals here are the MAP run length, its drops, and the mass on short runs
P(r_t <= k). The run-length support is capped at `max_run` (the longest runs are dropped and the rest
renormalised) because streams are unbounded; with the cap above the data length the recursion is exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special


@dataclass(frozen=True)
class NormalGamma:
    """Normal-Gamma prior of BOCPD's Gaussian model with unknown mean and precision (mu, kappa, alpha,
    beta; kappa, alpha, beta > 0)."""

    mu: float = 0.0
    kappa: float = 1.0
    alpha: float = 1.0
    beta: float = 1.0

    def __post_init__(self):
        if not (np.isfinite(self.mu) and self.kappa > 0 and self.alpha > 0 and self.beta > 0):
            raise ValueError(f"Normal-Gamma prior needs finite mu and kappa, alpha, beta > 0, got {self}")


def _t_logpdf(x, df, loc, scale):
    z = (x - loc) / scale
    return (special.gammaln((df + 1) / 2) - special.gammaln(df / 2) - 0.5 * np.log(np.pi * df)
            - np.log(scale) - (df + 1) / 2 * np.log1p(z * z / df))


class BOCPD:
    """Online detector: `update(x)` consumes one observation and returns the run-length posterior
    P(r_t = r | x_1:t) for r = 0..len-1 (a view; copy it to keep it)."""

    def __init__(self, lam: float = 250.0, prior: NormalGamma = NormalGamma(), max_run: int = 2000):
        if not lam > 1:
            raise ValueError(f"lam (expected run length, 1 / hazard) must be > 1, got {lam!r}")
        if int(max_run) != max_run or max_run < 2:
            raise ValueError(f"max_run must be an integer >= 2, got {max_run!r}")
        self.hazard = 1.0 / float(lam)
        self.prior = prior
        self.max_run = int(max_run)
        self.reset()

    def reset(self) -> None:
        """Forget every observation: the run length is 0 with probability 1 and the posterior is the prior."""
        p = self.prior
        self.probs = np.ones(1)
        self.mu = np.array([p.mu])
        self.kappa = np.array([p.kappa])
        self.alpha = np.array([p.alpha])
        self.beta = np.array([p.beta])
        self.t = 0

    def update(self, x: float) -> np.ndarray:
        """Consume one finite observation x; returns the run-length posterior P(r_t = r | x_1:t),
        float64 (min(t + 1, max_run),), a view into the detector's state. ValueError if x is not finite.
        """
        x = float(x)
        if not np.isfinite(x):
            raise ValueError(f"observation {self.t} is not finite: {x!r}")
        scale = np.sqrt(self.beta * (self.kappa + 1) / (self.alpha * self.kappa))
        logpred = _t_logpdf(x, 2 * self.alpha, self.mu, scale)
        weighted = self.probs * np.exp(logpred - logpred.max())   # a common factor cancels below
        grown = weighted * (1 - self.hazard)
        cp = weighted.sum() * self.hazard
        probs = np.concatenate([[cp], grown])
        p = self.prior
        mu = np.concatenate([[p.mu], (self.kappa * self.mu + x) / (self.kappa + 1)])
        beta = np.concatenate([[p.beta], self.beta + self.kappa * (x - self.mu) ** 2 / (2 * (self.kappa + 1))])
        kappa = np.concatenate([[p.kappa], self.kappa + 1])
        alpha = np.concatenate([[p.alpha], self.alpha + 0.5])
        if probs.size > self.max_run:
            keep = self.max_run
            probs, mu, beta, kappa, alpha = probs[:keep], mu[:keep], beta[:keep], kappa[:keep], alpha[:keep]
        total = probs.sum()
        if not total > 0:
            raise FloatingPointError(f"run-length posterior underflowed at observation {self.t}")
        self.probs = probs / total
        self.mu, self.beta, self.kappa, self.alpha = mu, beta, kappa, alpha
        self.t += 1
        return self.probs


def run_length_posterior(x, lam: float, prior: NormalGamma = NormalGamma(), max_run: int | None = None):
    """Dense R with R[r, t + 1] = P(run length r | x_1..t) and column 0 the prior (the layout of
    bayesian-changepoint-detection 0.2.dev1). Exact when max_run is None."""
    xs = np.asarray(x, dtype=np.float64)
    n = xs.size
    det = BOCPD(lam, prior, max_run=max(n + 1, 2) if max_run is None else max_run)
    R = np.zeros((n + 1, n + 1))
    R[0, 0] = 1.0
    for t, v in enumerate(xs):
        post = det.update(v)
        R[:post.size, t + 1] = post
    return R


@dataclass(frozen=True)
class ChangePointSignals:
    """Per-observation BOCPD outputs, each an array of the input's length (fields below)."""

    map_run: np.ndarray         # argmax_r P(r_t = r | x_1:t)
    short_mass: np.ndarray      # P(r_t <= short_run | x_1:t)
    change: np.ndarray          # bool: MAP run length fell by more than `drop` (a detected change)


def changepoint_signals(x, lam: float = 250.0, prior: NormalGamma = NormalGamma(), *, short_run: int = 10,
                        drop: int = 10, max_run: int = 2000) -> ChangePointSignals:
    """Per-observation causal signals of BOCPD on x (each uses x_1..t only)."""
    xs = np.asarray(x, dtype=np.float64)
    if xs.ndim != 1:
        raise ValueError(f"x must be 1-D, got shape {xs.shape}")
    det = BOCPD(lam, prior, max_run)
    n = xs.size
    map_run = np.zeros(n, np.int64)
    short = np.zeros(n)
    for t, v in enumerate(xs):
        post = det.update(v)
        map_run[t] = int(np.argmax(post))
        short[t] = float(post[:short_run + 1].sum())
    prev = np.concatenate([[0], map_run[:-1]])
    change = (prev - map_run) > drop
    return ChangePointSignals(map_run, short, change)
