"""Rebuild books from event arrays with the core, and check them against the venue's own top of
book where the data carries one."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from bot4 import _core
from bot4.data.market_data import MarketData
from bot4.events import BBO_EVENT, FLAG_LAST, NO_ASK_PRICE, NO_BID_PRICE


# Book statuses that are counted but do not drop the event (see core/book/l2_book.hpp).
NOTICE_STATUSES = frozenset({"delete_absent", "crossed"})


@dataclass
class BboCheck:
    """How the rebuilt book's top compared with the venue's own best bid/offer stream (counts, first
    mismatch)."""

    checked: int = 0
    matched: int = 0          # price and size on both sides equal
    price_matched: int = 0    # prices on both sides equal
    first_mismatch: dict | None = None


@dataclass
class ReplayResult:
    """What `replay` saw: event counts by kind, rejections and notices by reason, sequence gaps, the BBO
    check and the final best bid/ask as decimal text."""

    source: str
    level: str
    events: int
    messages: int
    level_changes: int
    order_events: int
    trades: int
    rejected: dict[str, int]
    notices: dict[str, int]     # applied but noteworthy: delete of an absent level, crossed book
    sequence_gaps: int
    bbo: BboCheck | None
    final_bid: str | None
    final_ask: str | None
    final_bid_qty: str | None
    final_ask_qty: str | None
    seconds: float
    load_seconds: float
    book_counters: dict = field(default_factory=dict)
    l2_l3_consistent: bool | None = None  # None when the data has only one of the two

    @property
    def rate(self) -> float:
        """Book events (level changes, or order events for L3) applied per second."""
        applied = self.order_events if self.order_events else self.level_changes
        return applied / self.seconds if self.seconds > 0 else float("inf")

    def as_json(self) -> dict:
        """The result as a flat JSON-able dict (what `bot4 replay --json` prints)."""
        return {
            "source": self.source,
            "level": self.level,
            "events": self.events,
            "messages": self.messages,
            "level_changes": self.level_changes,
            "order_events": self.order_events,
            "trades": self.trades,
            "rejected": self.rejected,
            "notices": self.notices,
            "sequence_gaps": self.sequence_gaps,
            "bbo_checked": self.bbo.checked if self.bbo else 0,
            "bbo_matched": self.bbo.matched if self.bbo else 0,
            "bbo_price_matched": self.bbo.price_matched if self.bbo else 0,
            "final_bid": self.final_bid,
            "final_ask": self.final_ask,
            "final_bid_qty": self.final_bid_qty,
            "final_ask_qty": self.final_ask_qty,
            "seconds": round(self.seconds, 6),
            "load_seconds": round(self.load_seconds, 6),
            "book_events_per_second": round(self.rate),
            "l2_l3_consistent": self.l2_l3_consistent,
        }


def bbo_check_positions(book: np.ndarray, bbo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each BBO record whose update id equals a book message's final id (same instrument),
    the index of that message's last event. Returns (bbo indices, event positions), sorted by
    event position."""
    bbo_idx: list[np.ndarray] = []
    positions: list[np.ndarray] = []
    last = np.flatnonzero(book["flags"] & FLAG_LAST)
    for instrument in np.unique(bbo["instrument"]):
        ends = last[book["instrument"][last] == instrument]
        mine = np.flatnonzero(bbo["instrument"] == instrument)
        if len(ends) == 0 or len(mine) == 0:
            continue
        end_seq = book["seq"][ends]
        order = np.argsort(end_seq, kind="stable")
        # The last message carrying a given id is the state the venue's BBO refers to.
        k = np.searchsorted(end_seq[order], bbo["seq"][mine], side="right") - 1
        ok = (k >= 0)
        ok[ok] = end_seq[order][k[ok]] == bbo["seq"][mine][ok]
        bbo_idx.append(mine[ok])
        positions.append(ends[order][k[ok]])
    if not positions:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    b = np.concatenate(bbo_idx)
    p = np.concatenate(positions).astype(np.int64)
    order = np.argsort(p, kind="stable")
    return b[order], p[order]


def _compare_bbo(tops: np.ndarray, bbo: np.ndarray) -> BboCheck:
    prices = (tops["bid_price"] == bbo["bid_price"]) & (tops["ask_price"] == bbo["ask_price"])
    sizes = (tops["bid_qty"] == bbo["bid_qty"]) & (tops["ask_qty"] == bbo["ask_qty"])
    full = prices & sizes
    check = BboCheck(checked=int(len(bbo)), matched=int(full.sum()), price_matched=int(prices.sum()))
    bad = np.flatnonzero(~full)
    if len(bad):
        i = int(bad[0])
        check.first_mismatch = {
            "update_id": int(bbo["seq"][i]),
            "book": [int(v) for v in tops[i].tolist()],
            "venue": [int(bbo["bid_price"][i]), int(bbo["bid_qty"][i]), int(bbo["ask_price"][i]),
                      int(bbo["ask_qty"][i])],
        }
    return check


