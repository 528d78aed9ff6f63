"""The meta-weighter (bot4.portfolio.meta): pinball loss against sklearn, linear quantile blend
against statsmodels' QuantReg, regime-conditional models, isotonic calibration, no look-ahead,
the online calibration tracker against the batch figures, and an out-of-sample run on a Binance
recording (spot and COIN-M, BTC and ETH) with walk-forward purged splits."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot4.errors import InputError
from bot4.portfolio import agents as ag
from bot4.portfolio import meta as mt
from bot4.research.calibration import brier, ece


def _output(name: str, mu, sigma, regime) -> ag.AgentOutput:
    n = len(mu)
    mu, sigma = np.asarray(mu, float), np.asarray(sigma, float)
    q = np.column_stack([mu - 1.28 * sigma, mu, mu + 1.28 * sigma])
    return ag.AgentOutput(agent=name, model_version="t", horizon=10, timestamps=np.arange(n, dtype=np.int64),
                          instruments=np.ones(n, np.uint32), mu=mu, sigma=sigma, quantiles=q,
                          confidence=np.full(n, 0.5), regime=np.asarray(regime, np.int64))


def _synthetic(n: int = 3000, seed: int = 5):
    """Two agents; in regime 0 the target follows agent a, in regime 1 it follows -a (so only a
    regime-conditional blend gets the sign right); agent b is noise."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=n), rng.normal(size=n)
    reg = (np.arange(n) // 50) % 2
    y = np.where(reg == 0, 1.0, -1.0) * 2.0 * a + rng.normal(size=n) * (1 + 0.5 * np.abs(b))
    outs = [_output("a", a, np.ones(n), reg), _output("b", b, np.full(n, 2.0), reg)]
    return outs, y, reg


def test_pinball_matches_sklearn():
    from sklearn.metrics import mean_pinball_loss

    rng = np.random.default_rng(0)
    y, q = rng.normal(size=200), rng.normal(size=200)
    for tau in (0.1, 0.5, 0.9):
        assert mt.pinball(y, q, tau) == pytest.approx(mean_pinball_loss(y, q, alpha=tau), rel=1e-12)
    assert mt.pinball([1.0, np.nan], [0.0, 5.0], 0.9) == pytest.approx(0.9)
    with pytest.raises(InputError):
        mt.pinball([np.nan], [1.0], 0.5)


def test_linear_blend_matches_statsmodels_quantreg():
    import statsmodels.api as sm

    outs, y, _ = _synthetic(800)
    rows = np.arange(800)
    m = mt.MetaWeighter(backend="linear", min_regime_rows=10**9).fit(outs, y, rows)
    assert list(m.models) == [None]
    X, names = mt.agent_matrix(outs)
    assert names == ["a.mu", "a.sigma", "a.confidence", "b.mu", "b.sigma", "b.confidence"]
    # sigma and confidence are constant here: QuantReg on the varying columns gives the same fit
    Xv = sm.add_constant(X[:, [0, 3]])
    q = m.quantiles(outs)
    for j, tau in enumerate(m.taus):
        ref = sm.QuantReg(y, Xv).fit(q=tau, max_iter=5000, p_tol=1e-10).predict(Xv)
        np.testing.assert_allclose(q[:, j], ref, atol=5e-3)


@pytest.mark.parametrize("backend", ["linear", "lightgbm"])
def test_regime_conditional_models_get_the_sign_right(backend):
    outs, y, reg = _synthetic()
    train, test = np.arange(2000), np.arange(2000, 3000)
    cond = mt.MetaWeighter(backend=backend, min_regime_rows=200).fit(outs, y, train)
    pooled = mt.MetaWeighter(backend=backend, min_regime_rows=10**9).fit(outs, y, train)
    assert set(cond.models) == {None, 0, 1} and set(pooled.models) == {None}
    a = outs[0].mu[test]
    mu_c, mu_p = cond.predict(outs).mu[test], pooled.predict(outs).mu[test]
    sign = np.where(reg[test] == 0, 1.0, -1.0)
    assert np.mean(np.sign(mu_c) == np.sign(sign * a)) > 0.9
    assert mt.pinball(y[test], mu_c, 0.5) < 0.8 * mt.pinball(y[test], mu_p, 0.5)
    q = cond.predict(outs).quantiles
    assert np.all(np.diff(q[test], axis=1) >= 0)


def test_auto_backend_is_lightgbm_when_installed():
    pytest.importorskip("lightgbm")
    assert mt.MetaWeighter().backend_used == "lightgbm"
    with pytest.raises(InputError, match="backend"):
        mt.MetaWeighter(backend="xgb")
    with pytest.raises(InputError, match="taus"):
        mt.MetaWeighter(taus=(0.1, 0.9))


def test_isotonic_calibration_reduces_calibration_error_out_of_sample():
    # Cauchy noise: Phi(mu / sigma_IQR) assumes normal tails, so the raw probability is overconfident
    # (at mu = 2: Phi(2 / 1.48) = 0.91 against the true 1/2 + arctan(2) / pi = 0.85)
    rng = np.random.default_rng(9)
    n = 6000
    a, b = rng.normal(size=n), rng.normal(size=n)
    y = 2.0 * a + rng.standard_cauchy(size=n)
    outs = [_output("a", a, np.ones(n), np.zeros(n)), _output("b", b, np.ones(n), np.zeros(n))]
    m = mt.MetaWeighter(backend="linear", min_regime_rows=10**9)
    m.fit(outs, y, np.arange(2000)).calibrate(outs, y, np.arange(2000, 4000))
    out = m.predict(outs)
    test = np.arange(4000, 6000)
    up = (y[test] > 0).astype(int)
    assert ece(up, out.p[test]) < ece(up, out.p_raw[test])
    assert brier(up, out.p[test]) <= brier(up, out.p_raw[test])
    assert np.all((out.p > 0) & (out.p < 1))   # bounded (METHODS.md §17)
    rep = mt.evaluate(out, outs, y, test)
    assert rep["calibration"]["isotonic"]["ece"] == pytest.approx(ece(up, out.p[test]))
    assert set(rep["agents"]) == {"a", "b"} and rep["rows"] == 2000


@settings(max_examples=8, deadline=None)
@given(cut=st.integers(1200, 3000))
def test_no_look_ahead_truncation_leaves_earlier_outputs_unchanged(cut):
    outs, y, _ = _synthetic()
    train, cal = np.arange(800), np.arange(800, 1200)

    def cut_to(o: ag.AgentOutput, n: int) -> ag.AgentOutput:
        return ag.AgentOutput(o.agent, o.model_version, o.horizon, o.timestamps[:n], o.instruments[:n], o.mu[:n],
                              o.sigma[:n], o.quantiles[:n], o.confidence[:n], o.regime[:n])

    short = [cut_to(o, cut) for o in outs]
    full = mt.MetaWeighter(backend="lightgbm", min_regime_rows=200).fit(outs, y, train).calibrate(outs, y, cal)
    part = mt.MetaWeighter(backend="lightgbm", min_regime_rows=200).fit(short, y[:cut], train)
    part.calibrate(short, y[:cut], cal)
    a, b = full.predict(outs), part.predict(short)
    np.testing.assert_array_equal(a.quantiles[:cut], b.quantiles)
    np.testing.assert_array_equal(a.p[:cut], b.p)


@settings(max_examples=30, deadline=None)
@given(data=st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(0, 1)), min_size=1, max_size=300),
       window=st.one_of(st.none(), st.integers(1, 60)), n_bins=st.integers(1, 15))
