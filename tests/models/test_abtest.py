"""Welch A/B test against scipy and METHODS.md §11, and the fixed-n rule that makes peeking harmless."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from bot4.models.abtest import ab_test, paired, paired_test, required_samples, welch


def test_methods_vector():
    a, b = [.1, .3, .2, .5, .4], [0, .1, -.1, .2, .05, .15]
    t, df, p, _ = welch(b, a)        # mean(a) - mean(b), as METHODS states it
    assert (t, df, p) == pytest.approx((2.8, 6.883260, 0.0269862), abs=1e-6)


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 2**31), st.integers(2, 200), st.integers(2, 200), st.floats(0.1, 10), st.floats(-2, 2))
def test_matches_scipy(seed, na, nb, sd_ratio, shift):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(0, 1, na), rng.normal(shift, sd_ratio, nb)
    ref = stats.ttest_ind(b, a, equal_var=False)
    t, df, p, ci = welch(a, b, 0.05)
    assert t == pytest.approx(ref.statistic, rel=1e-9, abs=1e-12)
    assert df == pytest.approx(ref.df, rel=1e-9)
    assert p == pytest.approx(ref.pvalue, rel=1e-8, abs=1e-15)
    lo, hi = ref.confidence_interval(0.95)
    assert ci == pytest.approx((lo, hi), rel=1e-8, abs=1e-12)


def test_no_test_before_the_sample_is_complete_and_later_data_is_ignored():
    rng = np.random.default_rng(1)
    a, b = rng.normal(0, 1, 500), rng.normal(0.3, 1, 500)
    early = ab_test(a[:100], b[:300], n_required=200)
    assert early.decision == "insufficient_sample" and early.pvalue is None and early.statistic is None
    r = ab_test(a[:200], b[:200], n_required=200)
    r_later = ab_test(a, b, n_required=200)        # looking again with more data changes nothing
    assert (r.statistic, r.pvalue, r.decision) == (r_later.statistic, r_later.pvalue, r_later.decision)
    assert r.pvalue == pytest.approx(stats.ttest_ind(b[:200], a[:200], equal_var=False).pvalue, rel=1e-10)


def test_type_one_error_holds_at_fixed_n():
    # 2000 A/A tests at n=50: rejections at alpha=0.05 inside a 4-sigma binomial band around 100
    rng = np.random.default_rng(7)
    rejects = sum(ab_test(rng.normal(size=50), rng.normal(size=50), 50).decision != "no_difference"
                  for _ in range(2000))
    assert abs(rejects - 100) < 4 * np.sqrt(2000 * 0.05 * 0.95)


def test_required_samples():
    # two-sided alpha 0.05, power 0.8, effect 0.5 sd: (1.96 + 0.8416)^2 * 2 / 0.25 = 62.8 -> 63
    assert required_samples(0.5, 1.0) == 63
    with pytest.raises(ValueError):
        required_samples(0.0, 1.0)


def test_bad_input_refused():
    with pytest.raises(ValueError, match="n_required"):
        ab_test([1, 2], [1, 2], 1)
    with pytest.raises(ValueError, match="non-finite"):
        welch([1, np.nan, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="zero variance"):
        welch([1, 1, 1], [2, 2, 2])


def test_paired_matches_scipy_ttest_rel():
    rng = np.random.default_rng(5)
    a = rng.normal(size=60)
    b = a + 0.3 + rng.normal(scale=0.5, size=60)  # shared per-event part: paired, not Welch
    t, df, p, (lo, hi) = paired(a, b, alpha=0.1)
    ref = stats.ttest_rel(b, a)
    assert t == pytest.approx(ref.statistic, rel=1e-12) and p == pytest.approx(ref.pvalue, rel=1e-10)
    assert df == ref.df == 59
    ci = ref.confidence_interval(confidence_level=0.9)
    assert (lo, hi) == pytest.approx((ci.low, ci.high), rel=1e-10)
    r = paired_test(a, b, n_required=40)
    ref40 = stats.ttest_rel(b[:40], a[:40])
    assert r.test == "paired" and r.decision == "b_better" and r.pvalue == pytest.approx(ref40.pvalue, rel=1e-10)
    # the shared part hides the difference from the unpaired test
    assert stats.ttest_ind(b[:40], a[:40], equal_var=False).pvalue > r.pvalue


def test_paired_refuses_unequal_or_constant_arms():
    with pytest.raises(ValueError, match="same length"):
        paired_test([1.0, 2.0, 3.0], [1.0, 2.0], 2)
    with pytest.raises(ValueError, match="zero variance"):
        paired([1.0, 2.0, 3.0], [2.0, 3.0, 4.0])
