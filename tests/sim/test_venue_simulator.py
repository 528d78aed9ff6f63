"""Venue simulator: own fills consume replayed liquidity (L2 overlay, shared prints) and the L3
venue mode with exact queue position (hand-built MBO sequences and the ES MBO file)."""

from __future__ import annotations


import numpy as np
import pytest

from bot4 import _core
from bot4.events import (
    ACTION_ADD, ACTION_CANCEL, ACTION_CLEAR, ACTION_EXECUTE, ACTION_MODIFY, ASK, BID, BOOK_EVENT,
    FLAG_LAST, FLAG_SNAPSHOT, NO_SIDE, ORDER_EVENT, TRADE_EVENT,
)

sim = _core.engine.simulate_orders
LIMIT, MARKET, STOP = 0, 1, 2
NEW, CANCEL, REPLACE = 0, 1, 2


# ---------------------------------------------------------------- builders
def book(*rows) -> np.ndarray:
    """rows: (ts, side, price, qty[, flags]); kLast on every row unless given."""
    ev = np.zeros(len(rows), BOOK_EVENT)
    for i, r in enumerate(rows):
        ts, side, price, qty = r[:4]
        ev[i]["ts_exchange"] = ev[i]["ts_local"] = ts
        ev[i]["side"], ev[i]["price"], ev[i]["qty"] = side, price, qty
        ev[i]["flags"] = r[4] if len(r) > 4 else FLAG_LAST
    return ev


def trades(*rows) -> np.ndarray:
    """rows: (ts, price, qty, aggressor)."""
    ev = np.zeros(len(rows), TRADE_EVENT)
    for i, (ts, price, qty, aggressor) in enumerate(rows):
        ev[i]["ts_exchange"] = ev[i]["ts_local"] = ts
        ev[i]["price"], ev[i]["qty"], ev[i]["aggressor"] = price, qty, aggressor
    return ev


def orders(*rows) -> np.ndarray:
    """rows: (ts, action, order_id, side, price, qty[, flags]); seq = row index."""
    ev = np.zeros(len(rows), ORDER_EVENT)
    for i, r in enumerate(rows):
        ts, action, oid, side, price, qty = r[:6]
        ev[i]["ts_exchange"] = ev[i]["ts_local"] = ts
        ev[i]["seq"] = i
        ev[i]["action"], ev[i]["order_id"], ev[i]["side"] = action, oid, side
        ev[i]["price"], ev[i]["qty"] = price, qty
        ev[i]["flags"] = r[6] if len(r) > 6 else FLAG_LAST
    return ev


def fills_of(res, oid=None):
    return [(f[0], f[1], f[2], f[3]) for f in res["fills"] if oid is None or f[0] == oid]


NO_TRADES = np.zeros(0, TRADE_EVENT)
NO_BOOK = np.zeros(0, BOOK_EVENT)
ASKS = [(1, ASK, 100, 2), (1, ASK, 101, 3), (1, ASK, 102, 4), (1, BID, 98, 5)]


# ---------------------------------------------------------------- L2: taker overlay
def test_two_market_orders_do_not_take_the_same_liquidity():
    b = book(*ASKS, (50, BID, 97, 1))
    res = sim(b, NO_TRADES, [(1, BID, MARKET, 0, 4, 5), (2, BID, MARKET, 0, 4, 6)], details=True)
    # the first takes 100x2 + 101x2; the second finds 101x1 left, then 102x3
    assert fills_of(res, 1) == [(1, 100, 2, False), (1, 101, 2, False)]
    assert fills_of(res, 2) == [(2, 101, 1, False), (2, 102, 3, False)]
    # a third market order for more than is left gets the remaining 102x1 and expires the rest
    res = sim(b, NO_TRADES, [(1, BID, MARKET, 0, 4, 5), (2, BID, MARKET, 0, 4, 6), (3, BID, MARKET, 0, 5, 7)],
              details=True)
    assert fills_of(res, 3) == [(3, 102, 1, False)]
    assert res["counters"]["market_expired"] == 1
    # a fourth finds the side fully consumed by us: rejected like a market order into an empty side
    res = sim(b, NO_TRADES, [(1, BID, MARKET, 0, 9, 5), (2, BID, MARKET, 0, 1, 6)], details=True)
    assert fills_of(res, 2) == [] and res["counters"]["rejects"] == 1


