"""Feature engine on the reference BTCUSDT recording: streaming update cost per event (no rows),
full-row cost at every book message with the windowed kernels recomputed each row, and the whole
`compute` throughput. Costs are measured inside the core (steady_clock around each event / row,
~20 ns of clock overhead included in the per-event figure). These absolute figures go to the perf
manifest (build/perf/features.json) beside their targets, ungated; the SIMD gate is the same-run
kernel ratio in test_bench_kernels.py."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from bot4 import _core
from bot4.features import FeatureConfig, compute, make_engine
from bot4.perf import PerfManifest

PERF_DIR = Path(os.environ.get("BOT4_PERF_DIR", Path(__file__).resolve().parents[1] / "build" / "perf"))


@pytest.fixture(scope="module")
def manifest():
    m = PerfManifest(name="features")
    yield m
    path = m.write(PERF_DIR / "features.json")
    print(f"\nperf manifest written to {path}")


def _run(data, config, **timing):
    engine = make_engine(data, config)
    out = engine.run(data.book, data.orders, data.trades, **timing)
    return engine, out


def test_streaming_update_cost(reference_data, manifest):
    engine, out = _run(reference_data, FeatureConfig(decision="none"), time_events=True)
    ns = out["event_ns"]
    assert len(ns) == len(reference_data.book) + len(reference_data.trades)
    summary = manifest.add_latency("streaming_update_per_event", ns)
    print(f"\nstreaming update per event: {summary}")
    manifest.add_target("streaming_update_per_event_p50_ns", summary["p50"], 100, "lower")


def test_full_row_cost(reference_data, manifest):
    engine = make_engine(reference_data, FeatureConfig())
    engine.force_window_recompute(True)
    out = engine.run(reference_data.book, reference_data.orders, reference_data.trades, time_rows=True)
    ns = out["row_ns"]
    matrix = engine.matrix
    assert len(ns) == matrix.shape[0] > 1000
    # Once warm, the windowed kernels produce values (the rows are real work, not NaN shortcuts).
    warm = matrix[len(ns) // 2:]
    names = _core.features.catalog()
    col = [n[0] for n in names].index("sample_entropy")
    assert np.isfinite(warm[:, col]).mean() > 0.5
    summary = manifest.add_latency("feature_row_with_kernels", ns[len(ns) // 10:])
    print(f"\nfull feature row (kernels recomputed): {summary} on {engine.kernel_level}")
    manifest.add_target("feature_row_with_kernels_p99_ns", summary["p99"], 5_000, "lower")


def test_compute_throughput(benchmark, reference_data, manifest):
    events = len(reference_data.book) + len(reference_data.trades)
    result = benchmark.pedantic(lambda: compute(reference_data, FeatureConfig(), chunks=1), rounds=5,
                                iterations=1)
    assert result.matrix.shape[1] == len(result.names) >= 80
    rate = manifest.add_throughput("compute_events", events, benchmark.stats.stats.median, unit="events/s")
    print(f"\ncompute(): {rate / 1e6:.2f} M events/s, {result.matrix.shape[0]:,} rows")
