"""The ensemble stage (core/inference/ensemble.hpp) on its own: every mode against a Python
reference on the same outputs (sklearn for the stacker, scipy for the rank average), the
disagreement breaker at its thresholds, the adaptive weights and their cadence, bad configs, and
property tests of the combined probability's range."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot4 import _core
from bot4.errors import ConfigError

Ensemble = _core.inference.Ensemble


def _ens(n=3, **cfg):
    return Ensemble(cfg, n)


def _dispersion(p):
    return float(np.std(np.asarray(p, dtype=np.float64)))  # population std (ddof 0)


# ------------------------------------------------------------------ modes against references
def test_mean_and_weighted_match_numpy():
    rng = np.random.default_rng(1)
    P = rng.uniform(0, 1, (500, 3))
    w = [0.2, 0.5, 1.3]
    mean, weighted = _ens(mode="mean"), _ens(mode="weighted", weights=w)
    for p in P:
        assert mean.combine(p.tolist())["p"] == pytest.approx(p.mean(), abs=1e-15)
        assert weighted.combine(p.tolist())["p"] == pytest.approx(float(np.dot(w, p) / sum(w)), abs=1e-15)


def test_weighted_with_negative_weight_is_clipped_to_the_unit_interval():
    e = _ens(mode="weighted", weights=[2.0, -1.0, 0.5])
    out = e.combine([1.0, 0.0, 1.0])["p"]
    assert out == 1.0  # (2 + 0.5) / 1.5 > 1, clipped
    assert e.combine([0.0, 1.0, 0.0])["p"] == 0.0


def test_stacker_matches_sklearn_predict_proba():
    from bot4.research.stacking import fit_stacker, stacker_features

    rng = np.random.default_rng(2)
    n = 4000
    truth = rng.uniform(0.05, 0.95, n)
    y = (rng.uniform(size=n) < truth).astype(int)
    # three noisy views of the truth, one of them nearly useless, with a few clipped extremes
    P = np.column_stack([np.clip(truth + rng.normal(0, s, n), 0, 1) for s in (0.05, 0.15, 0.6)])
    fit = fit_stacker(P, y, C=2.0)
    cfg = fit.as_config()
    assert cfg["mode"] == "stacker" and len(cfg["coefficients"]) == 3
    e = Ensemble(cfg, 3)
    want = fit.model.predict_proba(stacker_features(P, fit.clip))[:, 1]
    got = np.array([e.combine(p.tolist())["p"] for p in P])
    assert np.max(np.abs(got - want)) <= 1e-9
    np.testing.assert_allclose(fit.predict(P), want, rtol=0, atol=1e-12)
    assert fit.coefficients[0] > fit.coefficients[2]  # the informative slot weighs most


def test_fit_stacker_refuses_bad_input():
    from bot4.research.stacking import fit_stacker

    with pytest.raises(ValueError, match="one class"):
        fit_stacker(np.full((10, 2), 0.5), np.ones(10))
    with pytest.raises(ValueError, match="non-finite"):
        fit_stacker(np.array([[0.5, np.nan], [0.2, 0.3]]), np.array([0, 1]))
    with pytest.raises(ValueError, match="one label per row"):
        fit_stacker(np.full((3, 2), 0.5), np.array([0, 1]))


@pytest.mark.parametrize("window", [1, 5, 64])
def test_rank_average_matches_scipy_percentileofscore(window):
    from scipy.stats import percentileofscore

    rng = np.random.default_rng(window)
    # coarse values so ties are frequent (ties count one half: kind="mean")
    P = np.round(rng.uniform(0, 1, (300, 3)), 1)
    e = _ens(mode="rank", rank_window=window)
    for i, p in enumerate(P):
        lo = max(0, i + 1 - window)
        want = np.mean([percentileofscore(P[lo:i + 1, j], p[j], kind="mean") / 100 for j in range(3)])
        assert e.combine(p.tolist())["p"] == pytest.approx(want, abs=1e-12), i


def test_rank_skips_non_finite_outputs():
    e = _ens(n=2, mode="rank", rank_window=3)
    e.combine([0.1, 0.2])
    out = e.combine([float("nan"), 0.5])
    assert math.isnan(out["p"]) and out["state"] == "undefined"
    # the NaN decision was not added: the window holds 2 entries, [0.1, 0.3] for slot 0
    assert e.combine([0.3, 0.2])["p"] == pytest.approx(((1 + 0.5) / 2 + (0 + 1.0) / 2) / 2)


# ------------------------------------------------------------------ adaptive weights
def _adaptive_reference(P, ts, mids, vols, cfg):
    """A plain re-implementation of the adaptive mode's definition (see ensemble.hpp)."""
    n = P.shape[1]
    w = np.full(n, 1.0 / n)
    pending, losses, since, out, refreshes = [], [[] for _ in range(n)], 0, [], []
    for p, t, m, v in zip(P, ts, mids, vols):
        while pending and pending[0][0] <= t - cfg["horizon_ns"]:
            t0, m0, p0 = pending.pop(0)
            r = (m / m0 - 1) * 1e4
            if r == 0 or abs(r) < cfg.get("dead_zone_bp", 0):
                continue
            y = 1.0 if r > 0 else 0.0
            for i in range(n):
                if cfg.get("loss", "log") == "brier":
                    loss = (p0[i] - y) ** 2
                else:
                    q = min(max(p0[i], 1e-15), 1 - 1e-15)
                    loss = -(y * math.log(q) + (1 - y) * math.log(1 - q))
                losses[i] = (losses[i] + [loss])[-cfg["loss_window"]:]
        pending.append((t, m, p))
        since += 1
        disp = _dispersion(p)
        fast = (cfg.get("fast_vol_bp", 0) > 0 and v >= cfg["fast_vol_bp"]) or \
               (cfg.get("fast_dispersion", 0) > 0 and disp >= cfg["fast_dispersion"])
        due = cfg["refresh_every_fast"] if fast else cfg["refresh_every"]
        refreshed = ""
        if since >= due:
            since = 0
            refreshed = "fast" if fast else "normal"
            if all(losses):
                L = np.array([np.mean(x) for x in losses])
                e = np.exp(-cfg["eta"] * (L - L.min()))
                w = e / e.sum()
        refreshes.append(refreshed)
        out.append(min(max(float(np.dot(w, p)), 0.0), 1.0))
    return np.array(out), refreshes, w


