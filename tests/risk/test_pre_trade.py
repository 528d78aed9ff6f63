"""Pre-trade checks and kill switch: unit cases plus hypothesis properties over random
sequences of intents, acks, fills, cancels and venue rejects, checked against an independent
Python model of position + open + in-flight exposure."""

from __future__ import annotations

import pytest
from bot4._core import risk
from bot4.errors import ConfigError
from hypothesis import event, given, settings
from hypothesis import strategies as st

NS = 1_000_000_000
CFG = dict(max_position_lots=40, max_notional=40_000, max_open_orders=6, rate_capacity=5,
           rate_per_second=20, collar_ticks=8, collar_bps=100)


def make(cfg=None, ks=None, **over):
    return risk.PreTradeChecks({**(cfg or CFG), **over}, ks)


def loose(**over):
    base = dict(max_position_lots=10**6, max_notional=10**15, max_open_orders=10**6, rate_capacity=0,
                rate_per_second=0, collar_ticks=0, collar_bps=0)
    return risk.PreTradeChecks({**base, **over})


# --- unit cases ---------------------------------------------------------------------------------

def test_reason_names_and_counters():
    assert risk.REJECT_REASONS[0] == "ok"
    for name in ("MaxPosition", "MaxNotional", "MaxOpenOrders", "RateLimit", "PriceCollar",
                 "KillSwitch", "ReduceOnly", "BadOrder", "DuplicateId"):
        assert name in risk.REJECT_REASONS
    c = make()
    assert set(c.counters()) == set(risk.REJECT_REASONS)
    assert all(v == 0 for v in c.counters().values())


def test_in_flight_counts_toward_max_position():
    c = loose(max_position_lots=10)
    assert c.check(1, "buy", 6, 100, 100, 0) == "ok"  # in flight, not acked
    assert c.check(2, "buy", 5, 100, 100, 0) == "MaxPosition"  # 6 in flight + 5 > 10
    assert c.check(3, "buy", 4, 100, 100, 0) == "ok"
    assert c.buys["inflight_qty"] == 10
    c.on_ack(1)
    assert c.buys == {"inflight_qty": 4, "open_qty": 6, "orders": 2, "notional": 1000}
    c.on_fill(1, 6)
    assert c.position == 6 and c.buys["open_qty"] == 0 and c.live_orders == 1
    assert c.check(4, "buy", 1, 100, 100, 0) == "MaxPosition"  # 6 position + 4 in flight + 1
    assert c.check(5, "sell", 16, 100, 100, 0) == "ok"  # −6 + 16 = 10 short worst case
    assert c.check(6, "sell", 1, 100, 100, 0) == "MaxPosition"
    c.on_cancel(5)
    assert c.check(7, "sell", 1, 100, 100, 0) == "ok"
    assert c.counters()["MaxPosition"] == 3 and c.counters()["ok"] == 4


def test_max_notional_marks_position_at_mid_orders_at_price():
    c = loose(max_notional=1000)
    c.position = 5
    assert c.check(1, "buy", 5, 101, 100, 0) == "MaxNotional"  # 500 + 505
    assert c.check(2, "buy", 5, 100, 100, 0) == "ok"           # 500 + 500
    assert c.check(3, "sell", 11, 150, 100, 0) == "MaxNotional"  # −500 + 1650
    assert c.check(4, "sell", 10, 150, 100, 0) == "ok"           # −500 + 1500 = 1000, at the cap
    assert c.check(5, "sell", 1, 1, 100, 0) == "MaxNotional"     # 1000 + 1


def test_max_open_orders_counts_in_flight():
    c = loose(max_open_orders=2)
    assert c.check(1, "buy", 1, 100, 100, 0) == "ok"
    assert c.check(2, "sell", 1, 100, 100, 0) == "ok"
    assert c.check(3, "buy", 1, 100, 100, 0) == "MaxOpenOrders"
    c.on_venue_reject(1)
    assert c.check(3, "buy", 1, 100, 100, 0) == "ok"


def test_price_collar_ticks_and_bps():
    c = loose(collar_ticks=5)
    assert c.check(1, "buy", 1, 105, 100, 0) == "ok"
    assert c.check(2, "buy", 1, 106, 100, 0) == "PriceCollar"
    assert c.check(3, "sell", 1, 94, 100, 0) == "PriceCollar"
    c = loose(collar_bps=50)  # 0.5 % of mid 10_000 = 50 ticks
    assert c.check(1, "sell", 1, 10_050, 10_000, 0) == "ok"
    assert c.check(2, "sell", 1, 10_051, 10_000, 0) == "PriceCollar"
    assert c.check(3, "buy", 1, 9_949, 10_000, 0) == "PriceCollar"


