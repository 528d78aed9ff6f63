"""Pending cancels (fills racing cancels), standalone OCO / OTO groups, self-trade prevention
across groups (held targets) and bounded memory: worked examples of issue 5."""
import pytest

from orders_ref import orders


def kinds(m):
    ev = m.drain_events()
    return [(orders.EVENT_KINDS[k], orders.ORDER_STATES[s], int(i)) for k, s, i in
            zip(ev["kind"], ev["state"], ev["order_id"])]


def bracket(m, cid=1, side="buy", qty=10, price=100, **kw):
    r = m.submit_bracket(cid, side, qty, price=price, **kw)
    assert r["status"] == "ok"
    return r["order_id"]


# ---- pending cancel --------------------------------------------------------------------------

def test_request_cancel_is_pending_until_confirmed():
    m = orders.OrderManager()
    oid = m.submit_limit(1, "buy", 100, 10)["order_id"]
    m.on_ack(oid)
    m.drain_events()
    assert m.request_cancel(oid) == "ok"
    assert m.order_state(oid) == "pending_cancel"
    assert kinds(m) == [("cancel", "pending_cancel", oid)]        # the request: forward it
    assert m.request_cancel(oid) == "cancel_pending"              # counted, not re-sent
    assert m.counters()["cancel_pending"] == 1 and kinds(m) == []
    assert m.on_fill(oid, 4, 100) == "ok"                         # in flight: still accounted
    assert m.order_state(oid) == "pending_cancel" and m.position == 4
    assert m.on_cancel(oid) == "ok"                               # the venue confirms
    assert kinds(m) == [("fill", "pending_cancel", oid), ("cancel", "cancelled", oid)]
    assert m.on_cancel(oid) == "closed_order"
    assert m.on_fill(oid, 1, 100) == "closed_order"
    assert m.position == 4 and m.live_orders == 0


def test_full_fill_wins_the_race():
    m = orders.OrderManager()
    oid = m.submit_limit(1, "sell", 100, 3)["order_id"]
    m.request_cancel(oid)
    assert m.on_fill(oid, 3, 101) == "ok"
    assert m.order_state(oid) == "filled"
    assert m.on_cancel(oid) == "closed_order"                     # the late confirmation
    assert m.counters()["closed_order"] == 1 and m.position == -3


def test_ack_and_reject_while_pending():
    m = orders.OrderManager()
    a = m.submit_limit(1, "buy", 100, 3)["order_id"]
    m.request_cancel(a)
    assert m.on_ack(a) == "ok"                                   # the ack was in flight
    assert m.order_state(a) == "pending_cancel"
    assert m.on_ack(a) == "illegal_transition"
    assert m.on_reject(a) == "illegal_transition"                # acked: can no longer be rejected
    b = m.submit_limit(2, "buy", 100, 3)["order_id"]
    m.request_cancel(b)
    assert m.on_expire(b) == "illegal_transition"                # never acked
    assert m.on_reject(b) == "ok" and m.order_state(b) == "rejected"


def test_entry_fill_racing_its_cancel_is_protected():
    """The issue's bug: a fill that was in flight when the entry was cancelled used to be refused
    (ClosedOrder) and left the position without legs."""
    m = orders.OrderManager({"stop_distance_ticks": 5, "target_distance_ticks": 7})
    e = bracket(m)
    m.on_ack(e)
    assert m.request_cancel(e) == "ok"
    assert m.on_fill(e, 3, 100) == "ok"
    g = m.legs(e)
    s, t = m.order(g["stop"]), m.order(g["target"])
    assert (s["qty"], t["qty"], s["price"], t["price"]) == (3, 3, 95, 107)
    assert (s["state"], t["state"]) == ("new", "new")
    assert m.on_cancel(e) == "ok"
    assert m.order_state(e) == "cancelled" and m.legs(e)["open"] == 3
    assert m.order_state(g["stop"]) == "new"


def test_leg_fill_cancels_entry_and_racing_entry_fill_grows_legs():
    m = orders.OrderManager({"stop_distance_ticks": 5, "target_distance_ticks": 5})
    e = bracket(m, qty=10)
    m.on_fill(e, 4, 100)
    g = m.legs(e)
    assert m.on_fill(g["target"], 1, 105) == "ok"
    assert m.order_state(e) == "pending_cancel"                  # exit started
    assert m.on_fill(e, 2, 100) == "ok"                          # but this fill was in flight
    open_qty = m.legs(e)["open"]
    assert open_qty == 5
    for leg in (g["stop"], g["target"]):
        o = m.order(leg)
        assert o["qty"] - o["filled"] == open_qty


