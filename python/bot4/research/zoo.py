"""The model zoo: classifiers the training pipeline can fit and export to ONNX for the core
(METHODS.md §12). Each kind is (fit, framework probabilities, ONNX export):

  xgboost   XGBClassifier; onnxmltools convert_xgboost (opset 15); NaN handled by the trees
  lightgbm  LGBMClassifier (optional: `pip install lightgbm`); onnxmltools convert_lightgbm
  logistic  median imputation + standardisation + LogisticRegression; skl2onnx
  mlp       median imputation + standardisation + MLPClassifier (one hidden layer); skl2onnx

  lstm       one LSTM layer over windows of the last L feature rows (PyTorch, optional:
             `pip install 'bot4[deep]'`); torch.onnx.export, opset 17 (bot4.research.sequence)
  attention  single-head self-attention over the same windows; same export

Every export takes one float32 input named 'input' [N, n_features] and has an output named
'probabilities' [N, 2] (no ZipMap), which is what the core's ONNX Runtime path selects; tree models
also run on the core's own tree path. Models are fitted on float32 rows, the dtype the core feeds.
For the sequence kinds a row is a window flattened oldest row first (bot4.research.windows), so
n_features = L * F and the core runs them through the same ONNX Runtime path; they stop early on a
purged validation fold, so `fit` needs each sample's label interval (t0, t1).
"""

from __future__ import annotations

import numpy as np

KINDS = ("xgboost", "lightgbm", "logistic", "mlp")    # one feature row per sample
SEQUENCE_KINDS = ("lstm", "attention")                 # windows of feature rows (bot4.research.sequence)
ALL_KINDS = KINDS + SEQUENCE_KINDS
INPUT_NAME = "input"
ONNX_OPSET = 15          # onnxmltools 1.16 refuses > 15 for XGBoost (METHODS.md §12)


def fit(kind: str, X, y, params: dict, *, t0=None, t1=None):
    """A fitted classifier of `kind` (params: that framework's keyword arguments; for the sequence
    kinds bot4.research.sequence.DEFAULTS). t0, t1: each sample's label interval, required by the
    sequence kinds (their purged early-stopping fold) and unused by the others."""
    if kind in SEQUENCE_KINDS:
        from bot4.research import sequence

        return sequence.fit(kind, X, y, params, t0=t0, t1=t1)
    X = np.ascontiguousarray(X, dtype=np.float32)
    y = np.asarray(y)
    if kind == "xgboost":
        from xgboost import XGBClassifier

        return XGBClassifier(objective="binary:logistic", eval_metric="logloss", **params).fit(X, y)
    if kind == "lightgbm":
        try:
            from lightgbm import LGBMClassifier
        except ImportError as exc:
            raise ValueError("model 'lightgbm' needs the lightgbm package (pip install 'bot4[zoo]')") from exc
        return LGBMClassifier(objective="binary", verbose=-1, **params).fit(X, y)
    if kind in ("logistic", "mlp"):
        from sklearn.impute import SimpleImputer
        from sklearn.linear_model import LogisticRegression
        from sklearn.neural_network import MLPClassifier
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import StandardScaler

        head = LogisticRegression(**params) if kind == "logistic" else MLPClassifier(**params)
        # keep_empty_features: a column that is NaN on every training row stays (as 0), so the
        # input width is the feature engine's
        steps = [("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                 ("scale", StandardScaler()), ("model", head)]
        return Pipeline(steps).fit(X, y)
    raise ValueError(f"unknown model kind {kind!r} (one of {ALL_KINDS})")


def proba(model, X) -> np.ndarray:
    """The training framework's P(class 1) on float32 rows."""
    return np.asarray(model.predict_proba(np.ascontiguousarray(X, dtype=np.float32))[:, 1], dtype=np.float64)


def export(kind: str, model, n_features: int) -> bytes:
    """ONNX bytes with input 'input' float32 [None, n_features] and output 'probabilities' [N, 2]."""
    if kind in SEQUENCE_KINDS:
        from bot4.research import sequence

        if n_features != model.width:
            raise ValueError(f"the {kind} model takes {model.width} columns ({model.length} rows x "
                             f"{model.n_features} features), not {n_features}")
        return sequence.export(model)
    from onnxmltools.convert.common.data_types import FloatTensorType

    types = [(INPUT_NAME, FloatTensorType([None, n_features]))]
    if kind == "xgboost":
        from onnxmltools.convert import convert_xgboost

        return convert_xgboost(model, initial_types=types, target_opset=ONNX_OPSET).SerializeToString()
    if kind == "lightgbm":
        from onnxmltools.convert import convert_lightgbm

        onx = convert_lightgbm(model, initial_types=types, target_opset=ONNX_OPSET, zipmap=False)
        return onx.SerializeToString()
    if kind in ("logistic", "mlp"):
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import FloatTensorType as SkFloat

        onx = convert_sklearn(model, "bot4_" + kind, [(INPUT_NAME, SkFloat([None, n_features]))],
                              target_opset={"": ONNX_OPSET, "ai.onnx.ml": 3},
                              options={id(model.steps[-1][1]): {"zipmap": False}})
        return onx.SerializeToString()
    raise ValueError(f"unknown model kind {kind!r} (one of {ALL_KINDS})")


def default_params(kind: str, config) -> dict:
    """Framework parameters for `kind` from a TrainConfig (tree settings are shared)."""
    if kind == "xgboost":
        return config.model_params()
    if kind == "lightgbm":
        return {"n_estimators": config.n_estimators, "max_depth": config.max_depth,
                "num_leaves": min(2 ** config.max_depth, 131072), "learning_rate": config.learning_rate,
                "subsample": config.subsample, "subsample_freq": 1, "colsample_bytree": config.colsample_bytree,
                "reg_lambda": config.reg_lambda, "random_state": config.seed, "n_jobs": config.n_jobs}
    if kind == "logistic":
        return {"C": 1.0, "max_iter": 2000}
    if kind == "mlp":
        return {"hidden_layer_sizes": (32,), "alpha": 1e-3, "max_iter": 300, "early_stopping": True,
                "random_state": config.seed}
    if kind in SEQUENCE_KINDS:
        from bot4.research.sequence import DEFAULTS

        return dict(DEFAULTS, length=config.sequence_length, seed=config.seed, n_jobs=config.n_jobs)
    raise ValueError(f"unknown model kind {kind!r} (one of {ALL_KINDS})")


def opset(kind: str) -> int:
    """The ONNX opset `export` writes for `kind`."""
    if kind in SEQUENCE_KINDS:
        from bot4.research.sequence import ONNX_OPSET as SEQUENCE_OPSET

        return SEQUENCE_OPSET
    return ONNX_OPSET