def test_a_book_update_at_a_consumed_level_resets_it():
    # after our buy took 100x2, the feed says 100 now holds 2 (authoritative): it can be taken again
    b = book(*ASKS, (10, ASK, 100, 2))
    res = sim(b, NO_TRADES, [(1, BID, MARKET, 0, 2, 5), (2, BID, MARKET, 0, 2, 20)], details=True)
    assert fills_of(res, 2) == [(2, 100, 2, False)]
    # an update at another level leaves the overlay at 100 in place
    b = book(*ASKS, (10, ASK, 102, 7))
    res = sim(b, NO_TRADES, [(1, BID, MARKET, 0, 2, 5), (2, BID, MARKET, 0, 2, 20)], details=True)
    assert fills_of(res, 2) == [(2, 101, 2, False)]


def test_limit_at_a_level_we_consumed_rests_and_is_not_crossed():
    b = book(*ASKS, (10, BID, 97, 1))
    res = sim(b, NO_TRADES, [(1, BID, MARKET, 0, 2, 5), (2, BID, LIMIT, 100, 1, 6)], details=True)
    # 100 is gone (ours): the limit is not marketable, rests at 100, and the kLast crossing test
    # at t=10 (best ask 100 replayed, but consumed) does not fill it
    assert fills_of(res, 2) == []
    assert res["resting"] == 1
    # a limit through the consumed level takes the next one as taker
    res = sim(b, NO_TRADES, [(1, BID, MARKET, 0, 2, 5), (2, BID, LIMIT, 101, 1, 6)], details=True)
    assert fills_of(res, 2) == [(2, 101, 1, False)]


# ---------------------------------------------------------------- L2: prints shared by own orders
def test_a_print_at_our_price_is_shared_by_our_orders_in_fifo_order():
    b = book((1, BID, 99, 5), (1, ASK, 101, 5))
    tr = trades((20, 99, 10, ASK))
    res = sim(b, tr, [(1, BID, LIMIT, 99, 3, 5), (2, BID, LIMIT, 99, 3, 6)], details=True)
    # 10 sold at 99: 5 ahead of both, then our first order (3), then 2 of the second
    assert fills_of(res) == [(1, 99, 3, True), (2, 99, 2, True)]
    # own FIFO is by arrival at the venue, not by id or request order in the list
    res = sim(b, tr, [(1, BID, LIMIT, 99, 3, 6), (2, BID, LIMIT, 99, 3, 5)], details=True)
    assert fills_of(res) == [(2, 99, 3, True), (1, 99, 2, True)]


def test_a_print_through_our_price_gives_at_most_its_qty_per_level():
    b = book((1, BID, 99, 5), (1, ASK, 101, 5))
    tr = trades((20, 98, 4, ASK))
    res = sim(b, tr, [(1, BID, LIMIT, 99, 3, 5), (2, BID, LIMIT, 99, 3, 6)], details=True)
    assert fills_of(res) == [(1, 99, 3, True), (2, 99, 1, True)]


def test_l2_queue_ahead_is_exposed():
    b = book((1, BID, 99, 5), (1, ASK, 101, 5), (30, BID, 99, 3))
    tr = trades((20, 99, 1, ASK))
    res = sim(b, tr, [(1, BID, LIMIT, 99, 2, 5)], details=True, trace_id=1)
    assert res["mode"] == "l2"
    # joins behind 5 when the print at t=20 comes (5 - 1 = 4), then the level drops to 3 (risk averse)
    assert res["trace_ahead"].tolist() == [-1, -1, 4, 3]


# ---------------------------------------------------------------- L3: exact queue position
A, M, C, E = ACTION_ADD, ACTION_MODIFY, ACTION_CANCEL, ACTION_EXECUTE
BASE = [
    (1, A, 11, BID, 100, 5),
    (1, A, 12, BID, 100, 3),
    (1, A, 13, BID, 99, 4),
    (1, A, 21, ASK, 102, 6),
]


def l3(rows, requests, tr=NO_TRADES, **kw):
    return sim(None, tr, requests, orders=orders(*BASE, *rows), details=True, **kw)


def ahead_after_orders(res):
    s, a = res["trace_stream"], res["trace_ahead"]
    return a[s == 1].tolist()


