"""Feed service: replays a recording (or the embedded simulator's stream) as market data batches
over a PUB socket, paced on the recording's own receive clock (ts_local), then an EndOfStream.

Each batch carries a watermark that is exact for run_stream's piece contract: the feed cuts the
stream at merge keys (each stream's running maximum of ts_local) and a batch's watermark holds
once it and every earlier batch are taken in, so an engine fed batch by batch computes what one
backtest over the whole recording computes. Batches are small (`batch_events` records per time
slice, split by stream), so the engine is fed event by event rather than piece by piece.

The socket is an XPUB with XPUB_NODROP: a subscriber that falls behind its high-water mark
blocks the feed (backpressure) instead of losing batches, and the feed waits for its subscribers
before the first batch (ZeroMQ drops what is published before a subscription arrives).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import zmq

from bot4 import contracts as c
from bot4.backtest.streaming import watermarked
from bot4.events import BOOK_EVENT, ORDER_EVENT, TRADE_EVENT

#: Stream order in a slice: the batch type of each of (book, trades, orders).
_BATCHES = (c.BookBatch, c.TradeBatch, c.L3Batch)
_DTYPES = (BOOK_EVENT, TRADE_EVENT, ORDER_EVENT)
INT64_MIN = -(2**63)

Speed = float | str


def parse_speed(speed: Speed) -> float | None:
    """`speed` as a factor over the recording's clock (None = "max": no pacing)."""
    if isinstance(speed, str):
        if speed == "max":
            return None
        try:
            speed = float(speed)
        except ValueError:
            raise ValueError(f"speed must be a positive number or 'max', got {speed!r}") from None
    if not speed > 0 or speed == float("inf"):
        raise ValueError(f"speed must be a positive number or 'max', got {speed!r}")
    return float(speed)


class Frame(NamedTuple):
    """One frame to send: at (the recording's local time it belongs to, for pacing; None = send
    at once), topic and the encoded message; seq: its place in the stream (a batch's seq, the
    EndOfStream's count; None for an injected fault frame)."""

    at: int | None
    topic: bytes
    frame: bytes
    seq: int | None = None


