"""The model zoo: each kind trained on real feature rows, exported to ONNX and run through the core
(tree path or ONNX Runtime) with parity to the training framework on the test rows (<= 1e-5)."""

from __future__ import annotations

import numpy as np
import pytest

import bot4.models
from bot4.research import TrainConfig, build_dataset, train, zoo

REF = ("binance_hftbacktest", "usdm", "btcusdt_20240808.gz")
SMALL = TrainConfig(n_estimators=40, max_depth=4)


@pytest.fixture(scope="module")
def ref_data(shared_data):
    from bot4.data import load

    return load(shared_data.joinpath(*REF), progress=False)


@pytest.fixture(scope="module")
def dataset(ref_data):
    from bot4.features import trading_config

    return build_dataset(ref_data, trading_config())


@pytest.mark.parametrize("kind", zoo.KINDS)
def test_export_parity_through_the_core(kind, dataset):
    if kind == "lightgbm":
        pytest.importorskip("lightgbm")
    X_tr, y_tr = dataset.part("train")
    X_te, _ = dataset.part("test")
    assert np.isnan(X_te).any()                       # missing values go through every model
    model = zoo.fit(kind, X_tr, y_tr, zoo.default_params(kind, SMALL))
    data = zoo.export(kind, model, X_tr.shape[1])
    core = bot4.models.load_bytes(data, X_tr.shape[1])
    assert core.kind == ("tree" if kind == "xgboost" else "onnxruntime")
    raw = core.raw_proba(X_te)
    ref = zoo.proba(model, X_te)
    assert np.abs(raw - ref).max() <= 1e-5, np.abs(raw - ref).max()
    assert ref.std() > 1e-3 and np.unique(ref).size > 10     # a fitted model, not a constant


def test_train_pipeline_with_another_model(ref_data, tmp_path):
    result = train(ref_data, TrainConfig(model="logistic"), tmp_path / "m", progress=False)
    side = result.sidecar
    assert side["model"]["kind"] == "logistic" and side["parity"]["max_abs_diff"] <= 1e-5
    model = bot4.models.load(tmp_path / "m")
    X_te = result.dataset.X[result.dataset.test]
    p = model.predict_proba(X_te)
    np.testing.assert_allclose(p, result.calibration.apply(model.raw_proba(X_te)), atol=1e-12)
    assert p.min() > 0 and p.max() < 1


def test_unknown_kind_refused():
    with pytest.raises(ValueError, match="model must be one of"):
        TrainConfig(model="gru")
    with pytest.raises(ValueError, match="unknown model kind"):
        zoo.fit("svm", np.zeros((4, 2)), [0, 1, 0, 1], {})
