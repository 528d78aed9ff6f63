"""Rule-based property tests: random interleavings of submissions (limit, market, bracket, OCO,
OTO), acks, partial fills, cancel requests, venue confirmations, unsolicited cancels, rejects and
expiries (including events for unknown, closed and evicted orders) against the invariants of
issue 5. Fills race cancels: a cancel-pending order keeps receiving legal venue fills."""
import hypothesis.strategies as st
from hypothesis import HealthCheck, event, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from orders_ref import LIVE, WORKING, crosses, fill_vwap_legs, orders

TTL = 1_000
PRICES = st.integers(90, 110)
QTYS = st.integers(1, 8)
SIDES = st.sampled_from(["buy", "sell"])
CIDS = st.integers(1, 12)       # small pool: plenty of resubmissions
TYPES = st.sampled_from(["limit", "limit", "stop", "market"])


def spec(side, typ, price, qty=None):
    p = None if typ == "market" else price
    return (side, typ, p) if qty is None else (side, typ, p, qty)


class Base(RuleBasedStateMachine):
    """Setup, helpers and the invariants every machine checks after each step."""
    policy = "cancel_new"
    confirm = True

    @initialize(stop_d=st.integers(0, 6), target_d=st.integers(0, 6), retain=st.sampled_from([0, 3, 1024]))
    def setup(self, stop_d, target_d, retain):
        self.retain = retain
        self.m = orders.OrderManager({"stp_policy": self.policy, "dedup_ttl_ns": TTL,
                                      "stop_distance_ticks": stop_d, "target_distance_ticks": target_d,
                                      "confirm_cancels": self.confirm, "retain_closed": retain})
        self.now = 0
        self.seen = {}          # client id -> (first submission time, result)
        self.last_seq = 0
        self.fills = 0          # signed sum of accepted fills
        self.filled = {}        # order id -> lots the test filled (survives eviction)
        self.all_ids = set()    # every order id the manager ever announced or held
        self.groups = {}        # group id -> kind
        self.oco_q = {}         # OCO group id -> (qty first, qty second) as submitted
        self.raced = set()      # OCO groups where a cancel-pending leg received a fill
        self.broken = set()     # groups where the venue itself ended a leg (no protection promise)
        self.cancel_seen = set()  # OTO children ever seen with a cancel in flight or done

    # ---- helpers ------------------------------------------------------------------------
    def _submit(self, cid, call):
        seq = self.m.last_seq
        r = call()
        prior = self.seen.get(cid)
        if prior is not None and self.now - prior[0] < TTL:
            assert r == {**prior[1], "duplicate": True}
            assert self.m.last_seq == seq          # never a second order (not even an event)
        else:
            assert not r["duplicate"]
            self.seen[cid] = (self.now, r)
        return r

    def _stored(self):
        return self.m.orders()

    def _fillable(self, bracket_only=False):
        out = []
        for o in self._stored():
            if o["state"] not in LIVE or o["held"]:
                continue
            if bracket_only and o["role"] == "single":
                continue
            open_qty = o["qty"] - o["filled"]
            if o["role"] in ("stop", "target"):
                open_qty = min(open_qty, self.m.legs(o["group_id"])["open"])
            if open_qty > 0:
                out.append((o, open_qty))
        return out

    def _new_group(self, r, kind):
        if r["order_id"] and not r["duplicate"]:
            self.groups[r["order_id"]] = kind
        return r

    # ---- invariants ---------------------------------------------------------------------
    @invariant()
    def drain(self):
        ev = self.m.drain_events()
        seq = [int(s) for s in ev["seq"]]
        assert all(b > a for a, b in zip([self.last_seq] + seq, seq))   # strictly increasing
        if seq:
            self.last_seq = seq[-1]
        self.all_ids.update(int(i) for i in ev["order_id"])
        self.all_ids.update(o["order_id"] for o in self._stored())

    @invariant()
    def position_is_sum_of_fills(self):
        assert self.m.position == self.fills
        for o in self._stored():
            assert o["filled"] == self.filled.get(o["order_id"], 0)

    @invariant()
    def groups(self):
        for gid, kind in self.groups.items():
            g = self.m.legs(gid)
            if g is None:
                continue    # finished and evicted
            assert g["kind"] == kind
            members = [self.m.order(i) for i in g["members"]]
            assert all(o is not None for o in members)   # a stored group keeps its members
            if kind == "bracket":
                self._bracket(g, members)
            elif kind == "oco":
                self._oco(gid, members)
            else:
                self._oto(g, members)

    def _bracket(self, g, members):
        entry = members[0]
        legs = [o for o in members[1:]]
        exited = sum(self.filled.get(o["order_id"], 0) for o in legs)
        assert g["exited"] == exited == sum(o["filled"] for o in legs)
        # the OCO legs never fill beyond the entry's filled quantity
        assert exited <= entry["filled"]
        open_qty = entry["filled"] - exited
        assert g["open"] == open_qty
        if g["stop"] is None:
            # legs come with the first fill, unless cancel_all halted the group before it
            assert not legs and (entry["filled"] == 0 or g["halted"])
            return
        event("bracket with legs")
        if exited:
            event("leg filled")
            assert entry["state"] not in WORKING   # exit started: entry no longer active
        if len(legs) > 2:
            event("bracket re-protected / target pulled")
        stop_px, target_px = fill_vwap_legs(entry["side"], entry["fill_notional"], entry["filled"],
                                            g["stop_distance"], g["target_distance"])
        for leg in legs:
            assert leg["side"] != entry["side"] and leg["reduce_only"]
            if leg["state"] in WORKING:
                # protective legs' open quantity == open filled quantity, at the configured
                # distance from the current fill VWAP (held targets included)
                assert leg["qty"] - leg["filled"] == open_qty
                assert leg["price"] == (stop_px if leg["role"] == "stop" else target_px)
                assert leg["order_id"] in (g["stop"], g["target"])
        if open_qty > 0 and not g["halted"] and g["entry"] not in self.broken:
            # a filled position is never left without its stop and target
            roles = sorted(o["role"] for o in legs if o["state"] in WORKING)
            assert roles == ["stop", "target"], (roles, legs)
            if any(o["held"] for o in legs if o["state"] in WORKING):
                event("target held back")

    def _oco(self, gid, members):
        a, b = members
        assert a["oco_peer_id"] == b["order_id"] and b["oco_peer_id"] == a["order_id"]
        if gid not in self.raced:
            assert a["filled"] + b["filled"] <= max(self.oco_q[gid])
        if a["filled"] and b["filled"]:
            event("oco: both legs partly filled")

    def _oto(self, g, members):
        parent, children = members[0], members[1:]
        if parent["filled"] == 0 or (g["halted"] and not children):
            assert not children                  # the child is only released by a fill
            return
        event("oto child released")
        assert children and all(c["role"] == "oto_child" and c["parent_id"] == parent["order_id"] for c in children)
        for c in children:
            if c["state"] not in WORKING and c["state"] != "filled":
                self.cancel_seen.add(c["order_id"])
        # A child being cancelled (self-trade prevention's cancel_both, say) is not resized by
        # later parent fills, even if the venue then fills it (the cancel lost the race): such a
        # child no longer carries the promise total == parent filled.
        intact = all((c["state"] in WORKING or c["state"] == "filled") and c["order_id"] not in self.cancel_seen
                     for c in children)
        if intact and not g["halted"]:
            total = sum(c["qty"] for c in children)
            if self.policy == "decrement_both":
                assert total <= parent["filled"]   # STP may have decremented a child at its release
            else:
                assert total == parent["filled"]
            if len(children) > 1:
                event("oto: new child after a filled one")

    @invariant()
    def no_self_trade(self):
        c = self.m.counters()
        if c["stp_actions"]:
            event("stp acted")
        if c["held_releases"]:
            event("held target released")
        if c["duplicate_client_id"]:
            event("duplicate submit")
        live = [o for o in self._stored() if o["state"] in WORKING and not o["held"]]
        for i, a in enumerate(live):
            for b in live[i + 1:]:
                assert not crosses(a, b), (a, b)      # leg vs leg of different groups included

    @invariant()
    def memory_is_bounded(self):
        stored = self._stored()
        live = [o for o in stored if o["state"] in LIVE]
        assert self.m.live_orders == len(live)
        # terminal orders kept: the retained window plus members of unfinished groups
        waiting = 0
        for o in stored:
            if o["state"] not in LIVE and o["group_id"]:
                g = self.m.legs(o["group_id"])
                if g is not None and not g["done"]:
                    waiting += 1
        assert len(stored) - len(live) <= self.retain + waiting
        if self.m.counters()["evicted"]:
            event("evicted")



