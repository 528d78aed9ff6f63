"""The ONNX Runtime C-API session (core/inference/ort_session.cpp) through its test binding _core.ort.

Models are built in the test (onnx.helper MLP and LSTM, an xgboost classifier converted with
onnxmltools, see ../shared/METHODS.md section 12) and compared with numpy references and with
onnxruntime's own Python API on the same bytes.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from bot4 import _core
from onnx import TensorProto, helper, numpy_helper

OrtSession = _core.ort.OrtSession


@pytest.fixture(scope="module")
def ort_library() -> str:
    capi = Path(os.path.dirname(ort.__file__)) / "capi"
    libs = sorted(capi.glob("libonnxruntime.so*"))
    assert libs, f"no libonnxruntime.so* in {capi}"
    return str(libs[0])


def python_session(model_bytes: bytes, threads: int = 1):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])


# --- models -----------------------------------------------------------------------------------

def mlp_model(n_in=6, hidden=16, n_out=2, seed=0):
    rng = np.random.default_rng(seed)
    w1 = rng.normal(scale=0.5, size=(n_in, hidden)).astype(np.float32)
    b1 = rng.normal(scale=0.1, size=hidden).astype(np.float32)
    w2 = rng.normal(scale=0.5, size=(hidden, n_out)).astype(np.float32)
    b2 = rng.normal(scale=0.1, size=n_out).astype(np.float32)
    nodes = [
        helper.make_node("MatMul", ["x", "W1"], ["h0"]),
        helper.make_node("Add", ["h0", "b1"], ["h1"]),
        helper.make_node("Relu", ["h1"], ["h2"]),
        helper.make_node("MatMul", ["h2", "W2"], ["o0"]),
        helper.make_node("Add", ["o0", "b2"], ["o1"]),
        helper.make_node("Sigmoid", ["o1"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, n_in])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, n_out])],
        [numpy_helper.from_array(a, n) for a, n in ((w1, "W1"), (b1, "b1"), (w2, "W2"), (b2, "b2"))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)

    def forward(x):
        h = np.maximum(x.astype(np.float64) @ w1 + b1, 0.0)
        return 1.0 / (1.0 + np.exp(-(h @ w2 + b2)))

    return model.SerializeToString(), forward


def lstm_model(n_in=5, hidden=4, seed=1):
    """LSTM over a [seq, input] matrix (batch 1): Unsqueeze -> LSTM -> Reshape Y to [seq, H]."""
    rng = np.random.default_rng(seed)
    w = rng.normal(scale=0.4, size=(1, 4 * hidden, n_in)).astype(np.float32)
    r = rng.normal(scale=0.4, size=(1, 4 * hidden, hidden)).astype(np.float32)
    b = rng.normal(scale=0.1, size=(1, 8 * hidden)).astype(np.float32)
    nodes = [
        helper.make_node("Unsqueeze", ["x", "axis1"], ["x3"]),
        helper.make_node("LSTM", ["x3", "W", "R", "B"], ["Y", "Y_h", "Y_c"], hidden_size=hidden,
                         direction="forward"),
        helper.make_node("Reshape", ["Y", "out_shape"], ["h"]),
    ]
    inits = [numpy_helper.from_array(w, "W"), numpy_helper.from_array(r, "R"),
             numpy_helper.from_array(b, "B"),
             numpy_helper.from_array(np.array([1], np.int64), "axis1"),
             numpy_helper.from_array(np.array([-1, hidden], np.int64), "out_shape")]
    graph = helper.make_graph(
        nodes, "lstm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["seq", n_in])],
        [helper.make_tensor_value_info("h", TensorProto.FLOAT, ["seq", hidden])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)

    def forward(x):  # numpy reference, ONNX gate order i, o, f, c
        sig = lambda v: 1.0 / (1.0 + np.exp(-v))
        W, R = w[0].astype(np.float64), r[0].astype(np.float64)
        bias = b[0, :4 * hidden].astype(np.float64) + b[0, 4 * hidden:]
        h = np.zeros(hidden)
        c = np.zeros(hidden)
        out = []
        for xt in x.astype(np.float64):
            g = W @ xt + R @ h + bias
            i, o, f, cc = (g[k * hidden:(k + 1) * hidden] for k in range(4))
            c = sig(f) * c + sig(i) * np.tanh(cc)
            h = sig(o) * np.tanh(c)
            out.append(h)
        return np.array(out)

    return model.SerializeToString(), forward


def xgb_model(n_trees=60, depth=4, n_features=6, seed=3):
    xgboost = pytest.importorskip("xgboost")
    convert = pytest.importorskip("onnxmltools.convert")
    from onnxmltools.convert.common.data_types import FloatTensorType

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(3000, n_features)).astype(np.float32)
    logit = x[:, 0] - 0.5 * x[:, 1] * x[:, 2] + 0.3 * np.sin(3 * x[:, 3]) + rng.normal(scale=0.5, size=len(x))
    y = (logit > 0).astype(int)
    clf = xgboost.XGBClassifier(n_estimators=n_trees, max_depth=depth, learning_rate=0.1,
                                tree_method="hist", random_state=0)
    clf.fit(x, y)
    onx = convert.convert_xgboost(clf, initial_types=[("input", FloatTensorType([None, n_features]))],
                                  target_opset=15)
    return onx.SerializeToString(), clf, x


# --- parity -----------------------------------------------------------------------------------

def test_mlp_matches_numpy_and_onnxruntime(ort_library):
    model, forward = mlp_model()
    s = OrtSession.open(ort_library, model)
    assert s.input_features == 6 and s.input_name == "x" and s.output_name == "y"
    x = np.random.default_rng(10).normal(size=(257, 6)).astype(np.float32)
    p = s.run(x)
    assert p.shape == (257, 2) and p.dtype == np.float32
    assert np.max(np.abs(p - forward(x))) <= 1e-6
    p_py = python_session(model).run(["y"], {"x": x})[0]
    assert np.max(np.abs(p - p_py)) <= 1e-7
    # batch 1, row by row, through the reused (preallocated) tensors
    for i in range(5):
        assert np.array_equal(s.run(x[i:i + 1]), p_py[i:i + 1]) or \
            np.max(np.abs(s.run(x[i:i + 1]) - p_py[i:i + 1])) <= 1e-7


def test_changing_row_counts_reuse_is_correct(ort_library):
    model, forward = mlp_model(seed=5)
    s = OrtSession.open(ort_library, model)
    x = np.random.default_rng(11).normal(size=(40, 6)).astype(np.float32)
    for n in (1, 1, 7, 7, 1, 40, 3, 1, 40):
        p = s.run(np.ascontiguousarray(x[:n]))
        assert p.shape == (n, 2)
        assert np.max(np.abs(p - forward(x[:n]))) <= 1e-6


def test_lstm_matches_onnxruntime_and_numpy(ort_library):
    model, forward = lstm_model()
    s = OrtSession.open(ort_library, model)
    assert s.input_features == 5 and s.output_name == "h"
    sess = python_session(model)
    rng = np.random.default_rng(12)
    for seq in (1, 7, 30):
        x = rng.normal(size=(seq, 5)).astype(np.float32)
        h = s.run(x)
        assert h.shape == (seq, 4)
        h_py = sess.run(["h"], {"x": x})[0]
        assert np.max(np.abs(h - h_py)) <= 1e-7
        assert np.max(np.abs(h - forward(x))) <= 1e-5


def test_symbolic_input_width_reports_zero(ort_library):
    model, _ = mlp_model()
    m = onnx.load_from_string(model)
    m.graph.input[0].type.tensor_type.shape.dim[1].dim_param = "features"
    s = OrtSession.open(ort_library, m.SerializeToString())
    assert s.input_features == 0


def test_xgboost_classifier_probabilities(ort_library):
    model, clf, x = xgb_model()
    s = OrtSession.open(ort_library, model)
    assert s.input_features == 6
    assert s.output_name == "probabilities"  # the int64 "label" output is skipped
    rows = x[:1000]
    p = s.run(rows)
    assert p.shape == (1000, 2)
    _, p_py = python_session(model).run(None, {"input": rows})
    assert np.max(np.abs(p - p_py)) <= 1e-7
    assert np.max(np.abs(p[:, 1] - clf.predict_proba(rows)[:, 1])) <= 1e-5
    for i in range(20):
        assert np.max(np.abs(s.run(rows[i:i + 1]) - p_py[i:i + 1])) <= 1e-7
    # two intra-op threads: same as onnxruntime Python with two threads; the tree sums are split
    # differently across threads, so against one thread only float32 rounding differs
    s2 = OrtSession.open(ort_library, model, intra_op_threads=2)
    p2 = s2.run(rows)
    _, p2_py = python_session(model, threads=2).run(None, {"input": rows})
    assert np.max(np.abs(p2 - p2_py)) <= 1e-7
    assert np.max(np.abs(p2 - p)) <= 1e-6


def test_time_batch1_returns_positive_timings(ort_library):
    model, _ = mlp_model()
    s = OrtSession.open(ort_library, model)
    t = s.time_batch1(np.ones(6, np.float32), 50)
    assert t.dtype == np.int64 and t.shape == (50,) and (t > 0).all()


# --- errors -----------------------------------------------------------------------------------

def test_bad_library_path(tmp_path):
    model, _ = mlp_model()
    with pytest.raises(ValueError, match="cannot load the onnxruntime library"):
        OrtSession.open(str(tmp_path / "nope.so"), model)


def test_library_that_is_not_onnxruntime():
    import ctypes.util
    libm = ctypes.util.find_library("m") or "libm.so.6"
    model, _ = mlp_model()
    with pytest.raises(ValueError, match="not an onnxruntime library"):
        OrtSession.open(libm, model)


def test_corrupt_and_empty_model(ort_library):
    with pytest.raises(ValueError, match="CreateSessionFromArray failed"):
        OrtSession.open(ort_library, b"\x08\x07garbage-not-a-model" * 10)
    with pytest.raises(ValueError, match="empty model"):
        OrtSession.open(ort_library, b"")
    model, _ = mlp_model()
    with pytest.raises(ValueError, match="CreateSessionFromArray failed"):
        OrtSession.open(ort_library, model[: len(model) // 2])


def test_wrong_input_width_and_dtype(ort_library):
    model, _ = mlp_model()
    s = OrtSession.open(ort_library, model)
    with pytest.raises(ValueError, match="expects 6 features per row, got 5"):
        s.run(np.zeros((3, 5), np.float32))
    with pytest.raises(ValueError, match="no input rows"):
        s.run(np.zeros((0, 6), np.float32))
    with pytest.raises(TypeError, match="float32"):
        s.run(np.zeros((3, 6), np.float64))
    with pytest.raises(TypeError, match="2-D"):
        s.run(np.zeros(6, np.float32))
    # still usable afterwards
    assert s.run(np.zeros((2, 6), np.float32)).shape == (2, 2)


def test_model_without_float_output_is_refused(ort_library):
    graph = helper.make_graph(
        [helper.make_node("Cast", ["x"], ["y"], to=TensorProto.INT64)], "cast",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])],
        [helper.make_tensor_value_info("y", TensorProto.INT64, [None, 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    with pytest.raises(ValueError, match="no float tensor output"):
        OrtSession.open(ort_library, model.SerializeToString())
