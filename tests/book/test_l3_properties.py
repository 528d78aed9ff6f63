"""Differential property tests: the C++ L3 book against a small pure-Python reference L3 book, and
the L3 book's aggregated L2 view against an L2Book fed the level changes of the same sequence."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot4 import _core
from bot4.events import (
    ACTION_ADD, ACTION_CANCEL, ACTION_CLEAR, ACTION_EXECUTE, ACTION_MODIFY, BOOK_EVENT, FLAG_CLEAR,
    FLAG_LAST, FLAG_SNAPSHOT, ORDER_EVENT,
)

NO_BID = -(2**63)
NO_ASK = 2**63 - 1
WINDOW = 64  # small dense window: exercises the far-level map and recentering
REJECTIONS = {"negative_qty", "bad_side", "bad_price", "seq_regression", "unknown_instrument",
              "unknown_order", "duplicate_order", "bad_action"}


class ReferenceL3Book:
    """A deliberately simple L3 book with the core's documented semantics (core/book/l3_book.hpp)."""

    def __init__(self) -> None:
        self.orders: dict[int, list] = {}  # id -> [side, price, qty]
        self.levels: dict[tuple[int, int], list[int]] = {}  # (side, price) -> ids, FIFO
        self.last_seq: int | None = None
        self.counts: dict[str, int] = {}

    # -- views --
    def totals(self, side: int) -> dict[int, int]:
        return {p: sum(self.orders[i][2] for i in ids) for (s, p), ids in self.levels.items() if s == side}

    def depth(self, side: int) -> list[tuple[int, int]]:
        t = self.totals(side)
        return sorted(t.items(), reverse=(side == 0))

    def best(self, side: int) -> int:
        t = self.totals(side)
        if not t:
            return NO_BID if side == 0 else NO_ASK
        return max(t) if side == 0 else min(t)

    def queue_ahead(self, oid: int) -> int:
        side, price, _ = self.orders[oid]
        ahead = 0
        for i in self.levels[(side, price)]:
            if i == oid:
                return ahead
            ahead += self.orders[i][2]
        raise AssertionError("order not in its level")

    # -- mutation --
    def _remove(self, oid: int) -> None:
        side, price, _ = self.orders.pop(oid)
        ids = self.levels[(side, price)]
        ids.remove(oid)
        if not ids:
            del self.levels[(side, price)]

    def _append(self, oid: int, side: int, price: int, qty: int) -> None:
        self.orders[oid] = [side, price, qty]
        self.levels.setdefault((side, price), []).append(oid)

    def clear(self) -> None:
        self.orders.clear()
        self.levels.clear()
        self.last_seq = None

    def apply(self, action, oid, side, price, qty, seq, flags) -> str:
        status = self._apply(action, oid, side, price, qty, seq, flags)
        self.counts[status] = self.counts.get(status, 0) + 1
        if flags & FLAG_LAST and status not in REJECTIONS and self.best(0) != NO_BID and \
                self.best(1) != NO_ASK and self.best(0) >= self.best(1):
            self.counts["crossed"] = self.counts.get("crossed", 0) + 1
            status = "crossed"
        return status

    def _apply(self, action, oid, side, price, qty, seq, flags) -> str:
        snapshot = bool(flags & FLAG_SNAPSHOT)
        if self.last_seq is not None and seq < self.last_seq and not flags & (FLAG_SNAPSHOT | FLAG_CLEAR):
            return "seq_regression"
        price_ok = price > 0
        if action == ACTION_ADD:
            if side not in (0, 1):
                return "bad_side"
            if qty <= 0:
                return "negative_qty"
            if not price_ok:
                return "bad_price"
            if flags & FLAG_CLEAR:
                self.clear()
            elif oid in self.orders:
                return "duplicate_order"
            self._append(oid, side, price, qty)
        elif action == ACTION_MODIFY:
            if flags & FLAG_CLEAR or oid not in self.orders:
                return "unknown_order"
            if qty < 0:
                return "negative_qty"
            o_side, o_price, o_qty = self.orders[oid]
            if side != o_side and side != 2:
                return "bad_side"
            if qty == 0:
                self._remove(oid)
            elif not price_ok:
                return "bad_price"
            elif price == o_price and qty <= o_qty:
                self.orders[oid][2] = qty
            else:
                self._remove(oid)
                self._append(oid, o_side, price, qty)
        elif action in (ACTION_CANCEL, ACTION_EXECUTE):
            if flags & FLAG_CLEAR or oid not in self.orders:
                return "unknown_order"
            if qty < 0:
                return "negative_qty"
            if qty >= self.orders[oid][2]:
                self._remove(oid)
            elif qty > 0:
                self.orders[oid][2] -= qty
        elif action == ACTION_CLEAR:
            self.clear()
        else:
            return "bad_action"
        if not snapshot:
            self.last_seq = seq
        return "ok"


