"""Bus contracts: the messages services exchange, their topics and codecs (no transport here).

Each message is a frozen msgspec Struct with a tag, a schema version and a trace id (base.py);
each topic carries one tagged union (topics.py); a Codec per socket encodes and decodes it and
counts every refused frame by reason (codec.py). Record batches travel as raw bytes of the
core's event dtypes (arrays.py). bot4.services builds on this package, never the reverse.
"""

from bot4.contracts.arrays import ARRAY_DTYPES, ArrayBatch, PayloadError, pack, payload_problem, unpack
from bot4.contracts.base import SCHEMA_VERSION, Message, new_trace_id
from bot4.contracts.codec import REJECT_REASONS, Codec, Rejection
from bot4.contracts.control import (
    Command,
    CommandReply,
    ConfigUpdate,
    Flatten,
    Kill,
    Pause,
    RefreshWeights,
    Resume,
    SetParameter,
    Status,
    SwapModel,
)
from bot4.contracts.decision import Decision, DecisionMessage, ShadowScore
from bot4.contracts.enrichment import Enrichment, EnrichmentMessage, EnrichmentRequest
from bot4.contracts.market import (
    BboBatch,
    BookBatch,
    EndOfStream,
    L3Batch,
    MarketBatch,
    MarketData,
    ReplayRequest,
    TradeBatch,
)
from bot4.contracts.orders import CancelIntent, Execution, Fill, OrderEvent, OrderIntent, OrderRequest, ReplaceIntent
from bot4.contracts.position import Position
from bot4.contracts.record import JournalEntry
from bot4.contracts.signal import Signal
from bot4.contracts.telemetry import Heartbeat, PerfSample, Telemetry
from bot4.contracts.venue import VenueLink, VenueRequests, VenueResponses
from bot4.contracts.topics import (
    CONTROL,
    CONTROL_REPLIES,
    DECISIONS,
    ENRICHMENT,
    EXECUTIONS,
    JOURNAL,
    MARKET,
    ORDER_REQUESTS,
    POSITIONS,
    REPLAY,
    SIGNALS,
    TELEMETRY,
    TOPICS,
    VENUE,
    instrument_topic,
    topic_of,
)

__all__ = [
    "ARRAY_DTYPES", "ArrayBatch", "PayloadError", "pack", "payload_problem", "unpack",
    "SCHEMA_VERSION", "Message", "new_trace_id",
    "REJECT_REASONS", "Codec", "Rejection",
    "Command", "CommandReply", "ConfigUpdate", "Flatten", "Kill", "Pause", "RefreshWeights", "Resume",
    "SetParameter", "Status", "SwapModel",
    "Decision", "DecisionMessage", "ShadowScore",
    "Enrichment", "EnrichmentMessage", "EnrichmentRequest",
    "BboBatch", "BookBatch", "EndOfStream", "L3Batch", "MarketBatch", "MarketData", "ReplayRequest", "TradeBatch",
    "CancelIntent", "Execution", "Fill", "OrderEvent", "OrderIntent", "OrderRequest", "ReplaceIntent",
    "Position",
    "JournalEntry",
    "Signal",
    "Heartbeat", "PerfSample", "Telemetry",
    "VenueLink", "VenueRequests", "VenueResponses",
    "CONTROL", "CONTROL_REPLIES", "DECISIONS", "ENRICHMENT", "EXECUTIONS", "JOURNAL", "MARKET", "ORDER_REQUESTS",
    "POSITIONS", "REPLAY", "SIGNALS", "TELEMETRY", "TOPICS", "VENUE", "instrument_topic", "topic_of",
]


def message_types() -> tuple[type[Message], ...]:
    """Every concrete (tagged) message type, in topic order."""
    from bot4.contracts.codec import _members

    return tuple(m for tp in TOPICS.values() for m in _members(tp))
