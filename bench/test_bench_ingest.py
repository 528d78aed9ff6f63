"""Ingestion of the reference BTCUSDT recording, measured against the decompression floor in the
same run (issue 14):

* raw file -> event arrays: the native decoder (default), the Python reference, and the floor
  (reading the file and inflating it with the same zlib, nothing else);
* cached dataset (`bot4 convert`) -> event arrays, warm page cache: the zero-copy records path
  and the Parquet columns path;
* `bot4 replay --data ...` end to end (process start to result): raw with the Python reference
  ("before"), raw with the native decoder, and the converted dataset;
* optional: hftbacktest's `binancefutures.convert` on the same file (if installed).

Targets (issue 14): >= 3 M level changes/s raw including gzip, >= 200 M/s from the cache. The
gates below are ratios to figures measured in the same run, loose enough for a shared 2-core VM;
the figures go to the perf manifest (build/perf/ingest.json) and the closing note.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
import zlib

import pytest

from bot4.data.binance import BinanceLoader
from bot4.data.binance_native import NativeBinanceLoader
from bot4.data.cache import convert, load_dataset
from bot4.events import BOOK_EVENT, BBO_EVENT, TRADE_EVENT

from conftest import REFERENCE_FILE, written_manifest

LEVEL_CHANGES = 445_262  # book records of the reference file (snapshot + applied diffs)
ROUNDS = 7
FIGURES: dict[str, float] = {}


@pytest.fixture(scope="module")
def manifest():
    with written_manifest("ingest", FIGURES) as m:
        yield m


def _median(benchmark) -> float:
    return benchmark.stats.stats.median


def _record(manifest, name: str, seconds: float, items: int = LEVEL_CHANGES) -> float:
    FIGURES[f"{name}_seconds"] = round(seconds, 6)
    rate = manifest.add_throughput(name, items, seconds, unit="level changes/s")
    FIGURES[f"{name}_level_changes_per_s"] = round(rate)
    return rate


def test_decompression_floor(benchmark, manifest):
    def floor():
        with open(REFERENCE_FILE, "rb") as fh:
            return len(zlib.decompress(fh.read(), wbits=31))

    n = benchmark.pedantic(floor, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    assert n == 27_757_550
    _record(manifest, "floor_read_and_inflate", _median(benchmark))


def test_native_raw_to_arrays(benchmark, manifest):
    """The default path (inflate on a second thread)."""
    data = benchmark.pedantic(lambda: NativeBinanceLoader().load(REFERENCE_FILE), rounds=ROUNDS,
                              iterations=1, warmup_rounds=1)
    assert len(data.book) == LEVEL_CHANGES
    rate = _record(manifest, "native_raw", _median(benchmark))
    floor = FIGURES["floor_read_and_inflate_seconds"]
    FIGURES["native_over_floor"] = round(_median(benchmark) / floor, 3)
    manifest.add_target("native_raw_level_changes_per_s", rate, 3e6, "higher")
    # Target: >= 3 M level changes/s including gzip, which is 2.4-3.7x the inflate-only floor's
    # time at the floors measured on these machines (7.3-11.1 M/s). Gate in same-run terms: at most
    # 3x the floor. Inflating on a second thread while parsing beats the one-thread floor when that
    # core is free (0.85x here, 0.84x in CI); with both cores busy it measured 1.39x and 2.35x.
    assert _median(benchmark) < 3.0 * floor, (rate, FIGURES)


def test_native_raw_to_arrays_one_thread(benchmark, manifest):
    data = benchmark.pedantic(lambda: NativeBinanceLoader(threads=False).load(REFERENCE_FILE),
                              rounds=ROUNDS, iterations=1, warmup_rounds=1)
    assert len(data.book) == LEVEL_CHANGES
    _record(manifest, "native_raw_one_thread", _median(benchmark))


def test_python_reference_raw_to_arrays(benchmark, manifest):
    data = benchmark.pedantic(lambda: BinanceLoader().load(REFERENCE_FILE), rounds=3, iterations=1)
    assert len(data.book) == LEVEL_CHANGES
    _record(manifest, "python_raw", _median(benchmark))
    FIGURES["native_speedup_over_python"] = round(
        _median(benchmark) / FIGURES["native_raw_seconds"], 2)
    assert FIGURES["native_speedup_over_python"] > 3


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("ingest") / "btc"
    convert(REFERENCE_FILE, out)
    load_dataset(out)  # warm the page cache
    return out


def test_cached_dataset_to_arrays(benchmark, manifest, dataset):
    data = benchmark.pedantic(lambda: load_dataset(dataset), rounds=50, iterations=1,
                              warmup_rounds=2)
    assert len(data.book) == LEVEL_CHANGES and data.book.dtype == BOOK_EVENT
    rate = _record(manifest, "cached_records", _median(benchmark))
    manifest.add_target("cached_records_level_changes_per_s", rate, 200e6, "higher")
    # Target >= 200 M level changes/s warm; gate: >= 20x the native raw decode of this run.
    FIGURES["cached_over_native_raw"] = round(FIGURES["native_raw_seconds"] / _median(benchmark), 1)
    assert FIGURES["cached_over_native_raw"] > 20, (rate, FIGURES)


def test_cached_parquet_columns_to_arrays(benchmark, manifest, dataset):
    names = sorted(set(BOOK_EVENT.names) | set(TRADE_EVENT.names) | set(BBO_EVENT.names))
    data = benchmark.pedantic(lambda: load_dataset(dataset, columns=names), rounds=ROUNDS,
                              iterations=1, warmup_rounds=1)
    assert len(data.book) == LEVEL_CHANGES
    _record(manifest, "cached_parquet_columns", _median(benchmark))


def _replay_run(args: list[str], engine: str = "native", rounds: int = 3) -> tuple[float, int]:
    """`bot4 replay` in a fresh process (start to result): median wall seconds of rounds, and the
    process's peak resident bytes (VmHWM, the largest of the rounds)."""
    code = ("import sys\n"
            "import bot4.data.binance as b\n"
            f"_orig = b.load_binance\n"
            f"b.load_binance = lambda *a, **k: _orig(*a, **{{**k, 'engine': {engine!r}}})\n"
            "from bot4.cli import main\n"
            "code = main(sys.argv[1:])\n"
            "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0].split()[1]\n"
            "print('peak_rss_kib', hwm, file=sys.stderr)\n"
            "sys.exit(code)\n")
    times, peaks = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", code, "replay", *args, "--json", "-q"],
                             capture_output=True, text=True, check=True,
                             env={**os.environ, "PYTHONWARNINGS": "ignore"})
        times.append(time.perf_counter() - started)
        assert json.loads(out.stdout)["level_changes"] == LEVEL_CHANGES
        peaks.append(int(out.stderr.split("peak_rss_kib")[-1].split()[0]) * 1024)
    return statistics.median(times), max(peaks)