class OrderMachine(Base):
    # ---- submissions --------------------------------------------------------------------
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
        self._new_group(self._submit(cid, lambda: self.m.submit_bracket(cid, side, qty, price=price, now=self.now)),
                        "bracket")

    @rule(cid=CIDS, s1=SIDES, t1=TYPES, p1=PRICES, q1=QTYS, s2=SIDES, t2=TYPES, p2=PRICES, q2=QTYS)
    def submit_oco(self, cid, s1, t1, p1, q1, s2, t2, p2, q2):
        r = self._submit(cid, lambda: self.m.submit_oco(cid, spec(s1, t1, p1, q1), spec(s2, t2, p2, q2),
                                                        now=self.now))
        if self._new_group(r, "oco") and r["order_id"] and not r["duplicate"]:
            self.oco_q[r["order_id"]] = (q1, q2)
            if r["status"] == "ok":
                a = self.m.order(r["order_id"])
                if a is not None:
                    assert a["role"] == "oco" and a["oco_peer_id"]

    @rule(cid=CIDS, s1=SIDES, t1=TYPES, p1=PRICES, q1=QTYS, s2=SIDES,
          t2=st.sampled_from(["limit", "stop"]), p2=PRICES)
    def submit_oto(self, cid, s1, t1, p1, q1, s2, t2, p2):
        self._new_group(self._submit(cid, lambda: self.m.submit_oto(cid, spec(s1, t1, p1, q1), spec(s2, t2, p2),
                                                                    now=self.now)), "oto")

    # ---- venue events -------------------------------------------------------------------
    @rule(data=st.data(), bracket_only=st.booleans())
    def fill_working(self, data, bracket_only):
        """A legal partial or full venue fill of a working order, cancel-pending ones included
        (the fill raced the cancel)."""
        live = self._fillable(bracket_only)
        if not live:
            return
        o, open_qty = data.draw(st.sampled_from(live))
        qty = data.draw(st.integers(1, open_qty))
        if o["type"] == "limit":
            price = data.draw(st.integers(o["price"] - 3, o["price"]) if o["side"] == "buy"
                              else st.integers(o["price"], o["price"] + 3))
        else:
            price = data.draw(PRICES)
        oid = o["order_id"]
        peer = self.m.order(o["oco_peer_id"]) if o["role"] == "oco" else None
        if o["state"] == "pending_cancel":
            event("fill raced a cancel")
            if o["role"] == "oco":
                self.raced.add(o["group_id"])
        stp_before = self.m.counters()["stp_actions"]
        assert self.m.on_fill(oid, qty, price, self.now) == "ok"
        self.fills += qty if o["side"] == "buy" else -qty
        self.filled[oid] = self.filled.get(oid, 0) + qty
        after = self.m.order(oid)
        if after is not None:
            assert after["filled"] == o["filled"] + qty
        if peer is not None and peer["state"] in WORKING:
            # OCO: the other order loses the same quantity at once, or is cancelled
            p2 = self.m.order(peer["order_id"])
            if p2 is not None and p2["state"] in WORKING:
                assert p2["qty"] - p2["filled"] == peer["qty"] - peer["filled"] - qty
            else:
                assert peer["qty"] - peer["filled"] <= qty or self.m.counters()["stp_actions"] > stp_before
                assert p2 is None or p2["state"] in ("pending_cancel", "cancelled")

    @rule(data=st.data())
    def request_cancel(self, data):
        ids = self.m.order_ids()
        if not ids:
            return
        oid = data.draw(st.sampled_from(ids))
        o = self.m.order(oid)
        seq, c = self.m.last_seq, self.m.counters()
        r = self.m.request_cancel(oid, self.now)
        if o["state"] == "pending_cancel":
            assert r == "cancel_pending" and self.m.last_seq == seq      # counted, not re-sent
            assert self.m.counters()["cancel_pending"] == c["cancel_pending"] + 1
        elif o["state"] in WORKING:
            assert r == "ok"
            after = self.m.order(oid)
            if o["held"] or not self.confirm:
                assert after is None or after["state"] == "cancelled"
            else:
                assert after["state"] == "pending_cancel"
        else:
            assert r == "closed_order"

    @rule(data=st.data())
    def confirm_cancel(self, data):
        pending = [o["order_id"] for o in self._stored() if o["state"] == "pending_cancel"]
        if not pending:
            return
        oid = data.draw(st.sampled_from(pending))
        assert self.m.on_cancel(oid, self.now) == "ok"
        o = self.m.order(oid)
        assert o is None or o["state"] == "cancelled"

    @rule(data=st.data())
    def ack(self, data):
        ids = [o["order_id"] for o in self._stored() if o["state"] in ("new", "pending_cancel") and not o["held"]]
        if ids:
            self.m.on_ack(data.draw(st.sampled_from(ids)), self.now)

    @rule(data=st.data(), action=st.sampled_from(["on_cancel", "on_reject", "on_expire"]))
    def unsolicited(self, data, action):
        """The venue ends an order on its own (or confirms a pending cancel)."""
        live = [o for o in self._stored() if o["state"] in LIVE and not o["held"]]
        if not live:
            return
        o = data.draw(st.sampled_from(live))
        peer = self.m.order(o["oco_peer_id"]) if o["role"] == "oco" else None
        r = getattr(self.m, action)(o["order_id"], self.now)
        if r == "ok" and o["role"] in ("stop", "target") and o["state"] != "pending_cancel":
            self.broken.add(o["group_id"])
        if r == "ok" and peer is not None:
            after = self.m.order(peer["order_id"])   # the other order is left alone
            assert after is None or (after["qty"], after["filled"]) == (peer["qty"], peer["filled"])

    @rule(action=st.sampled_from(["on_ack", "on_cancel", "on_reject", "on_expire", "on_fill", "request_cancel"]),
          closed=st.booleans(), data=st.data())
    def stray_event(self, action, closed, data):
        """Events for unknown, closed or evicted orders: counted, and nothing changes."""
        self.drain()
        if closed:
            stored = {o["order_id"]: o for o in self._stored()}
            done = sorted(i for i in self.all_ids if i not in stored or stored[i]["state"] not in LIVE)
            if not done:
                return
            oid, reason = data.draw(st.sampled_from(done)), "closed_order"
            if oid not in stored:
                event("late event for an evicted order")
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

    @rule(data=st.data(), kind=st.sampled_from(["qty0", "qtyneg", "price0", "fill_qty", "fill_price"]))
    def bad_input(self, data, kind):
        """Bad quantities / prices: a counted rejection, state unchanged."""
        self.drain()
        snapshot, counters, pos = self.m.orders(), self.m.counters(), self.m.position
        self.bad_cid = getattr(self, "bad_cid", 1_000_000) + 1
        cid = self.bad_cid                 # fresh client id: no dedup interplay
        if kind == "qty0":
            r, reason = self.m.submit_limit(cid, "buy", 100, 0)["status"], "bad_quantity"
        elif kind == "qtyneg":
            r, reason = self.m.submit_oco(cid, ("buy", "limit", 95, -2), ("buy", "stop", 105, 2))["status"], \
                "bad_quantity"
        elif kind == "price0":
            r, reason = self.m.submit_oto(cid, ("buy", "limit", 100, 2), ("sell", "limit", 0))["status"], "bad_price"
        else:
            live = [o for o in snapshot if o["state"] in LIVE and not o["held"]]
            if not live:
                return
            o = data.draw(st.sampled_from(live))
            if kind == "fill_qty":
                r, reason = self.m.on_fill(o["order_id"], -data.draw(st.integers(0, 3)), 100), "bad_quantity"
            else:
                r, reason = self.m.on_fill(o["order_id"], 1, 0), "bad_price"
        assert r == reason
        assert self.m.orders() == snapshot and self.m.position == pos
        assert len(self.m.drain_events()) == 0
        assert self.m.counters()[reason] == counters[reason] + 1

    @rule()
    def cancel_all(self):
        self.m.cancel_all(self.now)
        assert not any(o["state"] in WORKING for o in self._stored())