def test_online_tracker_equals_the_batch_figures(data, window, n_bins):
    tr = mt.CalibrationTracker(n_bins=n_bins, window=window)
    p = np.array([d[0] for d in data])
    y = np.array([d[1] for d in data])
    for i in range(len(data)):
        tr.update(p[i], int(y[i]))
        lo = 0 if window is None else max(0, i + 1 - window)
        assert tr.count == i + 1 - lo
        assert tr.brier == pytest.approx(brier(y[lo:i + 1], p[lo:i + 1]), abs=1e-9)
        assert tr.ece == pytest.approx(ece(y[lo:i + 1], p[lo:i + 1], n_bins), abs=1e-9)


def test_online_tracker_refuses_bad_observations():
    tr = mt.CalibrationTracker(n_bins=5)
    assert np.isnan(tr.ece) and np.isnan(tr.brier)
    for p, y in ((1.5, 1), (np.nan, 0), (0.5, 2), (-0.1, 0)):
        with pytest.raises(InputError):
            tr.update(p, y)
    assert tr.count == 0 and tr.seen == 0
    tr.update(0.9, 1)
    assert tr.count == 1 and tr.brier == pytest.approx(0.01)
    with pytest.raises(InputError):
        mt.CalibrationTracker(n_bins=0)
    with pytest.raises(InputError):
        mt.CalibrationTracker(window=0)


