"""Isotonic calibration exported as a breakpoint table, and calibration metrics (METHODS.md §3).

`IsotonicTable.apply` is the reference the C++ port reproduces: linear interpolation between the
breakpoints and clipping outside them, exactly what IsotonicRegression.predict does with
out_of_bounds='clip' (it is not a step function).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EPS = np.finfo(np.float64).eps  # log-loss clip; the same as sklearn's for float64 input


@dataclass(frozen=True)
class IsotonicTable:
    """Breakpoints of a fitted isotonic map: x strictly increasing, y non-decreasing in [0, 1]."""
    x: np.ndarray
    y: np.ndarray

    def __post_init__(self):
        x = np.ascontiguousarray(self.x, dtype=np.float64)
        y = np.ascontiguousarray(self.y, dtype=np.float64)
        if x.ndim != 1 or x.shape != y.shape or x.size == 0:
            raise ValueError(f"x and y must be non-empty 1-D arrays of equal length, got {x.shape}, {y.shape}")
        if np.any(np.diff(x) <= 0) or not np.all(np.isfinite(x)) or not np.all(np.isfinite(y)):
            raise ValueError("x must be finite and strictly increasing, y finite")
        object.__setattr__(self, "x", x)
        object.__setattr__(self, "y", y)

    def apply(self, scores):
        """Calibrated probabilities: np.interp clips to y[0] / y[-1] outside [x[0], x[-1]]."""
        return np.interp(np.asarray(scores, dtype=np.float64), self.x, self.y)

    def to_dict(self) -> dict:
        """{'x': [...], 'y': [...]} (JSON-able; from_dict reads it back)."""
        return {"x": self.x.tolist(), "y": self.y.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> IsotonicTable:
        """The table written by to_dict (x and y as float64 arrays)."""
        return cls(np.asarray(d["x"], dtype=np.float64), np.asarray(d["y"], dtype=np.float64))


def fit_isotonic(scores, y, sample_weight=None) -> IsotonicTable:
    """Fit IsotonicRegression(out_of_bounds='clip', y_min=0, y_max=1) and export its thresholds.

    Fit on the calibration slice only: later than the training data, earlier than the test data.
    """
    from sklearn.isotonic import IsotonicRegression  # imported here: only fitting needs sklearn

    s = np.asarray(scores, dtype=np.float64)
    t = _check_binary(y, s.shape[0])
    iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
    iso.fit(s, t, sample_weight=sample_weight)
    return IsotonicTable(np.asarray(iso.X_thresholds_, dtype=np.float64),
                         np.asarray(iso.y_thresholds_, dtype=np.float64))


def _check_binary(y, n=None) -> np.ndarray:
    t = np.asarray(y, dtype=np.float64)
    if t.ndim != 1 or t.size == 0 or (n is not None and t.size != n):
        raise ValueError(f"y must be a non-empty 1-D array matching the scores, got shape {t.shape}")
    if not np.all((t == 0) | (t == 1)):
        raise ValueError("y must contain only 0 and 1")
    return t


def _check(y, p):
    pr = np.asarray(p, dtype=np.float64)
    if pr.ndim != 1:
        raise ValueError(f"p must be 1-D, got shape {pr.shape}")
    t = _check_binary(y, pr.size)
    if not np.all((pr >= 0) & (pr <= 1)):
        raise ValueError("p must lie in [0, 1]")
    return t, pr


def brier(y, p) -> float:
    """Mean squared error of the probability of the positive class."""
    t, pr = _check(y, p)
    return float(np.mean((pr - t) ** 2))


def log_loss(y, p) -> float:
    """Mean negative log-likelihood (natural log), p clipped to [eps, 1 - eps] as sklearn does."""
    t, pr = _check(y, p)
    pc = np.clip(pr, EPS, 1.0 - EPS)
    return float(-np.mean(t * np.log(pc) + (1.0 - t) * np.log1p(-pc)))


def _bins(p: np.ndarray, n_bins: int) -> np.ndarray:
    """Right-closed equal-width bins ((m-1)/M, m/M], 0 in the first: sklearn's calibration_curve."""
    if int(n_bins) != n_bins or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    edges = np.linspace(0.0, 1.0, int(n_bins) + 1)
    return np.searchsorted(edges[1:-1], p)  # side="left": p on an edge goes to the lower bin


def reliability_curve(y, p, n_bins: int = 10):
    """(mean p, mean y, count) per non-empty bin, in bin order. Report the counts with the curve."""
    t, pr = _check(y, p)
    ids = _bins(pr, n_bins)
    count = np.bincount(ids, minlength=int(n_bins))
    sum_p = np.bincount(ids, weights=pr, minlength=int(n_bins))
    sum_y = np.bincount(ids, weights=t, minlength=int(n_bins))
    nz = count > 0
    return sum_p[nz] / count[nz], sum_y[nz] / count[nz], count[nz].astype(np.int64)


def _gaps(y, p, n_bins):
    mean_p, mean_y, count = reliability_curve(y, p, n_bins)
    return np.abs(mean_y - mean_p), count


def ece(y, p, n_bins: int = 10) -> float:
    """Expected calibration error of the positive class: sum over bins of |B|/n * |mean y - mean p|."""
    gap, count = _gaps(y, p, n_bins)
    return float(np.sum(count * gap) / np.sum(count))


def mce(y, p, n_bins: int = 10) -> float:
    """Maximum calibration error: the largest |mean y - mean p| over non-empty bins."""
    gap, _ = _gaps(y, p, n_bins)
    return float(np.max(gap))