@pytest.mark.parametrize("loss", ["log", "brier"])
def test_adaptive_matches_reference_and_prefers_the_better_model(loss):
    rng = np.random.default_rng(5)
    n = 3000
    ts = np.cumsum(rng.integers(1, 2_000_000, n)).astype(np.int64)
    mids = 10_000 + np.cumsum(rng.choice([-1, 0, 1], n)).astype(float)
    # slot 0 sees the future move, slot 1 is noise, slot 2 is inverted
    nxt = np.searchsorted(ts, ts + 5_000_000)
    up = mids[np.minimum(nxt, n - 1)] > mids
    P = np.column_stack([np.where(up, 0.7, 0.3), rng.uniform(0.2, 0.8, n), np.where(up, 0.35, 0.65)])
    vols = rng.uniform(0, 10, n)
    cfg = dict(mode="adaptive", loss=loss, eta=5.0, horizon_ns=5_000_000, loss_window=200, refresh_every=100,
               refresh_every_fast=10, fast_vol_bp=9.0)
    e = Ensemble(cfg, 3)
    got = [e.combine(p.tolist(), int(t), float(m), float(v)) for p, t, m, v in zip(P, ts, mids, vols)]
    want, refreshes, w = _adaptive_reference(P, ts, mids, vols, cfg)
    np.testing.assert_allclose([g["p"] for g in got], want, rtol=0, atol=1e-12)
    assert [g["refresh"] for g in got] == refreshes
    np.testing.assert_allclose(e.weights, w, rtol=0, atol=1e-12)
    assert e.weights[0] > e.weights[1] > e.weights[2]


def test_adaptive_cadence_calm_volatile_and_on_request():
    cfg = dict(mode="adaptive", refresh_every=50, refresh_every_fast=5, fast_vol_bp=3.0, fast_dispersion=0.2,
               horizon_ns=1)
    calm = Ensemble(cfg, 3)
    r = [calm.combine([0.5, 0.52, 0.48], t, 100.0, 1.0)["refresh"] for t in range(1000)]
    assert r.count("normal") == 20 and r.count("fast") == 0
    vol = Ensemble(cfg, 3)
    r = [vol.combine([0.5, 0.52, 0.48], t, 100.0, 3.0)["refresh"] for t in range(1000)]  # vol at the threshold
    assert r.count("fast") == 200 and r.count("normal") == 0
    disp = Ensemble(cfg, 3)
    p = [0.2, 0.5, 0.8]  # dispersion 0.245 >= 0.2
    r = [disp.combine(p, t, 100.0, 0.0)["refresh"] for t in range(1000)]
    assert r.count("fast") == 200
    # on request: at once, whatever the count; and not in other modes
    flag = Ensemble(dict(cfg, fast_dispersion=0.0), 3)
    for t in range(10):
        flag.combine([0.9, 0.5, 0.1], t, 100.0 + t, 0.0)
    assert flag.resolved > 0
    before = list(flag.weights)
    assert flag.refresh() is True
    assert flag.weights != before and flag.weights[0] > flag.weights[2]
    assert _ens(mode="mean").refresh() is False


