"""Perf manifests: latency percentiles per stage, with the machine and build they ran on."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

PERCENTILES = (50.0, 95.0, 99.0, 99.9)


def latency_summary(samples_ns: np.ndarray) -> dict[str, float]:
    """p50/p95/p99/p99.9, mean and count of a latency sample in ns."""
    samples = np.asarray(samples_ns, dtype=np.float64)
    if samples.size == 0:
        return {"count": 0}
    p50, p95, p99, p999 = np.percentile(samples, PERCENTILES)
    return {"count": int(samples.size), "mean": float(samples.mean()), "p50": float(p50),
            "p95": float(p95), "p99": float(p99), "p999": float(p999)}


@dataclass
class PerfManifest:
    """One run's measurements: per-stage latency percentiles and throughput figures."""

    name: str
    stages: dict[str, dict] = field(default_factory=dict)
    throughput: dict[str, dict] = field(default_factory=dict)
    notes: dict[str, object] = field(default_factory=dict)
    targets: dict[str, dict] = field(default_factory=dict)

    def add_latency(self, stage: str, samples_ns: np.ndarray, unit: str = "ns") -> dict:
        """Record stage `stage`'s latency percentiles from int64 samples (ns by default); returns the
        summary stored."""
        summary: dict[str, object] = dict(latency_summary(samples_ns))
        summary["unit"] = unit
        self.stages[stage] = summary
        return summary

    def add_throughput(self, name: str, items: int, seconds: float, unit: str = "items/s") -> float:
        """Record `items` processed in `seconds` under `name`; returns the rate (items/s, inf when seconds
        is 0)."""
        rate = items / seconds if seconds > 0 else float("inf")
        self.throughput[name] = {"items": int(items), "seconds": seconds, "rate": rate, "unit": unit}
        return rate

    def add_target(self, name: str, measured: float, target: float, better: str) -> bool:
        """Record an absolute figure beside its target (`better` is "lower" or "higher") and
        return whether it is met. Absolute times depend on the machine and its load, so benchmarks
        record them here rather than gate on them; their gates are ratios measured in one run."""
        if better not in ("lower", "higher"):
            raise ValueError(f"better must be 'lower' or 'higher', got {better!r}")
        met = measured <= target if better == "lower" else measured >= target
        self.targets[name] = {"measured": float(measured), "target": float(target), "better": better,
                              "met": bool(met)}
        return bool(met)

    def as_dict(self) -> dict:
        """The manifest as a JSON-able dict, with the machine's build info and the current time."""
        from bot4.info import build_info

        return {"name": self.name, "created_unix": time.time(), "machine": build_info(),
                "stages": self.stages, "throughput": self.throughput, "targets": self.targets,
                "notes": self.notes}

    def write(self, path: str | Path) -> Path:
        """Write the manifest as JSON to `path` (parent folders created); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.as_dict(), indent=2))
        return path
