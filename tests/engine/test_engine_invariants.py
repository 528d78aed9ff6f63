"""End-to-end invariants of the trading engine on real-data slices, with hypothesis drawing the
engine config and the slice.

Every check rebuilds its own view from the engine's output records (orders in emission order,
fills in delivery order, decision / equity records) and the config that was passed in; nothing
is read back from the engine's internal state:

- OCO: the stop and target legs never fill beyond the entry's filled quantity; on every order
  record of a working leg, qty - filled == entry filled - legs filled; both legs sit at the
  configured distance from the current entry fill VWAP, rounded away from it
  (core/orders/order_manager.hpp);
- position: the engine's position (decision and equity records) equals the running sum of the
  venue fills, and every venue fill was accepted by the order manager;
- risk caps, in-flight exposure included: at each risk-checked submission the working orders
  (sent and not terminal, acknowledged or not) respect max_open_orders, max_position_lots (same
  side, worst case) and max_notional; the submissions fit the token bucket; |position| stays
  within max_position_lots;
- client ids: one New per order id, one entry per "entry sent" decision, legs created once;
- STP: after each batch of order events no two own working non-stop orders cross, and own
  fills never trade with each other;
- equity: realised, fees and unrealised rebuilt in Python from the fills and the replayed book
  equal the equity records (and equity = realised + unrealised - fees).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
import hypothesis.strategies as st  # noqa: E402
from hypothesis import HealthCheck, example, given, settings  # noqa: E402

from bot4 import _core  # noqa: E402
from recordings import BTCUSDT, data_path  # noqa: E402

DATA = data_path(*BTCUSDT)

# record enums (python/bot4/backtest/engine.py: ORDER_TYPES, ORDER_STATES, ORDER_EVENT_KINDS, ORDER_ROLES)
LIMIT, MARKET, STOP = 0, 1, 2
TERMINAL = {3, 4, 5, 6}                      # filled, cancelled, rejected, expired
PENDING_CANCEL = 7   # core/orders (confirm_cancels): still fills, no longer sized/priced or STP-relevant
K_NEW, K_ACK, K_FILL, K_CANCEL, K_REJECT, K_REPLACE, K_EXPIRE = range(7)
SINGLE, ENTRY, STOP_LEG, TARGET_LEG = range(4)
RISK_EXEMPT = 1   # OrderRec.flags: protective leg sent although the pre-trade checks refused it
FILLED, EXPIRED = 3, 6   # order states
LEGS = (STOP_LEG, TARGET_LEG)
BUY = 0

TRAIN_FRACTION = 0.4    # the model is trained on the first 40 % of the recording; slices come after
SETTINGS = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


# ---------------------------------------------------------------- data, model, runs
class _World:
    data = None
    model = None
    t_lo = 0
    t_hi = 0


_W = _World()


@pytest.fixture(scope="module", autouse=True)
def world(tmp_path_factory, shared_data):
    assert DATA.exists(), f"reference recording missing: {DATA} (CI has ../shared beside the checkout)"
    from bot4.data import load
    from bot4.data.market_data import MarketData
    from bot4.models import load as load_model
    from bot4.research import TrainConfig, train

    d = load(DATA)
    ts = d.book["ts_local"]
    split = int(ts[0] + (ts[-1] - ts[0]) * TRAIN_FRACTION)
    b, t = d.book[ts < split], d.trades[d.trades["ts_local"] < split]
    out = tmp_path_factory.mktemp("inv_model")
    # short horizon, no dead zone, fast learning: a small model whose p actually moves (both sides trade)
    train(MarketData(specs=d.specs, book=np.ascontiguousarray(b), trades=np.ascontiguousarray(t), venue=d.venue),
          TrainConfig(n_estimators=24, max_depth=3, learning_rate=0.3, horizon=20, dead_zone_bp=0.0),
          out, progress=False)
    _W.data, _W.model = d, load_model(out)
    _W.t_lo, _W.t_hi = split, int(ts[-1]) + 1
    _run.cache_clear()
    yield _W
    _run.cache_clear()


def _slice(start_frac, seconds):
    from bot4.data.market_data import MarketData

    d = _W.data
    lo = _W.t_lo + int((_W.t_hi - _W.t_lo) * start_frac)
    hi = lo + int(seconds * 1e9)
    bm = (d.book["ts_local"] >= lo) & (d.book["ts_local"] < hi)
    tm = (d.trades["ts_local"] >= lo) & (d.trades["ts_local"] < hi)
    return MarketData(specs=d.specs, book=np.ascontiguousarray(d.book[bm]),
                      trades=np.ascontiguousarray(d.trades[tm]), venue=d.venue)


def _config(s):
    return {
        "strategy": {"long_threshold": s["long_threshold"], "market_entry": s["market_entry"],
                     "stop_ticks": s["stop_ticks"], "target_ticks": s["target_ticks"],
                     "order_ttl_ns": s["order_ttl_ns"], "fixed_qty_lots": s["fixed_qty_lots"],
                     "max_qty_lots": s["max_qty_lots"]},
        "pre_trade": {"max_position_lots": s["max_position_lots"], "max_open_orders": s["max_open_orders"],
                      "rate_capacity": s["rate_capacity"], "rate_per_second": s["rate_per_second"],
                      "max_notional": s["max_notional"]},
        "sim": {"entry_latency_ns": s["entry_latency_ns"], "response_latency_ns": s["response_latency_ns"],
                "maker_bps": s["maker_bps"], "taker_bps": s["taker_bps"]},
        "engine": {"stp": s["stp"]},
    }


SCENARIOS = st.fixed_dictionaries({
    # the module's model outputs p in about {0, 0.12, 0.16, 0.5}: these thresholds give long/short mixes
    "long_threshold": st.sampled_from([0.1, 0.13, 0.16, 0.3, 0.5]),
    "market_entry": st.booleans(),
    "stop_ticks": st.integers(0, 25),
    "target_ticks": st.integers(0, 25),
    "order_ttl_ns": st.sampled_from([0, 20_000_000, 200_000_000, 1_000_000_000, 3_000_000_000]),
    "fixed_qty_lots": st.sampled_from([0, 1, 1, 2, 3, 5]),    # 0: the sizer (capped by max_qty_lots)
    "max_qty_lots": st.sampled_from([0, 2, 7]),
    "entry_latency_ns": st.sampled_from([1, 50_000, 200_000, 5_000_000]),
    "response_latency_ns": st.sampled_from([1, 50_000, 200_000, 5_000_000]),
    "maker_bps": st.sampled_from([-1.0, 0.0, 2.0]),
    "taker_bps": st.sampled_from([0.0, 5.0]),
    "max_position_lots": st.sampled_from([1, 4, 8, 12, 12]),
    "max_open_orders": st.sampled_from([1, 3, 5, 5]),
    "rate_capacity": st.integers(1, 6),
    "rate_per_second": st.integers(0, 5),
    "max_notional": st.sampled_from([10_000_000_000, 10_000_000_000, 4_000_000]),  # tick*lots (BTC ~ 600k ticks)
    "stp": st.integers(0, 3),
    "start": st.floats(0.0, 0.85),
    "seconds": st.sampled_from([20, 45, 90]),
})

# A scenario where an entry cancelled on TTL is filled at the venue before the cancel lands (the
# fill comes back after the local cancel): see test_position_is_accepted_fills.
LATE_FILL = {"long_threshold": 0.13, "market_entry": False, "stop_ticks": 3, "target_ticks": 4,
             "order_ttl_ns": 200_000_000, "fixed_qty_lots": 3, "max_qty_lots": 0, "entry_latency_ns": 200_000,
             "response_latency_ns": 200_000, "maker_bps": 2.0, "taker_bps": 5.0, "max_position_lots": 10,
             "max_open_orders": 4, "rate_capacity": 5, "rate_per_second": 2, "max_notional": 10_000_000_000,
             "stp": 0, "start": 0.0, "seconds": 90}


@lru_cache(maxsize=256)
def _run_key(key):
    from bot4.backtest import run

    s = dict(key)
    data = _slice(s["start"], s["seconds"])
    cfg = _config(s)
    res = run(data, _W.model, config=cfg, progress=False)
    return res, cfg, data


def _run(s):
    return _run_key(tuple(sorted(s.items())))


_run.cache_clear = _run_key.cache_clear


# ---------------------------------------------------------------- reconstruction helpers
def _fdiv(a, b):   # floor for b > 0
    return a // b


def _cdiv(a, b):   # ceil for b > 0
    return -((-a) // b)


def _trunc_div(a, b):   # C++ integer division (toward zero)
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def leg_prices(entry_side, notional, filled, stop_d, target_d):
    """Stop and target from the entry fill VWAP = notional / filled, rounded away from the VWAP."""
    lo, hi = _fdiv(notional, filled), _cdiv(notional, filled)
    if entry_side == BUY:
        return lo - stop_d, hi + target_d
    return hi + stop_d, lo - target_d


def crosses(a, b):
    """The STP crossing rule (order_manager.hpp): stops never count; market orders always cross."""
    if a["side"] == b["side"] or STOP in (a["type"], b["type"]):
        return False
    if MARKET in (a["type"], b["type"]):
        return True
    buy, sell = (a, b) if a["side"] == BUY else (b, a)
    return buy["price"] >= sell["price"]


def signed(fills):
    return np.where(fills["side"] == BUY, fills["qty"], -fills["qty"]).astype(np.int64)


def position_at(fills, ts):
    """Σ signed fills received at or before each ts (fills are delivered before the decision)."""
    cum = np.concatenate([[0], np.cumsum(signed(fills))])
    return cum[np.searchsorted(fills["ts"], ts, side="right")]


class BookTops:
    """The venue's book replayed in Python's own L2Book: candidate (bid, ask) at a local time."""

    def __init__(self, data):
        book = data.book
        self.tops = _core.book.L2Book().apply(book, record_at=np.arange(book.size, dtype=np.int64))
        self.t = np.maximum.accumulate(book["ts_local"]) if book.size else book["ts_local"]

    def candidates(self, now):
        # the decision at `now` sees the book after some event whose merged time is `now` (book
        # events first on ties), or after the last one before it
        lo = int(np.searchsorted(self.t, now, side="left")) - 1
        hi = int(np.searchsorted(self.t, now, side="right")) - 1
        return [self.tops[j] if j >= 0 else None for j in range(max(lo, -1), hi + 1)]

    @staticmethod
    def mid(top):
        if top is None or top["bid_price"] == _core.NO_BID_PRICE or top["ask_price"] == _core.NO_ASK_PRICE:
            return 0
        return (int(top["bid_price"]) + int(top["ask_price"])) // 2


class Replay:
    """Walks the order records in emission order (fills matched to their Fill events) and checks
    the per-record invariants; violations are collected as strings."""

    def __init__(self, res, cfg, data, position_caps=True):
        self.res, self.cfg, self.data = res, cfg, data
        self.position_caps = position_caps   # also check worst-case exposure after every batch
        self.pt = {"max_position_lots": 100, "max_open_orders": 50, "max_notional": 10_000_000_000,
                   "rate_capacity": 20, "rate_per_second": 10, **cfg.get("pre_trade", {})}
        st_ = cfg["strategy"]
        self.stop_d, self.target_d = int(st_["stop_ticks"]), int(st_["target_ticks"])
        self.orders = {}            # id -> dict(side, type, role, price, qty, filled, status, notional, entry)
        self.brackets = {}          # entry id -> [stop id, target id] (the current pair)
        self.all_legs = {}          # entry id -> every leg it ever had (a fresh pair may replace spent legs)
        self.errors = []
        self.tops = None

    def position(self, ts):
        """Engine position at local time ts (the last decision record at or before it)."""
        e = self.res.equity
        k = int(np.searchsorted(e["ts"], ts, side="right")) - 1
        return int(e["position"][k]) if k >= 0 else 0

    def err(self, msg):
        if len(self.errors) < 20:
            self.errors.append(msg)

    def working(self):
        return [o for o in self.orders.values() if o["status"] not in TERMINAL]

    def exited(self, entry_id):
        """Lots the bracket's legs (all it ever had) have closed."""
        return sum(self.orders[lid]["filled"] for lid in self.all_legs.get(entry_id, ()))

    def check_leg(self, o, where):
        e = self.orders[o["entry"]]
        legs_filled = self.exited(o["entry"])
        if legs_filled > e["filled"]:
            self.err(f"{where}: OCO legs filled {legs_filled} > entry filled {e['filled']} (entry {o['entry']})")
        if o["status"] in TERMINAL or o["status"] == PENDING_CANCEL:
            return
        open_qty = e["filled"] - legs_filled
        if o["qty"] - o["filled"] != open_qty:
            self.err(f"{where}: leg {o['id']} qty-filled {o['qty'] - o['filled']} != open filled qty {open_qty}")
        stop_px, target_px = leg_prices(e["side"], e["notional"], e["filled"], self.stop_d, self.target_d)
        want = stop_px if o["role"] == STOP_LEG else target_px
        if o["price"] != want:
            self.err(f"{where}: leg {o['id']} ({'stop' if o['role'] == STOP_LEG else 'target'}) price {o['price']} "
                     f"!= {want} from entry VWAP {e['notional']}/{e['filled']}")
        if o["side"] == e["side"] or o["type"] != (STOP if o["role"] == STOP_LEG else LIMIT):
            self.err(f"{where}: leg {o['id']} has side {o['side']} type {o['type']} for entry side {e['side']}")

    def batch_end(self, ts):
        work = self.working()
        for o in work:
            if o["role"] in LEGS:
                self.check_leg(o, f"batch end ts={ts}")
        active = [o for o in work if o["status"] != PENDING_CANCEL]
        for i, a in enumerate(active):
            for b in active[i + 1:]:
                if a["role"] in LEGS and b["role"] in LEGS:
                    continue
                if crosses(a, b):
                    self.err(f"ts={ts}: own working orders cross: {a['id']} {a} / {b['id']} {b}")
        if not self.position_caps:
            return
        pos = self.position(ts)
        cap = int(self.pt["max_position_lots"])
        for side, sgn in ((0, 1), (1, -1)):
            exposure = sgn * pos + sum(o["qty"] - o["filled"] for o in work if o["side"] == side
                                       and o["role"] not in LEGS)
            if exposure > cap:
                self.err(f"ts={ts}: worst-case {'buy' if side == 0 else 'sell'} exposure {exposure} > {cap}")

    def admission(self, r, ts, bucket):
        """A risk-checked submission (entry or kill-switch close) at its New record."""
        pt = self.pt
        work = self.working()
        if len(work) >= pt["max_open_orders"]:
            self.err(f"ts={ts}: order {int(r['id'])} sent with {len(work)} working orders "
                     f"(max_open_orders {pt['max_open_orders']})")
        pos = self.position(ts)
        side = int(r["side"])
        sgn = 1 if side == BUY else -1
        same = [o for o in work if o["side"] == side]
        lots = sgn * pos + sum(o["qty"] - o["filled"] for o in same) + int(r["qty"])
        if lots > pt["max_position_lots"]:
            self.err(f"ts={ts}: order {int(r['id'])} makes worst-case same-side exposure {lots} lots "
                     f"> max_position_lots {pt['max_position_lots']}")
        # notional: some book state at this time must allow it (market orders are priced at the touch)
        if self.tops is None:
            self.tops = BookTops(self.data)
        notional_ok = False
        for top in self.tops.candidates(ts):
            mid = BookTops.mid(top)
            if mid <= 0:
                continue
            touch = int(top["ask_price"] if side == BUY else top["bid_price"])
            px = int(r["price"]) if r["type"] != MARKET else touch
            n = sgn * pos * mid + int(r["qty"]) * px
            n += sum((o["qty"] - o["filled"]) * (o["price"] if o["type"] != MARKET else touch) for o in same)
            notional_ok |= n <= pt["max_notional"]
        if not notional_ok:
            self.err(f"ts={ts}: order {int(r['id'])} breaks max_notional {pt['max_notional']}")
        if not bucket.take(ts):
            self.err(f"ts={ts}: order {int(r['id'])} sent with an empty token bucket "
                     f"(capacity {pt['rate_capacity']}, {pt['rate_per_second']}/s)")

    def run(self):
        res = self.res
        rec = res.orders
        fills = res.fills
        acc = fills[fills["accepted"] == 1]
        bucket = TokenBucket(int(self.pt["rate_capacity"]), int(self.pt["rate_per_second"]))
        k_fill = 0
        last_entry_fill = None
        for i, r in enumerate(rec):
            ts, oid, kind, role = int(r["ts"]), int(r["id"]), int(r["kind"]), int(r["role"])
            if i > 0 and ts != int(rec[i - 1]["ts"]):
                self.batch_end(int(rec[i - 1]["ts"]))
            if ts < (int(rec[i - 1]["ts"]) if i else ts):
                self.err(f"order records out of time order at {i}")
            if kind == K_NEW:
                if oid in self.orders:
                    self.err(f"ts={ts}: second New for order id {oid}")
                    continue
                o = dict(id=oid, side=int(r["side"]), type=int(r["type"]), role=role, price=int(r["price"]),
                         qty=int(r["qty"]), filled=0, status=int(r["status"]), notional=0, entry=None)
                if role in LEGS:
                    e = last_entry_fill   # legs are created by (right after) their entry's first fill
                    if e is None:
                        self.err(f"ts={ts}: leg {oid} not created right after an entry fill")
                        continue
                    legs = self.brackets.setdefault(e, [None, None])
                    slot = 0 if role == STOP_LEG else 1
                    # a fresh pair only replaces spent legs (terminal or cancel-pending), never live ones
                    prev = self.orders.get(legs[slot]) if legs[slot] is not None else None
                    if prev is not None and prev["status"] not in TERMINAL and prev["status"] != PENDING_CANCEL:
                        self.err(f"ts={ts}: entry {e} got a second {'stop' if slot == 0 else 'target'} leg {oid} "
                                 f"while leg {legs[slot]} is live")
                    legs[slot] = oid
                    self.all_legs.setdefault(e, []).append(oid)
                    o["entry"] = e
                    # a leg the checks admitted took a token; one they refused is sent anyway
                    # (flag RISK_EXEMPT: refusing protection would leave the position open)
                    if not int(r["flags"]) & RISK_EXEMPT and not bucket.take(ts):
                        self.err(f"ts={ts}: leg {oid} admitted with an empty token bucket")
                    self.orders[oid] = o
                    if legs[0] is not None and legs[1] is not None and all(lid in self.orders for lid in legs):
                        for lid in legs:
                            self.check_leg(self.orders[lid], f"leg New ts={ts}")
                    continue
                self.admission(r, ts, bucket)
                self.orders[oid] = o
                continue
            # the legs' News follow their entry's fill; cancels the manager makes room with (e.g. of
            # the entry's own remainder a new target would cross) may come in between
            if not ((kind == K_FILL and role == ENTRY) or kind == K_CANCEL):
                last_entry_fill = None
            o = self.orders.get(oid)
            if o is None:
                self.err(f"ts={ts}: {kind=} record for order {oid} before its New")
                continue
            if o["status"] in TERMINAL:
                self.err(f"ts={ts}: {kind=} record for terminal order {oid}")
            if kind == K_FILL:
                if k_fill >= acc.size:
                    self.err(f"ts={ts}: Fill record for {oid} without an accepted fill")
                else:
                    f = acc[k_fill]
                    if (int(f["id"]), int(f["qty"]), int(f["price"])) != (oid, int(r["qty"]), int(r["price"])):
                        self.err(f"ts={ts}: Fill record {oid} {int(r['qty'])}@{int(r['price'])} does not match "
                                 f"accepted fill {int(f['id'])} {int(f['qty'])}@{int(f['price'])}")
                    if int(f["ts"]) > ts:
                        self.err(f"ts={ts}: fill received at {int(f['ts'])}, after its order event")
                k_fill += 1
                o["filled"] += int(r["qty"])
                if role == ENTRY:
                    o["notional"] += int(r["qty"]) * int(r["price"])
                    last_entry_fill = oid
                if o["filled"] > o["qty"]:
                    self.err(f"ts={ts}: order {oid} filled {o['filled']} > qty {o['qty']}")
            elif kind == K_REPLACE:
                o["qty"], o["price"] = int(r["qty"]), int(r["price"])
            elif kind in (K_ACK, K_CANCEL, K_REJECT, K_EXPIRE):
                if int(r["qty"]) != o["qty"]:
                    self.err(f"ts={ts}: {kind=} record of {oid} has qty {int(r['qty'])}, tracked {o['qty']}")
            o["status"] = int(r["status"])
            if int(r["filled"]) != o["filled"]:
                self.err(f"ts={ts}: record of {oid} says filled {int(r['filled'])}, accepted fills sum {o['filled']}")
            if role in LEGS and o["entry"] is not None:
                # the leg's own record is consistent with the bracket at once; its peer and the
                # entry follow in the same batch (documented ordering), checked at batch end
                self.check_leg(o, f"leg record kind={kind} ts={ts}")
        if rec.size:
            self.batch_end(int(rec[-1]["ts"]))
        if k_fill != acc.size:
            self.err(f"{acc.size} accepted fills but {k_fill} Fill records")
        return self.errors


