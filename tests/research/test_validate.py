"""bot4.research.validate on the embedded simulator stream: the whole pipeline per fold, purged
by label interval, with after-fee trading metrics, deflated Sharpe and PBO."""

from __future__ import annotations

import numpy as np
import pytest

from bot4.features import trading_config
from bot4.research.validate import ValidateConfig, build_samples, fit_and_calibration, validate

FCONF = trading_config(decision="time", decision_interval_ns=100_000_000)
SMALL = dict(n_estimators=15, max_depth=3, horizon=20, thresholds=(0.55, 0.6))


@pytest.fixture(scope="module")
def sim():
    from bot4.sim import generate

    return generate(seed=11, n_events=120_000)


@pytest.mark.parametrize("scheme,folds", [("walk-forward", 3), ("cpcv", 3)])
def test_validate_runs_every_fold_purged(sim, scheme, folds):
    r = validate(sim, ValidateConfig(scheme=scheme, folds=folds, embargo_ns=500_000_000, **SMALL),
                 feature_config=FCONF)
    doc = r.as_json()
    for key in ("scheme", "folds", "sharpe", "deflated_sharpe", "pbo", "brier", "ece", "auc"):
        assert key in doc, key
    assert doc["scheme"] == scheme
    if scheme == "walk-forward":       # expanding: each fold trains on more than the one before
        sizes = [f["train"]["samples"] for f in doc["folds"]]
        assert sizes == sorted(sizes) and sizes[0] < sizes[-1]
    assert len(doc["folds"]) == (3 if scheme == "walk-forward" else 3)   # C(3, 2) = 3 splits
    for f in doc["folds"]:
        # the purge leaves more time between a training decision and the next test decision than
        # that training row's label window, measured in ns by label intervals
        assert f["min_purge_ns"] > f["horizon_ns"] > 0
        assert f["metrics"]["rows"] == sum(t["samples"] for t in f["test"])
        assert "pnl" in f["metrics"] and f["metrics"]["fees"] >= 0
        for t in f["trading"]:
            assert {"sharpe_per_trade", "sharpe_per_bar", "turnover", "hit_rate"} <= set(t)
    assert 0.0 <= doc["brier"] <= 1.0 and 0.0 <= doc["ece"] <= 1.0 and 0.0 <= doc["auc"] <= 1.0
    assert doc["sharpe_detail"]["n_trials"] == 2
    if scheme == "cpcv":
        assert len(doc["paths"]) == 2        # C(N-1, k-1) = C(2, 1)


def test_calibration_part_is_purged_from_the_fit_part(sim):
    from bot4.features import compute

    s = build_samples(compute(sim, FCONF), ValidateConfig(**SMALL))
    fit, cal = fit_and_calibration(s, np.arange(s.y.size), 0.25)
    assert fit.size and cal.size and fit[-1] < cal[0]
    assert s.t1[fit].max() < s.t0[cal[0]]          # no fitting label reaches the calibration span


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="scheme"):
        ValidateConfig(scheme="shuffled")
    with pytest.raises(ValueError, match="thresholds"):
        ValidateConfig(thresholds=(0.3,))
    with pytest.raises(ValueError, match="folds"):
        ValidateConfig(scheme="cpcv", folds=2)


def test_transfer_mode_trains_on_one_stream_and_scores_another(sim):
    from bot4.sim import generate

    other = generate(seed=21, n_events=80_000)
    r = validate(sim, ValidateConfig(folds=2, **SMALL), feature_config=FCONF, train_data=other)
    doc = r.as_json()
    assert len(doc["folds"]) == 2
    for f in doc["folds"]:
        assert f["train"]["recording"] == "train_data" and f["fit_samples"] > 0
        assert f["metrics"]["rows"] > 0 and "pnl" in f["metrics"]
