"""The engine's strategy rules on real data with a model whose signal we control.

The model is an XGBoost classifier fitted to a synthetic label (the mid price above its median),
so its probability swings between ~0 and ~1 as the real mid crosses that level: entries, flips
and exits happen on cue. Checked: exits on a flip flatten the position (cancel everything, wait for
the venue, reduce-only close) and never leave it reversed; the kill switch's latency trigger
(order round trip) stops new entries and flattens; an L3 (MBO) recording runs through the engine
with the venue in L3 mode; a linear contract's multiplier (ES: 50 USD per index point) reaches its
P&L and fees.
"""
from __future__ import annotations

import numpy as np
import pytest
from recordings import BTCUSDT, data_path

BTC = data_path(*BTCUSDT)
ESH4 = data_path("databento_cme", "esh4-glbx-mdp3-20231225.mbo.dbn.zst")
pytestmark = pytest.mark.realdata

ACT_ENTRY, ACT_CLOSE = 1, 3
ROLE_SINGLE, ROLE_ENTRY = 0, 1
KIND_NEW = 0


def _slice(d, lo_frac, hi_frac):
    from bot4.data.market_data import MarketData

    stream = d.orders if d.orders.size else d.book
    ts = stream["ts_local"]
    lo = ts[0] + int((ts[-1] - ts[0]) * lo_frac)
    hi = ts[0] + int((ts[-1] - ts[0]) * hi_frac)

    def cut(a):
        return np.ascontiguousarray(a[(a["ts_local"] >= lo) & (a["ts_local"] < hi)])

    return MarketData(specs=d.specs, book=cut(d.book), orders=cut(d.orders), trades=cut(d.trades), venue=d.venue)


def _mid_model(data):
    """A model with p ~ 1 when mid_price is above its median over `data`, ~ 0 below."""
    from xgboost import XGBClassifier

    from bot4.features import FeatureConfig, compute, feature_names
    from bot4.models.loader import load_bytes
    from bot4.research.train import export_onnx

    fs = compute(data, FeatureConfig(), progress=False)
    X = np.ascontiguousarray(fs.matrix, dtype=np.float32)
    mid = X[:, list(fs.names).index("mid_price")]
    ok = np.isfinite(mid)
    y = (mid > np.median(mid[ok])).astype(int)
    clf = XGBClassifier(n_estimators=8, max_depth=2, learning_rate=1.0, objective="binary:logistic")
    clf.fit(X[ok], y[ok])
    n = len(feature_names())
    return load_bytes(export_onnx(clf, n), n, sidecar={"feature_names": feature_names(), "n_features": n})


@pytest.fixture(scope="module")
def btc():
    from bot4.data import load

    assert BTC.exists(), f"reference recording missing: {BTC}"
    d = load(BTC)
    return _slice(d, 0.0, 0.25)


@pytest.fixture(scope="module")
def btc_model(btc):
    return _mid_model(btc)


def _cfg(**strategy):
    st = {"long_threshold": 0.6, "stop_ticks": 5000, "target_ticks": 5000, "order_ttl_ns": 0,
          "fixed_qty_lots": 2, "market_entry": True}
    st.update(strategy)
    return {"strategy": st, "pre_trade": {"max_position_lots": 10, "max_open_orders": 10,
                                          "rate_capacity": 100, "rate_per_second": 100}}


def _positions_after_fills(res):
    f = res.fills
    signed = np.where(f["side"] == 0, f["qty"], -f["qty"]).astype(np.int64)
    return np.cumsum(signed)


def test_the_model_swings(btc, btc_model):
    p = btc_model.predict_proba(np.zeros((1, btc_model.n_features), np.float32))
    assert p.shape == (1,)
    from bot4.backtest import run

    res = run(btc, btc_model, _cfg(), progress=False)
    assert (res.decisions["p"] > 0.9).any() and (res.decisions["p"] < 0.1).any()


def test_flip_exits_flatten_and_never_reverse(btc, btc_model):
    from bot4.backtest import run

    res = run(btc, btc_model, _cfg(exit_on_flip=True), progress=False)
    c = res.counters
    assert c["exits"] > 0 and c["closes"] > 0, c
    closes = res.orders[(res.orders["kind"] == KIND_NEW) & (res.orders["role"] == ROLE_SINGLE)]
    assert closes.size == c["closes"]
    # every close goes against the position it closes and never reverses it
    pos = _positions_after_fills(res)
    f = res.fills
    for i in np.flatnonzero(f["role"] == ROLE_SINGLE):
        before = pos[i] - (f["qty"][i] if f["side"][i] == 0 else -f["qty"][i])
        assert before != 0 and abs(pos[i]) < abs(before) and np.sign(pos[i]) != -np.sign(before)
    assert np.abs(pos).max(initial=0) <= 2         # one bracket of 2 lots at a time
    assert res.fills["accepted"].all()
    # without the flip rule the position only leaves through its (far) bracket legs
    quiet = run(btc, btc_model, _cfg(exit_on_flip=False), progress=False)
    assert quiet.counters["exits"] == 0 and quiet.counters["closes"] == 0
    assert quiet.counters["orders_sent"] < c["orders_sent"]