def test_l3_queue_ahead_moves_exactly():
    own = [(1, BID, LIMIT, 100, 2, 5)]  # arrives at t=5, behind 11 (5) and 12 (3)
    rows = [
        (10, A, 14, BID, 100, 4),     # added after us: behind, no change
        (20, C, 12, BID, 100, 1),     # partial cancel ahead: -1
        (30, C, 14, BID, 100, 4),     # cancel behind us: no change
        (40, M, 11, BID, 100, 4),     # modify down ahead keeps priority: -1
        (50, M, 12, BID, 100, 3),     # modify up ahead: loses priority, goes behind us: -2
        (60, M, 13, BID, 100, 4),     # reprice onto our level: behind us
        (70, E, 11, BID, 100, 1),     # executed ahead: -1
        (80, M, 11, BID, 101, 3),     # reprice away from our level: -3
    ]
    res = l3(rows, own, trace_id=1)
    assert res["mode"] == "l3"
    assert ahead_after_orders(res) == [-1] * 4 + [8, 7, 7, 6, 4, 4, 3, 0]
    assert res["counters"]["order_events"] == 12 and res["counters"]["book_rejected"] == 0


def test_l3_queue_ahead_equals_a_phantom_order_in_an_l3_book():
    rows = [(10, A, 14, BID, 100, 4), (20, C, 12, BID, 100, 1), (40, M, 11, BID, 100, 4),
            (50, M, 12, BID, 100, 3), (70, E, 11, BID, 100, 1), (80, C, 11, BID, 100, 3)]
    res = l3(rows, [(1, BID, LIMIT, 100, 2, 5)], trace_id=1)
    ev = orders(*BASE, *rows)
    b = _core.book.L3Book()
    b.apply(ev[:4])
    phantom = orders((5, A, 999, BID, 100, 2))
    phantom["seq"] = 3  # keeps the book's sequence check happy
    b.apply(phantom)
    expected = []
    for i in range(4, len(ev)):
        b.apply(ev[i:i + 1])
        expected.append(b.queue_ahead(999))
    assert ahead_after_orders(res)[4:] == expected


def test_l3_fill_after_the_queue_ahead_in_either_order_of_print_and_book_records():
    own = [(1, BID, LIMIT, 100, 2, 5)]  # 8 ahead
    tr = trades((20, 100, 9, ASK))
    # Databento style: the print, then the C/M records of its makers, at one ts_exchange
    rows = [(20, C, 11, BID, 100, 5), (20, C, 12, BID, 100, 3)]
    for trades_first in (True, False):
        res = l3(rows, own, tr, trades_first=trades_first)
        assert fills_of(res) == [(1, 100, 1, True)], trades_first
    # LOBSTER style: EXECUTE records and the print at one timestamp
    rows = [(20, E, 11, BID, 100, 5), (20, E, 12, BID, 100, 3)]
    for trades_first in (True, False):
        assert fills_of(l3(rows, own, tr, trades_first=trades_first)) == [(1, 100, 1, True)]
    # a print that only reaches orders ahead fills nothing, and neither do its book records
    tr = trades((20, 100, 6, ASK))
    rows = [(20, C, 11, BID, 100, 5), (20, C, 12, BID, 100, 1)]
    for trades_first in (True, False):
        res = l3(rows, own, tr, trace_id=1, trades_first=trades_first)
        assert fills_of(res) == [] and ahead_after_orders(res)[-1] == 2
    # the next print of 3 goes 2 to the rest ahead, 1 to us
    for trades_first in (True, False):
        res = l3(rows + [(30, C, 12, BID, 100, 2)], own, trades((20, 100, 6, ASK), (30, 100, 3, ASK)),
                 trades_first=trades_first)
        assert fills_of(res) == [(1, 100, 1, True)]


