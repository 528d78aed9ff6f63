"""Enrichment service: answers from a slow outside source (a funding rate, a news score, ...)
fetched in the background into a TTL cache that strategies read without ever waiting.

    strategy.on_decision ── cache.get(key) ──► (value, age) or None      never blocks, never fetches
            │ service.request(key)  (queues, returns at once; one request per key in flight)
            ▼
    worker threads ── source.fetch(key) ──► service thread ── Enrichment ──► PUB ──► SUB ──► cache
                       (seconds, may hang     (timeouts, counters,          (another process's
                        or fail)               publisher-side cache)         EnrichmentSubscriber)

The source is any object with a blocking `fetch(key) -> value`; SlowSource is a seeded stand-in
with latency, jitter, failures and stalls. A request answered later than `timeout` after it was
made is a timeout: an Enrichment with ok=False, error="timeout" is published at the deadline and
the late answer, when it comes, is counted and dropped. Failed answers never replace a cached
value (it stays readable until its own TTL runs out). Blocking calls cannot be cancelled, so
workers are daemon threads: a source hung for good costs a worker, never the process's exit.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple, Protocol

import zmq

from bot4 import contracts as c

log = logging.getLogger("bot4.services.enrichment")

Value = bool | int | float | str | None


class Source(Protocol):
    """An outside source: `fetch` blocks until it answers or raises."""

    def fetch(self, key: str) -> Value:
        """The current value for `key` (blocking as long as the source takes); raises on failure."""
        ...


class SourceFailure(RuntimeError):
    """The (stand-in) source answered with an error."""


class SlowSource:
    """A stand-in for a slow outside source, seeded so a run can be repeated.

    Each fetch draws from one random.Random(seed), in call order: a delay of `latency` ±
    `jitter` seconds (uniform, not below 0), a failure with probability `failure_rate` (raised as
    SourceFailure after the delay), a stall of `stall` seconds instead of the delay with
    probability `stall_rate` (what a timeout is for), and the answer (a float in [0, 1), or
    `value(key)`). close() ends every wait at once (the fetches in progress fail)."""

    def __init__(self, latency: float = 2.0, *, jitter: float = 0.0, failure_rate: float = 0.0,
                 stall_rate: float = 0.0, stall: float = 3600.0, seed: int = 0,
                 value: Callable[[str], Value] | None = None):
        for name, v in (("latency", latency), ("jitter", jitter), ("stall", stall)):
            if not v >= 0:
                raise ValueError(f"{name} must be >= 0 seconds, got {v}")
        for name, v in (("failure_rate", failure_rate), ("stall_rate", stall_rate)):
            if not 0 <= v <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {v}")
        self.latency, self.jitter, self.stall = float(latency), float(jitter), float(stall)
        self.failure_rate, self.stall_rate = float(failure_rate), float(stall_rate)
        self._value = value
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self.calls = 0      # fetches begun
        self.returned = 0   # fetches ended (answer or failure)

    def fetch(self, key: str) -> Value:
        """Wait, then answer for `key` or raise SourceFailure."""
        with self._lock:
            self.calls += 1
            u_delay, u_fail, u_stall, answer = (self._rng.random() for _ in range(4))
        delay = self.stall if u_stall < self.stall_rate else max(0.0, self.latency + (2 * u_delay - 1) * self.jitter)
        try:
            if self._closed.wait(delay):
                raise SourceFailure("source closed")
            if u_fail < self.failure_rate:
                raise SourceFailure(f"source failed for {key!r}")
            return self._value(key) if self._value is not None else answer
        finally:
            with self._lock:
                self.returned += 1

    def close(self) -> None:
        """End every wait now (pending fetches raise SourceFailure)."""
        self._closed.set()


class Cached(NamedTuple):
    """A cache hit: the value and its age (ns since it entered this cache)."""

    value: Value
    age_ns: int


class EnrichmentCache:
    """Key -> value with a time to live, written by one service thread and read by any number of
    threads without a lock: get() is one dict lookup of an immutable entry (writers replace
    entries whole, readers never modify the dict), so a reader can never wait for a writer.

    clock: monotonic ns (injected by tests); an entry's age counts from when it was put here."""

    def __init__(self, clock: Callable[[], int] = time.monotonic_ns):
        self._clock = clock
        self._entries: dict[str, tuple[Value, int, int]] = {}

    def get(self, key: str) -> Cached | None:
        """(value, age_ns) while the entry is younger than its TTL, else None. Never blocks."""
        e = self._entries.get(key)
        if e is None:
            return None
        age = self._clock() - e[1]
        return Cached(e[0], age) if age < e[2] else None

    def put(self, key: str, value: Value, ttl_ns: int) -> None:
        """Store `value` for `ttl_ns` from now (ttl_ns <= 0 stores nothing readable)."""
        self._entries[key] = (value, self._clock(), int(ttl_ns))

    def purge(self) -> int:
        """Drop expired entries (writer side only); returns how many."""
        now = self._clock()
        dead = [k for k, e in list(self._entries.items()) if now - e[1] >= e[2]]
        for k in dead:
            self._entries.pop(k, None)
        return len(dead)

    def __len__(self) -> int:
        return len(self._entries)


