"""Order flow: requests from the engine to the venue (topic ORDER_REQUESTS) and what the venue
answers (topic EXECUTIONS). Order ids are the engine's: a request is idempotent by (id, tag), so
a resend after a reconnect or a crash never places an order twice. Prices in ticks, sizes in lots.

OrderEvent carries the fields of the core's order record (OrderRec) and Fill those of its fill
record (FillRec, less `accepted`, which the engine sets after it books the fill), same names and
units (tests/contracts check the names against a backtest's result arrays).
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from bot4.contracts.base import U64, Instrument, Lots, Message, Side, Ticks, TsNs
from bot4.contracts.codes import OrderEventKind, OrderRole, OrderState, OrderType

PositiveLots = Annotated[int, msgspec.Meta(gt=0, le=2**63 - 1, description="lots")]


class OrderIntent(Message, frozen=True, kw_only=True, tag="new"):
    """Place an order. price: limit price, or the trigger of a stop (ignored for market orders).
    reduce_only: may only shrink the position. role: ORDER_ROLES code (its place in a group).
    group: id of the group's first order (0 = none)."""

    ts: TsNs
    id: U64
    instrument: Instrument
    side: Side
    type: OrderType
    price: Ticks
    qty: PositiveLots
    reduce_only: bool = False
    role: OrderRole = 0
    group: U64 = 0


class CancelIntent(Message, frozen=True, kw_only=True, tag="cancel"):
    """Cancel the working order `id`."""

    ts: TsNs
    id: U64
    instrument: Instrument


class ReplaceIntent(Message, frozen=True, kw_only=True, tag="replace"):
    """Move the working order `id` to a new price and size (size 0 is a cancel: use CancelIntent)."""

    ts: TsNs
    id: U64
    instrument: Instrument
    price: Ticks
    qty: PositiveLots


OrderRequest = OrderIntent | CancelIntent | ReplaceIntent


class OrderEvent(Message, frozen=True, kw_only=True, tag="order"):
    """One event in an order's life (ack, cancel, reject, replace, expire, fill summary).
    filled: lots filled so far. status: state after the event. reason: the core's reject/cancel
    reason code (0 = none). flags: OrderRec flags (1 = a protective leg sent risk-exempt)."""

    ts: TsNs
    id: U64
    instrument: Instrument
    side: Side
    price: Ticks
    qty: Lots
    filled: Lots
    type: OrderType
    status: OrderState
    kind: OrderEventKind
    role: OrderRole
    reason: Annotated[int, msgspec.Meta(ge=0, le=255)] = 0
    flags: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 0


class Fill(Message, frozen=True, kw_only=True, tag="fill"):
    """A fill of order `id`. exec_id: the venue's id of this execution, unique per venue, so a
    fill replayed after a reconnect or from the journal is booked once. fee: quote units
    (negative = rebate). maker: the order provided liquidity."""

    ts: TsNs
    id: U64
    exec_id: U64
    instrument: Instrument
    side: Side
    price: Ticks
    qty: PositiveLots
    fee: float
    maker: bool
    role: OrderRole = 0


Execution = OrderEvent | Fill
