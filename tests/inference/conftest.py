"""Fixtures for the inference tests: real feature rows and small XGBoost models exported to ONNX
with onnxmltools (target_opset 15, METHODS.md §12)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from recordings import BTCUSDT, data_path

REFERENCE = data_path(*BTCUSDT)
HORIZON = 50  # label: sign of the mid change HORIZON feature rows ahead


@pytest.fixture(scope="session")
def feature_rows(shared_data):
    """(X float32 [n, F], y int [n], names) on real BTCUSDT feature rows; NaN kept where undefined."""
    import bot4.data
    import bot4.features

    assert REFERENCE.exists(), f"reference recording missing: {REFERENCE}"
    fs = bot4.features.compute(bot4.data.load(REFERENCE))
    mid = fs.column("mid_price")
    change = mid[HORIZON:] - mid[:-HORIZON]
    keep = np.isfinite(change) & (change != 0)
    X = np.ascontiguousarray(fs.matrix[:-HORIZON][keep], dtype=np.float32)
    y = (change[keep] > 0).astype(np.int64)
    return X, y, list(fs.names)


def export_xgb(clf, n_features: int) -> bytes:
    from onnxmltools.convert import convert_xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType

    onx = convert_xgboost(clf, initial_types=[("input", FloatTensorType([None, n_features]))], target_opset=15)
    return onx.SerializeToString()


def train_xgb(X, y, n_estimators=60, max_depth=6, **kw):
    import xgboost as xgb

    params = {"n_estimators": n_estimators, "max_depth": max_depth, "learning_rate": 0.1, "tree_method": "hist",
              "n_jobs": 2, "random_state": 0}
    params.update(kw)
    clf = xgb.XGBClassifier(**params)
    clf.fit(X, y)
    return clf


@pytest.fixture(scope="session")
def xgb_model(feature_rows):
    """(classifier, onnx bytes, X_train, X_test) trained on the first 70% of rows."""
    X, y, _ = feature_rows
    cut = int(0.7 * len(X))
    clf = train_xgb(X[:cut], y[:cut])
    return clf, export_xgb(clf, X.shape[1]), X[:cut], X[cut:]


def ort_proba(onnx_bytes: bytes, X: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(onnx_bytes, so, providers=["CPUExecutionProvider"])
    out = sess.run(None, {sess.get_inputs()[0].name: np.ascontiguousarray(X, dtype=np.float32)})
    probs = out[1] if len(out) > 1 else out[0]
    probs = np.asarray(probs, dtype=np.float64)
    return probs[:, 1] if probs.ndim == 2 and probs.shape[1] == 2 else probs.reshape(-1)


def write_model_dir(directory: Path, onnx_bytes: bytes, feature_names: list[str], calibration=None) -> Path:
    """A model directory in the format bot4.research.train writes (sidecar keys the loader reads)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "model.onnx").write_bytes(onnx_bytes)
    sidecar = {"format": "bot4-model/1", "model_file": "model.onnx",
               "sha256": hashlib.sha256(onnx_bytes).hexdigest(), "feature_names": list(feature_names),
               "n_features": len(feature_names)}
    if calibration is not None:
        sidecar["calibration"] = {"x": [float(v) for v in calibration[0]], "y": [float(v) for v in calibration[1]]}
    (directory / "model.json").write_text(json.dumps(sidecar))
    return directory
