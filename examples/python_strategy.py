"""The built-in threshold_bracket rule written as a Python strategy (a bot4.Strategy subclass).

    bot4 backtest --strategy examples/python_strategy.py ...
    python examples/python_strategy.py MODEL_DIR   # this rule on the embedded stream

p (the model's P(up)) >= long_threshold -> long; <= 1 - long_threshold -> short; else flat. An
entry (a bracket: stop and take-profit legs from the entry's fill VWAP) goes out only when flat
with nothing working; an unfilled entry older than order_ttl_ns, or facing a flat/opposite
signal, is cancelled; an open position is flattened when the signal turns against it
(exit_on_flip) or P(its side) < exit_threshold. The core calls on_decision with the GIL taken,
at decision points only; prices are ticks, sizes lots, times ns.
"""
from __future__ import annotations

import math

import bot4.strategy as S


class Threshold(S.Strategy):
    def __init__(self, long_threshold=0.55, exit_threshold=0.0, exit_on_flip=True, market_entry=False,
                 stop_ticks=20, target_ticks=30, order_ttl_ns=5_000_000_000, fixed_qty_lots=0, max_qty_lots=0,
                 min_gap_ns=0):
        if not 0.0 <= long_threshold <= 1.0:
            raise ValueError("long_threshold: expected a probability in [0, 1]")
        self.long_threshold, self.exit_threshold = long_threshold, exit_threshold
        self.exit_on_flip, self.market_entry = exit_on_flip, market_entry
        self.stop_ticks, self.target_ticks, self.order_ttl_ns = stop_ticks, target_ticks, order_ttl_ns
        self.fixed_qty_lots, self.max_qty_lots, self.min_gap_ns = fixed_qty_lots, max_qty_lots, min_gap_ns
        self.entry_id = 0
        self.entry_sent_ts = 0
        self.last_entry_ts = -(2 ** 62)
        self.fills = 0

    def _working(self, ctx, order_id) -> bool:
        o = ctx.order(order_id) if order_id else None
        return o is not None and o["working"]

    def _any_working(self, ctx) -> bool:
        if self._working(ctx, self.entry_id):
            return True
        g = ctx.group(self.entry_id) if self.entry_id else None
        return g is not None and g["kind"] == "bracket" and (
            self._working(ctx, g["stop"]) or self._working(ctx, g["target"]))

    def on_decision(self, ctx):
        p, thr = ctx.p, self.long_threshold
        target = 0
        if math.isfinite(p):
            target = 1 if p >= thr else (-1 if p <= 1.0 - thr else 0)
        ctx.signal = target
        if ctx.flattening:
            return None
        if ctx.position != 0 and math.isfinite(p):  # the model turned against the position
            d = 1 if ctx.position > 0 else -1
            p_side = p if d > 0 else 1.0 - p
            if (self.exit_on_flip and target == -d) or (self.exit_threshold > 0.0 and p_side < self.exit_threshold):
                return [S.Flatten()]
        if self._working(ctx, self.entry_id):
            o = ctx.order(self.entry_id)
            if o["state"] == "pending_cancel":
                return None  # awaiting the venue
            d = 1 if o["side"] == "buy" else -1
            stale = self.order_ttl_ns > 0 and ctx.ts - self.entry_sent_ts >= self.order_ttl_ns
            if o["filled"] == 0 and (stale or target != d):
                return [S.Cancel(order_id=self.entry_id)]  # fills may still come
            return None
        # a position with nothing working is the router's to protect (it flattens it)
        if target == 0 or ctx.position != 0 or self._any_working(ctx) or not ctx.two_sided:
            return None
        if ctx.ts - self.last_entry_ts < self.min_gap_ns:
            return None
        buy = target > 0
        price = (ctx.ask if buy else ctx.bid) if self.market_entry else (ctx.bid if buy else ctx.ask)
        r = ctx.submit("bracket", "buy" if buy else "sell", price, self.fixed_qty_lots, probability=p,
                       max_qty=self.max_qty_lots, entry="market" if self.market_entry else "limit",
                       stop_ticks=self.stop_ticks, target_ticks=self.target_ticks)
        if r["ok"]:
            self.entry_id = r["order_id"]
            self.entry_sent_ts = self.last_entry_ts = ctx.ts
        return None

    def on_fill(self, fill) -> None:
        self.fills += 1


if __name__ == "__main__":
    # python examples/python_strategy.py MODEL_DIR  (a model folder from `bot4 train`, or the
    # model/ folder of a `bot4 demo` run): this rule on the embedded stream
    import sys

    import bot4.backtest
    import bot4.sim

    if len(sys.argv) != 2:
        sys.exit("usage: python examples/python_strategy.py MODEL_DIR")
    res = bot4.backtest.run(bot4.sim.generate(n_events=200_000), model=sys.argv[1], strategy=Threshold)
    summary = res.as_json()
    print({k: summary[k] for k in ("decisions", "orders", "fills", "pnl")})
