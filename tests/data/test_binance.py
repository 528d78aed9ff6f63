"""Binance raw loader on the real recordings in ../shared/data/binance_hftbacktest.

Ground truth: the book rebuilt by the core from the loader's output must equal Binance's own
bookTicker (best bid/ask price and size) at every bookTicker whose update id `u` equals the final
update id of an applied depth diff.
"""

from __future__ import annotations

import csv
import gzip
import json

import numpy as np
import pytest

from bot4 import _core
from bot4.data.binance import BINANCE_SPECS, BinanceLoader, binance_spec, detect_market, load_binance
from bot4.data.binance_native import NativeBinanceLoader
from bot4.errors import DataError
from bot4.events import (ASK, BID, FLAG_CLEAR, FLAG_LAST, FLAG_RESYNC, FLAG_SNAPSHOT, NO_ASK_PRICE,
                         NO_BID_PRICE)
from bot4.instrument import InstrumentSpec

# tests reading recordings take the shared_data fixture (directly or through theirs), which marks them realdata

# name -> files (one continuous recording), expected figures. Counts are from the data README's
# table (0808 + 0809 summed for the chained recordings). `checked` is the number of bookTickers
# whose `u` equals an applied diff's `u` (all must match exactly); `after` is the subset that
# the recording received after that diff (the README's 126/126 and 80/80 for USD-M).
DATASETS = {
    "usdm_btc": dict(files=["usdm/btcusdt_20240808.gz"], market="usdm", lines=93954,
                     depth=6551, levels=443521, trades=21313, bbo=66089, checked=629, after=126,
                     snapshot_id=5123107852948, covered=4),
    "usdm_eth": dict(files=["usdm/ethusdt_20240808.gz"], market="usdm", lines=74655,
                     depth=6586, levels=428662, trades=14076, bbo=53992, checked=551, after=80,
                     covered=5),
    "coinm_btc": dict(files=["coinm/btcusd_perp_20240808.gz", "coinm/btcusd_perp_20240809.gz"],
                      market="coinm", lines=48270 + 50116, depth=26847 + 17948,
                      levels=296013 + 363658, trades=2286 + 2949, bbo=19136 + 29219,
                      checked=1885, after=0, covered=23),
    "coinm_eth": dict(files=["coinm/ethusd_perp_20240808.gz", "coinm/ethusd_perp_20240809.gz"],
                      market="coinm", lines=40454 + 37860, depth=22909 + 16246,
                      levels=193753 + 244169, trades=1732 + 1863, bbo=15812 + 19751,
                      checked=2278, after=0, covered=22),
    "spot_btc": dict(files=["spot/btcusdt_20240808.gz", "spot/btcusdt_20240809.gz"],
                     market="spot", lines=41249 + 58325, depth=3451 + 3044, levels=124090 + 174021,
                     trades=9757 + 10147, bbo=28040 + 45134, checked=1072, after=0,
                     snapshot_id=50093239218, covered=2),
    "spot_eth": dict(files=["spot/ethusdt_20240808.gz", "spot/ethusdt_20240809.gz"],
                     market="spot", lines=33618 + 46126, depth=3434 + 3036, levels=106814 + 165950,
                     trades=6106 + 8409, bbo=24077 + 34681, checked=1056, after=0, covered=2),
}


@pytest.fixture(scope="session")
def binance_dir(shared_data):
    return shared_data / "binance_hftbacktest"


@pytest.fixture(scope="module", params=[(name, engine) for name in DATASETS
                                        for engine in ("native", "python")],
                ids=lambda p: f"{p[0]}-{p[1]}")
def loaded(request, binance_dir):
    """(name, expected, loader, data) for each recording and engine, loaded once per module."""
    name, engine = request.param
    expected = DATASETS[name]
    loader = NativeBinanceLoader() if engine == "native" else BinanceLoader()
    data = loader.load([binance_dir / f for f in expected["files"]])
    return name, expected, loader, data


def diff_ends(book: np.ndarray) -> np.ndarray:
    """Indices of the last record of every depth-diff message (snapshots excluded)."""
    last = np.flatnonzero(book["flags"] & FLAG_LAST)
    return last[(book["flags"][last] & FLAG_SNAPSHOT) == 0]


