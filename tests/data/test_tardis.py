"""Tardis CSV loader on the fixtures in ../shared/data/nautilus_fixtures/tardis, plus small CSVs
written in tmp_path for message grouping and bad rows."""

from __future__ import annotations

import csv
import gzip

import numpy as np
import pytest

from bot4 import _core
from bot4.data.tardis import infer_specs, load_tardis
from bot4.errors import DataError
from bot4.events import (ASK, BID, FLAG_CLEAR, FLAG_LAST, FLAG_SNAPSHOT, NO_ASK_PRICE, NO_BID_PRICE,
                         NO_SIDE)
from bot4.instrument import InstrumentSpec

# tests reading the fixtures take `tardis_dir` (shared_data), which marks them realdata


@pytest.fixture(scope="session")
def tardis_dir(shared_data):
    return shared_data / "nautilus_fixtures" / "tardis"


def rows(path):
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", newline="") as fh:
        return list(csv.DictReader(fh))


def test_deribit_incremental_l2_snapshot(tardis_dir):
    path = tardis_dir / "deribit_incremental_book_L2_BTC-PERPETUAL.csv"
    data = load_tardis(path)
    spec = data.spec
    # Inferred: the finest decimal grid written (prices 6421.5 / 6422; amounts whole numbers).
    assert (spec.symbol, spec.venue, spec.tick_size, spec.lot_size) == ("BTC-PERPETUAL", "deribit", "0.1", "1")
    assert data.venue == "deribit" and data.rejections.total == 0 and data.sequence_gaps == 0
    book = data.book
    src = rows(path)
    assert len(book) == len(src) == 15
    assert book["price"].tolist() == [spec.price_ticks(r["price"]) for r in src]
    assert book["price"][:3].tolist() == [64215, 64220, 64225]
    assert book["qty"].tolist() == [int(r["amount"]) for r in src]
    assert np.all(book["side"] == ASK)
    assert np.all(book["flags"] & FLAG_SNAPSHOT)
    assert book["flags"][0] & FLAG_CLEAR and not np.any(book["flags"][1:] & FLAG_CLEAR)
    # One message: all rows share (timestamp, local_timestamp).
    assert np.flatnonzero(book["flags"] & FLAG_LAST).tolist() == [14]
    assert np.all(book["ts_exchange"] == 1585699200245000 * 1000)
    assert np.all(book["ts_local"] == 1585699200355684 * 1000)
    books = _core.book.BookSet()
    books.add(spec.instrument_id)
    books.apply(book)
    assert books.book(spec.instrument_id).top() == (NO_BID_PRICE, 0, 64215, 18640)


def test_explicit_spec_uses_the_real_grid(tardis_dir):
    spec = InstrumentSpec(instrument_id=77, symbol="BTC-PERPETUAL", venue="deribit", tick_size="0.5",
                          lot_size="10", contract_size="10", inverse=True)
    data = load_tardis(tardis_dir / "deribit_incremental_book_L2_BTC-PERPETUAL.csv", spec=spec)
    assert data.specs == {77: spec}
    assert data.book["price"][:3].tolist() == [12843, 12844, 12845]
    assert data.book["qty"][:2].tolist() == [1864, 119]
    assert np.all(data.book["instrument"] == 77)
    # A spec for another symbol: every row is counted, none loaded.
    other = InstrumentSpec(instrument_id=1, symbol="ETH-PERPETUAL", venue="deribit", tick_size="0.05", lot_size="1")
    data = load_tardis(tardis_dir / "deribit_incremental_book_L2_BTC-PERPETUAL.csv", spec=other)
    assert len(data.book) == 0 and data.rejections.as_dict() == {"unknown_symbol": 15}


def test_bitmex_trades_with_uuid_ids(tardis_dir):
    path = tardis_dir / "bitmex_trades_XBTUSD.csv"
    data = load_tardis(path)
    t = data.trades
    assert len(t) == 10 and data.rejections.total == 0
    assert t["seq"].tolist() == list(range(10))  # uuids -> order kept by row ordinal
    assert np.all(t["aggressor"] == ASK)  # all "sell"
    assert np.all(t["price"] == 85315) and data.spec.tick_size == "0.1"
    assert t["qty"].tolist() == [2152] + [1] * 9
    assert t["ts_exchange"][0] == 1583020803145000000 and t["ts_local"][0] == 1583020803307160000
    assert np.all(t["flags"] == FLAG_LAST)


