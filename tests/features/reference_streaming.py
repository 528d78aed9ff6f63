"""Independent reference for the streaming feature families of bot4's FeatureEngine.

Written from the spec (the engine semantics in the test brief) and /work/shared/METHODS.md sections
4 (microstructure), 6 (GARCH) and 2(b) (truncation invariance), not from the C++.

Design (deliberately different from the engine's streaming updates):

1. ``replay`` walks the merged event sequence once and keeps only what is inherently sequential:
   a Python order book (dict + SortedDict for L2; FIFO queues with per-order sequence numbers for
   L3), the trade memory that explains L2 size decreases, and the L3 queue position of a phantom
   order placed at the back of each new best level. It returns *tables*: every message end
   (top-10 snapshot), every accepted trade, every order message, every cancel, with their merged
   position and key.
2. ``features`` then computes every column for a set of rows *vectorised over the whole series*:
   trailing time windows with cumulative sums + ``searchsorted`` on the key, sample windows with
   ``sliding_window_view``, EWMAs with pandas/scipy filters, GARCH with ``arch``, VPIN buckets by
   interpolating the cumulative buy volume at bucket boundaries.

State visible to a row: a row is identified by its *cut* c (the number of merged events applied
before it) and its time t. Rows at cut c come before the event at position c (several time-grid
rows can share a cut). To order rows against the per-event steps (trade maturation and VPIN bar
closes happen in an "advance" step just before an event is applied) every step gets an integer
stamp with S = rows + 2: row r at cut c -> c S + 1 + r; the advance of event e -> (e + 1) S - 1
(after every row with cut e, before every row with cut e + 1).

Only single-instrument input is supported (that is all the tests need).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from bot4.events import (
    ACTION_ADD,
    ACTION_CANCEL,
    ACTION_CLEAR,
    ACTION_EXECUTE,
    ACTION_MODIFY,
    ASK,
    BID,
    FLAG_CLEAR,
    FLAG_LAST,
    FLAG_SNAPSHOT,
)
from numpy.lib.stride_tricks import sliding_window_view
from scipy.signal import lfilter
from scipy.special import ndtr
from sortedcontainers import SortedDict

DEPTH = 10
I64_MIN = np.iinfo(np.int64).min
I64_MAX = np.iinfo(np.int64).max

BOOK_COLUMNS = (
    ["spread_ticks", "mid_ticks", "mid_price", "weighted_mid_offset", "microprice_offset",
     "microprice_momentum_1", "microprice_momentum_10", "queue_imbalance_l1"]
    + [f"depth_imbalance_{k}" for k in range(2, 11)]
    + ["book_slope_bid", "book_slope_ask", "depth_bid", "depth_ask"]
)
FLOW_COLUMNS = (
    ["ofi_l1", "ofi_l1_window", "ofi_l1_norm"] + [f"mlofi_{m}" for m in range(1, 11)]
    + ["signed_volume", "trade_imbalance", "trade_count", "order_to_trade",
       "cancel_count", "cancel_rate_baseline", "cancel_burst_z", "cancel_burst",
       "bid_life_age", "ask_life_age", "bid_last_life", "ask_last_life",
       "spread_state_age", "spread_state_last",
       "queue_ahead_bid", "queue_ahead_ask", "queue_age_bid", "queue_age_ask"]
)
LIQUIDITY_COLUMNS = ["kyle_lambda", "amihud", "roll_spread", "effective_spread", "effective_spread_ewm",
                     "realised_spread_ewm", "price_impact_ewm", "vpin"]
VOLATILITY_COLUMNS = ["log_return", "ewma_vol", "realized_vol", "parkinson_vol", "garch_variance"]
TECHNICAL_COLUMNS = ["ema_cross_5_20", "ema_cross_20_100", "rsi", "bollinger_z", "vwap_deviation"]
STREAMING_COLUMNS = BOOK_COLUMNS + FLOW_COLUMNS + LIQUIDITY_COLUMNS + VOLATILITY_COLUMNS + TECHNICAL_COLUMNS
# Integer-valued columns: compared exactly.
EXACT_COLUMNS = (
    {"spread_ticks", "mid_ticks", "depth_bid", "depth_ask", "ofi_l1", "ofi_l1_window",
     "signed_volume", "trade_count", "cancel_count", "cancel_burst"}
    | {f"mlofi_{m}" for m in range(1, 11)}
    | {"queue_ahead_bid", "queue_ahead_ask"}  # exact in the risk-averse model and on L3
)


# ------------------------------------------------------------------------------------------------
# merge
# ------------------------------------------------------------------------------------------------

def stream_keys(a: np.ndarray) -> np.ndarray:
    return np.maximum.accumulate(a["ts_local"]) if len(a) else np.zeros(0, np.int64)


def merge_streams(book, orders, trades):
    """(key, stream, index) of every event in processing order: the engine takes the smallest
    running-max key first, ties book < orders < trades. Keys are non-decreasing inside each stream,
    so this is a stable sort by (key, stream)."""
    keys = [stream_keys(a) for a in (book, orders, trades)]
    key = np.concatenate(keys)
    stream = np.concatenate([np.full(len(k), s, np.int8) for s, k in enumerate(keys)])
    index = np.concatenate([np.arange(len(k)) for k in keys])
    order = np.lexsort((index, stream, key))
    return key[order], stream[order], index[order]


# ------------------------------------------------------------------------------------------------
# books
# ------------------------------------------------------------------------------------------------

class RefL2Book:
    """L2 book with the documented integrity policy (core/book/l2_book.hpp)."""

    def __init__(self):
        self.levels = (SortedDict(), SortedDict())
        self.last_seq = None

    def qty(self, side, price):
        if side not in (0, 1):
            return 0
        return self.levels[side].get(price, 0)

    def best(self, side):
        lv = self.levels[side]
        if not lv:
            return None
        return lv.keys()[-1] if side == BID else lv.keys()[0]

    def apply(self, side, price, qty, seq, flags) -> bool:
        """Returns True when applied (including a delete of an absent level)."""
        if flags & FLAG_CLEAR:
            self.levels = (SortedDict(), SortedDict())
            self.last_seq = None
        if self.last_seq is not None and seq < self.last_seq:
            return False
        if qty < 0 or price <= 0 or price == I64_MAX or side not in (0, 1):
            return False
        self.last_seq = seq
        lv = self.levels[side]
        if qty == 0:
            lv.pop(price, None)
        else:
            lv[price] = qty
        if flags & FLAG_LAST:
            self._prune(side)
        return True

    def _prune(self, last_side):
        bids, asks = self.levels
        while bids and asks and bids.keys()[-1] >= asks.keys()[0]:
            if last_side == BID:  # the newest information (this side) wins
                del asks[asks.keys()[0]]
            else:
                del bids[bids.keys()[-1]]

    def top(self, side, n=DEPTH):
        lv = self.levels[side]
        keys = lv.keys()
        prices = list(reversed(keys[-n:])) if side == BID else list(keys[:n])
        return prices, [lv[p] for p in prices]


class RefL3Book:
    """Market-by-order book (core/book/l3_book.hpp semantics). Every resting order carries a FIFO
    number; an order is ahead of another at the same level iff its number is smaller. A phantom
    order per side (never in the book) sits at the back of the level where each best-price life
    began; its queue_ahead is the qty of the real orders at that level with a smaller number."""

    def __init__(self):
        self.orders = {}   # id -> [side, price, qty, fifo]
        self.levels = (SortedDict(), SortedDict())  # price -> total qty
        self.last_seq = None
        self.counter = 0
        self.phantom = [None, None]  # per side: [price, fifo, ahead]

    def best(self, side):
        lv = self.levels[side]
        if not lv:
            return None
        return lv.keys()[-1] if side == BID else lv.keys()[0]

    def top(self, side, n=DEPTH):
        lv = self.levels[side]
        keys = lv.keys()
        prices = list(reversed(keys[-n:])) if side == BID else list(keys[:n])
        return prices, [lv[p] for p in prices]

    def _level_add(self, side, price, dq):
        lv = self.levels[side]
        v = lv.get(price, 0) + dq
        if v == 0:
            lv.pop(price, None)
        else:
            lv[price] = v

    def _ahead_change(self, o, removed):
        ph = self.phantom[o[0]]
        if ph is not None and ph[0] == o[1] and o[3] < ph[1]:
            ph[2] -= removed

    def clear(self):
        self.orders = {}
        self.levels = (SortedDict(), SortedDict())
        self.last_seq = None
        for ph in self.phantom:
            if ph is not None:
                ph[2] = 0

    def apply(self, action, flags, seq, oid, side, price, qty) -> bool:
        snapshot = bool(flags & FLAG_SNAPSHOT)
        if self.last_seq is not None and seq < self.last_seq and not (flags & (FLAG_SNAPSHOT | FLAG_CLEAR)):
            return False
        if action == ACTION_ADD:
            if side not in (0, 1) or qty <= 0 or price <= 0 or price == I64_MAX:
                return False
            if flags & FLAG_CLEAR:
                self.clear()
            elif oid in self.orders:
                return False
            self.orders[oid] = [side, price, qty, self.counter]
            self.counter += 1
            self._level_add(side, price, qty)
        elif action == ACTION_MODIFY:
            if flags & FLAG_CLEAR or oid not in self.orders or qty < 0:
                return False
            o = self.orders[oid]
            if side != o[0] and side != 2:
                return False
            if qty == 0:
                self._ahead_change(o, o[2])
                self._level_add(o[0], o[1], -o[2])
                del self.orders[oid]
            else:
                if price <= 0 or price == I64_MAX:
                    return False
                if price == o[1] and qty <= o[2]:
                    self._ahead_change(o, o[2] - qty)
                    self._level_add(o[0], o[1], qty - o[2])
                    o[2] = qty
                else:  # loses priority: to the back of the (new) level
                    self._ahead_change(o, o[2])
                    self._level_add(o[0], o[1], -o[2])
                    o[1], o[2], o[3] = price, qty, self.counter
                    self.counter += 1
                    self._level_add(o[0], o[1], qty)
        elif action in (ACTION_CANCEL, ACTION_EXECUTE):
            if flags & FLAG_CLEAR or oid not in self.orders or qty < 0:
                return False
            o = self.orders[oid]
            removed = min(qty, o[2])
            self._ahead_change(o, removed)
            self._level_add(o[0], o[1], -removed)
            o[2] -= removed
            if o[2] == 0:
                del self.orders[oid]
        elif action == ACTION_CLEAR:
            self.clear()
        else:
            return False
        if not snapshot:
            self.last_seq = seq
        return True

    def join(self, side, price):
        """A new best-price life: the phantom goes to the back of the level."""
        self.phantom[side] = [price, self.counter, self.levels[side].get(price, 0)]
        self.counter += 1


# ------------------------------------------------------------------------------------------------
# the sequential pass
# ------------------------------------------------------------------------------------------------

@dataclass
class Replay:
    n: int                      # events of the instrument, merged
    key: np.ndarray             # their keys (non-decreasing)
    l3: bool
    first_key: int
    # message ends
    msg_pos: np.ndarray
    msg_key: np.ndarray
    nb: np.ndarray
    na: np.ndarray
    bid_px: np.ndarray          # (m, 10) int64, I64_MIN where missing
    bid_qty: np.ndarray         # (m, 10) int64, 0 where missing
    ask_px: np.ndarray          # (m, 10) int64, I64_MAX where missing
    ask_qty: np.ndarray
    # accepted trades
    tr_pos: np.ndarray
    tr_key: np.ndarray
    tr_price: np.ndarray
    tr_qty: np.ndarray
    tr_aggr: np.ndarray
    tr_mid: np.ndarray          # mid of the last message end before the trade (NaN if not two-sided)
    # order messages and cancels
    om_pos: np.ndarray
    om_key: np.ndarray
    cx_pos: np.ndarray
    cx_key: np.ndarray
    # events-since-row bookkeeping: every event of the instrument counts
    is_msg_end: np.ndarray      # bool per event
    # L3 queue (phantom) after every event: (n, 2)
    l3_queue_active: np.ndarray | None = None
    l3_queue_front: np.ndarray | None = None
    l3_queue_joined: np.ndarray | None = None
    counters: dict = field(default_factory=dict)


def replay(data, instrument: int | None = None) -> Replay:
    specs = data.specs
    if instrument is None:
        if len(specs) != 1:
            raise ValueError("reference handles one instrument")
        instrument = next(iter(specs))
    l3 = bool(len(data.orders)) and bool(np.any(data.orders["instrument"] == instrument))
    book, orders, trades = data.book, data.orders, data.trades
    key, stream, index = merge_streams(book, orders, trades)
    # the instrument's events; L3 instruments ignore book events, L2 ones order events
    inst = np.zeros(len(key), bool)
    for s, arr in enumerate((book, orders, trades)):
        m = stream == s
        if len(arr):
            inst[m] = arr["instrument"][index[m]] == instrument
    if l3:
        inst &= stream != 0
    else:
        inst &= stream != 1
    key, stream, index = key[inst], stream[inst], index[inst]
    n = len(key)
    # plain Python columns: indexing numpy records one at a time is the slow part of a loop
    B = {f: book[f].tolist() for f in ("side", "price", "qty", "flags", "seq")} if len(book) else {}
    O = ({f: orders[f].tolist() for f in ("action", "flags", "seq", "order_id", "side", "price", "qty")}
         if len(orders) else {})
    T = {f: trades[f].tolist() for f in ("price", "qty", "aggressor")} if len(trades) else {}
    stream_l, index_l, key_l = stream.tolist(), index.tolist(), key.tolist()

    msg_pos, msgs = [], []
    tr = []
    om_pos, cx_pos = [], []
    is_msg_end = [False] * n
    counters = {"trades_rejected": 0, "book_rejected": 0, "messages": 0, "one_sided_or_crossed": 0}
    snap_mid = math.nan
    traded = ({}, {})   # per book side: price -> remembered traded qty (insertion-ordered, <= 8)
    l2 = RefL2Book()
    lb = RefL3Book() if l3 else None
    q_state = []   # L3: (active, front, joined) per side after every event
    life_price = [None, None]   # for the L3 phantom: the current life's price per side

    for pos in range(n):
        s, i, t = stream_l[pos], index_l[pos], key_l[pos]
        if s == 2:
            price, qty, aggr = T["price"][i], T["qty"][i], T["aggressor"][i]
            if qty <= 0 or price <= 0:
                counters["trades_rejected"] += 1
            else:
                tr.append((pos, t, price, qty, aggr, snap_mid))
                if not l3 and aggr in (BID, ASK):
                    side = ASK if aggr == BID else BID   # a buyer lifts asks, a seller hits bids
                    mem = traded[side]
                    if price in mem:
                        mem[price] += qty
                    else:
                        if len(mem) == 8:
                            del mem[next(iter(mem))]
                        mem[price] = qty
        elif s == 0:
            side, price, qty, flags = B["side"][i], B["price"][i], B["qty"][i], B["flags"][i]
            counted = not (flags & (FLAG_SNAPSHOT | FLAG_CLEAR)) and side in (0, 1)
            before = l2.qty(side, price) if counted else 0
            if l2.apply(side, price, qty, B["seq"][i], flags):
                if counted:
                    om_pos.append(pos)
                    dec = before - qty
                    if dec > 0:
                        mem = traded[side]
                        if mem.get(price, 0) > 0:
                            take = min(dec, mem[price])
                            mem[price] -= take
                            dec -= take
                        if dec > 0:
                            cx_pos.append(pos)
            else:
                counters["book_rejected"] += 1
            if flags & FLAG_LAST:
                is_msg_end[pos] = True
        else:
            flags, action = O["flags"][i], O["action"][i]
            if lb.apply(action, flags, O["seq"][i], O["order_id"][i], O["side"][i], O["price"][i], O["qty"][i]):
                if not (flags & FLAG_SNAPSHOT) and action not in (ACTION_EXECUTE, ACTION_CLEAR):
                    om_pos.append(pos)
                    if action == ACTION_CANCEL or (action == ACTION_MODIFY and O["qty"][i] == 0):
                        cx_pos.append(pos)
            else:
                counters["book_rejected"] += 1
            if flags & FLAG_LAST:
                is_msg_end[pos] = True
        if is_msg_end[pos]:
            counters["messages"] += 1
            bk = lb if l3 else l2
            bp, bq = bk.top(BID)
            ap, aq = bk.top(ASK)
            msg_pos.append(pos)
            msgs.append((t, bp, bq, ap, aq))
            two = bool(bp) and bool(ap) and bp[0] < ap[0]
            snap_mid = 0.5 * (bp[0] + ap[0]) if two else math.nan
            if not two:
                counters["one_sided_or_crossed"] += 1
            if l3:
                for side, px in ((BID, bp), (ASK, ap)):
                    cur = px[0] if px else None
                    if cur is None:
                        life_price[side] = None
                        lb.phantom[side] = None
                    elif cur != life_price[side]:
                        life_price[side] = cur
                        lb.join(side, cur)
                        lb.phantom[side].append(t)  # join time
        if l3:
            b_, a_ = lb.phantom
            q_state.append((b_ is not None, b_[2] if b_ else 0, b_[3] if b_ else 0,
                            a_ is not None, a_[2] if a_ else 0, a_[3] if a_ else 0))

    m = len(msgs)
    q_active = q_front = q_joined = None
    if l3:
        q = np.array(q_state, dtype=np.int64).reshape(n, 6)
        q_active = q[:, [0, 3]].astype(bool)
        q_front = q[:, [1, 4]].astype(float)
        q_joined = q[:, [2, 5]]
    bid_px = np.full((m, DEPTH), I64_MIN, np.int64)
    ask_px = np.full((m, DEPTH), I64_MAX, np.int64)
    bid_qty = np.zeros((m, DEPTH), np.int64)
    ask_qty = np.zeros((m, DEPTH), np.int64)
    nb = np.zeros(m, np.int64)
    na = np.zeros(m, np.int64)
    for j, (_, bp, bq, ap, aq) in enumerate(msgs):
        nb[j], na[j] = len(bp), len(ap)
        bid_px[j, :len(bp)] = bp
        bid_qty[j, :len(bq)] = bq
        ask_px[j, :len(ap)] = ap
        ask_qty[j, :len(aq)] = aq
    tr_arr = np.array(tr, dtype=[("pos", "i8"), ("key", "i8"), ("price", "i8"), ("qty", "i8"),
                                 ("aggr", "i8"), ("mid", "f8")])
    om = np.array(om_pos, np.int64)
    cx = np.array(cx_pos, np.int64)
    return Replay(
        n=n, key=key, l3=l3, first_key=int(key[0]) if n else 0,
        msg_pos=np.array(msg_pos, np.int64), msg_key=np.array([x[0] for x in msgs], np.int64),
        nb=nb, na=na, bid_px=bid_px, bid_qty=bid_qty, ask_px=ask_px, ask_qty=ask_qty,
        tr_pos=tr_arr["pos"], tr_key=tr_arr["key"], tr_price=tr_arr["price"], tr_qty=tr_arr["qty"],
        tr_aggr=tr_arr["aggr"], tr_mid=tr_arr["mid"],
        om_pos=om, om_key=key[om] if len(om) else np.zeros(0, np.int64),
        cx_pos=cx, cx_key=key[cx] if len(cx) else np.zeros(0, np.int64),
        is_msg_end=np.array(is_msg_end, bool), l3_queue_active=q_active, l3_queue_front=q_front,
        l3_queue_joined=q_joined, counters=counters,
    )


# ------------------------------------------------------------------------------------------------
# rows
# ------------------------------------------------------------------------------------------------

@dataclass
class Rows:
    cut: np.ndarray   # events applied before the row
    t: np.ndarray     # row time (engine clock)

    @property
    def S(self):
        return len(self.cut) + 2

    @property
    def stamp(self):
        return self.cut * self.S + 1 + np.arange(len(self.cut))

    def event_stamp(self, e):
        return (np.asarray(e) + 1) * self.S - 1


def decision_rows(rep: Replay, cfg) -> Rows:
    mode = cfg.decision
    if mode == "message":
        return Rows(rep.msg_pos + 1, rep.msg_key.copy())
    if mode == "none":
        return Rows(np.zeros(0, np.int64), np.zeros(0, np.int64))
    if mode == "events":
        cuts = []
        since = 0
        ends = set(rep.msg_pos.tolist())
        for pos in range(rep.n):
            since += 1
            if pos in ends and since >= cfg.decision_every_n:
                cuts.append(pos + 1)
                since = 0
        cuts = np.array(cuts, np.int64)
        return Rows(cuts, rep.key[cuts - 1] if len(cuts) else np.zeros(0, np.int64))
    if mode == "time":
        step = cfg.decision_interval_ns
        if rep.n == 0:
            return Rows(np.zeros(0, np.int64), np.zeros(0, np.int64))
        first = (rep.first_key // step + 1) * step
        grid = np.arange(first, int(rep.key[-1]), step, dtype=np.int64)  # g < last key: an event follows
        cut = np.searchsorted(rep.key, grid, side="right")
        return Rows(cut.astype(np.int64), grid)
    raise ValueError(mode)


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------

def _count_before(pos, cut):
    """Number of table entries applied before each cut (entries with pos < cut)."""
    return np.searchsorted(pos, cut, side="left")


def _window(pos, key, cut, t, width):
    """(lo, hi) entry ranges of a table for the window (t - width, t] as seen at each cut."""
    hi = np.searchsorted(pos, cut, side="left")
    lo = np.minimum(np.searchsorted(key, t - width, side="right"), hi)
    return lo, hi


def _csum(v):
    return np.concatenate([[0], np.cumsum(v)])


def _take(values, idx, fill=np.nan):
    """values[idx] with idx < 0 -> fill."""
    out = np.full(len(idx), fill, dtype=float)
    ok = idx >= 0
    out[ok] = values[idx[ok]]
    return out


def _ewm(x, alpha):
    """y0 = x0, y_k = (1 - alpha) y_{k-1} + alpha x_k."""
    if len(x) == 0:
        return np.zeros(0)
    return pd.Series(x, dtype=float).ewm(alpha=alpha, adjust=False).mean().to_numpy()


# ------------------------------------------------------------------------------------------------
# the features
# ------------------------------------------------------------------------------------------------

def features(rep: Replay, cfg, rows: Rows | None = None, tick_size: float = 1.0,
             lot_size: float = 1.0, engine_sample_order: bool = False) -> tuple[Rows, dict[str, np.ndarray]]:
    """All streaming columns at the decision rows of `cfg` (or the given rows).

    engine_sample_order: diagnosis only. With a sample grid and a time grid, let a row see every
    grid sample taken before it in processing order even when the sample is dated after the row
    (what the engine did when this was written); the spec value is False.
    """
    rows = decision_rows(rep, cfg) if rows is None else rows
    out: dict[str, np.ndarray] = {}
    R = len(rows.cut)
    depth = min(max(cfg.depth_levels, 1), DEPTH)

    # ---- snapshots (only the configured depth is captured) ----
    nb = np.minimum(rep.nb, depth)
    na = np.minimum(rep.na, depth)
    lvl = np.arange(DEPTH)
    bid_px = np.where(lvl < nb[:, None], rep.bid_px, I64_MIN)
    ask_px = np.where(lvl < na[:, None], rep.ask_px, I64_MAX)
    bid_q = np.where(lvl < nb[:, None], rep.bid_qty, 0)
    ask_q = np.where(lvl < na[:, None], rep.ask_qty, 0)
    two = (nb > 0) & (na > 0) & (bid_px[:, 0] < ask_px[:, 0])
    msg_mid = np.where(two, 0.5 * (bid_px[:, 0].astype(float) + ask_px[:, 0].astype(float)), np.nan)
    M = len(rep.msg_pos)

    def snap_at(cut):  # index of the last message end applied before the cut (-1: none)
        return _count_before(rep.msg_pos, cut) - 1

    def mid_at(cut):
        return _take(msg_mid, snap_at(cut))

    si = snap_at(rows.cut)
    has = si >= 0
    s2 = np.where(has, si, 0)
    row_two = has & two[s2]

    # ---- book ----
    bb = bid_px[s2, 0].astype(float)
    ba = ask_px[s2, 0].astype(float)
    qb = bid_q[s2, 0].astype(float)
    qa = ask_q[s2, 0].astype(float)
    np.full(R, np.nan)
    mid = np.where(row_two, 0.5 * (bb + ba), np.nan)
    out["spread_ticks"] = np.where(row_two, ba - bb, np.nan)
    out["mid_ticks"] = mid
    out["mid_price"] = mid * tick_size
    with np.errstate(invalid="ignore", divide="ignore"):
        imb = qb / (qb + qa)
        out["weighted_mid_offset"] = np.where(row_two, imb * ba + (1 - imb) * bb - mid, np.nan)
        out["queue_imbalance_l1"] = np.where(row_two, (qb - qa) / (qb + qa), np.nan)
    g_msg = microprice_table_lookup(cfg.microprice, two, rep.ask_px[:, 0] - rep.bid_px[:, 0],
                                    rep.bid_qty[:, 0], rep.ask_qty[:, 0])
    out["microprice_offset"] = np.where(row_two, _take(g_msg, si), np.nan)
    cb = np.cumsum(bid_q, axis=1).astype(float)
    ca = np.cumsum(ask_q, axis=1).astype(float)
    for k in range(2, 11):
        ok = row_two & (k <= depth) & (nb[s2] >= k) & (na[s2] >= k)
        with np.errstate(invalid="ignore", divide="ignore"):
            v = (cb[s2, k - 1] - ca[s2, k - 1]) / (cb[s2, k - 1] + ca[s2, k - 1])
        out[f"depth_imbalance_{k}"] = np.where(ok, v, np.nan)
    for name, px, cum, cnt in (("book_slope_bid", bid_px, cb, nb), ("book_slope_ask", ask_px, ca, na)):
        # centred OLS slope over the occupied levels of each row (masked, vectorised)
        k = cnt[s2].astype(float)
        mask = lvl[None, :] < cnt[s2][:, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            x = np.where(mask, np.abs(px[s2].astype(float) - mid[:, None]), 0.0)
            y = np.where(mask, cum[s2], 0.0)
            xc = np.where(mask, x - x.sum(axis=1, keepdims=True) / k[:, None], 0.0)
            yc = np.where(mask, y - y.sum(axis=1, keepdims=True) / k[:, None], 0.0)
            den = np.sum(xc * xc, axis=1)
            slope = np.sum(xc * yc, axis=1) / den
        out[name] = np.where(row_two & (k >= 3) & (den > 0), slope, np.nan)
    out["depth_bid"] = np.where(has & (nb[s2] > 0), bid_q[s2].sum(axis=1), np.nan)
    out["depth_ask"] = np.where(has & (na[s2] > 0), ask_q[s2].sum(axis=1), np.nan)

    # ---- OFI / MLOFI: e^m_n between consecutive two-sided message ends (float sentinels) ----
    fb = np.where(lvl < nb[:, None], rep.bid_px.astype(float), -np.inf)
    fa = np.where(lvl < na[:, None], rep.ask_px.astype(float), np.inf)
    e = np.zeros((M, DEPTH), np.int64)
    chain = np.zeros(M, bool)
    if M > 1:
        chain[1:] = two[1:] & two[:-1]
        pb, pa, pqb, pqa = fb[:-1], fa[:-1], bid_q[:-1], ask_q[:-1]
        cb_, ca_, cqb, cqa = fb[1:], fa[1:], bid_q[1:], ask_q[1:]
        e[1:] = (np.where(cb_ >= pb, cqb, 0) - np.where(cb_ <= pb, pqb, 0)
                 - np.where(ca_ <= pa, cqa, 0) + np.where(ca_ >= pa, pqa, 0))
    e[~chain] = 0
    e_pos, e_key = rep.msg_pos[chain], rep.msg_key[chain]
    e_val = e[chain]
    l1_depth = (bid_q[:, 0] + ask_q[:, 0])[chain]
    # since the previous row
    hi = _count_before(e_pos, rows.cut)
    lo = np.concatenate([[0], hi[:-1]])
    cs = _csum(e_val[:, 0])
    out["ofi_l1"] = np.where(hi > lo, (cs[hi] - cs[lo]).astype(float), np.nan)
    W = cfg.flow_window_ns
    full = rows.t - rep.first_key >= W
    lo, hi = _window(e_pos, e_key, rows.cut, rows.t, W)
    have = full & (hi > lo)
    win = np.where(have, _csum(e_val[:, 0])[hi] - _csum(e_val[:, 0])[lo], 0).astype(float)
    out["ofi_l1_window"] = np.where(have, win, np.nan)
    dsum = _csum(l1_depth)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_depth = 0.5 * (dsum[hi] - dsum[lo]) / (hi - lo)
        out["ofi_l1_norm"] = np.where(have & (mean_depth > 0), win / mean_depth, np.nan)
    for m in range(DEPTH):
        c = _csum(e_val[:, m])
        out[f"mlofi_{m + 1}"] = np.where(have & (m < depth), (c[hi] - c[lo]).astype(float), np.nan)

    # ---- trade flow ----
    sign = np.where(rep.tr_aggr == BID, 1, np.where(rep.tr_aggr == ASK, -1, 0))
    lo, hi = _window(rep.tr_pos, rep.tr_key, rows.cut, rows.t, W)
    sv = _csum(sign * rep.tr_qty)
    vol = _csum(rep.tr_qty)
    signed = (sv[hi] - sv[lo]).astype(float)
    volume = (vol[hi] - vol[lo]).astype(float)
    count = (hi - lo).astype(float)
    out["signed_volume"] = np.where(full, signed, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["trade_imbalance"] = np.where(full & (volume > 0), signed / volume, np.nan)
    olo, ohi = _window(rep.om_pos, rep.om_key, rows.cut, rows.t, W)
    out["order_to_trade"] = np.where(full, (ohi - olo) / np.maximum(count, 1), np.nan)
    out["trade_count"] = np.where(full, count, np.nan)

    # ---- cancels ----
    Wc, B = cfg.cancel_window_ns, cfg.cancel_baseline_ns
    lo, hi = _window(rep.cx_pos, rep.cx_key, rows.cut, rows.t, Wc)
    blo = np.minimum(np.searchsorted(rep.cx_key, rows.t - Wc - B, side="right"), lo)
    recent = (hi - lo).astype(float)
    base = (lo - blo).astype(float)
    age = rows.t - rep.first_key
    out["cancel_count"] = np.where(age >= Wc, recent, np.nan)
    cfull = age >= Wc + B
    rate = base * 1e9 / B            # cancels per second
    expected = base * Wc / B         # lambda W, in cancels
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(expected > 0, (recent - expected) / np.sqrt(expected), np.nan)
    burst = (recent >= cfg.cancel_burst_min) & ((expected == 0) | (z >= cfg.cancel_burst_z))
    out["cancel_rate_baseline"] = np.where(cfull, rate, np.nan)
    out["cancel_burst_z"] = np.where(cfull, z, np.nan)
    out["cancel_burst"] = np.where(cfull, burst.astype(float), np.nan)

    # ---- best-price lives and spread states (run-length encoding over message ends) ----
    for side, name, px, cnt in ((0, "bid", rep.bid_px[:, 0], rep.nb), (1, "ask", rep.ask_px[:, 0], rep.na)):
        present = cnt > 0
        prev_present = np.concatenate([[False], present[:-1]])
        prev_px = np.concatenate([[0], px[:-1]])
        start = present & (~prev_present | (px != prev_px))
        end = prev_present & (~present | (px != prev_px))
        age_s, last = _run_lengths(rep.msg_key, present, start, end, si, rows.t)
        out[f"{name}_life_age"] = age_s
        out[f"{name}_last_life"] = last
    state = np.where(two, rep.ask_px[:, 0] - rep.bid_px[:, 0], -1)
    prev_state = np.concatenate([[-1], state[:-1]])
    change = state != prev_state
    present = state >= 0
    start = present & change
    end = (prev_state >= 0) & change
    age_s, last = _run_lengths(rep.msg_key, present, start, end, si, rows.t)
    out["spread_state_age"] = age_s
    out["spread_state_last"] = last

    # ---- queue ----
    if rep.l3:
        ev = rows.cut - 1
        for side, name in ((0, "bid"), (1, "ask")):
            act = np.where(ev >= 0, rep.l3_queue_active[np.maximum(ev, 0), side], False)
            front = rep.l3_queue_front[np.maximum(ev, 0), side]
            joined = rep.l3_queue_joined[np.maximum(ev, 0), side]
            out[f"queue_ahead_{name}"] = np.where(act, np.maximum(front, 0), np.nan)
            out[f"queue_age_{name}"] = np.where(act, (rows.t - joined) * 1e-9, np.nan)
    else:
        qs = l2_queue(rep, cfg.queue_probabilistic, cfg.queue_power)
        for side, name in ((0, "bid"), (1, "ask")):
            stamp_pos = qs["pos"]
            k = _count_before(stamp_pos, rows.cut) - 1
            act = np.where(k >= 0, qs["active"][np.maximum(k, 0), side], False)
            front = qs["front"][np.maximum(k, 0), side]
            joined = qs["joined"][np.maximum(k, 0), side]
            out[f"queue_ahead_{name}"] = np.where(act, np.maximum(front, 0), np.nan)
            out[f"queue_age_{name}"] = np.where(act, (rows.t - joined) * 1e-9, np.nan)

    # ---- samples ----
    if cfg.sample_interval_ns == 0:
        samp_pos = rep.msg_pos[two]          # a sample at every two-sided message end
        samp_mid = msg_mid[two]
        samp_g = g_msg[two]
        samp_stamp = rows.event_stamp(samp_pos)   # before the row of the same message end (cut pos+1)
    else:
        step = cfg.sample_interval_ns
        g0 = (rep.first_key // step + 1) * step if rep.n else 0
        grid = np.arange(g0, int(rep.key[-1]) if rep.n else 0, step, dtype=np.int64)
        gcut = np.searchsorted(rep.key, grid, side="right")
        gm = mid_at(gcut)
        okg = np.isfinite(gm)
        samp_pos, samp_mid = gcut[okg] - 1, gm[okg]
        samp_g = _take(g_msg, snap_at(gcut[okg]))
        # a grid sample at s belongs before any row at time >= s with the same cut
        samp_stamp = gcut[okg] * rows.S    # taken before any row with the same cut
        samp_time = grid[okg]
    S = len(samp_mid)
    if cfg.sample_interval_ns == 0:
        ns = np.searchsorted(samp_stamp, rows.stamp, side="right")   # samples seen by each row
    else:
        # samples taken before the row *and* dated s <= t (the state as of s <= t); both keys are
        # monotone, so the count is the smaller of the two counts
        ns = np.searchsorted(samp_stamp, rows.stamp, side="right")
        if not engine_sample_order:
            ns = np.minimum(ns, np.searchsorted(samp_time, rows.t, side="right"))
    rets = np.log(samp_mid[1:] / samp_mid[:-1]) * cfg.return_scale if S > 1 else np.zeros(0)
    nr = np.maximum(ns - 1, 0)     # returns seen

    # ---- micro-price momentum: micro-price at the latest sample minus k samples before ----
    micro = samp_mid + samp_g
    for k_ in (1, 10):
        now, ago = _take(micro, ns - 1), _take(micro, ns - 1 - k_)
        out[f"microprice_momentum_{k_}"] = np.where(row_two & (ns - 1 - k_ >= 0), now - ago, np.nan)

    # ---- volatility ----
    out["log_return"] = _take(rets, nr - 1)
    ewv = _ewm(rets ** 2, 1 - cfg.ewma_lambda)
    out["ewma_vol"] = np.sqrt(_take(ewv, nr - 1))
    w = cfg.window
    rv = _rolling(rets, w, lambda x: np.sqrt(np.sum(x * x, axis=1)))
    out["realized_vol"] = _take(rv, nr - 1)
    k = cfg.range_samples
    pk = _rolling(samp_mid, k, lambda x: np.log(x.max(axis=1) / x.min(axis=1)) / math.sqrt(4 * math.log(2)) * 1e4)
    out["parkinson_vol"] = _take(pk, ns - 1)
    gv = garch_next_variance(rets, cfg.garch_omega, cfg.garch_alpha, cfg.garch_beta, cfg.garch_backcast)
    out["garch_variance"] = _take(gv, nr - 1)

    # ---- technical ----
    ema = {n: pd.Series(samp_mid).ewm(span=n, adjust=False).mean().to_numpy() for n in (5, 20, 100)}
    e5, e20, e100 = (_take(ema[n], ns - 1) for n in (5, 20, 100))
    out["ema_cross_5_20"] = np.where(ns >= 20, (e5 - e20) / e20 * 1e4, np.nan)
    out["ema_cross_20_100"] = np.where(ns >= 100, (e20 - e100) / e100 * 1e4, np.nan)
    out["rsi"] = _take(wilder_rsi(samp_mid, cfg.rsi_period), ns - 1)
    p = cfg.bollinger_period

    def boll(x):
        sd = x.std(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(sd > 0, (x[:, -1] - x.mean(axis=1)) / sd, np.nan)

    out["bollinger_z"] = _take(_rolling(samp_mid, p, boll), ns - 1)
    Wv = cfg.vwap_window_ns
    lo, hi = _window(rep.tr_pos, rep.tr_key, rows.cut, rows.t, Wv)
    pq = _csum(rep.tr_price * rep.tr_qty)
    qv = (vol[hi] - vol[lo]).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        vwap = (pq[hi] - pq[lo]) / qv
        out["vwap_deviation"] = np.where((rows.t - rep.first_key >= Wv) & (qv > 0) & np.isfinite(mid),
                                         (mid - vwap) / vwap * 1e4, np.nan)

    # ---- liquidity: Kyle, Amihud (per return interval) ----
    L = cfg.liquidity_samples
    notional = rep.tr_price.astype(float) * rep.tr_qty * (tick_size * lot_size)
    if S > 1:
        # return k (samples k-1 -> k) collects the trades applied after sample k-1, up to sample k
        ntr = _count_before(rep.tr_pos, samp_pos + 1)
        sv_c = _csum(sign * rep.tr_qty)
        nt_c = _csum(notional)
        isv = (sv_c[ntr[1:]] - sv_c[ntr[:-1]]).astype(float)
        inot = nt_c[ntr[1:]] - nt_c[ntr[:-1]]
    else:
        isv = inot = np.zeros(0)
    kyle = np.full(len(rets), np.nan)
    kyle_scale = np.full(len(rets), np.nan)   # sum |xc yc| / sum xc^2: the slope's rounding scale
    amihud = np.full(len(rets), np.nan)
    if len(rets) >= L:
        X = sliding_window_view(isv, L)
        Y = sliding_window_view(rets, L)
        Xc = X - X.mean(axis=1, keepdims=True)
        den = np.sum(Xc * Xc, axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            Yc = Y - Y.mean(axis=1, keepdims=True)
            kyle[L - 1:] = np.where(den > 0, np.sum(Xc * Yc, axis=1) / den, np.nan)
            kyle_scale[L - 1:] = np.where(den > 0, np.sum(np.abs(Xc * Yc), axis=1) / den, np.nan)
        Nt = sliding_window_view(inot, L)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.where(Nt > 0, np.abs(Y) / Nt * 1e6, 0.0)
        cnt = np.sum(Nt > 0, axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            amihud[L - 1:] = np.where(cnt > 0, ratio.sum(axis=1) / cnt, np.nan)
    out["kyle_lambda"] = _take(kyle, nr - 1)
    out["_kyle_scale"] = _take(kyle_scale, nr - 1)
    out["amihud"] = _take(amihud, nr - 1)

    # ---- Roll ----
    Rt = cfg.roll_trades
    dp = np.diff(rep.tr_price)
    roll = np.full(len(dp), np.nan)
    if len(dp) >= Rt:
        D = sliding_window_view(dp, Rt)          # the last Rt changes, oldest first
        x, y = D[:, 1:], D[:, :-1]               # pairs (dp_t, dp_{t-1})
        m_ = Rt - 1
        # exact integer covariance * m (m - 1): m sum(xy) - sum(x) sum(y)
        num = m_ * np.sum(x * y, axis=1) - np.sum(x, axis=1) * np.sum(y, axis=1)
        cov = num / (m_ * (m_ - 1))
        roll[Rt - 1:] = np.where(num < 0, 2 * np.sqrt(np.maximum(-cov, 0.0)), np.nan)
    ntr_row = _count_before(rep.tr_pos, rows.cut)
    out["roll_spread"] = _take(roll, ntr_row - 2)

    # ---- effective / realised spread, impact ----
    alpha = 1 - 2 ** (-1 / cfg.spread_halflife_trades)
    q = np.where(rep.tr_aggr == BID, 1.0, np.where(rep.tr_aggr == ASK, -1.0, 0.0))
    elig = (q != 0) & np.isfinite(rep.tr_mid) & (rep.tr_mid > 0)
    ep, eq, epx, em, ek = rep.tr_pos[elig], q[elig], rep.tr_price[elig].astype(float), rep.tr_mid[elig], rep.tr_key[elig]
    eff = 2 * eq * (epx - em) / em * 1e4
    k_eff = _count_before(ep, rows.cut) - 1
    out["effective_spread"] = _take(eff, k_eff)
    out["effective_spread_ewm"] = _take(_ewm(eff, alpha), k_eff)
    D_ = cfg.realised_horizon_ns
    due = ek + D_
    e_first = np.maximum(ep + 1, np.searchsorted(rep.key, due, side="right"))        # event position
    r_first = np.maximum(np.searchsorted(rows.cut, ep, side="right"),
                         np.searchsorted(rows.t, due, side="left"))                   # row index
    ev_stamp = np.where(e_first < rep.n, rows.event_stamp(e_first), np.iinfo(np.int64).max)
    row_stamp = np.where(r_first < R, rows.stamp[np.minimum(r_first, R - 1)] if R else 0,
                         np.iinfo(np.int64).max)
    mat_stamp = np.minimum(ev_stamp, row_stamp)
    mat_cut = np.where(ev_stamp <= row_stamp, e_first, rows.cut[np.minimum(r_first, max(R - 1, 0))] if R else 0)
    matured = mat_stamp < np.iinfo(np.int64).max
    m_mid = np.full(len(ep), np.nan)
    m_mid[matured] = mid_at(mat_cut[matured])
    use = matured & np.isfinite(m_mid)
    realised = 2 * eq[use] * (epx[use] - m_mid[use]) / em[use] * 1e4
    impact = 2 * eq[use] * (m_mid[use] - em[use]) / em[use] * 1e4
    k_mat = np.searchsorted(mat_stamp[use], rows.stamp, side="right") - 1
    out["realised_spread_ewm"] = _take(_ewm(realised, alpha), k_mat)
    out["price_impact_ewm"] = _take(_ewm(impact, alpha), k_mat)

    # ---- VPIN ----
    out["vpin"] = vpin_rows(rep, cfg, rows, mid_at)

    out["_returns_seen"] = nr        # bookkeeping for the tests, not a feature
    return rows, out


def microprice_table_lookup(table, two, spread, qb, qa):
    """g(I, spread) per snapshot from a Stoikov table (NaN without a table, off the table or when
    the book is not two-sided). Bucket = min(floor(I n), n - 1) over equal-width buckets of [0, 1]."""
    out = np.full(len(two), np.nan)
    if table is None or table.n_spreads <= 0 or table.n_imbalance <= 0:
        return out
    g = np.asarray(table.g, float).reshape(table.n_spreads, table.n_imbalance)
    ok = two & (spread >= 1) & (spread <= table.n_spreads)
    with np.errstate(invalid="ignore", divide="ignore"):
        imb = qb.astype(float) / (qb.astype(float) + qa.astype(float))
    bucket = np.minimum(np.floor(np.where(ok, imb, 0) * table.n_imbalance).astype(np.int64), table.n_imbalance - 1)
    out[ok] = g[spread[ok] - 1, bucket[ok]]
    return out


def _rolling(x, n, fn):
    """fn over the trailing windows of n values; out[i] = fn(x[i-n+1..i]), NaN before."""
    res = np.full(len(x), np.nan)
    if len(x) >= n:
        res[n - 1:] = fn(sliding_window_view(x, n))
    return res


def _run_lengths(msg_key, present, start, end, si, row_t):
    """Age of the current run and duration of the last completed run, both censoring the first
    run ever (it began before the data); evaluated at rows whose last message end is si."""
    M = len(msg_key)
    idx = np.arange(M)
    run_start_idx = np.maximum.accumulate(np.where(start, idx, -1))
    first_start = np.flatnonzero(start)[0] if start.any() else M
    censored_run = run_start_idx == first_start
    cur_start_key = np.where(run_start_idx >= 0, msg_key[np.maximum(run_start_idx, 0)], 0)
    # a run ending at message j began at the run start in force at j - 1
    prev_run = np.concatenate([[-1], run_start_idx[:-1]])
    dur = np.where(end & (prev_run >= 0) & (prev_run != first_start),
                   (msg_key - msg_key[np.maximum(prev_run, 0)]) * 1e-9, np.nan)
    last_idx = np.maximum.accumulate(np.where(np.isfinite(dur), idx, -1))
    last = np.where(last_idx >= 0, dur[np.maximum(last_idx, 0)], np.nan)
    ok = si >= 0
    s = np.maximum(si, 0)
    act = ok & present[s] & ~censored_run[s]
    age = np.where(act, (row_t - cur_start_key[s]) * 1e-9, np.nan)
    return age, np.where(ok, last[s], np.nan)


def l2_queue(rep: Replay, probabilistic=False, power=2.0):
    """Virtual order per side on L2 data (METHODS 4.13), state after every message end and trade."""
    ev = sorted([(int(p), 0, j) for j, p in enumerate(rep.msg_pos)]
                + [(int(p), 1, j) for j, p in enumerate(rep.tr_pos)])
    n = len(ev)
    active = np.zeros((n, 2), bool)
    front = np.zeros((n, 2))
    joined = np.zeros((n, 2), np.int64)
    pos = np.zeros(n, np.int64)
    st = [{"active": False, "price": None, "front": 0.0, "level": 0, "traded": 0, "joined": 0} for _ in range(2)]
    for k, (p, kind, j) in enumerate(ev):
        pos[k] = p
        if kind == 1:
            aggr = rep.tr_aggr[j]
            side = BID if aggr == ASK else ASK if aggr == BID else None   # sellers hit the bid
            if side is not None:
                s = st[side]
                if s["active"] and s["price"] == rep.tr_price[j]:
                    s["front"] -= rep.tr_qty[j]
                    s["traded"] += rep.tr_qty[j]
        else:
            t = rep.msg_key[j]
            for side, cnt, px, qty in ((BID, rep.nb, rep.bid_px, rep.bid_qty), (ASK, rep.na, rep.ask_px, rep.ask_qty)):
                s = st[side]
                if cnt[j] == 0:
                    s["active"] = False
                    continue
                price, size = int(px[j, 0]), int(qty[j, 0])
                if not s["active"] or s["price"] != price:
                    s.update(active=True, price=price, front=float(size), level=size, traded=0, joined=int(t))
                    continue
                s["front"] = queue_step(s["front"], s["level"], size, s["traded"], probabilistic, power)
                s["level"], s["traded"] = size, 0
        for side in (0, 1):
            active[k, side] = st[side]["active"]
            front[k, side] = st[side]["front"]
            joined[k, side] = st[side]["joined"]
    return {"pos": pos, "active": active, "front": front, "joined": joined}


def queue_step(front, prev, new, traded, probabilistic=False, power=2.0):
    """METHODS 4.13: the level went prev -> new with `traded` volume at it since the last change."""
    chg = (prev - new) - traded
    if not probabilistic or chg < 0:
        return min(front, new)
    back = prev - front
    f = lambda x: max(x, 0.0) ** power
    den = f(back) + f(front)
    prob = f(back) / den if den > 0 else 0.5
    return min(front - (1 - prob) * chg + min(back - prob * chg, 0.0), new)


def wilder_rsi(mids, period):
    """Wilder RSI after each sample (NaN until `period` changes; NaN if both averages are 0)."""
    out = np.full(len(mids), np.nan)
    ch = np.diff(mids)
    if len(ch) < period:
        return out
    gain, loss = np.maximum(ch, 0), np.maximum(-ch, 0)
    a = (period - 1) / period

    def smooth(x):
        first = x[:period].mean()
        rest, _ = lfilter([1 / period], [1, -a], x[period:], zi=[a * first])
        return np.concatenate([[first], rest])

    ag, al = smooth(gain), smooth(loss)
    with np.errstate(invalid="ignore", divide="ignore"):
        rsi = np.where(al == 0, 100.0, 100 - 100 / (1 + ag / al))
    rsi = np.where((ag + al) > 0, rsi, np.nan)
    out[period:] = rsi
    return out


def garch_next_variance(r, omega, alpha, beta, backcast_n):
    """sigma^2_{t+1} after each return (METHODS 6 recipe), NaN before backcast_n returns.

    The filter is arch's own GARCH(1,1) recursion (``GARCH.compute_variance``) with the backcast of
    the first ``backcast_n`` returns (``GARCH.backcast``) and *no* variance bounds: ``fix()`` clips
    sigma^2 into data-dependent bounds (upper >= 1 + max r^2, lower = EWMA / 1e6), which bind on
    tiny per-message returns, whereas the engine (and the spec) filter unbounded.
    """
    out = np.full(len(r), np.nan)
    if len(r) < backcast_n:
        return out
    from arch.univariate import GARCH

    r = np.ascontiguousarray(r, dtype=float)
    g = GARCH()
    bc = float(g.backcast(r[:backcast_n]))
    sigma2 = np.zeros(len(r))
    bounds = np.tile([0.0, np.inf], (len(r), 1))
    g.compute_variance(np.array([omega, alpha, beta], float), r, sigma2, bc, bounds)
    nxt = omega + alpha * r ** 2 + beta * sigma2
    out[backcast_n - 1:] = nxt[backcast_n - 1:]
    return out


def bvc_buckets(volumes, buy_fraction, V, keep_last=None):
    """Volume buckets of size V from classified bars (METHODS 4.4): a bar straddling a boundary
    is split proportionally with its buy fraction. Returns (|V_sell - V_buy| per completed bucket, index of the bar
    that completes it).

    keep_last=n drops the buckets followed by >= n later buckets completed by the same bar: no
    n-bucket window seen after any bar close can contain them (a single huge trade can complete
    billions of buckets)."""
    volumes = np.asarray(volumes, float)
    C = np.concatenate([[0.0], np.cumsum(volumes)])
    # bucket k completes when the cumulative volume reaches k V, up to 1e-12 V (the fill of one
    # bucket may fall short by rounding)
    through = np.floor(C[1:] / V + 1e-12).astype(np.int64)   # buckets completed after bar j
    ks, bars = [], []
    prev = 0
    for j, cur in enumerate(through):
        lo = prev + 1 if keep_last is None else max(prev + 1, cur - keep_last + 1)
        ks.append(np.arange(lo, cur + 1))
        bars.append(np.full(max(cur - lo + 1, 0), j))
        prev = max(prev, cur)
    k = np.concatenate(ks) if ks else np.zeros(0, np.int64)
    done_bar = np.concatenate(bars) if bars else np.zeros(0, np.int64)
    # buy volume of bucket k = sum over the bars overlapping [(k-1) V, k V] of overlap x fraction
    # (overlaps, not differences of the cumulative buy volume, which lose the small buckets of a
    # huge bar to cancellation)
    frac = np.asarray(buy_fraction, float)
    buy = np.zeros(len(k))
    for i, kk in enumerate(k):
        lo_v, hi_v = (kk - 1) * V, kk * V
        j0 = max(int(np.searchsorted(C, lo_v, side="right")) - 1, 0)
        j1 = min(int(np.searchsorted(C, hi_v, side="left")), len(volumes))
        lo = np.maximum(C[j0:j1], lo_v)
        hi = np.minimum(C[j0 + 1:j1 + 1], hi_v)
        buy[i] = float(np.sum(np.maximum(hi - lo, 0.0) * frac[j0:j1]))
    return np.abs(V - 2 * buy), done_bar


def vpin_rows(rep: Replay, cfg, rows: Rows, mid_at):
    """BVC-VPIN on vpin_bar_ns bars of the key clock, evaluated at the rows."""
    R = len(rows.cut)
    res = np.full(R, np.nan)
    if rep.n == 0:
        return res
    bar = cfg.vpin_bar_ns
    # "advance" calls in order: every event (before it is applied) and every row
    c_stamp = np.concatenate([rows.event_stamp(np.arange(rep.n)), rows.stamp])
    c_time = np.concatenate([rep.key, rows.t])
    c_cut = np.concatenate([np.arange(rep.n), rows.cut])
    order = np.lexsort((c_time, c_stamp))
    c_stamp, c_time, c_cut = c_stamp[order], c_time[order], c_cut[order]
    b = c_time // bar
    cur = np.maximum.accumulate(b)
    closing = np.concatenate([[False], b[1:] > cur[:-1]])
    first = int(c_time[0])
    auto_vol = float(rep.tr_qty[rep.tr_key < first + cfg.vpin_auto_ns].sum())
    trade_cum = _csum(rep.tr_qty)
    closes = np.flatnonzero(closing)
    V = float(cfg.vpin_bucket_lots) if cfg.vpin_bucket_lots > 0 else None
    open_mid = math.nan
    prev_n = 0
    history: list[float] = []
    bars = []   # (stamp, volume, buy fraction) of classified bars
    for c in closes:
        closing_bar = int(cur[c - 1])
        if V is None and (closing_bar + 1) * bar >= first + cfg.vpin_auto_ns:
            V = max(auto_vol / 10.0, 1.0)
        n_tr = _count_before(rep.tr_pos, np.array([c_cut[c]]))[0]
        volume = float(trade_cum[n_tr] - trade_cum[prev_n])
        prev_n = n_tr
        m = float(mid_at(np.array([c_cut[c]]))[0])
        dp = m - open_mid
        if math.isfinite(dp):
            if V is not None and len(history) >= cfg.vpin_sigma_bars and volume > 0:
                sigma = float(np.std(history[-cfg.vpin_sigma_bars:], ddof=1))
                if sigma > 0:
                    bars.append((int(c_stamp[c]), volume, float(ndtr(dp / sigma))))
            history.append(dp)
        if math.isfinite(m):
            open_mid = m
    if not bars or V is None:
        return res
    st = np.array([x[0] for x in bars], np.int64)
    vols = np.array([x[1] for x in bars])
    frac = np.array([x[2] for x in bars])
    n = cfg.vpin_buckets
    imb, done_bar = bvc_buckets(vols, frac, V, keep_last=n)
    if len(imb) < n:
        return res
    done_stamp = st[done_bar]
    vp = np.convolve(imb, np.ones(n), mode="valid") / (n * V)   # vp[j]: buckets j..j+n-1
    k_done = np.searchsorted(done_stamp, rows.stamp, side="right")   # buckets complete at the row
    ok = k_done >= n
    res[ok] = vp[k_done[ok] - n]
    return res
