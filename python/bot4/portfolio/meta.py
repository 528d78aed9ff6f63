"""The meta-weighter: blends the agents' outputs into conditional quantiles of the forward return,
per regime, with an isotonic-calibrated direction probability and an online calibration tracker.

Definitions (METHODS.md §3, §14):
- Inputs of a row: for each agent, (mu, sigma, confidence) of that row (bot4.portfolio.agents);
  the target is the forward return r_h (bp) at the meta-weighter's horizon. Rows where an agent
  has no view are left out of fitting and get NaN outputs. Fit it on the agents' out-of-fold
  outputs (bot4.portfolio.agents.cross_fit over purged folds), as in stacking: an agent's
  outputs on its own training rows are in-sample and would teach the blend to over-trust it.
- Quantiles at tau in TAUS, one model per tau: LightGBM's quantile objective
  (LGBMRegressor(objective="quantile", alpha=tau)) when lightgbm is installed, else linear
  quantile regression (sklearn QuantileRegressor, HiGHS, no penalty); `backend` forces either.
  Predicted quantiles are sorted per row (rearrangement), so they never cross.
- Regime-conditional: a separate set of models per regime with at least `min_regime_rows`
  training rows, and a pooled set for every other regime (and undefined regimes, -1).
- mu = q0.5, sigma = (q0.75 - q0.25) / 1.349 (the normal IQR).
- Raw direction probability P(r_h > 0) = Phi(mu / sigma); the isotonic map (sklearn
  IsotonicRegression via bot4.research.calibration.fit_isotonic) fitted on a calibration slice later
  than the training rows maps it to the realised frequency of up moves among rows that moved
  (r_h != 0). The calibrated p is clipped to [1 / (2 n), 1 - 1 / (2 n)], n the calibration rows
  (METHODS.md §17: never an exact 0 or 1 for sizing).
- Pinball loss L_tau(y, q) = max(tau (y - q), (tau - 1)(y - q)).
- `CalibrationTracker` keeps the Brier score and ECE (equal-width right-closed bins, as
  bot4.research.calibration.ece) of a stream of (p, y), over everything seen or a rolling window,
  updated in O(1) per observation.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.stats import norm

from bot4.errors import InputError
from bot4.portfolio.agents import AgentOutput, LinearQuantiles

TAUS = (0.1, 0.25, 0.5, 0.75, 0.9)
#: q0.75 - q0.25 of a normal in units of its standard deviation.
NORMAL_IQR = float(norm.ppf(0.75) - norm.ppf(0.25))
BACKENDS = ("auto", "lightgbm", "linear")
#: LightGBM defaults: small trees and many rows per leaf, since the inputs are a few noisy signals.
LGBM_PARAMS = {"n_estimators": 200, "learning_rate": 0.05, "num_leaves": 15, "min_child_samples": 100,
               "subsample": 1.0, "colsample_bytree": 1.0, "deterministic": True, "seed": 0, "n_jobs": 1,
               "verbose": -1}


def pinball(y, q, tau: float) -> float:
    """Mean pinball loss of quantile predictions q at level tau over the rows where both are finite."""
    y = np.asarray(y, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    ok = np.isfinite(y) & np.isfinite(q)
    if not ok.any():
        raise InputError("y", "no row with a finite target and prediction")
    d = y[ok] - q[ok]
    return float(np.mean(np.maximum(tau * d, (tau - 1.0) * d)))


def agent_matrix(outputs: list[AgentOutput]) -> tuple[np.ndarray, list[str]]:
    """(rows, 3 * agents) inputs: each agent's mu, sigma and confidence; and the column names."""
    if not outputs:
        raise InputError("outputs", "no agent outputs to blend")
    n = outputs[0].mu.size
    cols, names = [], []
    for o in outputs:
        if o.mu.size != n:
            raise InputError("outputs", f"agent '{o.agent}' has {o.mu.size} rows, the first has {n}")
        cols += [o.mu, o.sigma, np.where(o.valid, o.confidence, np.nan)]
        names += [f"{o.agent}.mu", f"{o.agent}.sigma", f"{o.agent}.confidence"]
    return np.column_stack(cols), names


