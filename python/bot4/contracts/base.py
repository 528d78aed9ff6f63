"""The envelope every bus message shares: a schema version and a trace id, then its own fields.

Messages are frozen msgspec Structs encoded as MessagePack arrays (``array_like``): position, not
name, identifies a field, so a frame is small and decoding is one pass. The layout of every
message is therefore ``[tag, v, trace, <fields in declaration order>]``; every subclass must be
declared with ``kw_only=True`` or msgspec moves its required fields in front of ``v`` and
``trace`` (a test checks every registered message). Changing a message's fields is a schema
change: bump SCHEMA_VERSION and regenerate the golden frames (tests/contracts/make_golden.py).
"""

from __future__ import annotations

import random
from typing import Annotated

import msgspec

#: The one schema version of every message in bot4.contracts. A decoder accepts exactly this
#: version; any other is a counted rejection ("unknown_version"), never a guess at the layout.
SCHEMA_VERSION = 2  # 2: market batches carry a watermark; EndOfStream

I64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
# uint64: msgspec bounds must fit int64, so only the sign is checked here; MessagePack itself
# cannot carry more than 64 bits, so a larger value fails at encode (OverflowError) and cannot
# arrive in a frame.
U64 = Annotated[int, msgspec.Meta(ge=0)]
U32 = Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1)]
#: Nanoseconds since the Unix epoch (int64), as every timestamp in the core.
TsNs = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1, description="ns since epoch")]
#: Prices are integer ticks, sizes integer lots (the core's units; never floats on the bus).
Ticks = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1, description="ticks")]
Lots = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1, description="lots")]
Instrument = Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1, description="instrument id (uint32)")]
#: Side of an order or fill: 0 buy (= bot4.events.BID), 1 sell (= bot4.events.ASK).
Side = Annotated[int, msgspec.Meta(ge=0, le=1, description="0 buy, 1 sell")]
TraceId = Annotated[int, msgspec.Meta(ge=0, description="trace id (uint64, 0 = none)")]
Version = Annotated[int, msgspec.Meta(ge=SCHEMA_VERSION, le=SCHEMA_VERSION)]

#: Position of the version and trace id in an encoded frame (after the tag at 0).
VERSION_INDEX = 1
TRACE_INDEX = 2


class Message(msgspec.Struct, frozen=True, kw_only=True, array_like=True, forbid_unknown_fields=True,
              tag_field="t", gc=False):
    """Base of every bus message (never sent itself: it has no tag).

    v: schema version (SCHEMA_VERSION). trace: follows one market event through decision,
    order, venue and fill across services (0 = untraced); see new_trace_id.
    """

    v: Version = SCHEMA_VERSION
    trace: TraceId = 0


_rng = random.Random()


def new_trace_id() -> int:
    """A fresh non-zero 64-bit trace id (random, not secret: it only has to be unique enough
    to tell one event's path through the services from another's)."""
    return _rng.getrandbits(64) | 1
