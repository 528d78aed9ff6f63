"""Unit tests of the L3 (market-by-order) book: semantics, rejections, batch API, book set."""

from __future__ import annotations

import numpy as np
import pytest

from bot4 import _core
from bot4.events import (
    ACTION_ADD, ACTION_CANCEL, ACTION_CLEAR, ACTION_EXECUTE, ACTION_MODIFY, ASK, BID, BOOK_EVENT,
    FLAG_CLEAR, FLAG_LAST, FLAG_SNAPSHOT, NO_ASK_PRICE, NO_BID_PRICE, NO_SIDE, ORDER_EVENT,
)

book_mod = _core.book
STATUS = {name: i for i, name in enumerate(book_mod.STATUS_NAMES)}


def ev(action, order_id=0, side=BID, price=0, qty=0, seq=0, flags=FLAG_LAST, instrument=0):
    return (action, order_id, side, price, qty, seq, flags, instrument)


def events(*rows) -> np.ndarray:
    out = np.zeros(len(rows), ORDER_EVENT)
    for i, (action, oid, side, price, qty, seq, flags, instrument) in enumerate(rows):
        out[i]["action"] = action
        out[i]["order_id"] = oid
        out[i]["side"] = side
        out[i]["price"] = price
        out[i]["qty"] = qty
        out[i]["seq"] = seq
        out[i]["flags"] = flags
        out[i]["instrument"] = instrument
    return out


def add(oid, side, price, qty, seq=0, flags=FLAG_LAST):
    return ev(ACTION_ADD, oid, side, price, qty, seq, flags)


def status_of(book, *rows) -> list[str]:
    codes = book.apply_statuses(events(*rows))
    return [book_mod.STATUS_NAMES[c] for c in codes]


def state(book):
    """Everything observable about a book, for unchanged-state checks."""
    levels = {}
    for side in ("bid", "ask"):
        for price, _ in book.l2_depth(side, 10_000).tolist():
            levels[(side, price)] = book.level_orders(side, price)
    return (book.top(), book.order_count, levels)


def test_add_fifo_and_queue_ahead():
    b = book_mod.L3Book()
    b.apply(events(add(1, BID, 100, 5), add(2, BID, 100, 7), add(3, BID, 99, 4), add(4, ASK, 101, 3),
                   add(5, BID, 100, 1)))
    assert b.top() == (100, 13, 101, 3)
    assert b.level_orders("bid", 100) == [(1, 5), (2, 7), (5, 1)]
    assert [b.queue_ahead(i) for i in (1, 2, 5, 3, 4)] == [0, 5, 12, 0, 0]
    assert b.queue_ahead(42) is None
    assert b.order(2) == (book_mod.Side.BID, 100, 7)
    assert b.order(42) is None
    assert b.order_count == len(b) == 5
    assert 3 in b and 42 not in b
    assert b.level_count("bid") == 2 and b.level_count("ask") == 1
    assert b.l2_depth("bid", 5).tolist() == [[100, 13], [99, 4]]


def test_modify_priority_rules():
    b = book_mod.L3Book()
    b.apply(events(add(1, BID, 100, 5), add(2, BID, 100, 7), add(3, BID, 100, 2)))
    # size down keeps priority
    b.apply(events(ev(ACTION_MODIFY, 1, BID, 100, 3)))
    assert b.level_orders("bid", 100) == [(1, 3), (2, 7), (3, 2)]
    # unchanged size and price keeps priority too
    b.apply(events(ev(ACTION_MODIFY, 1, BID, 100, 3)))
    assert b.level_orders("bid", 100)[0] == (1, 3)
    # size up loses priority (to the back of the same level)
    b.apply(events(ev(ACTION_MODIFY, 1, BID, 100, 4)))
    assert b.level_orders("bid", 100) == [(2, 7), (3, 2), (1, 4)]
    assert b.queue_ahead(1) == 9
    # price change moves it to the back of the new level, even with a smaller size
    b.apply(events(add(4, BID, 101, 1), ev(ACTION_MODIFY, 2, BID, 101, 6)))
    assert b.level_orders("bid", 101) == [(4, 1), (2, 6)]
    assert b.level_orders("bid", 100) == [(3, 2), (1, 4)]
    assert b.top()[:2] == (101, 7)
    # side NONE on a modify means "unchanged"
    assert status_of(b, ev(ACTION_MODIFY, 3, NO_SIDE, 100, 1)) == ["ok"]
    assert b.order(3) == (book_mod.Side.BID, 100, 1)
    # qty 0 removes the order and an emptied level
    b.apply(events(ev(ACTION_MODIFY, 4, BID, 101, 0)))
    assert b.order(4) is None and b.level_orders("bid", 101) == [(2, 6)]
    b.apply(events(ev(ACTION_MODIFY, 2, BID, 101, 0)))
    assert b.level_count("bid") == 1 and b.best_bid == 100


