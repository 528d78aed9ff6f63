"""Logistic stacker for the engine's ensemble stage (mode "stacker", core/inference/ensemble.hpp).

The core combines the model slots' outputs p_1..p_k of a decision as

    p = 1 / (1 + exp(-(b + sum_i c_i * logit(clip(p_i, c, 1 - c)))))

with c = ensemble.stacker_clip. fit_stacker fits b and c_i with scikit-learn's LogisticRegression
on *out-of-fold* predictions of the slots (each row's p_i from a model that did not see that row,
e.g. sklearn.model_selection.cross_val_predict over a purged split of bot4.research.splits, or
a backtest's result.scores on data after every slot's training span): fitting the stacker on
in-sample predictions rewards the most overfitted slot. StackerFit.as_config() is the TOML
[ensemble] section, and predict() is the core's formula in numpy (the parity tests hold the core
to sklearn's predict_proba within 1e-9).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

#: The core's default ensemble.stacker_clip (from its declaration).
DEFAULT_CLIP = 1e-9


def stacker_features(p: np.ndarray, clip: float = DEFAULT_CLIP) -> np.ndarray:
    """logit(clip(p, clip, 1 - clip)), float64, same shape: the stacker's inputs."""
    if not 0.0 < clip < 0.5:
        raise ValueError(f"clip must be in (0, 0.5), got {clip}")
    q = np.clip(np.asarray(p, dtype=np.float64), clip, 1.0 - clip)
    return np.log(q / (1.0 - q))


@dataclass(frozen=True)
class StackerFit:
    """A fitted stacker: intercept, one coefficient per slot, the clip, and the sklearn model."""

    intercept: float
    coefficients: tuple[float, ...]
    clip: float
    model: Any = None  # the fitted sklearn LogisticRegression

    def as_config(self) -> dict:
        """The [ensemble] section for this stacker (bot4.config.EnsembleConfig fields)."""
        return {"mode": "stacker", "intercept": float(self.intercept),
                "coefficients": [float(c) for c in self.coefficients], "stacker_clip": float(self.clip)}

    def predict(self, p: np.ndarray) -> np.ndarray:
        """P(up) for rows of slot outputs (n, k), as the core computes it."""
        z = self.intercept + stacker_features(np.atleast_2d(p), self.clip) @ np.asarray(self.coefficients)
        return 1.0 / (1.0 + np.exp(-z))


def fit_stacker(p_oof: np.ndarray, y: np.ndarray, *, C: float = 1.0, clip: float = DEFAULT_CLIP,
                **logistic_kwargs: Any) -> StackerFit:
    """Fit the stacker on out-of-fold slot outputs `p_oof` (n rows, k slots, in [0, 1]) and labels
    `y` (0/1): sklearn.linear_model.LogisticRegression(C=C, **logistic_kwargs) on
    stacker_features(p_oof, clip). Rows with a non-finite output or label are refused (ValueError),
    as are fewer than two classes."""
    from sklearn.linear_model import LogisticRegression

    p = np.asarray(p_oof, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] == 0 or p.shape[1] == 0:
        raise ValueError(f"p_oof must be a (rows, slots) array, got shape {p.shape}")
    yy = np.asarray(y)
    if yy.shape != (p.shape[0],):
        raise ValueError(f"y must have one label per row ({p.shape[0]}), got shape {yy.shape}")
    if not np.isfinite(p).all():
        raise ValueError("p_oof holds non-finite outputs: drop those rows first")
    if not np.isin(yy, (0, 1)).all():
        raise ValueError("y must be 0/1 labels")
    if np.unique(yy).size < 2:
        raise ValueError("y holds one class only: a stacker needs both")
    kwargs = {"max_iter": 1000, **logistic_kwargs}
    lr = LogisticRegression(C=C, **kwargs).fit(stacker_features(p, clip), yy.astype(np.int64))
    return StackerFit(float(lr.intercept_[0]), tuple(float(c) for c in lr.coef_[0]), float(clip), lr)


def slot_matrix(scores: np.ndarray, instrument: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(decision ts, outputs (n, k)) from a run's result.scores (one row per slot and decision,
    every slot recorded when an ensemble is configured), for one instrument (None: the only one).
    Decisions are in the run's order; a decision without all k slots is refused (ValueError)."""
    s = np.asarray(scores)
    if s.size == 0:
        raise ValueError("no scores")
    ids = np.unique(s["instrument"])
    if instrument is None:
        if ids.size != 1:
            raise ValueError(f"scores of several instruments ({ids.tolist()}): name one")
        instrument = int(ids[0])
    s = s[s["instrument"] == instrument]
    slots = np.unique(s["slot"])
    k = slots.size
    if s.size % k or not np.array_equal(slots, np.arange(slots[0], slots[0] + k)):
        raise ValueError("the scores do not hold every slot at every decision")
    rows = s.reshape(-1, k)
    if not (rows["slot"] == slots).all() or not (rows["ts"] == rows["ts"][:, :1]).all():
        raise ValueError("the scores do not hold every slot at every decision")
    return rows["ts"][:, 0].astype(np.int64), rows["p"].astype(np.float64)
