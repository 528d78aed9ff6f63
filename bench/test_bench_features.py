"""Feature engine on the reference BTCUSDT recording: streaming update cost per event (no rows),
full-row cost at every book message with the windowed kernels recomputed each row, and the whole
`compute` throughput. Costs are measured inside the core (steady_clock around each event / row,
~20 ns of clock overhead included in the per-event figure). These absolute figures go to the perf
manifest (build/perf/features.json) beside their targets, ungated; the SIMD gate is the same-run
kernel ratio in test_bench_kernels.py."""

from __future__ import annotations

import os

import numpy as np
import pytest

from bot4 import _core
from bot4.features import FeatureConfig, compute, make_engine
from conftest import written_manifest

ROW_SPEEDUP_GATE = 2.0


@pytest.fixture(scope="module")
def manifest():
    with written_manifest("features") as m:
        yield m


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


# Row timing as a script, so the scalar build of the same run can be timed in a subprocess with
# BOT4_SIMD=scalar (the level is fixed per process at first use).
ROW_SCRIPT = """
import json, sys
import numpy as np
from bot4.data import load
from bot4.features import FeatureConfig, make_engine
data = load(sys.argv[1], progress=False)
engine = make_engine(data, FeatureConfig())
engine.force_window_recompute(True)
ns = engine.run(data.book, data.orders, data.trades, time_rows=True)["row_ns"]
ns = ns[len(ns) // 10:]
print(json.dumps({"level": engine.kernel_level, "p50": float(np.median(ns)), "p99": float(np.percentile(ns, 99))}))
"""


def _row_times(reference_data):
    engine = make_engine(reference_data, FeatureConfig())
    engine.force_window_recompute(True)
    out = engine.run(reference_data.book, reference_data.orders, reference_data.trades, time_rows=True)
    return engine, out["row_ns"]


def test_full_row_cost(reference_data, manifest):
    engine, ns = _row_times(reference_data)
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


def test_full_row_vector_vs_scalar_build(reference_data, manifest):
    """The same row timing with BOT4_SIMD=scalar in a subprocess, interleaved with this process's
    level (best of two each, same run): the vector kernels must keep a full row at least
    ROW_SPEEDUP_GATE x faster at the median (measured 2.8x AVX2, 3.5x AVX-512 on 2-core EPYC VMs;
    the p99 <= 5 us target needs ~2.2x over scalar's ~11 us)."""
    import json
    import subprocess
    import sys

    from recordings import BTCUSDT, data_path

    if _core.simd.active_level() == "scalar":
        pytest.skip("this machine runs the scalar kernels: no vector level to compare")
    env = {**os.environ, "BOT4_SIMD": "scalar"}
    scalar, vector = [], []
    for _ in range(2):
        run = subprocess.run([sys.executable, "-c", ROW_SCRIPT, str(data_path(*BTCUSDT))], env=env,
                             capture_output=True, text=True, check=True)
        scalar.append(json.loads(run.stdout.strip().splitlines()[-1]))
        _, ns = _row_times(reference_data)
        vector.append(float(np.median(ns[len(ns) // 10:])))
    assert {s["level"] for s in scalar} == {"scalar"}
    s50 = min(s["p50"] for s in scalar)
    v50 = min(vector)
    speedup = s50 / v50
    manifest.notes["feature_row_scalar_build_p50_ns"] = s50
    manifest.notes["feature_row_vector_p50_ns"] = v50
    manifest.add_target(f"feature_row_speedup_{_core.simd.active_level()}_vs_scalar", speedup, 2.2, "higher")
    print(f"\nfull row p50: scalar build {s50:.0f} ns, {_core.simd.active_level()} {v50:.0f} ns ({speedup:.2f}x)")
    assert speedup >= ROW_SPEEDUP_GATE, f"full row only {speedup:.2f}x the scalar build"


def test_compute_throughput(benchmark, reference_data, manifest):
    events = len(reference_data.book) + len(reference_data.trades)
    result = benchmark.pedantic(lambda: compute(reference_data, FeatureConfig(), chunks=1), rounds=5,
                                iterations=1)
    assert result.matrix.shape[1] == len(result.names) >= 80
    rate = manifest.add_throughput("compute_events", events, benchmark.stats.stats.median, unit="events/s")
    print(f"\ncompute(): {rate / 1e6:.2f} M events/s, {result.matrix.shape[0]:,} rows")
