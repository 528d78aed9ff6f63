"""bot4.services.observer: observers never stall the session. A subscriber that never reads
leaves the session's orders, fills and P&L equal to the backtest's; what it missed is counted
exactly (published = sent + unobserved + conflated + dropped + pending or unsent, per topic); a
subscriber that reads
gets every execution; the publisher alone, scripted, keeps the latest state per key and the
newest executions."""

from __future__ import annotations

import threading

import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paper_helpers import CONFIG, MODEL_DIR, assert_same_as_backtest

from bot4 import contracts as c
from bot4.backtest import run
from bot4.services.observer import (
    ConflatingPublisher,
    announced_observer,
    check_observe_endpoint,
    observer_key,
    observer_pointer_file,
)
from bot4.services.session import run_paper
from bot4.sim import generate

SEED, EVENTS = 7, 30_000
NAMES = {"decisions": c.DECISIONS, "executions": c.EXECUTIONS, "positions": c.POSITIONS, "telemetry": c.TELEMETRY}


@pytest.fixture(scope="module")
def whole():
    return run(generate(seed=SEED, n_events=EVENTS), MODEL_DIR, config=CONFIG, progress=False)


def _exact(k: dict[str, int]) -> None:
    """Every frame offered is accounted for, per topic."""
    for n in NAMES:
        lost = k.get(f"conflated.{n}", 0) + (k["dropped.executions"] if n == "executions" else 0)
        waiting = k["queue.depth"] if n == "executions" else k[f"pending.{n}"]
        assert k[f"published.{n}"] == k[f"sent.{n}"] + k[f"unobserved.{n}"] + lost + waiting + k.get(f"unsent.{n}", 0), n


@pytest.mark.parametrize("processes", [False, True], ids=["threads-inproc", "processes-ipc"])
def test_a_stalled_observer_changes_nothing_and_its_losses_are_counted(whole, processes, tmp_path):
    ctx = zmq.Context()
    stalled = ctx.socket(zmq.SUB)
    stalled.setsockopt(zmq.RCVHWM, 10)
    stalled.setsockopt(zmq.LINGER, 0)
    stalled.subscribe(b"")
    endpoint = f"ipc://{tmp_path}/observe"
    stalled.connect(endpoint)  # before the bind: ZeroMQ connects once the session binds
    try:
        paper = run_paper(None, seed=SEED, n_events=EVENTS, part_events=9_000, model=MODEL_DIR, config=CONFIG,
                          processes=processes, observe=endpoint, observers=1)
    finally:
        stalled.close()
        ctx.term()
    assert_same_as_backtest(paper, whole)
    assert paper.counters["engine"]["end_acknowledged"] == 1 and paper.observe == endpoint
    k = paper.counters["observer"]
    _exact(k)
    assert not any(v for n, v in k.items() if n.startswith("unobserved."))  # it subscribed before the start
    # The observer was offered every engine output the collector received.
    assert k["published.decisions"] == paper.decisions
    assert k["published.executions"] == len(paper.orders) + len(paper.fills)
    assert k["published.positions"] == whole.equity.size
    assert k["conflated.positions"] > 0 and k["conflated.decisions"] > 0
    # It never read: almost everything was conflated or left unsent, and the executions waited in
    # the queue (none dropped: fewer than its 10,000).
    assert k["sent.decisions"] < paper.decisions // 10
    assert k["dropped.executions"] == 0 and k["queue.max"] > 0
    assert k["unsent.executions"] + k["sent.executions"] == k["published.executions"]


