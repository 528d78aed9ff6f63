"""Bounded calibration maps against scikit-learn (Platt = sigmoid calibration, beta = logistic
regression on [ln p, -ln(1 - p)], isotonic = IsotonicRegression) and the bounds of METHODS.md §17."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from bot4.research.calibration import log_loss
from bot4.research.calibrators import (FittedCalibration, beta_map, fit_beta, fit_bounded_isotonic, fit_platt,
                                       platt_map, select_calibration)


class _Scores(ClassifierMixin, BaseEstimator):
    """A 'classifier' whose decision function is the logit of its single input column."""
    def fit(self, X, y):
        self.classes_ = np.array([0, 1])
        return self

    def decision_function(self, X):
        return special.logit(np.asarray(X)[:, 0])

    def predict(self, X):
        return (np.asarray(X)[:, 0] > 0.5).astype(int)


def _data(seed, n=4000, slope=0.6, shift=0.3):
    rng = np.random.default_rng(seed)
    p = rng.beta(2, 2, n)
    y = (rng.random(n) < special.expit(slope * special.logit(p) + shift)).astype(int)
    return p, y


@pytest.mark.parametrize("seed", range(4))
def test_platt_matches_sklearn_sigmoid(seed):
    p, y = _data(seed)
    fit = fit_platt(p, y)
    ref = CalibratedClassifierCV(FrozenEstimator(_Scores().fit(p[:, None], y)), method="sigmoid").fit(p[:, None], y)
    q = np.quantile(p, np.linspace(0, 1, 400))      # inside the calibration range
    want = ref.predict_proba(q[:, None])[:, 1]
    np.testing.assert_allclose(platt_map(q, **fit.params), want, atol=1e-7)
    # the exported table (what the core applies) interpolates the same map
    np.testing.assert_allclose(fit.apply(q), want, atol=2e-4)


@pytest.mark.parametrize("seed", range(4))
def test_beta_matches_unpenalised_logistic_regression(seed):
    p, y = _data(seed, slope=1.4, shift=-0.2)
    fit = fit_beta(p, y)
    F = np.column_stack([np.log(p), -np.log1p(-p)])
    lr = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000).fit(F, y)
    np.testing.assert_allclose([fit.params["a"], fit.params["b"], fit.params["c"]],
                               [*lr.coef_[0], lr.intercept_[0]], rtol=1e-4, atol=1e-5)
    # the same optimum: our likelihood is at least sklearn's
    mine = beta_map(p, **fit.params)
    theirs = lr.predict_proba(F)[:, 1]
    assert log_loss(y, mine) <= log_loss(y, theirs) + 1e-12
    q = np.quantile(p, np.linspace(0, 1, 400))
    np.testing.assert_allclose(fit.apply(q), lr.predict_proba(np.column_stack([np.log(q), -np.log1p(-q)]))[:, 1],
                               atol=2e-4)


def test_beta_drops_a_negative_coefficient():
    rng = np.random.default_rng(7)
    p = rng.uniform(0.01, 0.99, 5000)
    # P(y=1) rises with ln p but not with -ln(1-p): an unconstrained fit gives b < 0
    y = (rng.random(p.size) < special.expit(2 * np.log(p) + 0.8 * np.log1p(-p) + 1)).astype(int)
    fit = fit_beta(p, y)
    assert fit.params["a"] > 0 and fit.params["b"] == 0.0
    np.testing.assert_allclose(beta_map(p, 1, 1, 0), p, rtol=1e-9)   # the identity is a beta map


def test_isotonic_without_shrinkage_is_sklearn():
    p, y = _data(1)
    plain = fit_bounded_isotonic(p, y, shrink_rows=0, eps=0)
    ref = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(p, y)
    q = np.linspace(-0.1, 1.1, 3001)
    np.testing.assert_allclose(plain.apply(q), ref.transform(q), atol=1e-12)


def test_isotonic_reaches_no_exact_zero_or_one():
    # separable data: plain isotonic maps to exact 0 and 1 (log-loss explodes on a flipped day)
    p = np.linspace(0.01, 0.99, 300)
    y = (p > 0.5).astype(int)
    assert set(np.unique(IsotonicRegression(out_of_bounds="clip").fit(p, y).predict(p))) == {0.0, 1.0}
    fit = fit_bounded_isotonic(p, y)
    assert fit.table.y.min() > 0 and fit.table.y.max() < 1
    # rows of the block of 150 zeros: (150 * 0 + 10 * 0.5) / (150 + 10)
    assert fit.table.y.min() == pytest.approx(5 / 160)
    assert log_loss(1 - y, fit.apply(p)) < 4.0 < log_loss(1 - y, np.clip(y * 1.0, 1e-15, 1 - 1e-15))


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 10_000), st.integers(20, 600), st.sampled_from(["isotonic", "platt", "beta"]),
       st.floats(0.0, 3.0))
def test_every_map_is_bounded_and_monotone_in_the_score(seed, n, method, slope):
    rng = np.random.default_rng(seed)
    p = rng.uniform(0, 1, n)
    p[: n // 10] = rng.choice([0.0, 1.0], n // 10)            # raw scores at the extremes too
    y = (rng.random(n) < special.expit(slope * special.logit(np.clip(p, 1e-3, 1 - 1e-3)))).astype(int)
    if y.min() == y.max():
        y[0] = 1 - y[0]
    fit = {"isotonic": fit_bounded_isotonic, "platt": fit_platt, "beta": fit_beta}[method](p, y)
    eps = 1 / (2 * n)
    assert fit.eps == eps
    q = fit.apply(np.linspace(0, 1, 501))
    assert q.min() >= eps and q.max() <= 1 - eps
    assert np.all(np.diff(q) >= -1e-12) or method == "platt"     # Platt may fit a decreasing map
    assert np.all(np.diff(fit.table.x) > 0)
    again = FittedCalibration.from_dict(fit.to_dict())
    np.testing.assert_array_equal(again.apply(p), fit.apply(p))


def test_selection_uses_the_later_rows_and_skips_isotonic_when_small():
    p, y = _data(3, n=3000)
    sel = select_calibration(p, y, purge_rows=50)
    assert sel.validation_rows == 900 and sel.fit_rows == 2100 - 50
    assert set(sel.scores) == {"isotonic", "platt", "beta"}
    assert sel.chosen.method == min(sel.scores, key=sel.scores.get)
    assert sel.chosen.rows == 3000                 # refitted on every calibration row
    small = select_calibration(p[:900], y[:900])
    assert small.scores["isotonic"] is None and small.chosen.method in ("platt", "beta")


def test_bad_input_refused():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fit_platt([0.2, 1.2], [0, 1])
    with pytest.raises(ValueError, match="0 and 1"):
        fit_beta([0.2, 0.3], [0, 2])
    with pytest.raises(ValueError, match="single class"):
        select_calibration(np.linspace(0, 1, 100), np.zeros(100))
    with pytest.raises(ValueError, match="methods"):
        select_calibration(*_data(0, n=100), methods=("temperature",))
