"""What the ZeroMQ bus costs (issue 11, "Measured"), against raw pyzmq in the same run:

  hop          One bus hop of an order message, engine (DEALER) -> venue (ROUTER) and back, as
               ping-pong; one-way latency = RTT/2. bot4's path is Codec.encode + send + recv +
               Codec.decode at both ends (the venue decodes the order and re-encodes its answer);
               the floor is raw pyzmq with the same sockets (the same ROUTER and echo thread: the
               echo tells the two dealers apart by identity) and the same payload bytes, no codec.
               inproc (the echo is a thread) and ipc (another process), with both ends pinned to
               one core or to one core each (PLACEMENTS). Rounds of HOP_N round trips alternate
               between the two paths so load hits both alike. The message is an OrderEvent (the
               largest order message: 64-bit ids, ts, trace), 54 B as encoded (array-like
               MessagePack; the issue's "120 B" is a record's size, not this frame's).
               Target: bot4 <= 1.2x the raw floor, recorded per percentile with the measured
               ratio. Gate: p50 ratio <= HOP_GATE (1.6). Measured p50 ratios on the 2-core VM
               (4 runs, load average 3-8 from other work): inproc 1.13-1.17x (one core,
               ~5.3 vs ~4.7 us), 1.03-1.15x (two cores, ~17-27 vs ~17-23 us); ipc 0.93-0.96x
               (one core, ~18 vs ~19 us), 0.97-1.04x (two cores, ~29-33 vs ~30-31 us). p99 and p99.9 are
               recorded, not gated: on a loaded 2-core machine they are preemptions (ms), and one
               run's inproc p99 ratio was 37x while its p99.9 ratio was 0.98x.
  throughput   Market data over ipc: the reference recording's book deltas as BookBatch frames
               (raw record bytes, Feed batches of TP_BATCH = 1,024 events) from a feed process
               into the engine service path in this process (socket_frames, Codec.decode, unpack,
               push into the core's streaming engine with the top_of_book strategy), sustained
               events/s from the first frame received to the end of the run (EndOfStream and the
               engine's finish included); the floor receives the same frames and does nothing
               else; the in-memory path runs the same service over the same frames already in
               memory (no socket), i.e. the core's work and the codec. Rounds alternate. Target
               >= 1 M book events/s (recorded). Measured 1.3-4.3 M events/s depending on the
               machine and its load, 4.75-8.4x the recv floor's time (8.4x on the CI machine,
               whose recv is fast for its compute: a floor ratio measures the machine, not the
               bus). The gate is what the bus adds: engine path <= TP_BUS_GATE (1.25x) the
               in-memory path plus the recv floor (receiving and working pipeline across the
               two processes, so the sum is an upper bound the path should stay under).
  feed->order  Feed process -> engine process -> venue (this process) over ipc, the feed pacing
               LAT_BATCH-event batches LAT_GAP_S apart (no queueing), the market_maker strategy
               deciding on the newest batch (no venue lookahead). Each decision and order message
               the engine publishes goes to the venue with (feed send, engine receive, engine
               emit) times (time.time_ns, one host clock), so feed->order splits into bus in,
               engine (decode, unpack, core over the whole batch, encode of every output) and bus
               out. The engine's per-batch time, its push into the core and the core's own
               per-decision stages (tick_to_decision, ...) come as PerfSample batches through
               bot4.services.perf (its collector also writes build/perf/bus_paper.json). Recorded,
               not gated on time; the test checks that every message the engine sent arrived and
               decoded.

Figures -> build/perf/bus.json. Run: python -m pytest bench/test_bench_bus.py -q -p no:cacheprovider -s
(25-35 s on the 2-core VM).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq

from bot4 import contracts as c
from bot4.events import ORDER_EVENT, TRADE_EVENT
from bot4.services.engine import EngineService, socket_frames
from bot4.services.feed import Feed
from bot4.services.perf import PerfCollector, run_perf
from bus_peers import BOT4_PEER, END, ENGINE_STAMPS, RAW_PEER, STAMP, echo, echo_process, engine_process, feed_process
from conftest import PERF_DIR, written_manifest

HOP_ROUNDS, HOP_N, HOP_WARMUP = 10, 1_000, 300
HOP_TARGET = 1.2
HOP_GATE = 1.6
#: Where the two ends run: both on one core, or one on each (pinned; unpinned, the scheduler's
#: choice between the two made single runs bimodal, ~19 vs ~35-48 us raw over ipc).
PLACEMENTS = ("one_core", "two_cores")
TP_BATCH, TP_ROUNDS = 1024, 5
TP_TARGET = 1e6
TP_BUS_GATE = 1.25
LAT_BATCH, LAT_GAP_S = 128, 0.0005

SPAWN = mp.get_context("spawn")


@pytest.fixture(scope="module")
def manifest():
    with written_manifest("bus") as m:
        yield m


def _order() -> c.OrderEvent:
    return c.OrderEvent(ts=1_723_161_255_319_702_566, id=2**63 + 12_345, instrument=1, side=1, price=61_023_456,
                        qty=1_234, filled=0, type=1, status=1, kind=1, role=0, trace=c.new_trace_id())


def _rtts_bot4(sock: zmq.Socket, codec: c.Codec, msg: c.Message, n: int) -> np.ndarray:
    out = np.empty(n, np.int64)
    enc, dec, send, recv, clock = codec.encode, codec.decode, sock.send, sock.recv, time.perf_counter_ns
    got = None
    for i in range(n):
        t0 = clock()
        send(enc(msg))
        got = dec(recv())
        out[i] = clock() - t0
    assert got == msg
    return out


def _rtts_raw(sock: zmq.Socket, payload: bytes, n: int) -> np.ndarray:
    out = np.empty(n, np.int64)
    send, recv, clock = sock.send, sock.recv, time.perf_counter_ns
    got = b""
    for i in range(n):
        t0 = clock()
        send(payload)
        got = recv()
        out[i] = clock() - t0
    assert got == payload
    return out


def _dealer(ctx: zmq.Context, endpoint: str, identity: bytes) -> zmq.Socket:
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.IDENTITY, identity)
    s.setsockopt(zmq.LINGER, 1_000)
    s.connect(endpoint)
    return s


@contextmanager
def _pinned(cpu: int) -> Iterator[None]:
    """The calling thread on core `cpu` for the block (its affinity restored afterwards)."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