# ---- operation strategies ---------------------------------------------------------------------

prices = st.one_of(st.integers(97, 103), st.integers(97, 103), st.integers(1, 300))


@st.composite
def sequences(draw, allow_invalid: bool, max_size: int = 80):
    """A list of (action, order_id, side, price, qty, seq_step, flags). Ids already added are
    chosen most of the time so that modifies, cancels and executes mostly hit resting orders;
    prices come from a narrow band (collisions, FIFO queues) or a wide one (beyond the 64-tick
    window, recentering)."""
    n = draw(st.integers(1, max_size))
    ops = []
    added: list[int] = []
    next_id = 1
    for _ in range(n):
        r = draw(st.integers(0, 99))
        flags = FLAG_LAST if draw(st.integers(0, 3)) else 0
        if draw(st.integers(0, 40)) == 0:
            flags |= FLAG_SNAPSHOT
        step = draw(st.sampled_from([0, 1, 1, 1, 1, 1, 1, 1, -1] if allow_invalid else [0, 1]))
        known = bool(added) and draw(st.integers(0, 9)) > (2 if allow_invalid else 0)
        oid = draw(st.sampled_from(added)) if known else draw(st.integers(1, next_id + 2))
        if r < 40 or not added:
            oid = next_id if draw(st.integers(0, 9)) or not added else draw(st.sampled_from(added))
            next_id += 1
            added.append(oid)
            qty = draw(st.integers(-2, 20) if allow_invalid and draw(st.integers(0, 9)) == 0
                       else st.integers(1, 20))
            side = draw(st.sampled_from([0, 1, 2]) if allow_invalid and draw(st.integers(0, 9)) == 0
                        else st.sampled_from([0, 1]))
            price = draw(st.integers(-3, 0) if allow_invalid and draw(st.integers(0, 9)) == 0 else prices)
            if draw(st.integers(0, 60)) == 0:
                flags |= FLAG_CLEAR
            ops.append((ACTION_ADD, oid, side, price, qty, step, flags))
        elif r < 65:
            qty = draw(st.integers(-1, 25) if allow_invalid and draw(st.integers(0, 9)) == 0
                       else st.integers(0, 25))
            side = draw(st.sampled_from([0, 1, 2]))
            price = draw(st.integers(-2, 0) if allow_invalid and draw(st.integers(0, 9)) == 0 else prices)
            ops.append((ACTION_MODIFY, oid, side, price, qty, step, flags))
        elif r < 95:
            qty = draw(st.integers(-1, 25) if allow_invalid and draw(st.integers(0, 9)) == 0
                       else st.integers(0, 25))
            action = ACTION_CANCEL if r < 82 else ACTION_EXECUTE
            ops.append((action, oid, draw(st.sampled_from([0, 1])), draw(prices), qty, step, flags))
        elif r < 97:
            ops.append((ACTION_CLEAR, 0, 0, 0, 0, step, flags))
        elif allow_invalid:
            ops.append((draw(st.integers(5, 255)), oid, 0, 100, 1, step, flags))
    return ops


def to_events(ops) -> np.ndarray:
    arr = np.zeros(len(ops), ORDER_EVENT)
    seq = 100
    for i, (action, oid, side, price, qty, step, flags) in enumerate(ops):
        seq += step
        arr[i] = (0, 0, seq, oid, price, qty, 0, side, action, flags, 0)
    return arr


