from __future__ import annotations

import numpy as np
import pytest

from bot4 import _core
from bot4.events import (ASK, BID, BOOK_EVENT, FLAG_CLEAR, FLAG_LAST, NO_ASK_PRICE, NO_BID_PRICE,
                         TRADE_EVENT)


def events(rows, instrument=0):
    arr = np.zeros(len(rows), BOOK_EVENT)
    for i, (side, price, qty, seq, flags) in enumerate(rows):
        arr[i]["side"], arr[i]["price"], arr[i]["qty"], arr[i]["seq"], arr[i]["flags"] = (
            side, price, qty, seq, flags)
    arr["instrument"] = instrument
    return arr


def test_empty_book_uses_sentinels():
    book = _core.book.L2Book()
    assert book.top() == (NO_BID_PRICE, 0, NO_ASK_PRICE, 0)
    assert book.depth("bid", 5).shape == (0, 2)


def test_levels_best_and_depth():
    book = _core.book.L2Book()
    book.apply(events([(BID, 100, 5, 1, 0), (BID, 99, 7, 1, 0), (ASK, 102, 3, 1, 0),
                       (ASK, 101, 4, 1, FLAG_LAST)]))
    assert book.top() == (100, 5, 101, 4)
    assert book.qty_at("bid", 99) == 7 and book.qty_at("ask", 150) == 0
    assert book.depth("bid", 10).tolist() == [[100, 5], [99, 7]]
    assert book.depth("ask", 1).tolist() == [[101, 4]]
    book.apply(events([(BID, 100, 0, 2, FLAG_LAST)]))
    assert book.best_bid == 99


def test_depth_is_a_read_only_view_owned_by_the_book():
    book = _core.book.L2Book()
    book.apply(events([(BID, 100, 5, 1, FLAG_LAST)]))
    view = book.depth("bid", 3)
    assert not view.flags.writeable and not view.flags.owndata
    assert view.base is not None
    del book  # the view keeps the book alive
    assert view.tolist() == [[100, 5]]


def test_wrong_dtype_raises_type_error_naming_expected():
    book = _core.book.L2Book()
    with pytest.raises(TypeError, match="BOOK_EVENT"):
        book.apply(np.zeros(3, TRADE_EVENT))
    with pytest.raises(TypeError, match="BOOK_EVENT"):
        book.apply(np.zeros(3, np.int64))
    with pytest.raises(TypeError, match="C-contiguous"):
        book.apply(np.zeros(6, BOOK_EVENT)[::2])
    with pytest.raises(TypeError, match="int64"):
        book.apply(np.zeros(3, BOOK_EVENT), np.zeros(1, np.int32))
    with pytest.raises(ValueError, match="sorted"):
        book.apply(np.zeros(3, BOOK_EVENT), np.array([2, 1], np.int64))


@pytest.mark.parametrize(
    "row, reason",
    [((BID, 100, -1, 5, FLAG_LAST), "negative_qty"),
     ((2, 100, 1, 5, FLAG_LAST), "bad_side"),
     ((BID, 0, 1, 5, FLAG_LAST), "bad_price"),
     ((BID, -5, 1, 5, FLAG_LAST), "bad_price"),
     ((BID, 100, 1, 3, FLAG_LAST), "seq_regression")],
)
def test_rejections_are_counted_and_change_nothing(row, reason):
    book = _core.book.L2Book()
    book.apply(events([(BID, 100, 5, 4, 0), (ASK, 101, 4, 4, FLAG_LAST)]))
    before = book.top()
    book.apply(events([row]))
    assert book.top() == before
    counters = book.counters()
    assert counters["by_status"][reason] == 1
    assert counters["rejected"] == 1
    # Nothing accepted before is lost, and later valid events still apply.
    book.apply(events([(BID, 100, 9, 6, FLAG_LAST)]))
    assert book.top() == (100, 9, 101, 4)


def test_delete_of_absent_level_is_counted_noop():
    book = _core.book.L2Book()
    book.apply(events([(BID, 100, 5, 1, FLAG_LAST), (BID, 90, 0, 2, FLAG_LAST)]))
    assert book.counters()["by_status"]["delete_absent"] == 1
    assert book.top()[0:2] == (100, 5)


def test_crossed_message_is_pruned_by_newest_side_and_counted():
    book = _core.book.L2Book()
    book.apply(events([(BID, 100, 5, 1, 0), (ASK, 101, 4, 1, 0), (ASK, 102, 4, 1, FLAG_LAST)]))
    # A bid through the asks, not followed by the venue's ask deletes: stale asks are removed.
    book.apply(events([(BID, 101, 2, 2, FLAG_LAST)]))
    c = book.counters()
    assert c["by_status"]["crossed"] == 1 and c["crossed_pruned_levels"] == 1
    assert book.top() == (101, 2, 102, 4)


