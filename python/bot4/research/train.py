"""Train a direction classifier: a zoo model (XGBoost by default; bot4.research.zoo) on the train
slice, a bounded calibration map on the calibration slice, metrics on the test slice, ONNX export
with a JSON sidecar (METHODS.md §3, §12, §17).

Artefacts in out_dir:
  model.onnx  the classifier (XGBoost: onnxmltools convert_xgboost, opset 15; others: see
              bot4.research.zoo), input 'input' float32 [N, n_features], output 'probabilities' [N, 2].
  model.json  the sidecar: format "bot4-model/1", SHA-256 of model.onnx, feature names in column
              order, label definition, time spans of the slices, test metrics, the calibration
              breakpoint table applied after the raw probability (the bounded map chosen among
              isotonic / Platt / beta, bot4.research.calibrators), the per-regime maps and the
              regime model (research only: the core applies the pooled table), model parameters
              and versions.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from bot4.research.calibration import IsotonicTable, brier, ece, log_loss, mce, reliability_curve
from bot4.research.calibrators import METHODS as CALIBRATION_METHODS
from bot4.research import zoo
from bot4.research.dataset import SLICES, Dataset, build_dataset

SIDECAR_FORMAT = "bot4-model/1"
MODEL_FILE = "model.onnx"
SIDECAR_FILE = "model.json"
ONNX_OPSET = 15          # onnxmltools 1.16 refuses > 15 for XGBoost (METHODS.md §12)
INPUT_NAME = "input"


class TrainConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """How `train` labels, fits, calibrates and evaluates a model (frozen; unknown fields refused).

    Each field's unit and meaning is in its comment. Labels: the sign of the mid-price return over
    `horizon` (feature rows or ns), rows within `dead_zone_bp` of zero unlabelled. Rows are split
    in time into train / calibration / test by `fractions`, with purge gaps of the label horizon.
    `model` picks the classifier (bot4.research.zoo.ALL_KINDS); the tree settings apply to XGBoost and
    are mapped for LightGBM. `sequence_length` L > 1 makes each sample the window of its last L
    feature rows (required, >= 2, by the sequence models 'lstm' and 'attention'; such a model takes
    L * F inputs, which the core's ONNX Runtime path runs on windows; in a backtest or paper session
    the engine keeps the last L feature rows of each instrument and predicts from the first full
    window on). ValueError at construction for an unknown model, calibration or regime kind.
    """

    model: str = "xgboost"              # bot4.research.zoo.ALL_KINDS: xgboost, lightgbm, logistic, mlp,
                                        # lstm, attention (the last two: pip install 'bot4[deep]')
    sequence_length: int = 1            # feature rows per sample (window, oldest first); >= 2 for
                                        # lstm / attention (bot4.research.windows)
    # tree settings (XGBClassifier; LightGBM maps them, bot4.research.zoo.default_params)
    n_estimators: int = 500             # boosting rounds = trees (binary: one tree per round)
    max_depth: int = 6                  # maximum tree depth, levels below the root
    learning_rate: float = 0.05         # shrinkage applied to each tree's output, log-odds units
    subsample: float = 0.8              # fraction of training rows sampled per tree, (0, 1]
    colsample_bytree: float = 0.8       # fraction of feature columns sampled per tree, (0, 1]
    min_child_weight: float = 1.0       # minimum hessian sum in a leaf (≈ rows when p ≈ 0.5, ×4)
    reg_lambda: float = 1.0             # L2 penalty on leaf weights, log-odds units squared
    tree_method: str = "hist"           # xgboost split finder ('hist': histogram of max_bin bins)
    max_bin: int = 256                  # histogram bins per feature (tree_method='hist')
    n_jobs: int = 2                     # xgboost threads
    seed: int = 0                       # xgboost random_state (row / column sampling)
    # label (bot4.research.labels.forward_labels)
    horizon: int = 100                  # label horizon, in horizon_unit (feature rows or ns)
    horizon_unit: str = "events"        # "events" (feature rows) or "ns"
    dead_zone_bp: float = 0.5           # |forward return| below this, in basis points, is unlabelled
    # split and metrics
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)  # train / calibration / test, of rows
    ece_bins: int = 10                  # equal-width bins for ECE, MCE and the reliability curve
    # calibration (bot4.research.calibrators, bot4.research.regime_calibration)
    calibration: str = "auto"           # "auto" (chosen on validation) or isotonic / platt / beta
    regime_kind: str = "vol"            # regimes the calibrator conditions on: none / vol /
                                        # changepoint / vol+changepoint (bot4.research.regimes)
    min_regime_class_rows: int = 200    # a regime gets its own map only with this many rows per class

    def __post_init__(self):
        from bot4.research.windows import check_length
        from bot4.research.zoo import ALL_KINDS, SEQUENCE_KINDS
        if self.model not in ALL_KINDS:
            raise ValueError(f"model must be one of {ALL_KINDS}, got {self.model!r}")
        check_length(self.sequence_length)
        if self.model in SEQUENCE_KINDS and self.sequence_length < 2:
            raise ValueError(f"model {self.model!r} reads windows of feature rows: set sequence_length >= 2 "
                             f"(e.g. 16), got {self.sequence_length}")
        if self.calibration not in ("auto", *CALIBRATION_METHODS):
            raise ValueError(f"calibration must be 'auto' or one of {CALIBRATION_METHODS}, got {self.calibration!r}")
        from bot4.research.regimes import REGIME_KINDS
        if self.regime_kind not in ("none", *REGIME_KINDS):
            raise ValueError(f"regime_kind must be 'none' or one of {REGIME_KINDS}, got {self.regime_kind!r}")
        if self.min_regime_class_rows < 1:
            raise ValueError(f"min_regime_class_rows must be >= 1, got {self.min_regime_class_rows!r}")

    def model_params(self) -> dict:
        """The tree settings as XGBClassifier keyword arguments."""
        return {"n_estimators": self.n_estimators, "max_depth": self.max_depth,
                "learning_rate": self.learning_rate, "subsample": self.subsample,
                "colsample_bytree": self.colsample_bytree, "min_child_weight": self.min_child_weight,
                "reg_lambda": self.reg_lambda, "tree_method": self.tree_method, "max_bin": self.max_bin,
                "random_state": self.seed, "n_jobs": self.n_jobs}


@dataclass
class TrainResult:
    """What `train` wrote and measured: model.onnx and model.json paths, the sidecar's contents,
    metrics per slice (raw and calibrated AUC, Brier, log loss, ECE), the calibration map, the
    dataset (feature rows, labels, slices), the fitted classifier, seconds per stage and, with
    regimes, the regime model and each dataset row's regime id (int, -1 undefined).
    """

    model_path: Path
    sidecar_path: Path
    sidecar: dict
    metrics: dict
    calibration: IsotonicTable
    dataset: Dataset
    classifier: object = None           # the fitted classifier (bot4.research.zoo.fit)
    seconds: dict = field(default_factory=dict)
    regime_calibration: object = None   # bot4.research.regime_calibration.RegimeCalibration
    regime_model: object = None         # bot4.research.regimes.RegimeModel (None without regimes)
    regimes: np.ndarray | None = None   # regime id of every dataset row (-1 undefined)

    def summary(self) -> dict:
        """Row counts per slice, spans, metrics, parity, paths, SHA-256 and seconds, JSON-able (what `bot4
        train --json` prints)."""
        return {"rows": {name: int(getattr(self.dataset, name).size) for name in SLICES},
                "feature_rows": self.dataset.n_feature_rows, "gaps_rows": list(self.dataset.gaps),
                "spans": self.sidecar["spans"], "metrics": self.metrics, "parity": self.sidecar["parity"],
                "model": str(self.model_path), "sidecar": str(self.sidecar_path),
                "sha256": self.sidecar["sha256"], "seconds": self.seconds,
                "trained_on": self.sidecar["trained_on"]}


def _finite(x):
    """JSON-safe float: None for NaN / inf."""
    x = float(x)
    return x if math.isfinite(x) else None


def evaluate(y, p, n_bins: int = 10) -> dict:
    """AUC, Brier, log loss, ECE, MCE and the reliability curve (with counts) of probabilities p."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    if y.size == 0:
        return {"rows": 0}
    auc = roc_auc_score(y, p) if 0 < y.sum() < y.size else float("nan")
    mean_p, mean_y, count = reliability_curve(y, p, n_bins)
    return {"rows": int(y.size), "auc": _finite(auc), "brier": _finite(brier(y, p)),
            "log_loss": _finite(log_loss(y, p)), "ece": _finite(ece(y, p, n_bins)),
            "mce": _finite(mce(y, p, n_bins)), "ece_bins": int(n_bins),
            "reliability": {"mean_p": [float(v) for v in mean_p], "mean_y": [float(v) for v in mean_y],
                            "count": [int(v) for v in count]}}


