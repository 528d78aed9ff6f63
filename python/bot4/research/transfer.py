"""Out-of-sample evaluation of a trained model on a recording it never saw (another day,
instrument or market): raw, calibrated (the core's pooled table) and regime-calibrated
probabilities, with AUC, Brier, log-loss and ECE pooled and per regime.

The model runs through bot4.models.load (the C++ core: tree path or ONNX Runtime), with the feature
config and label definition recorded in its sidecar; every labelled row of the new data is a test
row. Regimes come from the regime model frozen at training time and run forward on the new data.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bot4.research.dataset import MID_COLUMN, build_dataset


def evaluate_on(model_dir, data, *, n_bins: int = 10, progress: bool = False) -> dict:
    """Score a trained model (its folder) on another recording `data`: features and labels as the
    sidecar records them, every labelled row a test row. Returns rows, base rate and the raw and
    calibrated metrics (plus per-regime metrics when the model has a regime calibration).
    ValueError if the sidecar lacks the feature config or label, or the columns differ.
    """
    from bot4.models import load
    from bot4.research.regime_calibration import RegimeCalibration, metrics_by_regime
    from bot4.research.regimes import RegimeModel
    from bot4.research.train import evaluate

    model = load(model_dir, engine="tree")
    side = model.sidecar
    fc = model.feature_config
    label = side.get("label") or {}
    if fc is None or not label:
        raise ValueError(f"{model_dir}: the sidecar records no feature config or label definition")
    ds = build_dataset(data, fc, horizon=int(label["horizon"]), horizon_unit=label["unit"],
                       dead_zone_bp=float(label["dead_zone_bp"]), fractions=(0.0, 0.0, 1.0), progress=progress)
    if ds.names != model.feature_names:
        raise ValueError("the feature engine's columns differ from the model's")
    idx = ds.test
    if idx.size == 0:
        raise ValueError("no labelled rows in the data")
    X, y = ds.X[idx], ds.y[idx].astype(np.float64)
    raw = np.asarray(model.raw_proba(X), dtype=np.float64)
    core = np.asarray(model.predict_proba(X), dtype=np.float64)
    out: dict[str, Any] = {"rows": int(idx.size), "base_rate": float(y.mean()), "instrument": int(ds.instrument),
           "raw": evaluate(y, raw, n_bins), "calibrated": evaluate(y, core, n_bins)}
    for part in ("raw", "calibrated"):
        out[part].pop("reliability", None)
    reg_side = side.get("calibration_regimes") or {}
    if "regime_model" in reg_side:
        rm = RegimeModel.from_dict(reg_side["regime_model"])
        cal = RegimeCalibration.from_dict(reg_side["calibration"])
        mid = ds.X[:, ds.names.index(MID_COLUMN)].astype(np.float64)
        regimes = rm.labels(ds.timestamps, mid, cal.kind)[idx]
        p_reg = cal.apply(raw, regimes)
        out["regime_calibrated"] = evaluate(y, p_reg, n_bins)
        out["regime_calibrated"].pop("reliability", None)
        names = rm.names(cal.kind)
        out["by_regime"] = {part: metrics_by_regime(y, p, regimes, names, n_bins)
                            for part, p in (("raw", raw), ("calibrated", core), ("regime_calibrated", p_reg))}
        out["regime_kind"] = cal.kind
    return out