def test_position_closed_then_racing_entry_fill_gets_a_fresh_pair():
    m = orders.OrderManager({"stop_distance_ticks": 2, "target_distance_ticks": 3})
    e = bracket(m, qty=10)
    m.on_fill(e, 4, 100)
    g = m.legs(e)
    assert m.on_fill(g["target"], 4, 103) == "ok"                # closes the position
    assert m.order_state(g["stop"]) == "pending_cancel"
    assert m.order_state(e) == "pending_cancel"
    assert m.on_fill(e, 2, 99) == "ok"                           # raced the entry cancel
    g2 = m.legs(e)
    assert g2["stop"] not in (g["stop"], None) and g2["target"] != g["target"]
    s, t = m.order(g2["stop"]), m.order(g2["target"])
    # VWAP 598/6 = 99.67: stop floor 99 - 2, target ceil 100 + 3
    assert (s["qty"], t["qty"], s["price"], t["price"]) == (2, 2, 97, 103)
    # the old stop's cancel is not confirmed yet: a fill on it (it triggered) still counts
    assert m.on_fill(g["stop"], 3, 97) == "overfill"             # only 2 are open
    assert m.on_fill(g["stop"], 1, 97) == "ok"
    assert m.legs(e)["open"] == 1
    assert m.order(g2["stop"])["qty"] == 1 and m.order(g2["target"])["qty"] == 1
    assert m.position == 1


def test_cancel_all_is_pending_and_halts_groups():
    m = orders.OrderManager()
    e = bracket(m, qty=4)
    m.on_fill(e, 2, 100)
    assert m.cancel_all() == 3                                   # entry rest, stop, target
    g = m.legs(e)
    assert {m.order_state(i) for i in (e, g["stop"], g["target"])} == {"pending_cancel"}
    assert m.legs(e)["halted"]
    assert m.on_fill(e, 2, 100) == "ok"                          # racing fill: accounted, the
    assert m.legs(e)["stop"] == g["stop"]                        # caller (kill switch) owns it
    assert m.position == 4


def test_legacy_mode_cancels_at_once():
    m = orders.OrderManager({"confirm_cancels": False})
    oid = m.submit_limit(1, "buy", 100, 10)["order_id"]
    assert m.request_cancel(oid) == "ok" and m.order_state(oid) == "cancelled"
    assert kinds(m)[-1] == ("cancel", "cancelled", oid)


# ---- OCO -------------------------------------------------------------------------------------

def test_oco_fill_reduces_the_other_then_cancels_it():
    m = orders.OrderManager()
    r = m.submit_oco(1, ("sell", "limit", 105, 5), ("sell", "stop", 95, 5))
    assert r["status"] == "ok"
    a = r["order_id"]
    b = m.order(a)["oco_peer_id"]
    assert m.legs(a)["kind"] == "oco" and m.legs(a)["second"] == b
    assert (m.order(a)["role"], m.order(b)["type"]) == ("oco", "stop")
    m.drain_events()
    assert m.on_fill(a, 2, 105) == "ok"
    assert m.order(b)["qty"] == 3
    assert kinds(m) == [("fill", "partially_filled", a), ("replace", "new", b)]
    assert m.on_fill(b, 1, 94) == "ok"                            # the stop triggered
    assert m.order(a)["qty"] - m.order(a)["filled"] == 2
    assert m.on_fill(a, 2, 106) == "ok"
    assert m.order_state(b) == "pending_cancel"                   # nothing left: cancelled
    assert m.order(a)["filled"] + m.order(b)["filled"] == 5


def test_oco_cancel_of_one_leaves_the_other():
    m = orders.OrderManager()
    a = m.submit_oco(1, ("buy", "limit", 95, 3), ("buy", "stop", 105, 3))["order_id"]
    b = m.order(a)["oco_peer_id"]
    before = m.order(b)
    assert m.on_cancel(a) == "ok"
    assert m.order(b) == before
    assert m.on_reject(b) == "ok"
    assert m.legs(a)["done"]