class TokenBucket:
    """Integer token bucket (pre_trade_checks.hpp): capacity, refill per second, starts full."""

    SCALE = 1_000_000_000

    def __init__(self, capacity, per_second):
        self.cap, self.rate = max(capacity, 0), max(per_second, 0)
        self._t = self.cap * self.SCALE
        self.last = None

    @property
    def tokens(self):
        return self._t / self.SCALE if self.cap > 0 else float("inf")

    def refill(self, now):
        if self.last is None:
            self.last = now
        if now > self.last:
            self._t = min(self.cap * self.SCALE, self._t + (now - self.last) * self.rate)
            self.last = now

    def take(self, now):
        if self.cap <= 0:
            return True
        self.refill(now)
        if self._t < self.SCALE:
            return False
        self._t -= self.SCALE
        return True


def accounting(fills, tick, lot):
    """Average-cost accounting of every venue fill in Python integers (C++ truncating division for
    the closed part's cost, as core/engine/trading_engine.cpp documents 'exact integers')."""
    pos, cost, realised, fees = 0, 0, 0, 0.0
    out = []
    for f in fills:
        q = int(f["qty"]) if f["side"] == BUY else -int(f["qty"])
        px = int(f["price"])
        fees += float(f["fee"])
        if pos == 0 or (pos > 0) == (q > 0):
            cost += px * q
            pos += q
        else:
            closing = min(abs(q), abs(pos))
            closed_cost = _trunc_div(cost * closing, abs(pos))
            d = 1 if pos > 0 else -1
            realised += px * closing * d - closed_cost
            cost -= closed_cost
            pos += q
            if pos == 0:
                cost = 0
            if pos != 0 and (pos > 0) != (d > 0):
                cost = px * pos
        out.append((pos, cost, realised * tick * lot, fees))
    return out