def test_a_fast_observer_receives_every_execution(whole, tmp_path):
    endpoint = f"ipc://{tmp_path}/observe"
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.subscribe(b"")
    sub.connect(endpoint)
    got: list[tuple[bytes, bytes]] = []
    codec = c.Codec(c.TELEMETRY)

    def read() -> None:
        while sub.poll(60_000):
            topic, frame = sub.recv_multipart()
            got.append((topic, frame))
            if topic == c.TELEMETRY:
                hb = codec.decode(frame)
                if isinstance(hb, c.Heartbeat) and hb.service == "observer" and hb.state == "stopping":
                    return
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        paper = run_paper(None, seed=SEED, n_events=EVENTS, part_events=9_000, model=MODEL_DIR, config=CONFIG,
                          observe=endpoint, observers=1)
        reader.join(60)
    finally:
        sub.close()
        ctx.term()
    assert not reader.is_alive()
    assert_same_as_backtest(paper, whole)
    k = paper.counters["observer"]
    _exact(k)
    assert k["dropped.executions"] == 0 and not any(n.startswith("unsent.") for n in k)
    exe = c.Codec(c.EXECUTIONS)
    received = [exe.decode(f) for t, f in got if t == c.EXECUTIONS]
    assert [m for m in received if isinstance(m, c.OrderEvent)] == paper.orders
    assert [m for m in received if isinstance(m, c.Fill)] == paper.fills
    # What was sent is what arrived, per topic (the last observer heartbeat is counted in both).
    for n, t in NAMES.items():
        assert sum(1 for topic, _ in got if topic == t) == k[f"sent.{n}"], n
    # The latest position is never conflated away: the last one received is the session's P&L.
    pos = c.Codec(c.POSITIONS)
    last = [pos.decode(f) for t, f in got if t == c.POSITIONS][-1]
    assert last.total_equity == paper.pnl


def _position(i: int, instrument: int) -> c.Position:
    return c.Position(ts=i, instrument=instrument, position=i, realised=float(i), unrealised=0.0, fees=0.0,
                      equity=float(i), total_equity=float(i))


def _fill(i: int) -> c.Fill:
    return c.Fill(ts=i, id=i, exec_id=i + 1, instrument=i % 3, side=i % 2, price=100 + i, qty=1, fee=0.01,
                  maker=True)


def _decision(i: int, instrument: int) -> c.Decision:
    return c.Decision(ts=i, instrument=instrument, p=0.5, target=1, action=1, position=i)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(script=st.lists(st.tuples(st.sampled_from(["pos", "dec", "exe"]), st.integers(0, 3)), min_size=1,
                       max_size=1500),
       hwm=st.integers(1, 20), queue=st.integers(1, 60))
def test_scripted_publisher_keeps_the_latest_state_and_the_newest_executions(script, hwm, queue):
    """The observer reads nothing while the script is published, then everything: it got exactly
    what was counted as sent; per key the last state; the executions in order, the newest kept."""
    codecs = {t: c.Codec(t) for t in (c.POSITIONS, c.DECISIONS, c.EXECUTIONS)}
    ctx = zmq.Context()
    pub = ConflatingPublisher(ctx, "inproc://scripted", hwm=hwm, queue=queue, heartbeat_s=1e9)
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.RCVHWM, 1)
    sub.setsockopt(zmq.LINGER, 0)
    sub.subscribe(b"")
    sub.connect("inproc://scripted")
    try:
        pub.wait_observers(1, 10)
        last: dict[tuple, int] = {}
        fills: list[int] = []
        for i, (kind, inst) in enumerate(script):
            msg, topic = {"pos": (_position(i, inst), c.POSITIONS), "dec": (_decision(i, inst), c.DECISIONS),
                          "exe": (_fill(i), c.EXECUTIONS)}[kind]
            if kind == "exe":
                fills.append(i)
            else:
                last[observer_key(topic, msg)] = i
            pub.publish(topic, codecs[topic].encode(msg), observer_key(topic, msg))
        k = pub.counters()
        _exact(k)
        assert k["queue.depth"] == min(queue, k["queue.max"]) and k["queue.max"] <= queue
        got: list[tuple[bytes, object]] = []
        while True:
            while sub.poll(0):
                topic, frame = sub.recv_multipart()
                got.append((topic, codecs[topic].decode(frame)))
            if pub.flush() and not sub.poll(20):
                break
        k = pub.counters()
        _exact(k)
        assert k["queue.depth"] == 0 and not any(v for n, v in k.items() if n.startswith("pending."))
        for n, t in NAMES.items():
            assert sum(1 for topic, _ in got if topic == t) == k[f"sent.{n}"], n
        received = [m.id for t, m in got if t == c.EXECUTIONS]
        assert len(received) == len(fills) - k["dropped.executions"]
        assert received == sorted(received) and set(received) <= set(fills)  # in order, never twice
        if k["dropped.executions"]:
            assert received[-queue:] == fills[-queue:]  # the oldest went, the newest are there
        seen: dict[tuple, int] = {}
        for t, m in got:
            if t != c.EXECUTIONS:
                seen[observer_key(t, m)] = m.ts
        assert seen == last  # every key's latest state arrived
    finally:
        pub.close(flush_s=0)
        sub.close()
        ctx.term()