def test_oco_with_market_leg_and_validation():
    m = orders.OrderManager()
    assert m.submit_oco(1, ("buy", "market", None, 2), ("sell", "limit", 100, 2))["status"] == "self_trade"
    assert m.submit_oco(2, ("buy", "limit", 101, 2), ("sell", "limit", 100, 2))["status"] == "self_trade"
    assert m.submit_oco(3, ("buy", "limit", 0, 2), ("buy", "stop", 100, 2))["status"] == "bad_price"
    assert m.submit_oco(4, ("buy", "limit", 90, 2), ("buy", "stop", 100, 0))["status"] == "bad_quantity"
    r = m.submit_oco(5, ("buy", "market", None, 2), ("buy", "stop", 100, 2))
    assert r["status"] == "ok"
    assert m.submit_oco(5, ("sell", "limit", 1, 1), ("sell", "limit", 2, 1)) == {**r, "duplicate": True}
    with pytest.raises(ValueError):
        m.submit_oco(6, ("buy", "iceberg", 1, 1), ("buy", "limit", 1, 1))


# ---- OTO -------------------------------------------------------------------------------------

def test_oto_child_released_on_first_fill_and_grown():
    m = orders.OrderManager()
    p = m.submit_oto(1, ("buy", "limit", 100, 6), ("sell", "limit", 110))["order_id"]
    assert m.legs(p)["second"] is None
    m.drain_events()
    m.on_fill(p, 2, 100)
    c = m.legs(p)["second"]
    child = m.order(c)
    assert (child["role"], child["side"], child["price"], child["qty"], child["parent_id"]) == \
        ("oto_child", "sell", 110, 2, p)
    assert kinds(m) == [("fill", "partially_filled", p), ("new", "new", c)]
    m.on_fill(p, 3, 99)
    assert m.order(c)["qty"] == 5
    assert kinds(m)[-1] == ("replace", "new", c)
    m.on_fill(c, 5, 110)                                          # child done
    m.on_fill(p, 1, 100)                                          # more parent: a new child
    c2 = m.legs(p)["second"]
    assert c2 != c and m.order(c2)["qty"] == 1


def test_oto_parent_cancelled_unfilled_never_sends_child():
    m = orders.OrderManager()
    p = m.submit_oto(1, ("buy", "limit", 100, 6), ("sell", "stop", 90))["order_id"]
    m.request_cancel(p)
    m.on_cancel(p)
    assert m.legs(p)["second"] is None and m.legs(p)["done"]
    assert [k for k, _, _ in kinds(m)] == ["new", "cancel", "cancel"]
    q = m.submit_oto(2, ("sell", "limit", 100, 6), ("buy", "limit", 90))["order_id"]
    m.on_reject(q)
    assert m.legs(q)["second"] is None
    assert m.submit_oto(3, ("buy", "limit", 100, 1), ("sell", "market", None))["status"] == "bad_price"


# ---- self-trade prevention across groups -----------------------------------------------------

def test_crossing_targets_of_two_brackets_hold_the_later_one():
    m = orders.OrderManager({"stop_distance_ticks": 3, "target_distance_ticks": 5})
    long_e = bracket(m, 1, "buy", 2, 100)
    m.on_fill(long_e, 2, 100)                                    # sell target at 105
    short_e = bracket(m, 2, "sell", 2, 110)
    m.drain_events()
    m.on_fill(short_e, 2, 110)                                   # buy target would sit at 105
    gl, gs = m.legs(long_e), m.legs(short_e)
    st, tt = m.order(gs["stop"]), m.order(gs["target"])
    assert st["state"] == "new" and not st["held"]               # the stop is always sent
    assert tt["held"] and tt["price"] == 105 and tt["qty"] == 2
    assert [(k, i) for k, _, i in kinds(m)] == [("fill", short_e), ("new", gs["stop"])]
    # a new order crossing the held target is refused (protection wins)
    assert m.submit_limit(9, "sell", 104, 1)["status"] == "self_trade"
    assert m.on_fill(tt["order_id"], 1, 105) == "illegal_transition"   # never sent
    # the long target fills: the held one no longer crosses anything and is released
    assert m.on_fill(gl["target"], 2, 105) == "ok"
    assert not m.order(gs["target"])["held"]
    assert ("new", "new", gs["target"]) in kinds(m)
    assert m.counters()["held_releases"] == 1