def test_binance_futures_trades_gz(tardis_dir):
    path = tardis_dir / "binance-futures_trades_BTCUSDT_2020-02-22.csv.gz"
    data = load_tardis(path)
    src = rows(path)
    t = data.trades
    assert len(t) == len(src) == 9999 and data.rejections.total == 0
    spec = data.spec
    assert (spec.tick_size, spec.lot_size) == ("0.01", "0.001")
    assert t["seq"].tolist() == [int(r["id"]) for r in src]
    assert t["seq"][0] == 42377944 and np.all(np.diff(t["seq"]) > 0)
    assert t["price"].tolist() == [spec.price_ticks(r["price"]) for r in src]
    assert t["price"][0] == 968200 and t["price"][3] == 968219
    assert t["qty"].tolist() == [spec.qty_lots(r["amount"]) for r in src]
    assert int((t["aggressor"] == BID).sum()) == 5267 and int((t["aggressor"] == ASK).sum()) == 4732
    assert t["aggressor"].tolist() == [BID if r["side"] == "buy" else ASK for r in src]
    assert t["ts_exchange"].tolist() == [int(r["timestamp"]) * 1000 for r in src]
    assert t["ts_local"].tolist() == [int(r["local_timestamp"]) * 1000 for r in src]


def test_quotes_and_book_snapshots(tardis_dir):
    q = load_tardis(tardis_dir / "binance-futures_quotes_BTCUSDT_2020-02-22.csv.gz")
    assert len(q.bbo) == 9999 and q.rejections.total == 0
    first = q.bbo[0]
    assert (first["bid_price"], first["bid_qty"], first["ask_price"], first["ask_qty"]) == (968192, 670, 968200, 840)
    h = load_tardis(tardis_dir / "huobi-dm-swap_quotes_BTC-USD.csv")
    assert len(h.bbo) == 10 and h.bbo[0]["bid_price"] == 86292 and h.bbo[0]["ask_qty"] == 5494

    path = tardis_dir / "binance-futures_book_snapshot_5_BTCUSDT.csv"
    s = load_tardis(path)
    book = s.book
    assert len(book) == 10 * 10 and s.rejections.total == 0
    assert np.all(book["flags"] & FLAG_SNAPSHOT)
    clears = np.flatnonzero(book["flags"] & FLAG_CLEAR)
    lasts = np.flatnonzero(book["flags"] & FLAG_LAST)
    assert clears.tolist() == list(range(0, 100, 10)) and lasts.tolist() == list(range(9, 100, 10))
    src = rows(path)
    books = _core.book.BookSet()
    books.add(s.spec.instrument_id)
    tops = books.apply(book, lasts.astype(np.int64))
    spec = s.spec
    assert tops["bid_price"].tolist() == [spec.price_ticks(r["bids[0].price"]) for r in src]
    assert tops["ask_qty"].tolist() == [spec.qty_lots(r["asks[0].amount"]) for r in src]
    assert books.counters()["by_status"]["crossed"] == 0


def write_csv(tmp_path, name, lines):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


L2_HEADER = "exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount"


def test_l2_messages_snapshot_runs_and_bad_rows(tmp_path):
    path = write_csv(tmp_path, "l2.csv", [
        L2_HEADER,
        "x,AAA,1000,1100,true,bid,99.5,3",      # snapshot 1 (CLEAR)
        "x,AAA,1000,1100,true,ask,100.5,4",
        "x,AAA,2000,2100,false,bid,99.5,0",     # message A
        "x,AAA,2000,2100,false,bid,99.0,7",
        "x,AAA,2000,2100,false,ask,100.5,1.25",  # lot inferred 0.01
        "x,AAA,3000,3100,false,ask,nan,1",      # bad_number: whole message B is this row
        "x,AAA,3000,3100,false,ask,101,-1",     # negative_qty
        "x,AAA,3000,3100,false,middle,101,1",   # bad_side
        "x,AAA,3000,3100,maybe,ask,101,1",      # malformed_row
        "x,AAA,30x0,3100,false,ask,101,1",      # bad_timestamp
        "x,AAA,3000,3100,false,ask,101",        # malformed_row (7 fields)
        "x,AAA,4000,4100,false,ask,101.5,2",    # message C
        "x,AAA,5000,5100,true,bid,98,1",        # snapshot 2 after updates (CLEAR)
        "x,AAA,5000,5100,true,ask,102,1",
    ])
    data = load_tardis(path)
    spec = data.spec
    assert (spec.tick_size, spec.lot_size) == ("0.1", "0.01")
    assert data.rejections.as_dict() == {"bad_number": 1, "negative_qty": 1, "bad_side": 1,
                                         "malformed_row": 2, "bad_timestamp": 1}
    assert data.rejections.samples["bad_number"][:2] == (str(path), 7)
    b = data.book
    assert b["price"].tolist() == [995, 1005, 995, 990, 1005, 1015, 980, 1020]
    assert b["qty"].tolist() == [300, 400, 0, 700, 125, 200, 100, 100]
    assert b["side"].tolist() == [BID, ASK, BID, BID, ASK, ASK, BID, ASK]
    flags = b["flags"].tolist()
    assert flags == [FLAG_SNAPSHOT | FLAG_CLEAR, FLAG_SNAPSHOT | FLAG_LAST, 0, 0, FLAG_LAST, FLAG_LAST,
                     FLAG_SNAPSHOT | FLAG_CLEAR, FLAG_SNAPSHOT | FLAG_LAST]
    assert np.all(np.diff(b["seq"]) >= 0)
    assert b["ts_exchange"][2] == 2_000_000 and b["ts_local"][2] == 2_100_000
    books = _core.book.BookSet()
    books.add(spec.instrument_id)
    tops = books.apply(b, np.flatnonzero(b["flags"] & FLAG_LAST).astype(np.int64))
    assert tops[["bid_price", "ask_price"]].tolist() == [(995, 1005), (990, 1005), (990, 1005), (980, 1020)]


