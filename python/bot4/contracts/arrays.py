"""Array payloads: batches of the core's event records travel as their raw bytes.

A batch message names its dtype (a key of ARRAY_DTYPES: the core's event dtypes from bot4.events
plus the int64 latency samples of perf), the record count and the bytes; never lists of floats.
`pack` copies a record array into a message once; `unpack` gives a read-only numpy view over the
message's bytes (zero-copy: after Codec.decode those bytes are a view into the received frame).
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, TypeVar

import msgspec
import numpy as np

from bot4 import events
from bot4.contracts.base import U64, Message, TsNs

#: Name on the wire -> dtype. The event records are bot4.events' (checked against the C++
#: layouts at import); "LatencyNs" is a plain little-endian int64 sample (perf).
ARRAY_DTYPES: dict[str, np.dtype] = {**events.DTYPES, "LatencyNs": np.dtype("<i8")}

Count = Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1, description="records in data")]


class PayloadError(ValueError):
    """A batch whose dtype or byte size does not match what it declares (reason: "payload_dtype"
    or "payload_size")."""

    def __init__(self, reason: str, detail: str):
        self.reason = reason
        super().__init__(detail)


class ArrayBatch(Message, frozen=True, kw_only=True):
    """Base of the batch messages (never sent itself). DTYPE is the one dtype name the concrete
    batch carries; `dtype` repeats it on the wire so a receiver checks it rather than trusts it.

    seq: the publisher's batch sequence number (consecutive per publisher and topic, so a
    subscriber counts what it missed). ts: publish time (local clock). data: count records of
    ARRAY_DTYPES[dtype], C order, little-endian.
    """

    DTYPE: ClassVar[str] = ""

    seq: U64
    ts: TsNs
    dtype: str
    count: Count
    data: memoryview

B = TypeVar("B", bound=ArrayBatch)


def payload_problem(msg: ArrayBatch) -> PayloadError | None:
    """Why a batch's payload is unusable, or None: its dtype is not its class's DTYPE or its byte
    size is not count x itemsize."""
    expected = type(msg).DTYPE
    if msg.dtype != expected:
        return PayloadError("payload_dtype", f"{type(msg).__name__} carries {expected}, got dtype {msg.dtype!r}")
    itemsize = ARRAY_DTYPES[expected].itemsize
    size = msg.data.nbytes
    if size != msg.count * itemsize:
        return PayloadError("payload_size", f"{type(msg).__name__}: {msg.count} x {expected} ({itemsize} B) "
                                            f"is {msg.count * itemsize} B, got {size} B")
    return None


def pack(cls: type[B], records: np.ndarray, *, seq: int, ts: int, trace: int = 0, **fields: Any) -> B:
    """A `cls` batch holding a copy of `records` (exact dtype ARRAY_DTYPES[cls.DTYPE], 1-D).

    The bytes are copied once so the message stays valid if the caller reuses its array. A wrong
    dtype is a TypeError naming the expected one (as the core's batch APIs do).
    """
    dtype = ARRAY_DTYPES[cls.DTYPE]
    if not isinstance(records, np.ndarray):
        raise TypeError(f"{cls.__name__}: expected a numpy array of {cls.DTYPE}, got {type(records).__name__}")
    if records.dtype != dtype:
        raise TypeError(f"{cls.__name__}: expected dtype {cls.DTYPE} {dtype}, got {records.dtype}")
    if records.ndim != 1:
        raise ValueError(f"{cls.__name__}: expected a 1-D record array, got shape {records.shape}")
    return cls(seq=seq, ts=ts, dtype=cls.DTYPE, count=int(records.shape[0]),
               data=memoryview(records.tobytes()), trace=trace, **fields)


def unpack(msg: ArrayBatch) -> np.ndarray:
    """The batch's records as a read-only numpy view over its bytes (no copy). A payload whose
    dtype or size disagrees with the message is a PayloadError."""
    problem = payload_problem(msg)
    if problem is not None:
        raise problem
    out = np.frombuffer(msg.data, dtype=ARRAY_DTYPES[msg.dtype], count=msg.count)
    out.flags.writeable = False
    return out
