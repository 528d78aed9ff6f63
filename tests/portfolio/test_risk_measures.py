"""bot4.portfolio.risk_measures against METHODS.md §7.3/§16 vectors, scipy.stats moments, a
brute-force tail mean / Rockafellar-Uryasev minimum, and numerical integration of the CF quantile."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import integrate, stats

from bot4.errors import InputError
from bot4.portfolio import risk_measures as rm

R10 = [-0.05, -0.03, -0.01, 0.0, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06]


@pytest.mark.parametrize(("level", "var", "cvar"), [(0.90, 0.03, 0.05), (0.80, 0.01, 0.04)])
def test_methods_vector_matches_skfolio_convention(level, var, cvar):
    est = rm.historical(R10, level)
    assert est.var == pytest.approx(var, abs=1e-15)
    assert est.cvar == pytest.approx(cvar, abs=1e-15)
    assert est.n == 10


def test_cornish_fisher_z_methods_vector():
    z = stats.norm.ppf(0.05)
    assert z == pytest.approx(-1.644854, abs=1e-6)
    assert rm.cornish_fisher_z(z, -0.5, 5.0) == pytest.approx(-1.741925, abs=1e-6)


def test_cornish_fisher_reduces_to_normal_methods_vector():
    r = np.asarray(R10)
    est = rm.cornish_fisher_from_moments(r.mean(), r.std(ddof=1), 0.0, 3.0, 0.95)
    assert est.var == pytest.approx(0.0459213, abs=1e-7)
    assert est.cvar == pytest.approx(0.0606356, abs=1e-7)


def _brute_tail_mean(r: np.ndarray, level: float) -> float:
    """Rockafellar-Uryasev: min over nu of nu + E[(L - nu)^+]/(1 - level); the objective is
    piecewise linear and convex, so its minimum sits at one of the losses."""
    losses = -r
    return min(nu + np.maximum(losses - nu, 0.0).mean() / (1.0 - level) for nu in losses)


def _fractional_tail_mean(r: np.ndarray, level: float) -> float:
    """Average of the worst (1 - level) n losses, the last one weighted by its fraction."""
    losses = np.sort(-r)[::-1]
    m = (1.0 - level) * len(r)
    full = int(math.floor(m + 1e-9))
    total = losses[:full].sum() + (m - full) * (losses[full] if full < len(losses) else 0.0)
    return float(total / m)


@pytest.mark.parametrize("level", [0.9, 0.95, 0.975, 0.99])
def test_historical_cvar_is_the_mean_of_the_k_worst_when_integral(level):
    rng = np.random.default_rng(1)
    n = 400
    r = rng.standard_t(4, n) * 0.01
    k = round((1 - level) * n)
    assert rm.historical(r, level).cvar == pytest.approx(np.sort(-r)[::-1][:k].mean(), rel=1e-12)


@settings(max_examples=200, deadline=None)
@given(r=arrays(np.float64, st.integers(20, 300), elements=st.floats(-0.5, 0.5, allow_nan=False, width=64)),
       level=st.sampled_from([0.8, 0.9, 0.95, 0.975, 0.99]))
def test_historical_cvar_matches_brute_force(r, level):
    if len(r) < rm.min_samples_historical(level):
        with pytest.raises(InputError):
            rm.historical(r, level)
        return
    est = rm.historical(r, level)
    assert est.cvar == pytest.approx(_brute_tail_mean(r, level), rel=1e-9, abs=1e-12)
    assert est.cvar == pytest.approx(_fractional_tail_mean(r, level), rel=1e-9, abs=1e-12)
    # VaR is the lower level-quantile of the losses: numpy's "inverted_cdf" rule.
    assert est.var == np.quantile(-r, level, method="inverted_cdf")
    assert est.cvar >= est.var - 1e-15


@pytest.mark.parametrize("seed", range(5))
def test_cornish_fisher_matches_scipy_moments(seed):
    rng = np.random.default_rng(seed)
    r = rng.gamma(2.0, 0.01, 500) - 0.02  # skewed
    est = rm.cornish_fisher(r, 0.95)
    s = stats.skew(r)
    k = stats.kurtosis(r, fisher=False)
    z = stats.norm.ppf(0.05)
    zcf = (z + (z**2 - 1) * s / 6 + (z**3 - 3 * z) * (k - 3) / 24 - (2 * z**3 - 5 * z) * s**2 / 36)
    assert est.skew == pytest.approx(s, rel=1e-10)
    assert est.kurtosis == pytest.approx(k, rel=1e-10)
    assert est.z_cf == pytest.approx(zcf, rel=1e-12)
    assert est.var == pytest.approx(-(r.mean() + zcf * r.std(ddof=1)), rel=1e-12)


@settings(max_examples=100, deadline=None)
@given(skew=st.floats(-0.8, 0.8), exkurt=st.floats(0.0, 4.0), level=st.sampled_from([0.9, 0.95, 0.99]))
def test_cornish_fisher_cvar_is_the_integral_of_the_cf_quantile(skew, exkurt, level):
    kurt = 3.0 + exkurt
    est = rm.cornish_fisher_from_moments(0.001, 0.02, skew, kurt, level)
    alpha = 1 - level
    # the mean of the CF quantile over p in (0, alpha), integrated in z = Phi^-1(p) (dp = phi(z) dz):
    # quad over p itself loses ~1e-5 to the ppf singularity at 0
    z = stats.norm.ppf(alpha)
    integral, _ = integrate.quad(lambda x: rm.cornish_fisher_z(x, skew, kurt) * stats.norm.pdf(x), -40.0, z,
                                 epsabs=1e-14, epsrel=1e-13, limit=500)
    assert est.cvar == pytest.approx(-(0.001 + 0.02 * integral / alpha), rel=1e-9, abs=1e-12)
    if est.monotone:
        assert est.cvar >= est.var - 1e-12


def test_monotone_flag():
    assert rm.cornish_fisher_monotone(0.0, 3.0)
    assert rm.cornish_fisher_monotone(-0.5, 5.0)
    assert not rm.cornish_fisher_monotone(2.0, 3.0)   # large skew, no kurtosis: map folds over
    z = np.linspace(-6, 6, 2001)
    for s, k in [(0.0, 3.0), (-0.5, 5.0), (2.0, 3.0), (0.3, 3.2), (1.0, 9.0)]:
        increasing = bool(np.all(np.diff([rm.cornish_fisher_z(x, s, k) for x in z]) > 0))
        if rm.cornish_fisher_monotone(s, k):
            assert increasing


@pytest.mark.parametrize("bad", [[0.01, float("nan")] * 20, [0.01, float("inf")] * 20])
def test_rejects_non_finite(bad):
    with pytest.raises(InputError, match="NaN or infinite"):
        rm.historical(bad, 0.95)
    with pytest.raises(InputError, match="NaN or infinite"):
        rm.cornish_fisher(bad, 0.95)


def test_rejects_too_few_samples_and_bad_level():
    with pytest.raises(InputError, match="at least 20"):
        rm.historical(np.zeros(19), 0.95)
    rm.historical(np.zeros(20), 0.95)
    with pytest.raises(InputError, match=f"at least {rm.MIN_SAMPLES_CF}"):
        rm.cornish_fisher(np.linspace(-1, 1, rm.MIN_SAMPLES_CF - 1), 0.95)
    with pytest.raises(InputError, match="all returns are equal"):
        rm.cornish_fisher(np.zeros(100), 0.95)
    for level in (0.0, 1.0, -0.1, float("nan")):
        with pytest.raises(InputError, match="level"):
            rm.historical(R10, level)
    with pytest.raises(InputError, match="one-dimensional"):
        rm.historical(np.zeros((10, 2)), 0.9)
    with pytest.raises(InputError, match="unknown method"):
        rm.risk_estimate(R10, 0.9, "gaussian")


def test_conservative_and_portfolio_cvar():
    rng = np.random.default_rng(3)
    r = rng.standard_t(3, 1000) * 0.01
    h = rm.historical(r, 0.95).cvar
    cf = rm.cornish_fisher(r, 0.95)
    expected = max(h, cf.cvar) if cf.monotone else h
    assert rm.conservative_cvar(r, 0.95) == expected
    scen = rng.normal(0, 0.01, (500, 3))
    w = np.array([100.0, -50.0, 20.0])
    assert rm.portfolio_cvar(scen, w, 0.95) == pytest.approx(rm.historical(scen @ w, 0.95).cvar)
    assert rm.portfolio_cvar(scen, 2.5 * w, 0.95) == pytest.approx(2.5 * rm.portfolio_cvar(scen, w, 0.95), rel=1e-12)
    with pytest.raises(InputError, match="does not match"):
        rm.portfolio_cvar(scen, w[:2], 0.95)