def test_token_bucket_integer_refill():
    c = loose(rate_capacity=2, rate_per_second=4)  # one token per 250 ms
    assert [c.check(i, "buy", 1, 100, 100, 0) for i in range(3)] == ["ok", "ok", "RateLimit"]
    assert c.check(10, "buy", 1, 100, 100, 250_000_000 - 1) == "RateLimit"
    assert c.check(11, "buy", 1, 100, 100, 250_000_000) == "ok"
    assert c.check(12, "buy", 1, 100, 100, 10 * NS) == "ok"  # refilled to capacity, not beyond
    assert c.check(13, "buy", 1, 100, 100, 10 * NS) == "ok"
    assert c.check(14, "buy", 1, 100, 100, 10 * NS) == "RateLimit"
    assert c.check(15, "buy", 1, 100, 100, 5 * NS) == "RateLimit"  # clock going back adds nothing


def test_rate_limit_only_spends_tokens_on_otherwise_valid_orders():
    c = loose(rate_capacity=1, rate_per_second=1, max_position_lots=5)
    assert c.check(1, "buy", 9, 100, 100, 0) == "MaxPosition"
    assert c.check(2, "buy", 1, 100, 100, 0) == "ok"


def test_bad_orders_and_duplicates_are_statuses():
    c = loose()
    assert c.check(1, "hold", 1, 100, 100, 0) == "BadOrder"
    assert c.check(1, "buy", 0, 100, 100, 0) == "BadOrder"
    assert c.check(1, "buy", 1, 0, 100, 0) == "BadOrder"
    assert c.check(1, "buy", 1, 100, 100, 0) == "ok"
    assert c.check(1, "sell", 1, 100, 100, 0) == "DuplicateId"
    assert c.counters()["BadOrder"] == 3 and c.counters()["DuplicateId"] == 1
    assert not c.on_ack(99) and not c.on_fill(99, 1) and not c.on_cancel(99)


def test_fill_before_ack_and_overfill_clamped():
    c = loose()
    c.check(1, "sell", 5, 100, 100, 0)
    assert c.on_fill(1, 2) and c.position == -2 and c.sells["inflight_qty"] == 3
    c.on_ack(1)
    assert c.sells["open_qty"] == 3 and c.sells["inflight_qty"] == 0
    assert c.on_fill(1, 10) and c.position == -5 and c.live_orders == 0
    assert c.sells == {"inflight_qty": 0, "open_qty": 0, "orders": 0, "notional": 0}


def test_manual_reduce_only():
    c = loose()
    c.position = 3
    c.reduce_only = True
    assert c.check(1, "buy", 1, 100, 100, 0) == "ReduceOnly"
    assert c.check(2, "sell", 4, 100, 100, 0) == "ReduceOnly"  # would flip to short
    assert c.check(3, "sell", 2, 100, 100, 0) == "ok"
    assert c.check(4, "sell", 2, 100, 100, 0) == "ReduceOnly"  # 2 already pending: 3 − 4 < 0
    assert c.check(5, "sell", 1, 100, 100, 0) == "ok"


# --- kill switch --------------------------------------------------------------------------------

def test_kill_switch_drawdown():
    k = risk.KillSwitch({"max_drawdown": 0.1})
    assert not k.on_equity(100.0) and not k.on_equity(120.0) and not k.on_equity(108.5)
    assert k.on_equity(108.0)  # (120 − 108)/120 = 0.1
    assert k.reason == "drawdown" and k.peak_equity == 120.0 and k.drawdown == pytest.approx(0.1)
    assert k.take_cancel_all() and not k.take_cancel_all()  # one cancel-all per trip
    k.on_latency(10**12)
    assert k.reason == "drawdown"  # first cause kept


def test_kill_switch_consecutive_rejects_and_latency():
    k = risk.KillSwitch({"max_consecutive_rejects": 3, "max_latency_ns": 1000})
    k.on_reject(); k.on_reject(); k.on_accept(); k.on_reject(); k.on_reject()
    assert not k.tripped
    assert k.on_reject() and k.reason == "consecutive_rejects"
    k.reset()
    assert not k.tripped and not k.on_latency(1000) and k.on_latency(1001) and k.reason == "latency"
    k.reset(); k.trip()
    assert k.reason == "manual" and k.cancel_all_pending


