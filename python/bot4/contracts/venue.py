"""The link between an engine and a venue outside its process (topic VENUE, DEALER -> ROUTER).

Every exchange is a request and its reply, so nothing on the link is dropped: the engine sends
the requests its strategy made since the last exchange (bot4.events.VENUE_REQUEST records) and
asks for the responses received by its local time `now`; the venue answers with them
(VENUE_RESPONSE records) and says whether it is still live (orders in flight or working,
responses not yet received). `md_seq` is how many market data batches the engine had taken in: a
venue that reads the same feed takes in at least as many before it answers, so it simulates on
no less of the recording than the engine has seen. seq numbers the exchanges of one engine; the
reply repeats it. A request repeated with the same (engine, seq) gets the same reply again
and changes nothing at the venue.
"""

from __future__ import annotations

from typing import ClassVar

from bot4.contracts.arrays import ArrayBatch
from bot4.contracts.base import U64, Instrument, TsNs


class VenueRequests(ArrayBatch, frozen=True, kw_only=True, tag="venue_req"):
    """The engine's requests for `instrument` since its last exchange, and its poll at `now`
    (the largest int64: every response still due, the end of a run). clock_offset: the least
    ts_local - ts_exchange of the engine's market data so far (the largest int64: none yet).
    final: the engine's last exchange; the venue may stop once it has answered every engine.
    engine: the engine's name; with seq it makes an exchange idempotent (an engine restarted
    after a crash repeats its exchanges from its journal and the venue answers a repeat with the
    reply it gave, never twice)."""

    DTYPE: ClassVar[str] = "VenueRequest"

    instrument: Instrument
    now: TsNs
    clock_offset: TsNs
    md_seq: U64
    final: bool = False
    engine: str = ""


class VenueResponses(ArrayBatch, frozen=True, kw_only=True, tag="venue_resp"):
    """The venue's responses received by the engine's `now`; live: the venue can still answer
    something without a new request (when False the engine need not ask again until it sends).
    error: the venue's refusal of the request (no responses then; the engine raises it)."""

    DTYPE: ClassVar[str] = "VenueResponse"

    live: bool
    error: str = ""


VenueLink = VenueRequests | VenueResponses
