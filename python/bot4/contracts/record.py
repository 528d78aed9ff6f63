"""What the journal stores per input or output of a service: the frame exactly as it went over
the socket, with its topic, so a session's journal can be replayed byte for byte."""

from __future__ import annotations

from typing import Literal

from bot4.contracts.base import U64, Message, TsNs


class JournalEntry(Message, frozen=True, kw_only=True, tag="journal"):
    """ts: when the service sent or received the frame (local clock). service: who journaled
    it. direction: "in" (received) or "out" (sent). seq: consecutive per journal writer.
    topic: the frame's topic (a key of bot4.contracts.TOPICS, possibly with a suffix).
    frame: the encoded message, byte for byte."""

    ts: TsNs
    seq: U64
    service: str
    direction: Literal["in", "out"]
    topic: bytes
    frame: memoryview
