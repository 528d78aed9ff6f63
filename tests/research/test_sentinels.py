"""Leakage sentinels: they pass on the pipeline and fail on planted leaks (a non-causal feature,
the future label as a feature)."""

from __future__ import annotations

import numpy as np
import pytest

from bot4.features import trading_config
from bot4.research.sentinels import SentinelConfig, block_permutation, truncation_sentinel
from bot4.research.validate import ValidateConfig, validate

FCONF = trading_config(decision="time", decision_interval_ns=100_000_000)


@pytest.fixture(scope="module")
def sim():
    from bot4.sim import generate

    return generate(seed=12, n_events=100_000)


def test_truncation_sentinel_passes_on_the_pipeline(sim):
    out = truncation_sentinel(sim, FCONF, 20, "events", 0.5, cuts=4, seed=1)
    assert out["pass"] and len(out["cuts"]) == 4
    assert out["statistic"] == {"max_rel_diff": 0.0, "label_mismatches": 0}
    assert all(c["rows"] > 0 and c["future_scrambled_max_rel_diff"] == 0.0 for c in out["cuts"])


def test_truncation_sentinel_catches_a_feature_that_reads_the_future(sim, monkeypatch):
    import bot4.features as features

    real = features.compute

    def centred(data, config=None, **kw):
        fs = real(data, config, **kw)
        m = fs.matrix.copy()
        col = fs.names.index("mid_price")
        x = m[:, col].astype(np.float64)
        k = 5    # a centred rolling mean, the pandas rolling(center=True) mistake
        pad = np.r_[np.full(k, x[0]), x, np.full(k, x[-1])]
        m[:, col] = np.convolve(pad, np.ones(2 * k + 1) / (2 * k + 1), mode="valid")
        fs.matrix = m
        return fs

    monkeypatch.setattr(features, "compute", centred)
    out = truncation_sentinel(sim, FCONF, 20, "events", 0.5, cuts=3, seed=1)
    assert not out["pass"] and out["statistic"]["max_rel_diff"] > 1e-12


def test_block_permutation_keeps_blocks_and_counts():
    y = np.arange(23)
    p = block_permutation(y, 5, np.random.default_rng(0))
    assert sorted(p.tolist()) == y.tolist()
    starts = [i for i in range(0, 23) if p[i] % 5 == 0]
    for i in starts:       # every block moved whole
        want = list(range(p[i], min(p[i] + 5, 23)))
        assert p[i:i + len(want)].tolist() == want


def test_permutation_null_bands_and_planted_leak(sim):
    r = validate(sim, ValidateConfig(folds=2, n_estimators=15, max_depth=3, horizon=20, thresholds=(0.55,)),
                 feature_config=FCONF, sentinels=True,
                 sentinel_config=SentinelConfig(permutations=20, max_folds=1, cuts=2))
    by = {s["name"]: s for s in r.sentinels}
    assert set(by) == {"truncation", "permuted_labels_auc", "permuted_labels_sharpe", "planted_leak"}
    auc = by["permuted_labels_auc"]
    assert auc["permutations"] == 20 and len(auc["statistic"]["values"]) == 20
    lo, hi = auc["null_band"]["single"]
    assert lo < 0.5 < hi and auc["pass"], auc["statistic"]
    assert by["permuted_labels_sharpe"]["pass"], by["permuted_labels_sharpe"]["statistic"]
    # the label itself as a feature: AUC far above the band, so the sentinel has power
    leak = by["planted_leak"]
    assert leak["caught"] and leak["statistic"]["auc"] > max(auc["statistic"]["values"])
    assert leak["statistic"]["p_value"] == pytest.approx(1 / 21)
    assert r.as_json()["sentinels"] is r.sentinels
