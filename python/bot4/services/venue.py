"""Venue service: the venue simulators of a session's instruments in a service of their own,
serving engines over a ROUTER socket (topic VENUE, bot4.contracts.venue) and reading the
market data feed themselves, as a venue outside the engine's process would.

Each exchange is a request and its reply, so no order or fill is ever dropped on the link: the
engine sends the requests it made since the last exchange and asks for the responses received by
its local time; the venue answers. Before it answers, the venue takes in at least as many market
data batches as the engine had (md_seq), so it simulates on no less of the recording than the
engine saw; the core asks only while the venue is live or has requests to send (see
core/execution/remote_venue.hpp), so a session with its venue here gives the same orders, fills
and P&L as one backtest (tests/services/test_venue.py).

A frame that is not a valid VenueRequests is a counted rejection and answered with an error (the
engine raises it); a request for an instrument this venue does not serve likewise. The venue
stops once every engine sent its final exchange (or when `stop` is set).

Exchanges are idempotent by (engine, seq): the venue keeps the replies it gave each engine (the
last `history` of them), answers a repeat with the same reply and changes nothing, so an engine
killed mid-session and restarted from its journal (which repeats its exchanges) neither loses nor
duplicates an order. A request that skips a seq is refused.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import zmq

from bot4 import _core
from bot4 import contracts as c
from bot4.events import VENUE_RESPONSE

SERVICE = "venue"
INT64_MAX = 2**63 - 1


class VenueService:
    """One simulator per instrument of `specs` ({id: InstrumentSpec}), configured by the `sim`
    section of `config` (as bot4.backtest.run); `l3`: instruments whose order events make the
    book (their derived L2 records are not replayed, as in a backtest)."""

    def __init__(self, specs: Mapping[int, Any], *, l3: Iterable[int] = (), config: Any = None,
                 history: int = 1_000_000):
        from bot4.backtest.engine import engine_config

        if not specs:
            raise ValueError("the venue needs the instruments it serves (specs)")
        sim = engine_config(config).get("sim")
        self.venues = {int(i): _venue_of(sim, s) for i, s in sorted(specs.items())}
        self.l3 = {int(i) for i in l3}
        self.md = c.Codec(c.MARKET)
        self.link = c.Codec(c.VENUE)
        self.md_seq = 0           # market data batches taken in
        self.md_ended = False
        self.finals = 0           # engines that sent their final exchange
        self.history = int(history)
        self._replies: dict[str, deque[bytes]] = {}  # engine -> the replies to its exchanges, by seq
        self._next: dict[str, int] = {}              # engine -> the seq of its next new exchange
        self.counters: dict[str, int] = dict.fromkeys(
            ("exchanges", "requests", "responses", "md_batches", "md_records", "md_seq_gaps", "waits_for_md",
             "refused", "bad_envelope", "repeats"), 0)

    # -- market data ---------------------------------------------------------------------------
    def take_market(self, frame: Any) -> None:
        """One market data frame: its records go to their instruments' simulators."""
        msg = self.md.decode(frame)
        if isinstance(msg, c.Rejection):
            return
        if isinstance(msg, c.EndOfStream):
            self.md_ended = True
            return
        if not isinstance(msg, (c.BookBatch, c.TradeBatch, c.L3Batch)):
            if isinstance(msg, c.MarketBatch):
                self.md_seq = max(self.md_seq, msg.seq + 1)  # (BBO checks: no venue state)
            return
        if msg.seq != self.md_seq:
            self.counters["md_seq_gaps"] += 1
        self.md_seq = max(self.md_seq, msg.seq + 1)
        recs = c.unpack(msg)
        self.counters["md_batches"] += 1
        self.counters["md_records"] += int(recs.size)
        if isinstance(msg, c.BookBatch) and self.l3 and recs.size:
            recs = recs[~np.isin(recs["instrument"], list(self.l3))]
        several = len(self.venues) > 1
        for i, venue in self.venues.items():
            mine = recs[recs["instrument"] == i] if several else recs
            if not mine.size:
                continue
            mine = np.ascontiguousarray(mine)
            if isinstance(msg, c.BookBatch):
                venue.append_feed(book=mine)
            elif isinstance(msg, c.TradeBatch):
                venue.append_feed(trades=mine)
            else:
                venue.append_feed(orders=mine)

    # -- the link ------------------------------------------------------------------------------
    def decode(self, frame: Any) -> c.VenueRequests | bytes:
        """A request frame's message, or the error reply to a frame that is not a request."""
        msg = self.link.decode(frame)
        if isinstance(msg, c.Rejection):
            return self._refuse(0, f"not a venue request: {msg.reason}: {msg.detail}")
        if not isinstance(msg, c.VenueRequests):
            return self._refuse(0, f"not a venue request: {type(msg).__struct_config__.tag}")
        return msg

    def waits(self, msg: c.VenueRequests) -> bool:
        """Whether `msg` waits for market data the engine had and this venue not yet."""
        return msg.md_seq > self.md_seq and not self.md_ended

    def answer(self, msg: c.VenueRequests) -> bytes:
        """The reply to one request: the responses due by its `now`, the reply already given to
        a repeat of it, or a refusal."""
        nxt = self._next.get(msg.engine, 1)
        if msg.seq < nxt:
            kept = self._replies.get(msg.engine, deque())
            at = len(kept) - (nxt - msg.seq)
            if at < 0:
                return self._refuse(msg.seq, f"exchange {msg.seq} of engine {msg.engine!r} is older than the "
                                             f"{len(kept)} replies kept")
            self.counters["repeats"] += 1
            return kept[at]
        if msg.seq > nxt:
            return self._refuse(msg.seq, f"engine {msg.engine!r} skipped from exchange {nxt - 1} to {msg.seq}")
        venue = self.venues.get(msg.instrument)
        if venue is None:
            return self._refuse(msg.seq, f"instrument {msg.instrument} is not served here "
                                         f"(serves {', '.join(map(str, self.venues))})")
        if msg.md_seq > self.md_seq:
            return self._refuse(msg.seq, f"the engine took in {msg.md_seq} market data batches, the venue "
                                         f"only {self.md_seq} before the feed ended")
        requests = np.ascontiguousarray(c.unpack(msg))
        responses, live = venue.exchange(msg.instrument, requests, msg.clock_offset, msg.now)
        self.counters["exchanges"] += 1
        self.counters["requests"] += int(requests.size)
        self.counters["responses"] += int(responses.size)
        if msg.final:
            self.finals += 1
        reply = self.link.encode(c.pack(c.VenueResponses, responses, seq=msg.seq, ts=0, live=bool(live)))
        self._replies.setdefault(msg.engine, deque(maxlen=self.history)).append(reply)
        self._next[msg.engine] = msg.seq + 1
        return reply

    def summary(self) -> dict[str, Any]:
        """The service's counters, the link codec's and every simulator's (sim.<instrument>.*)."""
        out: dict[str, Any] = dict(self.counters)
        out.update({f"md.{k}": v for k, v in self.md.counters().items()})
        out.update({f"link.{k}": v for k, v in self.link.counters().items()})
        for i, v in self.venues.items():
            out.update({f"sim.{i}.{k}": int(x) for k, x in v.counters().items()})
        return out

    def _refuse(self, seq: int, error: str) -> bytes:
        self.counters["refused"] += 1
        return self.link.encode(c.pack(c.VenueResponses, np.zeros(0, VENUE_RESPONSE), seq=seq, ts=time.time_ns(),
                                       live=False, error=error))


