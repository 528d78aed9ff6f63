"""Cut a MarketData in time: a training part, a purge gap, and a trading part that starts from a
synthesised snapshot of the book at its first instant (so the engine starts on the true book)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bot4.data.market_data import MarketData, RejectionLog
from bot4.events import (ACTION_ADD, ASK, BID, BOOK_EVENT, FLAG_CLEAR, FLAG_LAST, FLAG_SNAPSHOT,
                         ORDER_EVENT)


@dataclass
class Split:
    """A recording cut in time into a training part and a trading part with a gap between them (times in ns
    of receive time)."""

    train: MarketData
    trade: MarketData
    cut_ns: int            # training events have receive time (running max of ts_local) < cut_ns
    start_ns: int          # trading events have receive time >= start_ns = cut_ns + gap_ns
    gap_ns: int
    train_events: int
    trade_events: int
    gap_events: int

    def as_json(self) -> dict:
        """The cut, gap and event counts as a JSON-able dict."""
        return {"cut_ns": int(self.cut_ns), "start_ns": int(self.start_ns), "gap_ns": int(self.gap_ns),
                "train_events": int(self.train_events), "trade_events": int(self.trade_events),
                "gap_events": int(self.gap_events)}


def _keys(a: np.ndarray) -> np.ndarray:
    """Receive-time key: running maximum of ts_local (a recording's ts_local can step back)."""
    if len(a) == 0:
        return np.zeros(0, np.int64)
    return np.maximum.accumulate(a["ts_local"])


def event_count(data: MarketData) -> int:
    """Book, order and trade events in `data` (BBO check records not counted)."""
    return int(len(data.book) + len(data.orders) + len(data.trades))


def time_at_fraction(data: MarketData, fraction: float) -> int:
    """The receive time by which `fraction` of the book, order and trade events have arrived."""
    keys = np.concatenate([_keys(data.book), _keys(data.orders), _keys(data.trades)])
    if keys.size == 0:
        raise ValueError("no events to split")
    keys.sort()
    return int(keys[min(int(fraction * keys.size), keys.size - 1)])


def _first_message_boundary(book: np.ndarray, i: int) -> int:
    """First index >= i that starts a book message (the record before it carries FLAG_LAST)."""
    n = len(book)
    while 0 < i < n and not (book["flags"][i - 1] & FLAG_LAST):
        i += 1
    return i


def _l2_snapshot(data: MarketData, book: np.ndarray, ts: int) -> np.ndarray:
    """The L2 book after `book`, as one snapshot message per instrument stamped at ts."""
    from bot4 import _core

    books = _core.book.BookSet()
    for instrument in data.specs:
        books.add(instrument, window_ticks=1 << 17)
    if len(book):
        books.apply(book)
    parts = []
    for instrument in data.specs:
        b = books.book(instrument)
        rows = []
        for side, name in ((BID, "bid"), (ASK, "ask")):
            n = b.level_count(name)
            if n:
                depth = np.asarray(b.depth(name, n)).reshape(-1, 2)
                for price, qty in depth:
                    if qty > 0:
                        rows.append((side, int(price), int(qty)))
        if not rows:
            continue
        snap = np.zeros(len(rows), BOOK_EVENT)
        snap["ts_local"] = ts
        snap["ts_exchange"] = ts
        snap["instrument"] = instrument
        snap["side"] = [r[0] for r in rows]
        snap["price"] = [r[1] for r in rows]
        snap["qty"] = [r[2] for r in rows]
        snap["flags"] = FLAG_SNAPSHOT
        snap["flags"][0] |= FLAG_CLEAR
        snap["flags"][-1] |= FLAG_LAST
        parts.append(snap)
    return np.concatenate(parts) if parts else np.zeros(0, BOOK_EVENT)


def _l3_snapshot(data: MarketData, orders: np.ndarray, ts: int) -> np.ndarray:
    """Every resting order after `orders`, as ADD events stamped at ts (queue order kept)."""
    from bot4 import _core

    books = _core.book.L3BookSet()
    for instrument in data.specs:
        books.add(instrument, window_ticks=1 << 17)
    if len(orders):
        books.apply(orders)
    recs = []
    for instrument in data.specs:
        b = books.book(instrument)
        for side, name in ((BID, "bid"), (ASK, "ask")):
            n = b.level_count(name)
            if not n:
                continue
            depth = np.asarray(b.l2_depth(name, n)).reshape(-1, 2)
            for price, _ in depth:
                for order_id, qty in b.level_orders(name, int(price)):
                    recs.append((instrument, side, int(price), int(order_id), int(qty)))
    snap = np.zeros(len(recs), ORDER_EVENT)
    if recs:
        snap["ts_local"] = ts
        snap["ts_exchange"] = ts
        snap["instrument"] = [r[0] for r in recs]
        snap["side"] = [r[1] for r in recs]
        snap["price"] = [r[2] for r in recs]
        snap["order_id"] = [r[3] for r in recs]
        snap["qty"] = [r[4] for r in recs]
        snap["action"] = ACTION_ADD
        snap["flags"] = FLAG_SNAPSHOT
        snap["flags"][-1] |= FLAG_LAST
    return snap


def _part(data: MarketData, book, orders, trades, bbo, note: str) -> MarketData:
    return MarketData(specs=dict(data.specs), book=book, orders=orders, trades=trades, bbo=bbo,
                      rejections=RejectionLog(), sequence_gaps=0,
                      sources=[f"{s} ({note})" for s in data.sources], venue=data.venue,
                      stats={"part": note})


def split_by_time(data: MarketData, train_fraction: float = 0.5, gap_ns: int = 0) -> Split:
    """Training part: events before the time by which `train_fraction` of events arrived; trading
    part: events from cut + gap_ns on, preceded by a snapshot of the book (L2 and, for L3 data,
    every resting order) as it stood at its start."""
    cut = time_at_fraction(data, train_fraction)
    start = cut + max(int(gap_ns), 0)
    kb, ko, kt, kq = _keys(data.book), _keys(data.orders), _keys(data.trades), _keys(data.bbo)
    ib_cut = _first_message_boundary(data.book, int(np.searchsorted(kb, cut, "left")))
    ib_start = _first_message_boundary(data.book, int(np.searchsorted(kb, start, "left")))
    io_cut, io_start = (int(np.searchsorted(ko, t, "left")) for t in (cut, start))
    it_cut, it_start = (int(np.searchsorted(kt, t, "left")) for t in (cut, start))
    iq_cut, iq_start = (int(np.searchsorted(kq, t, "left")) for t in (cut, start))
    train = _part(data, data.book[:ib_cut].copy(), data.orders[:io_cut].copy(),
                  data.trades[:it_cut].copy(), data.bbo[:iq_cut].copy(), "train part")
    if ib_start < len(data.book):
        snap_ts = int(data.book["ts_local"][ib_start])
    else:
        snap_ts = start
    book_snap = _l2_snapshot(data, data.book[:ib_start], snap_ts) if len(data.book) else data.book[:0]
    order_snap = _l3_snapshot(data, data.orders[:io_start], snap_ts) if len(data.orders) else data.orders[:0]
    trade = _part(data, np.concatenate([book_snap, data.book[ib_start:]]),
                  np.concatenate([order_snap, data.orders[io_start:]]),
                  data.trades[it_start:].copy(), data.bbo[iq_start:].copy(), "trade part")
    n_train = event_count(train)
    n_trade = len(data.book) - ib_start + len(data.orders) - io_start + len(data.trades) - it_start
    return Split(train=train, trade=trade, cut_ns=cut, start_ns=start, gap_ns=start - cut,
                 train_events=n_train, trade_events=int(n_trade),
                 gap_events=int(event_count(data) - n_train - n_trade))


def time_window(data: MarketData, start_ns: int, end_ns: int) -> MarketData:
    """The events with receive time in [start_ns, end_ns), preceded by a snapshot of the book (L2
    and, for L3 data, every resting order) as it stood at start_ns: a fold's test span traded
    from the true book."""
    if end_ns <= start_ns:
        raise ValueError(f"empty time window [{start_ns}, {end_ns})")
    kb, ko, kt, kq = _keys(data.book), _keys(data.orders), _keys(data.trades), _keys(data.bbo)
    ib0 = _first_message_boundary(data.book, int(np.searchsorted(kb, start_ns, "left")))
    ib1 = _first_message_boundary(data.book, int(np.searchsorted(kb, end_ns, "left")))
    io0, io1 = (int(np.searchsorted(ko, t, "left")) for t in (start_ns, end_ns))
    it0, it1 = (int(np.searchsorted(kt, t, "left")) for t in (start_ns, end_ns))
    iq0, iq1 = (int(np.searchsorted(kq, t, "left")) for t in (start_ns, end_ns))
    snap_ts = int(data.book["ts_local"][ib0]) if ib0 < len(data.book) else int(start_ns)
    book_snap = _l2_snapshot(data, data.book[:ib0], snap_ts) if len(data.book) else data.book[:0]
    order_snap = _l3_snapshot(data, data.orders[:io0], snap_ts) if len(data.orders) else data.orders[:0]
    return _part(data, np.concatenate([book_snap, data.book[ib0:ib1]]),
                 np.concatenate([order_snap, data.orders[io0:io1]]), data.trades[it0:it1].copy(),
                 data.bbo[iq0:iq1].copy(), f"window [{int(start_ns)}, {int(end_ns)})")


def truncate(data: MarketData, cut_ns: int) -> MarketData:
    """The recording as it stood at cut_ns: every event received before it (a prefix)."""
    kb, ko, kt, kq = _keys(data.book), _keys(data.orders), _keys(data.trades), _keys(data.bbo)
    ib = _first_message_boundary(data.book, int(np.searchsorted(kb, cut_ns, "left")))
    return _part(data, data.book[:ib].copy(), data.orders[:int(np.searchsorted(ko, cut_ns, "left"))].copy(),
                 data.trades[:int(np.searchsorted(kt, cut_ns, "left"))].copy(),
                 data.bbo[:int(np.searchsorted(kq, cut_ns, "left"))].copy(), f"before {int(cut_ns)}")


def perturb_after(data: MarketData, cut_ns: int, seed: int = 0) -> MarketData:
    """The recording with every event received at or after cut_ns scrambled (sizes multiplied by
    random factors 1..5, trade and book prices moved by -3..3 ticks): a future that differs from
    the recorded one, for checking that nothing computed before cut_ns reads it."""
    rng = np.random.default_rng(seed)

    def scramble(a: np.ndarray, fields) -> np.ndarray:
        a = a.copy()
        i = int(np.searchsorted(_keys(a), cut_ns, "left"))
        n = len(a) - i
        if n > 0:
            for f in fields:
                if f.endswith("qty"):
                    a[f][i:] = a[f][i:] * rng.integers(1, 6, n)
                else:
                    a[f][i:] = a[f][i:] + rng.integers(-3, 4, n)
        return a

    book = scramble(data.book, ("price", "qty"))
    return _part(data, book, scramble(data.orders, ("qty",)), scramble(data.trades, ("price", "qty")),
                 scramble(data.bbo, ("bid_qty", "ask_qty")), f"scrambled after {int(cut_ns)}")


def purge_gap_ns(data: MarketData, cut_ns: int, horizon: int, horizon_unit: str,
                 feature_config=None) -> int:
    """The purge gap after the cut, in ns, measured by label intervals (METHODS.md §1).

    A training row i (feature row time t_i < cut_ns) has the label window [t_i, t_end(i)], where
    t_end is the time of the feature row `horizon` rows later (horizon_unit "events") or the first
    row at or after t_i + horizon ("ns"), both taken on the feature rows of the whole stream, as
    bot4.research.labels.forward_labels defines them. The gap makes the trading part start after
    the last of these windows ends, so no label the model could be trained on shares an instant
    with the trading part. Rows are those of `feature_config` (decision points), computed here on
    the whole stream; features are causal, so the training part's own rows are a prefix of them.
    """
    from bot4.features import FeatureConfig, compute
    from bot4.research.labels import forward_labels, label_end_index

    fs = compute(data, feature_config or FeatureConfig())
    ts_all = np.asarray(fs.timestamps, dtype=np.int64)
    inst = np.asarray(fs.instruments)
    last = max((int(_keys(a)[-1]) for a in (data.book, data.orders, data.trades) if len(a)), default=cut_ns)
    end_max = int(cut_ns) - 1
    for i in np.unique(inst):
        ts = ts_all[inst == i]
        train_rows = int(np.searchsorted(ts, cut_ns, "left"))
        if train_rows == 0:
            continue
        _, end = forward_labels(ts, np.ones(ts.size), horizon, 0.0, horizon_unit)
        idx = label_end_index(ts, end, horizon_unit)[:train_rows]
        if np.any(idx >= ts.size):   # a window runs past the data: nothing after the cut is clean
            return max(last - int(cut_ns) + 1, 1)
        end_max = max(end_max, int(ts[idx].max()))
    return max(end_max - int(cut_ns) + 1, 1)
