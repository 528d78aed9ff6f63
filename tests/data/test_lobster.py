"""LOBSTER AAPL sample: the L3 book rebuilt from the message file equals the published 10-level
orderbook file after every message; malformed rows are counted rejections."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bot4 import _core
from bot4.data.lobster import SEED_ID_BASE, load_lobster
from bot4.events import (
    ACTION_ADD, ACTION_CANCEL, ACTION_EXECUTE, ASK, BID, FLAG_CLEAR, FLAG_LAST, FLAG_RESYNC, FLAG_SNAPSHOT,
)

STEM = "AAPL_2012-06-21_34200000_57600000"
N_ROWS = 999
LEVELS = 10


@pytest.fixture(scope="module")
def lobster_dir(shared_data) -> Path:
    return shared_data / "lobster_aapl"


@pytest.fixture(scope="module")
def files(lobster_dir):
    return lobster_dir / f"{STEM}_message_{LEVELS}.csv", lobster_dir / f"{STEM}_orderbook_{LEVELS}.csv"


@pytest.fixture(scope="module")
def loaded(files):
    return load_lobster(*files)


@pytest.fixture(scope="module")
def published(files) -> np.ndarray:
    rows = np.loadtxt(files[1], delimiter=",", dtype=np.int64)
    assert rows.shape == (N_ROWS, 4 * LEVELS)
    return rows


def _published_side(row: np.ndarray, side: str) -> list[tuple[int, int]]:
    """(price in USD x 10000, size) of the non-empty levels of one side, best first."""
    offset = 2 if side == "bid" else 0
    out = []
    for k in range(LEVELS):
        price, size = int(row[4 * k + offset]), int(row[4 * k + offset + 1])
        if size > 0 and abs(price) != 9999999999:  # LOBSTER pads empty levels with dummy prices
            out.append((price, size))
    return out


def test_metadata_grid_and_time(loaded):
    spec = loaded.spec
    assert (spec.symbol, spec.tick_size, spec.lot_size, spec.venue) == ("AAPL", "0.01", "1", "NASDAQ")
    # every price of the sample is a whole cent: 5853300 (USD x 1e4) -> 58533 ticks of 0.01
    first_add = loaded.orders[loaded.orders["order_id"] == 16113575][0]
    assert (first_add["price"], first_add["qty"], first_add["side"], first_add["action"]) == (58533, 18, BID, ACTION_ADD)
    # 34200.004241176 s after midnight in New York on 2012-06-21 (EDT, UTC-4)
    assert first_add["ts_exchange"] == np.datetime64("2012-06-21T13:30:00.004241176", "ns").astype(np.int64)
    assert loaded.rejections.total == 0


def test_events_and_flags(loaded):
    orders, stats = loaded.orders, loaded.stats
    assert stats["messages"] == N_ROWS
    # seq is the message row; every row producing order events ends with exactly one FLAG_LAST
    last = (orders["flags"] & FLAG_LAST) != 0
    rows_with_orders = np.unique(orders["seq"])
    assert np.array_equal(np.sort(orders["seq"][last]), rows_with_orders)
    assert np.all(np.diff(orders["seq"]) >= 0)
    # 471 adds + 369 deletes + 98 visible executions; hidden executions (61) are trades only
    real = orders["order_id"] < SEED_ID_BASE
    assert np.count_nonzero(real & (orders["action"] == ACTION_ADD)) == 471
    assert np.count_nonzero(orders["action"] == ACTION_EXECUTE) == 98
    assert len(rows_with_orders) == N_ROWS - 61
    # the initial seed is a snapshot made of synthetic orders that cannot collide with LOBSTER ids
    seeds = orders[orders["seq"] == 0][:-1]
    assert len(seeds) == stats["initial_seed_orders"] == 19
    assert np.all(seeds["order_id"] >= SEED_ID_BASE) and np.all(seeds["flags"] & FLAG_SNAPSHOT)
    assert seeds[0]["flags"] & FLAG_CLEAR and not np.any(seeds[1:]["flags"] & FLAG_CLEAR)
    resync = orders[(orders["flags"] & FLAG_RESYNC) != 0]
    assert len(resync) == stats["resync_seed_orders"] + stats["resync_cancels"]


def test_trades(loaded, files):
    msgs = np.loadtxt(files[0], delimiter=",")
    types, direction = msgs[:, 1].astype(int), msgs[:, 5].astype(int)
    tr = loaded.trades
    assert len(tr) == np.count_nonzero((types == 4) | (types == 5)) == 159
    assert np.array_equal(tr["seq"], np.flatnonzero((types == 4) | (types == 5)))
    # execution of a sell order (-1) = buyer-initiated trade (aggressor BID) and vice versa
    expected = np.where(direction[tr["seq"]] == -1, BID, ASK)
    assert np.array_equal(tr["aggressor"], expected)
    assert np.array_equal(tr["qty"], msgs[tr["seq"], 3].astype(np.int64))
    assert np.array_equal(tr["price"] * 100, msgs[tr["seq"], 4].astype(np.int64))
    assert np.all(tr["flags"] == FLAG_LAST)


def test_rebuilt_book_matches_orderbook_file_after_every_message(loaded, published):
    book = _core.book.L3Book()
    orders = loaded.orders
    ends = np.searchsorted(orders["seq"], np.arange(N_ROWS), side="right")
    start = 0
    compared = matched = 0
    for t in range(N_ROWS):
        book.apply(orders[start:ends[t]])
        start = ends[t]
        for side in ("bid", "ask"):
            mine = [(p * 100, q) for p, q in book.l2_depth(side, LEVELS).tolist()]
            truth = _published_side(published[t], side)
            compared += 1
            matched += mine == truth
            assert mine == truth, f"row {t} {side}: {mine} != {truth}"
    assert (compared, matched) == (2 * N_ROWS, 2 * N_ROWS)
    c = book.counters()
    assert c["rejected"] == 0 and c["by_status"]["unknown_order"] == 0 and c["by_status"]["crossed"] == 0
    assert c["messages"] == len(np.unique(orders["seq"]))


def test_reconciliation_only_touches_levels_outside_the_visible_range(loaded):
    # LOBSTER writes only the messages that touch the 10 visible levels, so deeper levels change
    # unobserved. Every correction the loader had to make was at a price outside the previous
    # row's visible range (a level coming into view), none inside it: inside the visible range
    # the message file alone explains every published change.
    stats = loaded.stats
    assert stats.get("resync_inside_window", 0) == 0
    assert stats["resync_surfaced"] == 14
    assert stats["resync_seed_orders"] == 11 and stats["resync_cancels"] == 3
    assert stats["unknown_id_events"] == stats["unknown_id_mapped_to_seed"] == 9
    assert stats.get("unknown_id_new_seed", 0) == 0
    assert stats.get("delete_size_mismatch", 0) == 0 and stats.get("price_or_side_mismatch", 0) == 0


def test_a_level_beyond_depth_ten_vanishes_without_a_message(files, published):
    # Why the first row alone cannot seed the book: the 1160 shares at 587.65 are the 9th ask
    # level of row 0, are pushed beyond level 10 by new asks, and are gone when they would be
    # back in view at row 12, yet no message ever mentions that price.
    msgs = np.loadtxt(files[0], delimiter=",")
    assert not np.any(msgs[:, 4] == 5876500)
    assert (5876500, 1160) in _published_side(published[0], "ask")
    row12 = _published_side(published[12], "ask")
    assert row12[-1][0] == 5879000 and all(p != 5876500 for p, _ in row12)


def test_without_orderbook_unknown_ids_are_counted_by_the_core(files):
    md = load_lobster(files[0])
    assert np.all(md.orders["order_id"] < SEED_ID_BASE)  # no seeding, no reconciliation
    book = _core.book.L3Book()
    statuses = book.apply_statuses(md.orders)
    names = np.array(_core.book.STATUS_NAMES)[statuses]
    # the 9 cancels / executions of orders that rested before the file (or beyond level 10)
    assert np.count_nonzero(names == "unknown_order") == md.stats["unknown_id_events"] == 9
    assert book.counters()["by_status"]["unknown_order"] == 9
    unknown = md.orders[names == "unknown_order"]
    assert set(unknown["action"].tolist()) <= {ACTION_CANCEL, ACTION_EXECUTE}


def test_malformed_rows_are_counted_rejections(tmp_path):
    rows = [
        "34200.1,1,11,100,5853300,1",       # 1 ok
        "34200.2,1,12,50,5859400,-1",       # 2 ok
        "34200.3,1,abc,50,5859400,-1",      # 3 non-numeric
        "34200.4,1,13,-5,5859400,-1",       # 4 negative size
        "34200.5,9,14,5,5859400,-1",        # 5 unknown type
        "34200.6,1,15,5",                   # 6 column count
        "34200.7,1,16,5,5859400,0",         # 7 bad direction
        "34200.8,1,17,5,5859450,-1",        # 8 off the 0.01 grid
        "34200.9,3,11,100,5853300,1",       # 9 ok: delete
        "34201.0,4,12,20,5859400,-1",       # 10 ok: execution
        "34201.1,1,18,0,5859400,-1",        # 11 zero size
        "34201.2,7,0,0,-1,-1",              # 12 halt: no event, counted in stats
    ]
    path = tmp_path / "XYZ_2012-06-21_34200000_57600000_message_10.csv"
    path.write_text("\n".join(rows))
    md = load_lobster(path, tick_size="0.01")
    rej = md.rejections
    assert rej.as_dict() == {"bad_column_count": 1, "bad_direction": 1, "negative_size": 1, "non_numeric": 1,
                             "off_grid_price": 1, "unknown_type": 1, "zero_size": 1}
    assert {reason: sample[1] for reason, sample in rej.samples.items()} == {
        "non_numeric": 3, "negative_size": 4, "unknown_type": 5, "bad_column_count": 6, "bad_direction": 7,
        "off_grid_price": 8, "zero_size": 11}
    assert md.stats["halt_messages"] == 1
    assert md.orders["order_id"].tolist() == [11, 12, 11, 12]
    assert md.orders["action"].tolist() == [ACTION_ADD, ACTION_ADD, ACTION_CANCEL, ACTION_EXECUTE]
    assert md.orders["seq"].tolist() == [0, 1, 8, 9]
    assert len(md.trades) == 1 and md.trades[0]["aggressor"] == BID
    book = _core.book.L3Book()
    book.apply(md.orders)
    assert book.top() == (np.iinfo(np.int64).min, 0, 58594, 30)
    assert book.counters()["rejected"] == 0


def test_tick_size_falls_back_to_the_fine_grid(tmp_path):
    path = tmp_path / "msgs.csv"
    path.write_text("34200.1,1,11,100,5853350,1\n34200.2,1,12,50,5859400,-1\n")
    md = load_lobster(path)
    assert md.spec.tick_size == "0.0001" and md.orders["price"].tolist() == [5853350, 5859400]
    assert md.spec.symbol == "msgs"
    # without a date in the name the timestamps are ns after midnight
    assert md.orders["ts_exchange"][0] == 34200_100_000_000
