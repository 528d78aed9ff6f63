"""The built-in market generator: determinism, book consistency (L2 = L3 = order aggregate),
timestamps, the Hawkes clock, parameters and the CLI. Runs on the shipped default parameters."""

from __future__ import annotations

import json
from importlib import resources

import numpy as np
import pytest

from bot4 import _core
from bot4.errors import ConfigError
from bot4.events import (
    ACTION_ADD, ACTION_CANCEL, ACTION_EXECUTE, ASK, BID, BOOK_EVENT, FLAG_CLEAR, FLAG_LAST,
    FLAG_SNAPSHOT, ORDER_EVENT, TRADE_EVENT,
)
from bot4.sim import MarketModelParams, default_params, generate, load_npz
from bot4.sim.params import field_docs

N = 60_000


@pytest.fixture(scope="module")
def params() -> MarketModelParams:
    return default_params()


@pytest.fixture(scope="module")
def stream(params):
    return generate(params, seed=11, n_events=N)


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


# --- determinism -------------------------------------------------------------------------------

def test_same_seed_gives_bit_identical_arrays(params, stream):
    again = generate(params, seed=11, n_events=N)
    for name in ("book", "orders", "trades"):
        assert _same(getattr(stream, name), getattr(again, name)), name


def test_different_seed_gives_different_arrays(params, stream):
    other = generate(params, seed=12, n_events=N)
    assert not _same(stream.book, other.book)
    assert not _same(stream.trades, other.trades)


def test_chunked_generation_equals_one_shot(params, stream):
    gen = _core.sim.MarketGenerator(params.core_config(), 11)
    parts = [gen.generate(n) for n in (1, 19_999, 25_000, N - 45_000)]
    for i, name in enumerate(("book", "orders", "trades")):
        joined = np.concatenate([p[i] for p in parts])
        assert _same(joined, getattr(stream, name)), name
    assert gen.counters()["events"] == N


def test_arrays_have_the_registered_dtypes(stream):
    assert stream.book.dtype == BOOK_EVENT
    assert stream.orders.dtype == ORDER_EVENT
    assert stream.trades.dtype == TRADE_EVENT
    assert stream.level == "L3"
    assert stream.spec.symbol == "BTCUSDT" and stream.spec.tick_size == "0.10"
    assert stream.spec.lot_size == "0.001"


# --- structure and timestamps ------------------------------------------------------------------

def test_snapshot_then_one_message_per_event(stream):
    book, orders = stream.book, stream.orders
    assert book["flags"][0] & (FLAG_SNAPSHOT | FLAG_CLEAR) == FLAG_SNAPSHOT | FLAG_CLEAR
    assert orders["flags"][0] & (FLAG_SNAPSHOT | FLAG_CLEAR) == FLAG_SNAPSHOT | FLAG_CLEAR
    snap = np.flatnonzero(book["flags"] & FLAG_SNAPSHOT)
    assert np.array_equal(snap, np.arange(len(snap)))  # the snapshot is one leading block
    assert book["flags"][snap[-1]] & FLAG_LAST
    assert (book["flags"][snap[:-1]] & FLAG_LAST == 0).all()
    assert ((book["flags"] & FLAG_CLEAR) != 0).sum() == 1
    # every atomic event: one FLAG_LAST in the book stream and one in the order stream
    assert (book["flags"] & FLAG_LAST != 0).sum() == N + 1
    assert (orders["flags"] & FLAG_LAST != 0).sum() == N + 1
    last = book["seq"][book["flags"] & FLAG_LAST != 0]
    assert np.array_equal(last, np.arange(N + 1))


def test_prices_sizes_and_sequence(stream):
    for arr in (stream.book, stream.orders, stream.trades):
        assert (arr["price"] > 0).all()
        assert (arr["instrument"] == stream.spec.instrument_id).all()
    assert (stream.book["qty"] >= 0).all()
    assert (stream.orders["qty"] > 0).all()
    assert (stream.trades["qty"] > 0).all()
    assert (np.diff(stream.book["seq"]) >= 0).all()
    assert (np.diff(stream.orders["seq"]) >= 0).all()
    assert (np.diff(stream.trades["seq"]) == 1).all()  # trade ids


def test_timestamps(params, stream):
    for arr in (stream.book, stream.orders, stream.trades):
        assert (np.diff(arr["ts_exchange"]) >= 0).all()
        assert (np.diff(arr["ts_local"]) >= 0).all()  # non-decreasing receive time
        assert (arr["ts_local"] - arr["ts_exchange"] >= params.latency_min_ns).all()
    assert stream.book["ts_exchange"][0] == params.epoch_ns
    lat = stream.book["ts_local"] - stream.book["ts_exchange"]
    assert abs(np.median(lat) - params.latency_median_ns) < 0.5e6  # ns


