"""bot4.models.load: integrity checks, refusals naming their cause, both engines, ModelSlot."""

from __future__ import annotations

import json

import bot4.models
import numpy as np
import onnx
import pytest
from bot4 import _core
from bot4.errors import ModelError
from onnx import TensorProto, helper, numpy_helper

from tests.inference.conftest import ort_proba, write_model_dir

Model = _core.inference.Model


@pytest.fixture()
def model_dir(tmp_path, xgb_model, feature_rows):
    _, data, _, _ = xgb_model
    return write_model_dir(tmp_path / "m", data, feature_rows[2])


def _mlp_bytes(n_features: int, seed: int = 0) -> bytes:
    """A small non-tree model (MLP: MatMul-Add-Relu-MatMul-Sigmoid) built with onnx.helper."""
    rng = np.random.default_rng(seed)
    w1 = (rng.normal(size=(n_features, 16)) * 0.1).astype(np.float32)
    b1 = rng.normal(size=16).astype(np.float32)
    w2 = (rng.normal(size=(16, 1)) * 0.3).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["input", "w1"], ["h"]), helper.make_node("Add", ["h", "b1"], ["hb"]),
             helper.make_node("Relu", ["hb"], ["r"]), helper.make_node("MatMul", ["r", "w2"], ["z"]),
             helper.make_node("Sigmoid", ["z"], ["p"])]
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, n_features])],
                              [helper.make_tensor_value_info("p", TensorProto.FLOAT, [None, 1])],
                              [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(b1, "b1"),
                               numpy_helper.from_array(w2, "w2")])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m.SerializeToString()


def test_load_model_dir(model_dir, xgb_model, feature_rows):
    clf, data, _, X_test = xgb_model
    model = bot4.models.load(model_dir, check_features=True)
    assert model.kind == "tree" and model.sidecar["n_features"] == X_test.shape[1]
    assert model.feature_names == feature_rows[2]
    p = model.predict_proba(X_test)
    assert np.abs(p - ort_proba(data, X_test)).max() <= 1e-6
    assert np.abs(p - clf.predict_proba(X_test)[:, 1]).max() <= 1e-6
    assert model.predict_one(X_test[0]) == p[0]


def test_forced_onnxruntime_path_matches_tree_path(model_dir, xgb_model):
    _, data, _, X_test = xgb_model
    assert bot4.models.find_onnxruntime_library(), "onnxruntime wheel has libonnxruntime"
    tree = bot4.models.load(model_dir)
    ort_model = bot4.models.load(model_dir, engine="onnxruntime")
    assert ort_model.kind == "onnxruntime"
    p_ort = ort_model.predict_proba(X_test)
    assert np.abs(p_ort - tree.predict_proba(X_test)).max() <= 1e-6
    assert np.abs(p_ort - ort_proba(data, X_test)).max() <= 1e-7
    assert abs(ort_model.predict_one(X_test[3]) - p_ort[3]) <= 1e-7


def test_non_tree_model_runs_on_onnxruntime(tmp_path, feature_rows):
    X, _, names = feature_rows
    data = _mlp_bytes(X.shape[1])
    calib = ([0.2, 0.5, 0.8], [0.1, 0.5, 0.95])
    model = bot4.models.load(write_model_dir(tmp_path / "mlp", data, names, calibration=calib))
    assert model.kind == "onnxruntime"
    Xc = np.ascontiguousarray(np.nan_to_num(X[:500], nan=0.0))
    raw = model.raw_proba(Xc)
    assert np.abs(raw - ort_proba(data, Xc)).max() <= 1e-7
    np.testing.assert_allclose(model.predict_proba(Xc), np.interp(raw, *calib), rtol=0, atol=1e-12)


def test_unsupported_operator_on_forced_tree_path(tmp_path, feature_rows):
    data = _mlp_bytes(len(feature_rows[2]))
    with pytest.raises(ModelError, match="unsupported operator 'MatMul'"):
        bot4.models.load(write_model_dir(tmp_path / "mlp", data, feature_rows[2]), engine="tree")
    with pytest.raises(ModelError, match="unsupported operator 'MatMul'.*ONNX Runtime path is not available"):
        bot4.models.load_bytes(data, len(feature_rows[2]), ort_library="")


def test_tampered_file_refused(model_dir):
    path = model_dir / "model.onnx"
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    path.write_bytes(bytes(raw))
    with pytest.raises(ModelError, match="SHA-256 mismatch"):
        bot4.models.load(model_dir)


