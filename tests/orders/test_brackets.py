"""Brackets (entry OTO -> OCO(stop, target)), idempotent submission and self-trade prevention."""

from orders_ref import orders


def bracket(m, cid=1, side="buy", qty=10, price=100, **kw):
    r = m.submit_bracket(cid, side, qty, price=price, **kw)
    assert r["status"] == "ok"
    return r["order_id"]


def test_legs_appear_on_first_fill_and_follow_vwap():
    m = orders.OrderManager({"stop_distance_ticks": 5, "target_distance_ticks": 7})
    e = bracket(m)
    assert m.legs(e)["stop"] is None            # OTO: nothing released before a fill
    m.on_ack(e)
    m.on_fill(e, 3, 99)
    g = m.legs(e)
    s, t = m.order(g["stop"]), m.order(g["target"])
    assert (s["type"], t["type"]) == ("stop", "limit")
    assert (s["side"], t["side"]) == ("sell", "sell")
    assert s["reduce_only"] and t["reduce_only"]
    assert (s["qty"], t["qty"], s["price"], t["price"]) == (3, 3, 94, 106)
    m.on_fill(e, 4, 100)                         # VWAP 697/7 = 99.57 -> floor 99, ceil 100
    s, t = m.order(g["stop"]), m.order(g["target"])
    assert (s["qty"], t["qty"], s["price"], t["price"]) == (7, 7, 94, 107)
    kinds = [orders.EVENT_KINDS[k] for k in m.drain_events()["kind"]]
    assert kinds == ["new", "ack", "fill", "new", "new", "fill", "replace", "replace"]


def test_short_bracket_rounding():
    m = orders.OrderManager({"stop_distance_ticks": 2, "target_distance_ticks": 3})
    e = bracket(m, side="sell", price=100)
    m.on_fill(e, 1, 100)
    m.on_fill(e, 2, 101)                        # VWAP 302/3 = 100.67 -> ceil 101, floor 100
    g = m.legs(e)
    assert m.order(g["stop"])["price"] == 103
    assert m.order(g["target"])["price"] == 97
    assert (m.order(g["stop"])["side"], m.position) == ("buy", -3)


def test_per_bracket_distances_override_config():
    m = orders.OrderManager()
    e = bracket(m, stop_distance=1, target_distance=2)
    m.on_fill(e, 2, 100)
    g = m.legs(e)
    assert (m.order(g["stop"])["price"], m.order(g["target"])["price"]) == (99, 102)


def test_market_entry_bracket():
    m = orders.OrderManager({"stop_distance_ticks": 4, "target_distance_ticks": 4})
    e = bracket(m, price=None, qty=2)
    assert m.order(e)["type"] == "market"
    m.on_fill(e, 2, 250)
    g = m.legs(e)
    assert (m.order(g["stop"])["price"], m.order(g["target"])["price"]) == (246, 254)


def test_oco_leg_fill_reduces_peer_and_stops_entry():
    m = orders.OrderManager({"stop_distance_ticks": 5, "target_distance_ticks": 5})
    e = bracket(m)
    m.on_fill(e, 6, 100)
    g = m.legs(e)
    assert m.on_fill(g["target"], 2, 105) == "ok"
    assert m.order_state(e) == "pending_cancel"  # exit started: no more entering (venue to confirm)
    assert m.order(g["stop"])["qty"] == 4       # peer reduced by the same quantity
    assert m.position == 4
    assert m.on_fill(g["stop"], 5, 95) == "overfill"   # more than the open 4
    assert m.counters()["overfill"] == 1
    assert m.on_fill(g["stop"], 4, 95) == "ok"
    assert m.order_state(g["stop"]) == "filled"
    assert m.order_state(g["target"]) == "pending_cancel"
    assert m.on_cancel(g["target"]) == "ok"      # the venue confirms
    assert m.order_state(g["target"]) == "cancelled"
    assert m.position == 0
    assert m.on_fill(g["target"], 1, 105) == "closed_order"


def test_entry_cancel_after_partial_keeps_protection():
    m = orders.OrderManager()
    e = bracket(m)
    m.on_fill(e, 3, 100)
    m.on_cancel(e)
    g = m.legs(e)
    assert m.order(g["stop"])["qty"] == 3 and m.order_state(g["stop"]) == "new"
    assert m.legs(e)["open"] == 3


def test_entry_rejected_releases_nothing():
    m = orders.OrderManager()
    e = bracket(m)
    assert m.on_reject(e) == "ok"
    assert m.legs(e)["stop"] is None


# ---- idempotent submission -------------------------------------------------------------------

def test_resubmission_returns_original():
    m = orders.OrderManager()
    r1 = m.submit_limit(42, "buy", 100, 5, now=0)
    r2 = m.submit_limit(42, "sell", 200, 9, now=10)      # same id, different content: still a replay
    assert r2 == {**r1, "duplicate": True}
    assert len(m.order_ids()) == 1
    assert m.counters()["duplicate_client_id"] == 1


def test_resubmission_of_refused_order_returns_same_refusal():
    m = orders.OrderManager()
    r1 = m.submit_limit(7, "buy", 100, 0)
    assert r1["status"] == "bad_quantity"
    assert m.submit_limit(7, "buy", 100, 5) == {**r1, "duplicate": True}
    assert m.order_ids() == []