def test_off_grid_with_explicit_spec_and_unknown_trade_side(tmp_path):
    spec = InstrumentSpec(instrument_id=5, symbol="AAA", venue="x", tick_size="0.5", lot_size="1")
    path = write_csv(tmp_path, "t.csv.gz.txt", [
        "exchange,symbol,timestamp,local_timestamp,id,side,price,amount",
        "x,AAA,1,2,10,buy,100.5,3",
        "x,AAA,1,2,11,unknown,100.5,3",
        "x,AAA,1,2,12,sell,100.25,3",   # off grid
        "x,AAA,1,2,abc,sell,100.5,3",   # bad_id in a numeric-id file
        "x,BBB,1,2,14,sell,100.5,3",    # unknown_symbol
        "x,AAA,1,2,15,sideways,100.5,3",
        "x,AAA,1,2,16,sell,100.5,2.5",  # off grid qty
    ])
    data = load_tardis(path, spec=spec)
    assert data.rejections.as_dict() == {"off_grid": 2, "bad_id": 1, "unknown_symbol": 1, "bad_side": 1}
    t = data.trades
    assert t["seq"].tolist() == [10, 11] and t["aggressor"].tolist() == [BID, NO_SIDE]
    assert t["price"].tolist() == [201, 201]


def test_gzip_truncated_and_mixed_kinds(tardis_dir, tmp_path):
    src = (tardis_dir / "binance-futures_trades_BTCUSDT_2020-02-22.csv.gz").read_bytes()
    path = tmp_path / "trades.csv.gz"
    path.write_bytes(src[: len(src) // 2])
    data = load_tardis([path, tardis_dir / "binance-futures_quotes_BTCUSDT_2020-02-22.csv.gz"])
    assert data.rejections.counts["truncated_file"] == 1
    full = load_tardis(tardis_dir / "binance-futures_trades_BTCUSDT_2020-02-22.csv.gz")
    n = len(data.trades)
    assert 1000 < n < 9999
    assert np.array_equal(data.trades, full.trades[:n])
    assert len(data.bbo) == 9999 and len(data.specs) == 1


def test_quotes_with_an_empty_side(tmp_path):
    path = write_csv(tmp_path, "q.csv", [
        "exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_price,bid_amount",
        "x,AAA,1,2,,,10.5,3",
        "x,AAA,3,4,2,11,,",
    ])
    q = load_tardis(path).bbo
    assert q[["bid_price", "bid_qty", "ask_price", "ask_qty"]].tolist() == [
        (105, 3, NO_ASK_PRICE, 0), (NO_BID_PRICE, 0, 110, 2)]


def test_unknown_header_is_a_data_error(tmp_path):
    path = write_csv(tmp_path, "x.csv", ["a,b,c", "1,2,3"])
    with pytest.raises(DataError, match="header"):
        load_tardis(path)


def test_infer_specs_per_symbol(tmp_path):
    path = write_csv(tmp_path, "two.csv", [
        "exchange,symbol,timestamp,local_timestamp,id,side,price,amount",
        "x,AAA,1,2,1,buy,100.50,3.000",
        "x,BBB,1,2,2,buy,7.125,1e-05",
    ])
    specs = infer_specs(path)
    assert [(s.instrument_id, s.tick_size, s.lot_size) for s in specs.values()] == [
        (1, "0.1", "1"), (2, "0.001", "0.00001")]
    data = load_tardis(path)
    assert data.trades["qty"].tolist() == [3, 1] and data.trades["instrument"].tolist() == [1, 2]
