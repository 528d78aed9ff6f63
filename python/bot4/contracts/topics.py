"""Topics: the bytes prefix of each PUB/SUB stream and the one tagged union that travels on it.

Every prefix ends with "/" and no other byte of it is "/", so no topic is a prefix of another
and a SUB socket subscribed to one never receives the others. A stream split by instrument
appends the instrument id as 4 big-endian bytes (fixed width, so instrument 4 is not a prefix
of instrument 42).
"""

from __future__ import annotations

from typing import Any

from bot4.contracts.control import Command, CommandReply
from bot4.contracts.decision import DecisionMessage
from bot4.contracts.enrichment import EnrichmentMessage
from bot4.contracts.market import MarketData, ReplayRequest
from bot4.contracts.orders import Execution, OrderRequest
from bot4.contracts.position import Position
from bot4.contracts.record import JournalEntry
from bot4.contracts.signal import Signal
from bot4.contracts.telemetry import Telemetry
from bot4.contracts.venue import VenueLink

MARKET = b"md/"
DECISIONS = b"dec/"
ORDER_REQUESTS = b"req/"
EXECUTIONS = b"exe/"
POSITIONS = b"pos/"
CONTROL = b"ctl/"
CONTROL_REPLIES = b"rep/"
TELEMETRY = b"tel/"
ENRICHMENT = b"enr/"
JOURNAL = b"jnl/"
SIGNALS = b"sig/"
VENUE = b"ven/"
REPLAY = b"rpl/"

#: Topic prefix -> the type a socket on it decodes (a tagged union, or one tagged Struct).
TOPICS: dict[bytes, Any] = {
    MARKET: MarketData,
    DECISIONS: DecisionMessage,
    ORDER_REQUESTS: OrderRequest,
    EXECUTIONS: Execution,
    POSITIONS: Position,
    CONTROL: Command,
    CONTROL_REPLIES: CommandReply,
    TELEMETRY: Telemetry,
    ENRICHMENT: EnrichmentMessage,
    JOURNAL: JournalEntry,
    SIGNALS: Signal,
    VENUE: VenueLink,
    REPLAY: ReplayRequest,
}


def instrument_topic(prefix: bytes, instrument: int) -> bytes:
    """`prefix` narrowed to one instrument (subscribe to it to receive only that instrument)."""
    if prefix not in TOPICS:
        raise ValueError(f"unknown topic {prefix!r} (topics: {', '.join(t.decode() for t in TOPICS)})")
    return prefix + int(instrument).to_bytes(4, "big")


def topic_of(frame_topic: bytes) -> bytes:
    """The topic prefix a received topic frame belongs to (ValueError if none)."""
    end = frame_topic.find(b"/")
    prefix = frame_topic[: end + 1] if end >= 0 else b""
    if prefix not in TOPICS:
        raise ValueError(f"no topic matches {frame_topic[:32]!r}")
    return prefix