def test_checks_feed_kill_switch_and_then_reduce_only():
    k = risk.KillSwitch({"max_consecutive_rejects": 2, "max_drawdown": 0.5, "max_latency_ns": 0})
    c = risk.PreTradeChecks({"max_position_lots": 5, "rate_capacity": 0, "collar_bps": 0}, k)
    assert c.check(1, "buy", 5, 100, 100, 0) == "ok"
    c.on_fill(1, 5)
    assert c.check(2, "buy", 1, 100, 100, 0) == "MaxPosition"
    assert c.check(3, "buy", 1, 100, 100, 0) == "MaxPosition"
    assert k.tripped and k.reason == "consecutive_rejects" and k.take_cancel_all()
    assert c.check(4, "buy", 1, 100, 100, 0) == "KillSwitch"
    assert c.check(5, "sell", 6, 100, 100, 0) == "KillSwitch"  # flips short
    assert c.check(6, "sell", 5, 100, 100, 0) == "ok"          # flat is reducing
    assert c.counters()["KillSwitch"] == 2


def test_config_unknown_key_and_bad_type_rejected():
    with pytest.raises(ConfigError, match="unknown key 'max_postion_lots'"):
        risk.PreTradeChecks({"max_postion_lots": 1})
    with pytest.raises(ConfigError, match="max_open_orders"):
        risk.PreTradeChecks({"max_open_orders": 1.5})
    with pytest.raises(ConfigError, match="unknown key"):
        risk.KillSwitch({"drawdown": 0.1})
    with pytest.raises(ConfigError, match="must be a number"):
        risk.PositionSizer({"kelly_fraction": True})
    assert risk.PreTradeChecks(CFG).config == CFG


# --- properties ---------------------------------------------------------------------------------

intent = st.tuples(st.just("intent"), st.sampled_from(["buy", "sell"]), st.integers(1, 8),
                   st.integers(-9, 9), st.integers(990, 1010),
                   st.one_of(st.just(0), st.just(0), st.integers(0, 400_000_000), st.integers(0, 3 * NS)))
lifecycle = st.tuples(st.sampled_from(["ack", "fill", "fill", "fill", "cancel", "venue_reject"]),
                      st.integers(0, 10**6), st.integers(1, 30))
ops = st.lists(st.one_of(intent, intent, lifecycle), min_size=20, max_size=150)


class Model:
    """Independent bookkeeping of position, live orders (in flight or open) and fills."""

    def __init__(self):
        self.position = 0
        self.live = {}  # id -> [side, remaining, price, acked]

    def pending(self, side):
        return [o for o in self.live.values() if o[0] == side]

    def exposure(self, side, mid, extra=(0, 0)):
        sgn = 1 if side == "buy" else -1
        lots = sgn * self.position + sum(o[1] for o in self.pending(side)) + extra[0]
        notional = sgn * self.position * mid + sum(o[1] * o[2] for o in self.pending(side)) + extra[0] * extra[1]
        return lots, notional

    def reduces(self, side, qty):
        lots = sum(o[1] for o in self.pending(side)) + qty
        if side == "buy":
            return self.position < 0 and self.position + lots <= 0
        return self.position > 0 and self.position - lots >= 0

    def oracle(self, side, qty, price, mid, tripped, cfg):
        """The expected reason, rate limit aside."""
        if tripped and not self.reduces(side, qty):
            return "KillSwitch"
        dev = abs(price - mid)
        if dev > cfg["collar_ticks"] or dev * 10_000 > cfg["collar_bps"] * mid:
            return "PriceCollar"
        if len(self.live) >= cfg["max_open_orders"]:
            return "MaxOpenOrders"
        lots, notional = self.exposure(side, mid, (qty, price))
        if lots > cfg["max_position_lots"]:
            return "MaxPosition"
        if notional > cfg["max_notional"]:
            return "MaxNotional"
        return "ok"


@pytest.mark.parametrize("cfg", [CFG, {**CFG, "rate_capacity": 0},
                                 {**CFG, "rate_capacity": 0, "max_open_orders": 30, "max_notional": 30_000},
                                 {**CFG, "rate_capacity": 0, "max_open_orders": 30, "max_notional": 10**9}],
                         ids=["rate-limited", "no-rate-limit", "notional-binds", "position-binds"])
