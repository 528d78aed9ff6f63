"""Fuzz the model loader: bot4.models.load on a model directory whose model.onnx is the input
(the sidecar's SHA-256 is recomputed, so the bytes reach the core's ONNX reader and tree path),
then predict_proba on a few rows. Refusals are bot4.errors.ModelError; anything else, a crash or
a hang is a finding. Seeds: a small XGBoost model exported the way `bot4 train` does.

    python fuzz/fuzz_model.py -max_total_time=30      # bounded (CI)
    python fuzz/fuzz_model.py -runs=1000000           # >= 1M inputs
"""

import hashlib
import json

import numpy as np

import bot4.models
from bot4.errors import Bot4Error

import _harness

N_FEATURES = 4
_ROWS = np.array([[0.0, 1.0, -1.0, 0.5], [np.nan, 2.0, 0.0, -3.0], [1e30, -1e30, 0.0, 0.0]], np.float32)


def seeds() -> list[bytes]:
    import xgboost as xgb
    from onnxmltools.convert import convert_xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType

    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, N_FEATURES)).astype(np.float32)
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
    out = []
    for depth, trees in ((2, 3), (3, 8)):
        clf = xgb.XGBClassifier(n_estimators=trees, max_depth=depth, n_jobs=1, random_state=0).fit(X, y)
        onx = convert_xgboost(clf, initial_types=[("input", FloatTensorType([None, N_FEATURES]))], target_opset=15)
        out.append(onx.SerializeToString())
    return out


_DIR = None


def one_input(data: bytes) -> None:
    global _DIR
    if _DIR is None:
        _DIR = _harness.scratch("model")
        _DIR.mkdir(exist_ok=True)
    (_DIR / "model.onnx").write_bytes(data)
    (_DIR / "model.json").write_text(json.dumps({
        "model_file": "model.onnx", "sha256": hashlib.sha256(data).hexdigest(), "n_features": N_FEATURES}))
    try:
        model = bot4.models.load(_DIR, engine="tree")
    except Bot4Error:
        return
    p = model.predict_proba(_ROWS)
    if not np.all((p >= 0) & (p <= 1)):  # a loaded classifier returns probabilities
        raise AssertionError(f"predict_proba outside [0, 1]: {p}")


if __name__ == "__main__":
    _harness.main(__file__, seeds, one_input)