def test_cross_fit_predicts_each_fold_from_a_model_that_never_saw_it():
    from bot4.features import compute, trading_config
    from bot4.sim import generate

    fs = compute(generate(seed=4, n_events=12_000), trading_config(decision="time"))
    n = len(fs.timestamps)
    folds = [(np.arange(0, n // 3), np.arange(n // 2, 2 * n // 3)), (np.arange(n // 3, 2 * n // 3), np.arange(0, n // 4))]
    out = ag.cross_fit(lambda: ag.MeanReversionAgent(10, max_rows=1500), fs, folds)
    for train, pred in folds:
        ref = ag.MeanReversionAgent(10, max_rows=1500).fit(fs, train).predict(fs)
        np.testing.assert_array_equal(out.mu[pred], ref.mu[pred])
        np.testing.assert_array_equal(out.quantiles[pred], ref.quantiles[pred])
    rest = np.ones(n, bool)
    rest[np.concatenate([p for _, p in folds])] = False
    assert np.isnan(out.mu[rest]).all() and np.all(out.confidence[rest] == 0) and np.all(out.regime[rest] == -1)


def test_fit_refuses_outputs_of_different_lengths():
    outs, y, _ = _synthetic(300)
    short = _output("c", np.zeros(10), np.ones(10), np.zeros(10))
    with pytest.raises(InputError, match="rows"):
        mt.MetaWeighter(backend="linear").fit(outs + [short], y, np.arange(100))
    with pytest.raises(InputError, match="not fitted"):
        mt.MetaWeighter(backend="linear").predict(outs)


BINANCE = ["spot/btcusdt_20240808.gz", "spot/btcusdt_20240809.gz", "spot/ethusdt_20240808.gz",
           "spot/ethusdt_20240809.gz", "coinm/btcusd_perp_20240808.gz", "coinm/btcusd_perp_20240809.gz",
           "coinm/ethusd_perp_20240808.gz", "coinm/ethusd_perp_20240809.gz"]


@pytest.mark.realdata
def test_out_of_sample_on_binance(shared_data):
    """Walk-forward groups G0..G3 (bot4.research.splits, purged by label end time), 100 ms rows,
    h = 100 rows (10 s). Stacking: the meta-weighter is fitted on the agents' out-of-fold outputs
    over G0 + G1 (3 purged folds), the agents refitted on G0 + G1; isotonic on G2; all scored on G3."""
    from bot4.data import load
    from bot4.features import compute, trading_config
    from bot4.research import splits

    fs = compute(load([shared_data / "binance_hftbacktest" / f for f in BINANCE]), trading_config(decision="time"))
    assert np.unique(fs.instruments).size == 4
    h = 100
    r, end = ag.forward_returns(fs, h)
    t1 = ag.label_end_times(fs, end)
    folds = splits.walk_forward(fs.timestamps, t1, 3)
    groups = [f.test for f in folds]                      # G1, G2, G3 (fold k tests G(k+1))
    fit_rows = folds[1].train                             # G0 + G1 minus labels reaching G2
    cal_rows = np.intersect1d(folds[2].train, groups[1])  # G2 minus labels reaching G3
    test = groups[2]
    assert np.all(end[fit_rows] < groups[1][0]) and np.all(end[cal_rows] < test[0])
    inner = [(fit_rows[f.train], fit_rows[f.test]) for f in splits.purged_kfold(fs.timestamps[fit_rows], t1[fit_rows], 3)]
    makers = [lambda: ag.DirectionAgent(h, max_rows=4000), lambda: ag.MicropriceOFIAgent(h, max_rows=4000),
              lambda: ag.VolBreakoutAgent(h, max_rows=4000), lambda: ag.MeanReversionAgent(h, max_rows=4000)]
    oof = [ag.cross_fit(make, fs, inner) for make in makers]
    outs = [make().fit(fs, fit_rows).predict(fs) for make in makers]
    reports = {}
    for label, kw in (("lightgbm_per_regime", dict(backend="lightgbm")),
                      ("lightgbm_pooled", dict(backend="lightgbm", min_regime_rows=10**9)),
                      ("linear_per_regime", dict(backend="linear", max_rows=4000)),
                      ("linear_pooled", dict(backend="linear", min_regime_rows=10**9, max_rows=4000))):
        meta = mt.MetaWeighter(**kw).fit(oof, r, fit_rows).calibrate(outs, r, cal_rows)
        blended = meta.predict(outs)
        reports[label] = rep = mt.evaluate(blended, outs, r, test)
        assert rep["rows"] > 5000
        cal = rep["calibration"]
        assert cal["isotonic"]["ece"] < cal["raw"]["ece"] and cal["isotonic"]["brier"] < cal["raw"]["brier"]
        # the online tracker fed the test rows one by one ends where the batch figures are
        tr = mt.CalibrationTracker(n_bins=10)
        moved = test[np.isfinite(r[test]) & (r[test] != 0) & np.isfinite(blended.p[test])]
        for i in moved:
            tr.update(blended.p[i], int(r[i] > 0))
        assert tr.ece == pytest.approx(cal["isotonic"]["ece"], abs=1e-9)
    # the pooled linear blend beats every single agent on the mean pinball loss over 0.1 / 0.5 / 0.9
    lin = reports["linear_pooled"]
    meta_mean = np.mean([lin["pinball"][t] for t in ("0.1", "0.5", "0.9")])
    best_agent = min(np.mean(list(v.values())) for v in lin["agents"].values())
    print("\nout of sample, Binance spot + COIN-M BTC/ETH, h = 100 rows (10 s):")
    print(json.dumps(reports, indent=1))
    print(f"mean pinball (0.1/0.5/0.9): linear pooled meta {meta_mean:.4f}, best single agent {best_agent:.4f}")
    assert meta_mean < best_agent