def test_l3_two_prints_in_one_match_timestamp():
    # two prints at our price at one timestamp: what they owe the queue ahead is paid back by the
    # book records that follow (or used up by those that came first)
    own = [(1, BID, LIMIT, 100, 5, 5)]  # 8 ahead
    tr = trades((20, 100, 4, ASK), (20, 100, 6, ASK))
    rows = [(20, C, 11, BID, 100, 5), (20, C, 12, BID, 100, 3)]
    for trades_first in (True, False):
        assert fills_of(l3(rows, own, tr, trades_first=trades_first)) == [(1, 100, 2, True)]
    # a print at a later timestamp does not reuse the earlier credit
    tr = trades((20, 100, 4, ASK), (25, 100, 6, ASK))
    rows = [(20, C, 11, BID, 100, 4)]
    assert fills_of(l3(rows, own, tr)) == [(1, 100, 2, True)]  # 8 - 4 = 4 ahead when 6 print


def test_l3_own_orders_fill_in_their_fifo_order():
    own = [(1, BID, LIMIT, 100, 2, 5), (2, BID, LIMIT, 100, 2, 15)]
    rows = [(10, A, 14, BID, 100, 1), (20, C, 11, BID, 100, 5), (20, C, 12, BID, 100, 3)]
    res = l3(rows, own, trades((20, 100, 11, ASK)), trace_id=2)
    # 11 sold: 8 ahead of both, our first (2), then order 14 (1, between), then 0 left for ours #2
    assert fills_of(res) == [(1, 100, 2, True)]
    res = l3(rows, own, trades((20, 100, 13, ASK)))
    assert fills_of(res) == [(1, 100, 2, True), (2, 100, 2, True)]


def test_l3_cross_and_through_prints_fill_as_maker():
    own = [(1, BID, LIMIT, 100, 3, 5)]
    # an ask added at our price rests through us (the book crosses): we trade as maker at 100
    res = l3([(20, A, 22, ASK, 100, 1)], own)
    assert fills_of(res) == [(1, 100, 3, True)]
    # a print below our price swept our level: filled up to the print's qty
    res = l3([], own, trades((20, 99, 2, ASK)))
    assert fills_of(res) == [(1, 100, 2, True)]
    # a buyer-initiated print at our bid price does not hit bids
    res = l3([(20, C, 11, BID, 100, 5), (20, C, 12, BID, 100, 3)], own, trades((20, 100, 9, BID)))
    assert fills_of(res) == []


def test_l3_taker_walks_the_l3_book_and_consumes_it():
    rows = [(2, A, 22, ASK, 102, 2), (2, A, 23, ASK, 103, 5), (50, A, 24, BID, 90, 1)]
    res = l3(rows, [(1, BID, MARKET, 0, 7, 5), (2, BID, MARKET, 0, 4, 6)])
    assert fills_of(res, 1) == [(1, 102, 7, False)]  # 6 + 2 at 102 aggregated from two orders: 8
    assert fills_of(res, 2) == [(2, 102, 1, False), (2, 103, 3, False)]
    # an order event at 102 (the feed's new size) resets what we consumed there
    res = l3(rows + [(60, C, 21, ASK, 102, 1)], [(1, BID, MARKET, 0, 7, 5), (2, BID, MARKET, 0, 4, 70)])
    assert fills_of(res, 2) == [(2, 102, 4, False)]


def test_l3_cancel_and_replace_requests():
    own = [(1, BID, LIMIT, 100, 2, 5), (1, BID, LIMIT, 100, 2, 25, REPLACE)]
    rows = [(10, A, 14, BID, 100, 4), (20, C, 11, BID, 100, 5), (30, C, 12, BID, 100, 1)]
    # a replace that keeps price and size keeps the place (8 -> 3 -> 2)
    res = l3(rows, own, trace_id=1)
    assert ahead_after_orders(res)[4:] == [8, 3, 2]
    # a replace that raises the size goes to the back (ahead 3 + 4 of order 14 at t=25)
    own = [(1, BID, LIMIT, 100, 2, 5), (1, BID, LIMIT, 100, 3, 25, REPLACE)]
    res = l3(rows, own, trace_id=1)
    assert ahead_after_orders(res)[4:] == [8, 3, 6]
    # a cancel removes it from the queue
    own = [(1, BID, LIMIT, 100, 2, 5), (1, BID, LIMIT, 100, 2, 25, CANCEL)]
    res = l3(rows, own, trace_id=1)
    assert ahead_after_orders(res)[4:] == [8, 3, -1]


