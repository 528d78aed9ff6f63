"""A sweep's wall time on a 2-worker dask LocalCluster against one process (bot4.research.sweep),
same grid, same recordings, same run:

  small     max_depth in {4, 6}, 500 trees (the demo model is 500 x 6), threshold 0.55:
            2 configurations x 3 walk-forward folds of the reference BTCUSDT recording = 6 cells
            (each: features, labels, training, calibration, ONNX export, a backtest after fees of
            its test span); 2 rounds
  larger    max_depth in {4, 6} x n_estimators in {500, 1000} on BTCUSDT and ETHUSDT:
            4 configurations x 2 recordings x 3 folds = 24 cells; 1 round
  local     `bot4 sweep --local`: every cell in one process, one thread per cell
  dask      `bot4 sweep --workers 2`: LocalCluster(n_workers=2, threads_per_worker=1, processes)

Each is a fresh `python -m bot4.cli sweep ... --json` process timed from start to exit, so both pay
their imports, the recordings' read and the features (the Dask run once per worker) and the Dask
run its cluster's start; the fastest round of each counts.

Figures -> build/perf/sweep.json. Gates, same run: both workers ran cells; both executors report
the same configurations; dask / local <= 1.75. Loose on purpose: on this shared 2-core VM the two
workers share the cores with whatever else runs, each worker imports bot4 / XGBoost / the ONNX
converters and computes the features itself, and a cell is about a second, so no speed-up is to be
expected. Measured: small 1.18, 1.35, 1.47, 1.23, 0.84 at load averages of 5, 7, 7.8, 3.7, 7;
larger 1.17 at 3.7 (local 25.7 s, dask 30.1 s), 0.77 at 7 (51.1 s, 39.2 s) and 0.60 at 7-9 (81.3 s,
48.6 s), where two worker processes win a larger share of a machine contended by other processes. The figure
follows the neighbours' load more than the executor; a real speed-up needs more cores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from conftest import written_manifest

FOLDS = 3
SMALL = {"grid": "[grid]\nmax_depth = [4, 6]\n[fixed]\nn_estimators = 500\n", "files": ["btcusdt_20240808.gz"],
         "rounds": 2, "gate": 1.75, "configs": 2}
LARGER = {"grid": "[grid]\nmax_depth = [4, 6]\nn_estimators = [500, 1000]\n",
          "files": ["btcusdt_20240808.gz", "ethusdt_20240808.gz"], "rounds": 1, "gate": 1.75, "configs": 4}


@pytest.fixture(scope="module")
def manifest():
    with written_manifest("sweep") as m:
        yield m


def _run(args: list[str]) -> tuple[float, dict]:
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "bot4.cli", "sweep", *args], capture_output=True, text=True,
                          timeout=1800)
    wall = time.perf_counter() - t
    assert proc.returncode == 0, proc.stderr[-2000:]
    return wall, json.loads(proc.stdout)


@pytest.mark.realdata
@pytest.mark.parametrize("name,case", [("small", SMALL), ("larger", LARGER)])
def test_sweep_dask_vs_one_process(shared_data, tmp_path, manifest, name, case):
    pytest.importorskip("dask.distributed")
    pytest.importorskip("pandas")
    from conftest import REFERENCE_FILE

    grid = tmp_path / "grid.toml"
    grid.write_text(case["grid"])
    files = [str(REFERENCE_FILE.parent / f) for f in case["files"]]
    common = ["--data", *files, "--grid", str(grid), "--folds", str(FOLDS), "--json", "-q"]
    walls: dict[str, list] = {"local": [], "dask": []}
    docs = {}
    for _ in range(case["rounds"]):
        for mode, extra in (("local", ["--local"]), ("dask", ["--workers", "2"])):
            wall, doc = _run(common + extra)
            walls[mode].append(wall)
            docs[mode] = doc
    n_cells = case["configs"] * len(files) * FOLDS
    assert docs["local"]["failed_cells"] == 0 and docs["local"]["cells"] == n_cells
    # the same configurations, figure for figure, whichever executor ran them
    assert docs["local"]["configurations"] == docs["dask"]["configurations"]
    per_worker = docs["dask"]["executor"]["cells_per_worker"]
    assert len(per_worker) == 2 and sum(per_worker.values()) == n_cells, per_worker
    local_s, dask_s = min(walls["local"]), min(walls["dask"])
    manifest.add_throughput(f"{name}_local_process", n_cells, local_s, unit="cells/s")
    manifest.add_throughput(f"{name}_dask_2_workers_process", n_cells, dask_s, unit="cells/s")
    manifest.add_throughput(f"{name}_local_cells", n_cells, docs["local"]["seconds"]["run"], unit="cells/s")
    manifest.add_throughput(f"{name}_dask_2_workers_cells", n_cells, docs["dask"]["seconds"]["run"], unit="cells/s")
    ratio = dask_s / local_s
    manifest.add_target(f"{name}_dask_over_local", ratio, case["gate"], "lower")
    manifest.notes[name] = dict(grid=case["grid"], folds=FOLDS, recordings=files, cells=n_cells, rounds=case["rounds"],
                                walls=walls, cells_per_worker=per_worker,
                                cluster_start_seconds=docs["dask"]["executor"]["start_seconds"],
                                cores=os.cpu_count(), load_average=os.getloadavg(), speedup=local_s / dask_s)
    print(f"\nsweep {name}, {n_cells} cells, process wall (min of {case['rounds']}): local {local_s:.1f} s, dask 2 "
          f"workers {dask_s:.1f} s (cluster start {docs['dask']['executor']['start_seconds']:.1f} s); cells alone: "
          f"local {docs['local']['seconds']['run']:.1f} s, dask {docs['dask']['seconds']['run']:.1f} s; "
          f"dask/local {ratio:.2f}; load {os.getloadavg()[0]:.1f}")
    assert ratio <= case["gate"], f"dask/local {ratio:.2f} > {case['gate']}"
