"""Inference latency for a 500-tree depth-6 XGBoost model trained on real BTCUSDT feature rows
(label: sign of the mid change 50 rows ahead): batch-1 p50/p99/p99.9 and batch-1024 throughput of

  bot4 tree path        the compiled tree ensemble (core/inference), timed in C++ (time_batch1)
  bot4 onnxruntime      the same ONNX file through ONNX Runtime's C API (1 intra-op thread), in C++
  onnxruntime Python    InferenceSession.run, 1 intra-op thread, timed from Python
  xgboost inplace       Booster.inplace_predict, nthread=1, timed from Python

plus the tree path's batch kernels at every SIMD level. Probabilities are checked to agree before
anything is timed. Figures go to build/perf/inference.json. The gate is the same-run ratio of the
tree path to the best ONNX Runtime configuration (target over 6x, gated at 4x); the tree path's
batch-1 p50 target (<= 2.5 us) is recorded in the manifest's targets, not gated.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
from bot4 import _core
from bot4.perf import PerfManifest, latency_summary

PERF_DIR = Path(os.environ.get("BOT4_PERF_DIR", Path(__file__).resolve().parents[1] / "build" / "perf"))
HORIZON = 50
N_TREES, DEPTH = 500, 6
BATCH1_ROWS = 2000       # distinct real rows cycled through batch-1 timing
BATCH = 1024


@pytest.fixture(scope="module")
def setup(reference_data):
    import bot4.features
    import bot4.models
    import onnxruntime as ort
    import xgboost as xgb
    from onnxmltools.convert import convert_xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType

    fs = bot4.features.compute(reference_data)
    mid = fs.column("mid_price")
    change = mid[HORIZON:] - mid[:-HORIZON]
    keep = np.isfinite(change) & (change != 0)
    X = np.ascontiguousarray(fs.matrix[:-HORIZON][keep], dtype=np.float32)
    y = (change[keep] > 0).astype(np.int64)
    cut = int(0.7 * len(X))
    clf = xgb.XGBClassifier(n_estimators=N_TREES, max_depth=DEPTH, learning_rate=0.05, tree_method="hist",
                            n_jobs=2, random_state=0).fit(X[:cut], y[:cut])
    data = convert_xgboost(clf, initial_types=[("input", FloatTensorType([None, X.shape[1]]))],
                           target_opset=15).SerializeToString()
    X_test = X[cut:]
    rows = np.ascontiguousarray(np.resize(X_test, (max(BATCH1_ROWS, BATCH), X.shape[1])))
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
    lib = bot4.models.find_onnxruntime_library()
    tree = _core.inference.Model.from_bytes(data, X.shape[1])
    ort_core = _core.inference.Model.from_bytes(data, X.shape[1], ort_library=lib, force_ort=True) if lib else None
    booster = clf.get_booster()
    booster.set_param({"nthread": 1})
    return {"X_test": X_test, "rows": rows, "clf": clf, "booster": booster, "sess": sess, "tree": tree,
            "ort_core": ort_core, "n_features": X.shape[1]}


def _py_batch1(fn, rows, n):
    out = np.empty(n, dtype=np.int64)
    for i in range(n):
        r = rows[i % len(rows)][None, :]
        t0 = time.perf_counter_ns()
        fn(r)
        out[i] = time.perf_counter_ns() - t0
    return out


def _py_batch(fn, batch, repeats):
    out = np.empty(repeats, dtype=np.int64)
    for i in range(repeats):
        t0 = time.perf_counter_ns()
        fn(batch)
        out[i] = time.perf_counter_ns() - t0
    return out


def test_inference_latency(setup):
    s = setup
    X_test, rows, sess, booster = s["X_test"], s["rows"], s["sess"], s["booster"]
    tree, ort_core = s["tree"], s["ort_core"]
    # correctness first
    p_tree = tree.predict_proba(X_test)
    p_ort = sess.run(None, {"input": X_test})[1][:, 1]
    p_xgb = s["clf"].predict_proba(X_test)[:, 1]
    parity = {"tree_vs_onnxruntime": float(np.abs(p_tree - p_ort).max()),
              "tree_vs_xgboost": float(np.abs(p_tree - p_xgb).max())}
    assert parity["tree_vs_onnxruntime"] <= 1e-6 and parity["tree_vs_xgboost"] <= 1e-6
    if ort_core is not None:
        parity["ort_capi_vs_onnxruntime"] = float(np.abs(ort_core.predict_proba(X_test) - p_ort).max())
        assert parity["ort_capi_vs_onnxruntime"] <= 1e-6

    manifest = PerfManifest(name="inference")
    batch = np.ascontiguousarray(rows[:BATCH])
    results = {}

    tree.time_batch1(rows[:200], 2)  # warm-up
    results["bot4 tree"] = (tree.time_batch1(rows[:BATCH1_ROWS], 5), tree.time_batch(batch, 30))
    if ort_core is not None:
        ort_core.time_batch1(rows[:100], 1)
        results["bot4 onnxruntime (C API)"] = (ort_core.time_batch1(rows[:BATCH1_ROWS], 2), ort_core.time_batch(batch, 15))
    run = lambda m: sess.run(["probabilities"], {"input": m})
    _py_batch1(run, rows, 200)
    results["onnxruntime Python"] = (_py_batch1(run, rows, 4000), _py_batch(run, batch, 15))
    inplace = lambda m: booster.inplace_predict(m)
    _py_batch1(inplace, rows, 20)
    results["xgboost inplace_predict"] = (_py_batch1(inplace, rows, 600), _py_batch(inplace, batch, 5))

    lines = [f"{'engine':28s} {'b1 p50 us':>10s} {'p99 us':>9s} {'p99.9 us':>9s} {'b1024 rows/s':>14s}"]
    for name, (b1, bt) in results.items():
        key = name.split(" (")[0].replace(" ", "_")
        summ = manifest.add_latency(f"{key}.batch1", b1)
        manifest.add_latency(f"{key}.batch{BATCH}", bt)
        rate = BATCH / (np.median(bt) * 1e-9)
        manifest.throughput[f"{key}.batch{BATCH}"] = {"items": BATCH, "seconds_median": float(np.median(bt) * 1e-9),
                                                     "rate": float(rate), "unit": "rows/s"}
        lines.append(f"{name:28s} {summ['p50'] / 1e3:10.2f} {summ['p99'] / 1e3:9.2f} {summ['p999'] / 1e3:9.2f} {rate:14,.0f}")

    # Batch kernels of the tree path at every SIMD level (predict() uses the scalar kernel).
    clean = np.ascontiguousarray(np.nan_to_num(batch, nan=0.0))
    level_rates = {}
    for level in _core.simd.available_levels():
        tree.predict_proba_level(clean, level)
        times = []
        for _ in range(7):
            t0 = time.perf_counter_ns()
            tree.predict_proba_level(clean, level)
            times.append(time.perf_counter_ns() - t0)
        level_rates[level] = BATCH / (np.median(times) * 1e-9)
        lines.append(f"  tree batch kernel {level:9s} {'':>29s} {level_rates[level]:14,.0f}")
    table = "\n".join(lines)
    print("\n" + table)

    b1_tree = latency_summary(results["bot4 tree"][0])
    b1_ortpy = latency_summary(results["onnxruntime Python"][0])
    manifest.notes.update({"model": f"xgboost {N_TREES} trees depth {DEPTH}, {s['n_features']} features, onnxmltools opset 15",
                           "parity": parity, "simd_batch_rows_per_s": level_rates,
                           "batch1_rows": BATCH1_ROWS, "table": table,
                           "speedup_tree_vs_onnxruntime_python_p50": b1_ortpy["p50"] / b1_tree["p50"],
                           "target_tree_batch1_p50_us": 2.5})
    path = manifest.write(PERF_DIR / "inference.json")
    print(f"perf manifest written to {path}")
    # Same-run gate: the tree path against the best ONNX Runtime configuration measured here
    # (target over 6x; gated at 4x). The absolute 2.5 us target is recorded, not gated.
    ort_p50 = [b1_ortpy["p50"]]
    if "bot4 onnxruntime (C API)" in results:
        ort_p50.append(latency_summary(results["bot4 onnxruntime (C API)"][0])["p50"])
    speedup = min(ort_p50) / b1_tree["p50"]
    manifest.add_target("tree_batch1_p50_ns", b1_tree["p50"], 2_500, "lower")
    manifest.add_target("tree_vs_best_onnxruntime_batch1_p50", speedup, 6.0, "higher")
    manifest.write(PERF_DIR / "inference.json")
    assert speedup >= 4.0, f"tree path only {speedup:.2f}x the best ONNX Runtime batch-1 p50"