class BracketRace(Base):
    """Brackets only, both directions, fills racing cancel requests and confirmations: the
    scenarios where cross-group targets get held back and racing entry fills re-protect."""
    tick = OrderMachine.tick
    submit_bracket = OrderMachine.submit_bracket
    fill_working = OrderMachine.fill_working
    request_cancel = OrderMachine.request_cancel
    confirm_cancel = OrderMachine.confirm_cancel
    ack = OrderMachine.ack
    stray_event = OrderMachine.stray_event

    @rule(data=st.data())
    def cancel_entry(self, data):
        """What the engine does with a stale entry: ask the venue to cancel it."""
        entries = [o["order_id"] for o in self._stored() if o["role"] == "entry" and o["state"] in WORKING]
        if entries:
            assert self.m.request_cancel(data.draw(st.sampled_from(entries)), self.now) == "ok"

SETTINGS = settings(max_examples=400, stateful_step_count=50, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def make(policy, confirm=True, base=None):
    base = base or OrderMachine
    cls = type(f"{base.__name__}_{policy}_{confirm}", (base,), {"policy": policy, "confirm": confirm})
    cls.TestCase.settings = SETTINGS
    return cls.TestCase


TestCancelNew = make("cancel_new")
TestCancelResting = make("cancel_resting")
TestCancelBoth = make("cancel_both")
TestDecrementBoth = make("decrement_both")
TestLegacyImmediateCancels = make("cancel_new", confirm=False)
TestBracketRaceCancelNew = make("cancel_new", base=BracketRace)
TestBracketRaceCancelResting = make("cancel_resting", base=BracketRace)
