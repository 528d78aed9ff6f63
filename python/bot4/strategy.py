"""Strategies written in Python: subclass `bot4.Strategy` and implement `on_decision(ctx)`.

The core calls `on_decision` at every decision point of the strategy's instrument (with the GIL
taken for the call; nothing else in the loop is Python) with a read-only
`bot4._core.engine.DecisionContext`: time (`ts`, ns), `instrument`, the touch (`bid`, `ask`,
`bid_qty`, `ask_qty` in ticks and lots, `two_sided`, `mid`), the feature row (`features`, names in
`bot4.features.names()`; `feature(i)`), each loaded model's output (`models`; `p` = the probability
to trade on: slot 0's, or the ensemble's when the config has an [ensemble] section, which also sets
`has_ensemble`, `ensemble` and the breaker's `size_scale`, applied to entry sizes by the router), the
position (`position` lots, `average_entry` ticks, `realised`, `unrealised`, `fees`, `equity` in
quote units), `flattening`, risk `headroom` and the open orders (`open_orders()`, `order(id)`, `group(id)`).

It states intents either by returning them (an iterable of the intent objects below, applied in
order) or by calling the context directly (`ctx.submit(...)`, `ctx.target(...)`, `ctx.cancel(id)`,
`ctx.replace(id, price, qty)`, `ctx.flatten()`; each returns the outcome at once). `ctx.signal`
(+1/-1/0) is recorded with the decision. Fills and rejections of its orders arrive at
`on_fill(fill)` and `on_reject(reject)`.

Prices are integer ticks and sizes integer lots of the instrument (`ctx.tick_size`, `ctx.lot_size`
convert); a size of 0 on an order asks the risk stage to size it from `probability`.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import msgspec

Side = Literal["buy", "sell"]
_I = dict(frozen=True, kw_only=True)


class Strategy:
    """Base class of Python strategies (see the module docstring)."""

    #: True for a strategy that holds inventory on purpose (a market maker): the router then does
    #: not flatten a position that no working order protects.
    holds_inventory: bool = False
    #: True for a strategy that reads only the book: a decision at every book message of the
    #: instrument, whatever the feature config says, without a model call.
    book_only: bool = False

    def on_decision(self, ctx) -> Iterable[Intent] | None:
        """Called at each decision point of the strategy's instrument with the read-only DecisionContext
        (see the module docstring). Return the intents to apply, in order, or None after acting
        through `ctx` directly. Subclasses must implement it.
        """
        raise NotImplementedError

    def on_fill(self, fill) -> None:
        """A fill of one of this strategy's orders (bot4._core.engine.FillInfo)."""

    def on_reject(self, reject) -> None:
        """A rejection of one of this strategy's orders (bot4._core.engine.RejectInfo)."""


class Intent(msgspec.Struct, **_I):
    """Base of the intents on_decision may return (Limit, Market, Stop, Cancel); frozen msgspec Structs."""

    def _apply(self, ctx) -> Any:
        raise NotImplementedError


class Limit(Intent):
    """A limit order: side, price (ticks), qty (lots; 0 = sized by the risk stage from `probability`)."""

    side: Side
    price: int          # ticks
    qty: int = 0        # lots; 0 = sized by the risk stage from `probability`
    probability: float = 0.5
    reduce_only: bool = False
    client_id: int = 0

    def _apply(self, ctx):
        return ctx.submit("limit", self.side, self.price, self.qty, probability=self.probability,
                          reduce_only=self.reduce_only, client_id=self.client_id)


class Market(Intent):
    """A market order: side and qty (lots; 0 = sized by the risk stage from `probability`)."""

    side: Side
    qty: int = 0
    probability: float = 0.5
    reduce_only: bool = False
    client_id: int = 0

    def _apply(self, ctx):
        return ctx.submit("market", self.side, 0, self.qty, probability=self.probability,
                          reduce_only=self.reduce_only, client_id=self.client_id)


class Stop(Intent):
    """A stop (market on trigger): side, trigger price (ticks) and qty (lots)."""

    side: Side
    price: int          # trigger, ticks
    qty: int
    reduce_only: bool = False
    client_id: int = 0

    def _apply(self, ctx):
        return ctx.submit("stop", self.side, self.price, self.qty, reduce_only=self.reduce_only,
                          client_id=self.client_id)


class Bracket(Intent):
    """An entry protected by a stop and a take-profit leg placed from its fill VWAP."""

    side: Side
    price: int = 0      # entry limit, ticks (unused for a market entry)
    qty: int = 0
    stop_ticks: int = -1     # -1: the engine default
    target_ticks: int = -1
    market: bool = False
    probability: float = 0.5
    client_id: int = 0

    def _apply(self, ctx):
        return ctx.submit("bracket", self.side, self.price, self.qty, probability=self.probability,
                          entry="market" if self.market else "limit", stop_ticks=self.stop_ticks,
                          target_ticks=self.target_ticks, client_id=self.client_id)


class Oco(Intent):
    """Two orders, one cancels the other; `second` is (kind, side, price, qty)."""

    kind: Literal["limit", "market", "stop"]
    side: Side
    price: int
    qty: int
    second: tuple[str, str, int, int]
    client_id: int = 0

    def _apply(self, ctx):
        return ctx.submit("oco", self.side, self.price, self.qty, entry=self.kind, second=self.second,
                          client_id=self.client_id)


class Oto(Intent):
    """A parent order whose fills release `child` = (kind, side, price, qty)."""

    kind: Literal["limit", "market", "stop"]
    side: Side
    price: int
    qty: int
    child: tuple[str, str, int, int]
    client_id: int = 0

    def _apply(self, ctx):
        return ctx.submit("oto", self.side, self.price, self.qty, entry=self.kind, second=self.child,
                          client_id=self.client_id)


class Cancel(Intent):
    """Cancel the order with id `order_id`."""

    order_id: int

    def _apply(self, ctx):
        return ctx.cancel(self.order_id)


class Replace(Intent):
    """Cancel `order_id` and send the same order at a new price / size."""

    order_id: int
    price: int
    qty: int

    def _apply(self, ctx):
        return ctx.replace(self.order_id, self.price, self.qty)


class Target(Intent):
    """Move the position to `position` lots (nothing while an order of the instrument works)."""

    position: int
    policy: Literal["passive", "aggressive"] = "passive"
    bracket: bool = False
    stop_ticks: int = -1
    target_ticks: int = -1

    def _apply(self, ctx):
        return ctx.target(self.position, self.policy, self.bracket, self.stop_ticks, self.target_ticks)


class Flatten(Intent):
    """Cancel everything of the instrument, then close the position."""

    def _apply(self, ctx):
        return ctx.flatten()


__all__ = ["Bracket", "Cancel", "Flatten", "Intent", "Limit", "Market", "Oco", "Oto", "Replace", "Stop", "Strategy",
           "Target"]
