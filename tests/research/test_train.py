"""`bot4.research.train`: dataset split, XGBoost -> ONNX export, sidecar, parity, calibration, CLI."""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from bot4.research import TrainConfig, build_dataset, train
from bot4.research.calibration import IsotonicTable

REF = ("binance_hftbacktest", "usdm", "btcusdt_20240808.gz")
SMALL = TrainConfig(n_estimators=50, max_depth=4)


@pytest.fixture(scope="module")
def ref_data(shared_data):
    from bot4.data import load

    return load(shared_data.joinpath(*REF))


@pytest.fixture(scope="module")
def trained(ref_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("model")
    return train(ref_data, SMALL, out, progress=False, source="btcusdt_20240808.gz")


def _walk_numbers(obj):
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _walk_numbers(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _walk_numbers(v)
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        yield obj


def test_default_config_is_500_trees_depth_6():
    c = TrainConfig()
    assert (c.n_estimators, c.max_depth) == (500, 6)
    assert c.tree_method == "hist" and c.n_jobs == 2
    assert (c.horizon, c.horizon_unit, c.dead_zone_bp) == (100, "events", 0.5)
    with pytest.raises(AttributeError):
        c.n_estimators = 10  # frozen


def test_dataset_split_is_purged_and_labelled(ref_data):
    ds = build_dataset(ref_data, horizon=100)
    assert ds.X.dtype == np.float32 and ds.X.shape[1] == len(ds.names) == 88
    assert np.isnan(ds.X).any()  # NaN kept for xgboost's missing-value handling
    assert set(np.unique(ds.y).tolist()) == {0, 1}
    idx = np.concatenate([ds.train, ds.calibration, ds.test])
    np.testing.assert_array_equal(idx, np.arange(ds.y.size))
    assert np.all(np.diff(ds.rows) > 0) and np.all(np.diff(ds.timestamps) >= 0)
    ranges = ds.row_ranges()
    # the label window of the last train row [i, i + 100] must end before calibration's first row
    assert ranges["calibration"][0] - ranges["train"][1] > 100
    assert ranges["test"][0] - ranges["calibration"][1] > 100
    assert all(g >= 100 for g in ds.gaps)
    # the same labels as forward_labels on the full timeline (dropping happened after the split)
    from bot4.research import forward_labels

    from bot4.features import compute

    fs = compute(ref_data)
    label, _ = forward_labels(fs.timestamps, fs.column("mid_price"), 100, 0.5)
    np.testing.assert_array_equal(label[ds.rows], ds.y)
    np.testing.assert_array_equal(fs.matrix[ds.rows].astype(np.float32), ds.X)


def test_sidecar_contents(trained):
    from bot4.features import feature_names

    side = json.loads(trained.sidecar_path.read_text())
    model_bytes = trained.model_path.read_bytes()
    assert side["format"] == "bot4-model/1" and side["model_file"] == "model.onnx"
    assert trained.model_path.name == side["model_file"]
    assert side["sha256"] == hashlib.sha256(model_bytes).hexdigest()
    assert side["feature_names"] == feature_names()
    assert side["n_features"] == len(feature_names())
    assert side["label"]["horizon"] == 100 and side["label"]["unit"] == "events"
    assert side["label"]["dead_zone_bp"] == 0.5 and "mid" in side["label"]["definition"]
    assert side["model"]["kind"] == "xgboost"
    assert (side["model"]["n_estimators"], side["model"]["max_depth"]) == (50, 4)
    assert set(side["versions"]) == {"xgboost", "onnx", "onnxmltools", "onnxruntime", "bot4"}
    assert side["trained_on"] == "btcusdt_20240808.gz"
    spans = [side["spans"][k] for k in ("train", "calibration", "test")]
    for t0, t1, rows in spans:
        assert rows > 0 and t0 <= t1
    assert spans[0][1] < spans[1][0] and spans[1][1] < spans[2][0]  # ordered, non-overlapping
    ranges = side["split"]["row_ranges"]
    assert ranges["calibration"][0] - ranges["train"][1] > 100   # gap >= horizon rows
    assert ranges["test"][0] - ranges["calibration"][1] > 100
    assert [s[2] for s in spans] == [trained.dataset.train.size, trained.dataset.calibration.size,
                                     trained.dataset.test.size]
    # metrics finite (None is reserved for undefined values, e.g. AUC with one class)
    for part in ("raw", "calibrated"):
        m = side["metrics"]["test"][part]
        for key in ("auc", "brier", "log_loss", "ece", "mce"):
            assert m[key] is not None and math.isfinite(m[key]), (part, key)
        assert 0.0 <= m["auc"] <= 1.0 and 0.0 <= m["ece"] <= 1.0
        assert sum(m["reliability"]["count"]) == m["rows"] == trained.dataset.test.size
    assert all(math.isfinite(v) for v in _walk_numbers(side))
    IsotonicTable.from_dict(side["calibration"])  # a valid table


def test_onnx_matches_xgboost_on_real_rows(trained):
    import onnxruntime as ort

    ds = trained.dataset
    X = ds.X  # every labelled row of the reference file: train, calibration and test
    X_test = ds.part("test")[0]
    assert np.isnan(X_test).any()  # the missing-value paths are exercised
    sess = ort.InferenceSession(trained.model_path.read_bytes(), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    assert names == ["label", "probabilities"]
    label, proba = sess.run(None, {"input": X})
    p_xgb = trained.classifier.predict_proba(X)[:, 1]
    delta = np.abs(proba[:, 1].astype(np.float64) - p_xgb.astype(np.float64))
    # measured here on all 4,546 labelled rows: max 1.6e-7 (50x4), 5.4e-7 (500x6); METHODS.md §12: 4e-7
    assert delta.max() <= 1e-6, delta.max()
    assert trained.sidecar["parity"]["max_abs_diff"] <= 1e-6
    ambiguous = np.abs(p_xgb - 0.5) < 1e-6
    np.testing.assert_array_equal(label[~ambiguous], (p_xgb[~ambiguous] > 0.5).astype(np.int64))


def test_calibration_table_is_the_chosen_bounded_map(trained):
    from bot4.research.calibrators import fit_calibration

    ds = trained.dataset
    side = json.loads(trained.sidecar_path.read_text())
    info = side["calibration_info"]
    X_cal, y_cal = ds.part("calibration")
    p_cal = trained.classifier.predict_proba(X_cal)[:, 1].astype(np.float64)  # fitted in float64
    ref = fit_calibration(info["method"], p_cal, y_cal)
    table = IsotonicTable.from_dict(side["calibration"])
    np.testing.assert_allclose(table.x, ref.table.x, atol=1e-12, rtol=0)
    np.testing.assert_allclose(table.y, ref.table.y, atol=1e-12, rtol=0)
    # bounded: no exact 0 or 1, at most half an observation of the calibration set from either end
    eps = info["eps"]
    assert eps == pytest.approx(1 / (2 * ds.calibration.size))
    assert table.y.min() >= eps and table.y.max() <= 1 - eps
    grid = np.linspace(-0.1, 1.1, 2001)
    q = table.apply(grid)
    assert np.all((q > 0) & (q < 1))
    assert trained.metrics["test"]["calibrated"]["log_loss"] < 1.0


def test_cli_train_on_embedded_stream(tmp_path):
    out = tmp_path / "m"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [*sys.path])))
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "bot4.cli", "train", "--events", "200000", "--trees", "20",
                           "--depth", "3", "--out", str(out), "--json"],
                          capture_output=True, text=True, timeout=120, env=env)
    seconds = time.perf_counter() - started
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert seconds < 30, seconds
    assert summary["model"] == str(out / "model.onnx") and (out / "model.onnx").is_file()
    side = json.loads((out / "model.json").read_text())
    assert side["sha256"] == hashlib.sha256((out / "model.onnx").read_bytes()).hexdigest()
    assert side["model"]["n_estimators"] == 20 and side["model"]["max_depth"] == 3
    assert "embedded default market stream" in side["trained_on"]
    assert all(summary["rows"][k] > 1000 for k in ("train", "calibration", "test"))
    assert summary["parity"]["max_abs_diff"] <= 1e-6
    assert summary["metrics"]["test"]["raw"]["auc"] is not None


def test_cli_train_rejects_bad_args(tmp_path, capsys):
    from bot4.cli import main

    assert main(["train", "--events", "20000", "--trees", "5", "--horizon", "0",
                 "--out", str(tmp_path / "x"), "--json"]) == 2
    err = capsys.readouterr().err
    assert "argument --horizon: must be at least 1, got 0" in err and len(err.strip().splitlines()) == 1
    assert main(["train", "--json"]) == 2  # --out is required
    assert "--out" in capsys.readouterr().err


def test_dataset_ns_horizon_gap(ref_data):
    h = 5_000_000_000  # 5 s
    ds = build_dataset(ref_data, horizon=h, horizon_unit="ns")
    assert ds.label["unit"] == "ns"
    # the last train row's window [t_i, t_i + H] ends before the first calibration row's time
    assert ds.spans["calibration"][0] >= ds.spans["train"][1] + h
    assert ds.spans["test"][0] >= ds.spans["calibration"][1] + h