def _backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise InputError("backend", f"must be one of {BACKENDS}, got {backend!r}")
    if backend != "auto":
        return backend
    try:
        import lightgbm  # noqa: F401
    except ImportError:
        return "linear"
    return "lightgbm"


class _LgbmQuantiles:
    """LightGBM quantile models at taus, sorted per row like LinearQuantiles."""

    def __init__(self, taus, params: dict):
        self.taus, self.params = tuple(taus), dict(params)
        self.models: list[Any] = []

    def fit(self, X, y) -> _LgbmQuantiles:
        from lightgbm import LGBMRegressor

        self.models = [LGBMRegressor(objective="quantile", alpha=float(t), **self.params).fit(X, y)
                       for t in self.taus]
        return self

    def predict(self, X) -> np.ndarray:
        ok = np.isfinite(X).all(axis=1)
        q = np.full((X.shape[0], len(self.taus)), np.nan)
        if ok.any():
            q[ok] = np.sort(np.column_stack([m.predict(X[ok]) for m in self.models]), axis=1)
        return q


@dataclass
class MetaOutput:
    """The blended view of every row: quantiles (rows, len(TAUS)) in bp, mu, sigma (bp), the raw
    and the isotonic-calibrated P(r_h > 0 | r_h != 0), and the regime used. NaN where an agent
    had no view (or before `calibrate`, for p)."""

    quantiles: np.ndarray
    mu: np.ndarray
    sigma: np.ndarray
    p_raw: np.ndarray
    p: np.ndarray
    regime: np.ndarray
    taus: tuple = TAUS