def _versions(kind: str = "xgboost") -> dict:
    import onnx
    import onnxmltools
    import onnxruntime
    import xgboost

    import bot4
    out = {"xgboost": xgboost.__version__, "onnx": onnx.__version__,
           "onnxmltools": onnxmltools.__version__, "onnxruntime": onnxruntime.__version__,
           "bot4": bot4.__version__}
    if kind in zoo.SEQUENCE_KINDS:
        import torch

        out["torch"] = torch.__version__
    return out


def export_onnx(classifier, n_features: int) -> bytes:
    """The classifier as ONNX bytes (onnxmltools, opset 15, float32 input named 'input')."""
    from onnxmltools.convert import convert_xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType

    onx = convert_xgboost(classifier, initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))],
                          target_opset=ONNX_OPSET)
    return onx.SerializeToString()


def onnx_proba(model: bytes | str | Path, X) -> np.ndarray:
    """P(class 1) from onnxruntime (Python), one intra-op thread."""
    import onnxruntime as ort

    if isinstance(model, (str, Path)):
        model = Path(model).read_bytes()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    out = sess.run(["probabilities"], {INPUT_NAME: np.ascontiguousarray(X, dtype=np.float32)})[0]
    return np.asarray(out)[:, 1]


class _Stages:
    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.t0 = time.perf_counter()

    def __call__(self, msg: str) -> None:
        if self.enabled:
            print(f"[{time.perf_counter() - self.t0:7.1f}s] {msg}", file=sys.stderr, flush=True)


