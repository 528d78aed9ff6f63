"""Market data messages (topic MARKET): batches of the core's event records, as raw bytes.

One batch is what the feed read or generated between two sends (a small batch keeps the engine
fed event by event without a frame per event). Unpack with bot4.contracts.unpack.
"""

from __future__ import annotations

from typing import Annotated, ClassVar

import msgspec

from bot4.contracts.arrays import ArrayBatch
from bot4.contracts.base import U64, Message, TsNs


class MarketBatch(ArrayBatch, frozen=True, kw_only=True):
    """Base of the market data batches (never sent itself). watermark: once this batch and every
    earlier one of its publisher are taken in, every record still to come has a merge key (its
    stream's running maximum of ts_local) >= watermark, so a consumer may process everything
    below it (bot4.backtest.run_stream's piece contract, one batch at a time). The default, the
    smallest int64, promises nothing."""

    watermark: TsNs = -(2**63)


class BookBatch(MarketBatch, frozen=True, kw_only=True, tag="book"):
    """L2 level changes (bot4.events.BOOK_EVENT records)."""

    DTYPE: ClassVar[str] = "BookEvent"


class TradeBatch(MarketBatch, frozen=True, kw_only=True, tag="trade"):
    """Public trades (bot4.events.TRADE_EVENT records)."""

    DTYPE: ClassVar[str] = "TradeEvent"


class L3Batch(MarketBatch, frozen=True, kw_only=True, tag="l3"):
    """L3 order events by order id (bot4.events.ORDER_EVENT records)."""

    DTYPE: ClassVar[str] = "OrderEvent"


class BboBatch(MarketBatch, frozen=True, kw_only=True, tag="bbo"):
    """The venue's own top-of-book records (bot4.events.BBO_EVENT), the check on a rebuilt book."""

    DTYPE: ClassVar[str] = "BboEvent"


class EndOfStream(Message, frozen=True, kw_only=True, tag="eos"):
    """The publisher's stream ends here. ts: publish time (local clock). seq: the seq the next
    batch would have had, i.e. how many batches were published (a subscriber that took in fewer
    missed some)."""

    ts: TsNs
    seq: U64


MarketData = BookBatch | TradeBatch | L3Batch | BboBatch | EndOfStream


class ReplayRequest(Message, frozen=True, kw_only=True, tag="replay"):
    """Ask a feed for the frames it published from batch `from_seq` on (at most `max_frames`),
    e.g. an engine restarted after a crash catching up on what it missed (topic REPLAY; the
    reply is the frames themselves, see bot4.services.feed.serve_replay)."""

    ts: TsNs
    from_seq: U64
    max_frames: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 1024