@pytest.mark.parametrize("placement", PLACEMENTS)
@pytest.mark.parametrize("transport", ["inproc", "ipc"])
def test_one_bus_hop_against_raw_pyzmq(manifest, transport, placement, tmp_path):
    cpus = sorted(os.sched_getaffinity(0))
    if placement == "two_cores" and len(cpus) < 2:
        pytest.skip("one core available")
    here, there = cpus[0], cpus[0] if placement == "one_core" else cpus[1]
    ctx = zmq.Context()
    ctx.set(zmq.THREAD_AFFINITY_CPU_ADD, here)  # its I/O thread (ipc) with this end
    tag = uuid.uuid4().hex[:8]
    if transport == "inproc":
        ep = f"inproc://hop-{tag}"
        ready = threading.Event()
        peer: Any = threading.Thread(target=echo, args=(ctx, ep, ready, there), daemon=True)
        peer.start()
        assert ready.wait(10)
    else:
        ep = f"ipc://{tmp_path}/hop"
        peer = SPAWN.Process(target=echo_process, args=(ep, there), daemon=True)
        peer.start()
    with _pinned(here):
        _hop_rounds(manifest, ctx, ep, peer, f"{transport}_{placement}")


def _hop_rounds(manifest, ctx: zmq.Context, ep: str, peer: Any, name: str) -> None:
    codec = c.Codec(c.EXECUTIONS)
    msg = _order()
    payload = codec.encode(msg)
    bot4_sock, raw_sock = _dealer(ctx, ep, BOT4_PEER), _dealer(ctx, ep, RAW_PEER)
    try:
        _rtts_bot4(bot4_sock, codec, msg, HOP_WARMUP)  # (ipc: also waits for the echo process)
        _rtts_raw(raw_sock, payload, HOP_WARMUP)
        ours: list[np.ndarray] = []
        floor: list[np.ndarray] = []
        for r in range(HOP_ROUNDS):
            order = (True, False) if r % 2 == 0 else (False, True)
            for bot4_path in order:
                if bot4_path:
                    ours.append(_rtts_bot4(bot4_sock, codec, msg, HOP_N))
                else:
                    floor.append(_rtts_raw(raw_sock, payload, HOP_N))
        for s in (bot4_sock, raw_sock):
            s.send(END)
            assert s.poll(10_000) and s.recv() == END
    finally:
        bot4_sock.close()
        raw_sock.close()
        peer.join(10)
        ctx.term()
    assert codec.rejected == dict.fromkeys(c.REJECT_REASONS, 0)
    one_way = {"bot4": np.concatenate(ours) / 2, "raw": np.concatenate(floor) / 2}
    s = {k: manifest.add_latency(f"hop_{name}_{k}", v) for k, v in one_way.items()}
    ratios = {q: s["bot4"][q] / s["raw"][q] for q in ("p50", "p99", "p999")}
    for q, ratio in ratios.items():
        manifest.add_target(f"hop_{name}_{q}_ratio", ratio, HOP_TARGET, "lower")
    manifest.notes[f"hop_{name}"] = {"frame_bytes": len(payload), "sockets": "DEALER->ROUTER", "rounds": HOP_ROUNDS,
                                          "round_trips_per_round": HOP_N, "one_way": "RTT/2 (perf_counter_ns)",
                                          "ratios": ratios}
    print(f"\nhop {name} ({len(payload)} B): " + "; ".join(
        f"{q} bot4 {s['bot4'][q] / 1e3:.2f} us raw {s['raw'][q] / 1e3:.2f} us = {ratios[q]:.2f}x" for q in ratios))
    assert ratios["p50"] <= HOP_GATE, ratios