def bbo_vs_book(data):
    """Rebuild the book with the core; top of book at every bookTicker whose u is a diff's u.

    Returns (bbo records checked, tops, book counters, final top, positions)."""
    book = data.book
    ends = diff_ends(book)
    seqs = book["seq"][ends]
    assert np.all(np.diff(seqs) > 0), "diff update ids must increase strictly"
    u = data.bbo["seq"]
    pos = np.searchsorted(seqs, u)
    hit = (pos < len(seqs)) & (seqs[np.minimum(pos, len(seqs) - 1)] == u)
    record_at = ends[pos[hit]].astype(np.int64)
    order = np.argsort(record_at, kind="stable")
    books = _core.book.BookSet()
    iid = data.spec.instrument_id
    books.add(iid)
    tops = books.apply(book, record_at[order])
    checked = data.bbo[hit][order]
    return checked, tops, books.counters(), books.book(iid).top(), record_at[order]


def test_counts_match_readme(loaded):
    name, exp, loader, data = loaded
    assert data.venue == f"binance-{exp['market']}"
    assert loader.stats["lines"] == exp["lines"]
    assert loader.stats["depth_messages"] == exp["depth"]
    assert loader.stats["depth_levels"] == exp["levels"]
    assert loader.stats["snapshots"] == 1
    assert loader.stats["snapshot_levels"] == 2000
    assert len(data.trades) == exp["trades"] == loader.stats["trades"]
    assert len(data.bbo) == exp["bbo"] == loader.stats["book_tickers"]
    # Every diff is either applied or (before the snapshot, already inside it) counted.
    assert data.sequence_gaps == 0
    assert data.rejections.as_dict() == {"covered_by_snapshot": exp["covered"]}
    assert len(diff_ends(data.book)) + exp["covered"] == exp["depth"]
    assert int((data.book["flags"] & FLAG_SNAPSHOT != 0).sum()) == 2000


def test_every_price_and_size_is_on_the_grid(loaded):
    """The spec table is right for the data: nothing off grid or unparsable anywhere."""
    _, exp, _, data = loaded
    for reason in ("off_grid", "bad_number", "negative_qty", "nonpositive_price", "bad_schema"):
        assert data.rejections.counts[reason] == 0
    spec = data.spec
    assert spec == BINANCE_SPECS[(exp["market"], spec.symbol)]
    # COIN-M quantities are contracts of a face value in USD (100 for BTC, 10 for ETH): inverse
    face = {"BTCUSD_PERP": "100", "ETHUSD_PERP": "10"}
    assert spec.inverse == (exp["market"] == "coinm")
    assert spec.contract_size == face.get(spec.symbol, "1") and spec.lot_size in ("1", "0.001", "0.00000001")


def test_book_matches_book_ticker_exactly(loaded):
    name, exp, _, data = loaded
    checked, tops, counters, _, positions = bbo_vs_book(data)
    assert len(checked) == exp["checked"]
    for side in ("bid_price", "ask_price", "bid_qty", "ask_qty"):
        mismatch = np.flatnonzero(tops[side] != checked[side])
        assert len(mismatch) == 0, f"{name}: {side} differs at {len(mismatch)} of {len(checked)}"
    # The subset a streaming check sees (bookTicker received after the diff): README's figures.
    after = checked["ts_local"] >= data.book["ts_local"][positions]
    assert int(after.sum()) == exp["after"]
    # Never crossed at a message end, nothing rejected by the core book.
    assert counters["by_status"]["crossed"] == 0
    assert counters["rejected"] == 0


def test_final_book_equals_last_book_ticker(loaded):
    name, exp, _, data = loaded
    *_, final, _ = bbo_vs_book(data)
    last = data.bbo[-1]
    assert (final[0], final[2]) == (last["bid_price"], last["ask_price"])
    if name == "spot_eth":
        # The last spot bookTicker (u=35346924205) is newer than the last 100 ms diff
        # (u=35346924199): prices agree, sizes legitimately differ.
        assert last["seq"] > data.book["seq"][-1]
        assert (final[1], final[3]) != (last["bid_qty"], last["ask_qty"])
    else:
        assert (final[1], final[3]) == (last["bid_qty"], last["ask_qty"])