def test_conflation_happens_and_heartbeats_carry_the_counters():
    ctx = zmq.Context()
    ticks = iter(range(10**9))
    pub = ConflatingPublisher(ctx, "inproc://hb", hwm=5, queue=3, heartbeat_s=100, clock=lambda: next(ticks))
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.RCVHWM, 1)
    sub.setsockopt(zmq.LINGER, 0)
    sub.subscribe(b"")
    sub.connect("inproc://hb")
    try:
        pub.wait_observers(1, 10)
        enc = c.Codec(c.POSITIONS)
        for i in range(500):
            m = _position(i, 1)
            pub.publish(c.POSITIONS, enc.encode(m), observer_key(c.POSITIONS, m))
        for i in range(20):
            pub.publish(c.EXECUTIONS, c.Codec(c.EXECUTIONS).encode(_fill(i)), None)
        k = pub.counters()
        assert k["conflated.positions"] > 400 and k["dropped.executions"] == 20 - 3 and k["queue.depth"] == 3
        assert k["observers"] == 1
        hb_counts = pub.close(flush_s=0)
        assert hb_counts["published.telemetry"] >= 1  # the closing heartbeat at least
        _exact(hb_counts)
        # Nobody subscribed: nothing is sent, everything is counted as unobserved.
        alone = ConflatingPublisher(ctx, "inproc://alone")
        for i in range(10):
            m = _position(i, 1)
            alone.publish(c.POSITIONS, enc.encode(m), observer_key(c.POSITIONS, m))
        k = alone.close(flush_s=0)
        assert k["unobserved.positions"] == 10 and k["sent.positions"] == 0 and k["unobserved.telemetry"] == 1
        _exact(k)
    finally:
        sub.close()
        ctx.term()


def test_endpoints_are_checked(tmp_path):
    check_observe_endpoint("ipc:///tmp/x")
    check_observe_endpoint("tcp://127.0.0.1:5555", curve=True)
    for bad, why in [("tcp://127.0.0.1:5555", "CURVE"), ("udp://x", "expected"), ("ipc://", "expected"),
                     ("/tmp/x", "expected")]:
        with pytest.raises(ValueError, match=why):
            check_observe_endpoint(bad)
    with pytest.raises(ValueError, match="CURVE"):
        run_paper(None, n_events=100, observe="tcp://127.0.0.1:5555")
    ctx = zmq.Context()
    try:
        with pytest.raises(ValueError, match="hwm"):
            ConflatingPublisher(ctx, "inproc://x", hwm=0)
    finally:
        ctx.term()


def test_announced_endpoint_is_written_and_taken_back(tmp_path, monkeypatch):
    from bot4.services import control

    monkeypatch.setattr(control, "pointer_file", lambda: tmp_path / "paper.endpoint")
    assert observer_pointer_file() == tmp_path / "paper.observe" and announced_observer() is None
    ctx = zmq.Context()
    pub = ConflatingPublisher(ctx, f"ipc://{tmp_path}/o", announce=True)
    assert announced_observer() == f"ipc://{tmp_path}/o"
    pub.close(flush_s=0)
    ctx.term()
    assert announced_observer() is None
