"""Enum codes carried as small integers, with their names taken from the core's declaration
(bot4._core.engine.schema()["names"]; index = code), so the bus, the result arrays and the core
agree on what each code means and a code outside the list is rejected at decode."""

from __future__ import annotations

from typing import Annotated

import msgspec

from bot4 import _core

_NAMES = _core.engine.schema()["names"]

ORDER_TYPES: tuple[str, ...] = tuple(_NAMES["order_types"])
ORDER_STATES: tuple[str, ...] = tuple(_NAMES["order_states"])
ORDER_EVENT_KINDS: tuple[str, ...] = tuple(_NAMES["order_event_kinds"])
ORDER_ROLES: tuple[str, ...] = tuple(_NAMES["order_roles"])
DECISION_ACTIONS: tuple[str, ...] = tuple(_NAMES["decision_actions"])
#: Order and fill sides (bot4.events.BID = 0 = buy, ASK = 1 = sell).
SIDES: tuple[str, ...] = ("buy", "sell")


# Annotated aliases (not built by a helper) so type checkers see plain ints.
OrderType = Annotated[int, msgspec.Meta(ge=0, lt=len(ORDER_TYPES), description=f"index into {ORDER_TYPES}")]
OrderState = Annotated[int, msgspec.Meta(ge=0, lt=len(ORDER_STATES), description=f"index into {ORDER_STATES}")]
OrderEventKind = Annotated[int, msgspec.Meta(ge=0, lt=len(ORDER_EVENT_KINDS),
                                             description=f"index into {ORDER_EVENT_KINDS}")]
OrderRole = Annotated[int, msgspec.Meta(ge=0, lt=len(ORDER_ROLES), description=f"index into {ORDER_ROLES}")]
DecisionAction = Annotated[int, msgspec.Meta(ge=0, lt=len(DECISION_ACTIONS),
                                             description=f"index into {DECISION_ACTIONS}")]


def name(names: tuple[str, ...], code: int) -> str:
    """The name of `code` in `names` ("unknown(<code>)" outside the list)."""
    return names[code] if 0 <= code < len(names) else f"unknown({code})"