def test_cancel_and_execute():
    b = book_mod.L3Book()
    b.apply(events(add(1, ASK, 200, 10), add(2, ASK, 200, 4), add(3, ASK, 201, 4)))
    b.apply(events(ev(ACTION_CANCEL, 1, ASK, 200, 3)))  # partial, keeps priority
    assert b.level_orders("ask", 200) == [(1, 7), (2, 4)]
    b.apply(events(ev(ACTION_EXECUTE, 1, ASK, 200, 7)))  # executes the rest
    assert b.order(1) is None and b.level_orders("ask", 200) == [(2, 4)]
    b.apply(events(ev(ACTION_CANCEL, 2, ASK, 200, 99)))  # qty >= resting removes
    assert b.best_ask == 201 and b.order_count == 1
    b.apply(events(ev(ACTION_CANCEL, 3, ASK, 201, 0)))  # zero cancel is a no-op
    assert b.order(3) == (book_mod.Side.ASK, 201, 4)
    # the event's side and price are not used by cancel/execute (the order's own are)
    b.apply(events(ev(ACTION_EXECUTE, 3, BID, 999, 1)))
    assert b.order(3) == (book_mod.Side.ASK, 201, 3)
    assert b.counters()["rejected"] == 0


def test_clear_action_and_flag():
    b = book_mod.L3Book()
    b.apply(events(add(1, BID, 100, 5), add(2, ASK, 101, 5)))
    b.apply(events(ev(ACTION_CLEAR, seq=5)))
    assert b.order_count == 0 and b.top() == (NO_BID_PRICE, 0, NO_ASK_PRICE, 0)
    b.apply(events(add(1, BID, 100, 5, seq=6), add(2, ASK, 101, 5, seq=7)))
    # kClear on an add: book replaced, the add applied; seq restarts
    assert status_of(b, add(9, BID, 50, 1, seq=1, flags=FLAG_CLEAR | FLAG_LAST)) == ["ok"]
    assert b.order_count == 1 and b.top()[:2] == (50, 1) and b.best_ask == NO_ASK_PRICE
    # kClear on a cancel: the order cannot exist after a clear -> rejected, nothing cleared
    before = state(b)
    assert status_of(b, ev(ACTION_CANCEL, 9, BID, 50, 1, seq=2, flags=FLAG_CLEAR)) == ["unknown_order"]
    assert state(b) == before
    # an invalid add with kClear is rejected before clearing
    assert status_of(b, add(10, BID, 50, -1, seq=3, flags=FLAG_CLEAR)) == ["negative_qty"]
    assert state(b) == before


