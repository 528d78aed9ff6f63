"""Numpy twins of the C++ event records in core/common/events.hpp.

Each dtype is declared here explicitly (names, formats, offsets, itemsize) and checked at import
against the layout the C++ compiler produced, so that batch APIs can take these arrays without
conversion.
"""

from __future__ import annotations

import numpy as np

from bot4 import _core
from bot4.errors import LayoutMismatchError

BID = 0
ASK = 1
NO_SIDE = 2

FLAG_LAST = 1
FLAG_SNAPSHOT = 2
FLAG_CLEAR = 4
FLAG_RESYNC = 8

ACTION_ADD = 0
ACTION_MODIFY = 1
ACTION_CANCEL = 2
ACTION_EXECUTE = 3
ACTION_CLEAR = 4

NO_BID_PRICE = np.iinfo(np.int64).min
NO_ASK_PRICE = np.iinfo(np.int64).max


def _record(fields: list[tuple[str, str]]) -> np.dtype:
    return np.dtype([(name, fmt) for name, fmt in fields], align=True)


_HEADER = [("ts_exchange", "<i8"), ("ts_local", "<i8"), ("seq", "<i8")]

BOOK_EVENT = _record(
    _HEADER
    + [("price", "<i8"), ("qty", "<i8"), ("instrument", "<u4"), ("side", "u1"), ("flags", "u1"),
       ("reserved", "<u2")]
)
"""L2 level change: qty is the new absolute size at price (0 deletes)."""

ORDER_EVENT = _record(
    _HEADER
    + [("order_id", "<u8"), ("price", "<i8"), ("qty", "<i8"), ("instrument", "<u4"), ("side", "u1"),
       ("action", "u1"), ("flags", "u1"), ("reserved", "u1")]
)
"""L3 order event (add / modify / cancel / execute / clear by order id)."""

TRADE_EVENT = _record(
    _HEADER
    + [("price", "<i8"), ("qty", "<i8"), ("instrument", "<u4"), ("aggressor", "u1"), ("flags", "u1"),
       ("reserved", "<u2")]
)
"""Public trade; aggressor is the side of the aggressor (BID = buyer-initiated, NO_SIDE unknown)."""

BBO_EVENT = _record(
    _HEADER
    + [("bid_price", "<i8"), ("bid_qty", "<i8"), ("ask_price", "<i8"), ("ask_qty", "<i8"),
       ("instrument", "<u4"), ("flags", "u1"), ("reserved0", "u1"), ("reserved1", "<u2")]
)
"""Venue top-of-book check record (Binance bookTicker)."""

TOP_OF_BOOK = _record([("bid_price", "<i8"), ("bid_qty", "<i8"), ("ask_price", "<i8"), ("ask_qty", "<i8")])

VENUE_REQUEST = _record(
    [("sent_local", "<i8"), ("clock_offset", "<i8"), ("id", "<u8"), ("price", "<i8"), ("qty", "<i8"),
     ("instrument", "<u4"), ("kind", "u1"), ("side", "u1"), ("type", "u1"), ("reduce_only", "u1")]
)
"""A request to a venue outside the process (core/execution/venue.hpp VenueRequestRecord): kind
0 new, 1 cancel, 2 replace; type 0 limit, 1 market, 2 stop; clock_offset: the least ts_local -
ts_exchange the engine had seen when it sent the request (INT64_MAX: none yet)."""

VENUE_RESPONSE = _record(
    [("venue_ts", "<i8"), ("local_ts", "<i8"), ("id", "<u8"), ("price", "<i8"), ("qty", "<i8"), ("fee", "<f8"),
     ("instrument", "<u4"), ("kind", "u1"), ("side", "u1"), ("maker", "u1"), ("reserved", "u1")]
)
"""A venue's response (VenueResponseRecord): kind 0 ack, 1 fill, 2 expire, 3 reject, 4 cancelled;
local_ts: when the engine receives it."""

DTYPES = {
    "BookEvent": BOOK_EVENT,
    "OrderEvent": ORDER_EVENT,
    "TradeEvent": TRADE_EVENT,
    "BboEvent": BBO_EVENT,
    "TopOfBook": TOP_OF_BOOK,
    "VenueRequest": VENUE_REQUEST,
    "VenueResponse": VENUE_RESPONSE,
}


def _layout(dtype: np.dtype) -> list[tuple[str, str, int]]:
    assert dtype.fields is not None and dtype.names is not None, f"{dtype} is not a record dtype"
    return [(name, dtype.fields[name][0].str, dtype.fields[name][1]) for name in dtype.names]


def check_layouts() -> None:
    """Raise LayoutMismatchError if any Python dtype differs from the C++ record."""
    for name, dtype in DTYPES.items():
        native = _core.record_dtypes[name]
        if _layout(dtype) != _layout(native) or dtype.itemsize != native.itemsize:
            raise LayoutMismatchError(
                f"{name}: python layout {_layout(dtype)} (itemsize {dtype.itemsize}) != "
                f"C++ layout {_layout(native)} (itemsize {native.itemsize})"
            )
    flags = _core.event_flags
    if (flags["LAST"], flags["SNAPSHOT"], flags["CLEAR"], flags["RESYNC"]) != (
        FLAG_LAST, FLAG_SNAPSHOT, FLAG_CLEAR, FLAG_RESYNC,
    ):
        raise LayoutMismatchError(f"event flag values differ: {flags}")


check_layouts()
