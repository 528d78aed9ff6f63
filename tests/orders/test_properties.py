"""Rule-based property tests: random sequences of submissions, acks, partial fills, cancels,
rejects and expiries (including events for unknown and closed orders) against the invariants
of issue 5."""
import hypothesis.strategies as st
from hypothesis import HealthCheck, event, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from orders_ref import WORKING, crosses, fill_vwap_legs, orders

TTL = 1_000
PRICES = st.integers(90, 110)
QTYS = st.integers(1, 8)
SIDES = st.sampled_from(["buy", "sell"])
CIDS = st.integers(1, 12)       # small pool: plenty of resubmissions


class OrderMachine(RuleBasedStateMachine):
    policy = "cancel_new"

    @initialize(stop_d=st.integers(0, 6), target_d=st.integers(0, 6))
    def setup(self, stop_d, target_d):
        self.m = orders.OrderManager({"stp_policy": self.policy, "dedup_ttl_ns": TTL,
                                      "stop_distance_ticks": stop_d, "target_distance_ticks": target_d})
        self.now = 0
        self.seen = {}          # client id -> (first submission time, result)
        self.last_seq = 0
        self.fills = 0          # signed sum of accepted fills
        self.entries = []

    # ---- helpers ------------------------------------------------------------------------
    def _submit(self, cid, call):
        n_before = len(self.m.order_ids())
        r = call()
        prior = self.seen.get(cid)
        if prior is not None and self.now - prior[0] < TTL:
            assert r == {**prior[1], "duplicate": True}
            assert len(self.m.order_ids()) == n_before   # never a second order
        else:
            assert not r["duplicate"]
            self.seen[cid] = (self.now, r)
        return r

    def _ids(self):
        return self.m.order_ids()

    # ---- rules --------------------------------------------------------------------------
    @rule(dt=st.integers(0, 400))
    def tick(self, dt):
        self.now += dt

    @rule(cid=CIDS, side=SIDES, price=PRICES, qty=QTYS)
    def submit_limit(self, cid, side, price, qty):
        self._submit(cid, lambda: self.m.submit_limit(cid, side, price, qty, now=self.now))

    @rule(cid=CIDS, side=SIDES, qty=QTYS)
    def submit_market(self, cid, side, qty):
        self._submit(cid, lambda: self.m.submit_market(cid, side, qty, now=self.now))

    @rule(cid=CIDS, side=SIDES, price=st.one_of(st.none(), PRICES), qty=QTYS)
    def submit_bracket(self, cid, side, price, qty):
        r = self._submit(cid, lambda: self.m.submit_bracket(cid, side, qty, price=price, now=self.now))
        if r["order_id"] and not r["duplicate"]:
            self.entries.append(r["order_id"])

    @rule(data=st.data())
    @precondition(lambda self: self.m.order_ids())
    def fill(self, data):
        oid = data.draw(st.sampled_from(self._ids()))
        o = self.m.order(oid)
        qty = data.draw(st.integers(0, max(1, o["qty"] - o["filled"] + 1)))
        if o["type"] == "limit":   # mostly legal prices, sometimes one tick through the limit
            lo, hi = (o["price"] - 5, o["price"] + 1) if o["side"] == "buy" else (o["price"] - 1, o["price"] + 5)
            price = data.draw(st.integers(lo, hi))
        else:
            price = data.draw(PRICES)
        before = self.m.order(oid)
        status = self.m.on_fill(oid, qty, price, self.now)
        if status == "ok":
            self.fills += qty if o["side"] == "buy" else -qty
            assert self.m.order(oid)["filled"] == before["filled"] + qty
        else:
            assert self.m.order(oid) == before

    @rule(data=st.data(), bracket_only=st.booleans())
    def fill_working(self, data, bracket_only):
        """A legal partial or full fill of a working order (biased towards brackets)."""
        live = [o for o in self.m.orders() if o["state"] in WORKING
                and (not bracket_only or o["role"] != "single")]
        if not live:
            return
        o = data.draw(st.sampled_from(live))
        open_qty = o["qty"] - o["filled"]
        if o["role"] in ("stop", "target"):
            open_qty = min(open_qty, self.m.legs(o["group_id"])["open"])
        qty = data.draw(st.integers(1, open_qty))
        if o["type"] == "limit":
            price = data.draw(st.integers(o["price"] - 3, o["price"]) if o["side"] == "buy"
                              else st.integers(o["price"], o["price"] + 3))
        else:
            price = data.draw(PRICES)
        assert self.m.on_fill(o["order_id"], qty, price, self.now) == "ok"
        self.fills += qty if o["side"] == "buy" else -qty

    @rule(data=st.data(), action=st.sampled_from(["on_ack", "on_cancel", "on_reject", "on_expire"]))
    @precondition(lambda self: self.m.order_ids())
    def venue_event(self, data, action):
        oid = data.draw(st.sampled_from(self._ids()))
        getattr(self.m, action)(oid, self.now)

    @rule(action=st.sampled_from(["on_ack", "on_cancel", "on_reject", "on_expire", "on_fill"]),
          closed=st.booleans(), data=st.data())
    def stray_event(self, action, closed, data):
        """Events for unknown or closed orders: counted, and nothing changes."""
        self.drain()
        if closed:
            done = [o["order_id"] for o in self.m.orders() if o["state"] not in WORKING]
            if not done:
                return
            oid, reason = data.draw(st.sampled_from(done)), "closed_order"
        else:
            oid, reason = 10_000_000 + data.draw(st.integers(0, 5)), "unknown_order"
        snapshot, counters, pos = self.m.orders(), self.m.counters(), self.m.position
        args = (1, 100) if action == "on_fill" else ()
        assert getattr(self.m, action)(oid, *args) == reason
        assert self.m.orders() == snapshot and self.m.position == pos
        assert len(self.m.drain_events()) == 0
        after = self.m.counters()
        assert after[reason] == counters[reason] + 1
        assert {k: v for k, v in after.items() if k != reason} == {k: v for k, v in counters.items() if k != reason}

    @rule()
    def cancel_all(self):
        self.m.cancel_all(self.now)
        assert not any(o["state"] in WORKING for o in self.m.orders())

    # ---- invariants ---------------------------------------------------------------------
    @invariant()
    def drain(self):
        ev = self.m.drain_events()
        seq = [int(s) for s in ev["seq"]]
        assert all(b > a for a, b in zip([self.last_seq] + seq, seq))   # strictly increasing
        if seq:
            self.last_seq = seq[-1]

    @invariant()
    def position_is_sum_of_fills(self):
        allo = self.m.orders()
        by_orders = sum(o["filled"] if o["side"] == "buy" else -o["filled"] for o in allo)
        assert self.m.position == by_orders == self.fills

    @invariant()
    def brackets(self):
        for e in self.entries:
            g = self.m.legs(e)
            entry = self.m.order(e)
            if g["stop"] is None:
                assert entry["filled"] == 0
                continue
            s, t = self.m.order(g["stop"]), self.m.order(g["target"])
            event("bracket with legs")
            if s["filled"] or t["filled"]:
                event("leg filled")
            # the two OCO legs never fill beyond the entry's filled quantity
            assert s["filled"] + t["filled"] <= entry["filled"]
            open_qty = entry["filled"] - s["filled"] - t["filled"]
            assert g["open"] == open_qty
            stop_px, target_px = fill_vwap_legs(entry["side"], entry["fill_notional"], entry["filled"],
                                                g["stop_distance"], g["target_distance"])
            for leg, px in ((s, stop_px), (t, target_px)):
                assert leg["side"] != entry["side"] and leg["reduce_only"]
                if leg["state"] in WORKING:
                    # protective legs' open quantity == open filled quantity
                    assert leg["qty"] - leg["filled"] == open_qty
                    # and they sit at the configured distance from the current fill VWAP
                    assert leg["price"] == px
            if s["filled"] or t["filled"]:
                assert entry["state"] not in WORKING   # exit started: entry no longer working

    @invariant()
    def no_self_trade(self):
        c = self.m.counters()
        if c["stp_actions"]:
            event("stp acted")
        if c["duplicate_client_id"]:
            event("duplicate submit")
        if c["dedup_expirations"]:
            event("ttl expiry")
        live = [o for o in self.m.orders() if o["state"] in WORKING]
        for i, a in enumerate(live):
            for b in live[i + 1:]:
                if a["role"] in ("stop", "target") and b["role"] in ("stop", "target"):
                    continue   # leg vs leg of different brackets: documented limitation
                assert not crosses(a, b), (a, b)


SETTINGS = settings(max_examples=300, stateful_step_count=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def make(policy):
    cls = type(f"OrderMachine_{policy}", (OrderMachine,), {"policy": policy})
    cls.TestCase.settings = SETTINGS
    return cls.TestCase


TestCancelNew = make("cancel_new")
TestCancelResting = make("cancel_resting")
TestCancelBoth = make("cancel_both")
TestDecrementBoth = make("decrement_both")