def test_ttl_is_measured_from_first_submission():
    ttl = 1_000
    m = orders.OrderManager({"dedup_ttl_ns": ttl})
    r1 = m.submit_limit(1, "buy", 100, 1, now=0)
    assert m.submit_limit(1, "buy", 100, 1, now=ttl - 1)["duplicate"]  # a hit does not extend the TTL
    r3 = m.submit_limit(1, "buy", 100, 1, now=ttl)                     # expired at exactly ttl
    assert not r3["duplicate"] and r3["order_id"] != r1["order_id"]
    assert m.counters()["dedup_expirations"] == 1


def test_default_ttl_is_five_minutes_and_capacity_10000():
    m = orders.OrderManager()
    m.submit_limit(1, "buy", 100, 1, now=0)
    assert m.submit_limit(1, "buy", 100, 1, now=300_000_000_000 - 1)["duplicate"]
    assert not m.submit_limit(1, "buy", 100, 1, now=300_000_000_000)["duplicate"]
    m = orders.OrderManager()
    for cid in range(10_001):
        m.submit_limit(cid + 1, "buy", 100, 1)
    assert m.counters()["dedup_size"] == 10_000
    assert m.counters()["dedup_evictions"] == 1


def test_lru_eviction_forgets_least_recently_used():
    m = orders.OrderManager({"dedup_capacity": 2})
    a = m.submit_limit(1, "buy", 100, 1)
    m.submit_limit(2, "buy", 100, 1)
    assert m.submit_limit(1, "buy", 100, 1)["duplicate"]   # touch 1 -> 2 is now least recent
    m.submit_limit(3, "buy", 100, 1)                         # evicts 2
    assert m.submit_limit(1, "buy", 100, 1) == {**a, "duplicate": True}
    assert not m.submit_limit(2, "buy", 100, 1)["duplicate"]  # forgotten: a new order
    assert m.counters()["dedup_evictions"] >= 1


# ---- self-trade prevention -------------------------------------------------------------------

def stp(policy):
    m = orders.OrderManager({"stp_policy": policy})
    rest = m.submit_limit(1, "sell", 100, 5)["order_id"]
    m.on_ack(rest)
    return m, rest


def test_stp_no_cross_no_action():
    m, rest = stp("cancel_new")
    assert m.submit_limit(2, "buy", 99, 5)["status"] == "ok"
    assert m.counters()["stp_actions"] == 0


def test_stp_cancel_new():
    m, rest = stp("cancel_new")
    r = m.submit_limit(2, "buy", 100, 3)
    assert r["status"] == "self_trade" and m.order_state(r["order_id"]) == "rejected"
    assert m.order_state(rest) == "acknowledged"
    assert m.counters()["self_trade"] == 1


def test_stp_cancel_resting():
    m, rest = stp("cancel_resting")
    r = m.submit_limit(2, "buy", 101, 3)
    assert r["status"] == "ok" and m.order_state(r["order_id"]) == "new"
    assert m.order_state(rest) == "pending_cancel"


def test_stp_cancel_both():
    m, rest = stp("cancel_both")
    r = m.submit_market(2, "buy", 3)
    assert r["status"] == "self_trade"
    assert m.order_state(rest) == "pending_cancel"


def test_stp_decrement_both():
    m, rest = stp("decrement_both")
    r = m.submit_limit(2, "buy", 100, 3)
    # the overlap (3) is removed from both: new order fully consumed -> refused, resting 5 -> 2
    assert r["status"] == "self_trade" and m.order_state(r["order_id"]) == "rejected"
    assert m.order(rest)["qty"] == 2 and m.order_state(rest) == "acknowledged"


def test_stp_decrement_both_partial():
    m, rest = stp("decrement_both")
    r = m.submit_limit(2, "buy", 100, 8)
    assert r["status"] == "ok"
    assert m.order(r["order_id"])["qty"] == 3
    assert m.order_state(rest) == "pending_cancel"


def test_stp_never_touches_protective_legs():
    m = orders.OrderManager({"stp_policy": "cancel_resting", "target_distance_ticks": 2})
    e = bracket(m, qty=2)
    m.on_fill(e, 2, 100)
    target = m.legs(e)["target"]
    r = m.submit_limit(9, "buy", 103, 1)      # would cross the target at 102
    assert r["status"] == "self_trade"          # falls back to cancel_new
    assert m.order_state(target) == "new"


def test_target_leg_cancels_crossing_own_order():
    m = orders.OrderManager({"target_distance_ticks": 1, "stop_distance_ticks": 1})
    buy = m.submit_limit(5, "buy", 105, 1)["order_id"]      # own resting buy high up
    e = bracket(m, qty=2, price=100)
    m.on_fill(e, 1, 100)                                     # target sell at 101 would hit 105
    assert m.order_state(buy) == "pending_cancel"
    assert m.order_state(e) == "partially_filled"            # entry remainder at 100 < 101: no cross


def test_target_leg_cancels_own_entry_remainder_it_would_cross():
    m = orders.OrderManager({"target_distance_ticks": 1, "stop_distance_ticks": 1})
    e = bracket(m, qty=2, price=105)
    m.on_fill(e, 1, 100)              # price improvement: target at 101 <= entry limit 105
    assert m.order_state(e) == "pending_cancel"
    assert m.order(m.legs(e)["target"])["qty"] == 1