@settings(max_examples=300, deadline=None)
@given(ops=ops, rejects_trip=st.sampled_from([0, 0, 6]), trip_at=st.integers(0, 200))
def test_random_sequences_respect_every_cap(cfg, ops, rejects_trip, trip_at):
    """trip_at: the step of a manual kill-switch trip (beyond the sequence: never)."""
    k = risk.KillSwitch({"max_consecutive_rejects": rejects_trip, "max_latency_ns": 0, "max_drawdown": 1.0})
    c = risk.PreTradeChecks(cfg, k)
    m = Model()
    now = 0
    next_id = 1
    accepted_times = []
    expected_counts = dict.fromkeys(risk.REJECT_REASONS, 0)
    for step, op in enumerate(ops):
        if step == trip_at:
            k.trip("manual")
        kind = op[0]
        if kind == "intent":
            _, side, qty, off, mid, dt = op
            now += dt
            price = mid + off
            tripped = k.tripped
            was_reducing = m.reduces(side, qty)
            want = m.oracle(side, qty, price, mid, tripped, cfg)
            got = c.check(next_id, side, qty, price, mid, now)
            expected_counts[got] += 1
            event(f"{got}{' after trip' if tripped else ''}")  # coverage shown by --hypothesis-show-statistics
            assert got == want or (want == "ok" and got == "RateLimit"), (got, want)
            if got == "ok":
                m.live[next_id] = [side, qty, price, False]
                accepted_times.append(now)
                lots, notional = m.exposure(side, mid)
                # no accepted order makes position + open + in-flight exceed the caps
                assert lots <= cfg["max_position_lots"]
                assert notional <= cfg["max_notional"]
                assert len(m.live) <= cfg["max_open_orders"]
                if tripped:  # after the kill switch only |position|-reducing orders pass
                    assert was_reducing and lots <= 0  # worst case never crosses zero
                # token bucket: never more than capacity + rate × elapsed, over any window
                for i, t0 in enumerate(accepted_times if cfg["rate_capacity"] else []):
                    n = len(accepted_times) - i
                    assert n * NS <= cfg["rate_capacity"] * NS + cfg["rate_per_second"] * (now - t0)
            next_id += 1
        else:
            _, pick, qty = op
            if not m.live:
                assert not getattr(c, "on_" + kind)(10**9) if kind != "fill" else not c.on_fill(10**9, 1)
                continue
            oid = sorted(m.live)[pick % len(m.live)]
            o = m.live[oid]
            if kind == "ack":
                assert c.on_ack(oid)
                o[3] = True
            elif kind == "fill":
                q = min(qty, o[1])
                assert c.on_fill(oid, qty)
                o[1] -= q
                m.position += q if o[0] == "buy" else -q
                if o[1] == 0:
                    del m.live[oid]
            else:
                assert getattr(c, "on_" + kind)(oid)
                del m.live[oid]
        # the C++ state agrees with the model after every step
        assert c.position == m.position
        assert c.live_orders == len(m.live)
        for side, got in (("buy", c.buys), ("sell", c.sells)):
            orders = m.pending(side)
            assert got["inflight_qty"] == sum(o[1] for o in orders if not o[3])
            assert got["open_qty"] == sum(o[1] for o in orders if o[3])
            assert got["notional"] == sum(o[1] * o[2] for o in orders)
    # every rejection is counted under its reason
    assert c.counters() == expected_counts


@settings(max_examples=200, deadline=None)
@given(cap=st.integers(1, 20), rate=st.integers(1, 1000),
       gaps=st.lists(st.integers(0, 50_000_000), min_size=1, max_size=200))
def test_token_bucket_bound(cap, rate, gaps):
    c = loose(rate_capacity=cap, rate_per_second=rate)
    now, times = 0, []
    for i, g in enumerate(gaps):
        now += g
        if c.check(i, "buy", 1, 100, 100, now) == "ok":
            times.append(now)
    for i, t0 in enumerate(times):
        assert (len(times) - i) * NS <= cap * NS + rate * (times[-1] - t0)
    # and it is not stingier than the bucket: the first `cap` orders always pass
    assert len(times) >= min(cap, len(gaps))
