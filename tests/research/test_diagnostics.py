"""Ljung-Box and ARCH-LM against statsmodels and METHODS.md §6's vectors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from statsmodels.stats.diagnostic import acorr_ljungbox, het_arch

from bot4.research.diagnostics import arch_lm, garch_diagnostics, ljung_box

X = [1, -2, 3, -1, 2, -3, 1, 0, -1, 2]


def test_methods_vectors():
    lb = ljung_box(X, [1, 2, 3])
    np.testing.assert_allclose(lb.stat, [6.712320, 9.513532, 11.007798], atol=1e-6)
    np.testing.assert_allclose(lb.pvalue, [0.009575, 0.008593, 0.011684], atol=1e-6)
    lm = arch_lm(X, 2)
    assert (lm.lm, lm.lm_pvalue, lm.fval, lm.f_pvalue) == pytest.approx((1.784770, 0.409677, 0.717902, 0.532008),
                                                                        abs=1e-6)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("model_df", [0, 2])
def test_ljung_box_matches_statsmodels(seed, model_df):
    x = np.random.default_rng(seed).standard_t(4, 500).cumsum() * 0.01 + np.random.default_rng(seed).normal(size=500)
    ref = acorr_ljungbox(x, lags=[1, 5, 10, 20], model_df=model_df)
    mine = ljung_box(x, [1, 5, 10, 20], model_df=model_df)
    np.testing.assert_allclose(mine.stat, ref["lb_stat"].values, rtol=1e-12)
    np.testing.assert_allclose(mine.pvalue, ref["lb_pvalue"].values, rtol=1e-9, equal_nan=True)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("nlags,ddof", [(1, 0), (5, 0), (10, 2), (None, 0)])
def test_arch_lm_matches_statsmodels(seed, nlags, ddof):
    e = np.random.default_rng(seed).standard_t(5, 400)
    lm, lmp, f, fp = het_arch(e, nlags=nlags, ddof=ddof, result_object=False)
    mine = arch_lm(e, nlags, ddof=ddof)
    assert (mine.lm, mine.lm_pvalue, mine.fval, mine.f_pvalue) == pytest.approx((lm, lmp, f, fp), rel=1e-9, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=12, max_size=200), st.integers(1, 10))
def test_ljung_box_invariants(xs, h):
    x = np.asarray(xs)
    if np.ptp(x) == 0:
        with pytest.raises(ValueError, match="constant"):
            ljung_box(x, h)
        return
    assume(np.std(x) > 1e-6 * max(1.0, np.abs(x).max()))   # well-conditioned for the scaling check
    lb = ljung_box(x, h)
    # Q(h) is non-decreasing in h, non-negative, and invariant to shifting and scaling the series
    assert np.all(np.diff(lb.stat) >= -1e-9 * lb.stat.max()) and lb.stat.min() >= 0
    np.testing.assert_allclose(ljung_box(3 * x + 7, h).stat, lb.stat, rtol=1e-6, atol=1e-9)
    assert np.all((lb.pvalue >= 0) & (lb.pvalue <= 1))


def test_bad_input_refused():
    with pytest.raises(ValueError, match="lags"):
        ljung_box(X, [0])
    with pytest.raises(ValueError, match="lags"):
        ljung_box(X, 10)
    with pytest.raises(ValueError, match="finite"):
        arch_lm([1.0, np.nan, 2.0, 3.0], 1)
    with pytest.raises(ValueError, match="constant"):
        ljung_box(np.ones(20), 2)


def test_garch_diagnostics_do_not_reject_iid_noise():
    z = np.random.default_rng(0).standard_normal(2000)
    d = garch_diagnostics(z)
    assert d["ljung_box_z"]["pvalue"] > 0.01 and d["ljung_box_z2"]["pvalue"] > 0.01
    assert d["arch_lm_z"]["pvalue"] > 0.01
    # an ARCH process is caught on the squares
    e = np.empty(3000)
    s2 = 1.0
    for t, u in enumerate(np.random.default_rng(1).standard_normal(3000)):
        e[t] = np.sqrt(s2) * u
        s2 = 0.2 + 0.7 * e[t] ** 2
    d = garch_diagnostics(e)
    assert d["ljung_box_z2"]["pvalue"] < 1e-6 and d["arch_lm_z"]["pvalue"] < 1e-6