# -- market data throughput ---------------------------------------------------------------------
def _book_frames(data, batch: int) -> tuple[list[bytes], bytes, int]:
    feed = Feed([(data.book, np.zeros(0, TRADE_EVENT), np.zeros(0, ORDER_EVENT))], batch_events=batch)
    frames = [bytes(f.frame) for f in feed.frames()]
    return frames, bytes(feed.end_frame().frame), feed.records


def _sub(ctx: zmq.Context, endpoint: str) -> zmq.Socket:
    s = ctx.socket(zmq.SUB)
    s.setsockopt(zmq.LINGER, 2_000)
    s.setsockopt(zmq.RCVHWM, 1_000)
    s.setsockopt(zmq.SUBSCRIBE, c.MARKET)
    s.connect(endpoint)
    return s


def _recv_floor(ctx: zmq.Context, endpoint: str, n_frames: int) -> float:
    sub = _sub(ctx, endpoint)
    try:
        sub.recv_multipart(copy=False)
        t0 = time.perf_counter()
        for _ in range(n_frames):  # the rest of the batches and the EndOfStream
            sub.recv_multipart(copy=False)
        seconds = time.perf_counter() - t0
        sub.setsockopt(zmq.UNSUBSCRIBE, c.MARKET)
        return seconds
    finally:
        sub.close()


def _engine_in_memory(data, frames: list[bytes], end: bytes, n_events: int) -> float:
    service = EngineService(data.specs, strategy="top_of_book")
    pairs = [(c.MARKET, memoryview(f)) for f in frames] + [(c.MARKET, memoryview(end))]
    t0 = time.perf_counter()
    summary = service.run_frames(iter(pairs), lambda topic, frame: None)
    seconds = time.perf_counter() - t0
    k = summary["counters"]
    assert k["records_in"] == n_events and k["end_of_stream"] == 1 and service.result.events == n_events
    return seconds