def test_duration_horizon(params):
    data = generate(params, seed=3, n_events=10**9, duration_s=20.0)
    end = params.epoch_ns + 20 * 10**9
    assert data.book["ts_exchange"].max() <= end
    assert data.sim_counters["events"] > 100
    # close to the horizon: the next event would have passed it
    assert end - data.book["ts_exchange"].max() < 5 * 10**9


# --- book consistency --------------------------------------------------------------------------

def test_l2_replay_never_crossed_no_rejections(stream):
    bs = _core.book.BookSet()
    bs.add(stream.spec.instrument_id)
    last = np.flatnonzero(stream.book["flags"] & FLAG_LAST).astype(np.int64)
    tops = bs.apply(stream.book, last)
    c = bs.counters()
    assert c["rejected"] == 0, c
    assert c["by_status"]["crossed"] == 0
    assert c["by_status"]["delete_absent"] == 0
    assert c["crossed_pruned_levels"] == 0
    assert (tops["bid_price"] < tops["ask_price"]).all()
    assert (tops["bid_qty"] > 0).all() and (tops["ask_qty"] > 0).all()


def test_l3_replay_matches_l2_replay_at_every_event(stream):
    iid = stream.spec.instrument_id
    l2 = _core.book.BookSet()
    l2.add(iid)
    l2_tops = l2.apply(stream.book, np.flatnonzero(stream.book["flags"] & FLAG_LAST).astype(np.int64))
    l3 = _core.book.L3Book()
    statuses = l3.apply_statuses(stream.orders)
    names = np.array(_core.book.STATUS_NAMES)
    assert set(names[np.unique(statuses)]) <= {"ok"}, np.unique(names[statuses], return_counts=True)
    l3 = _core.book.L3Book()
    l3_tops = l3.apply(stream.orders, np.flatnonzero(stream.orders["flags"] & FLAG_LAST).astype(np.int64))
    assert len(l2_tops) == len(l3_tops) == N + 1
    assert _same(l2_tops, l3_tops)
    book = l2.book(iid)
    for side in ("bid", "ask"):
        assert np.array_equal(np.asarray(book.depth(side, 10_000)), np.asarray(l3.l2_depth(side, 10_000)))


def _aggregate_orders(orders: np.ndarray) -> dict[tuple[int, int], int]:
    """Level sizes implied by the ORDER_EVENTs, in plain Python (independent of the C++ books)."""
    resting: dict[int, tuple[int, int, int]] = {}  # id -> (side, price, qty)
    for oid, side, price, qty, action, flags in zip(
        orders["order_id"].tolist(), orders["side"].tolist(), orders["price"].tolist(),
        orders["qty"].tolist(), orders["action"].tolist(), orders["flags"].tolist()):
        if flags & FLAG_CLEAR:
            resting.clear()
        if action == ACTION_ADD:
            assert oid not in resting
            resting[oid] = (side, price, qty)
        elif action in (ACTION_CANCEL, ACTION_EXECUTE):
            s, p, q = resting[oid]
            assert (s, p) == (side, price) and 0 < qty <= q
            if qty == q:
                del resting[oid]
            else:
                resting[oid] = (s, p, q - qty)
        else:
            raise AssertionError(f"unexpected action {action}")
    levels: dict[tuple[int, int], int] = {}
    for s, p, q in resting.values():
        levels[(s, p)] = levels.get((s, p), 0) + q
    return levels


def test_order_aggregate_equals_l2_book(params, stream):
    n = 12_000
    cut = np.flatnonzero(stream.orders["seq"] > n)[0]
    levels = _aggregate_orders(stream.orders[:cut])
    bs = _core.book.BookSet()
    bs.add(stream.spec.instrument_id)
    bs.apply(stream.book[:np.flatnonzero(stream.book["seq"] > n)[0]])
    book = bs.book(stream.spec.instrument_id)
    from_book = {}
    for side, code in (("bid", BID), ("ask", ASK)):
        for price, qty in np.asarray(book.depth(side, 10_000)).tolist():
            from_book[(code, price)] = qty
    assert levels == from_book
    # ...and each side holds at most K ticks from its touch
    for code in (BID, ASK):
        prices = [p for (s, p) in levels if s == code]
        assert max(prices) - min(prices) < params.n_levels


def test_executions_match_trades(stream):
    ex = stream.orders[stream.orders["action"] == ACTION_EXECUTE]
    tr = stream.trades
    assert len(ex) == len(tr)
    assert np.array_equal(ex["price"], tr["price"])
    assert np.array_equal(ex["qty"], tr["qty"])
    assert np.array_equal(ex["ts_exchange"], tr["ts_exchange"])
    assert (ex["side"] != tr["aggressor"]).all()  # the aggressor hits the other side


