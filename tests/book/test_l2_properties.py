"""Differential property tests: the C++ L2 book against a pure-Python reference book."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot4 import _core
from bot4.events import BOOK_EVENT, FLAG_CLEAR, FLAG_LAST

from reference_l2 import NO_ASK, NO_BID, ReferenceL2Book

# A small window (64 ticks) over a wide price range forces the far-level map and recentering.
PRICE = st.integers(min_value=1, max_value=400)


@st.composite
def event_sequences(draw, allow_invalid: bool):
    n = draw(st.integers(min_value=1, max_value=120))
    events = []
    seq = 1
    for _ in range(n):
        side = draw(st.sampled_from([0, 1, 2]) if allow_invalid else st.sampled_from([0, 1]))
        qty = draw(st.integers(min_value=-3 if allow_invalid else 0, max_value=50))
        price = draw(st.integers(min_value=-2, max_value=400) if allow_invalid else PRICE)
        if allow_invalid and draw(st.integers(0, 9)) == 0:
            seq -= draw(st.integers(1, 3))
        else:
            seq += draw(st.integers(0, 2))
        flags = FLAG_LAST if draw(st.booleans()) else 0
        if draw(st.integers(0, 30)) == 0:
            flags |= FLAG_CLEAR
        events.append((side, price, qty, seq, flags))
    return events


def _to_array(events) -> np.ndarray:
    arr = np.zeros(len(events), BOOK_EVENT)
    for i, (side, price, qty, seq, flags) in enumerate(events):
        arr[i]["side"], arr[i]["price"], arr[i]["qty"], arr[i]["seq"], arr[i]["flags"] = (
            side, price, qty, seq, flags)
    return arr


def _assert_same(book, ref: ReferenceL2Book) -> None:
    assert book.best_bid == ref.best_bid()
    assert book.best_ask == ref.best_ask()
    for side, name in ((0, "bid"), (1, "ask")):
        expected = ref.depth(side, 10_000)
        got = [tuple(row) for row in book.depth(name, 10_000)]
        assert got == expected
        assert book.level_count(name) == len(expected)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=event_sequences(allow_invalid=False), prune=st.booleans())
def test_valid_sequences_match_reference(events, prune):
    book = _core.book.L2Book(window_ticks=64, prune_crossed=prune)
    ref = ReferenceL2Book(prune_crossed=prune)
    arr = _to_array(events)
    positions = np.arange(len(events), dtype=np.int64)
    tops = book.apply(arr, positions)
    # Replay on the reference, checking the top after every event.
    for i, ev in enumerate(events):
        ref.apply(*ev)
        assert tops[i]["bid_price"] == ref.best_bid()
        assert tops[i]["ask_price"] == ref.best_ask()
        bid_qty = ref.sides[0].get(ref.best_bid(), 0) if ref.best_bid() != NO_BID else 0
        ask_qty = ref.sides[1].get(ref.best_ask(), 0) if ref.best_ask() != NO_ASK else 0
        assert (tops[i]["bid_qty"], tops[i]["ask_qty"]) == (bid_qty, ask_qty)
    _assert_same(book, ref)
    counts = book.counters()["by_status"]
    for status, n in ref.status_counts.items():
        assert counts[status] == n, status


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=event_sequences(allow_invalid=True))
def test_invalid_events_are_rejected_and_leave_state_unchanged(events):
    book = _core.book.L2Book(window_ticks=64)
    ref = ReferenceL2Book()
    for ev in events:
        before = (book.best_bid, book.best_ask, [tuple(r) for r in book.depth("bid", 1000)],
                  [tuple(r) for r in book.depth("ask", 1000)])
        status = ref.apply(*ev)
        book.apply(_to_array([ev]))
        if status not in ("ok", "delete_absent") and not ev[4] & FLAG_CLEAR:
            after = (book.best_bid, book.best_ask, [tuple(r) for r in book.depth("bid", 1000)],
                     [tuple(r) for r in book.depth("ask", 1000)])
            assert after == before
    _assert_same(book, ref)
    counts = book.counters()
    for status, n in ref.status_counts.items():
        assert counts["by_status"][status] == n, status
    assert counts["events"] == len(events)


@settings(max_examples=100, deadline=None)
@given(events=event_sequences(allow_invalid=False))
def test_window_size_does_not_change_the_book(events):
    arr = _to_array(events)
    small = _core.book.L2Book(window_ticks=64)
    large = _core.book.L2Book(window_ticks=1 << 12)
    small.apply(arr)
    large.apply(arr)
    assert small.top() == large.top()
    for side in ("bid", "ask"):
        assert np.array_equal(small.depth(side, 1000), large.depth(side, 1000))
