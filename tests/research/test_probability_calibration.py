"""Isotonic breakpoint table and calibration metrics against METHODS.md §3 and scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import brier_score_loss
from sklearn.metrics import log_loss as sk_log_loss

from bot4.research import IsotonicTable, brier, ece, fit_isotonic, log_loss, mce, reliability_curve

P = np.array([0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9, 0.9, 0.95])
Y = np.array([0, 0, 1, 0, 1, 1, 0, 1, 1, 1])


def _sk_iso(s, y):
    return IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(s, y)


def test_methods_vector_metrics():
    assert brier(Y, P) == pytest.approx(0.16125, abs=1e-15)
    assert log_loss(Y, P) == pytest.approx(0.4782255300905989, abs=1e-15)
    assert ece(Y, P, n_bins=5) == pytest.approx(0.175, abs=1e-12)
    assert ece(Y, P, n_bins=10) == pytest.approx(0.315, abs=1e-12)
    assert mce(Y, P, n_bins=5) == pytest.approx(0.4, abs=1e-12)


def test_methods_vector_reliability_curve():
    mean_p, mean_y, count = reliability_curve(Y, P, n_bins=5)
    np.testing.assert_allclose(mean_y, [0, .5, 1, .5, 1], atol=1e-12)
    np.testing.assert_allclose(mean_p, [.15, .35, .6, .75, 2.75 / 3], atol=1e-12)
    # 0.2 and 0.4 sit on bin edges and go to the lower bin (right-closed).
    np.testing.assert_array_equal(count, [2, 2, 1, 2, 3])
    assert count.sum() == len(P)


def test_methods_vector_isotonic():
    table = fit_isotonic(P, Y)
    np.testing.assert_allclose(table.apply(P), [0, 0, .5, .5, 2 / 3, 2 / 3, 2 / 3, 1, 1, 1], atol=1e-12)
    np.testing.assert_allclose(table.apply(P), _sk_iso(P, Y).predict(P), atol=1e-12, rtol=0)


def test_isotonic_interpolates_not_steps():
    x, y = np.array([.1, .2, .2, .4, .5]), np.array([0, 1, 0, 1, 1])
    table = fit_isotonic(x, y)
    np.testing.assert_allclose(table.x, [.1, .2, .4, .5], atol=1e-15)
    np.testing.assert_allclose(table.y, [0, .5, 1, 1], atol=1e-15)
    assert table.apply(0.3) == pytest.approx(0.75, abs=1e-15)
    assert _sk_iso(x, y).predict([0.3])[0] == pytest.approx(0.75, abs=1e-15)
    # Clipping outside the fitted range.
    np.testing.assert_array_equal(table.apply([-5.0, 0.0, 0.6, 7.0]), [0.0, 0.0, 1.0, 1.0])


@pytest.mark.parametrize("seed", range(8))
def test_isotonic_table_matches_sklearn_predict(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 3000))
    s = rng.normal(size=n)
    if seed % 2:
        s = np.round(s, 1)  # many tied scores: sklearn averages them
    y = (rng.random(n) < 1 / (1 + np.exp(-2 * s))).astype(int)
    table = fit_isotonic(s, y)
    ref = _sk_iso(s, y)
    q = np.concatenate([s, rng.normal(scale=3, size=2000), table.x, [-1e300, 1e300]])
    np.testing.assert_allclose(table.apply(q), ref.predict(q), atol=1e-12, rtol=0)
    np.testing.assert_allclose(table.apply(q), ref.transform(q), atol=1e-12, rtol=0)
    # sklearn refuses infinities; the table clips them like any out-of-range score.
    np.testing.assert_array_equal(table.apply([-np.inf, np.inf]), [table.y[0], table.y[-1]])
    assert np.all(np.diff(table.x) > 0) and np.all(np.diff(table.y) >= 0)
    assert table.y.min() >= 0 and table.y.max() <= 1


def test_isotonic_table_degenerate_and_roundtrip():
    table = fit_isotonic([0.5, 0.5, 0.5], [0, 1, 1])  # one unique score: a constant map
    np.testing.assert_allclose(table.apply([0.0, 0.5, 1.0]), [2 / 3] * 3, atol=1e-15)
    t2 = IsotonicTable.from_dict(fit_isotonic(P, Y).to_dict())
    np.testing.assert_array_equal(t2.apply(P), fit_isotonic(P, Y).apply(P))
    with pytest.raises(ValueError):
        IsotonicTable(np.array([0.2, 0.1]), np.array([0.0, 1.0]))
    with pytest.raises(ValueError):
        fit_isotonic([0.1, 0.2], [0, 2])


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("n_bins", [1, 5, 10, 15])
def test_metrics_match_sklearn(seed, n_bins):
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(1, 2000))
    p = rng.random(n)
    edge = rng.random(n) < 0.1
    p[edge] = np.round(p[edge], 1)  # values on bin edges exercise the right-closed convention
    p[:3] = [0.0, 1.0, 0.5][: min(3, n)]
    y = (rng.random(n) < p).astype(int)
    assert brier(y, p) == pytest.approx(brier_score_loss(y, p, pos_label=1), abs=1e-12)
    assert log_loss(y, p) == pytest.approx(sk_log_loss(y, p, labels=[0, 1]), abs=1e-12)
    prob_true, prob_pred = calibration_curve(y, p, n_bins=n_bins)
    mean_p, mean_y, count = reliability_curve(y, p, n_bins)
    np.testing.assert_allclose(mean_p, prob_pred, atol=1e-12)
    np.testing.assert_allclose(mean_y, prob_true, atol=1e-12)
    assert count.sum() == n
    # ECE is the count-weighted mean of the gaps that sklearn's curve gives.
    assert ece(y, p, n_bins) == pytest.approx(np.sum(count * np.abs(prob_true - prob_pred)) / n, abs=1e-12)
    assert mce(y, p, n_bins) == pytest.approx(np.max(np.abs(prob_true - prob_pred)), abs=1e-12)
    assert 0 <= ece(y, p, n_bins) <= mce(y, p, n_bins) + 1e-15 <= 1 + 1e-15


def test_metric_edge_cases():
    # Clipping keeps log loss finite for confident mistakes.
    assert np.isfinite(log_loss([1, 0], [0.0, 1.0]))
    assert log_loss([1, 0], [1.0, 0.0]) == pytest.approx(0.0, abs=1e-15)
    assert ece([1, 0], [1.0, 0.0], n_bins=10) == 0.0
    with pytest.raises(ValueError):
        brier([0, 1], [0.5])
    with pytest.raises(ValueError):
        ece([0, 1], [0.5, 1.5])
    with pytest.raises(ValueError):
        reliability_curve([0, 1], [0.5, 0.5], n_bins=0)
