"""Codec: the encoder and decoder of one socket, created once and reused for every frame.

decode() never raises on bad input: a frame that is not a message of the socket's topic comes
back as a Rejection with one of REJECT_REASONS, and that reason's counter goes up (logged on the
1st, 10th, 100th, ... occurrence, so garbage on a socket cannot flood the log). The fast path is
one msgspec decode; the reason is worked out only after a failure.
"""

from __future__ import annotations

import logging
import typing
from typing import Any

import msgspec

from bot4.contracts.arrays import ArrayBatch, payload_problem
from bot4.contracts.base import SCHEMA_VERSION, VERSION_INDEX, Message
from bot4.contracts.topics import TOPICS
from bot4.errors import MessageRejected

log = logging.getLogger("bot4.contracts")

#: Why a frame was refused (the counter set of every Codec, declared here only).
REJECT_REASONS: tuple[str, ...] = (
    "truncated",        # the frame ends inside a MessagePack value
    "malformed",        # not MessagePack, trailing bytes, or not a message array
    "wrong_tag",        # a message type this topic does not carry (or no such type)
    "unknown_version",  # a schema version other than SCHEMA_VERSION
    "invalid_field",    # a field of the wrong type, out of its bounds, missing or extra
    "payload_dtype",    # an array batch naming a dtype other than its type's
    "payload_size",     # an array batch whose bytes are not count x itemsize
)


class Rejection(msgspec.Struct, frozen=True, gc=False):
    """A refused frame: reason (one of REJECT_REASONS), detail (human readable), size (bytes)."""

    reason: str
    detail: str
    size: int


def _members(tp: Any) -> tuple[type[Message], ...]:
    args = typing.get_args(tp)
    return tuple(args) if args else (tp,)


class Codec:
    """Encoder and decoder for the messages of one topic (a key of TOPICS)."""

    __slots__ = ("topic", "type", "decoded", "encoded", "rejected", "_enc", "_dec", "_types", "_batches", "_tags")

    def __init__(self, topic: bytes):
        if topic not in TOPICS:
            raise ValueError(f"unknown topic {topic!r} (topics: {', '.join(t.decode() for t in TOPICS)})")
        self.topic = topic
        self.type = TOPICS[topic]
        members = _members(self.type)
        self._types = frozenset(members)
        self._batches = frozenset(m for m in members if issubclass(m, ArrayBatch))
        self._tags = frozenset(m.__struct_config__.tag for m in members)
        self._enc = msgspec.msgpack.Encoder()
        self._dec = msgspec.msgpack.Decoder(self.type)
        self.decoded = 0
        self.encoded = 0
        #: reason -> frames refused for it
        self.rejected: dict[str, int] = dict.fromkeys(REJECT_REASONS, 0)

    def encode(self, msg: Message) -> bytes:
        """The frame of `msg`; a message this topic does not carry is a TypeError (a bug in the
        sender, not bad input)."""
        if type(msg) not in self._types:
            raise TypeError(f"{type(msg).__name__} is not carried on topic {self.topic!r} "
                            f"(carries {', '.join(sorted(t.__name__ for t in self._types))})")
        self.encoded += 1
        return self._enc.encode(msg)

    def encode_into(self, msg: Message, buf: bytearray, offset: int = 0) -> None:
        """Encode `msg` into `buf` at `offset` (buf grows as needed), reusing the caller's buffer."""
        if type(msg) not in self._types:
            raise TypeError(f"{type(msg).__name__} is not carried on topic {self.topic!r}")
        self.encoded += 1
        self._enc.encode_into(msg, buf, offset)

    def decode(self, frame: Any) -> Message | Rejection:
        """The message in `frame` (bytes or any buffer; array payloads stay views into it), or a
        counted Rejection."""
        try:
            msg = self._dec.decode(frame)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            return self._reject(self._classify(frame, exc), str(exc), frame)
        if self._batches and type(msg) in self._batches:
            problem = payload_problem(msg)
            if problem is not None:
                return self._reject(problem.reason, str(problem), frame)
        self.decoded += 1
        return msg

    def decode_strict(self, frame: Any) -> Message:
        """decode(), raising bot4.errors.MessageRejected (with .reason) instead of returning a
        Rejection (still counted)."""
        out = self.decode(frame)
        if isinstance(out, Rejection):
            raise MessageRejected(out.reason, out.detail)
        return out

    def counters(self) -> dict[str, int]:
        """decoded, encoded and rejected.<reason> as one flat dict (for a heartbeat)."""
        out = {"decoded": self.decoded, "encoded": self.encoded}
        out.update({f"rejected.{k}": v for k, v in self.rejected.items()})
        return out

    def _classify(self, frame: Any, exc: Exception) -> str:
        if not isinstance(exc, msgspec.ValidationError):  # (ValidationError subclasses DecodeError)
            return "truncated" if "truncated" in str(exc) else "malformed"
        # Well-formed MessagePack that is not a valid message of this topic: say which part is off.
        try:
            obj = msgspec.msgpack.decode(frame)
        except msgspec.DecodeError:
            return "malformed"
        if not isinstance(obj, list) or not obj:
            return "malformed"
        if not isinstance(obj[0], str) or obj[0] not in self._tags:
            return "wrong_tag"
        if len(obj) <= VERSION_INDEX or obj[VERSION_INDEX] != SCHEMA_VERSION:
            return "unknown_version"
        return "invalid_field"

    def _reject(self, reason: str, detail: str, frame: Any) -> Rejection:
        n = self.rejected[reason] = self.rejected[reason] + 1
        size = memoryview(frame).nbytes
        if n == 1 or _is_power_of_ten(n):
            log.warning("topic %r: rejected frame #%d for %s (%d B): %s", self.topic, n, reason, size, detail)
        return Rejection(reason, detail, size)


def _is_power_of_ten(n: int) -> bool:
    while n % 10 == 0:
        n //= 10
    return n == 1