def test_generator_state_matches_replay(params):
    gen = _core.sim.MarketGenerator(params.core_config(), 5)
    book, _, _ = gen.generate(20_000)
    bs = _core.book.BookSet()
    bs.add(params.instrument.instrument_id)
    bs.apply(book)
    b = bs.book(params.instrument.instrument_id)
    assert (b.best_bid, b.best_ask) == (gen.best_bid, gen.best_ask)
    assert gen.level_qty("bid", gen.best_bid) == b.best_bid_qty
    assert gen.level_qty("ask", gen.best_ask) == b.best_ask_qty


# --- the Hawkes clock --------------------------------------------------------------------------

def test_hawkes_clock_rate_and_fano_factor():
    from bot4.sim.calibration import fano_model

    mu, alpha, beta = 10.0, 6.0, 12.0  # branching 0.5, mean rate 20/s
    t = _core.sim.hawkes_event_times(mu, alpha, beta, 7, 400_000)
    assert np.all(np.diff(t) >= 0)
    rate = len(t) / t[-1]
    assert rate == pytest.approx(mu / (1 - alpha / beta), rel=0.03)
    for window in (0.1, 1.0):
        counts = np.bincount((t // window).astype(np.int64))[:-1]
        fano = counts.var() / counts.mean()
        expected = fano_model(np.array([window]), alpha / beta, beta - alpha)[0]
        assert fano == pytest.approx(expected, rel=0.1)


def test_hawkes_clock_is_deterministic_and_validated():
    a = _core.sim.hawkes_event_times(5.0, 1.0, 2.0, 1, 1000)
    b = _core.sim.hawkes_event_times(5.0, 1.0, 2.0, 1, 1000)
    assert a.tobytes() == b.tobytes()
    with pytest.raises(ValueError):
        _core.sim.hawkes_event_times(5.0, 2.0, 2.0, 1, 10)  # alpha/beta = 1: not stationary


# --- parameters --------------------------------------------------------------------------------

def test_default_params_ship_as_package_data(params):
    raw = resources.files("bot4.sim").joinpath("default_params.json").read_bytes()
    assert MarketModelParams.from_json(raw) == params
    assert params.source is not None
    assert params.source.file == "btcusdt_20240808.gz"
    assert len(params.source.sha256) == 64
    assert params.source.bot4_version
    assert params.limit_clock.branching_ratio < 1 and params.market_clock.branching_ratio < 1


def test_every_field_is_documented_with_a_unit():
    docs = field_docs()
    assert set(docs) == set(MarketModelParams.__struct_fields__)
    units = ("ticks", "lots", "second", "ns", "dimensionless", "probabilit", "count", "version",
             "spec", "provenance", "frequency", "Hawkes", "units", "facts")
    for name, text in docs.items():
        assert text, f"{name} has no description"
        assert any(u in text for u in units), f"{name}: no unit in {text!r}"


def test_params_round_trip_and_reject_unknown_fields(params, tmp_path):
    path = params.save(tmp_path / "p.json")
    assert MarketModelParams.load(path) == params
    doc = json.loads(path.read_text())
    doc["surprise"] = 1
    with pytest.raises(ConfigError, match="surprise"):
        MarketModelParams.from_json(json.dumps(doc))
    with pytest.raises(ConfigError):
        MarketModelParams.from_json(json.dumps({**json.loads(path.read_text()), "n_levels": 3}))


def test_core_rejects_bad_configs(params):
    config = params.core_config()
    with pytest.raises(ValueError, match="unknown key"):
        _core.sim.MarketGenerator({**config, "bogus": 1}, 1)
    with pytest.raises(ValueError, match="limit_clock"):
        _core.sim.MarketGenerator({**config, "limit_clock": {"mu": 1.0, "alpha": 3.0, "beta": 2.0}}, 1)
    with pytest.raises(ValueError, match="quantile"):
        bad = list(config["market_order_size"])
        bad[3], bad[4] = bad[4] + 10, bad[3]
        _core.sim.MarketGenerator({**config, "market_order_size": bad}, 1)
    with pytest.raises(KeyError):
        _core.sim.MarketGenerator({k: v for k, v in config.items() if k != "order_size"}, 1)
    with pytest.raises(ConfigError):
        params.replace(clear_prob=params.clear_prob[:-1]).validate()


# --- CLI ---------------------------------------------------------------------------------------

def test_cli_generate_writes_npz(tmp_path, capsys):
    from bot4.cli import main

    out = tmp_path / "s.npz"
    assert main(["sim", "generate", "--events", "5000", "--seed", "4", "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["events"] == 5000 and summary["seed"] == 4
    data = load_npz(out)
    ref = generate(seed=4, n_events=5000)
    assert _same(data.book, ref.book) and _same(data.orders, ref.orders)
    assert data.spec == ref.spec
