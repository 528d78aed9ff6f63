"""Observers of a running session (a live terminal view, `bot4 ctl watch`, a dashboard): a
publisher they subscribe to that can never stall the session.

Observers are not the system of record: the session's collector (bot4.services.session, which
receives every engine output over sockets that never drop) and the journal are. What an observer
sees is a view that may skip states and, past a bound, executions, and every frame it did not get
is counted.

The engine's XPUB never drops, so a stalled subscriber there would stall the engine (the right
thing for the collector and the venue). The ConflatingPublisher sits behind the collector instead:
an XPUB with XPUB_NODROP and a small high-water mark, sent to without blocking. A frame that
would block goes to a backlog:

* POSITIONS, DECISIONS and TELEMETRY frames keep only the latest per key (topic and instrument;
  see observer_key); each one replaced is counted in `conflated.<topic>`.
* EXECUTIONS (order events and fills) are never conflated: they wait in a FIFO of `queue` frames;
  when it is full the oldest is dropped and counted (`dropped.executions`), so an observer that
  catches up sees the most recent executions.

The backlog goes out, executions first, whenever the observers take frames again (each publish
and each flush() tries; after a failed send, publish() backlogs the next few frames without
trying). A frame offered while no observer is subscribed is not sent (ZeroMQ would discard it)
and is counted as `unobserved.<topic>`; the subscriptions are read at each heartbeat, so a first
observer misses up to heartbeat_s of frames (run_paper's `observers` waits for observers before
the session starts), and one that joins mid-session sees each state from its next change (there
is no last-value cache). For every
topic, published = sent + unobserved + conflated + dropped + pending (`pending.<topic>` for
states; `queue.depth` for executions, with `queue.max` its largest), and what is still pending
at close() is counted as `unsent.<topic>`.

One publisher serves every observer: ZeroMQ refuses a non-blocking send while any subscriber's
queue is full, so the slowest observer sets the pace and a fast observer beside a stalled one sees
the conflated stream too. A fast observer alone receives every execution (while the queue does not
overflow). The publisher also publishes its own counters as a Heartbeat (service "observer", on
TELEMETRY, conflated like any telemetry) every `heartbeat_s` while frames flow or flush() is
called, so an observer can show what it missed.

On tcp the endpoint needs CURVE keys (bot4.services.security; `bot4 keys generate DIR`): only the
directory's authorised clients get frames. ipc and inproc endpoints are protected by the file
system and the process.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import zmq

from bot4 import contracts as c
from bot4.services import control

SERVICE = "observer"
#: Frames ZeroMQ queues per observer before the publisher backlogs (small: a slow observer is
#: detected early and costs little memory).
DEFAULT_HWM = 100
#: Executions held for slow observers before the oldest is dropped.
DEFAULT_QUEUE = 10_000
DEFAULT_HEARTBEAT_S = 0.25
#: close(): how long the observers may take nothing before the rest of the backlog is given up
#: (a reader slower than this at the end is taken for a stalled one). A stalled observer costs
#: nothing here (it took nothing long before the end); 0.3 s lost the end of a reading `bot4 ctl
#: watch` on a loaded 2-core machine, whose reads were held up by the session's own threads.
DEFAULT_FLUSH_S = 1.0
#: Frames backlogged without a send attempt after one failed (a failed send is the costly part).
_RETRY_AFTER = 32
#: Topics whose frames keep only the latest per key when an observer is slow.
CONFLATED: tuple[bytes, ...] = (c.POSITIONS, c.DECISIONS, c.TELEMETRY)
#: Topics an observer receives (the engine's outputs and the session's telemetry).
TOPICS: tuple[bytes, ...] = (c.DECISIONS, c.EXECUTIONS, c.POSITIONS, c.TELEMETRY)
_NAMES = {c.DECISIONS: "decisions", c.EXECUTIONS: "executions", c.POSITIONS: "positions", c.TELEMETRY: "telemetry"}


def check_observe_endpoint(endpoint: str, *, curve: bool = False) -> None:
    """ValueError unless `endpoint` is an ipc://, inproc:// or (with CURVE keys, curve=True)
    tcp:// address."""
    scheme, sep, rest = endpoint.partition("://")
    if not sep or not rest or scheme not in ("ipc", "inproc", "tcp"):
        raise ValueError(f"observer endpoint {endpoint!r}: expected ipc://PATH, inproc://NAME or tcp://HOST:PORT")
    if scheme == "tcp" and not curve:
        raise ValueError(f"observer endpoint {endpoint!r}: tcp needs CURVE keys (keys=DIR, `--keys DIR`; "
                         "create them with `bot4 keys generate DIR`), or any host could watch the session")