def test_snapshot_and_diff_flags(loaded):
    _, exp, _, data = loaded
    book = data.book
    snap = np.flatnonzero(book["flags"] & FLAG_SNAPSHOT)
    assert snap[0] == 0 and snap[-1] == len(snap) - 1  # the snapshot opens the book array
    assert book["flags"][0] & FLAG_CLEAR
    assert int((book["flags"] & FLAG_CLEAR != 0).sum()) == 1
    assert int((book["flags"][snap] & FLAG_LAST != 0).sum()) == 1 and book["flags"][snap[-1]] & FLAG_LAST
    assert not np.any(book["flags"] & FLAG_RESYNC)
    assert len(np.unique(book["seq"][snap])) == 1
    if "snapshot_id" in exp:
        assert book["seq"][0] == exp["snapshot_id"]
    # Bids before asks within each message; all records of a message share seq and times.
    ends = np.flatnonzero(book["flags"] & FLAG_LAST)
    starts = np.r_[0, ends[:-1] + 1]
    msg = np.repeat(np.arange(len(ends)), ends - starts + 1)
    assert np.all(book["seq"] == book["seq"][ends][msg])
    assert np.all(book["ts_local"] == book["ts_local"][ends][msg])
    side_drop = (np.diff(book["side"].astype(np.int8)) < 0) & (msg[1:] == msg[:-1])
    assert not np.any(side_drop)
    assert set(np.unique(book["side"])) <= {BID, ASK}
    assert np.all(book["instrument"] == data.spec.instrument_id)


def test_trades_and_bbo_fields(loaded):
    _, _, _, data = loaded
    t = data.trades
    assert np.all(np.diff(t["seq"]) > 0)
    assert set(np.unique(t["aggressor"])) == {BID, ASK}
    assert np.all(t["flags"] == FLAG_LAST) and np.all(t["price"] > 0) and np.all(t["qty"] > 0)
    b = data.bbo
    assert np.all(b["bid_price"] < b["ask_price"])
    assert np.all(b["bid_price"] != NO_BID_PRICE) and np.all(b["ask_price"] != NO_ASK_PRICE)
    # Venue clock is about 1.27 s ahead of the recorder's (README): ts_exchange is venue time.
    lag = np.median(t["ts_local"] - t["ts_exchange"]) / 1e6
    assert -1400 < lag < -1100


def test_pre_snapshot_diffs_are_buffered_and_applied(binance_dir):
    """README: in usdm BTCUSDT 2 of the 6 pre-snapshot diffs must still be applied; in spot BTCUSDT
    the diff spanning U=...208..u=...224 arrives before snapshot ...218 and must be applied."""
    data = load_binance(binance_dir / "usdm/btcusdt_20240808.gz")
    book = data.book
    ends = diff_ends(book)
    early = book["ts_local"][ends] < book["ts_local"][0]
    assert int(early.sum()) == 2 and early[:2].all()
    spot = load_binance(binance_dir / "spot/btcusdt_20240808.gz")
    first_diff = spot.book[diff_ends(spot.book)[0]]
    assert first_diff["seq"] == 50093239224 and first_diff["ts_local"] < spot.book["ts_local"][0]


def test_matches_the_derived_csvs(binance_dir):
    """The flattened CSVs of the reference recording carry the same numbers verbatim."""
    data = load_binance(binance_dir / "usdm/btcusdt_20240808.gz")
    spec = data.spec
    derived = binance_dir / "derived"
    with gzip.open(derived / "binance_usdm_btcusdt_20240808_trades.csv.gz", "rt") as fh:
        rows = list(csv.DictReader(fh))
    t = data.trades
    assert len(rows) == len(t)
    assert [int(r["trade_id"]) for r in rows] == t["seq"].tolist()
    assert [spec.price_ticks(r["price"]) for r in rows] == t["price"].tolist()
    assert [spec.qty_lots(r["qty"]) for r in rows] == t["qty"].tolist()
    assert [BID if r["aggressor_side"] == "buy" else ASK for r in rows] == t["aggressor"].tolist()
    assert [int(r["trade_time_ms"]) * 1_000_000 for r in rows] == t["ts_exchange"].tolist()
    assert [int(r["local_ts_ns"]) for r in rows] == t["ts_local"].tolist()

    with gzip.open(derived / "binance_usdm_btcusdt_20240808_bbo.csv.gz", "rt") as fh:
        rows = list(csv.DictReader(fh))
    b = data.bbo
    assert [int(r["update_id"]) for r in rows] == b["seq"].tolist()
    assert [spec.price_ticks(r["bid_price"]) for r in rows] == b["bid_price"].tolist()
    assert [spec.qty_lots(r["ask_qty"]) for r in rows] == b["ask_qty"].tolist()
    assert [int(r["transaction_time_ms"]) * 1_000_000 for r in rows] == b["ts_exchange"].tolist()

    # Depth: snapshot rows, then the update rows not covered by the snapshot (u >= lastUpdateId,
    # futures rule), in file order, equal the book array.
    with gzip.open(derived / "binance_usdm_btcusdt_20240808_depth.csv.gz", "rt") as fh:
        reader = csv.reader(fh)
        cols = {name: i for i, name in enumerate(next(reader))}
        rows = list(reader)
    kind, final_id = cols["kind"], cols["final_update_id"]
    snap = [r for r in rows if r[kind] == "snapshot"]
    last_update_id = int(snap[0][final_id])
    expect = snap + [r for r in rows if r[kind] == "update" and int(r[final_id]) >= last_update_id]
    book = data.book
    assert len(expect) == len(book)
    prices, sizes = {}, {}
    for name, cache, convert, field in (("price", prices, spec.price_ticks, "price"),
                                        ("qty", sizes, spec.qty_lots, "qty")):
        i = cols[field]
        values = [cache[r[i]] if r[i] in cache else cache.setdefault(r[i], convert(r[i]))
                  for r in expect]
        assert values == book[name].tolist(), name
    assert [BID if r[cols["side"]] == "b" else ASK for r in expect] == book["side"].tolist()
    assert [int(r[final_id]) for r in expect] == book["seq"].tolist()
    assert [int(r[cols["transaction_time_ms"]]) * 1_000_000 for r in expect] == book["ts_exchange"].tolist()
    assert [int(r[cols["local_ts_ns"]]) for r in expect] == book["ts_local"].tolist()