def test_repriced_target_that_would_cross_is_pulled_and_held():
    m = orders.OrderManager({"stop_distance_ticks": 3, "target_distance_ticks": 2})
    short_e = bracket(m, 2, "sell", 4, 101)
    m.on_fill(short_e, 1, 101)                                   # buy target at 99
    short_t = m.legs(short_e)["target"]
    long_e = bracket(m, 1, "buy", 4, 98)
    m.on_fill(long_e, 1, 98)                                     # sell target at 100: no cross
    t_old = m.legs(long_e)["target"]
    assert not m.order(t_old)["held"] and m.order(t_old)["price"] == 100
    m.drain_events()
    m.on_fill(long_e, 3, 95)                                     # VWAP 95.75 -> target 96 + 2 = 98 <= 99
    t_new = m.legs(long_e)["target"]
    assert t_new != t_old
    assert m.order_state(t_old) == "pending_cancel"              # pulled (it is at the venue)
    n = m.order(t_new)
    assert n["held"] and (n["price"], n["qty"], n["role"]) == (98, 4, "target")
    assert m.order(m.legs(long_e)["stop"])["oco_peer_id"] == t_new
    ev = kinds(m)
    assert ("cancel", "pending_cancel", t_old) in ev and all(i != t_new for _, _, i in ev)
    assert m.on_fill(t_old, 1, 100) == "ok"                      # raced its cancel: still an exit
    assert m.legs(long_e)["open"] == 3 and m.order(t_new)["qty"] == 3
    m.on_cancel(t_old)
    assert m.order(t_new)["held"]                                # still crosses the short target
    m.on_fill(short_t, 1, 99)                                    # the short bracket is flat
    assert not m.order(t_new)["held"]                            # released
    assert ("new", "new", t_new) in kinds(m)


def test_stop_never_held():
    m = orders.OrderManager({"stop_distance_ticks": 0, "target_distance_ticks": 0})
    a = bracket(m, 1, "buy", 1, 100)
    m.on_fill(a, 1, 100)
    b = bracket(m, 2, "sell", 1, 100)
    m.on_fill(b, 1, 100)
    assert not m.order(m.legs(b)["stop"])["held"]
    assert m.order(m.legs(b)["target"])["held"]


# ---- bounded memory --------------------------------------------------------------------------

def test_terminal_orders_are_evicted_and_late_events_counted():
    m = orders.OrderManager({"retain_closed": 2})
    first = m.submit_limit(1, "buy", 100, 1)["order_id"]
    m.on_fill(first, 1, 100)
    for cid in range(2, 2_000):
        oid = m.submit_limit(cid, "buy" if cid % 2 else "sell", 100 if cid % 2 else 200, 1, now=cid)["order_id"]
        if cid % 3:
            m.on_fill(oid, 1, 100 if cid % 2 else 200)
        else:
            m.request_cancel(oid)
            m.on_cancel(oid)
        m.drain_events()
        assert m.stored_orders <= m.live_orders + 2
    assert m.live_orders == 0 and m.stored_orders == 2
    assert m.order(first) is None
    assert m.on_fill(first, 1, 100) == "closed_order"           # late event for an evicted order
    assert m.on_cancel(10**9) == "unknown_order"
    assert m.request_cancel(first) == "closed_order"
    assert m.counters()["evicted"] == 1_997
    # resubmitting a client id still returns the original result, without a second order
    assert m.submit_limit(1, "buy", 100, 1, now=3_000) == {"status": "ok", "order_id": first, "duplicate": True}


def test_groups_are_evicted_when_finished():
    m = orders.OrderManager({"retain_closed": 0})
    for cid in range(1, 300):
        e = bracket(m, cid, qty=2, price=100)
        m.on_fill(e, 2, 100)
        g = m.legs(e)
        m.on_fill(g["target"], 2, 120)
        m.on_cancel(g["stop"])                                   # confirmation of the OCO cancel
        assert m.legs(e) is None and m.live_orders == 0
    assert m.stored_orders == 0 and m.stored_groups == 0 and m.position == 0


def test_live_group_keeps_its_terminal_members():
    m = orders.OrderManager({"retain_closed": 0})
    e = bracket(m, qty=2)
    m.on_fill(e, 2, 100)                                         # entry filled: terminal
    assert m.order(e) is not None and m.live_orders == 2         # kept while its legs work
    assert m.legs(e)["open"] == 2