def build_books(data: MarketData, window_ticks: int = 1 << 17):
    """Empty core books for every instrument in `data`: L3 books when it carries order events
    (their L2 view is aggregated from the orders), L2 books otherwise."""
    books: _core.book.L3BookSet | _core.book.BookSet
    if len(data.orders):
        books = _core.book.L3BookSet()
    else:
        books = _core.book.BookSet()
    for instrument in data.specs:
        books.add(instrument, window_ticks=window_ticks)
    return books


def replay(data: MarketData, check_bbo: bool = False, load_seconds: float = 0.0,
           window_ticks: int = 1 << 17) -> ReplayResult:
    """Rebuild every instrument's book from `data` in the core (GIL released). L3 data is
    rebuilt from its order events; L2 data from its level changes, optionally checking the top
    of book against the venue's own at every update id the two share."""
    events = data.orders if len(data.orders) else data.book
    tops = None
    bbo_rows = positions = np.zeros(0, np.int64)
    check = check_bbo and len(data.bbo) > 0 and not len(data.orders)
    if check:
        bbo_rows, positions = bbo_check_positions(data.book, data.bbo)
    books = build_books(data, window_ticks)
    start = time.perf_counter()
    if check:
        tops = books.apply(events, positions)
    else:
        books.apply(events)
    seconds = time.perf_counter() - start

    # Streams that carry both L3 order events and L2 level changes (the built-in simulator) must
    # describe one book: rebuild the L2 side too and compare.
    l2_l3_consistent = None
    if len(data.orders) and len(data.book):
        l2_books = build_books(MarketData(specs=data.specs, book=data.book), window_ticks)
        l2_books.apply(data.book)
        l2_l3_consistent = _l2_matches_l3(l2_books, books, data.specs)

    # No venue top-of-book stream (or L3 data): nothing to check against, reported as None.
    bbo = _compare_bbo(tops, data.bbo[bbo_rows]) if tops is not None else None
    return _result(data, books, bbo, seconds, load_seconds, l2_l3_consistent,
                   counts=(len(data.book), len(data.orders), len(data.trades)))


def _result(data: MarketData, books, bbo: BboCheck | None, seconds: float, load_seconds: float,
            l2_l3_consistent: bool | None, counts: tuple[int, int, int]) -> ReplayResult:
    """The ReplayResult of books rebuilt from `data`'s stream (the last part of a streamed one:
    its specs, rejections and gaps are the totals); counts: (level changes, order events, trades)."""
    counters = books.counters()
    rejected = dict(data.rejections.counts)
    notices = {}
    for status, count in counters["by_status"].items():
        if not count or status == "ok":
            continue
        if status in NOTICE_STATUSES:
            notices[status] = count
        else:
            rejected[f"book_{status}"] = count
    final = {}
    if len(data.specs) == 1:
        instrument, spec = next(iter(data.specs.items()))
        bid, bid_qty, ask, ask_qty = books.book(instrument).top()
        final = {
            "final_bid": None if bid == NO_BID_PRICE else spec.price_str(bid),
            "final_ask": None if ask == NO_ASK_PRICE else spec.price_str(ask),
            "final_bid_qty": None if bid == NO_BID_PRICE else spec.qty_str(bid_qty),
            "final_ask_qty": None if ask == NO_ASK_PRICE else spec.qty_str(ask_qty),
        }
    level_changes, order_events, trades = (int(n) for n in counts)
    return ReplayResult(
        source=", ".join(data.sources) or "(memory)",
        level=data.level if order_events == len(data.orders) else ("L3" if order_events else "L2"),
        events=level_changes + order_events + trades,
        messages=int(counters["messages"]),
        level_changes=level_changes,
        order_events=order_events,
        trades=trades,
        rejected=dict(sorted(rejected.items())),
        notices=notices,
        sequence_gaps=int(data.sequence_gaps),
        bbo=bbo,
        final_bid=final.get("final_bid"),
        final_ask=final.get("final_ask"),
        final_bid_qty=final.get("final_bid_qty"),
        final_ask_qty=final.get("final_ask_qty"),
        seconds=seconds,
        load_seconds=load_seconds,
        book_counters=counters,
        l2_l3_consistent=l2_l3_consistent,
    )


def _l2_matches_l3(l2_books, books, instruments) -> bool:
    return all(l2_books.book(i).top() == books.book(i).top() and
               np.array_equal(l2_books.book(i).depth("bid", 50), books.book(i).l2_depth("bid", 50)) and
               np.array_equal(l2_books.book(i).depth("ask", 50), books.book(i).l2_depth("ask", 50))
               for i in instruments)