class Feed:
    """Market data frames from consecutive parts of a recording (MarketData, or (book, trades,
    orders) tuples: bot4.data.load, NativeBinanceLoader.iter_chunks, bot4.sim.generate_parts).

    batch_events: records per time slice (a slice is one batch per non-empty stream).
    fault_frames: {n: [frame, ...]} raw frames sent on the market topic after the n-th batch
    (0 = before the first): fault injection for tests and drills of a receiver's rejections.
    """

    def __init__(self, parts: Iterable[Any], *, batch_events: int = 1024,
                 fault_frames: Mapping[int, Sequence[bytes]] | None = None):
        if batch_events < 1:
            raise ValueError(f"batch_events must be >= 1, got {batch_events}")
        self._parts = parts
        self.batch_events = int(batch_events)
        self.fault_frames = {int(k): list(v) for k, v in (fault_frames or {}).items()}
        self.codec = c.Codec(c.MARKET)
        self.batches = 0
        self.records = 0
        self.faults_sent = 0

    def frames(self, clock=time.time_ns) -> Iterator[Frame]:
        """Every batch frame of the stream in order (and any fault frames); end_frame() follows."""
        running = [INT64_MIN] * 3
        mark = INT64_MIN
        yield from self._faults(0)
        for piece in watermarked(self._parts):
            arrays = [a if a is not None else np.zeros(0, dt) for a, dt in zip(piece[:3], _DTYPES)]
            keys = []
            for i, a in enumerate(arrays):
                k = np.maximum.accumulate(np.maximum(np.asarray(a["ts_local"], np.int64), running[i])) \
                    if a.size else np.zeros(0, np.int64)
                if k.size:
                    running[i] = int(k[-1])
                keys.append(k)
            merged = np.sort(np.concatenate(keys))
            if not merged.size:
                continue
            # Cut at merged keys every batch_events records; a cut t gives every record with key < t,
            # so all that follows has a key >= t (the watermark). The piece's own watermark closes it.
            cuts = [int(t) for t in np.unique(merged[self.batch_events::self.batch_events])]
            at = [0, 0, 0]
            for t in [*cuts, None]:
                nxt = [k.size if t is None else int(np.searchsorted(k, t, side="left")) for k in keys]
                last = t if t is not None else int(piece.watermark)
                parts = [(i, arrays[i][at[i]:nxt[i]]) for i in range(3) if nxt[i] > at[i]]
                slice_at = max(int(keys[i][nxt[i] - 1]) for i, _ in parts) if parts else None
                for j, (i, recs) in enumerate(parts):
                    wm = last if j == len(parts) - 1 else mark
                    yield self._batch(i, recs, wm, slice_at, clock)
                    yield from self._faults(self.batches)
                if parts:
                    mark = max(mark, last)
                at = nxt

    def end_frame(self, clock=time.time_ns) -> Frame:
        """The EndOfStream after the batches sent so far."""
        return Frame(None, c.MARKET, self.codec.encode(c.EndOfStream(ts=clock(), seq=self.batches)), self.batches)

    def publish(self, sock: zmq.Socket, speed: Speed = "max", stop: Any = None,
                ring: ReplayRing | None = None) -> dict[str, int]:
        """Send every frame on `sock`, paced at `speed` x the recording's clock ("max": as fast as
        the subscribers take them). stop: an object with is_set() (threading.Event) to end early
        (the EndOfStream is still sent). ring: keeps what was sent for replay. Returns the
        counters."""
        factor = parse_speed(speed)
        t0_rec: int | None = None
        t0_wall = 0
        late = 0
        for f in self.frames():
            if stop is not None and stop.is_set():
                break
            if factor is not None and f.at is not None:
                if t0_rec is None:
                    t0_rec, t0_wall = f.at, time.perf_counter_ns()
                due = t0_wall + int((f.at - t0_rec) / factor)
                wait = due - time.perf_counter_ns()
                if wait > 0:
                    time.sleep(wait / 1e9)
                else:
                    late += 1
            if ring is not None and f.seq is not None:
                ring.add(f.seq, f.topic, f.frame)
            if not _send(sock, f, stop):
                return self.counters(late)
        end = self.end_frame()
        if ring is not None and end.seq is not None:
            ring.add(end.seq, end.topic, end.frame)
        _send(sock, end, stop)
        return self.counters(late)

    def counters(self, late: int = 0) -> dict[str, int]:
        """batches and records sent, fault_frames injected, behind_schedule (`late`: frames sent
        after their paced time, the sender being slower than the recording at that speed)."""
        return {"batches": self.batches, "records": self.records, "fault_frames": self.faults_sent,
                "behind_schedule": late}

    def _batch(self, i: int, recs: np.ndarray, watermark: int, at: int | None, clock) -> Frame:
        msg = c.pack(_BATCHES[i], np.ascontiguousarray(recs), seq=self.batches, ts=clock(), watermark=watermark)
        self.batches += 1
        self.records += int(recs.size)
        return Frame(at, c.MARKET, self.codec.encode(msg), msg.seq)

    def _faults(self, n: int) -> Iterator[Frame]:
        for frame in self.fault_frames.get(n, ()):
            self.faults_sent += 1
            yield Frame(None, c.MARKET, frame)


def _send(sock: zmq.Socket, f: Frame, stop: Any) -> bool:
    """Send, blocking while the subscribers' queues are full (NODROP), until `stop` is set."""
    while True:
        try:
            sock.send_multipart((f.topic, f.frame), flags=zmq.NOBLOCK, copy=False)
            return True
        except zmq.Again:
            if stop is not None and stop.is_set():
                return False
            sock.poll(100, zmq.POLLOUT)


def bind_publisher(ctx: zmq.Context, endpoint: str, hwm: int = 1000, *, connect: bool = False,
                   transport: Any = None, link: str = "md") -> zmq.Socket:
    """An XPUB bound at `endpoint` (connected to it with connect=True, when the subscriber binds)
    that never drops (XPUB_NODROP: a full queue blocks the sender). transport: a
    bot4.services.security.Transport (required for tcp: CURVE); link: its name in the counters."""
    sock = ctx.socket(zmq.XPUB)
    sock.setsockopt(zmq.XPUB_NODROP, 1)
    # Every subscription comes up, not only a topic's first: two subscribers of one topic (an
    # engine and a venue on the feed) are counted as two.
    sock.setsockopt(zmq.XPUB_VERBOSE, 1)
    sock.setsockopt(zmq.SNDHWM, hwm)
    sock.setsockopt(zmq.LINGER, 5_000)
    from bot4.services.security import bind_link, connect_link

    if connect:
        connect_link(sock, endpoint, link, transport)
    else:
        bind_link(sock, endpoint, link, transport)
    return sock