def test_crossing_inside_a_message_is_not_a_cross():
    book = _core.book.L2Book()
    book.apply(events([(BID, 100, 5, 1, 0), (ASK, 101, 4, 1, FLAG_LAST)]))
    # Bid moves up through the old ask; the ask delete comes later in the same message.
    book.apply(events([(BID, 101, 2, 2, 0), (ASK, 101, 0, 2, 0), (ASK, 102, 1, 2, FLAG_LAST)]))
    assert book.counters()["by_status"]["crossed"] == 0
    assert book.top() == (101, 2, 102, 1)


def test_keep_crossed_policy():
    book = _core.book.L2Book(prune_crossed=False)
    book.apply(events([(BID, 100, 5, 1, 0), (ASK, 99, 4, 1, FLAG_LAST)]))
    assert book.crossed and book.counters()["by_status"]["crossed"] == 1


def test_clear_flag_resets_book_and_sequence():
    book = _core.book.L2Book()
    book.apply(events([(BID, 100, 5, 50, FLAG_LAST)]))
    book.apply(events([(BID, 90, 1, 10, FLAG_CLEAR), (ASK, 95, 2, 10, FLAG_LAST)]))
    assert book.top() == (90, 1, 95, 2)
    assert book.counters()["rejected"] == 0


def test_far_levels_and_recentering_keep_exact_state():
    book = _core.book.L2Book(window_ticks=64)
    rows = [(BID, 1000, 1, 1, 0), (BID, 10, 2, 1, 0), (ASK, 5000, 3, 1, FLAG_LAST)]
    book.apply(events(rows))
    assert book.top() == (1000, 1, 5000, 3)
    book.apply(events([(BID, 1000, 0, 2, FLAG_LAST)]))
    assert book.best_bid == 10
    book.apply(events([(ASK, 5000, 0, 3, FLAG_LAST)]))
    assert book.best_ask == NO_ASK_PRICE
    assert book.counters()["recenters"] >= 1


def test_window_must_be_power_of_two():
    with pytest.raises(ValueError):
        _core.book.L2Book(window_ticks=1000)


def test_record_at_returns_top_after_each_requested_event():
    book = _core.book.L2Book()
    arr = events([(BID, 100, 5, 1, FLAG_LAST), (ASK, 105, 1, 2, FLAG_LAST), (BID, 101, 2, 3, FLAG_LAST)])
    tops = book.apply(arr, np.array([0, 2, 2], np.int64))
    assert tops["bid_price"].tolist() == [100, 101, 101]
    assert tops["ask_price"].tolist() == [NO_ASK_PRICE, 105, 105]


def test_book_set_routes_by_instrument_and_counts_unknown():
    books = _core.book.BookSet()
    books.add(1)
    books.add(2)
    arr = np.concatenate([events([(BID, 100, 5, 1, FLAG_LAST)], instrument=1),
                          events([(BID, 200, 6, 1, FLAG_LAST)], instrument=2),
                          events([(ASK, 300, 1, 1, FLAG_LAST)], instrument=3),
                          events([(ASK, 101, 7, 2, FLAG_LAST)], instrument=1)])
    tops = books.apply(arr, np.array([1, 3], np.int64))
    assert books.book(1).top() == (100, 5, 101, 7)
    assert books.book(2).top()[:2] == (200, 6)
    assert tops[0]["bid_price"] == 200 and tops[1]["ask_price"] == 101
    assert books.counters()["by_status"]["unknown_instrument"] == 1
    assert sorted(books.instruments) == [1, 2]
    with pytest.raises(KeyError):
        books.book(3)


def test_apply_timed_returns_one_latency_per_message():
    books = _core.book.BookSet()
    books.add(0)
    arr = events([(BID, 100, 5, 1, 0), (ASK, 101, 5, 1, FLAG_LAST), (BID, 99, 1, 2, FLAG_LAST)])
    latency = books.apply_timed(arr)
    assert latency.shape == (2,) and (latency >= 0).all()
    assert books.book(0).top() == (100, 5, 101, 5)


def test_a_book_built_after_another_starts_empty():
    # A ladder's window goes back to a pool zeroed when its book is destroyed and the next book of
    # that window size takes it (price_ladder.hpp): nothing of the previous book may show.
    import gc

    w, p = 4096, 100_000
    rng = np.random.default_rng(3)
    for round_ in range(3):
        book = _core.book.L2Book(window_ticks=w)
        book.apply(events([(BID, p, 1, 0, 0)]))               # anchors the window at p - w/2
        held = {int(q) for q in range(p - w // 2, p + w // 2) if book.qty_at("bid", q) or book.qty_at("ask", q)}
        assert held == {p}, (round_, sorted(held)[:10])
        assert book.level_count("bid") == 1 and book.level_count("ask") == 0
        # levels over the window (and a recentre: the touch moves far), then the book is dropped
        prices = rng.integers(p - w // 2, p + w // 2, 500)
        rows = [(BID, int(q), 3, 1, 0) for q in prices if q < p] + [(ASK, int(q), 2, 1, 0) for q in prices if q > p]
        rows += [(BID, p + 3 * w // 8, 1, 2, FLAG_LAST)]
        book.apply(events(rows))
        assert book.counters()["recenters"] >= 1
        del book
        gc.collect()