def test_latency_kill_switch_stops_entries_and_flattens(btc, btc_model):
    from bot4.backtest import run

    cfg = _cfg()
    cfg["kill_switch"] = {"max_latency_ns": 150_000}            # the round trip is 200 us
    cfg["sim"] = {"entry_latency_ns": 100_000, "response_latency_ns": 100_000}
    res = run(btc, btc_model, cfg, progress=False)
    assert res.kill_reason == "latency"
    assert res.counters["kill_switch_trips"] == 1
    entries = res.orders[(res.orders["kind"] == KIND_NEW) & (res.orders["role"] == ROLE_ENTRY)]
    assert entries.size == 1                                      # the first ack tripped it
    assert res.equity["position"][-1] == 0                        # flattened
    ok = run(btc, btc_model, _cfg(), progress=False)               # default 50 ms: never trips
    assert ok.kill_reason == "none" and ok.counters["orders_sent"] > 1


def test_l3_recording_runs_with_an_l3_venue():
    from bot4.backtest import run
    from bot4.data import load

    assert ESH4.exists(), f"ES MBO recording missing: {ESH4}"
    d = load(ESH4)
    assert d.orders.size and not d.book.size
    model = _mid_model(d)
    res = run(d, model, {"strategy": {"long_threshold": 0.6, "fixed_qty_lots": 1, "stop_ticks": 8,
                                      "target_ticks": 8, "order_ttl_ns": 30_000_000_000}}, progress=False)
    c = res.counters
    assert c["order_events"] == d.orders.size and c["book_events"] == 0
    assert c["decisions"] > 1000 and c["orders_sent"] > 0 and res.fills.size > 0, c
    assert res.fills["accepted"].all()
    pos = _positions_after_fills(res)
    # the last equity record holds every fill received by then (later ones arrive after it)
    k = int(np.searchsorted(res.fills["ts"], res.equity["ts"][-1], side="right"))
    assert (int(pos[k - 1]) if k else 0) == int(res.equity["position"][-1])


def _realised_ticks_lots(fills) -> int:
    """Average-cost realised P&L of the fills in ticks x lots (Python integers; the closed part's
    cost truncates toward zero as the core's 128-bit arithmetic does)."""
    pos = cost = realised = 0
    for f in fills:
        q = int(f["qty"]) if f["side"] == 0 else -int(f["qty"])
        px = int(f["price"])
        if pos == 0 or (pos > 0) == (q > 0):
            cost, pos = cost + px * q, pos + q
            continue
        closing = min(abs(q), abs(pos))
        num = cost * closing
        closed = abs(num) // abs(pos) * (1 if num >= 0 else -1)
        d = 1 if pos > 0 else -1
        realised += px * closing * d - closed
        cost, pos = cost - closed, pos + q
        if pos == 0:
            cost = 0
        elif (pos > 0) != (d > 0):
            cost = px * pos
    return realised


def test_linear_multiplier_reaches_pnl_and_fees():
    """ESH4 is 50 USD per index point per contract: with fixed one-lot orders the same fills are worth
    50 times what they are worth with the multiplier taken away (contract_size "1"), realised P&L and
    fees alike, and the realised figure is the fills' own average-cost P&L x tick x lot x 50."""
    import msgspec

    from bot4.backtest import run
    from bot4.data import load
    from bot4.data.market_data import MarketData

    d = load(ESH4)
    (iid, spec), = d.specs.items()
    assert spec.contract_size == "50" and not spec.inverse
    model = _mid_model(d)
    # a drawdown stop in units of equity would see 50x the loss: off, so both runs trade alike
    cfg = {"strategy": {"long_threshold": 0.6, "fixed_qty_lots": 1, "stop_ticks": 8, "target_ticks": 8,
                        "order_ttl_ns": 30_000_000_000},
           "kill_switch": {"max_drawdown": 1.0}}
    es = run(d, model, cfg, progress=False)
    one = MarketData(specs={iid: msgspec.structs.replace(spec, contract_size="1")}, book=d.book, orders=d.orders,
                     trades=d.trades, venue=d.venue)
    unit = run(one, model, cfg, progress=False)
    assert es.fills.size > 4 and es.kill_reason == "none" and unit.kill_reason == "none"
    same = ("ts", "price", "qty", "side")
    assert all(np.array_equal(es.fills[k], unit.fills[k]) for k in same)
    tick, lot = float(spec.tick_size), float(spec.lot_size)
    realised = _realised_ticks_lots(es.fills[es.fills["accepted"] == 1])
    assert realised != 0
    (inst,) = es.instruments
    assert inst["realised"] == pytest.approx(realised * tick * lot * 50.0, rel=1e-12)
    assert es.instruments[0]["realised"] == pytest.approx(50.0 * unit.instruments[0]["realised"], rel=1e-12)
    # fees: bps of price x qty x 50 (the simulator's default 2 bps maker, 5 bps taker)
    from bot4.backtest.engine import default_config

    sim = default_config()["sim"]
    bps = np.where(es.fills["maker"] == 1, sim["maker_bps"], sim["taker_bps"])
    notional = es.fills["price"] * tick * es.fills["qty"] * lot * 50.0
    assert es.fills["fee"] == pytest.approx(notional * bps * 1e-4, rel=1e-12)
    assert es.fills["fee"] == pytest.approx(50.0 * unit.fills["fee"], rel=1e-12)
