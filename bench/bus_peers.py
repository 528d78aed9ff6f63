"""The far ends of bench/test_bench_bus.py's measurements, each run in its own process (spawn) or
thread: an order echo (the venue's side of one bus hop), a market data feed that replays
pre-encoded frames, and an engine that forwards what the core decides to a venue socket with
timestamps. Kept out of the test module so a spawned child does not import pytest's conftest."""

from __future__ import annotations

import os
import struct
import time
from typing import Any

import zmq

from bot4 import contracts as c
from bot4.services.engine import EngineService
from bot4.services.feed import await_unsubscribe, bind_publisher, wait_subscribers
from bot4.services.perf import LatencyBuffer

STAMP = struct.Struct("<q")          # feed send time (time.time_ns), a third frame after (topic, frame)
ENGINE_STAMPS = struct.Struct("<qqq")  # feed send, engine receive, engine emit (time.time_ns)
END = b"end"


# -- one hop: the venue's end of a ping-pong -----------------------------------------------------
BOT4_PEER, RAW_PEER = b"bot4", b"raw"


def echo(ctx: zmq.Context, endpoint: str, ready: Any = None, cpu: int | None = None) -> None:
    """ROUTER bound at `endpoint` sending every message back to its sender: to the peer named
    BOT4_PEER decoded and re-encoded by an EXECUTIONS Codec (as the venue reads an order message
    and answers one), to any other as the same bytes; one socket and thread serve both, so the
    codec is the only difference. Ends once both peers sent END. cpu: pin this thread there."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})  # (pid 0: the calling thread only)
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 1_000)
    sock.bind(endpoint)
    codec = c.Codec(c.EXECUTIONS)
    if ready is not None:
        ready.set()
    ended = 0
    try:
        while ended < 2:
            ident, frame = sock.recv_multipart()
            if frame == END:
                sock.send_multipart((ident, END))
                ended += 1
            elif ident == BOT4_PEER:
                msg = codec.decode(frame)
                if isinstance(msg, c.Rejection):
                    raise RuntimeError(f"echo: rejected frame {msg}")
                sock.send_multipart((ident, codec.encode(msg)))
            else:
                sock.send_multipart((ident, frame))
    finally:
        sock.close()


def echo_process(endpoint: str, cpu: int | None = None) -> None:
    """echo() in a process of its own (its ZeroMQ I/O thread pinned with it)."""
    ctx = zmq.Context()
    if cpu is not None:
        ctx.set(zmq.THREAD_AFFINITY_CPU_ADD, cpu)
    echo(ctx, endpoint, None, cpu)
    ctx.term()


# -- market data: a feed replaying pre-encoded frames --------------------------------------------
def feed_process(endpoint: str, frames: list[bytes], end: bytes, rounds: int, gap_s: float, stamp: bool) -> None:
    """Bind an XPUB (never dropping) at `endpoint`; `rounds` times: wait for a subscriber, send
    every frame on MARKET (with a send-time stamp frame when `stamp`, `gap_s` apart), then `end`
    (the EndOfStream), and wait for the subscriber to acknowledge it by unsubscribing."""
    ctx = zmq.Context()
    sock = bind_publisher(ctx, endpoint)
    try:
        for _ in range(rounds):
            wait_subscribers(sock, 1, timeout_s=60)
            for f in frames:
                if stamp:
                    sock.send_multipart((c.MARKET, f, STAMP.pack(time.time_ns())), copy=False)
                    if gap_s:
                        time.sleep(gap_s)
                else:
                    sock.send_multipart((c.MARKET, f), copy=False)
            sock.send_multipart((c.MARKET, end, STAMP.pack(time.time_ns())) if stamp else (c.MARKET, end))
            if not await_unsubscribe(sock, c.MARKET, 60):
                raise RuntimeError("feed: the subscriber never acknowledged the end of stream")
    finally:
        sock.close()
        ctx.term()


# -- feed -> decision -> order: the engine between a feed and a venue ----------------------------
class _TimedEngine(EngineService):
    """EngineService whose core per-stage latencies (the records' latency_ns) and the time of each
    push into the core (the control hook runs just before it, the records hook just after: push
    + take_records) go out as PerfSample batches; the service publishes none of them today."""

    def __init__(self, *args: Any, telemetry: Any = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._tel = telemetry
        self._buffers: dict[str, LatencyBuffer] = {"core_push": LatencyBuffer("engine", "core_push")}
        self._t_push = 0

    def _apply_commands(self, engine: Any) -> None:
        super()._apply_commands(engine)
        self._t_push = time.perf_counter_ns()

    def _publish(self, rec: dict) -> None:
        if self._t_push:
            out = self._buffers["core_push"].add(time.perf_counter_ns() - self._t_push)
            if out is not None:
                self._tel(out)
            self._t_push = 0
        for stage, arr in rec["latency_ns"].items():
            if arr.size:
                buf = self._buffers.setdefault(stage, LatencyBuffer("engine", stage))
                for v in arr.tolist():
                    out = buf.add(v)
                    if out is not None:
                        self._tel(out)
        super()._publish(rec)

    def flush_latencies(self) -> None:
        for buf in self._buffers.values():
            out = buf.flush()
            if out is not None:
                self._tel(out)


def engine_process(md: str, venue: str, telemetry: str, specs: dict, strategy: str) -> None:
    """The engine service over ipc: SUB on the feed at `md` (frames carry the feed's send stamp),
    the core with `strategy` and no venue lookahead (it decides on the newest batch), every
    decision and execution forwarded to the venue (DEALER to `venue`) with (feed send, engine
    receive, engine emit) stamps; the core's per-stage latencies and the feed->engine hop go to
    the perf collector at `telemetry` as PerfSample, then the engine's final heartbeat."""
    ctx = zmq.Context()
    tel = bind_publisher(ctx, telemetry, connect=True)
    dealer = ctx.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 5_000)
    dealer.connect(venue)
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 2_000)
    sub.setsockopt(zmq.SUBSCRIBE, c.MARKET)
    tel_codec = c.Codec(c.TELEMETRY)
    hop = LatencyBuffer("engine", "bus:feed->engine")
    batch = LatencyBuffer("engine", "batch")  # receive -> done with a frame (decode, push, publish)
    now = [0, 0]  # the frame being processed: feed send stamp, engine receive time
    forwarded = [0]

    def send_tel(msg: c.Message) -> None:
        tel.send_multipart((c.TELEMETRY, tel_codec.encode(msg)))

    service = _TimedEngine(specs, strategy=strategy, venue_lookahead_ns=0, telemetry=send_tel)

    def frames():
        while True:
            if now[1]:
                out = batch.add(time.time_ns() - now[1])
                if out is not None:
                    send_tel(out)
            parts = sub.recv_multipart(copy=False)
            t = time.time_ns()
            sent = STAMP.unpack(parts[2].bytes)[0]
            now[0], now[1] = sent, t
            out = hop.add(t - sent)
            if out is not None:
                send_tel(out)
            yield parts[0].bytes, parts[1].buffer

    def emit(topic: bytes, frame: bytes) -> None:
        if topic == c.TELEMETRY:  # the final heartbeat: the samples go first
            service.flush_latencies()
            for buf in (hop, batch):
                last = buf.flush()
                if last is not None:
                    send_tel(last)
            tel.send_multipart((topic, frame))
        elif topic in (c.DECISIONS, c.EXECUTIONS):
            dealer.send_multipart((topic, frame, ENGINE_STAMPS.pack(now[0], now[1], time.time_ns())), copy=False)
            forwarded[0] += 1

    try:
        wait_subscribers(tel, 1, timeout_s=60)
        sub.connect(md)
        service.run_frames(frames(), emit, on_end=lambda: sub.setsockopt(zmq.UNSUBSCRIBE, c.MARKET))
        dealer.send_multipart((END, STAMP.pack(forwarded[0])))
        if not await_unsubscribe(tel, c.TELEMETRY, 60):
            raise RuntimeError("engine: the perf collector never acknowledged the end")
    finally:
        sub.close()
        dealer.close()
        tel.close()
        ctx.term()

