"""Calibration per regime with a pooled fallback, and calibration metrics per regime (METHODS.md §17).

A map is fitted for a regime only where its calibration rows hold at least `min_per_class` rows of
each class; every other regime (and the undefined regime -1, and any regime first seen later) uses
the pooled map. Each map is chosen among isotonic / Platt / beta on validation data
(bot4.research.calibrators.select_calibration) and is bounded away from 0 and 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bot4.research.calibration import _check_binary, brier, ece, log_loss
from bot4.research.calibrators import METHODS, FittedCalibration, select_calibration

MIN_PER_CLASS = 200


@dataclass
class RegimeCalibration:
    """A pooled calibration map plus one per regime that had enough rows of each class
    (min_per_class); rows of other regimes, or without a regime, use the pooled map.
    """

    pooled: FittedCalibration
    per_regime: dict = field(default_factory=dict)        # regime id -> FittedCalibration
    min_per_class: int = MIN_PER_CLASS
    selection: dict = field(default_factory=dict)         # "pooled" / regime id -> validation scores
    kind: str = ""                                        # what the regime ids mean (RegimeModel.labels kind)

    def apply(self, raw, regimes=None) -> np.ndarray:
        """Calibrated p: each row through its regime's map, or the pooled one."""
        p = np.asarray(raw, dtype=np.float64)
        out = self.pooled.apply(p)
        if regimes is None or not self.per_regime:
            return out
        r = np.asarray(regimes, dtype=np.int64)
        if r.shape != p.shape:
            raise ValueError(f"regimes must match the probabilities, got {r.shape} and {p.shape}")
        for reg, cal in self.per_regime.items():
            sel = r == reg
            if sel.any():
                out[sel] = cal.apply(p[sel])
        return out

    def to_dict(self) -> dict:
        """kind, min_per_class, pooled and per-regime maps and selection scores, JSON-able."""
        return {"kind": self.kind, "min_per_class": int(self.min_per_class), "pooled": self.pooled.to_dict(),
                "per_regime": {str(k): v.to_dict() for k, v in sorted(self.per_regime.items())},
                "selection": {str(k): v for k, v in self.selection.items()}}

    @classmethod
    def from_dict(cls, d: dict) -> RegimeCalibration:
        """The calibration written by to_dict."""
        return cls(pooled=FittedCalibration.from_dict(d["pooled"]),
                   per_regime={int(k): FittedCalibration.from_dict(v) for k, v in d.get("per_regime", {}).items()},
                   min_per_class=int(d.get("min_per_class", MIN_PER_CLASS)),
                   selection=dict(d.get("selection", {})), kind=str(d.get("kind", "")))


def fit_regime_calibration(raw, y, regimes=None, *, methods=METHODS, min_per_class: int = MIN_PER_CLASS,
                           purge_rows: int = 0, validation_fraction: float = 0.3, kind: str = "") -> RegimeCalibration:
    """Pooled map on every row, plus one map per regime that has enough rows of each class.
    Rows must be in time order (the validation part of each selection is the latest rows)."""
    p = np.asarray(raw, dtype=np.float64)
    t = _check_binary(y, p.size)
    if int(min_per_class) != min_per_class or min_per_class < 1:
        raise ValueError(f"min_per_class must be a positive integer, got {min_per_class!r}")
    sel = select_calibration(p, t, methods, validation_fraction=validation_fraction, purge_rows=purge_rows)
    out = RegimeCalibration(pooled=sel.chosen, min_per_class=int(min_per_class),
                            selection={"pooled": {"method": sel.chosen.method, "validation_log_loss": sel.scores}},
                            kind=kind)
    if regimes is None:
        return out
    r = np.asarray(regimes, dtype=np.int64)
    if r.shape != p.shape:
        raise ValueError(f"regimes must match the probabilities, got {r.shape} and {p.shape}")
    for reg in np.unique(r):
        if reg < 0:
            continue
        m = r == reg
        n1 = int(t[m].sum())
        n0 = int(m.sum()) - n1
        if min(n0, n1) < min_per_class:
            out.selection[int(reg)] = {"method": "pooled", "rows": int(m.sum()), "positives": n1,
                                       "reason": f"fewer than {min_per_class} rows of a class"}
            continue
        # the purge is in rows of the whole slice; within a regime it can only be shorter
        s = select_calibration(p[m], t[m], methods, validation_fraction=validation_fraction, purge_rows=purge_rows)
        out.per_regime[int(reg)] = s.chosen
        out.selection[int(reg)] = {"method": s.chosen.method, "rows": int(m.sum()), "positives": n1,
                                   "validation_log_loss": s.scores}
    return out


def metrics_by_regime(y, p, regimes=None, names: dict | None = None, n_bins: int = 10) -> dict:
    """Brier, log-loss, ECE (with its bin count) and base rate, pooled and per regime."""
    t = _check_binary(y)
    pr = np.asarray(p, dtype=np.float64)

    def one(mask):
        yy, pp = t[mask], pr[mask]
        if yy.size == 0:
            return {"rows": 0}
        return {"rows": int(yy.size), "base_rate": float(yy.mean()), "mean_p": float(pp.mean()),
                "brier": brier(yy, pp), "log_loss": log_loss(yy, pp), "ece": ece(yy, pp, n_bins),
                "ece_bins": int(n_bins)}

    out = {"all": one(np.ones(t.size, bool))}
    if regimes is not None:
        r = np.asarray(regimes, dtype=np.int64)
        if r.shape != t.shape:
            raise ValueError(f"regimes must match the labels, got {r.shape} and {t.shape}")
        for reg in np.unique(r):
            label = (names or {}).get(int(reg), "undefined" if reg < 0 else f"regime_{int(reg)}")
            out[label] = one(r == reg)
    return out