class _Pending(NamedTuple):
    rid: int
    t0: int         # monotonic ns at the request
    ts: int         # wall ns at the request
    deadline: int   # monotonic ns
    trace: int


#: Counters of an EnrichmentService (declared once).
SERVICE_COUNTERS = ("requested", "coalesced", "refused_full", "answered", "failed", "timed_out",
                    "late_answers", "published", "inbox_requests", "inbox_other")


class EnrichmentService:
    """Fetches keys from `source` on `workers` daemon threads and publishes each outcome as an
    Enrichment message; a service thread owns the publishing socket, the timeouts and the refresh.

    timeout: seconds from request to answer before it counts as timed out. ttl: seconds an answer
    stays valid. keys/refresh: keys requested every `refresh` seconds (None: only on request()).
    max_pending: requests in flight at most (more are refused and counted, never queued without
    bound). sock: a PUB (or XPUB) socket, bound or connected and secured by the caller, that the
    service thread uses from start() on (no other thread may touch it then); None publishes
    nothing. inbox: a SUB (subscribed here to ENRICHMENT) or PULL socket on which other services
    send EnrichmentRequest messages (timeout_ns 0 = this service's timeout), also the service
    thread's from start() on; its codec counts refused frames. cache: the publisher-side cache
    filled with every ok answer (a new one by default).
    """

    def __init__(self, source: Source, *, timeout: float = 5.0, ttl: float = 60.0, workers: int = 4,
                 max_pending: int = 64, keys: Iterable[str] = (), refresh: float | None = None,
                 sock: zmq.Socket | None = None, inbox: zmq.Socket | None = None,
                 cache: EnrichmentCache | None = None,
                 wall_clock: Callable[[], int] = time.time_ns):
        if not timeout > 0 or not ttl > 0:
            raise ValueError(f"timeout and ttl must be > 0 seconds, got {timeout}, {ttl}")
        if workers < 1 or max_pending < 1:
            raise ValueError(f"workers and max_pending must be >= 1, got {workers}, {max_pending}")
        if refresh is not None and not refresh > 0:
            raise ValueError(f"refresh must be > 0 seconds or None, got {refresh}")
        self.source = source
        self.timeout_ns, self.ttl_ns = int(timeout * 1e9), int(ttl * 1e9)
        self.keys = tuple(keys)
        self.refresh_ns = int(refresh * 1e9) if refresh is not None else None
        self.max_pending = int(max_pending)
        self.cache = cache if cache is not None else EnrichmentCache()
        self._sock = sock
        self._codec = c.Codec(c.ENRICHMENT)
        self._inbox = inbox
        self.inbox_codec = c.Codec(c.ENRICHMENT)
        if inbox is not None and inbox.type == zmq.SUB:
            inbox.subscribe(c.ENRICHMENT)
        self._wall = wall_clock
        self._lock = threading.Lock()           # guards _pending, _next_rid and _counts; never held over I/O
        self._pending: dict[str, _Pending] = {}
        self._next_rid = 0
        self._counts = dict.fromkeys(SERVICE_COUNTERS, 0)
        self._jobs: queue.SimpleQueue[tuple[str, int] | None] = queue.SimpleQueue()
        self._results: queue.SimpleQueue[tuple[str, int, bool, Value, str]] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._workers = [threading.Thread(target=self._work, name=f"bot4-enrichment-worker-{i}", daemon=True)
                         for i in range(workers)]
        self._thread = threading.Thread(target=self._serve, name="bot4-enrichment", daemon=True)
        self._started = False

    def start(self) -> EnrichmentService:
        """Start the workers and the service thread (the socket belongs to it from now on)."""
        if self._started:
            raise RuntimeError("the enrichment service is already started")
        self._started = True
        for w in self._workers:
            w.start()
        self._thread.start()
        return self

    def request(self, key: str, timeout: float | None = None) -> bool:
        """Ask for `key` in the background; returns at once. False when a request for `key` is
        already in flight (coalesced) or max_pending are (refused); both counted. timeout:
        seconds (None: the service's)."""
        now = time.monotonic_ns()
        timeout_ns = self.timeout_ns if timeout is None else int(timeout * 1e9)
        with self._lock:
            if key in self._pending:
                self._counts["coalesced"] += 1
                return False
            if len(self._pending) >= self.max_pending:
                self._counts["refused_full"] += 1
                return False
            self._next_rid += 1
            rid = self._next_rid
            self._pending[key] = _Pending(rid, now, self._wall(), now + timeout_ns, c.new_trace_id())
            self._counts["requested"] += 1
        self._jobs.put((key, rid))
        return True

    def counters(self) -> dict[str, int]:
        """SERVICE_COUNTERS, in_flight (requests not yet answered or timed out) and, with an
        inbox, its refused frames as inbox.rejected.<reason>."""
        with self._lock:
            out = dict(self._counts)
            out["in_flight"] = len(self._pending)
        if self._inbox is not None:
            out.update({f"inbox.rejected.{k}": v for k, v in self.inbox_codec.rejected.items()})
        return out

    def close(self, timeout: float = 5.0) -> None:
        """Stop the service thread (it publishes nothing after) and release idle workers; workers
        inside a source call are left to it (daemon threads). Closes nothing of the caller's."""
        self._stop.set()
        for _ in self._workers:
            self._jobs.put(None)
        if self._started:
            self._thread.join(timeout)

    def __enter__(self) -> EnrichmentService:
        return self.start() if not self._started else self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            key, rid = job
            try:
                value = self.source.fetch(key)
            except Exception as exc:  # the outside world's failure is data here, not a crash
                self._results.put((key, rid, False, None, f"{type(exc).__name__}: {exc}"))
            else:
                self._results.put((key, rid, True, value, ""))

    def _serve(self) -> None:
        next_refresh = time.monotonic_ns() if self.refresh_ns is not None else None
        while not self._stop.is_set():
            now = time.monotonic_ns()
            if next_refresh is not None and now >= next_refresh:
                for k in self.keys:
                    self.request(k)
                next_refresh = max(next_refresh + (self.refresh_ns or 0), now)
            with self._lock:
                wake = min((p.deadline for p in self._pending.values()), default=now + 100_000_000)
            if next_refresh is not None:
                wake = min(wake, next_refresh)
            wait = min(0.1, max(0.0, (wake - time.monotonic_ns()) / 1e9))
            if self._inbox is not None:
                # The inbox is a socket and the results a queue: poll the socket in short slices
                # (an answer then waits at most 10 ms, against seconds of source latency).
                self._take_requests(int(min(wait, 0.01) * 1000))
                wait = 0.0
            try:
                item = self._results.get(timeout=wait) if wait > 0 else self._results.get_nowait()
            except queue.Empty:
                item = None
            while item is not None:
                self._answer(*item)
                try:
                    item = self._results.get_nowait()
                except queue.Empty:
                    item = None
            self._expire()

    def _take_requests(self, timeout_ms: int) -> None:
        assert self._inbox is not None
        first = True
        while self._inbox.poll(timeout_ms if first else 0):
            first = False
            parts = self._inbox.recv_multipart()
            msg = self.inbox_codec.decode(parts[-1])
            if isinstance(msg, c.EnrichmentRequest):
                with self._lock:
                    self._counts["inbox_requests"] += 1
                self.request(msg.key, msg.timeout_ns / 1e9 if msg.timeout_ns else None)
            elif not isinstance(msg, c.Rejection):
                with self._lock:
                    self._counts["inbox_other"] += 1

    def _answer(self, key: str, rid: int, ok: bool, value: Value, error: str) -> None:
        now = time.monotonic_ns()
        with self._lock:
            p = self._pending.get(key)
            # Past its deadline: the timeout is published (here by _expire, which runs next, when
            # the answer beat _expire to it) and the answer dropped.
            if p is None or p.rid != rid or now >= p.deadline:
                self._counts["late_answers"] += 1
                return
            del self._pending[key]
            self._counts["answered" if ok else "failed"] += 1
        if ok:
            self.cache.put(key, value, self.ttl_ns)
        else:
            log.debug("enrichment %r failed: %s", key, error)
        self._publish(c.Enrichment(ts=self._wall(), key=key, ok=ok, value=value if ok else None,
                                   ttl_ns=self.ttl_ns if ok else 0, latency_ns=now - p.t0, error=error,
                                   trace=p.trace))

    def _expire(self) -> None:
        now = time.monotonic_ns()
        with self._lock:
            due = [(k, p) for k, p in self._pending.items() if now >= p.deadline]
            for k, _ in due:
                del self._pending[k]
            self._counts["timed_out"] += len(due)
        for k, p in due:
            self._publish(c.Enrichment(ts=self._wall(), key=k, ok=False, latency_ns=now - p.t0,
                                       error="timeout", trace=p.trace))

    def _publish(self, msg: c.Enrichment) -> None:
        if self._sock is None:
            return
        try:
            self._sock.send_multipart([c.ENRICHMENT, self._codec.encode(msg)], flags=zmq.NOBLOCK)
        except zmq.Again:  # a PUB never blocks; an XPUB with NODROP at its high-water mark does
            log.warning("enrichment: publisher full, answer for %r not sent", msg.key)
            return
        with self._lock:
            self._counts["published"] += 1