def observer_pointer_file() -> Path:
    """Where the latest announced session's observer endpoint is written (beside the control
    endpoint's bot4.services.control.pointer_file)."""
    return control.pointer_file().with_name("paper.observe")


def announced_observer() -> str | None:
    """The observer endpoint of the latest announced session (None when there is none)."""
    try:
        text = observer_pointer_file().read_text().strip()
    except OSError:
        return None
    return text or None


def observer_key(topic: bytes, msg: Any) -> Hashable:
    """The conflation key of a decoded message on `topic`: (topic, instrument) for decisions,
    positions and executions; a shadow model's score per instrument and slot; a heartbeat per
    service instance; latency samples per service and stage."""
    if isinstance(msg, c.Heartbeat):
        return (topic, "hb", msg.service, msg.instance)
    if isinstance(msg, c.PerfSample):
        return (topic, "perf", msg.service, msg.stage)
    if isinstance(msg, c.ShadowScore):
        return (topic, "shadow", msg.instrument, msg.slot)
    return (topic, getattr(msg, "instrument", None))


class ConflatingPublisher:
    """The observers' publisher bound at `endpoint` (see the module doc). hwm: frames ZeroMQ
    queues per observer; queue: executions backlogged before the oldest is dropped. keys, guard:
    the CURVE keys directory and the context's bot4.services.security.CurveGuard (required for
    tcp). announce: write the endpoint to observer_pointer_file() (for `bot4 ctl watch`).
    Drive it from one thread."""

    def __init__(self, ctx: zmq.Context, endpoint: str, *, hwm: int = DEFAULT_HWM, queue: int = DEFAULT_QUEUE,
                 keys: Any = None, guard: Any = None, announce: bool = False,
                 heartbeat_s: float = DEFAULT_HEARTBEAT_S, clock: Any = time.monotonic):
        tcp = endpoint.startswith("tcp://")
        check_observe_endpoint(endpoint, curve=keys is not None)
        if hwm < 1 or queue < 1:
            raise ValueError(f"hwm and queue must be >= 1, got {hwm} and {queue}")
        if tcp and guard is None:
            raise ValueError("a tcp observer endpoint needs the context's CurveGuard (guard=)")
        self.endpoint = endpoint
        self.sock = ctx.socket(zmq.XPUB)
        self.sock.setsockopt(zmq.XPUB_NODROP, 1)  # a full observer makes send fail, not lose silently
        self.sock.setsockopt(zmq.XPUB_VERBOSER, 1)  # every (un)subscription comes up: observers counted
        self.sock.setsockopt(zmq.SNDHWM, int(hwm))
        self.sock.setsockopt(zmq.LINGER, 0)  # observers never hold the session's end
        self._monitor = None
        self._handshakes: dict[str, int] = {}
        if tcp:
            from bot4.services.security import HandshakeMonitor, secure_server

            secure_server(self.sock, keys, guard)
            # Counts the refused peers ZAP never sees (no CURVE at all: a protocol failure).
            self._monitor = HandshakeMonitor(self.sock)
        try:
            self.sock.bind(endpoint)
        except zmq.ZMQError as exc:
            self.sock.close()
            raise ValueError(f"observer endpoint {endpoint}: cannot bind ({exc})") from None
        if endpoint.endswith(":0") or endpoint.endswith(":*"):
            self.endpoint = self.sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self.queue_size = int(queue)
        self._queue: deque[tuple[bytes, Any]] = deque()
        self._latest: dict[Hashable, tuple[bytes, Any]] = {}
        self._hb_codec = c.Codec(c.TELEMETRY)
        self._hb_seq = 0
        self._hb_every = float(heartbeat_s)
        self._clock = clock
        self._next_hb = clock() + self._hb_every
        self.subscriptions = 0
        self._skip = 0
        self._sent_at = time.monotonic()  # the last frame an observer took
        self.queue_max = 0
        self.published = {t: 0 for t in TOPICS}
        self.sent = {t: 0 for t in TOPICS}
        self.conflated = {t: 0 for t in CONFLATED}
        self.dropped_executions = 0
        self.unobserved = {t: 0 for t in TOPICS}
        self.unsent: dict[bytes, int] = {}
        self.closed = False
        self._pointer = observer_pointer_file() if announce else None
        if self._pointer is not None:
            self._pointer.parent.mkdir(mode=0o700, exist_ok=True)
            self._pointer.write_text(self.endpoint + "\n")

    # -- publishing ------------------------------------------------------------------------------
    def publish(self, topic: bytes, frame: Any, key: Hashable) -> None:
        """Offer one frame (`topic` one of TOPICS, `key` its conflation key: observer_key);
        never blocks."""
        prefix = c.topic_of(topic) if topic not in self.published else topic
        self.published[prefix] += 1
        if self.subscriptions <= 0:
            self.unobserved[prefix] += 1
        elif self._skip:
            # An observer was full a moment ago: a failed send costs more than the backlog, so
            # the next attempt waits a few frames (flush() always tries).
            self._skip -= 1
            self._backlog(prefix, topic, frame, key)
        elif (self._queue or self._latest) and not self._drain():
            self._backlog(prefix, topic, frame, key)
        elif not self._send(prefix, topic, frame):
            self._backlog(prefix, topic, frame, key)
        if self._clock() >= self._next_hb:
            self._heartbeat()

    def flush(self) -> bool:
        """Send what is backlogged as far as the observers take it, and the heartbeat when due;
        True when nothing is left."""
        done = self._drain()
        if self._clock() >= self._next_hb:
            self._heartbeat()
            done = not (self._queue or self._latest)
        return done

    def _send(self, prefix: bytes, topic: bytes, frame: Any) -> bool:
        try:
            self.sock.send_multipart((topic, frame), flags=zmq.NOBLOCK)  # small frames: copying is cheaper
        except zmq.Again:
            self._skip = _RETRY_AFTER
            return False
        self.sent[prefix] += 1
        self._sent_at = time.monotonic()
        return True

    def _backlog(self, prefix: bytes, topic: bytes, frame: Any, key: Hashable) -> None:
        if prefix == c.EXECUTIONS:
            if len(self._queue) >= self.queue_size:
                self._queue.popleft()
                self.dropped_executions += 1
            self._queue.append((topic, frame))
            self.queue_max = max(self.queue_max, len(self._queue))
            return
        if key in self._latest:
            self.conflated[prefix] += 1
            del self._latest[key]  # re-inserted last: states go out in the order they last changed
        self._latest[key] = (topic, frame)

    def _drain(self) -> bool:
        q = self._queue
        while q:
            topic, frame = q[0]
            if not self._send(c.EXECUTIONS, topic, frame):
                return False
            q.popleft()
        latest = self._latest
        while latest:
            key = next(iter(latest))
            topic, frame = latest[key]
            if not self._send(c.topic_of(topic), topic, frame):
                return False
            del latest[key]
        return True

    def _heartbeat(self) -> None:
        self._next_hb = self._clock() + self._hb_every
        self._subscriptions()
        hb = c.Heartbeat(ts=time.time_ns(), service=SERVICE, instance=os.getpid(), seq=self._hb_seq,
                         state="stopping" if self.closed else "running", counters=self.counters())
        self._hb_seq += 1
        frame = self._hb_codec.encode(hb)
        self.published[c.TELEMETRY] += 1
        key = observer_key(c.TELEMETRY, hb)
        if self.subscriptions <= 0:
            self.unobserved[c.TELEMETRY] += 1
        elif (self._queue or self._latest) and not self._drain():
            self._backlog(c.TELEMETRY, c.TELEMETRY, frame, key)
        elif not self._send(c.TELEMETRY, c.TELEMETRY, frame):
            self._backlog(c.TELEMETRY, c.TELEMETRY, frame, key)

    # -- observers -------------------------------------------------------------------------------
    def _subscriptions(self) -> None:
        while True:
            try:
                msg = self.sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            if msg[:1] == b"\x01":
                self.subscriptions += 1
            elif msg[:1] == b"\x00":
                self.subscriptions -= 1

    def wait_observers(self, n: int, timeout_s: float = 30.0) -> None:
        """Block until `n` subscriptions arrived (an observer subscribed to every topic with b""
        makes one); TimeoutError after timeout_s. For a view that must see the session from its
        first frame (a session never waits for observers otherwise)."""
        deadline = time.monotonic() + timeout_s
        self._subscriptions()
        while self.subscriptions < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"observer endpoint {self.endpoint}: {self.subscriptions} of {n} observers "
                                   f"after {timeout_s:g} s")
            if self.sock.poll(int(min(left, 0.1) * 1000)):
                self._subscriptions()

    # -- counters --------------------------------------------------------------------------------
    def pending(self) -> dict[bytes, int]:
        """Backlogged frames per topic (not yet sent)."""
        out = dict.fromkeys(TOPICS, 0)
        out[c.EXECUTIONS] = len(self._queue)
        for topic, _ in self._latest.values():
            out[c.topic_of(topic)] += 1
        return out

    def counters(self) -> dict[str, int]:
        """published.<topic>, sent.<topic>, unobserved.<topic> (offered while no observer was
        subscribed), conflated.<topic> (positions, decisions, telemetry),
        dropped.executions, unsent.<topic> (after close), queue.depth and queue.max (executions
        waiting now and at most), pending.<topic> (states waiting now: positions, decisions,
        telemetry), observers (subscriptions now); on tcp handshake.<outcome>
        (bot4.services.security.HANDSHAKE_EVENTS)."""
        out: dict[str, int] = {}
        for t in TOPICS:
            out[f"published.{_NAMES[t]}"] = self.published[t]
            out[f"sent.{_NAMES[t]}"] = self.sent[t]
            out[f"unobserved.{_NAMES[t]}"] = self.unobserved[t]
        for t in CONFLATED:
            out[f"conflated.{_NAMES[t]}"] = self.conflated[t]
        out["dropped.executions"] = self.dropped_executions
        for t, n in self.unsent.items():
            out[f"unsent.{_NAMES[t]}"] = n
        out["queue.depth"] = len(self._queue)
        out["queue.max"] = self.queue_max
        pending = self.pending()
        for t in CONFLATED:
            out[f"pending.{_NAMES[t]}"] = pending[t]
        out["observers"] = self.subscriptions
        out.update(self._monitor.counters() if self._monitor is not None else self._handshakes)
        return out

    def close(self, flush_s: float = DEFAULT_FLUSH_S) -> dict[str, int]:
        """A last heartbeat (state "stopping"), then the backlog goes out for as long as the
        observers take some of it at least every flush_s seconds (an observer that took nothing
        for flush_s already is not waited for); what is left is counted as unsent.<topic>. When
        nothing is left, the socket lingers up to flush_s more for the frames still in its pipes.
        Returns counters()."""
        if self.sock.closed:
            return self.counters()
        self.closed = True
        self._heartbeat()
        deadline = self._sent_at + flush_s
        left = sum(self.pending().values())
        while not self._drain() and time.monotonic() < deadline:
            now_left = sum(self.pending().values())
            if now_left < left:
                left, deadline = now_left, time.monotonic() + flush_s
            time.sleep(0.002)  # an XPUB polls writable even when an observer is full
        self.unsent = {t: n for t, n in self.pending().items() if n}
        self._queue.clear()
        self._latest.clear()
        if self._monitor is not None:
            self._handshakes = self._monitor.counters()
            self._monitor.stop()
            self._monitor = None
        # Observers that kept up get the frames still in the pipes (held at most flush_s more);
        # a stalled one gets nothing more: the end is not held for it.
        self.sock.close(linger=0 if self.unsent else int(flush_s * 1000))
        if self._pointer is not None:
            try:
                if self._pointer.read_text().strip() == self.endpoint:
                    self._pointer.unlink()
            except OSError:
                pass
        return self.counters()