# ---------------------------------------------------------------- the tests
def _has_trading(res):
    return res.orders.size > 0


@SETTINGS
@given(s=SCENARIOS)
@example(s=LATE_FILL)
def test_orders_brackets_risk_stp(s):
    """OCO/bracket sizes and prices, risk caps with in-flight exposure, one order per client id, STP."""
    res, cfg, data = _run(s)
    hypothesis.event(f"orders>0: {_has_trading(res)}")
    hypothesis.event(f"legs: {int(np.isin(res.orders['role'], LEGS).any())}")
    errors = Replay(res, cfg, data, position_caps=False).run()
    assert not errors, "\n".join(errors)

    # client ids: every 'entry sent' decision created exactly one entry, at that decision
    rec = res.orders
    new = rec[rec["kind"] == K_NEW]
    ids, counts = np.unique(new["id"], return_counts=True)
    assert (counts == 1).all(), f"order ids with more than one New: {ids[counts > 1]}"
    sent = res.decisions[res.decisions["action"] == 1]
    entries = new[new["role"] == ENTRY]
    assert entries.size == sent.size + res.counters["om_rejected"]
    assert set(sent["ts"].tolist()) <= set(entries["ts"].tolist())
    assert np.count_nonzero(new["role"] == SINGLE) == res.counters["closes"]

    # own fills never trade with each other. A buy and a sell of ours at one time and price are
    # only allowed when the earlier one (a resting order filled by a public print) left its order
    # done -- filled, or expired by the venue's self-trade prevention -- before our taker traded
    f = res.fills
    for key in set(zip(f["ts"].tolist(), f["price"].tolist())):
        idx = np.flatnonzero((f["ts"] == key[0]) & (f["price"] == key[1]))
        if len(set(f["side"][idx].tolist())) == 1:
            continue
        for j in idx:
            if f["maker"][j]:
                continue
            for i in idx[idx < j]:
                if f["side"][i] == f["side"][j]:
                    continue
                recs = rec[(rec["id"] == f["id"][i]) & (rec["ts"] == key[0])]
                assert f["maker"][i] and recs.size and int(recs["status"][-1]) in (FILLED, EXPIRED), \
                    f"own taker fill {int(f['id'][j])} traded while own order {int(f['id'][i])} was open at {key}"
    # fees as configured
    notional = f["price"] * res.tick_size * f["qty"] * res.lot_size
    bps = np.where(f["maker"] == 1, s["maker_bps"], s["taker_bps"])
    assert np.allclose(f["fee"], notional * bps * 1e-4, rtol=1e-12, atol=1e-12)