def _fit_progress(stage: _Stages, n_trees: int, every_s: float = 1.0):
    """An xgboost callback printing trees fitted so far through `stage` about once a second
    (the fit is otherwise silent for up to minutes)."""
    from xgboost.callback import TrainingCallback

    class FitProgress(TrainingCallback):
        def __init__(self):
            super().__init__()
            self.last = time.perf_counter()

        def after_iteration(self, model, epoch, evals_log) -> bool:
            now = time.perf_counter()
            if now - self.last >= every_s:
                self.last = now
                stage(f"fitting xgboost: {epoch + 1:,}/{n_trees:,} trees")
            return False   # never stop early

    return FitProgress()


def train(data, config: TrainConfig | None = None, out_dir=".", progress: bool = True, *,
          feature_config=None, source: str = "", dataset: Dataset | None = None) -> TrainResult:
    """Fit, calibrate, evaluate and export a model predicting the sign of the mid-price move.

    data: MarketData (bot4.data.load, bot4.sim.generate), or None when `dataset` (a prebuilt
    bot4.research.dataset.Dataset) is given. config: TrainConfig (None: the defaults).
    feature_config: the FeatureConfig of the rows (None: bot4.features.trading_config()).
    Features are computed, labelled and split in time (train / calibration / test with purge
    gaps); the classifier is fitted on train, the calibration map on the calibration slice,
    and every metric is reported on the test slice. Writes `out_dir`/model.onnx and
    `out_dir`/model.json (the sidecar: feature config, label definition, calibration, metrics,
    SHA-256, ONNX parity) and returns a TrainResult. ValueError when a slice has no labelled
    rows or the training labels have one class. progress: stage lines and bars on stderr.
    """
    from xgboost import XGBClassifier

    from bot4.features import FeatureConfig, trading_config

    config = config or TrainConfig()
    if dataset is None:
        feature_config = feature_config if feature_config is not None else trading_config()
    stage = _Stages(progress)
    seconds = {}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    t = time.perf_counter()
    if dataset is None:
        stage("features and labels")
        dataset = build_dataset(data, feature_config, horizon=config.horizon,
                                horizon_unit=config.horizon_unit, dead_zone_bp=config.dead_zone_bp,
                                fractions=config.fractions, progress=progress,
                                sequence_length=config.sequence_length)
    seconds["dataset"] = time.perf_counter() - t
    ds = dataset
    if ds.sequence_length != config.sequence_length:
        raise ValueError(f"the dataset has windows of {ds.sequence_length} rows, the config asks for "
                         f"{config.sequence_length}")
    sizes = {name: int(getattr(ds, name).size) for name in SLICES}
    stage(f"rows train {sizes['train']:,} / calibration {sizes['calibration']:,} / test {sizes['test']:,} "
          f"({ds.X.shape[1]} features, purge gaps {ds.gaps[0]} and {ds.gaps[1]} rows)")
    for name, n in sizes.items():
        if n == 0:
            raise ValueError(f"the {name} slice has no labelled rows; use more data or a shorter horizon")
    X_tr, y_tr = ds.part("train")
    if np.unique(y_tr).size < 2:
        raise ValueError("the train slice has a single label class; use more data")

    t = time.perf_counter()
    params = zoo.default_params(config.model, config)
    if config.model == "xgboost":
        stage(f"fitting xgboost {config.n_estimators} trees, depth {config.max_depth}")
        callbacks = [_fit_progress(stage, config.n_estimators)] if progress else None
        clf = XGBClassifier(objective="binary:logistic", eval_metric="logloss", callbacks=callbacks, **params)
        clf.fit(X_tr, y_tr)
    else:
        stage(f"fitting {config.model}")
        t0_tr, t1_tr = ds.label_intervals(ds.train)
        clf = zoo.fit(config.model, X_tr, y_tr, params, t0=t0_tr, t1=t1_tr)
    seconds["fit"] = time.perf_counter() - t

    t = time.perf_counter()
    stage(f"calibration ({config.calibration}, regimes: {config.regime_kind})")
    X_cal, y_cal = ds.part("calibration")
    p_cal = zoo.proba(clf, X_cal)
    regime_model, regimes, regime_error = _fit_regimes(ds, config)
    cal = _calibrate(ds, config, p_cal, y_cal, regimes)
    table = cal.pooled.table
    X_te, y_te = ds.part("test")
    p_raw = zoo.proba(clf, X_te)
    p_cal_te = table.apply(p_raw)      # what the core applies
    metrics: dict[str, Any] = {"test": {"raw": evaluate(y_te, p_raw, config.ece_bins),
                        "calibrated": evaluate(y_te, p_cal_te, config.ece_bins),
                        "base_rate": float(np.mean(y_te))},
               "calibration_slice": {"raw": evaluate(y_cal, p_cal, config.ece_bins)},
               "train_base_rate": float(np.mean(y_tr))}
    if regimes is not None:
        from bot4.research.regime_calibration import metrics_by_regime

        reg_te = regimes[ds.test]
        names = regime_model.names(config.regime_kind)
        p_reg_te = cal.apply(p_raw, reg_te)
        metrics["test"]["regime_calibrated"] = evaluate(y_te, p_reg_te, config.ece_bins)
        metrics["test"]["by_regime"] = {
            part: metrics_by_regime(y_te, p, reg_te, names, config.ece_bins)
            for part, p in (("raw", p_raw), ("calibrated", p_cal_te), ("regime_calibrated", p_reg_te))}
    seconds["calibrate_evaluate"] = time.perf_counter() - t

    t = time.perf_counter()
    stage("exporting ONNX")
    onnx_bytes = zoo.export(config.model, clf, ds.X.shape[1])
    model_path = out / MODEL_FILE
    model_path.write_bytes(onnx_bytes)
    p_onnx = onnx_proba(onnx_bytes, X_te)
    delta = np.abs(p_onnx.astype(np.float64) - p_raw)
    parity = {"rows": int(delta.size), "max_abs_diff": float(delta.max()),
              "mean_abs_diff": float(delta.mean()),
              "reference": f"{config.model} predict_proba vs onnxruntime (Python) on the test slice"}
    seconds["export"] = time.perf_counter() - t

    sidecar = {
        "format": SIDECAR_FORMAT,
        "model_file": MODEL_FILE,
        "sha256": hashlib.sha256(onnx_bytes).hexdigest(),
        "feature_names": list(ds.names),
        "n_features": int(ds.X.shape[1]),
        "input": {"name": INPUT_NAME, "dtype": "float32", "missing": "NaN",
                  "sequence_length": int(ds.sequence_length),
                  "layout": ("one feature row" if ds.sequence_length == 1 else
                             f"the last {ds.sequence_length} feature rows, oldest first, flattened "
                             f"row-major (bot4.research.windows)")},
        "output": {"name": "probabilities", "column": 1,
                   "meaning": "raw P(label = 1); apply 'calibration' (linear interpolation between "
                              "breakpoints, clipped outside) for the calibrated probability"},
        "label": dict(ds.label),
        "spans": {name: list(ds.spans[name]) for name in SLICES},
        "split": {"fractions": list(config.fractions), "feature_rows": ds.n_feature_rows,
                  "gaps_rows": [int(g) for g in ds.gaps], "row_ranges": ds.row_ranges(),
                  "instrument": int(ds.instrument)},
        "metrics": metrics,
        "parity": parity,
        "calibration": table.to_dict(),   # pooled map's breakpoints (x: raw p, y: calibrated p)
        "calibration_info": {"method": cal.pooled.method, "eps": cal.pooled.eps, "rows": cal.pooled.rows,
                             "params": cal.pooled.params, "selection": cal.selection["pooled"]},
        "calibration_regimes": ({"applied_by": "research only (the core applies 'calibration')",
                                 "regime_model": regime_model.to_dict(), "calibration": cal.to_dict()}
                                if regime_model is not None else
                                {"kind": config.regime_kind, "error": regime_error}),
        "model": {"kind": config.model, "objective": "binary:logistic", "opset": zoo.opset(config.model),
                  **{k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}},
        "versions": _versions(config.model),
        "trained_on": source,
    }
    if config.model in zoo.SEQUENCE_KINDS:
        # losses per epoch, the epoch kept and the purged early-stopping fold's sizes
        sidecar["model"]["training"] = clf.history
    if isinstance(feature_config, FeatureConfig):
        # what the backtest must compute for this model (bot4.backtest.run refuses a different one)
        sidecar["features"] = msgspec.to_builtins(feature_config)
    sidecar_path = out / SIDECAR_FILE
    sidecar_path.write_text(json.dumps(sidecar, indent=2, sort_keys=True, allow_nan=False) + "\n")
    seconds["total"] = time.perf_counter() - stage.t0
    seconds = {k: round(v, 3) for k, v in seconds.items()}
    stage(f"wrote {model_path} ({len(onnx_bytes):,} bytes) and {sidecar_path}")
    return TrainResult(model_path=model_path, sidecar_path=sidecar_path, sidecar=sidecar, metrics=metrics,
                       calibration=table, dataset=ds, classifier=clf, seconds=seconds,
                       regime_calibration=cal, regime_model=regime_model, regimes=regimes)


