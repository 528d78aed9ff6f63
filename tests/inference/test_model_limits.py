"""Malformed tree models are refused at load, by the tree path and without a fallback to ONNX
Runtime (which would run them): a child pointing back to an ancestor, non-finite base_values or
class weights, and a binary classifier whose post_transform=NONE would make predict_proba return
raw margins."""

from __future__ import annotations

import math

import pytest
from onnx import TensorProto, helper

from bot4.errors import ModelError
from bot4.models.loader import load_bytes


def _classifier(true_ids=(1, 0, 0), false_ids=(2, 0, 0), base=0.0, weights=(-1.0, 1.0), post="LOGISTIC"):
    node = helper.make_node(
        "TreeEnsembleClassifier", ["input"], ["label", "probabilities"], domain="ai.onnx.ml",
        nodes_treeids=[0, 0, 0], nodes_nodeids=[0, 1, 2], nodes_featureids=[0, 0, 0],
        nodes_values=[0.5, 0.0, 0.0], nodes_modes=["BRANCH_LT", "LEAF", "LEAF"],
        nodes_truenodeids=list(true_ids), nodes_falsenodeids=list(false_ids),
        nodes_missing_value_tracks_true=[0, 0, 0],
        class_treeids=[0, 0], class_nodeids=[1, 2], class_ids=[0, 0], class_weights=list(weights),
        classlabels_int64s=[0, 1], base_values=[base], post_transform=post)
    graph = helper.make_graph(
        [node], "c", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 2])],
        [helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
         helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2])])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15), helper.make_opsetid("ai.onnx.ml", 3)])
    m.ir_version = 8
    return m.SerializeToString()


def test_the_well_formed_classifier_loads():
    assert load_bytes(_classifier(), 2).kind == "tree"


@pytest.mark.parametrize("engine", ["auto", "tree"])
@pytest.mark.parametrize("kwargs, message", [
    (dict(true_ids=(1, 0, 0), false_ids=(0, 0, 0)), "two parents|no root|cycle"),   # leaf slot back to the root
    (dict(true_ids=(1, 0, 0), false_ids=(1, 0, 0)), "two parents"),
    (dict(base=math.nan), "non-finite base_values"),
    (dict(base=math.inf), "non-finite base_values"),
    (dict(weights=(math.nan, 1.0)), "non-finite class_weights"),
    (dict(weights=(1.0, -math.inf)), "non-finite class_weights"),
    (dict(post="NONE"), "scores, not probabilities"),
])
def test_malformed_trees_are_refused_at_load_without_fallback(kwargs, message, engine):
    with pytest.raises(ModelError, match=message) as info:
        load_bytes(_classifier(**kwargs), 2, engine=engine)
    assert "ONNX Runtime" not in str(info.value)


def test_a_branch_whose_child_is_its_own_ancestor_is_refused():
    # root 0 -> (1, 2); node 1 is a branch whose true child is the root: a cycle through the root
    node = helper.make_node(
        "TreeEnsembleClassifier", ["input"], ["label", "probabilities"], domain="ai.onnx.ml",
        nodes_treeids=[0, 0, 0, 0], nodes_nodeids=[0, 1, 2, 3], nodes_featureids=[0, 1, 0, 0],
        nodes_values=[0.5, 0.5, 0.0, 0.0], nodes_modes=["BRANCH_LT", "BRANCH_LT", "LEAF", "LEAF"],
        nodes_truenodeids=[1, 0, 0, 0], nodes_falsenodeids=[2, 3, 0, 0],
        nodes_missing_value_tracks_true=[0, 0, 0, 0],
        class_treeids=[0, 0], class_nodeids=[2, 3], class_ids=[0, 0], class_weights=[-1.0, 1.0],
        classlabels_int64s=[0, 1], base_values=[0.0], post_transform="LOGISTIC")
    graph = helper.make_graph(
        [node], "c", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 2])],
        [helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
         helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2])])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15), helper.make_opsetid("ai.onnx.ml", 3)])
    m.ir_version = 8
    with pytest.raises(ModelError, match="no root|cycle|two parents") as info:
        load_bytes(m.SerializeToString(), 2)
    assert "ONNX Runtime" not in str(info.value)


def test_predict_proba_names_the_width_before_contiguity_and_does_not_echo_lists():
    import numpy as np

    model = load_bytes(_classifier(), 2)
    wide = np.zeros((4, 3), np.float32)
    with pytest.raises(ModelError, match="feature-count mismatch: matrix has 1 columns, model expects 2"):
        model.predict_proba(wide[:, :1])  # a non-contiguous column slice of the wrong width
    with pytest.raises(TypeError, match="C-contiguous.*ascontiguousarray"):
        model.predict_proba(np.zeros((8, 2), np.float32)[::2])
    with pytest.raises(TypeError, match="got list") as info:
        model.predict_proba([[0.1, 0.2]] * 1000)
    assert len(str(info.value)) < 200