@pytest.mark.parametrize(
    "row, expected",
    [
        (ev(ACTION_CANCEL, 77, BID, 100, 1, seq=10), "unknown_order"),
        (ev(ACTION_EXECUTE, 77, BID, 100, 1, seq=10), "unknown_order"),
        (ev(ACTION_MODIFY, 77, BID, 100, 1, seq=10), "unknown_order"),
        (add(1, BID, 100, 1, seq=10), "duplicate_order"),
        (add(5, BID, 100, -3, seq=10), "negative_qty"),
        (add(5, BID, 100, 0, seq=10), "negative_qty"),
        (add(5, NO_SIDE, 100, 3, seq=10), "bad_side"),
        (add(5, 7, 100, 3, seq=10), "bad_side"),
        (add(5, BID, 0, 3, seq=10), "bad_price"),
        (add(5, BID, -5, 3, seq=10), "bad_price"),
        (add(5, ASK, NO_ASK_PRICE, 3, seq=10), "bad_price"),
        (add(5, BID, 100, 3, seq=1), "seq_regression"),
        (ev(ACTION_CANCEL, 1, BID, 100, -1, seq=10), "negative_qty"),
        (ev(ACTION_MODIFY, 1, BID, 100, -1, seq=10), "negative_qty"),
        (ev(ACTION_MODIFY, 1, ASK, 100, 1, seq=10), "bad_side"),
        (ev(ACTION_MODIFY, 1, BID, 0, 1, seq=10), "bad_price"),
        (ev(9, 1, BID, 100, 1, seq=10), "bad_action"),
    ],
)
def test_rejections_leave_book_unchanged(row, expected):
    b = book_mod.L3Book()
    b.apply(events(add(1, BID, 100, 5, seq=3), add(2, BID, 100, 2, seq=4), add(3, ASK, 102, 1, seq=5)))
    before = state(b)
    seq_before = b.last_seq
    assert status_of(b, row) == [expected]
    assert state(b) == before
    assert b.last_seq == seq_before
    c = b.counters()
    assert c["by_status"][expected] == 1 and c["rejected"] == 1 and c["events"] == 4


def test_unknown_order_counted_in_a_batch():
    # An injected cancel of an id that never rested is a counted rejection; the batch goes on.
    b = book_mod.L3Book()
    statuses = b.apply_statuses(events(add(1, BID, 100, 5, seq=1), ev(ACTION_CANCEL, 2, BID, 100, 5, seq=2),
                                       ev(ACTION_CANCEL, 1, BID, 100, 2, seq=3)))
    assert [book_mod.STATUS_NAMES[s] for s in statuses] == ["ok", "unknown_order", "ok"]
    assert b.counters()["by_status"]["unknown_order"] == 1
    assert b.order(1) == (book_mod.Side.BID, 100, 3)


def test_snapshot_records_are_exempt_from_sequence_order():
    b = book_mod.L3Book()
    snap = FLAG_SNAPSHOT
    rows = [add(1, BID, 100, 1, seq=50, flags=snap | FLAG_CLEAR), add(2, BID, 99, 1, seq=20, flags=snap),
            add(3, ASK, 101, 1, seq=70, flags=snap | FLAG_LAST), add(4, ASK, 102, 1, seq=30)]
    assert status_of(b, *rows) == ["ok"] * 4
    assert b.last_seq == 30 and b.order_count == 4
    assert status_of(b, add(5, ASK, 103, 1, seq=29)) == ["seq_regression"]


def test_crossed_is_kept_and_counted_at_message_end():
    b = book_mod.L3Book()
    rows = [add(1, BID, 100, 1, seq=1), add(2, ASK, 100, 1, seq=2, flags=0),  # crossed mid-message
            add(3, ASK, 99, 1, seq=3, flags=FLAG_LAST)]
    assert status_of(b, *rows) == ["ok", "ok", "crossed"]
    assert b.crossed and b.top() == (100, 1, 99, 1)
    c = b.counters()
    assert c["by_status"]["crossed"] == 1 and c["by_status"]["ok"] == 3 and c["messages"] == 2
    quiet = book_mod.L3Book(check_crossed=False)
    assert status_of(quiet, *rows) == ["ok", "ok", "ok"]


def test_record_at_tops():
    b = book_mod.L3Book()
    arr = events(add(1, BID, 100, 5, seq=1), add(2, ASK, 105, 2, seq=2), add(3, BID, 101, 1, seq=3),
                 ev(ACTION_CANCEL, 3, BID, 101, 1, seq=4))
    tops = b.apply(arr, record_at=np.array([-1, 0, 2, 3], np.int64))
    assert tops.tolist() == [(NO_BID_PRICE, 0, NO_ASK_PRICE, 0), (100, 5, NO_ASK_PRICE, 0), (101, 1, 105, 2),
                             (100, 5, 105, 2)]
    assert b.apply(arr[:0]) is None


def test_wrong_dtype_and_unsorted_record_at():
    b = book_mod.L3Book()
    with pytest.raises(TypeError, match="ORDER_EVENT"):
        b.apply(np.zeros(3, BOOK_EVENT))
    with pytest.raises(TypeError, match="ORDER_EVENT"):
        b.apply_statuses(np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="sorted"):
        b.apply(events(add(1, BID, 1, 1)), record_at=np.array([0, -1], np.int64))
    with pytest.raises(ValueError):
        book_mod.L3Book(window_ticks=100)  # not a power of two


