"""A deliberately simple pure-Python L2 book with the core's documented policy, for
differential tests."""

from __future__ import annotations

from bot4.events import FLAG_CLEAR, FLAG_LAST

NO_BID = -(2**63)
NO_ASK = 2**63 - 1


class ReferenceL2Book:
    def __init__(self, prune_crossed: bool = True):
        self.sides = ({}, {})
        self.prune_crossed = prune_crossed
        self.last_seq = None
        self.status_counts: dict[str, int] = {}

    def best_bid(self) -> int:
        return max(self.sides[0]) if self.sides[0] else NO_BID

    def best_ask(self) -> int:
        return min(self.sides[1]) if self.sides[1] else NO_ASK

    def _count(self, status: str) -> None:
        self.status_counts[status] = self.status_counts.get(status, 0) + 1

    def apply(self, side: int, price: int, qty: int, seq: int, flags: int) -> str:
        status = self._apply(side, price, qty, seq, flags)
        self._count(status)
        rejected = status not in ("ok", "delete_absent")
        if flags & FLAG_LAST and not rejected and self.best_bid() >= self.best_ask():
            self._count("crossed")
            if self.prune_crossed:
                if side == 0:
                    while self.sides[1] and self.best_ask() <= self.best_bid():
                        del self.sides[1][self.best_ask()]
                else:
                    while self.sides[0] and self.best_bid() >= self.best_ask():
                        del self.sides[0][self.best_bid()]
        return status

    def _apply(self, side, price, qty, seq, flags) -> str:
        if flags & FLAG_CLEAR:
            self.sides = ({}, {})
            self.last_seq = None
        if self.last_seq is not None and seq < self.last_seq:
            return "seq_regression"
        if qty < 0:
            return "negative_qty"
        if price <= 0:
            return "bad_price"
        if side not in (0, 1):
            return "bad_side"
        levels = self.sides[side]
        self.last_seq = seq
        if qty == 0:
            if price not in levels:
                return "delete_absent"
            del levels[price]
        else:
            levels[price] = qty
        return "ok"

    def depth(self, side: int, n: int) -> list[tuple[int, int]]:
        prices = sorted(self.sides[side], reverse=(side == 0))[:n]
        return [(p, self.sides[side][p]) for p in prices]