@dataclass
class MetaWeighter:
    """Regime-conditional quantile blend of agent outputs (module docstring for the definitions).
    `fit` on training rows, `calibrate` on a later slice, then `predict` on any rows."""

    taus: tuple = TAUS
    backend: str = "auto"
    min_regime_rows: int = 500
    max_rows: int = 20_000
    lgbm_params: dict = field(default_factory=lambda: dict(LGBM_PARAMS))
    models: dict = field(default_factory=dict)          # regime (None = pooled) -> quantile models
    calibrator: Any = None                               # IsotonicTable once calibrated
    clip: float = 0.0
    backend_used: str = ""
    names: list = field(default_factory=list)

    def __post_init__(self) -> None:
        taus = tuple(float(t) for t in self.taus)
        for need in (0.25, 0.5, 0.75):
            if need not in taus:
                raise InputError("taus", f"must include {need} (mu and sigma use it), got {taus}")
        if any(not 0 < t < 1 for t in taus):
            raise InputError("taus", f"must lie in (0, 1), got {taus}")
        self.taus = tuple(sorted(taus))
        self.backend_used = _backend(self.backend)

    def _new(self):
        if self.backend_used == "lightgbm":
            return _LgbmQuantiles(self.taus, self.lgbm_params)
        return LinearQuantiles(taus=self.taus, max_rows=self.max_rows)

    @staticmethod
    def _regime(outputs: list[AgentOutput], regime) -> np.ndarray:
        return np.asarray(outputs[0].regime if regime is None else regime, dtype=np.int64)

    def fit(self, outputs: list[AgentOutput], target, rows, regime=None) -> MetaWeighter:
        """Fit the quantile models on training `rows` (indices) of the agents' outputs against
        `target` (r_h in bp); `regime` defaults to the first agent's."""
        X, self.names = agent_matrix(outputs)
        y = np.asarray(target, dtype=np.float64)
        reg = self._regime(outputs, regime)
        idx = np.asarray(rows, dtype=np.int64)
        idx = idx[np.isfinite(X[idx]).all(axis=1) & np.isfinite(y[idx])]
        if idx.size < 50:
            raise InputError("rows", f"too few training rows with every agent's view and a target: {idx.size}")
        self.models = {None: self._new().fit(X[idx], y[idx])}
        for k in np.unique(reg[idx]):
            sel = idx[reg[idx] == k]
            if k >= 0 and sel.size >= self.min_regime_rows:
                self.models[int(k)] = self._new().fit(X[sel], y[sel])
        self.calibrator = None
        return self

    def quantiles(self, outputs: list[AgentOutput], regime=None) -> np.ndarray:
        """(rows, len(taus)) blended quantiles (bp), each row from its regime's models."""
        if not self.models:
            raise InputError("meta", "not fitted", "call fit(outputs, target, rows) first")
        X, _ = agent_matrix(outputs)
        reg = self._regime(outputs, regime)
        q = self.models[None].predict(X)
        for k, m in self.models.items():
            if k is not None and np.any(reg == k):
                sel = np.flatnonzero(reg == k)
                q[sel] = m.predict(X[sel])
        return q

    def _raw(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        mu = q[:, self.taus.index(0.5)]
        sigma = (q[:, self.taus.index(0.75)] - q[:, self.taus.index(0.25)]) / NORMAL_IQR
        with np.errstate(divide="ignore", invalid="ignore"):
            p = np.where(sigma > 0, norm.cdf(mu / sigma), np.where(mu > 0, 1.0, np.where(mu < 0, 0.0, 0.5)))
        return mu, sigma, np.where(np.isfinite(mu), p, np.nan)

    def calibrate(self, outputs: list[AgentOutput], target, rows, regime=None) -> MetaWeighter:
        """Fit the isotonic map of the raw P(r_h > 0) on calibration `rows` (later than the
        training rows) whose target moved (r_h != 0)."""
        from bot4.research.calibration import fit_isotonic

        y = np.asarray(target, dtype=np.float64)
        idx = np.asarray(rows, dtype=np.int64)
        _, _, p = self._raw(self.quantiles(outputs, regime)[idx])
        ok = np.isfinite(p) & np.isfinite(y[idx]) & (y[idx] != 0)
        if ok.sum() < 20:
            raise InputError("rows", f"too few calibration rows with a view and a move: {int(ok.sum())}")
        up = (y[idx][ok] > 0).astype(np.int8)
        if up.min() == up.max():
            raise InputError("rows", "the calibration rows need both up and down moves")
        self.calibrator = fit_isotonic(p[ok], up)
        self.clip = 1.0 / (2.0 * ok.sum())
        return self

    def predict(self, outputs: list[AgentOutput], regime=None) -> MetaOutput:
        """The blended quantiles, mu, sigma and direction probabilities of every row."""
        q = self.quantiles(outputs, regime)
        mu, sigma, p_raw = self._raw(q)
        if self.calibrator is None:
            p = np.full_like(p_raw, np.nan)
        else:
            p = np.where(np.isfinite(p_raw),
                         np.clip(self.calibrator.apply(np.nan_to_num(p_raw)), self.clip, 1.0 - self.clip), np.nan)
        return MetaOutput(quantiles=q, mu=mu, sigma=sigma, p_raw=p_raw, p=p, regime=self._regime(outputs, regime),
                          taus=self.taus)


def evaluate(meta: MetaOutput, outputs: list[AgentOutput], target, rows, n_bins: int = 10) -> dict:
    """Out-of-sample report on `rows`: the meta-weighter's pinball loss at each tau and that of
    each agent's own quantiles at 0.1 / 0.5 / 0.9 (same rows: those where every agent and the
    meta-weighter have a view and the target is defined), the coverage of [q0.1, q0.9], and the
    Brier score and ECE of the direction probability before and after isotonic calibration
    (rows that moved)."""
    from bot4.research.calibration import brier, ece

    y = np.asarray(target, dtype=np.float64)
    idx = np.asarray(rows, dtype=np.int64)
    ok = np.isfinite(y[idx]) & np.isfinite(meta.quantiles[idx]).all(axis=1)
    for o in outputs:
        ok &= np.isfinite(o.quantiles[idx]).all(axis=1)
    idx = idx[ok]
    if idx.size == 0:
        raise InputError("rows", "no evaluation row with every view and a target")
    tau_list = [float(t) for t in meta.taus]
    q = meta.quantiles[idx]
    out: dict = {"rows": int(idx.size), "pinball": {}, "agents": {}}
    for j, t in enumerate(tau_list):
        out["pinball"][str(t)] = pinball(y[idx], q[:, j], t)
    for o in outputs:
        out["agents"][o.agent] = {str(t): pinball(y[idx], o.quantiles[idx, j], t) for j, t in enumerate((0.1, 0.5, 0.9))}
    lo, hi = q[:, 0], q[:, -1]
    out["coverage"] = {"interval": [tau_list[0], tau_list[-1]], "nominal": tau_list[-1] - tau_list[0],
                       "empirical": float(np.mean((y[idx] >= lo) & (y[idx] <= hi)))}
    moved = idx[y[idx] != 0]
    up = (y[moved] > 0).astype(np.int8)
    cal: dict = {"rows": int(moved.size), "n_bins": int(n_bins), "up_rate": float(up.mean()) if moved.size else None}
    for name, p in (("raw", meta.p_raw[moved]), ("isotonic", meta.p[moved])):
        if moved.size and np.isfinite(p).all():
            cal[name] = {"brier": brier(up, p), "ece": ece(up, p, n_bins)}
    out["calibration"] = cal
    return out


class CalibrationTracker:
    """Online Brier score and ECE of a stream of predicted probabilities p and outcomes y (0/1).

    window=None: over every observation so far; window=n: over the last n (a ring of them; the
    one leaving is subtracted from its bin). ECE uses n_bins equal-width right-closed bins, the
    binning of bot4.research.calibration (so it equals `ece(y, p)` over the same observations).
    A p outside [0, 1] or not finite, or a y other than 0/1, is refused with InputError and not
    counted."""

    def __init__(self, n_bins: int = 10, window: int | None = None):
        if int(n_bins) != n_bins or n_bins < 1:
            raise InputError("n_bins", f"must be a positive integer, got {n_bins!r}")
        if window is not None and (int(window) != window or window < 1):
            raise InputError("window", f"must be a positive integer or None, got {window!r}")
        self.n_bins, self.window = int(n_bins), window
        self._edges = np.linspace(0.0, 1.0, self.n_bins + 1)[1:-1]
        self._count = np.zeros(self.n_bins, np.int64)
        self._sum_p = np.zeros(self.n_bins)
        self._sum_y = np.zeros(self.n_bins)
        self._sq = 0.0
        self._ring: deque = deque()
        self.seen = 0

    def _bin(self, p: float) -> int:
        return int(np.searchsorted(self._edges, p))

    def update(self, p: float, y: int) -> None:
        """Add one observation (and drop the oldest when the window is full)."""
        p = float(p)
        if not (np.isfinite(p) and 0.0 <= p <= 1.0):
            raise InputError("p", f"must be a probability in [0, 1], got {p!r}")
        if y not in (0, 1):
            raise InputError("y", f"must be 0 or 1, got {y!r}")
        b = self._bin(p)
        self._count[b] += 1
        self._sum_p[b] += p
        self._sum_y[b] += y
        self._sq += (p - y) ** 2
        self.seen += 1
        if self.window is not None:
            self._ring.append((b, p, int(y)))
            if len(self._ring) > self.window:
                ob, op, oy = self._ring.popleft()
                self._count[ob] -= 1
                self._sum_p[ob] -= op
                self._sum_y[ob] -= oy
                self._sq -= (op - oy) ** 2

    @property
    def count(self) -> int:
        """Observations the figures cover."""
        return int(self._count.sum())

    @property
    def brier(self) -> float:
        """Mean (p - y)^2 (NaN before the first observation)."""
        n = self.count
        return max(self._sq, 0.0) / n if n else float("nan")

    @property
    def ece(self) -> float:
        """Sum over bins of |B| / n * |mean y - mean p| (NaN before the first observation)."""
        n = self.count
        if not n:
            return float("nan")
        nz = self._count > 0
        return float(np.sum(np.abs(self._sum_y[nz] - self._sum_p[nz])) / n)
