"""Peak RSS of streaming Tardis files (issue 14): iter_tardis over an incremental_book_L2 (gzip)
and a trades file (plain) merged by time, 1 MiB of each file a part, a short recording and one
twelve times longer (hundreds of chunks): the long read's peak resident memory stays within a few
parts' records of the short one's and does not grow under way, while a whole-file load of the
long recording holds all its event records. Each read runs in its own process
(bench/tardis_stream_rss.py) so its VmHWM is its own; the figures go to the perf manifest
(build/perf/tardis_stream.json)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bot4.perf import PerfManifest

from conftest import PERF_DIR

SCRIPT = Path(__file__).with_name("tardis_stream_rss.py")
SHORT, LONG = 300_000, 3_600_000  # L2 rows
CHUNK = 1 << 20


def _run(*args: str) -> dict:
    out = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, check=True, timeout=900)
    lines = out.stdout.strip().splitlines()
    return json.loads(lines[-1]) if lines else {}


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    root = tmp_path_factory.mktemp("tardis_soak")
    _run("make", str(root / "short"), str(SHORT))
    _run("make", str(root / "long"), str(LONG))
    return root / "short", root / "long"


def test_streamed_tardis_memory_is_flat(recordings):
    short_dir, long_dir = recordings
    short = _run("stream", str(short_dir), str(CHUNK))
    long = _run("stream", str(long_dir), str(CHUNK))
    whole = _run("whole", str(long_dir))
    part_bytes = long["event_bytes"] // long["parts"]
    rss = long["rss_samples"]
    third = len(rss) // 3
    middle, last = max(rss[third:2 * third]), max(rss[2 * third:])
    m = PerfManifest(name="tardis_stream")
    strip = {"rss_samples"}
    m.notes.update({"chunk_bytes": CHUNK, "short": {k: v for k, v in short.items() if k not in strip},
                    "long": {k: v for k, v in long.items() if k not in strip},
                    "whole_long": {k: v for k, v in whole.items() if k not in strip},
                    "long_rss_samples_mb": [x >> 20 for x in rss[:: max(1, len(rss) // 60)]],
                    "long_rss_middle_third_peak": middle, "long_rss_last_third_peak": last,
                    "part_record_bytes": part_bytes})
    m.add_throughput("tardis_stream_long_records", long["records"], long["seconds"], unit="records/s")
    m.add_throughput("tardis_whole_long_records", whole["records"], whole["seconds"], unit="records/s")
    path = m.write(PERF_DIR / "tardis_stream.json")
    print(f"\ntardis stream: {long['file_bytes'] / 2**20:,.0f} MiB of files ({long['parts']} parts, "
          f"{long['event_bytes'] / 2**20:,.0f} MiB of records), peak RSS {long['peak_rss'] / 2**20:,.0f} MiB "
          f"(short {short['peak_rss'] / 2**20:,.0f} MiB, whole-file load {whole['peak_rss'] / 2**20:,.0f} MiB); {path}")
    assert long["records"] == whole["records"] and long["event_bytes"] == whole["event_bytes"]
    assert long["file_bytes"] >= 50 * CHUNK and long["parts"] > 50
    # flat: the long read's peak is the short one's within a few parts' records, far below its records
    assert long["peak_rss"] - short["peak_rss"] < 8 * part_bytes
    assert long["peak_rss"] < whole["peak_rss"] - long["event_bytes"] // 2
    assert last - middle < 2 * part_bytes, (middle >> 20, last >> 20, part_bytes >> 20)
