"""A sweep's wall time on a 2-worker dask LocalCluster against one process (bot4.research.sweep),
same grid, same recording, same run:

  grid      max_depth in {4, 6}, 500 trees (the demo model is 500 x 6), threshold 0.55:
            2 configurations x 3 walk-forward folds of the reference BTCUSDT recording = 6 cells
            (each: features, labels, training, calibration, ONNX export, a backtest after fees of
            its test span)
  local     `bot4 sweep --local`: every cell in one process, one thread per cell
  dask      `bot4 sweep --workers 2`: LocalCluster(n_workers=2, threads_per_worker=1, processes)

Each is a fresh `python -m bot4.cli sweep ... --json` process timed from start to exit, so both pay
their imports, the recording's read and the features (the Dask run once per worker) and the Dask
run its cluster's start. ROUNDS alternating rounds; the fastest of each counts.

Figures -> build/perf/sweep.json. Gates: both workers ran cells, and dask / local <= 1.75 in the
same run. Loose on purpose: on this shared 2-core VM the two workers share the cores with whatever
else runs, each worker imports bot4 / XGBoost / the ONNX converters and computes the features
itself, and a cell of this grid is about a second, so no speed-up is to be expected here: measured
1.18 at a load average of 5, 1.35 at 7 and 1.47 at 7.8. The Dask executor is for more cores than
this machine has. Both runs must report the same configurations.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot4.perf import PerfManifest

PERF_DIR = Path(os.environ.get("BOT4_PERF_DIR", Path(__file__).resolve().parents[1] / "build" / "perf"))
GATE = 1.75
GRID = "[grid]\nmax_depth = [4, 6]\n[fixed]\nn_estimators = 500\n"
FOLDS = 3
ROUNDS = 2


def _run(args: list[str]) -> tuple[float, dict]:
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "bot4.cli", "sweep", *args], capture_output=True, text=True,
                          timeout=900)
    wall = time.perf_counter() - t
    assert proc.returncode == 0, proc.stderr[-2000:]
    return wall, json.loads(proc.stdout)


@pytest.mark.realdata
def test_sweep_dask_vs_one_process(shared_data, tmp_path):
    pytest.importorskip("dask.distributed")
    pytest.importorskip("pandas")
    from conftest import REFERENCE_FILE

    grid = tmp_path / "grid.toml"
    grid.write_text(GRID)
    common = ["--data", str(REFERENCE_FILE), "--grid", str(grid), "--folds", str(FOLDS), "--json", "-q"]
    walls: dict[str, list] = {"local": [], "dask": []}
    docs = {}
    for _ in range(ROUNDS):
        for mode, extra in (("local", ["--local"]), ("dask", ["--workers", "2"])):
            wall, doc = _run(common + extra)
            walls[mode].append(wall)
            docs[mode] = doc
    assert docs["local"]["failed_cells"] == 0 and docs["local"]["cells"] == 2 * FOLDS
    # the same configurations, figure for figure, whichever executor ran them
    assert docs["local"]["configurations"] == docs["dask"]["configurations"]
    per_worker = docs["dask"]["executor"]["cells_per_worker"]
    assert len(per_worker) == 2 and sum(per_worker.values()) == 2 * FOLDS, per_worker
    local_s, dask_s = min(walls["local"]), min(walls["dask"])
    cells = docs["dask"]["cells"]
    m = PerfManifest(name="sweep")
    m.add_throughput("local_process", cells, local_s, unit="cells/s")
    m.add_throughput("dask_2_workers_process", cells, dask_s, unit="cells/s")
    m.add_throughput("local_cells", cells, docs["local"]["seconds"]["run"], unit="cells/s")
    m.add_throughput("dask_2_workers_cells", cells, docs["dask"]["seconds"]["run"], unit="cells/s")
    ratio = dask_s / local_s
    m.add_target("dask_over_local", ratio, GATE, "lower")
    m.notes.update(grid=GRID, folds=FOLDS, recording=str(REFERENCE_FILE), cells=cells, rounds=ROUNDS,
                   walls=walls, cells_per_worker=per_worker, cluster_start_seconds=docs["dask"]["executor"]["start_seconds"],
                   cores=os.cpu_count(), load_average=os.getloadavg(), speedup=local_s / dask_s)
    path = m.write(PERF_DIR / "sweep.json")
    print(f"\nsweep {cells} cells, process wall (min of {ROUNDS}): local {local_s:.1f} s, dask 2 workers "
          f"{dask_s:.1f} s (cluster start {docs['dask']['executor']['start_seconds']:.1f} s); cells alone: local "
          f"{docs['local']['seconds']['run']:.1f} s, dask {docs['dask']['seconds']['run']:.1f} s; "
          f"dask/local {ratio:.2f}; load {os.getloadavg()[0]:.1f}; {path}")
    assert ratio <= GATE, f"dask/local {ratio:.2f} > {GATE}"