@pytest.mark.parametrize("market, first", [("spot", "spot/btcusdt_20240809.gz"),
                                           ("coinm", "coinm/ethusd_perp_20240809.gz")])
def test_continuation_file_alone_is_not_silently_synced(binance_dir, market, first):
    """A continuation file has no snapshot: nothing may reach the book, all of it is counted."""
    loader = BinanceLoader()
    data = loader.load(binance_dir / first)
    assert data.venue == f"binance-{market}"
    assert len(data.book) == 0
    assert data.rejections.as_dict() == {"awaiting_snapshot": loader.stats["depth_messages"]}
    assert data.rejections.samples["awaiting_snapshot"][1] >= 1
    assert len(data.trades) == loader.stats["trades"] > 0  # trades and tickers need no sync
    assert len(data.bbo) == loader.stats["book_tickers"] > 0


def test_continuation_in_the_wrong_order_is_a_gap(binance_dir):
    data = load_binance([binance_dir / "coinm/ethusd_perp_20240809.gz",
                         binance_dir / "coinm/ethusd_perp_20240808.gz"])
    assert data.sequence_gaps >= 1
    assert data.rejections.counts["awaiting_snapshot"] > 0
    assert data.rejections.counts["sequence_gap"] == data.sequence_gaps


@pytest.mark.parametrize("path, market", [("usdm/btcusdt_20240808.gz", "usdm"),
                                          ("usdm/ethusdt_20240808.gz", "usdm"),
                                          ("spot/btcusdt_20240808.gz", "spot"),
                                          ("spot/ethusdt_20240809.gz", "spot"),
                                          ("coinm/btcusd_perp_20240808.gz", "coinm"),
                                          ("coinm/ethusd_perp_20240809.gz", "coinm")])
def test_market_detection(binance_dir, path, market):
    assert detect_market(binance_dir / path) == market


def test_exchange_lot_step_would_put_spot_sizes_off_grid(binance_dir):
    """Why spot lots are 1e-8: with Binance's trading step (BTCUSDT 0.00001) real far-from-touch
    levels such as '25.42618900' are off grid."""
    coarse = InstrumentSpec(instrument_id=101, symbol="BTCUSDT", venue="binance-spot",
                            tick_size="0.01", lot_size="0.00001")
    data = load_binance(binance_dir / "spot/btcusdt_20240808.gz", specs={"BTCUSDT": coarse})
    assert data.rejections.counts["off_grid"] == 3
    assert "25.42618900" in data.rejections.samples["off_grid"][2]
    assert data.sequence_gaps == 0  # a bad level does not break the update-id chain


def test_unknown_symbol_is_a_clear_error(tmp_path):
    line = {"stream": "foousdt@trade", "data": {"e": "trade", "E": 1723161256299, "T": 1723161256299, "s": "FOOUSDT",
                                                "t": 1, "p": "1.5", "q": "2", "X": "MARKET",
                                                "m": False}}
    path = tmp_path / "foo.gz"
    with gzip.open(path, "wt") as fh:
        fh.write(f"1723161255030314667 {json.dumps(line)}\n")
    with pytest.raises(DataError, match="FOOUSDT"):
        load_binance(path)
    with pytest.raises(DataError):
        binance_spec("usdm", "FOOUSDT")
    spec = InstrumentSpec(instrument_id=9, symbol="FOOUSDT", venue="binance-usdm", tick_size="0.1",
                          lot_size="1")
    data = load_binance(path, specs={"FOOUSDT": spec})
    assert data.trades[0]["price"] == 15 and data.trades[0]["qty"] == 2
    assert data.trades[0]["aggressor"] == BID and data.specs == {9: spec}