def wait_subscribers(sock: zmq.Socket, n: int, timeout_s: float = 30.0, stop: Any = None,
                     topic: bytes | None = None) -> None:
    """Block until `n` subscriptions (to `topic` only, when given) arrived on the XPUB `sock`
    (TimeoutError after timeout_s; InterruptedError when `stop` is set)."""
    seen = 0
    deadline = time.monotonic() + timeout_s
    while seen < n:
        if stop is not None and stop.is_set():
            raise InterruptedError("stopped while waiting for subscribers")
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"{seen} of {n} subscribers after {timeout_s:.0f} s")
        if not sock.poll(int(min(left, 0.1) * 1000)):
            continue
        msg = sock.recv()
        if msg[:1] == b"\x01" and (topic is None or msg[1:] == topic):
            seen += 1


def await_unsubscribe(pub: zmq.Socket, topic: bytes, timeout_s: float, stop: Any = None) -> bool:
    """Wait for the subscribers of `topic` on the XPUB `pub` to drop it: a subscriber's
    acknowledgement that it took in everything sent before (frames of one pipe stay in order).
    Closing with frames still queued lost the tail now and then despite LINGER (processes over
    ipc), so a publisher's last frame is acknowledged this way before it closes."""
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0 and not (stop is not None and stop.is_set()):
        if pub.poll(int(min(left, 0.1) * 1000)) and pub.recv() == b"\x00" + topic:
            return True
    return False


def run_feed(ctx: zmq.Context, endpoint: str, parts: Iterable[Any], *, speed: Speed = "max",
             batch_events: int = 1024, subscribers: int = 1,
             fault_frames: Mapping[int, Sequence[bytes]] | None = None, stop: Any = None,
             ready: Any = None, ack_timeout_s: float = 600.0, replay_endpoint: str | None = None,
             replay_bytes: int = 1 << 30, serve_until: Any = None, transport: Any = None) -> dict[str, int]:
    """The feed service: bind `endpoint`, wait for `subscribers`, publish the recording, end with
    EndOfStream and wait (up to ack_timeout_s) for the subscribers to acknowledge it (counter
    end_acknowledged). ready: an object with set() called once bound (threading.Event).
    replay_endpoint: also answer ReplayRequests there (serve_replay) from the last replay_bytes
    of frames sent, until `serve_until` (an Event) is set after the stream ends, so an engine
    restarted after a crash can catch up on what it missed. transport: how the endpoints are
    bound (bot4.services.security.Transport; required for tcp, whose peers it authenticates
    with CURVE; its counters join the result as security.*)."""
    from bot4.services.security import close_link
    feed = Feed(parts, batch_events=batch_events, fault_frames=fault_frames)
    sock = bind_publisher(ctx, endpoint, transport=transport, link="md")
    ring = ReplayRing(replay_bytes) if replay_endpoint is not None else None
    server = None
    halt = threading.Event()
    try:
        if ring is not None:
            assert replay_endpoint is not None
            bound = threading.Event()
            server = threading.Thread(target=serve_replay, args=(ctx, replay_endpoint, ring, halt, bound, transport),
                                      name="bot4-feed-replay", daemon=True)
            server.start()
            bound.wait(30)
        if ready is not None:
            ready.set()
        wait_subscribers(sock, subscribers, stop=stop, topic=c.MARKET)
        out = feed.publish(sock, speed, stop, ring)
        if subscribers:
            out["end_acknowledged"] = int(await_unsubscribe(sock, c.MARKET, ack_timeout_s, stop))
        if serve_until is not None:
            while not serve_until.wait(0.1):
                if stop is not None and stop.is_set():
                    break
        if ring is not None:
            out.update({f"replay.{k}": v for k, v in ring.counters.items()})
        if transport is not None:
            out.update({f"security.{k}": v for k, v in transport.counters().items()})
        return out
    finally:
        halt.set()
        if server is not None:
            server.join(5)
        close_link(sock, transport)