def test_truncated_file_refused(model_dir):
    path = model_dir / "model.onnx"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ModelError, match="SHA-256 mismatch"):
        bot4.models.load(model_dir)


def test_truncated_and_corrupt_bytes_never_crash(xgb_model):
    """With the SHA check bypassed (bytes handed straight to the core), every truncation inside
    the graph is refused as corrupt, and bit flips are either refused or still load: never a
    crash or an out-of-bounds read."""
    _, data, _, X_test = xgb_model
    n = X_test.shape[1]
    cuts = sorted(set(np.linspace(1, len(data) - 1, 400).astype(int)) | {0, 1, 2, 3, len(data) // 2})
    refused = 0
    for cut in cuts:
        try:
            Model.from_bytes(data[:cut], n)
        except ModelError as exc:
            refused += 1
            assert "corrupt ONNX model" in str(exc) or "empty" in str(exc) or "ONNX" in str(exc) or "tree" in str(exc), str(exc)
    assert refused >= len(cuts) - 3, f"only {refused}/{len(cuts)} truncations refused"
    rng = np.random.default_rng(0)
    outcomes = {"refused": 0, "loaded": 0}
    for _ in range(400):
        buf = bytearray(data)
        for pos in rng.integers(0, len(buf), size=int(rng.integers(1, 8))):
            buf[pos] ^= 1 << int(rng.integers(0, 8))
        try:
            m = Model.from_bytes(bytes(buf), n)
            m.predict_proba(X_test[:50])
            outcomes["loaded"] += 1
        except ModelError:
            outcomes["refused"] += 1
    assert outcomes["refused"] > 0
    print("bit flips:", outcomes)


def test_garbage_and_corrupt_messages():
    with pytest.raises(ModelError, match="corrupt ONNX model"):
        Model.from_bytes(b"\xff" * 64, 3)
    with pytest.raises(ModelError, match="empty"):
        Model.from_bytes(b"", 3)
    with pytest.raises(ModelError, match="length .* past the end"):
        Model.from_bytes(b"\x3a\x7f\x00", 3)  # graph (field 7, len) claiming 127 bytes


def test_feature_count_mismatch(tmp_path, xgb_model, feature_rows):
    _, data, _, _ = xgb_model
    names = feature_rows[2]
    with pytest.raises(ModelError, match="feature-count mismatch"):
        bot4.models.load(write_model_dir(tmp_path / "a", data, names[:-1]))
    with pytest.raises(ModelError, match="feature-count mismatch"):
        bot4.models.load(write_model_dir(tmp_path / "b", data, names), expected_feature_names=names + ["extra"])


def test_feature_name_mismatch(tmp_path, xgb_model, feature_rows):
    _, data, _, _ = xgb_model
    names = list(feature_rows[2])
    names[0], names[1] = names[1], names[0]
    with pytest.raises(ModelError, match="feature-name mismatch at column 0"):
        bot4.models.load(write_model_dir(tmp_path / "a", data, names), check_features=True)


def test_sidecar_problems(tmp_path, model_dir):
    with pytest.raises(ModelError, match="sidecar missing"):
        bot4.models.load(tmp_path / "nowhere")
    (model_dir / "model.json").write_text("{not json")
    with pytest.raises(ModelError, match="not valid JSON"):
        bot4.models.load(model_dir)
    (model_dir / "model.json").write_text(json.dumps({"model_file": "model.onnx", "n_features": 3}))
    with pytest.raises(ModelError, match="'sha256'"):
        bot4.models.load(model_dir)


def test_model_slot_keeps_previous_model(tmp_path, model_dir, xgb_model):
    _, _, _, X_test = xgb_model
    slot = bot4.models.ModelSlot()
    with pytest.raises(ModelError, match="no model loaded"):
        slot.predict_one(X_test[0])
    first = slot.swap(model_dir)
    before = slot.predict_proba(X_test[:20])
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "model.onnx").write_bytes(b"garbage")
    (bad / "model.json").write_text(json.dumps({"model_file": "model.onnx", "sha256": "0" * 64, "n_features": 3}))
    with pytest.raises(ModelError, match="SHA-256 mismatch"):
        slot.swap(bad)
    assert slot.model is first and "SHA-256 mismatch" in slot.last_error
    assert not slot.try_swap(bad)
    np.testing.assert_array_equal(slot.predict_proba(X_test[:20]), before)
