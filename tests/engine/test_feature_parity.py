"""Train/serve parity of the trading engine's features.

The engine computes its rows one event at a time (with grid samples and window kernels done on a
timer before the event), the research pipeline with bot4.features.compute over whole arrays. The
model must see identical rows in both, so the probability the engine decided on at each book
message equals the loaded model applied to compute()'s row at that message. The feature config
travels with the model (sidecar) and a backtest refuses a different one.
"""
from __future__ import annotations

import msgspec
import numpy as np
import pytest

from recordings import BTCUSDT, data_path

DATA = data_path(*BTCUSDT)


@pytest.fixture(scope="module")
def setup(tmp_path_factory, shared_data):
    assert DATA.exists(), f"reference recording missing: {DATA}"
    from bot4.data import load
    from bot4.data.market_data import MarketData
    from bot4.features import trading_config
    from bot4.research import TrainConfig, train

    d = load(DATA)
    ts = d.book["ts_local"]
    lo, mid, hi = ts[0], ts[0] + (ts[-1] - ts[0]) // 3, ts[0] + (ts[-1] - ts[0]) // 2

    def part(a, b):
        bk = d.book[(d.book["ts_local"] >= a) & (d.book["ts_local"] < b)]
        tr = d.trades[(d.trades["ts_local"] >= a) & (d.trades["ts_local"] < b)]
        return MarketData(specs=d.specs, book=np.ascontiguousarray(bk), trades=np.ascontiguousarray(tr),
                          venue=d.venue)

    fconf = trading_config(sample_interval_ns=50_000_000, window=64)
    out = tmp_path_factory.mktemp("model")
    train(part(lo, mid), TrainConfig(n_estimators=20, max_depth=3), out, progress=False, feature_config=fconf)
    return part(mid, hi), out, fconf


def test_sidecar_records_the_feature_config(setup):
    import bot4.models

    _, model_dir, fconf = setup
    model = bot4.models.load(model_dir)
    assert model.feature_config == fconf


def test_engine_rows_equal_compute_rows(setup):
    """Every decision's p == model(compute() row at that message), bit for bit."""
    import bot4.backtest
    import bot4.models
    from bot4.features import compute

    data, model_dir, fconf = setup
    model = bot4.models.load(model_dir)
    res = bot4.backtest.run(data, model, progress=False)
    assert res.decisions.size > 500
    assert res.latency_ns["timer"].size > 100      # the grid samples ran on the timer
    fs = compute(data, msgspec.structs.replace(fconf, decision="message"), progress=False)
    assert fs.matrix.shape[0] == res.decisions.size
    np.testing.assert_array_equal(np.asarray(fs.timestamps), res.decisions["ts"])
    expected = model.predict_proba(np.ascontiguousarray(fs.matrix, dtype=np.float32))
    got = res.decisions["p"]
    both_nan = np.isnan(expected) & np.isnan(got)
    assert np.array_equal(expected[~both_nan], got[~both_nan])


def test_decision_fields_may_change(setup):
    import bot4.backtest

    data, model_dir, fconf = setup
    cfg = {"features": {**msgspec.to_builtins(fconf), "decision": "time", "decision_interval_ns": 500_000_000}}
    res = bot4.backtest.run(data, model_dir, cfg, progress=False)
    span = int(data.book["ts_local"][-1] - data.book["ts_local"][0])
    # one decision per 0.5 s grid step (rows start once the book is two-sided)
    assert abs(res.decisions.size - span // 500_000_000) <= 2
    assert (np.diff(res.decisions["ts"]) % 500_000_000 == 0).all()


@pytest.mark.parametrize("field,value", [("sample_interval_ns", 0), ("window", 128), ("ewma_lambda", 0.9)])
def test_a_different_feature_config_is_refused(setup, field, value):
    import bot4.backtest

    data, model_dir, fconf = setup
    cfg = {"features": {**msgspec.to_builtins(fconf), field: value}}
    with pytest.raises(ValueError, match=field):
        bot4.backtest.run(data, model_dir, cfg, progress=False)
