"""bot4.backtest.run_stream: a backtest fed in pieces equals one whole-array run, with memory
bounded by a piece; bad pieces get clear errors or counted late records."""
from __future__ import annotations

import numpy as np
import pytest
from pinned_outputs import CONFIG, EMBEDDED, MODEL_DIR
from recordings import BTCUSDT, data_path, require_recording

from bot4 import _core
from bot4.backtest import run, run_stream, time_pieces
from bot4.backtest.streaming import Piece, watermarked
from bot4.sim import generate, generate_parts

OUTPUTS = ("decisions", "orders", "fills", "equity")
SIM = {"entry_latency_ns": 200_000, "response_latency_ns": 200_000}


def _same(a, b):
    for k in OUTPUTS:
        x, y = getattr(a, k), getattr(b, k)
        assert x.dtype == y.dtype and x.shape == y.shape, k
        for f in x.dtype.names:  # field by field: NaN p (no model) equals NaN
            np.testing.assert_array_equal(x[f], y[f], err_msg=f"{k}.{f}")
    assert a.pnl == b.pnl
    assert a.counters == b.counters
    assert [{k: v for k, v in d.items() if k != "sim"} for d in a.instruments] == \
        [{k: v for k, v in d.items() if k != "sim"} for d in b.instruments]


@pytest.fixture(scope="module")
def embedded():
    data = generate(seed=EMBEDDED["seed"], n_events=EMBEDDED["n_events"])
    return data, run(data, MODEL_DIR, config=CONFIG, progress=False)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_cuts_equal_one_run_on_the_embedded_stream(embedded, seed):
    data, whole = embedded
    ts = data.orders["ts_local"]
    rng = np.random.default_rng(seed)
    cuts = np.sort(rng.integers(int(ts.min()), int(ts.max()), int(rng.integers(1, 60))))
    got = run_stream(time_pieces(data, cuts=cuts), data.specs, MODEL_DIR, config=CONFIG, progress=False,
                     l3=list(data.specs))
    _same(whole, got)
    assert whole.orders.size > 100 and whole.fills.size > 10  # the comparison covers trading


def test_empty_pieces_at_a_repeated_watermark_change_nothing(embedded):
    # (an empty piece at the same watermark once drained the engine up to it, leaving the venue
    # no look-ahead: it then counted sim_late_feed_events and the run differed)
    data, whole = embedded
    ts = data.orders["ts_local"]
    rng = np.random.default_rng(9)
    cuts = np.sort(rng.integers(int(ts.min()), int(ts.max()), 25))
    got = run_stream(time_pieces(data, cuts=np.repeat(cuts, 3)), data.specs, MODEL_DIR, config=CONFIG,
                     progress=False, l3=list(data.specs))
    assert got.counters["sim_late_feed_events"] == 0
    _same(whole, got)


def test_records_handed_out_as_the_run_goes(embedded):
    data, whole = embedded
    parts = {k: [] for k in OUTPUTS}

    def sink(rec):
        for k in OUTPUTS:
            parts[k].append(rec[k])
    got = run_stream(time_pieces(data, seconds=20), data.specs, MODEL_DIR, config=CONFIG, progress=False,
                     l3=list(data.specs), on_records=sink)
    assert got.decisions.size == 0 and got.equity.size == 1 and got.pnl == whole.pnl
    assert sum(p.size > 0 for p in parts["decisions"]) > 3  # handed out piece by piece
    for k in OUTPUTS:
        joined = np.concatenate(parts[k])
        for f in joined.dtype.names:
            np.testing.assert_array_equal(joined[f], getattr(whole, k)[f], err_msg=f"{k}.{f}")
    assert got.counters == whole.counters and got.instruments == whole.instruments


def test_generator_parts_watermarked_equal_one_run(embedded):
    data, whole = embedded
    parts = generate_parts(seed=EMBEDDED["seed"], n_events=EMBEDDED["n_events"], part_events=9_000)
    got = run_stream(parts, None, MODEL_DIR, config=CONFIG, progress=False)
    _same(whole, got)


def test_two_instruments_streamed_equal_one_run():
    from bot4.data.market_data import merge

    a = generate(seed=11, n_events=30_000).as_instrument(1, "AAA")
    b = generate(seed=12, n_events=30_000).as_instrument(2, "BBB")
    both = merge([a, b])
    cfg = {"sim": SIM}
    whole = run(both, None, cfg, progress=False, strategy="market_maker")
    got = run_stream(time_pieces(both, seconds=3), both.specs, None, cfg, progress=False, strategy="market_maker",
                     l3=[1, 2])
    assert whole.fills.size > 10 and set(np.unique(whole.fills["instrument"])) == {1, 2}
    _same(whole, got)