class _BboMatcher:
    """The BBO check of a streamed replay: each venue BBO record is compared with the rebuilt top
    at the end of the last book message carrying its update id (as bbo_check_positions does over a
    whole recording), looked up in the message ends of the current and the previous part; a record
    whose message has not come yet waits one part."""

    def __init__(self) -> None:
        self.check = BboCheck()
        self._ends: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []   # (instrument, seq, tops) per part
        self._pending = np.zeros(0, BBO_EVENT)

    def ends_of(self, book: np.ndarray) -> np.ndarray:
        return np.flatnonzero(book["flags"] & FLAG_LAST).astype(np.int64)

    def add_part(self, book: np.ndarray, ends: np.ndarray, tops: np.ndarray, bbo: np.ndarray) -> None:
        self._ends = [*self._ends[-1:], (book["instrument"][ends], book["seq"][ends], tops)]
        inst = np.concatenate([e[0] for e in self._ends])
        seq = np.concatenate([e[1] for e in self._ends])
        all_tops = np.concatenate([e[2] for e in self._ends])
        rows = np.concatenate([self._pending, bbo])
        hit = np.full(len(rows), -1, np.int64)
        for instrument in np.unique(rows["instrument"]):
            mine = np.flatnonzero(rows["instrument"] == instrument)
            at = np.flatnonzero(inst == instrument)
            if not len(at):
                continue
            order = np.argsort(seq[at], kind="stable")
            sorted_seq = seq[at][order]
            k = np.searchsorted(sorted_seq, rows["seq"][mine], side="right") - 1
            ok = k >= 0
            ok[ok] = sorted_seq[k[ok]] == rows["seq"][mine][ok]
            hit[mine[ok]] = at[order][k[ok]]
        found = hit >= 0
        # the part's own rows may wait one part for their message; older ones never matched
        self._pending = bbo[~found[len(self._pending):]]
        if found.any():
            order = np.argsort(hit[found], kind="stable")
            part = _compare_bbo(all_tops[hit[found]][order], rows[found][order])
            if self.check.first_mismatch is None:
                self.check.first_mismatch = part.first_mismatch
            self.check.checked += part.checked
            self.check.matched += part.matched
            self.check.price_matched += part.price_matched


def replay_parts(parts: Iterable[MarketData], check_bbo: bool = False, window_ticks: int = 1 << 17,
                 progress: bool = False) -> ReplayResult:
    """replay() over a recording given as consecutive MarketData parts (bot4.sources.stream_parts):
    the books carry across parts and each part is dropped once applied, so memory holds one part.
    Counts, rejections, notices and the final top equal replay()'s over the whole recording; the
    BBO check matches each venue record within one part of its book message (on the reference
    BTCUSDT recording: the same 629 checks). L3 or L2, and the instruments, are the first part's."""
    import sys

    started = shown = time.perf_counter()   # reading the parts counts as load time
    it = iter(parts)
    first = next(it, None)
    if first is None:
        raise ValueError("no parts to replay")
    l3 = len(first.orders) > 0
    books = build_books(first, window_ticks)
    l2_books = build_books(MarketData(specs=first.specs, book=first.book), window_ticks) if l3 else None
    matcher = _BboMatcher() if check_bbo and not l3 else None
    counts = [0, 0, 0]
    seconds = 0.0
    last = first
    both = False
    for part in _chain(first, it):
        last = part
        start = time.perf_counter()
        if l3:
            books.apply(part.orders)
            if len(part.book) and l2_books is not None:
                both = True
                l2_books.apply(part.book)
        elif matcher is not None and len(part.book):
            ends = matcher.ends_of(part.book)
            tops = books.apply(part.book, ends)
            matcher.add_part(part.book, ends, tops, part.bbo)
        else:
            books.apply(part.book)
        seconds += time.perf_counter() - start
        counts = [counts[0] + len(part.book), counts[1] + len(part.orders), counts[2] + len(part.trades)]
        now = time.perf_counter()
        if progress and now - shown >= 1.0:
            shown = now
            print(f"replay: {sum(counts):,} events, {sum(counts) / (now - started):,.0f} events/s",
                  file=sys.stderr, flush=True)
    consistent = _l2_matches_l3(l2_books, books, first.specs) if both else None
    bbo = matcher.check if matcher is not None else None
    return _result(last, books, bbo, seconds, time.perf_counter() - started - seconds, consistent,
                   counts=(counts[0], counts[1] if l3 else 0, counts[2]))


def _chain(first, rest):
    yield first
    yield from rest