def test_progress_bar_goes_to_stderr(binance_dir, capsys):
    load_binance(binance_dir / "spot/ethusdt_20240809.gz", progress=True)
    captured = capsys.readouterr()
    assert "binance spot" in captured.err and captured.out == ""


# ------------------------------------------------------------------ the simulator's stream as a file
def _price(ticks: int) -> str:      # BTCUSDT USD-M grid: tick 0.10
    return f"{ticks // 10}.{ticks % 10}0"


def _qty(lots: int) -> str:         # lot 0.001
    return f"{lots // 1000}.{lots % 1000:03d}"


def _sim_as_binance_lines(data) -> list[bytes]:
    """bot4's embedded simulator stream written in the collector's format: its opening snapshot as
    a REST depth snapshot, every later book message as one USD-M depthUpdate (update ids chained
    through `pu`), every trade as a trade message; lines in receive order."""
    book, trades = data.book, data.trades
    ends = np.flatnonzero(book["flags"] & FLAG_LAST)
    assert book["flags"][0] & FLAG_SNAPSHOT and book["flags"][ends[0]] & FLAG_SNAPSHOT
    lines = []                       # (ts_local, order, text)

    def levels(rows, side):
        return [[_price(int(r["price"])), _qty(int(r["qty"]))] for r in rows if r["side"] == side]

    snap = book[: ends[0] + 1]
    lines.append((int(snap["ts_local"][0]), 0, json.dumps(
        {"lastUpdateId": 10, "bids": levels(snap, BID), "asks": levels(snap, ASK)})))
    for k, (lo, hi) in enumerate(zip(ends[:-1] + 1, ends[1:] + 1), start=1):
        msg = book[lo:hi]
        ms = int(msg["ts_exchange"][0]) // 1_000_000
        body = {"e": "depthUpdate", "E": ms, "T": ms, "s": "BTCUSDT", "U": 10 * k, "u": 10 * k + 9,
                "pu": 10 * k - 1, "b": levels(msg, BID), "a": levels(msg, ASK)}
        lines.append((int(msg["ts_local"][0]), k, json.dumps({"stream": "btcusdt@depth@0ms", "data": body})))
    for t in trades:
        ms = int(t["ts_exchange"]) // 1_000_000
        body = {"e": "trade", "E": ms, "T": ms, "s": "BTCUSDT", "t": int(t["seq"]), "p": _price(int(t["price"])),
                "q": _qty(int(t["qty"])), "m": bool(t["aggressor"] == ASK)}
        lines.append((int(t["ts_local"]), len(ends) + int(t["seq"]), json.dumps({"stream": "btcusdt@trade", "data": body})))
    lines.sort(key=lambda x: (x[0], x[1]))
    return [f"{ts} {text}\n".encode() for ts, _, text in lines]


def test_the_simulator_stream_round_trips_through_the_loader(tmp_path):
    """No recording needed: the embedded stream written as a Binance file loads back to the same
    level changes, trades and final book, with nothing rejected and no sequence gap."""
    from bot4.sim import generate

    sim = generate(seed=9, n_events=20_000)
    path = tmp_path / "btcusdt_sim.gz"
    path.write_bytes(gzip.compress(b"".join(_sim_as_binance_lines(sim))))
    got = load_binance(path)
    assert got.rejections.total == 0, got.rejections.as_dict()
    assert got.sequence_gaps == 0
    (instrument, spec), = got.specs.items()
    assert (spec.symbol, spec.tick_size, spec.lot_size) == ("BTCUSDT", "0.10", "0.001")
    for field in ("ts_local", "price", "qty", "side"):
        np.testing.assert_array_equal(got.book[field], sim.book[field], err_msg=field)
    np.testing.assert_array_equal(got.book["flags"] & (FLAG_LAST | FLAG_SNAPSHOT | FLAG_CLEAR),
                                  sim.book["flags"] & (FLAG_LAST | FLAG_SNAPSHOT | FLAG_CLEAR))
    for field in ("ts_local", "price", "qty", "aggressor", "seq"):
        np.testing.assert_array_equal(got.trades[field], sim.trades[field], err_msg=field)
    tops = []
    for data in (got, sim):
        books = _core.book.BookSet()
        books.add(next(iter(data.specs)))
        books.apply(data.book)
        tops.append(books.book(next(iter(data.specs))).top())
    assert tops[0] == tops[1] and tops[0][0] != NO_BID_PRICE and tops[0][2] != NO_ASK_PRICE