class ReplayGone(Exception):
    """The frames asked for are no longer held (the ring kept only the newest bytes)."""


class ReplayRing:
    """The frames a feed sent, by seq, keeping the newest `max_bytes` of them."""

    def __init__(self, max_bytes: int):
        self.max_bytes = int(max_bytes)
        self._frames: deque[tuple[int, bytes, bytes]] = deque()
        self._bytes = 0
        self._lock = threading.Lock()
        self.counters = {"requests": 0, "frames_replayed": 0, "evicted": 0, "gone": 0}

    def add(self, seq: int, topic: bytes, frame: bytes) -> None:
        """Keep one sent frame (seqs consecutive); the oldest go once past max_bytes."""
        with self._lock:
            self._frames.append((seq, topic, frame))
            self._bytes += len(frame)
            while self._bytes > self.max_bytes and len(self._frames) > 1:
                self._bytes -= len(self._frames.popleft()[2])
                self.counters["evicted"] += 1

    def since(self, seq: int, max_frames: int) -> list[tuple[bytes, bytes]]:
        """Up to max_frames frames from `seq` on ([] when none was sent yet); ReplayGone when
        `seq` was evicted."""
        with self._lock:
            self.counters["requests"] += 1
            if not self._frames or seq > self._frames[-1][0]:
                return []
            first = self._frames[0][0]
            if seq < first:
                self.counters["gone"] += 1
                raise ReplayGone(f"the feed holds frames from seq {first} on, asked for {seq}")
            at = seq - first  # seqs are consecutive in the ring
            out = [(t, f) for _, t, f in list(self._frames)[at:at + max_frames]]
            self.counters["frames_replayed"] += len(out)
            return out


def serve_replay(ctx: zmq.Context, endpoint: str, ring: ReplayRing, halt: Any, bound: Any = None,
                 transport: Any = None) -> None:
    """Answer ReplayRequests (topic REPLAY) on a ROUTER at `endpoint` until `halt` is set. The
    reply is [b"ok", topic, frame, topic, frame, ...] (no pairs: nothing newer yet) or
    [b"gone", reason] / [b"bad", reason]. transport: as run_feed's."""
    from bot4.services.security import bind_link, close_link

    codec = c.Codec(c.REPLAY)
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 1_000)
    bind_link(router, endpoint, "replay", transport)
    if bound is not None:
        bound.set()
    try:
        while not halt.is_set():
            if not router.poll(100):
                continue
            parts = router.recv_multipart()
            who = parts[0]
            msg = codec.decode(parts[-1]) if len(parts) >= 2 else None
            if not isinstance(msg, c.ReplayRequest):
                router.send_multipart((who, b"bad", b"expected a ReplayRequest frame"))
                continue
            try:
                frames = ring.since(msg.from_seq, msg.max_frames)
            except ReplayGone as exc:
                router.send_multipart((who, b"gone", str(exc).encode()))
                continue
            router.send_multipart([who, b"ok", *(x for pair in frames for x in pair)])
    finally:
        close_link(router, transport)


def replay_client(ctx: zmq.Context, endpoint: str, timeout_s: float = 30.0, transport: Any = None) -> tuple[Any, Any]:
    """fetch(from_seq, max_frames) -> [(topic, frame), ...] from a feed's replay endpoint (a
    ConnectionError when the feed no longer holds them or does not answer), and its socket.
    transport: as run_feed's (CURVE client on tcp)."""
    from bot4.services.security import connect_link

    codec = c.Codec(c.REPLAY)
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    connect_link(sock, endpoint, "replay", transport)

    def fetch(from_seq: int, max_frames: int = 1024) -> list[tuple[bytes, bytes]]:
        sock.send(codec.encode(c.ReplayRequest(ts=time.time_ns(), from_seq=from_seq, max_frames=max_frames)))
        if not sock.poll(int(timeout_s * 1000)):
            raise ConnectionError(f"the feed's replay at {endpoint} did not answer within {timeout_s:.0f} s")
        parts = sock.recv_multipart()
        if parts[0] != b"ok":
            raise ConnectionError(f"feed replay: {parts[0].decode()}: {parts[1].decode() if len(parts) > 1 else ''}")
        return list(zip(parts[1::2], parts[2::2]))

    return fetch, sock
