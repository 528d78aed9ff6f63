"""Market data messages (topic MARKET): batches of the core's event records, as raw bytes.

One batch is what the feed read or generated between two sends (a small batch keeps the engine
fed event by event without a frame per event). Unpack with bot4.contracts.unpack.
"""

from __future__ import annotations

from typing import ClassVar

from bot4.contracts.arrays import ArrayBatch


class BookBatch(ArrayBatch, frozen=True, kw_only=True, tag="book"):
    """L2 level changes (bot4.events.BOOK_EVENT records)."""

    DTYPE: ClassVar[str] = "BookEvent"


class TradeBatch(ArrayBatch, frozen=True, kw_only=True, tag="trade"):
    """Public trades (bot4.events.TRADE_EVENT records)."""

    DTYPE: ClassVar[str] = "TradeEvent"


class L3Batch(ArrayBatch, frozen=True, kw_only=True, tag="l3"):
    """L3 order events by order id (bot4.events.ORDER_EVENT records)."""

    DTYPE: ClassVar[str] = "OrderEvent"


class BboBatch(ArrayBatch, frozen=True, kw_only=True, tag="bbo"):
    """The venue's own top-of-book records (bot4.events.BBO_EVENT), the check on a rebuilt book."""

    DTYPE: ClassVar[str] = "BboEvent"


MarketData = BookBatch | TradeBatch | L3Batch | BboBatch
