"""Telemetry (topic TELEMETRY): service heartbeats with their counters, and latency samples for
the perf manifest (raw int64 ns values as bytes, so the collector computes exact percentiles)."""

from __future__ import annotations

from typing import ClassVar, Literal

import msgspec

from bot4.contracts.arrays import ArrayBatch
from bot4.contracts.base import U32, U64, Message, TsNs

ServiceState = Literal["starting", "running", "paused", "killed", "stopping"]


class Heartbeat(Message, frozen=True, kw_only=True, tag="hb"):
    """A service is alive. seq: consecutive per service instance (a gap = heartbeats lost).
    instance: the process id. counters: the service's counters (queue depths, drops, rejections
    by reason), as name -> count."""

    ts: TsNs
    service: str
    instance: U32
    seq: U64
    state: ServiceState
    counters: dict[str, int] = msgspec.field(default_factory=dict)


class PerfSample(ArrayBatch, frozen=True, kw_only=True, tag="perf"):
    """Latency samples (ns) of one stage of one service, e.g. stage "strategy_risk" of "engine"
    or a bus hop "bus:engine->venue"."""

    DTYPE: ClassVar[str] = "LatencyNs"

    service: str
    stage: str


Telemetry = Heartbeat | PerfSample
