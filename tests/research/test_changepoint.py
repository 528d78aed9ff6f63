"""BOCPD (Adams & MacKay) against METHODS.md §8's verified vector and a brute-force recursion."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from bot4.research.changepoint import BOCPD, NormalGamma, changepoint_signals, run_length_posterior

X = [0.1, -0.2, 0.05, 0.0, 3.0, 3.2, 2.9, 3.1]


def test_methods_vector():
    R = run_length_posterior(X, 10, NormalGamma(0, 1, 1, 1))
    np.testing.assert_allclose(R[:, -1], [0.100000, 0.020023, 0.016141, 0.028183, 0.698023, 0.081819,
                                          0.018573, 0.005488, 0.031750], atol=1e-6)
    np.testing.assert_allclose(R[0, 1:], 0.1, atol=1e-15)          # P(r=0) == H at every step
    np.testing.assert_array_equal(R[:, 1:].argmax(axis=0), [1, 2, 3, 4, 1, 2, 3, 4])
    s = changepoint_signals(X, 10, drop=1)
    np.testing.assert_array_equal(np.flatnonzero(s.change), [4])


def _brute(x, lam, prior):
    """Textbook recursion with scipy's t pdf, no shortcuts: joint probabilities, then normalise."""
    H = 1 / lam
    probs = [1.0]
    runs = [[]]
    out = []
    for v in x:
        pred = []
        for data in runs:
            n = len(data)
            kappa, alpha = prior.kappa + n, prior.alpha + n / 2
            mu = (prior.kappa * prior.mu + sum(data)) / kappa
            m = np.mean(data) if n else 0.0
            beta = prior.beta + 0.5 * sum((d - m) ** 2 for d in data) + \
                prior.kappa * n * (m - prior.mu) ** 2 / (2 * kappa) if n else prior.beta
            scale = np.sqrt(beta * (kappa + 1) / (alpha * kappa))
            pred.append(stats.t.pdf(v, 2 * alpha, mu, scale))
        joint = np.array(probs) * np.array(pred)
        new = np.concatenate([[joint.sum() * H], joint * (1 - H)])
        probs = list(new / new.sum())
        runs = [[]] + [d + [v] for d in runs]
        out.append(np.array(probs))
    return out


@pytest.mark.parametrize("seed", range(3))
def test_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    x = np.r_[rng.normal(0, 1, 25), rng.normal(2, 0.3, 15)]
    prior = NormalGamma(0.0, 0.5, 2.0, 1.5)
    det = BOCPD(15, prior, max_run=1000)
    for t, ref in enumerate(_brute(x, 15, prior)):
        np.testing.assert_allclose(det.update(x[t]), ref, rtol=1e-9, atol=1e-14)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-50, 50, allow_nan=False), min_size=1, max_size=60), st.floats(2, 500),
       st.integers(2, 30))
def test_posterior_is_a_distribution_and_capped(xs, lam, cap):
    det = BOCPD(lam, max_run=cap)
    for t, v in enumerate(xs):
        post = det.update(v)
        assert post.size == min(t + 2, cap)
        assert np.all(post >= 0) and post.sum() == pytest.approx(1.0, abs=1e-12)


def test_causal_signals_do_not_depend_on_the_future():
    x = np.random.default_rng(5).normal(size=300)
    a = changepoint_signals(x, 50)
    b = changepoint_signals(x[:200], 50)
    np.testing.assert_array_equal(a.map_run[:200], b.map_run)
    np.testing.assert_array_equal(a.short_mass[:200], b.short_mass)


def test_detects_a_variance_change():
    rng = np.random.default_rng(2)
    x = np.r_[rng.normal(0, 1, 300), rng.normal(0, 6, 100)]
    s = changepoint_signals(x, 250)
    hits = np.flatnonzero(s.change)
    assert hits.size and 300 <= hits[0] < 330
    assert s.short_mass[30:290].max() < 0.5     # the first rows are all short runs


def test_bad_input_refused():
    with pytest.raises(ValueError):
        BOCPD(1.0)
    with pytest.raises(ValueError):
        NormalGamma(0, -1, 1, 1)
    with pytest.raises(ValueError, match="finite"):
        BOCPD(10).update(float("nan"))