def test_l3_clear_and_snapshot_rejoin_at_the_back():
    own = [(1, BID, LIMIT, 100, 2, 5)]
    snap = FLAG_SNAPSHOT
    rows = [(10, ACTION_CLEAR, 0, NO_SIDE, 0, 0),
            (10, A, 31, BID, 100, 3, snap), (10, A, 32, BID, 100, 4, snap | FLAG_LAST),
            (20, A, 33, BID, 100, 1), (30, C, 31, BID, 100, 3)]
    res = l3(rows, own, trace_id=1)
    assert ahead_after_orders(res)[4:] == [0, 3, 7, 7, 4]


def test_mode_is_taken_from_the_first_stream_and_the_other_is_ignored():
    res = sim(book((1, ASK, 100, 2)), NO_TRADES, [(1, BID, MARKET, 0, 1, 5)],
              orders=orders((2, A, 1, ASK, 50, 1)), details=True)
    assert res["mode"] == "l2" and res["counters"]["ignored_events"] == 1
    assert fills_of(res) == [(1, 100, 1, False)]
    res = sim(book((3, ASK, 100, 2)), NO_TRADES, [(1, BID, MARKET, 0, 1, 5)],
              orders=orders((2, A, 1, ASK, 50, 1)), details=True)
    assert res["mode"] == "l3" and res["counters"]["ignored_events"] == 1
    assert fills_of(res) == [(1, 50, 1, False)]
    res = sim(book((1, ASK, 100, 2)), NO_TRADES, [], orders=orders((2, A, 1, ASK, 50, 1)), mode="l3",
              details=True)
    assert res["mode"] == "l3" and res["counters"]["ignored_events"] == 1
    with pytest.raises(ValueError):
        sim(NO_BOOK, NO_TRADES, [], mode="l4")
    with pytest.raises(TypeError, match="ORDER_EVENT"):
        sim(NO_BOOK, NO_TRADES, [], orders=NO_BOOK)


# ---------------------------------------------------------------- L3 on real data (ES MBO)
ES_FILE = "databento_cme/esh4-glbx-mdp3-20231225.mbo.dbn.zst"
OPEN_NS = int(np.datetime64("2023-12-25T23:00:00", "ns").astype(np.int64))


@pytest.fixture(scope="module")
def es(shared_data):
    from bot4.data.databento_mbo import load_databento_mbo
    return load_databento_mbo(shared_data / ES_FILE)


def _join_point(o, after_ns):
    """Index j of the first live order event at or after `after_ns` whose ts_exchange differs from
    the previous event's, and an L3Book holding every event before j."""
    j = int(np.argmax(o["ts_exchange"] >= after_ns))
    while o[j]["ts_exchange"] == o[j - 1]["ts_exchange"]:
        j += 1
    b = _core.book.L3Book()
    b.apply(o[:j])
    return j, b


@pytest.mark.parametrize("minutes,ticks_below", [(5, 0), (30, 0), (10, 2)])
def test_es_queue_ahead_equals_phantom_order(es, minutes, ticks_below):
    o = es.orders
    live = o["ts_exchange"][(o["flags"] & FLAG_SNAPSHOT) == 0]
    assert np.all(np.diff(live) >= 0)  # the live part is in exchange order
    j, b = _join_point(o, OPEN_NS + minutes * 60 * 10**9)
    price = b.best_bid - ticks_below
    ts = int(o[j]["ts_exchange"])
    # our bid reaches the venue at ts (sent at ts - 1, 1 ns latency): after event j-1, before j
    res = sim(None, None, [(1, BID, LIMIT, price, 1, ts - 1)], latency_ns=1, orders=o, details=True,
              trace_id=1)
    assert res["mode"] == "l3" and res["counters"]["book_rejected"] == 0
    ours = res["trace_ahead"]
    assert ours[j - 1] == -1 and ours[j] >= 0
    phantom_id = 1 << 62
    ph = np.zeros(1, ORDER_EVENT)
    ph[0] = o[j - 1]
    ph[0]["action"], ph[0]["order_id"], ph[0]["side"] = ACTION_ADD, phantom_id, BID
    ph[0]["price"], ph[0]["qty"], ph[0]["flags"] = price, 1, 0
    b.apply(ph)
    assert b.queue_ahead(phantom_id) == b.qty_at("bid", price) - 1 > 0
    compared = changes = 0
    last = None
    for i in range(j, len(o)):
        if ours[i] < 0:  # the book crossed our order (filled as maker): stop
            break
        b.apply(o[i:i + 1])
        theirs = b.queue_ahead(phantom_id)
        assert ours[i] == theirs, f"event {i}: ours {ours[i]} vs phantom {theirs}"
        compared += 1
        changes += last is not None and theirs != last
        last = theirs
    assert compared >= 100 and changes >= 5, (compared, changes)