def _engine_path(ctx: zmq.Context, endpoint: str, data, n_events: int) -> float:
    service = EngineService(data.specs, strategy="top_of_book")
    sub = _sub(ctx, endpoint)
    t0 = [0.0]

    def frames():
        it = socket_frames(sub, service.counters)
        first = next(it)
        t0[0] = time.perf_counter()
        yield first
        yield from it
    emitted = [0]

    def emit(topic: bytes, frame: bytes) -> None:
        emitted[0] += 1
    try:
        summary = service.run_frames(frames(), emit, on_end=lambda: sub.setsockopt(zmq.UNSUBSCRIBE, c.MARKET))
        seconds = time.perf_counter() - t0[0]
    finally:
        sub.close()
    k = summary["counters"]
    assert k["records_in"] == n_events and k["missed_batches"] == 0 and k["end_of_stream"] == 1
    assert sum(v for key, v in k.items() if key.startswith("md.rejected.")) == 0
    assert service.result.events == n_events and emitted[0] >= 1  # (the final heartbeat at least)
    return seconds


def test_market_data_throughput_ipc(manifest, reference_data, tmp_path):
    frames, end, n_events = _book_frames(reference_data, TP_BATCH)
    endpoint = f"ipc://{tmp_path}/md"
    feed = SPAWN.Process(target=feed_process, args=(endpoint, frames, end, 2 * TP_ROUNDS, 0.0, False), daemon=True)
    feed.start()
    ctx = zmq.Context()
    ours, floor, in_memory = [], [], []
    try:
        for r in range(TP_ROUNDS):
            order = (True, False) if r % 2 == 0 else (False, True)
            for bot4_path in order:
                if bot4_path:
                    ours.append(_engine_path(ctx, endpoint, reference_data, n_events))
                else:
                    floor.append(_recv_floor(ctx, endpoint, len(frames)))
            in_memory.append(_engine_in_memory(reference_data, frames, end, n_events))
        feed.join(60)
        assert feed.exitcode == 0
    finally:
        if feed.is_alive():
            feed.terminate()
        ctx.term()
    seconds, floor_s, memory_s = (float(np.median(x)) for x in (ours, floor, in_memory))
    rate = manifest.add_throughput("md_ipc_engine", n_events, seconds, "book events/s")
    floor_rate = manifest.add_throughput("md_ipc_recv_floor", n_events, floor_s, "book events/s")
    memory_rate = manifest.add_throughput("md_in_memory_engine", n_events, memory_s, "book events/s")
    manifest.add_target("md_ipc_book_events_per_s", rate, TP_TARGET, "higher")
    bus_ratio = seconds / (memory_s + floor_s)
    manifest.notes["md_ipc"] = {"batch_events": TP_BATCH, "frames": len(frames), "events": n_events,
                                "rounds": TP_ROUNDS, "strategy": "top_of_book", "seconds": ours,
                                "floor_seconds": floor, "in_memory_seconds": in_memory,
                                "floor_ratio": seconds / floor_s, "bus_ratio": bus_ratio, "bus_gate": TP_BUS_GATE}
    print(f"\nmarket data over ipc, {TP_BATCH}-event batches: engine path {rate / 1e6:.2f} M book events/s, "
          f"in memory {memory_rate / 1e6:.2f} M/s, recv floor {floor_rate / 1e6:.2f} M/s "
          f"({seconds / floor_s:.2f}x the floor's time, {bus_ratio:.2f}x in-memory + floor)")
    assert bus_ratio <= TP_BUS_GATE, (rate, memory_rate, floor_rate)