def level_changes(before: dict, after: dict):
    for key in before.keys() | after.keys():
        if before.get(key, 0) != after.get(key, 0):
            yield key, after.get(key, 0)


def aggregated(ref: ReferenceL3Book) -> dict:
    return {(s, p): q for s in (0, 1) for p, q in ref.totals(s).items()}


def check_same(book, ref: ReferenceL3Book) -> None:
    assert book.order_count == len(ref.orders)
    assert (book.best_bid, book.best_ask) == (ref.best(0), ref.best(1))
    for side, name in ((0, "bid"), (1, "ask")):
        depth = [tuple(x) for x in book.l2_depth(name, 10_000).tolist()]
        assert depth == ref.depth(side)
        assert book.level_count(name) == len(depth)
        for price, _ in depth:
            expected = [(i, ref.orders[i][2]) for i in ref.levels[(side, price)]]
            assert book.level_orders(name, price) == expected
    for oid, (side, price, qty) in ref.orders.items():
        assert book.order(oid) == (_core.book.Side.BID if side == 0 else _core.book.Side.ASK, price, qty)
        assert book.queue_ahead(oid) == ref.queue_ahead(oid)
    for oid in range(1, 20):
        if oid not in ref.orders:
            assert book.order(oid) is None and book.queue_ahead(oid) is None


def run_differential(ops) -> None:
    arr = to_events(ops)
    book = _core.book.L3Book(window_ticks=WINDOW)
    ref = ReferenceL3Book()
    l2 = _core.book.L2Book(window_ticks=WINDOW, prune_crossed=False)
    l2_events = []
    l2_seq = 0
    for i in range(len(arr)):
        e = arr[i]
        before = aggregated(ref)
        want = ref.apply(int(e["action"]), int(e["order_id"]), int(e["side"]), int(e["price"]), int(e["qty"]),
                         int(e["seq"]), int(e["flags"]))
        got = _core.book.STATUS_NAMES[book.apply_statuses(arr[i:i + 1])[0]]
        assert got == want, (i, ops[i])
        check_same(book, ref)
        changes = list(level_changes(before, aggregated(ref)))
        for k, ((side, price), qty) in enumerate(changes):
            l2_seq += 1
            flags = FLAG_LAST if k == len(changes) - 1 else 0
            l2_events.append((0, 0, l2_seq, price, qty, 0, side, flags, 0))
        if changes:
            chunk = np.array(l2_events[-len(changes):], dtype=BOOK_EVENT)
            l2.apply(chunk)
        for name in ("bid", "ask"):
            assert l2.depth(name, 10_000).tolist() == book.l2_depth(name, 10_000).tolist()
        assert l2.top() == book.top()
    c = book.counters()
    for name, count in c["by_status"].items():
        assert count == ref.counts.get(name, 0), name
    assert c["events"] == len(arr)
    assert c["messages"] == int(np.count_nonzero(arr["flags"] & FLAG_LAST))
    assert l2.counters()["rejected"] == 0


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sequences(allow_invalid=False))
def test_valid_sequences_match_reference(ops):
    run_differential(ops)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sequences(allow_invalid=True))
def test_sequences_with_invalid_ops_match_reference(ops):
    # Unknown ids, duplicate adds, negative or zero quantities, bad sides and prices, sequence
    # regressions and unknown actions are rejected exactly like the reference and change nothing.
    run_differential(ops)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sequences(allow_invalid=True, max_size=120))
def test_batch_equals_one_by_one(ops):
    arr = to_events(ops)
    one = _core.book.L3Book(window_ticks=WINDOW)
    statuses = [int(one.apply_statuses(arr[i:i + 1])[0]) for i in range(len(arr))]
    batch = _core.book.L3Book(window_ticks=WINDOW)
    positions = np.arange(len(arr), dtype=np.int64)
    tops = batch.apply(arr, record_at=positions)
    assert batch.counters() == one.counters()
    assert tops[-1].tolist() == one.top()
    again = _core.book.L3Book(window_ticks=WINDOW)
    assert again.apply_statuses(arr).tolist() == statuses
    for name in ("bid", "ask"):
        assert batch.l2_depth(name, 1000).tolist() == one.l2_depth(name, 1000).tolist()