def _venue_of(sim: Any, spec: Any) -> Any:
    """The simulator of one instrument, configured as a backtest's (an inverse contract charges
    its fees in coin on its face value)."""
    inverse = bool(getattr(spec, "inverse", False))
    return _core.engine.SimVenue(sim, float(spec.tick_size), float(spec.lot_size), inverse=inverse,
                                 contract_size=float(getattr(spec, "contract_size", 1)))


def run_venue(ctx: zmq.Context, md_endpoint: str, endpoint: str, service: VenueService, *, engines: int = 1,
              stop: Any = None, ready: Any = None, idle_timeout_s: float = 600.0,
              transport: Any = None) -> dict[str, Any]:
    """The venue service over sockets: SUB on the feed at `md_endpoint`, ROUTER bound at
    `endpoint`; returns its summary once `engines` engines sent their final exchange. ready: an
    object with set() called once bound; stop: an Event that ends it early; idle_timeout_s: no
    frame for that long is an error (TimeoutError). transport: how the endpoints are bound and
    connected (bot4.services.security.Transport; required for tcp, CURVE on every link; its
    counters join the summary as security.*)."""
    from bot4.services.security import bind_link, close_link, connect_link

    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 5_000)
    bind_link(router, endpoint, "venue", transport)
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 2_000)
    sub.setsockopt(zmq.RCVHWM, 0)  # (the feed never drops: a full queue blocks it, not us)
    sub.setsockopt(zmq.SUBSCRIBE, c.MARKET)
    connect_link(sub, md_endpoint, "md", transport)
    poller = zmq.Poller()
    poller.register(sub, zmq.POLLIN)
    poller.register(router, zmq.POLLIN)
    parked: list[tuple[bytes, c.VenueRequests]] = []  # requests waiting for market data the engine had
    unsubscribed = False
    if ready is not None:
        ready.set()
    idle = 0.0
    try:
        while service.finals < engines:
            if stop is not None and stop.is_set():
                break
            ready_socks = dict(poller.poll(100))
            if not ready_socks:
                idle += 0.1
                if idle >= idle_timeout_s:
                    raise TimeoutError(f"venue: no frame for {idle_timeout_s:.0f} s")
                continue
            idle = 0.0
            if sub in ready_socks:
                # Market data first: a parked request may be waiting for it.
                for _ in range(64):
                    try:
                        parts = sub.recv_multipart(zmq.NOBLOCK, copy=False)
                    except zmq.Again:
                        break
                    if len(parts) != 2:
                        service.counters["bad_envelope"] += 1
                        continue
                    service.take_market(parts[1].buffer)
                if service.md_ended and not unsubscribed:
                    sub.setsockopt(zmq.UNSUBSCRIBE, c.MARKET)  # acknowledges the feed's end
                    unsubscribed = True
            if router in ready_socks:
                while True:
                    try:
                        parts = router.recv_multipart(zmq.NOBLOCK, copy=False)
                    except zmq.Again:
                        break
                    if len(parts) != 3:
                        service.counters["bad_envelope"] += 1
                        if len(parts) >= 2:  # the peer is known: it gets an answer rather than a hang
                            router.send_multipart((parts[0].bytes, c.VENUE, service._refuse(0, "expected (topic, frame)")))
                        continue
                    got = service.decode(parts[2].buffer)
                    if isinstance(got, bytes):
                        router.send_multipart((parts[0].bytes, c.VENUE, got))
                    else:
                        parked.append((parts[0].bytes, got))
            still: list[tuple[bytes, c.VenueRequests]] = []
            for who, msg in parked:
                if service.waits(msg):
                    service.counters["waits_for_md"] += 1
                    still.append((who, msg))
                    continue
                router.send_multipart((who, c.VENUE, service.answer(msg)))
            parked = still
        summary = service.summary()
        if transport is not None:
            summary.update({f"security.{k}": v for k, v in transport.counters().items()})
        return summary
    finally:
        sub.close()
        close_link(router, transport)


def venue_link(ctx: zmq.Context, endpoint: str, timeout_s: float = 60.0, transport: Any = None) -> tuple[Any, Any]:
    """A DEALER connected to the venue at `endpoint` and call(frame) -> reply frame over it (a
    VenueLinkError when no reply comes within timeout_s). Returns (call, socket); close the
    socket when done. transport: as run_venue's (CURVE client on tcp)."""
    from bot4.errors import VenueLinkError
    from bot4.services.security import connect_link

    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 2_000)
    connect_link(sock, endpoint, "venue", transport)
    ms = int(timeout_s * 1000)

    def call(frame: bytes) -> Any:
        sock.send_multipart((c.VENUE, frame), copy=False)
        if not sock.poll(ms, zmq.POLLIN):
            raise VenueLinkError(f"the venue at {endpoint} did not answer within {timeout_s:.0f} s")
        parts = sock.recv_multipart(copy=False)
        if len(parts) != 2:
            raise VenueLinkError(f"the venue at {endpoint} answered {len(parts)} frames, expected 2")
        return parts[1].buffer

    return call, sock


