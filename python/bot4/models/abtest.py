"""A/B comparison of two models with Welch's t-test at a fixed, pre-registered sample size
(METHODS.md §11), or the paired t-test when both arms were measured on the same events
(paired_test: a champion and a shadow scored at the same decisions).

Testing after every batch at nominal alpha inflates the type-I error (0.05 becomes ~0.14 with five
looks). So the sample size per arm is fixed before the test (`required_samples` gives it for an
effect size and power), no test statistic exists until both arms have reached it, and only the
first n observations of each arm count: more data after n cannot change the verdict, so looking
again is harmless. Per-trade PnL is autocorrelated; feed non-overlapping period returns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class ABResult:
    """Outcome of a model A/B comparison: Welch t-test of mean(b) - mean(a) once both arms have n_required
    observations (fields below)."""

    decision: str            # "insufficient_sample", "b_better", "a_better", "no_difference"
    n_required: int
    n_a: int                 # observations available in each arm
    n_b: int
    statistic: float | None  # t of mean(b) - mean(a); None until both arms reach n_required
    df: float | None         # Welch-Satterthwaite degrees of freedom
    pvalue: float | None     # two-sided
    mean_diff: float | None  # mean(b) - mean(a) over the first n_required of each arm
    ci: tuple | None         # (1 - alpha) confidence interval of mean_diff
    alpha: float
    test: str = "welch"      # "welch" (ab_test) or "paired" (paired_test: df = n - 1)

    def to_dict(self) -> dict:
        """The fields as a JSON-able dict (ci as a list)."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__} | {"ci": list(self.ci) if self.ci else None}


def welch(a, b, alpha: float = 0.05):
    """Welch's t-test of mean(b) - mean(a): (t, df, two-sided p, (lo, hi)). Matches
    scipy.stats.ttest_ind(b, a, equal_var=False)."""
    x, y = _sample(a, "a"), _sample(b, "b")
    va, vb = x.var(ddof=1) / x.size, y.var(ddof=1) / y.size
    se2 = va + vb
    if not se2 > 0:
        raise ValueError("both arms have zero variance: the t statistic is undefined")
    diff = float(y.mean() - x.mean())
    t = diff / math.sqrt(se2)
    df = se2 ** 2 / (va ** 2 / (x.size - 1) + vb ** 2 / (y.size - 1))
    p = float(2 * stats.t.sf(abs(t), df))
    half = float(stats.t.ppf(1 - alpha / 2, df)) * math.sqrt(se2)
    return t, float(df), p, (diff - half, diff + half)


def paired(a, b, alpha: float = 0.05):
    """Paired t-test of mean(b - a) over pairs measured on the same events: (t, df, two-sided p,
    (lo, hi)). Matches scipy.stats.ttest_rel(b, a)."""
    x, y = _sample(a, "a"), _sample(b, "b")
    if x.size != y.size:
        raise ValueError(f"paired arms need the same length, got {x.size} and {y.size}")
    d = y - x
    se = math.sqrt(d.var(ddof=1) / d.size)
    if not se > 0:
        raise ValueError("the paired differences have zero variance: the t statistic is undefined")
    diff = float(d.mean())
    t = diff / se
    df = d.size - 1
    p = float(2 * stats.t.sf(abs(t), df))
    half = float(stats.t.ppf(1 - alpha / 2, df)) * se
    return t, float(df), p, (diff - half, diff + half)


def _sample(v, name: str) -> np.ndarray:
    x = np.asarray(v, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"arm {name} must be 1-D, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"arm {name} has {int(np.sum(~np.isfinite(x)))} non-finite values")
    if x.size < 2:
        raise ValueError(f"arm {name} needs at least 2 observations, got {x.size}")
    return x


def required_samples(effect: float, sd_a: float, sd_b: float | None = None, alpha: float = 0.05,
                     power: float = 0.8) -> int:
    """Observations per arm for a two-sided test to detect a mean difference `effect` with the given
    power (normal approximation): n = (z_{1-alpha/2} + z_power)^2 (sd_a^2 + sd_b^2) / effect^2."""
    sd_b = sd_a if sd_b is None else sd_b
    if not (effect != 0 and sd_a > 0 and sd_b > 0 and 0 < alpha < 1 and 0 < power < 1):
        raise ValueError("need effect != 0, positive standard deviations, alpha and power in (0, 1)")
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
    return max(2, int(math.ceil(z ** 2 * (sd_a ** 2 + sd_b ** 2) / effect ** 2)))


def ab_test(a, b, n_required: int, alpha: float = 0.05) -> ABResult:
    """Fixed-n Welch test of arm b (challenger) against arm a (champion), in arrival order."""
    return _fixed_n(a, b, n_required, alpha, welch, "welch")


def paired_test(a, b, n_required: int, alpha: float = 0.05) -> ABResult:
    """Fixed-n paired t-test of arm b (challenger) against arm a (champion): a[i] and b[i] are
    measured on the same event (e.g. both models' loss at one decision), so the test is on the
    differences b[i] - a[i], which removes what the events share (Welch's unpaired test would
    count it as noise). The pairs must be independent of one another: with overlapping label
    windows neighbouring differences are correlated and the standard error is too small, so feed
    pairs at least one label horizon apart."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.size != y.size:
        raise ValueError(f"paired arms need the same length, got {x.size} and {y.size}")
    return _fixed_n(x, y, n_required, alpha, paired, "paired")


def _fixed_n(a, b, n_required, alpha: float, test, name: str) -> ABResult:
    if int(n_required) != n_required or n_required < 2:
        raise ValueError(f"n_required must be an integer >= 2 fixed before the test, got {n_required!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    n = int(n_required)
    if x.size < n or y.size < n:
        return ABResult("insufficient_sample", n, int(x.size), int(y.size), None, None, None, None, None, alpha,
                        name)
    t, df, p, ci = test(x[:n], y[:n], alpha)
    decision = "no_difference" if p >= alpha else ("b_better" if t > 0 else "a_better")
    return ABResult(decision, n, int(x.size), int(y.size), t, df, p, float(y[:n].mean() - x[:n].mean()), ci, alpha,
                    name)
