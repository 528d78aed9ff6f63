"""Windowed time-series kernels on n = 128 windows of real log mid returns (the reference BTCUSDT
recording): scalar against every vector level in the same run, timed inside C++ with the GIL
released (`_core.features.kernel_time_samples`: batches of calls lasting ~20 us each, per-call ns
per batch). Results are checked to agree across levels before any figure is recorded. The
speedups (scalar median / level median) go to build/perf/window_kernels.json. Gates, all same-run
ratios: no kernel slower than scalar at the best level (>= 0.9x, timer noise), and the sum over all
kernels at or near the target (>= 4x; gated at SUM_GATE per level, the AVX2 target is not met
everywhere: see SUM_GATE)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from bot4 import _core
from bot4.events import FLAG_LAST, NO_ASK_PRICE, NO_BID_PRICE
from bot4.perf import PerfManifest

F = _core.features
PERF_DIR = Path(os.environ.get("BOT4_PERF_DIR", Path(__file__).resolve().parents[1] / "build" / "perf"))
N = 128
WINDOWS = 6          # windows timed per kernel and level; the figure is the median over them
SAMPLES = 41         # timed batches per window
LEVELS = F.kernel_levels()
BEST = LEVELS[-1]
TARGET_SUM_SPEEDUP = 4.0
#: measured 3.3x / 4.2x on the 2-core EPYC VMs here; one CI run measured 2.97x / 4.53x (AVX2
#: below its 4x target there: dfa and ols_slope gain under 2x). The AVX2 gate catches a loss of a
#: fifth of its speedup, the AVX-512 one sits near the target.
SUM_GATE = {"avx2": 2.6, "avx512": 3.5}

# name -> (kernel_time name and keyword arguments, call returning the kernel's value at a level)
KERNELS = {
    "acf": ("acf", {"lag": 1}, lambda x, lv: F.kernel_acf(x, 1, level=lv)),
    "c3": ("c3", {"lag": 1}, lambda x, lv: F.kernel_c3(x, 1, level=lv)),
    "cid_ce": ("cid_ce", {}, lambda x, lv: F.kernel_cid_ce(x, level=lv)),
    "hurst_rs": ("hurst_rs", {}, lambda x, lv: F.kernel_hurst_rs(x, level=lv)),
    "dfa": ("dfa", {}, lambda x, lv: F.kernel_dfa(x, level=lv)),
    "sample_entropy": ("sample_entropy", {"order": 2}, lambda x, lv: F.kernel_sample_entropy(x, 2, level=lv)),
    "perm_entropy": ("perm_entropy", {"order": 3, "delay": 1}, lambda x, lv: F.kernel_perm_entropy(x, 3, 1, level=lv)),
    "perm_entropy_4": ("perm_entropy", {"order": 4, "delay": 1}, lambda x, lv: F.kernel_perm_entropy(x, 4, 1, level=lv)),
    "spectral_entropy": ("spectral_entropy", {}, lambda x, lv: F.kernel_spectral_entropy(x, level=lv)),
    "wavelet_energies": ("wavelet_energies", {"levels": 3}, lambda x, lv: F.kernel_wavelet_energies(x, 3, level=lv)),
    "ols_slope": ("ols_slope", {}, lambda x, lv: F.kernel_ols_slope(np.arange(N, dtype=np.float64), x, level=lv)),
}


@pytest.fixture(scope="module")
def windows(reference_data):
    """WINDOWS evenly spaced n = 128 windows of log mid returns at message ends, each with
    enough movement that every kernel is defined on it (most returns are exactly 0)."""
    books = _core.book.BookSet()
    for instrument in reference_data.specs:
        books.add(instrument)
    ends = np.flatnonzero(reference_data.book["flags"] & FLAG_LAST).astype(np.int64)
    tops = books.apply(reference_data.book, ends)
    ok = (tops["bid_price"] != NO_BID_PRICE) & (tops["ask_price"] != NO_ASK_PRICE)
    mid = (tops["bid_price"][ok] + tops["ask_price"][ok]) / 2.0
    r = np.diff(np.log(mid))
    chosen = []
    for start in np.linspace(0, len(r) - N, 40).astype(int):
        x = np.ascontiguousarray(r[start:start + N])
        if all(np.all(np.isfinite(call(x, "scalar"))) for _, _, call in KERNELS.values()):
            chosen.append(x)
    assert len(chosen) >= WINDOWS, "too few defined windows in the recording"
    pick = np.linspace(0, len(chosen) - 1, WINDOWS).astype(int)
    return [chosen[i] for i in pick]


@pytest.fixture(scope="module")
def manifest():
    m = PerfManifest(name="window_kernels")
    m.notes["window"] = N
    m.notes["levels"] = LEVELS
    m.notes["method"] = ("median over windows of the median per-call ns of timed batches "
                         "(kernel_time_samples, GIL released); speedup = scalar / level")
    m.notes["speedups"] = {}
    m.notes["median_ns"] = {}
    yield m
    path = m.write(PERF_DIR / "window_kernels.json")
    print(f"\nperf manifest written to {path}")


def _timed(kernel, kwargs, xs, level):
    per_window = [F.kernel_time_samples(kernel, x, SAMPLES, level, **kwargs) for x in xs]
    medians = [float(np.median(s)) for s in per_window]
    return float(np.median(medians)), np.concatenate(per_window)


@pytest.mark.parametrize("name", list(KERNELS))
def test_kernel_speedup(name, windows, manifest):
    kernel, kwargs, call = KERNELS[name]
    for x in windows:
        # every level returns the scalar bits (see window_kernels_impl.hpp)
        want = np.asarray(call(x, "scalar"))
        for level in LEVELS[1:]:
            np.testing.assert_array_equal(np.asarray(call(x, level)), want, err_msg=f"{name} at {level}")
    median_ns = {}
    for level in LEVELS:
        median_ns[level], samples = _timed(kernel, kwargs, windows, level)
        manifest.add_latency(f"{name}[{level}]", samples)
    speedups = {level: median_ns["scalar"] / median_ns[level] for level in LEVELS[1:]}
    manifest.notes["median_ns"][name] = median_ns
    manifest.notes["speedups"][name] = speedups
    # vector code must never be a slowdown (0.9: timer noise on single kernels)
    if len(LEVELS) > 1:
        assert speedups[BEST] >= 0.9, f"{name}: {BEST} at {speedups[BEST]:.2f}x scalar"


def test_all_kernels_pytest_benchmark(benchmark, windows):
    """One pass of every kernel over the windows at the active level, through pytest-benchmark
    (includes the Python call overhead, unlike the C++ timings above)."""
    calls = [call for _, _, call in KERNELS.values()]

    def run(level="active"):
        acc = 0.0
        for x in windows:
            for call in calls:
                acc += float(np.sum(call(x, level)))
        return acc

    want = run("scalar")            # every level returns the scalar bits, so the sums agree exactly
    total = benchmark(run)
    assert total == want, (total, want)


def test_summary_table(manifest):
    med = manifest.notes["median_ns"]
    if len(med) < len(KERNELS):
        pytest.skip("needs the per-kernel benchmarks in the same run")
    header = f"{'kernel (n=128)':<18}" + "".join(f"{lv + ' ns':>12}" for lv in LEVELS) + "".join(
        f"{lv + ' x':>10}" for lv in LEVELS[1:])
    lines = [header, "-" * len(header)]
    for name in KERNELS:
        row = f"{name:<18}" + "".join(f"{med[name][lv]:>12.1f}" for lv in LEVELS)
        row += "".join(f"{manifest.notes['speedups'][name][lv]:>10.2f}" for lv in LEVELS[1:])
        lines.append(row)
    total = {lv: sum(med[name][lv] for name in KERNELS) for lv in LEVELS}
    lines.append(f"{'all (sum)':<18}" + "".join(f"{total[lv]:>12.1f}" for lv in LEVELS) +
                 "".join(f"{total['scalar'] / total[lv]:>10.2f}" for lv in LEVELS[1:]))
    manifest.notes["sum_ns"] = total
    print("\n" + "\n".join(lines))
    for lv in LEVELS[1:]:
        manifest.add_target(f"all_kernels_speedup_{lv}", total["scalar"] / total[lv], TARGET_SUM_SPEEDUP, "higher")
    slow = {lv: round(total["scalar"] / total[lv], 2) for lv in LEVELS[1:] if total["scalar"] / total[lv] < SUM_GATE.get(lv, 1.0)}
    assert not slow, f"sum of kernel medians vs scalar below the gate {SUM_GATE}: {slow}"
