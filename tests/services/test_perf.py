"""bot4.services.perf: known latency samples over real sockets (inproc) come out as numpy's
percentiles per stage and per bus hop; bad frames and bad samples are counted rejections that
change nothing; the manifest is written on a Status request and at shutdown."""

from __future__ import annotations

import json
import threading
import time
import uuid

import numpy as np
import pytest
import zmq

from bot4 import contracts as c
from bot4.perf import PERCENTILES
from bot4.services.perf import LatencyBuffer, PerfCollector, answer, run_perf

KEYS = ("p50", "p95", "p99", "p999")


def _samples(seed: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.lognormal(9.0, 0.8, n).astype(np.int64)  # ~8 us median, long right tail


def _expected(x: np.ndarray) -> dict[str, float]:
    return dict(zip(KEYS, np.percentile(x.astype(np.float64), PERCENTILES)))


def _check(summary: dict, x: np.ndarray) -> None:
    assert summary["count"] == x.size
    assert summary["mean"] == pytest.approx(x.mean(), rel=1e-12)
    for k, v in _expected(x).items():
        assert summary[k] == v, k


def _sample(service: str, stage: str, x: np.ndarray, seq: int = 0) -> c.PerfSample:
    return c.pack(c.PerfSample, x, seq=seq, ts=time.time_ns(), service=service, stage=stage)


@pytest.fixture
def ctx():
    context = zmq.Context()
    yield context
    context.term()


def _service(ctx, collector, path, until="engine"):
    tag = uuid.uuid4().hex
    tel, req = f"inproc://tel-{tag}", f"inproc://perf-{tag}"
    pub = ctx.socket(zmq.XPUB)
    pub.setsockopt(zmq.XPUB_NODROP, 1)
    pub.setsockopt(zmq.LINGER, 2_000)
    pub.bind(tel)
    ready, stop = threading.Event(), threading.Event()
    box: dict = {}

    def main():
        try:
            box["out"] = run_perf(ctx, [tel], path, collector=collector, request_endpoint=req, until=until,
                                  stop=stop, ready=ready)
        except BaseException as exc:  # pragma: no cover - surfaced by the assertion below
            box["out"] = exc
    th = threading.Thread(target=main, daemon=True)
    th.start()
    assert ready.wait(10)
    assert pub.poll(10_000) and pub.recv() == b"\x01" + c.TELEMETRY  # the subscription arrived
    return pub, req, th, stop, box


def _request(ctx, endpoint: str, msg: c.Message) -> c.CommandReply:
    s = ctx.socket(zmq.REQ)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(endpoint)
    try:
        s.send(c.Codec(c.CONTROL).encode(msg))
        assert s.poll(10_000)
        reply = c.Codec(c.CONTROL_REPLIES).decode_strict(s.recv())
    finally:
        s.close()
    assert isinstance(reply, c.CommandReply)
    return reply


def test_quantiles_over_sockets_equal_numpy(ctx, tmp_path):
    """Samples of two engine stages and two bus hops, sent in several PerfSample batches over
    inproc, give numpy's p50/p95/p99/p99.9 exactly; the manifest written at the engine's end
    holds them and the machine it ran on."""
    path = tmp_path / "perf.json"
    pub, req, th, _, box = _service(ctx, PerfCollector("t"), path)
    truth = {"engine:tick_to_decision": _samples(1, 5_000), "engine:strategy_risk": _samples(2, 777),
             "bus:feed->engine": _samples(3, 3_001), "bus:engine->venue": _samples(4, 1)}
    enc = c.Codec(c.TELEMETRY)
    for key, x in truth.items():
        service, stage = ("venue", key) if key.startswith("bus:") else key.split(":")
        for seq, part in enumerate(np.array_split(x, 4)):
            pub.send_multipart((c.TELEMETRY, enc.encode(_sample(service, stage, np.ascontiguousarray(part), seq))))
    pub.send_multipart((c.TELEMETRY, enc.encode(c.Heartbeat(ts=1, service="feed", instance=7, seq=0,
                                                             state="running", counters={"batches": 3}))))
    pub.send_multipart((c.TELEMETRY, enc.encode(c.Heartbeat(ts=2, service="engine", instance=8, seq=0,
                                                             state="stopping", counters={"frames_in": 9}))))
    # The collector acknowledges the engine's end by dropping its subscription.
    assert pub.poll(10_000) and pub.recv() == b"\x00" + c.TELEMETRY
    th.join(10)
    pub.close()
    col = box["out"]
    assert isinstance(col, PerfCollector)
    s = col.summary()
    assert set(s["stages"]) == {"engine:tick_to_decision", "engine:strategy_risk"}
    assert set(s["bus"]) == {"bus:feed->engine", "bus:engine->venue"}
    for key, x in truth.items():
        _check({**s["stages"], **s["bus"]}[key], x)
    assert col.counters["perf_samples"] == 16 and col.counters["samples"] == sum(x.size for x in truth.values())
    doc = json.loads(path.read_text())
    assert doc["name"] == "t" and doc["machine"]["cores"] >= 1 and doc["machine"]["simd_active"]
    assert {"cpu", "version", "python", "build_type"} <= set(doc["machine"])
    _check(doc["stages"]["bus:feed->engine"], truth["bus:feed->engine"])
    assert doc["notes"]["bus_hops"] == ["bus:engine->venue", "bus:feed->engine"]
    assert doc["notes"]["heartbeats"]["feed"]["counters"] == {"batches": 3}
    assert doc["notes"]["heartbeats"]["engine"]["state"] == "stopping"


def test_write_request_and_shutdown(ctx, tmp_path):
    """A Status request writes the manifest now and answers with its path and the summary; other
    commands and garbage are refused with the reason; stopping writes the final manifest."""
    path = tmp_path / "m.json"
    pub, req, th, stop, box = _service(ctx, PerfCollector(), path, until=None)
    x = _samples(5, 2_000)
    pub.send_multipart((c.TELEMETRY, c.Codec(c.TELEMETRY).encode(_sample("engine", "features", x))))
    deadline = time.monotonic() + 10
    while True:  # the sample and the request travel on different sockets: ask until it is in
        reply = _request(ctx, req, c.Status(ts=5, trace=99))
        if reply.data["stages"] or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    assert reply.ok and reply.trace == 99 and reply.command == "status"
    _check(reply.data["stages"]["engine:features"], x)
    assert json.loads(path.read_text())["stages"]["engine:features"]["count"] == x.size
    refused = _request(ctx, req, c.Kill(ts=6, trace=3))
    assert not refused.ok and refused.command == "kill" and "only answers status" in refused.error
    s = ctx.socket(zmq.REQ)
    s.connect(req)
    s.send(b"\x93garbage")
    assert s.poll(10_000)
    bad = c.Codec(c.CONTROL_REPLIES).decode_strict(s.recv())
    s.close()
    assert isinstance(bad, c.CommandReply) and not bad.ok and "rejected frame" in bad.error
    more = _samples(6, 500)
    pub.send_multipart((c.TELEMETRY, c.Codec(c.TELEMETRY).encode(_sample("engine", "features", more, 1))))
    time.sleep(0.2)
    stop.set()
    th.join(10)
    pub.close()
    _check(json.loads(path.read_text())["stages"]["engine:features"], np.concatenate([x, more]))


def test_bad_input_is_counted_and_changes_nothing():
    col = PerfCollector()
    x = _samples(7, 1_000)
    col.take(_sample("engine", "model", x))
    enc = c.Codec(c.TELEMETRY)
    negative = np.array([5, -1, 7], np.int64)
    frames = [b"", b"\x93", enc.encode(_sample("engine", "model", negative)), enc.encode(_sample("engine", "", x)),
              c.Codec(c.CONTROL).encode(c.Status(ts=1))]
    short = _sample("engine", "model", x[:10])
    frames.append(enc.encode(c.PerfSample(seq=1, ts=1, dtype="LatencyNs", count=11, data=short.data,
                                          service="engine", stage="model")))
    out = [col.take_frame(f) for f in frames]
    assert sum(isinstance(o, c.Rejection) for o in out) == 4  # empty, truncated, wrong tag, wrong size
    assert col.counters["rejected_samples"] == 2  # the negative sample and the nameless stage
    assert col.codec.rejected["truncated"] == 2 and col.codec.rejected["wrong_tag"] == 1
    assert col.codec.rejected["payload_size"] == 1
    _check(col.summary()["stages"]["engine:model"], x)
    with pytest.raises(ValueError, match="negative"):
        col.add("engine:model", negative)
    with pytest.raises(ValueError, match="integer"):
        col.add("engine:model", np.array([1.5]))
    _check(col.summary()["stages"]["engine:model"], x)


def test_heartbeat_gaps_are_counted():
    col = PerfCollector()
    for seq in (0, 1, 3, 4):
        col.take(c.Heartbeat(ts=seq, service="feed", instance=1, seq=seq, state="running"))
    col.take(c.Heartbeat(ts=9, service="feed", instance=2, seq=0, state="running"))  # a restart: no gap
    assert col.counters["heartbeat_gaps"] == 1 and col.heartbeats["feed"]["instance"] == 2


def test_past_max_samples_a_uniform_reservoir_is_kept():
    """Exact up to max_samples; beyond, count and mean stay exact and the percentiles come from a
    uniform sample (close to numpy's over everything)."""
    col = PerfCollector(max_samples=20_000, seed=1)
    x = _samples(8, 200_000)
    for part in np.array_split(x, 37):
        col.add("bus:a->b", part)
    s = col.summary()["bus"]["bus:a->b"]
    assert s["count"] == x.size and s["sampled"] == 20_000
    assert s["mean"] == pytest.approx(x.mean(), rel=1e-12)
    for k, v in _expected(x).items():
        if k != "p999":  # 20 samples above p99.9: too few to pin it
            assert s[k] == pytest.approx(v, rel=0.05), k
    exact = PerfCollector(max_samples=20_000)
    exact.add("bus:a->b", x[:20_000])
    assert "sampled" not in exact.summary()["bus"]["bus:a->b"]
    _check(exact.summary()["bus"]["bus:a->b"], x[:20_000])


def test_latency_buffer_batches():
    buf = LatencyBuffer("venue", "bus:engine->venue", batch=4)
    x = list(range(10, 20))
    out = [m for m in (buf.add(v) for v in x) if m is not None]
    last = buf.flush()
    assert last is not None and buf.flush() is None
    out.append(last)
    assert [m.seq for m in out] == [0, 1, 2] and [m.count for m in out] == [4, 4, 2]
    col = PerfCollector()
    for m in out:
        assert col.take(c.Codec(c.TELEMETRY).decode_strict(c.Codec(c.TELEMETRY).encode(m)))
    _check(col.summary()["bus"]["bus:engine->venue"], np.array(x))
    with pytest.raises(ValueError):
        LatencyBuffer("venue", "")


def test_answer_without_sockets(tmp_path):
    col = PerfCollector()
    col.add("engine:sim", np.arange(100))
    reply = c.Codec(c.CONTROL_REPLIES).decode_strict(
        answer(col, c.Codec(c.CONTROL).encode(c.Status(ts=1)), tmp_path / "a.json"))
    assert isinstance(reply, c.CommandReply) and reply.ok
    assert json.loads((tmp_path / "a.json").read_text())["stages"]["engine:sim"]["p50"] == 49.5
