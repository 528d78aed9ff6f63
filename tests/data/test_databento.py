"""Databento CME MBO (ESH4): decoding, the rebuilt L3 book against the figures published in
../shared/data/README.md, and damaged files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zstandard

from bot4 import _core
from bot4.data.databento_mbo import load_databento_mbo
from bot4.errors import DataError
from bot4.events import (
    ACTION_ADD, ACTION_CANCEL, ACTION_MODIFY, ASK, BID, FLAG_CLEAR, FLAG_LAST, FLAG_SNAPSHOT, NO_SIDE,
)

ES = 17077
OPEN_NS = np.datetime64("2023-12-25T23:00:00", "ns").astype(np.int64)  # Globex open, 17:00 CT
SNAPSHOT_RECORDS = 8725


@pytest.fixture(scope="module")
def cme(shared_data) -> Path:
    return shared_data / "databento_cme"


@pytest.fixture(scope="module")
def day(cme):
    return load_databento_mbo(cme / "esh4-glbx-mdp3-20231225.mbo.dbn.zst", progress=True)


@pytest.fixture(scope="module")
def snapshot_only(cme):
    return load_databento_mbo(cme / "esh4-glbx-mdp3-20231224.mbo.dbn.zst")


def test_decoding_counts_and_spec(day):
    s = day.stats
    assert s["records"] == 68_792
    assert (s["action_A"], s["action_C"], s["action_M"], s["action_F"], s["action_T"]) == (
        29_216, 17_999, 12_233, 6_371, 2_973)
    assert s["snapshot_records"] == SNAPSHOT_RECORDS
    assert len(day.orders) == 29_216 + 17_999 + 12_233  # A, C and M change the book; T, F do not
    assert day.rejections.total == 0  # every price on the 0.25 grid, none undefined where it matters
    spec = day.specs[ES]
    assert (spec.symbol, spec.tick_size, spec.contract_size, spec.venue) == ("ESH4", "0.25", "50", "GLBX.MDP3")
    o = day.orders
    assert set(np.unique(o["action"]).tolist()) == {ACTION_ADD, ACTION_CANCEL, ACTION_MODIFY}
    assert np.all(o["instrument"] == ES)
    # first record of the file: A B 4799 x2, order 6412777162812, sequence 682
    assert o[0]["price"] == 4799 * 4 and o[0]["qty"] == 2 and o[0]["order_id"] == 6412777162812
    assert o[0]["seq"] == 682 and o[0]["side"] == BID
    assert o[0]["ts_local"] == 1703462400000000000 and o[0]["ts_exchange"] == 1703422805243925307


def test_flags(day):
    o = day.orders
    snap = (o["flags"] & FLAG_SNAPSHOT) != 0
    assert np.count_nonzero(snap) == SNAPSHOT_RECORDS and np.all(snap[:SNAPSHOT_RECORDS])
    clear = np.flatnonzero(o["flags"] & FLAG_CLEAR)
    assert clear.tolist() == [0]  # the first snapshot record clears the book
    # F_LAST (128) maps 1:1: 47,021 records with flags 130 plus one with 128
    assert np.count_nonzero(o["flags"] & FLAG_LAST) == 47_022
    assert day.stats["last_flag_moved"] == 0


def test_trades_one_per_match(day):
    tr = day.trades
    assert len(tr) == 2_973 and day.stats["trades_from_fills"] == 0
    counts = {side: int(np.count_nonzero(tr["aggressor"] == side)) for side in (BID, ASK, NO_SIDE)}
    assert counts == {BID: 1_542, ASK: 1_430, NO_SIDE: 1}  # the single N trade is the opening uncross
    opening = tr[tr["aggressor"] == NO_SIDE][0]
    assert opening["ts_exchange"] == OPEN_NS and opening["qty"] == 44 and opening["price"] == 4800 * 4 + 1
    assert np.all(tr["qty"] > 0) and np.all(np.diff(tr["ts_local"]) >= 0)


def test_rebuilt_book_matches_published_figures(day):
    books = _core.book.L3BookSet()
    book = books.add(ES)
    o = day.orders
    # "after the open" by exchange time: the last pre-open order (ts_event 22:59:59.9997) was
    # received at 23:00:00.00007, while the uncross itself carries ts_event 23:00:00 exactly.
    after_open = ((o["flags"] & FLAG_LAST) != 0) & (o["ts_exchange"] >= OPEN_NS)
    record_at = np.flatnonzero(after_open).astype(np.int64)
    assert len(record_at) > 40_000
    tops = books.apply(o, record_at=record_at)
    c = books.counters()
    assert c["by_status"]["unknown_order"] == 0 and c["rejected"] == 0
    # never crossed (nor one-sided) at any message end after the 23:00:00 UTC open
    assert np.all(tops["bid_price"] < tops["ask_price"])
    assert np.all(tops["bid_qty"] > 0) and np.all(tops["ask_qty"] > 0)
    spec = day.specs[ES]
    assert spec.price_str(book.best_bid) == "4810.00" and spec.price_str(book.best_ask) == "4810.25"
    assert book.level_count("bid") == 922 and book.level_count("ask") == 565
    assert book.order_count == 11_217


def test_crossed_only_during_the_pre_open(day):
    book = _core.book.L3Book()
    statuses = book.apply_statuses(day.orders)
    names = np.array(_core.book.STATUS_NAMES)[statuses]
    crossed_ts = day.orders["ts_exchange"][names == "crossed"]
    assert len(crossed_ts) > 0  # the 22:00-23:00 auction pre-open is crossed, as the README says
    assert crossed_ts.max() < OPEN_NS
    assert crossed_ts.min() >= np.datetime64("2023-12-25T22:39", "ns").astype(np.int64)


def test_snapshot_only_file_equals_the_snapshot_of_the_next_file(snapshot_only, day):
    o = snapshot_only.orders
    assert len(o) == SNAPSHOT_RECORDS and snapshot_only.rejections.total == 0
    assert np.all(o["action"] == ACTION_ADD) and np.all(o["flags"] & FLAG_SNAPSHOT)
    assert o[0]["flags"] & FLAG_CLEAR and np.flatnonzero(o["flags"] & FLAG_LAST).tolist() == [SNAPSHOT_RECORDS - 1]
    a = _core.book.L3Book()
    statuses = a.apply_statuses(o)
    assert a.counters()["rejected"] == 0 and a.order_count == SNAPSHOT_RECORDS
    assert _core.book.STATUS_NAMES[statuses[-1]] == "ok"  # not crossed at the snapshot's end
    b = _core.book.L3Book()
    b.apply(day.orders[:SNAPSHOT_RECORDS])
    for side in ("bid", "ask"):
        assert np.array_equal(a.l2_depth(side, 5000), b.l2_depth(side, 5000))
    for oid in o["order_id"][::97].tolist():
        assert a.order(oid) == b.order(oid) and a.queue_ahead(oid) == b.queue_ahead(oid)


# ---- damaged input ------------------------------------------------------------------------------

def test_truncated_file_keeps_the_decoded_prefix(cme, day, tmp_path):
    data = (cme / "esh4-glbx-mdp3-20231225.mbo.dbn.zst").read_bytes()
    cut = tmp_path / "cut.mbo.dbn.zst"
    cut.write_bytes(data[: len(data) // 2])
    md = load_databento_mbo(cut)
    assert md.rejections.counts["truncated_file"] == 1
    n = len(md.orders)
    assert 10_000 < n < len(day.orders)
    for field in ("order_id", "price", "qty", "action", "seq"):
        assert np.array_equal(md.orders[field], day.orders[field][:n])


def test_truncated_plain_dbn_counts_the_partial_record(cme, day, tmp_path):
    raw = zstandard.ZstdDecompressor().decompressobj()
    data = (cme / "esh4-glbx-mdp3-20231224.mbo.dbn.zst").read_bytes()
    plain = b""
    while data:
        raw = zstandard.ZstdDecompressor().decompressobj()
        plain += raw.decompress(data)
        data = raw.unused_data
    path = tmp_path / "cut.mbo.dbn"
    path.write_bytes(plain[:-20])  # ends inside the last 56-byte record
    md = load_databento_mbo(path)
    assert md.rejections.counts["truncated_record"] == 1
    assert len(md.orders) == SNAPSHOT_RECORDS - 1


def test_corrupt_file_is_a_counted_rejection(cme, tmp_path):
    data = bytearray((cme / "esh4-glbx-mdp3-20231225.mbo.dbn.zst").read_bytes())
    data[400_000:400_200] = bytes(200)
    bad = tmp_path / "bad.mbo.dbn.zst"
    bad.write_bytes(bytes(data))
    md = load_databento_mbo(bad)  # must not raise
    assert md.rejections.counts["corrupt_file"] + md.rejections.counts["corrupt_record"] >= 1
    assert len(md.orders) > 0
    book = _core.book.L3Book()
    book.apply(md.orders)  # whatever decoded is usable


def test_not_a_dbn_file(tmp_path):
    junk = tmp_path / "junk.dbn.zst"
    junk.write_bytes(b"this is not a DBN file at all")
    with pytest.raises(DataError):
        load_databento_mbo(junk)
    empty_dbn = tmp_path / "junk2.dbn.zst"
    empty_dbn.write_bytes(zstandard.ZstdCompressor().compress(b"DBN\x01garbage"))
    with pytest.raises(DataError):
        load_databento_mbo(empty_dbn)
    with pytest.raises(DataError):
        load_databento_mbo(tmp_path / "missing.dbn.zst")