def test_replay_end_to_end(manifest, dataset, reference_data):
    before, before_rss = _replay_run(["--data", str(REFERENCE_FILE)], engine="python")
    after, after_rss = _replay_run(["--data", str(REFERENCE_FILE)], engine="native")
    streamed, streamed_rss = _replay_run(["--stream", "--data", str(REFERENCE_FILE)])
    cached, cached_rss = _replay_run(["--data", str(dataset)])
    arrays = sum(getattr(reference_data, a).nbytes for a in ("book", "trades", "bbo", "orders"))
    FIGURES.update(replay_python_raw_seconds=round(before, 3), replay_native_raw_seconds=round(after, 3),
                   replay_native_streamed_seconds=round(streamed, 3), replay_cached_seconds=round(cached, 3),
                   event_array_bytes=arrays, replay_python_raw_peak_rss=before_rss,
                   replay_native_raw_peak_rss=after_rss, replay_native_streamed_peak_rss=streamed_rss,
                   replay_cached_peak_rss=cached_rss)
    assert after < before
    # one 8 MiB part holds this whole 3.6 MB file, so streaming cannot save memory here; the soak
    # benchmark shows the bound on a recording many times the budget
    assert streamed_rss < after_rss + arrays


def test_hftbacktest_converter(benchmark, manifest):
    """Optional: hftbacktest's own converter on the same file (pip install hftbacktest)."""
    utils = pytest.importorskip("hftbacktest.data.utils.binancefutures")
    out = benchmark.pedantic(lambda: utils.convert(str(REFERENCE_FILE)), rounds=3, iterations=1,
                             warmup_rounds=1)
    FIGURES["hftbacktest_events"] = len(out)
    FIGURES["hftbacktest_seconds"] = round(_median(benchmark), 4)
    FIGURES["native_speedup_over_hftbacktest"] = round(
        _median(benchmark) / FIGURES["native_raw_seconds"], 1)
    manifest.add_target("native_speedup_over_hftbacktest", FIGURES["native_speedup_over_hftbacktest"], 10.0, "higher")
    # Target >= 10x; measured 12.2x in CI (606 ms against 49.5 ms) and 6.7x with both cores busy
    # (the inflate thread then has no core of its own). The gate catches a halving.
    assert FIGURES["native_speedup_over_hftbacktest"] >= 5.0, FIGURES