# -- feed -> decision -> order at the venue ------------------------------------------------------
def test_feed_to_order_ipc(manifest, reference_data, tmp_path):
    feed_obj = Feed([reference_data], batch_events=LAT_BATCH)
    frames = [bytes(f.frame) for f in feed_obj.frames()]
    end = bytes(feed_obj.end_frame().frame)
    base = Path(tempfile.mkdtemp(prefix="bot4-bus-", dir=tmp_path))
    md, venue_ep, tel = (f"ipc://{base}/{n}" for n in ("md", "venue", "tel"))
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    router.bind(venue_ep)
    collector = PerfCollector("bus_paper")
    ready = threading.Event()
    perf_thread = threading.Thread(target=run_perf, args=(ctx, [tel], PERF_DIR / "bus_paper.json"),
                                   kwargs=dict(collector=collector, bind=True, ready=ready), daemon=True)
    perf_thread.start()
    assert ready.wait(10)
    procs = [SPAWN.Process(target=engine_process, args=(md, venue_ep, tel, dict(reference_data.specs), "market_maker"),
                           daemon=True),
             SPAWN.Process(target=feed_process, args=(md, frames, end, 1, LAT_GAP_S, True), daemon=True)]
    for p in procs:
        p.start()
    codecs = {t: c.Codec(t) for t in (c.DECISIONS, c.EXECUTIONS)}
    rows: dict[str, list[tuple[int, int, int, int]]] = {"decision": [], "order": [], "new": [], "fill": []}
    try:
        while True:
            if not router.poll(60_000):
                raise RuntimeError("feed->order: no message from the engine for 60 s")
            parts = router.recv_multipart()
            t_venue = time.time_ns()
            if parts[1] == END:
                forwarded = STAMP.unpack(parts[2])[0]
                break
            _, topic, frame, stamps = parts
            msg = codecs[topic].decode(frame)
            assert not isinstance(msg, c.Rejection), msg
            sent, got, emitted = ENGINE_STAMPS.unpack(stamps)
            row = (sent, got, emitted, t_venue)
            if isinstance(msg, c.Decision):
                rows["decision"].append(row)
            elif isinstance(msg, c.OrderEvent):
                rows["order"].append(row)
                if msg.kind == 0:  # "new": an order placed
                    rows["new"].append(row)
            elif isinstance(msg, c.Fill):
                rows["fill"].append(row)
        perf_thread.join(60)
        for p in procs:
            p.join(60)
        assert [p.exitcode for p in procs] == [0, 0]
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
        router.close()
        ctx.term()
    assert not perf_thread.is_alive()
    hb = collector.heartbeats["engine"]
    assert hb["state"] == "stopping" and hb["counters"]["missed_batches"] == 0
    received = len(rows["decision"]) + len(rows["order"]) + len(rows["fill"])
    assert received == forwarded and forwarded > 0  # every message the engine sent reached the venue
    summary: dict[str, dict] = {}
    for kind in ("new", "order", "decision"):
        a = np.asarray(rows[kind], np.int64)
        split = {"total": a[:, 3] - a[:, 0], "bus_in": a[:, 1] - a[:, 0], "engine": a[:, 2] - a[:, 1],
                 "bus_out": a[:, 3] - a[:, 2]}
        for part, x in split.items():
            summary[f"{kind}.{part}"] = manifest.add_latency(f"feed_to_{kind}_{part}", x)
    orders = np.asarray(rows["order"], np.int64)
    collector.add("bus:engine->venue", orders[:, 3] - orders[:, 2])
    collector.write(PERF_DIR / "bus_paper.json")
    collected = collector.summary()
    core = collected["stages"]
    # engine:batch, engine:core_push, engine:tick_to_decision and the other core stages, the two hops
    for key, v in {**core, **collected["bus"]}.items():
        manifest.stages[key.replace(":", "_")] = v
    manifest.notes["feed_to_order"] = {
        "batch_events": LAT_BATCH, "gap_s": LAT_GAP_S, "strategy": "market_maker", "frames": len(frames),
        "orders": len(rows["order"]), "new_orders": len(rows["new"]), "decisions": len(rows["decision"]),
        "clock": "time.time_ns on one host; engine = decode + unpack + core + encode of the batch"}
    print("\nfeed -> order over ipc (us): " + "; ".join(
        f"{k} p50 {v['p50'] / 1e3:.1f} p99 {v['p99'] / 1e3:.1f} p99.9 {v['p999'] / 1e3:.1f} (n={v['count']})"
        for k, v in summary.items() if k.startswith(("new.", "order."))))
    print("engine (us): " + "; ".join(
        f"{k} p50 {core[k]['p50'] / 1e3:.1f} p99 {core[k]['p99'] / 1e3:.1f} p99.9 {core[k]['p999'] / 1e3:.1f} "
        f"(n={core[k]['count']})" for k in ("engine:batch", "engine:core_push", "engine:tick_to_decision") if k in core))
    assert len(rows["new"]) > 100 and len(rows["decision"]) >= len(rows["new"])