def test_es_fills_with_trades_are_maker_at_our_price_after_the_queue(es):
    o, t = es.orders, es.trades
    j, b = _join_point(o, OPEN_NS + 5 * 60 * 10**9)
    price = b.best_bid
    ts = int(o[j]["ts_exchange"])
    res = sim(None, t, [(1, BID, LIMIT, price, 3, ts - 1)], latency_ns=1, orders=o, details=True,
              trace_id=1)
    fills = [f for f in res["fills"] if f[0] == 1]
    assert fills and all(f[1] == price and f[3] for f in fills)
    assert sum(f[2] for f in fills) <= 3
    first = min(f[5] for f in fills)
    s, idx, ahead = res["trace_stream"], res["trace_index"], res["trace_ahead"]
    ts_of = np.where(s == 1, o["ts_exchange"][np.minimum(idx, len(o) - 1)],
                     t["ts_exchange"][np.minimum(idx, len(t) - 1)])
    resting = (ahead >= 0) & (ts_of < first)
    # the exact queue ahead only moves forward while we wait
    assert resting.sum() > 10 and np.all(np.diff(ahead[resting]) <= 0)
    # the prints at the fill's timestamp that hit our bid exceed what was ahead before them
    waiting = ahead[resting][-1]
    hits = t[(t["ts_exchange"] == first) & (t["price"] <= price) & (t["aggressor"] != BID)]
    assert len(hits) and (hits["price"].min() < price or hits["qty"].sum() > waiting)


def test_a_print_consumes_the_levels_it_traded_through():
    # a buyer-initiated print at 101 x 2: 100 was emptied (traded through) and 101 lost 2 lots;
    # until the feed updates them, our market buy finds 101 x 1, then 102
    b = book(*ASKS, (50, BID, 97, 1))
    t = trades((10, 101, 2, BID))
    res = sim(b, t, [(1, BID, MARKET, 0, 4, 20)], details=True)
    assert fills_of(res, 1) == [(1, 101, 1, False), (1, 102, 3, False)]
    # a feed update of 100 after the print makes it available again
    b2 = book(*ASKS, (15, ASK, 100, 2), (50, BID, 97, 1))
    res = sim(b2, t, [(1, BID, MARKET, 0, 4, 20)], details=True)
    assert fills_of(res, 1) == [(1, 100, 2, False), (1, 101, 1, False), (1, 102, 1, False)]
    # an unknown aggressor consumes nothing
    res = sim(b, trades((10, 101, 2, NO_SIDE)), [(1, BID, MARKET, 0, 4, 20)], details=True)
    assert fills_of(res, 1) == [(1, 100, 2, False), (1, 101, 2, False)]


def test_a_triggered_stop_never_trades_with_our_own_resting_order():
    # our resting sell limit at 101 (behind 3 lots) and our buy stop at 100: a buyer's print at 100
    # triggers the stop, whose market buy walks 100 x 2 then 101 -- where our own sell rests. The
    # venue expires our sell first (expire maker) and the stop fills from the others' liquidity.
    b = book(*ASKS, (50, BID, 97, 1))
    t = trades((10, 100, 1, BID))
    res = sim(b, t, [(1, ASK, LIMIT, 101, 2, 0), (2, BID, STOP, 100, 4, 0)], details=True)
    assert res["counters"]["stp_expired"] == 1
    assert fills_of(res, 1) == []                                   # never traded with the stop
    assert [f[1] for f in fills_of(res, 2)] == [100, 101]          # public liquidity only
    assert ("expire", 1) in [(r[0], r[1]) for r in res["responses"]]
    # a stop whose walk stops short of our resting order leaves it alone
    res = sim(b, t, [(1, ASK, LIMIT, 102, 2, 0), (2, BID, STOP, 100, 1, 0)], details=True)
    assert res["counters"]["stp_expired"] == 0 and fills_of(res, 2) == [(2, 100, 1, False)]
