"""The compiled tree-ensemble path against onnxruntime (Python) and xgboost on real feature rows."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from bot4 import _core
from bot4.errors import ModelError
from onnx import TensorProto, helper

from tests.inference.conftest import export_xgb, ort_proba, train_xgb

Model = _core.inference.Model
PARITY = 1e-6


def _attr(onnx_bytes, name):
    m = onnx.load_from_string(onnx_bytes)
    node = m.graph.node[0]
    return next(helper.get_attribute_value(a) for a in node.attribute if a.name == name)


def test_parity_against_onnxruntime_and_xgboost(xgb_model):
    clf, data, _, X_test = xgb_model
    model = Model.from_bytes(data, X_test.shape[1])
    assert model.kind == "tree" and model.n_trees == 60 and model.max_depth <= 6
    assert np.isnan(X_test).any(), "real rows should carry undefined (NaN) features"
    p = model.predict_proba(X_test)
    d_ort = np.abs(p - ort_proba(data, X_test)).max()
    d_xgb = np.abs(p - clf.predict_proba(X_test)[:, 1]).max()
    print(f"max|dp| tree vs onnxruntime {d_ort:.3g}, vs xgboost {d_xgb:.3g} ({len(X_test)} rows)")
    assert d_ort <= PARITY and d_xgb <= PARITY


@pytest.mark.parametrize("kw", [{"base_score": 0.3}, {"max_depth": 3, "n_estimators": 40}, {"max_depth": 8, "n_estimators": 20}])
def test_parity_variants(feature_rows, kw):
    X, y, _ = feature_rows
    clf = train_xgb(X[:3000], y[:3000], **kw)
    data = export_xgb(clf, X.shape[1])
    model = Model.from_bytes(data, X.shape[1])
    p = model.predict_proba(X[3000:])
    assert np.abs(p - ort_proba(data, X[3000:])).max() <= PARITY
    assert np.abs(p - clf.predict_proba(X[3000:])[:, 1]).max() <= PARITY


def test_nan_follows_missing_value_tracks_true(feature_rows):
    # Make missing values common in training so xgboost learns default directions both ways.
    X, y, _ = feature_rows
    rng = np.random.default_rng(1)
    Xn = X.copy()
    Xn[rng.random(Xn.shape) < 0.2] = np.nan
    clf = train_xgb(Xn[:3000], y[:3000], n_estimators=40)
    data = export_xgb(clf, X.shape[1])
    tracks = np.asarray(_attr(data, "nodes_missing_value_tracks_true"))
    modes = [m.decode() if isinstance(m, bytes) else m for m in _attr(data, "nodes_modes")]
    branch = np.asarray([m != "LEAF" for m in modes])
    assert tracks[branch].min() == 0 and tracks[branch].max() == 1, "need both NaN directions in the model"
    model = Model.from_bytes(data, X.shape[1])
    Xt = Xn[3000:]
    p = model.predict_proba(Xt)
    assert np.abs(p - ort_proba(data, Xt)).max() <= PARITY
    assert np.abs(p - clf.predict_proba(Xt)[:, 1]).max() <= PARITY
    all_nan = np.full((3, X.shape[1]), np.nan, dtype=np.float32)
    assert np.abs(model.predict_proba(all_nan) - ort_proba(data, all_nan)).max() <= PARITY


def test_batch_equals_batch1_and_float64(xgb_model):
    _, data, _, X_test = xgb_model
    model = Model.from_bytes(data, X_test.shape[1])
    batch = model.predict_proba(X_test)
    one = np.array([model.predict_one(row) for row in X_test])
    np.testing.assert_array_equal(batch, one)  # same blocking, bit-identical
    np.testing.assert_array_equal(model.predict_proba(X_test.astype(np.float64)), batch)
    assert model.predict_one(X_test[0].astype(np.float64)) == batch[0]
    assert model.predict_proba(X_test[:0]).shape == (0,)


def test_every_simd_level_matches_scalar(xgb_model):
    _, data, _, X_test = xgb_model
    model = Model.from_bytes(data, X_test.shape[1])
    clean = np.ascontiguousarray(np.nan_to_num(X_test[:1001], nan=0.0))
    for rows in (clean, X_test[:1001]):
        ref = model.predict_proba_level(rows, "scalar")
        for level in _core.simd.available_levels():
            np.testing.assert_allclose(model.predict_proba_level(rows, level), ref, rtol=0, atol=1e-12)


def test_input_dtype_and_shape_checks(xgb_model):
    _, data, _, X_test = xgb_model
    model = Model.from_bytes(data, X_test.shape[1])
    with pytest.raises(TypeError, match="float32 or float64"):
        model.predict_proba(np.zeros(X_test.shape, dtype=np.int32))
    with pytest.raises(TypeError, match="C-contiguous"):
        model.predict_proba(np.asfortranarray(X_test))
    with pytest.raises(ModelError, match="feature-count mismatch"):
        model.predict_proba(X_test[:, :-1].copy())


def test_regressor_parity(feature_rows):
    import xgboost as xgb
    from onnxmltools.convert import convert_xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType

    X, y, _ = feature_rows
    reg = xgb.XGBRegressor(n_estimators=30, max_depth=5, n_jobs=2, random_state=0).fit(X[:3000], y[:3000].astype(float))
    onx = convert_xgboost(reg, initial_types=[("input", FloatTensorType([None, X.shape[1]]))], target_opset=15)
    data = onx.SerializeToString()
    model = Model.from_bytes(data, X.shape[1])
    assert model.kind == "tree"
    p = model.predict_proba(X[3000:])
    np.testing.assert_allclose(p, ort_proba(data, X[3000:]), rtol=0, atol=1e-5)


def _hand_tree(mode: str, missing_true: int, threshold: float = 0.5):
    """One tree, one split on feature 0 with the given mode; leaves -1 (true) / +1 (false)."""
    node = helper.make_node(
        "TreeEnsembleRegressor", ["input"], ["variable"], domain="ai.onnx.ml",
        nodes_treeids=[0, 0, 0], nodes_nodeids=[0, 1, 2], nodes_featureids=[0, 0, 0],
        nodes_values=[threshold, 0.0, 0.0], nodes_modes=[mode, "LEAF", "LEAF"],
        nodes_truenodeids=[1, 0, 0], nodes_falsenodeids=[2, 0, 0],
        nodes_missing_value_tracks_true=[missing_true, 0, 0],
        target_treeids=[0, 0], target_nodeids=[1, 2], target_ids=[0, 0], target_weights=[-1.0, 1.0],
        n_targets=1, post_transform="NONE")
    graph = helper.make_graph([node], "t", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 2])],
                              [helper.make_tensor_value_info("variable", TensorProto.FLOAT, [None, 1])])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15), helper.make_opsetid("ai.onnx.ml", 3)])
    m.ir_version = 8
    return m.SerializeToString()


@pytest.mark.parametrize("mode", ["BRANCH_LT", "BRANCH_LEQ", "BRANCH_GT", "BRANCH_GTE"])
@pytest.mark.parametrize("missing_true", [0, 1])
def test_split_modes_at_the_threshold(mode, missing_true):
    t = np.float32(0.3)
    data = _hand_tree(mode, missing_true, float(t))
    x0 = np.array([np.nextafter(t, -np.inf), t, np.nextafter(t, np.inf), -1e30, 1e30, np.nan, -np.inf, np.inf],
                  dtype=np.float32)
    X = np.ascontiguousarray(np.stack([x0, np.zeros_like(x0)], axis=1))
    model = Model.from_bytes(data, 2)
    np.testing.assert_array_equal(model.predict_proba(X), ort_proba(data, X))


def test_unsupported_mode_is_named():
    with pytest.raises(ModelError, match="BRANCH_EQ"):
        Model.from_bytes(_hand_tree("BRANCH_EQ", 0), 2)


def test_isotonic_equals_sklearn(xgb_model, feature_rows):
    from sklearn.isotonic import IsotonicRegression

    _, data, X_train, X_test = xgb_model
    _, y, _ = feature_rows
    raw_model = Model.from_bytes(data, X_test.shape[1])
    half = len(X_test) // 2
    raw_cal = raw_model.predict_proba(X_test[:half])
    y_cal = y[len(X_train):len(X_train) + half]
    iso = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(raw_cal, y_cal)
    model = Model.from_bytes(data, X_test.shape[1], calibration_x=list(iso.X_thresholds_),
                             calibration_y=list(iso.y_thresholds_))
    raw = raw_model.predict_proba(X_test)
    expected = iso.transform(raw)
    got = model.predict_proba(X_test)
    assert np.abs(got - expected).max() <= 1e-12
    np.testing.assert_array_equal(model.raw_proba(X_test), raw)
    assert abs(model.predict_one(X_test[-1]) - expected[-1]) <= 1e-12


def test_isotonic_interpolates_and_clips():
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit([.1, .2, .2, .4, .5], [0, 1, 0, 1, 1])
    # A constant model whose raw output we control: a one-leaf regressor tree returns its weight.
    for value in (0.05, 0.1, 0.3, 0.45, 0.5, 0.9):
        node = helper.make_node(
            "TreeEnsembleRegressor", ["input"], ["variable"], domain="ai.onnx.ml",
            nodes_treeids=[0], nodes_nodeids=[0], nodes_featureids=[0], nodes_values=[0.0], nodes_modes=["LEAF"],
            nodes_truenodeids=[0], nodes_falsenodeids=[0], target_treeids=[0], target_nodeids=[0], target_ids=[0],
            target_weights=[0.0], base_values=[value], n_targets=1, post_transform="NONE")
        graph = helper.make_graph([node], "c", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 1])],
                                  [helper.make_tensor_value_info("variable", TensorProto.FLOAT, [None, 1])])
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("ai.onnx.ml", 3)])
        model = Model.from_bytes(m.SerializeToString(), 1, calibration_x=list(iso.X_thresholds_),
                                 calibration_y=list(iso.y_thresholds_))
        raw = float(np.float32(value))
        assert abs(model.predict_one(np.zeros(1, np.float32)) - iso.transform([raw])[0]) <= 1e-12
    assert iso.transform([0.3])[0] == pytest.approx(0.75)


def test_bad_calibration_table_refused(xgb_model):
    _, data, _, X_test = xgb_model
    with pytest.raises(ModelError, match="strictly increasing"):
        Model.from_bytes(data, X_test.shape[1], calibration_x=[0.1, 0.1], calibration_y=[0.0, 1.0])


def test_minus_inf_threshold_with_nan_to_lower_branch_refused():
    # BRANCH_LT at -inf with NaN on the false (upper) side is representable; NaN on the true
    # (lower) side is not (the -inf NaN sentinel would compare >= -inf) and is refused by name.
    Model.from_bytes(_hand_tree("BRANCH_LT", 0, float("-inf")), 2)
    with pytest.raises(ModelError, match="-inf threshold"):
        Model.from_bytes(_hand_tree("BRANCH_LT", 1, float("-inf")), 2)


def test_ort_fallback_for_a_tree_the_tree_path_refuses():
    import bot4.models

    lib = bot4.models.find_onnxruntime_library()
    data = _hand_tree("BRANCH_EQ", 0)
    model = Model.from_bytes(data, 2, ort_library=lib)
    assert model.kind == "onnxruntime" and "BRANCH_EQ" in model.fallback_reason
    X = np.array([[0.5, 0.0], [0.25, 0.0], [np.nan, 0.0]], dtype=np.float32)
    np.testing.assert_allclose(model.predict_proba(X), ort_proba(data, X), rtol=0, atol=1e-7)


def _mixed_depth_regressor(depths, n_features, seed):
    """A TreeEnsembleRegressor whose tree i has exactly depth depths[i] (one path reaches it, the
    other branches stop at random levels), random features, thresholds, split modes and NaN sides."""
    rng = np.random.default_rng(seed)
    cols = {k: [] for k in ("treeids", "nodeids", "featureids", "values", "modes", "truenodeids", "falsenodeids",
                            "missing_value_tracks_true")}
    targets = {"treeids": [], "nodeids": [], "weights": []}

    def add(tree, depth, deep):
        nid = len([t for t in cols["treeids"] if t == tree])
        cols["treeids"].append(tree)
        cols["nodeids"].append(nid)
        slot = len(cols["treeids"]) - 1
        if depth == 0:
            for k, v in (("featureids", 0), ("values", 0.0), ("modes", "LEAF"), ("truenodeids", 0),
                         ("falsenodeids", 0), ("missing_value_tracks_true", 0)):
                cols[k].append(v)
            targets["treeids"].append(tree)
            targets["nodeids"].append(nid)
            targets["weights"].append(float(rng.normal(scale=0.1)))
            return nid
        for k, v in (("featureids", int(rng.integers(n_features))), ("values", float(rng.normal())),
                     ("modes", str(rng.choice(["BRANCH_LT", "BRANCH_LEQ", "BRANCH_GT", "BRANCH_GTE"]))),
                     ("truenodeids", 0), ("falsenodeids", 0), ("missing_value_tracks_true", int(rng.integers(2)))):
            cols[k].append(v)
        left_deep = bool(rng.integers(2))
        stop = lambda is_deep: depth - 1 if (deep and is_deep) else int(rng.integers(0, depth))  # noqa: E731
        cols["truenodeids"][slot] = add(tree, stop(left_deep), deep and left_deep)
        cols["falsenodeids"][slot] = add(tree, stop(not left_deep), deep and not left_deep)
        return nid

    for tree, depth in enumerate(depths):
        add(tree, depth, True)
    node = helper.make_node(
        "TreeEnsembleRegressor", ["input"], ["variable"], domain="ai.onnx.ml",
        **{f"nodes_{k}": v for k, v in cols.items()}, target_treeids=targets["treeids"],
        target_nodeids=targets["nodeids"], target_ids=[0] * len(targets["weights"]),
        target_weights=targets["weights"], base_values=[0.25], n_targets=1, post_transform="NONE")
    graph = helper.make_graph([node], "mixed", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, n_features])],
                              [helper.make_tensor_value_info("variable", TensorProto.FLOAT, [None, 1])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("ai.onnx.ml", 3)]).SerializeToString()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_one_row_by_tree_depth_equals_the_padded_walk(seed):
    """predict_one walks each tree only through its own levels (TreeEnsemble::DepthClass); the
    batch kernel walks every tree through the deepest one's. Trees of depths 0..8 in shuffled
    order, a count that is not a multiple of the interleave, rows with NaN and +-inf: the two
    agree bit for bit, and with onnxruntime."""
    rng = np.random.default_rng(seed)
    depths = rng.permutation(np.concatenate([np.arange(9), rng.integers(0, 9, size=28)]))
    F = 7
    data = _mixed_depth_regressor(list(depths), F, seed)
    model = Model.from_bytes(data, F)
    assert model.n_trees == len(depths) == 37 and model.max_depth == 8
    X = rng.normal(size=(400, F)).astype(np.float32)
    X[rng.random(X.shape) < 0.15] = np.nan
    X[rng.random(X.shape) < 0.03] = np.inf
    X[rng.random(X.shape) < 0.03] = -np.inf
    batch = model.predict_proba(X)
    one = np.array([model.predict_one(row) for row in X])
    np.testing.assert_array_equal(one.view(np.int64), batch.view(np.int64))
    ort = ort_proba(data, X)
    assert np.abs(one - ort).max() <= PARITY
    assert len(np.unique(np.round(one, 9))) > 50, "the rows should reach many different leaves"
