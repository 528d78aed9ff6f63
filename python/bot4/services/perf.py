"""Perf service: latency samples off the bus (topic TELEMETRY) into per-stage and per-bus-hop
distributions, written as a perf manifest (bot4.perf.PerfManifest: p50/p95/p99/p99.9, count,
mean, with the CPU, cores, SIMD level and versions it ran on) on demand and at shutdown.

    engine ── PerfSample(service="engine", stage="tick_to_decision") ──┐
    venue  ── PerfSample(service="venue", stage="bus:engine->venue") ──┼─► SUB ─► PerfCollector ─► manifest.json
    every service ── Heartbeat(counters) ─────────────────────────────┘   REP ◄── Status (= write now)

A PerfSample whose stage starts with "bus:" is a bus hop (its receiver measured send-to-receive
time); any other is a stage of the sending service, kept as "<service>:<stage>". Percentiles are
exact (numpy over every sample) up to `max_samples` per stage; past that a uniform reservoir of
`max_samples` is kept (count and mean stay exact, the manifest says which stages were sampled).
A frame that is not a telemetry message, or a PerfSample with a negative sample or no stage name,
is a counted rejection that changes nothing. Heartbeats keep each service's last counters and
state, and gaps in their sequence numbers are counted.

Services emit samples with LatencyBuffer (it hands out PerfSample batches of `batch` samples).
The write request is a CONTROL Status command on the service's REP socket: the manifest is
written and the reply's data holds its path and the summary; any other command is refused.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from bot4 import contracts as c
from bot4.perf import PerfManifest, latency_summary

BUS_PREFIX = "bus:"
#: Samples kept per stage for exact percentiles (8 MB of int64 each) before reservoir sampling.
DEFAULT_MAX_SAMPLES = 1_000_000


class _Distribution:
    """Samples of one stage: every sample up to `cap`, then a uniform reservoir of `cap`."""

    __slots__ = ("cap", "chunks", "kept", "count", "total", "reservoir", "_rng")

    def __init__(self, cap: int, rng: np.random.Generator):
        self.cap, self._rng = cap, rng
        self.chunks: list[np.ndarray] = []
        self.kept = 0
        self.count = 0
        self.total = 0.0
        self.reservoir: np.ndarray | None = None

    def add(self, x: np.ndarray) -> None:
        n = int(x.size)
        if not n:
            return
        self.total += float(x.sum(dtype=np.float64))
        first = self.count
        self.count += n
        room = self.cap - self.kept if self.reservoir is None else 0
        if room > 0:
            self.chunks.append(np.array(x[:room], dtype=np.int64))
            self.kept += min(room, n)
            x, first = x[room:], first + room
            if not x.size:
                return
        if self.reservoir is None:
            self.reservoir = self.values()
            self.chunks = []
        # Algorithm R, vectorised: the sample with 0-based index k replaces slot j ~ U{0..k} when
        # j < cap; later samples win a slot drawn twice (numpy assigns in index order).
        k = np.arange(first, first + x.size, dtype=np.int64)
        j = (self._rng.random(x.size) * (k + 1)).astype(np.int64)
        take = j < self.cap
        self.reservoir[j[take]] = x[take]

    def values(self) -> np.ndarray:
        if self.reservoir is not None:
            return self.reservoir
        if len(self.chunks) > 1:
            self.chunks = [np.concatenate(self.chunks)]
        return self.chunks[0] if self.chunks else np.zeros(0, np.int64)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(latency_summary(self.values()))
        out["count"] = self.count
        if self.count:
            out["mean"] = self.total / self.count
        out["unit"] = "ns"
        if self.reservoir is not None:
            out["sampled"] = int(self.reservoir.size)
        return out


class PerfCollector:
    """Latency distributions per stage and per bus hop, and the services' last heartbeats.

    name: the manifest's name. max_samples: samples kept per stage for exact percentiles.
    seed: the reservoir's random generator (only used past max_samples)."""

    def __init__(self, name: str = "paper", *, max_samples: int = DEFAULT_MAX_SAMPLES, seed: int = 0):
        if max_samples < 1:
            raise ValueError(f"max_samples must be >= 1, got {max_samples}")
        self.name, self.max_samples = name, int(max_samples)
        self._rng = np.random.default_rng(seed)
        self.codec = c.Codec(c.TELEMETRY)
        self.dists: dict[str, _Distribution] = {}
        #: service -> {"instance", "seq", "state", "counters"} of its last heartbeat
        self.heartbeats: dict[str, dict[str, Any]] = {}
        self.counters: dict[str, int] = dict.fromkeys(
            ("perf_samples", "samples", "heartbeats", "heartbeat_gaps", "rejected_samples", "bad_envelope"), 0)

    # -- input ---------------------------------------------------------------------------------
    def add(self, stage: str, samples_ns: Any) -> None:
        """Add latency samples (ns, integers >= 0) to `stage` (a bus hop when it starts with
        "bus:"). A negative sample or an empty stage name is a ValueError and nothing is added."""
        x = np.asarray(samples_ns)
        if x.ndim != 1 or (x.size and not np.issubdtype(x.dtype, np.integer)):
            raise ValueError(f"{stage}: expected a 1-D array of integer ns, got {x.dtype} shape {x.shape}")
        if not stage or stage == BUS_PREFIX:
            raise ValueError("a stage needs a name")
        if x.size and int(x.min()) < 0:
            raise ValueError(f"{stage}: {int((x < 0).sum())} negative latency sample(s)")
        d = self.dists.get(stage)
        if d is None:
            d = self.dists[stage] = _Distribution(self.max_samples, self._rng)
        d.add(x.astype(np.int64, copy=False))
        self.counters["samples"] += int(x.size)

    def take(self, msg: c.Message) -> bool:
        """Take one telemetry message in; False when it was refused (counted)."""
        if isinstance(msg, c.PerfSample):
            try:
                samples = c.unpack(msg)
                self.add(stage_key(msg.service, msg.stage), samples)
            except ValueError:  # (PayloadError is one) negative samples, no stage name, bad payload
                self.counters["rejected_samples"] += 1
                return False
            self.counters["perf_samples"] += 1
            return True
        if isinstance(msg, c.Heartbeat):
            last = self.heartbeats.get(msg.service)
            if last is not None and last["instance"] == msg.instance and msg.seq != last["seq"] + 1:
                self.counters["heartbeat_gaps"] += 1
            self.heartbeats[msg.service] = {"instance": msg.instance, "seq": msg.seq, "state": msg.state,
                                            "counters": dict(msg.counters)}
            self.counters["heartbeats"] += 1
            return True
        raise TypeError(f"not a telemetry message: {type(msg).__name__}")

    def take_frame(self, frame: Any) -> c.Message | c.Rejection:
        """Decode one TELEMETRY frame and take it in (a bad frame is the codec's counted rejection)."""
        msg = self.codec.decode(frame)
        if not isinstance(msg, c.Rejection):
            self.take(msg)
        return msg

    # -- output --------------------------------------------------------------------------------
    def summary(self) -> dict[str, dict[str, dict[str, Any]]]:
        """{"stages": {key: percentiles}, "bus": {hop: percentiles}} (bot4.perf.latency_summary's
        fields, count and mean over every sample, "sampled" when past max_samples)."""
        out: dict[str, dict[str, dict[str, Any]]] = {"stages": {}, "bus": {}}
        for key in sorted(self.dists):
            out["bus" if key.startswith(BUS_PREFIX) else "stages"][key] = self.dists[key].summary()
        return out

    def all_counters(self) -> dict[str, int]:
        """The collector's counters and its codec's (decoded, rejected.<reason>)."""
        return {**self.counters, **{f"tel.{k}": v for k, v in self.codec.counters().items()}}

    def manifest(self) -> PerfManifest:
        """A PerfManifest of everything so far: every stage and bus hop under stages, which keys
        are bus hops, the heartbeats and the collector's counters under notes."""
        m = PerfManifest(name=self.name)
        s = self.summary()
        m.stages.update(s["stages"])
        m.stages.update(s["bus"])
        m.notes.update({"bus_hops": sorted(s["bus"]), "heartbeats": self.heartbeats,
                        "collector": self.all_counters()})
        return m

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write the manifest (JSON) to `path`; returns the path."""
        return self.manifest().write(Path(path))


def stage_key(service: str, stage: str) -> str:
    """The key a sample is kept under: the stage itself for a bus hop, else "<service>:<stage>"."""
    if not stage:
        raise ValueError("a stage needs a name")
    return stage if stage.startswith(BUS_PREFIX) else f"{service}:{stage}"


class LatencyBuffer:
    """Latency samples of one stage gathered by a service and handed out as PerfSample batches.

    add() returns a full PerfSample every `batch` samples (else None); flush() the rest."""

    def __init__(self, service: str, stage: str, batch: int = 4096):
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        stage_key(service, stage)
        self.service, self.stage = service, stage
        self._buf = np.empty(batch, np.int64)
        self._n = 0
        self.seq = 0

    def add(self, ns: int) -> c.PerfSample | None:
        """Record one latency (ns)."""
        self._buf[self._n] = ns
        self._n += 1
        return self.flush() if self._n == self._buf.size else None

    def flush(self) -> c.PerfSample | None:
        """The samples not yet handed out as one PerfSample (None when there are none)."""
        if not self._n:
            return None
        msg = c.pack(c.PerfSample, self._buf[: self._n], seq=self.seq, ts=time.time_ns(),
                     service=self.service, stage=self.stage)
        self.seq += 1
        self._n = 0
        return msg


def answer(collector: PerfCollector, request: Any, path: str | os.PathLike[str],
           codec: c.Codec | None = None) -> bytes:
    """The reply frame (CONTROL_REPLIES) to one request frame on the perf service's REP socket:
    Status writes the manifest to `path` (data: path and summary); any other command, or a frame
    that is not a command (counted by `codec`), is refused with the reason."""
    codec = codec or c.Codec(c.CONTROL)
    cmd = codec.decode(request)
    if isinstance(cmd, c.Rejection):
        reply = c.CommandReply(ts=time.time_ns(), command="", ok=False, error=f"rejected frame: {cmd.reason}")
    elif isinstance(cmd, c.Status):
        written = collector.write(path)
        reply = c.CommandReply(trace=cmd.trace, ts=cmd.ts, command="status", ok=True,
                               data={"path": str(written), **collector.summary()})
    else:
        tag = str(type(cmd).__struct_config__.tag)
        reply = c.CommandReply(trace=cmd.trace, ts=getattr(cmd, "ts", time.time_ns()), command=tag, ok=False,
                               error=f"the perf service only answers status (write the manifest), not {tag}")
    return c.Codec(c.CONTROL_REPLIES).encode(reply)


def run_perf(ctx: zmq.Context, endpoints: list[str], path: str | os.PathLike[str], *,
             collector: PerfCollector | None = None, request_endpoint: str | None = None,
             until: str | None = "engine", stop: Any = None, ready: Any = None,
             bind: bool = False) -> PerfCollector:
    """The perf service: SUB to TELEMETRY at each of `endpoints` (connected, or bound with
    bind=True), a REP at `request_endpoint` answering write requests (see answer), until the
    service `until` sends its "stopping" heartbeat (then the TELEMETRY subscription is dropped,
    which acknowledges the end to an engine waiting for it) or `stop` (threading.Event) is set
    (until=None: only stop). The manifest is written to `path` at the end; returns the collector."""
    collector = collector or PerfCollector()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 2_000)  # the closing unsubscribe must get out
    sub.setsockopt(zmq.SUBSCRIBE, c.TELEMETRY)
    rep = None
    poller = zmq.Poller()
    poller.register(sub, zmq.POLLIN)
    try:
        for ep in endpoints:
            (sub.bind if bind else sub.connect)(ep)
        if request_endpoint is not None:
            rep = ctx.socket(zmq.REP)
            rep.setsockopt(zmq.LINGER, 0)
            rep.bind(request_endpoint)
            poller.register(rep, zmq.POLLIN)
        if ready is not None:
            ready.set()
        requests = c.Codec(c.CONTROL)
        while not (stop is not None and stop.is_set()):
            events = dict(poller.poll(100))
            if rep is not None and rep in events:
                rep.send(answer(collector, rep.recv(copy=False).buffer, path, requests))
            if sub not in events:
                continue
            parts = sub.recv_multipart(copy=False)
            if len(parts) != 2:
                collector.counters["bad_envelope"] += 1
                continue
            msg = collector.take_frame(parts[1].buffer)
            if until is not None and isinstance(msg, c.Heartbeat) and msg.service == until \
                    and msg.state == "stopping":
                sub.setsockopt(zmq.UNSUBSCRIBE, c.TELEMETRY)
                break
        return collector
    finally:
        collector.write(path)
        sub.close()
        if rep is not None:
            rep.close()