def delivery_bounds(res, ts):
    """For each local time in ts, bounds [lo, hi] on how many fills (in delivery order) the engine
    had received: a fill is never received before its local_ts (nor before an earlier one in the
    queue: hi), and an accepted fill was received when its Fill order record was written (lo)."""
    f = res.fills
    due = np.maximum.accumulate(f["ts"]) if f.size else f["ts"]
    hi = np.searchsorted(due, ts, side="right")
    rec = res.orders[res.orders["kind"] == K_FILL]
    acc_idx = np.nonzero(f["accepted"] == 1)[0]
    n = min(acc_idx.size, rec.size)
    got = np.searchsorted(rec["ts"][:n], ts, side="right")     # accepted fills recorded by then
    lo = np.where(got > 0, acc_idx[np.maximum(got - 1, 0)] + 1 if n else 0, 0)
    return lo, hi


@SETTINGS
@given(s=SCENARIOS)
def test_position_and_equity(s):
    """Position is the running sum of the venue fills in delivery order; realised + unrealised - fees
    rebuilt from the fills and the replayed book equals every equity record."""
    res, cfg, data = _run(s)
    e, d = res.equity, res.decisions
    # one equity record per decision, and one more at the end when fills arrived after the last
    # decision (booked so pnl agrees with the fills: counted as end_of_run_fills)
    late = res.counters["end_of_run_fills"]
    assert e.size == d.size + (1 if late else 0), (e.size, d.size, late)
    assert np.array_equal(d["position"], e["position"][:d.size]) and np.array_equal(d["ts"], e["ts"][:d.size])
    assert np.allclose(e["equity"], e["realised"] + e["unrealised"] - e["fees"], rtol=0, atol=1e-9)
    if not res.fills.size:
        assert not e["position"].any() and not e["realised"].any() and not e["fees"].any()
        return
    states = [(0, 0, 0.0, 0.0)] + accounting(res.fills, res.tick_size, res.lot_size)
    lo, hi = delivery_bounds(res, e["ts"])
    tops = BookTops(data)
    tl = res.tick_size * res.lot_size
    m = 0
    for k in range(e.size):
        ts = int(e["ts"][k])
        assert lo[k] <= hi[k], f"ts={ts}: accepted fill recorded before it was due"
        # the number of fills received so far: never going back, within the bounds
        for cand in range(max(m, int(lo[k])), int(hi[k]) + 1):
            pos, cost, realised, fees = states[cand]
            if (pos == int(e["position"][k]) and abs(e["realised"][k] - realised) <= 1e-9 + 1e-12 * abs(realised)
                    and abs(e["fees"][k] - fees) <= 1e-9):
                m = cand
                break
        else:
            raise AssertionError(f"ts={ts}: equity record {e[k]} matches no prefix of the fills "
                                 f"{max(m, int(lo[k]))}..{int(hi[k])}: {states[max(m, int(lo[k])):int(hi[k]) + 1][:5]}")
        if pos == 0:
            assert e["unrealised"][k] == 0.0
            continue
        cands = {(BookTops.mid(t) * pos - cost) * tl if BookTops.mid(t) > 0 else 0.0 for t in tops.candidates(ts)}
        assert any(abs(e["unrealised"][k] - c) <= 1e-9 * max(1.0, abs(c)) for c in cands), \
            (ts, float(e["unrealised"][k]), sorted(cands))


# Pinned: an entry cancelled on TTL that the venue filled before the cancel landed. Cancels now
# stay pending until the venue confirms them (fills racing a cancel are accepted) and the venue
# enforces reduce-only on the legs, so every venue fill is accepted.
@SETTINGS
@given(s=SCENARIOS)
@example(s=LATE_FILL)
def test_position_is_accepted_fills(s):
    """Every venue fill is accepted by the order manager (the engine position equals the running
    sum of accepted fills), so |position| and the worst-case same-side exposure (position plus
    working non-protective orders) stay within max_position_lots after every batch of events."""
    res, cfg, data = _run(s)
    cap = cfg["pre_trade"]["max_position_lots"]
    assert np.abs(res.equity["position"]).max(initial=0) <= cap
    errors = [x for x in Replay(res, cfg, data).run() if "exposure" in x]
    assert not errors, "\n".join(errors)
    f = res.fills
    assert f["accepted"].all(), \
        f"{int(np.count_nonzero(f['accepted'] == 0))} venue fills refused by the order manager: " \
        f"{f[f['accepted'] == 0][:5]}"
