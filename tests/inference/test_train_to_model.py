"""The research pipeline's output loaded by the core: bot4.research.train writes model.onnx +
model.json, bot4.models.load verifies and compiles it, and the core's probabilities match xgboost,
onnxruntime and scikit-learn's isotonic transform on real feature rows."""

from __future__ import annotations

import numpy as np
import pytest

from bot4 import models
from bot4.data import load
from bot4.errors import ModelError
from bot4.research.train import TrainConfig, onnx_proba, train

from conftest import REFERENCE


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("model")
    result = train(load(REFERENCE, progress=False), TrainConfig(n_estimators=60, max_depth=5), out,
                   progress=False)
    return result, out


def test_core_matches_xgboost_onnxruntime_and_isotonic(trained):
    from sklearn.isotonic import IsotonicRegression

    result, out = trained
    model = models.load(out)
    assert model.kind == "tree" and model.n_trees == 60
    ds = result.dataset
    X = ds.X[ds.test]
    raw = model.raw_proba(X)
    assert np.abs(raw - result.classifier.predict_proba(X)[:, 1]).max() <= 1e-6
    assert np.abs(raw - onnx_proba(out / "model.onnx", X)).max() <= 1e-6
    # Calibration in the core equals sklearn's transform of the core's raw scores, with the
    # isotonic fit the pipeline made (xgboost's scores on the calibration slice).
    raw_cal = result.classifier.predict_proba(ds.X[ds.calibration])[:, 1]
    iso = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(
        raw_cal.astype(np.float64), ds.y[ds.calibration])
    assert np.abs(model.predict_proba(X) - iso.transform(raw.astype(np.float64))).max() <= 1e-12
    assert model.predict_one(X[0]) == model.predict_proba(X[:1])[0]


def test_tampered_model_is_refused_and_slot_keeps_previous(trained, tmp_path):
    _, out = trained
    slot = models.ModelSlot()
    slot.swap(out)
    before = slot.model
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "model.json").write_bytes((out / "model.json").read_bytes())
    blob = bytearray((out / "model.onnx").read_bytes())
    blob[len(blob) // 2] ^= 0x40
    (bad / "model.onnx").write_bytes(bytes(blob))
    with pytest.raises(ModelError, match="(?i)sha-?256"):
        models.load(bad)
    assert slot.try_swap(bad) is False
    assert slot.model is before