def test_far_levels_with_a_small_window():
    b = book_mod.L3Book(window_ticks=64)
    rows = [add(i, BID, p, 1, seq=i) for i, p in enumerate([1000, 10, 5000, 999, 2], start=1)]
    rows += [add(10 + i, ASK, p, 2, seq=10 + i) for i, p in enumerate([6000, 100_000, 6001], start=1)]
    b.apply(events(*rows))
    assert b.l2_depth("bid", 10).tolist() == [[5000, 1], [1000, 1], [999, 1], [10, 1], [2, 1]]
    assert b.l2_depth("ask", 10).tolist() == [[6000, 2], [6001, 2], [100_000, 2]]
    b.apply(events(ev(ACTION_CANCEL, 3, BID, 5000, 1, seq=30), ev(ACTION_CANCEL, 11, ASK, 0, 2, seq=31)))
    assert b.top() == (1000, 1, 6001, 2)


def test_many_orders_grow_the_maps():
    b = book_mod.L3Book(expected_orders=4)
    n = 50_000
    arr = np.zeros(n, ORDER_EVENT)
    arr["order_id"] = np.arange(1, n + 1, dtype=np.uint64) * 7919
    arr["side"] = np.arange(n) % 2
    arr["price"] = np.where(arr["side"] == BID, 1000 - (np.arange(n) // 2) % 300, 1001 + (np.arange(n) // 2) % 300)
    arr["qty"] = 1 + np.arange(n) % 5
    arr["seq"] = np.arange(n)
    b.apply(arr)
    assert b.order_count == n
    assert b.level_count("bid") == 300 and b.level_count("ask") == 300
    # cancel every other order, in a scrambled order
    idx = np.random.default_rng(1).permutation(n)[: n // 2]
    cancels = arr[idx].copy()
    cancels["action"] = ACTION_CANCEL
    cancels["seq"] = n + np.arange(len(idx))
    b.apply(cancels)
    assert b.order_count == n - n // 2
    total_bid = sum(q for _, q in b.l2_depth("bid", 1000).tolist())
    keep = np.ones(n, bool)
    keep[idx] = False
    assert total_bid == int(arr["qty"][keep & (arr["side"] == BID)].sum())
    assert b.counters()["rejected"] == 0
    for i in np.flatnonzero(keep)[:200]:
        assert b.order(int(arr["order_id"][i]))[1:] == (int(arr["price"][i]), int(arr["qty"][i]))


def test_book_set_routes_by_instrument():
    s = book_mod.L3BookSet()
    a = s.add(7)
    b = s.add(9, window_ticks=64)
    assert sorted(s.instruments) == [7, 9]
    arr = events(ev(ACTION_ADD, 1, BID, 100, 5, seq=1, instrument=7), ev(ACTION_ADD, 1, BID, 200, 6, seq=1, instrument=9),
                 ev(ACTION_ADD, 2, ASK, 201, 1, seq=2, instrument=9), ev(ACTION_ADD, 3, ASK, 5, 1, seq=3, instrument=8),
                 ev(ACTION_CANCEL, 1, BID, 100, 2, seq=4, instrument=7))
    tops = s.apply(arr, record_at=np.array([1, 2, 3, 4], np.int64))
    assert tops.tolist() == [(200, 6, NO_ASK_PRICE, 0), (200, 6, 201, 1), (NO_BID_PRICE, 0, NO_ASK_PRICE, 0),
                             (100, 3, NO_ASK_PRICE, 0)]
    assert a.order(1) == (book_mod.Side.BID, 100, 3) and b.order(1) == (book_mod.Side.BID, 200, 6)
    c = s.counters()
    assert c["events"] == 5 and c["by_status"]["unknown_instrument"] == 1 and c["rejected"] == 1
    assert s.book(9).order_count == 2
    with pytest.raises(KeyError):
        s.book(8)
    statuses = s.apply_statuses(events(ev(ACTION_CANCEL, 5, BID, 0, 1, seq=9, instrument=7)))
    assert book_mod.STATUS_NAMES[statuses[0]] == "unknown_order"
    s.reset_counters()
    assert s.counters()["events"] == 0