def test_adaptive_keeps_weights_before_any_label():
    e = Ensemble(dict(mode="adaptive", weights=[3.0, 1.0], refresh_every=1, refresh_every_fast=1), 2)
    assert e.weights == pytest.approx([0.75, 0.25])
    e.combine([0.9, 0.1], 0, 100.0)
    assert e.refresh() and e.weights == pytest.approx([0.75, 0.25])  # no label has resolved yet


# ------------------------------------------------------------------ breaker
@pytest.mark.parametrize("mode", ["mean", "rank", "adaptive"])
def test_breaker_states_just_below_and_above_each_threshold(mode):
    p = [0.4, 0.5, 0.6]
    d = _dispersion(p)  # 0.0816...
    eps = 1e-9
    cases = [(d + eps, d + 2 * eps, "calm", 1.0), (d - eps, d + eps, "scaled", 0.25), (d - 2 * eps, d - eps, "fallback", 0.25)]
    for t1, t2, state, scale in cases:
        e = _ens(mode=mode, scale_dispersion=t1, fallback_dispersion=t2, size_scale=0.25, fallback_slot=2)
        out = e.combine(p, 0, 100.0)
        assert out["dispersion"] == pytest.approx(d, abs=1e-15)
        assert (out["state"], out["scale"]) == (state, scale), (t1, t2)
        if state == "fallback":
            assert out["p"] == 0.6 and out["combined"] != 0.6
        else:
            assert out["p"] == out["combined"]


def test_equal_outputs_never_trip_a_zero_threshold():
    e = _ens(mode="mean", scale_dispersion=0.0, fallback_dispersion=0.0)
    assert e.combine([0.3, 0.3, 0.3])["state"] == "calm"  # dispersion 0 is not above 0


# ------------------------------------------------------------------ bad config
@pytest.mark.parametrize("cfg,n,match", [
    (dict(mode="weighted", weights=[1.0, float("nan"), 1.0]), 3, "finite"),
    (dict(mode="mean", scale_dispersion=-0.1), 3, "scale_dispersion must be >= 0"),
    (dict(mode="mean", fallback_dispersion=-1.0), 3, "fallback_dispersion must be >= 0"),
    (dict(mode="mean", scale_dispersion=0.2, fallback_dispersion=0.1), 3, "must be >= scale_dispersion"),
    (dict(mode="median"), 3, "unknown mode 'median'"),
    (dict(mode="weighted", weights=[1.0, 1.0]), 3, "2 weights for 3 model slots"),
    (dict(mode="weighted"), 2, "0 weights for 2 model slots"),
    (dict(mode="weighted", weights=[1.0, -1.0]), 2, "sum to > 0"),
    (dict(mode="stacker", coefficients=[1.0, 2.0]), 3, "2 coefficients for 3 model slots"),
    (dict(mode="mean", fallback_slot=3), 3, "fallback_slot 3 is not one of the 3"),
    (dict(mode="mean", size_scale=1.0), 3, "size_scale must be < 1"),
    (dict(mode="adaptive", refresh_every=10, refresh_every_fast=20), 3, "refresh_every_fast"),
    (dict(mode="adaptive", loss="hinge"), 3, "unknown loss"),
    (dict(mode="mean", weights="1,2,3"), 3, "must be a list of numbers"),
    (dict(mode="mean"), 0, "needs model slots"),
])
def test_bad_config_is_a_clear_error(cfg, n, match):
    with pytest.raises(ConfigError, match=match):
        Ensemble(cfg, n)


def test_combine_needs_one_output_per_slot():
    with pytest.raises(ValueError, match="2 outputs for 3 slots"):
        _ens(mode="mean").combine([0.5, 0.5])


# ------------------------------------------------------------------ properties
probs = st.floats(0.0, 1.0, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(probs, min_size=3, max_size=3), min_size=1, max_size=30),
       st.lists(st.floats(0.0, 10.0), min_size=3, max_size=3).filter(lambda w: sum(w) > 1e-3),
       st.lists(st.floats(-5.0, 5.0), min_size=3, max_size=3), st.floats(-5.0, 5.0))
def test_combined_probability_stays_in_range(rows, w, coef, b):
    modes = {"mean": dict(mode="mean"), "weighted": dict(mode="weighted", weights=w),
             "adaptive": dict(mode="adaptive", weights=w, refresh_every=3, refresh_every_fast=1, horizon_ns=2),
             "rank": dict(mode="rank", rank_window=7),
             "stacker": dict(mode="stacker", coefficients=coef, intercept=b)}
    ens = {k: Ensemble(c, 3) for k, c in modes.items()}
    for t, p in enumerate(rows):
        for k, e in ens.items():
            out = e.combine(p, t, 100.0 + (t % 3), 0.0)["p"]
            assert 0.0 <= out <= 1.0, k
            if k in ("mean", "weighted", "adaptive"):  # convex combinations of the outputs
                assert min(p) - 1e-12 <= out <= max(p) + 1e-12, (k, p, out)