#: Counters of an EnrichmentSubscriber, besides its codec's (declared once).
SUBSCRIBER_COUNTERS = ("answers", "errors", "requests_seen")


class EnrichmentSubscriber:
    """Fills a cache from Enrichment messages on a SUB socket (connected, and secured, by the
    caller; subscribed here to the ENRICHMENT topic). Failed answers are counted, never cached.
    Either call poll() from the socket's thread, or start() a thread that owns the socket."""

    def __init__(self, sock: zmq.Socket, cache: EnrichmentCache | None = None):
        self.sock = sock
        self.cache = cache if cache is not None else EnrichmentCache()
        self.codec = c.Codec(c.ENRICHMENT)
        self._counts = dict.fromkeys(SUBSCRIBER_COUNTERS, 0)
        self.malformed_multipart = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        sock.subscribe(c.ENRICHMENT)

    def poll(self, timeout_ms: int = 0) -> int:
        """Take every message waiting (waiting up to timeout_ms for the first); returns how many."""
        n = 0
        while self.sock.poll(timeout_ms if n == 0 else 0):
            parts = self.sock.recv_multipart(copy=True)
            n += 1
            if len(parts) != 2:
                self.malformed_multipart += 1
                continue
            msg = self.codec.decode(parts[1])
            if isinstance(msg, c.Enrichment):
                if msg.ok:
                    self.cache.put(msg.key, msg.value, msg.ttl_ns)
                    self._counts["answers"] += 1
                else:
                    self._counts["errors"] += 1
            elif isinstance(msg, c.EnrichmentRequest):
                self._counts["requests_seen"] += 1
        return n

    def start(self) -> EnrichmentSubscriber:
        """Poll on a thread of its own (which owns the socket until close())."""
        self._thread = threading.Thread(target=self._run, name="bot4-enrichment-sub", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll(50)

    def counters(self) -> dict[str, Any]:
        """answers (cached), errors (ok=False), requests_seen, frames not [topic, message], and
        the codec's decoded/rejected.<reason>."""
        out: dict[str, Any] = dict(self._counts)
        out["malformed_multipart"] = self.malformed_multipart
        out.update(self.codec.counters())
        return out

    def close(self) -> None:
        """Stop the polling thread (the socket is the caller's to close)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
