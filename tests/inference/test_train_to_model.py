"""The research pipeline's output loaded by the core: bot4.research.train writes model.onnx +
model.json, bot4.models.load verifies and compiles it, and the core's probabilities match xgboost,
onnxruntime and scikit-learn's isotonic transform on real feature rows."""

from __future__ import annotations

import numpy as np
import pytest

from bot4 import models
from bot4.data import load
from bot4.errors import ModelError
from bot4.research.calibrators import fit_bounded_isotonic, fit_calibration
from bot4.research.train import TrainConfig, onnx_proba, train
from recordings import BTCUSDT, data_path


@pytest.fixture(scope="module")
def trained(tmp_path_factory, shared_data):
    out = tmp_path_factory.mktemp("model")
    result = train(load(data_path(*BTCUSDT), progress=False), TrainConfig(n_estimators=60, max_depth=5), out,
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
    # Calibration in the core equals the bounded map the pipeline chose and refits from
    # xgboost's scores on the calibration slice (bot4.research.calibrators), applied to the
    # core's raw scores; with the plain isotonic fit, that map is sklearn's transform.
    raw_cal = result.classifier.predict_proba(ds.X[ds.calibration])[:, 1].astype(np.float64)
    chosen = fit_calibration(result.sidecar["calibration_info"]["method"], raw_cal, ds.y[ds.calibration])
    core_p = model.predict_proba(X)
    assert np.abs(core_p - chosen.apply(raw.astype(np.float64))).max() <= 1e-12
    assert core_p.min() > 0 and core_p.max() < 1
    iso = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(raw_cal, ds.y[ds.calibration])
    plain = fit_bounded_isotonic(raw_cal, ds.y[ds.calibration], shrink_rows=0, eps=0)
    q = np.linspace(0, 1, 1001)
    assert np.abs(plain.apply(q) - iso.transform(q)).max() <= 1e-12
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