def _fit_regimes(ds: Dataset, config: TrainConfig):
    """(RegimeModel fitted on the train rows, regime id of every row, error) or (None, None, reason).

    The mid of the labelled rows is the regime model's price series (unlabelled rows are not in the
    dataset); the model only looks back, so labels of later rows use earlier rows only."""
    if config.regime_kind == "none":
        return None, None, "disabled"
    from bot4.research.dataset import MID_COLUMN
    from bot4.research.regimes import fit_regimes

    mid = ds.X[:, ds.names.index(MID_COLUMN)].astype(np.float64)
    tr = ds.train
    try:
        model = fit_regimes(ds.timestamps[tr], mid[tr])
        return model, model.labels(ds.timestamps, mid, config.regime_kind), None
    except ValueError as exc:   # too short or too flat a training window: pooled calibration only
        return None, None, str(exc)


def calibration_purge_rows(ds: Dataset, validation_fraction: float = 0.3) -> int:
    """Calibration rows before the validation cut whose label window reaches the first validation
    row (in feature rows for an events horizon, in ns otherwise): dropped from the fitting part."""
    idx = ds.calibration
    n = idx.size
    cut = int(np.floor(n * (1 - validation_fraction)))
    if cut <= 0 or cut >= n:
        return 0
    horizon = int(ds.label["horizon"])
    pos = ds.rows[idx] if ds.label["unit"] == "events" else ds.timestamps[idx]
    first = int(np.searchsorted(pos, pos[cut] - horizon, side="left"))
    return cut - first


def _calibrate(ds: Dataset, config: TrainConfig, p_cal, y_cal, regimes):
    from bot4.research.regime_calibration import fit_regime_calibration

    methods = CALIBRATION_METHODS if config.calibration == "auto" else (config.calibration,)
    return fit_regime_calibration(p_cal, y_cal, None if regimes is None else regimes[ds.calibration],
                                  methods=methods, min_per_class=config.min_regime_class_rows,
                                  purge_rows=calibration_purge_rows(ds), kind=config.regime_kind)
