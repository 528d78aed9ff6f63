"""Per-regime calibration: a map only where a regime has enough rows of each class, pooled
fallback elsewhere (unknown and undefined regimes included), metrics per regime."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special

from bot4.research.calibration import brier, ece
from bot4.research.regime_calibration import RegimeCalibration, fit_regime_calibration, metrics_by_regime


def _two_regimes(n=6000, seed=0):
    rng = np.random.default_rng(seed)
    regime = rng.integers(0, 2, n)
    regime[: n // 20] = 2                         # a rare regime: too few rows for its own map
    regime[n // 20: n // 10] = -1                 # undefined (no regime signal yet)
    p = rng.uniform(0.05, 0.95, n)
    # the model is over-confident in regime 1 and under-confident in regime 0
    slope = np.where(regime == 1, 0.3, 2.0)
    y = (rng.random(n) < special.expit(slope * special.logit(p))).astype(int)
    return p, y, regime


def test_per_regime_maps_and_fallback():
    p, y, regime = _two_regimes()
    cal = fit_regime_calibration(p, y, regime, min_per_class=200)
    assert set(cal.per_regime) == {0, 1}
    assert cal.selection[2]["method"] == "pooled"
    pooled_only = cal.pooled.apply(p)
    out = cal.apply(p, regime)
    for reg in (-1, 2):
        np.testing.assert_array_equal(out[regime == reg], pooled_only[regime == reg])
    np.testing.assert_array_equal(cal.apply(p, np.full(p.size, 99)), pooled_only)   # unseen regime
    for reg in (0, 1):
        np.testing.assert_array_equal(out[regime == reg], cal.per_regime[reg].apply(p[regime == reg]))
    # conditioning on the regime helps where the miscalibration differs by regime
    p2, y2, r2 = _two_regimes(seed=1)
    assert brier(y2, cal.apply(p2, r2)) < brier(y2, cal.pooled.apply(p2)) - 0.002
    m1 = r2 == 1
    assert ece(y2[m1], cal.apply(p2, r2)[m1]) < ece(y2[m1], cal.pooled.apply(p2)[m1])
    again = RegimeCalibration.from_dict(cal.to_dict())
    np.testing.assert_array_equal(again.apply(p2, r2), cal.apply(p2, r2))


def test_min_per_class_counts_each_class():
    p, y, regime = _two_regimes()
    n_min = min(int(((regime == 0) & (y == c)).sum()) for c in (0, 1))
    cal = fit_regime_calibration(p, y, regime, min_per_class=n_min + 1)
    assert 0 not in cal.per_regime and "fewer than" in cal.selection[0]["reason"]
    cal = fit_regime_calibration(p, y, regime, min_per_class=n_min)
    assert 0 in cal.per_regime


def test_metrics_by_regime_add_up():
    p, y, regime = _two_regimes()
    m = metrics_by_regime(y, p, regime, {0: "calm", 1: "wild"})
    assert set(m) == {"all", "calm", "wild", "regime_2", "undefined"}
    assert sum(v["rows"] for k, v in m.items() if k != "all") == m["all"]["rows"] == p.size
    weighted = sum(v["rows"] * v["brier"] for k, v in m.items() if k != "all") / p.size
    assert weighted == pytest.approx(m["all"]["brier"], rel=1e-12)


def test_bad_input_refused():
    p, y, regime = _two_regimes(n=1000)
    with pytest.raises(ValueError, match="regimes"):
        fit_regime_calibration(p, y, regime[:-1])
    with pytest.raises(ValueError, match="min_per_class"):
        fit_regime_calibration(p, y, regime, min_per_class=0)
    cal = fit_regime_calibration(p, y, regime)
    with pytest.raises(ValueError, match="regimes"):
        cal.apply(p, regime[:10])