@pytest.mark.realdata
def test_btcusdt_native_chunks_and_time_cuts_equal_one_run():
    from bot4.data import load
    from bot4.data.binance_native import NativeBinanceLoader

    path = require_recording(data_path(*BTCUSDT))
    data = load(path)
    whole = run(data, MODEL_DIR, config=CONFIG, progress=False)
    got = run_stream(NativeBinanceLoader().iter_chunks(path, chunk_bytes=1 << 18), None, MODEL_DIR, config=CONFIG,
                     progress=False)
    _same(whole, got)
    rng = np.random.default_rng(7)
    ts = data.book["ts_local"]
    cuts = np.sort(rng.integers(int(ts.min()), int(ts.max()), 25))
    _same(whole, run_stream(time_pieces(data, cuts=cuts), data.specs, MODEL_DIR, config=CONFIG, progress=False))


def test_watermarked_pieces_hold_their_contract(embedded):
    data, _ = embedded
    parts = [(data.book[i:i + 5000], data.trades[j:j + 300], data.orders[k:k + 7000])
             for i, j, k in zip(range(0, 10**7, 5000), range(0, 10**7, 300), range(0, 10**7, 7000))
             if i < data.book.size or j < data.trades.size or k < data.orders.size]
    pieces = list(watermarked(parts))
    assert len(pieces) > 10
    for s in ("book", "trades", "orders"):
        stream = getattr(data, s)
        assert np.array_equal(np.concatenate([getattr(p, s) for p in pieces]), stream)
        # The contract: every record after a piece has a merge key (its stream's running maximum of
        # ts_local) >= that piece's watermark. Keys never fall, so the first later record decides.
        # (Checked per piece end, not by joining all later pieces for each piece: that was
        # quadratic and took 7-24 GB.)
        keys = np.maximum.accumulate(stream["ts_local"])
        ends = np.cumsum([getattr(p, s).size for p in pieces])
        for p, end in zip(pieces[:-1], ends[:-1]):
            if end < stream.size:
                assert keys[end] >= p.watermark, (s, int(end), int(keys[end]), p.watermark)


def _engine(data):
    from bot4.backtest.engine import _Prepared

    prep = _Prepared(data.specs, set(data.specs), None, {"sim": SIM}, "top_of_book")
    return _core.engine.StreamingBacktest(prep.cfg, prep.instruments)


def test_bad_pieces_error_or_count(embedded):
    data, _ = embedded
    eng = _engine(data)
    o, t, b = data.orders, data.trades, data.book[:0]
    w0 = int(o["ts_local"][5000])
    eng.push(b, t[:0], o[:5000], w0)
    with pytest.raises(ValueError, match="watermark"):
        eng.push(b, t[:0], o[:0], int(o["ts_local"][10]))
    with pytest.raises(TypeError, match="BOOK_EVENT"):
        eng.push(o[5000:5010], None, None, int(o["ts_local"][6000]))
    eng.push(b, t[:0], o[5000:20000], int(o["ts_local"][20000]))  # the engine processes up to w0
    # trades that broke the contract: received before w0, pushed after the engine passed it
    early = int(np.count_nonzero(t["ts_local"] < w0))
    assert early > 0
    eng.push(b, t[:early + 50], o[:0], int(o["ts_local"][20000]))
    assert eng.late_events == early
    out = eng.finish()
    assert out["counters"]["late_events"] == early
    assert out["counters"]["order_events"] == 20000 and out["counters"]["trade_events"] == early + 50
    with pytest.raises(ValueError, match="finish"):
        eng.push(b, t[:0], o[:0], int(o["ts_local"][-1]))


def test_memory_is_bounded_by_a_piece(embedded):
    data, _ = embedded
    eng = _engine(data)
    peak = 0
    pieces = list(time_pieces(data, seconds=2))
    assert len(pieces) > 20
    for p in pieces:
        eng.push(p.book, p.trades, p.orders, p.watermark)
        peak = max(peak, eng.buffered)
    largest_two = sorted(p.book.size + p.trades.size + p.orders.size for p in pieces)[-2:]
    assert 0 < peak <= sum(largest_two)
    assert eng.finish()["counters"]["order_events"] == data.orders.size


def test_piece_is_a_named_tuple():
    p = Piece(np.zeros(0), np.zeros(0), np.zeros(0), 5)
    assert p.watermark == 5
