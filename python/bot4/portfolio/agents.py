"""Signal agents: per instrument and decision time, an expected return with its uncertainty.

An agent reads the feature rows of `bot4.features.compute` (a FeatureSet, several instruments
interleaved in time order) and emits, vectorised over the rows, an `AgentOutput`: mu (expected
return of the instrument's mid over the next `horizon` feature rows of that instrument, in bp),
sigma (its uncertainty, bp), the conditional quantiles q0.1 / q0.5 / q0.9 (bp), confidence,
regime, the agent id and a model version (a hash of the fitted parameters). `AgentOutput.signals`
turns rows into bus messages (bot4.contracts.Signal).

Every quantity comes from one row's features and parameters fitted on training rows only
(`fit(features, rows)`, where the caller passes rows whose labels end before anything it will
evaluate on, e.g. a purged fold of bot4.research.splits), so an output never depends on a later
row: truncating the data after any row leaves the earlier outputs unchanged (tested).

Stated mappings (METHODS.md §14):
- Quantiles: linear quantile regression of the forward return r_h (bp) on the agent's inputs at
  tau = 0.1, 0.5, 0.9 (`LinearQuantiles`, sklearn QuantileRegressor, HiGHS, no penalty); the
  three are sorted per row (rearrangement, Chernozhukov et al. 2010), so they never cross.
- sigma = (q0.9 - q0.1) / 2.5631, the normal's 10-90 % width (2 * Phi^-1(0.9)).
- mu = q0.5 for the rule agents (micro-price/OFI, volatility breakout, mean reversion).
- Direction agent: a zoo classifier's P(up | moved), calibrated by isotonic regression on a later
  slice of the training rows, turned into mu = (2p - 1) * E|r_h|, with E|r_h| the mean absolute
  forward return of the training rows in the row's volatility regime (exact when |r_h| is
  independent of its sign); sigma from its conditional quantiles given (2p - 1, ewma_vol).
- confidence = |2 P(r_h > 0) - 1| in [0, 1]: P = p for the direction agent and Phi(mu / sigma)
  for the others (0: no view, 1: certain of the sign).
- regime: the row's volatility tercile of `ewma_vol` with edges from the training rows
  (`VolRegime`; -1 where undefined); any other causal labelling can be passed to `predict`.

`cross_fit` gives out-of-fold outputs over purged folds, the inputs a meta-weighter
(bot4.portfolio.meta) is fitted on.

In the core: fitting stays here; `core_agent` exports a fitted built-in agent's parameters once to
bot4._core.portfolio.SignalAgent (core/portfolio/signal_agent.hpp), which evaluates one feature
row at a time (the per-event path) or a matrix as a loop over that path, and `predict_core` is
`predict` through it (the same AgentOutput; `predict` stays the reference). The direction agent's
classifier stays in its framework: its raw P(up) per row (`model_output`) is passed in beside the
features and the core applies the isotonic map and the rest of the mapping, except for the
logistic classifier (the default kind): its parameters (the imputer's medians, the scaler's means
and scales, the coefficients and intercept) are exported too and the core evaluates it on the row
(`logistic_proba` is that arithmetic here, the reference; it equals sklearn's float32
`predict_proba` to float32 precision and the core bit for bit). Any other classifier kind
(xgboost, lightgbm, mlp) still runs in its framework and its P(up) is passed in (`model_output`).
"""

from __future__ import annotations

import hashlib
import pickle
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.stats import norm

from bot4.errors import InputError

TAUS = (0.1, 0.5, 0.9)
#: q0.9 - q0.1 of a normal in units of its standard deviation: 2 * Phi^-1(0.9).
NORMAL_10_90 = float(2.0 * norm.ppf(0.9))
MID = "mid_price"
VOL = "ewma_vol"


def _column(features, name: str) -> np.ndarray:
    try:
        return np.asarray(features.matrix[:, list(features.names).index(name)], dtype=np.float64)
    except ValueError:
        raise InputError("features", f"the feature rows have no column '{name}' (an agent needs it)") from None


def forward_returns(features, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """(r_bp, end_row): r_bp[i] = (mid_j / mid_i - 1) * 1e4 with j the `horizon`-th later feature
    row of row i's instrument, and end_row[i] = j (the global row index, n when the window runs
    past the data; r is NaN there and where a mid is not finite and positive). The label of row i
    uses rows [i, end_row[i]]: purge with it (bot4.research.splits takes timestamps[end_row])."""
    if int(horizon) != horizon or horizon < 1:
        raise InputError("horizon", f"must be a positive integer (rows), got {horizon!r}")
    h = int(horizon)
    mid = _column(features, MID)
    inst = np.asarray(features.instruments)
    n = mid.size
    r = np.full(n, np.nan)
    end = np.full(n, n, dtype=np.int64)
    for k in np.unique(inst):
        idx = np.flatnonzero(inst == k)
        if idx.size <= h:
            continue
        i, j = idx[:-h], idx[h:]
        end[i] = j
        m0, m1 = mid[i], mid[j]
        ok = np.isfinite(m0) & np.isfinite(m1) & (m0 > 0) & (m1 > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            r[i] = np.where(ok, (m1 / m0 - 1.0) * 1e4, np.nan)
    return r, end


def label_end_times(features, end_row: np.ndarray) -> np.ndarray:
    """t1 for bot4.research.splits: the timestamp of each row's label end row (the last timestamp
    for windows past the data end, whose labels are undefined and must not be used)."""
    t = np.asarray(features.timestamps, dtype=np.int64)
    return t[np.minimum(end_row, t.size - 1)] if t.size else t


def _rows(rows, n: int) -> np.ndarray:
    idx = np.asarray(rows)
    if idx.dtype == bool:
        if idx.shape != (n,):
            raise InputError("rows", f"a boolean row mask must have shape ({n},), got {idx.shape}")
        return np.flatnonzero(idx)
    idx = idx.astype(np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise InputError("rows", f"row indices must lie in [0, {n}), got [{idx.min()}, {idx.max()}]")
    return idx


def _even_subsample(n: int, max_rows: int) -> np.ndarray:
    """At most max_rows indices spread evenly over [0, n) (deterministic, keeps time coverage)."""
    if n <= max_rows:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max_rows).round().astype(np.int64))


def _version(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(np.asarray(a, dtype=np.float64)).tobytes())
    return h.hexdigest()[:16]


@dataclass
class LinearQuantiles:
    """Linear conditional quantiles q_tau(x) = b_tau + x . w_tau at each tau in `taus`, fitted by
    sklearn.linear_model.QuantileRegressor(quantile=tau, alpha=0, solver="highs") on the finite
    rows (at most max_rows, spread evenly in time). `predict` sorts each row's quantiles."""

    taus: tuple = TAUS
    max_rows: int = 20_000
    coef: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))      # (len(taus), p)
    intercept: np.ndarray = field(default_factory=lambda: np.zeros(0))     # (len(taus),)
    n_fit: int = 0

    def fit(self, X, y) -> LinearQuantiles:
        """Fit on rows where X and y are finite; InputError when fewer than 10 such rows remain."""
        from sklearn.linear_model import QuantileRegressor

        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if X.ndim != 2 or y.shape != (X.shape[0],):
            raise InputError("X", f"X must be (rows, p) and y (rows,), got {X.shape} and {y.shape}")
        ok = np.isfinite(X).all(axis=1) & np.isfinite(y)
        X, y = X[ok], y[ok]
        if y.size < max(10, X.shape[1] + 2):
            raise InputError("rows", f"too few finite training rows for a quantile fit: {y.size}")
        pick = _even_subsample(y.size, self.max_rows)
        X, y = X[pick], y[pick]
        coef, icpt = [], []
        for tau in self.taus:
            m = QuantileRegressor(quantile=float(tau), alpha=0.0, solver="highs").fit(X, y)
            coef.append(m.coef_)
            icpt.append(m.intercept_)
        self.coef, self.intercept, self.n_fit = np.array(coef), np.array(icpt, dtype=np.float64), int(y.size)
        return self

    def predict(self, X) -> np.ndarray:
        """(rows, len(taus)) quantiles, sorted along each row; NaN rows where X is not finite."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.coef.shape[1]:
            raise InputError("X", f"must have {self.coef.shape[1]} columns, got shape {X.shape}")
        ok = np.isfinite(X).all(axis=1)
        q = np.full((X.shape[0], len(self.taus)), np.nan)
        q[ok] = np.sort(X[ok] @ self.coef.T + self.intercept, axis=1)
        return q


@dataclass
class VolRegime:
    """Volatility regime of a row: the bucket of its `ewma_vol` between edges (training-row
    quantiles, default terciles: 0 low, 1 mid, 2 high); -1 where ewma_vol is not finite."""

    edges: np.ndarray

    @classmethod
    def fit(cls, features, rows, quantiles=(1 / 3, 2 / 3)) -> VolRegime:
        """Edges from the ewma_vol of the training `rows` (indices or a boolean mask)."""
        v = _column(features, VOL)[_rows(rows, len(features.timestamps))]
        v = v[np.isfinite(v)]
        if v.size == 0:
            raise InputError("rows", "no finite ewma_vol on the training rows: cannot set regime edges")
        return cls(edges=np.quantile(v, quantiles))

    @property
    def n_regimes(self) -> int:
        return int(self.edges.size) + 1

    def labels(self, features) -> np.ndarray:
        """int64 regime of every row."""
        v = _column(features, VOL)
        lab = np.searchsorted(self.edges, np.where(np.isfinite(v), v, 0.0), side="right")
        return np.where(np.isfinite(v), lab, -1).astype(np.int64)


@dataclass
class AgentOutput:
    """One agent's view of every feature row. Arrays have one entry per row; mu, sigma and the
    quantiles are NaN (and confidence 0) where the agent has no view (an input undefined)."""

    agent: str
    model_version: str
    horizon: int                  # feature rows of the row's instrument
    timestamps: np.ndarray        # int64 ns, engine clock
    instruments: np.ndarray       # uint32
    mu: np.ndarray                # bp
    sigma: np.ndarray             # bp
    quantiles: np.ndarray         # (rows, 3) bp at TAUS
    confidence: np.ndarray        # [0, 1]
    regime: np.ndarray            # int64, -1 undefined

    @property
    def valid(self) -> np.ndarray:
        """Rows where the agent has a view (finite mu and sigma)."""
        return np.isfinite(self.mu) & np.isfinite(self.sigma)

    def signals(self, rows=None, trace: int = 0) -> list:
        """bot4.contracts.Signal messages for `rows` (default: every valid row); rows without a
        view are skipped (they have no finite expectation to send)."""
        from bot4.contracts import Signal

        idx = np.flatnonzero(self.valid) if rows is None else _rows(rows, self.mu.size)
        out = []
        for i in idx:
            if not (np.isfinite(self.mu[i]) and np.isfinite(self.sigma[i])):
                continue
            q = self.quantiles[i]
            out.append(Signal(ts=int(self.timestamps[i]), instrument=int(self.instruments[i]), agent=self.agent,
                              model_version=self.model_version, mu=float(self.mu[i]), sigma=float(self.sigma[i]),
                              q10=float(q[0]), q50=float(q[1]), q90=float(q[2]), horizon=int(self.horizon),
                              horizon_unit="rows", confidence=float(self.confidence[i]),
                              regime=int(self.regime[i]), trace=int(trace)))
        return out


def _confidence(p_up: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(p_up), np.abs(2.0 * p_up - 1.0), 0.0)


class QuantileAgent:
    """An agent whose inputs are a few columns built from one feature row (`inputs`), with its
    forward-return quantiles from `LinearQuantiles` and mu = q0.5. Subclasses define `inputs`.
    Inputs named in `neutral_if_undefined` count as 0 (no deviation / no flow) where undefined,
    e.g. a Bollinger z of a flat window (0/0); any other undefined input means no view."""

    name = "agent"
    neutral_if_undefined: tuple[str, ...] = ()

    def __init__(self, horizon: int = 100, max_rows: int = 20_000):
        if int(horizon) != horizon or horizon < 1:
            raise InputError("horizon", f"must be a positive integer (rows), got {horizon!r}")
        self.horizon = int(horizon)
        self.quantiles = LinearQuantiles(max_rows=max_rows)
        self.regime: VolRegime | None = None
        self.model_version = ""

    def _get(self, features, name: str) -> np.ndarray:
        c = _column(features, name)
        return np.where(np.isfinite(c), c, 0.0) if name in self.neutral_if_undefined else c

    def inputs(self, features) -> np.ndarray:
        """(rows, p) regressors of each row, from that row's features only."""
        raise NotImplementedError

    def fit(self, features, rows) -> QuantileAgent:
        """Fit the quantiles of r_h on the training `rows` (indices or mask) whose labels are
        defined; the caller purges rows whose label windows reach its evaluation data."""
        idx = _rows(rows, len(features.timestamps))
        r, _ = forward_returns(features, self.horizon)
        self.regime = VolRegime.fit(features, idx)
        self.quantiles.fit(self.inputs(features)[idx], r[idx])
        self.model_version = _version(self.quantiles.coef, self.quantiles.intercept, self.regime.edges,
                                      [self.horizon])
        return self

    def _check_fitted(self) -> None:
        if self.regime is None:
            raise InputError("agent", f"agent '{self.name}' is not fitted: call fit(features, rows) first")

    def core_spec(self) -> dict[str, Any]:
        """The fitted parameters as bot4._core.portfolio.SignalAgent takes them (without the rows'
        feature names); InputError for an agent the core has no twin of (a subclass with its own
        inputs: evaluate it with `predict`)."""
        self._check_fitted()
        assert self.regime is not None
        if not has_core_twin(self):
            raise InputError("agent", f"{type(self).__name__} has no core twin (the core evaluates "
                             f"{', '.join(k.__name__ for k in _CORE_KINDS)}): use predict",
                             suggest={"agent_eval": "python"})
        cols = list(self._core_columns())
        return {"kind": self.name, "name": self.name, "model_version": self.model_version,
                "horizon": self.horizon, "columns": cols, "neutral": [c in self.neutral_if_undefined for c in cols],
                "vol_column": VOL, "band": float(getattr(self, "band", 0.0)), "taus": [float(t) for t in self.quantiles.taus],
                "coef": np.ascontiguousarray(self.quantiles.coef, np.float64),
                "intercept": np.ascontiguousarray(self.quantiles.intercept, np.float64),
                "normal_10_90": NORMAL_10_90, "regime_edges": [float(e) for e in self.regime.edges],
                "iso_x": [], "iso_y": [], "abs_return": []}

    def _core_columns(self) -> tuple[str, ...]:
        return tuple(getattr(self, "columns", ()))

    def model_output(self, features) -> np.ndarray | None:
        """What the core reads beside the feature rows (None: nothing; the direction agent: its
        classifier's raw P(up) per row)."""
        return None

    def predict(self, features, regime=None) -> AgentOutput:
        """The agent's output on every row (`regime`: an int array to use instead of VolRegime)."""
        self._check_fitted()
        assert self.regime is not None
        q = self.quantiles.predict(self.inputs(features))
        mu = q[:, 1]
        sigma = (q[:, 2] - q[:, 0]) / NORMAL_10_90
        with np.errstate(divide="ignore", invalid="ignore"):
            p_up = np.where(sigma > 0, norm.cdf(mu / sigma), np.where(mu > 0, 1.0, np.where(mu < 0, 0.0, 0.5)))
        p_up = np.where(np.isfinite(mu), p_up, np.nan)
        return self._output(features, mu, sigma, q, _confidence(p_up), regime)

    def _output(self, features, mu, sigma, q, confidence, regime) -> AgentOutput:
        assert self.regime is not None
        reg = self.regime.labels(features) if regime is None else np.asarray(regime, dtype=np.int64)
        return AgentOutput(agent=self.name, model_version=self.model_version, horizon=self.horizon,
                           timestamps=np.asarray(features.timestamps, dtype=np.int64),
                           instruments=np.asarray(features.instruments), mu=mu, sigma=sigma, quantiles=q,
                           confidence=confidence, regime=reg)


class MicropriceOFIAgent(QuantileAgent):
    """Short-horizon order-flow agent: inputs micro-price offset (ticks), L1 order-flow imbalance
    over the flow window normalised by depth (Cont-Kukanov-Stoikov), L1 queue imbalance, trade
    imbalance, and ewma_vol (bp) so the quantile spread scales with volatility."""

    name = "microprice_ofi"
    columns = ("microprice_offset", "ofi_l1_norm", "queue_imbalance_l1", "trade_imbalance", VOL)
    neutral_if_undefined = ("ofi_l1_norm", "trade_imbalance")

    def __init__(self, horizon: int = 20, max_rows: int = 20_000):
        super().__init__(horizon, max_rows)

    def inputs(self, features) -> np.ndarray:
        """(rows, p) regressors of each row, from that row's features only (class docstring)."""
        return np.column_stack([self._get(features, c) for c in self.columns])


class _BandAgent(QuantileAgent):
    """An agent reading the Bollinger z against a band of +-`band` standard deviations."""

    def __init__(self, horizon: int = 100, band: float = 2.0, max_rows: int = 20_000):
        super().__init__(horizon, max_rows)
        if not band > 0:
            raise InputError("band", f"must be > 0, got {band!r}")
        self.band = float(band)


class VolBreakoutAgent(_BandAgent):
    """Volatility breakout: the excess of the Bollinger z beyond +-band, sign(z) * max(|z| - band, 0)
    (0 inside the band), the EMA(5)/EMA(20) trend and ewma_vol (bp)."""

    name = "vol_breakout"
    neutral_if_undefined = ("bollinger_z", "ema_cross_5_20")
    columns = ("bollinger_z", "ema_cross_5_20", VOL)   # what inputs reads, in order

    def inputs(self, features) -> np.ndarray:
        """(rows, p) regressors of each row, from that row's features only (class docstring)."""
        z = self._get(features, "bollinger_z")
        breakout = np.sign(z) * np.maximum(np.abs(z) - self.band, 0.0)
        return np.column_stack([breakout, self._get(features, "ema_cross_5_20"), self._get(features, VOL)])


class MeanReversionAgent(_BandAgent):
    """Mean reversion inside the band: the Bollinger z clipped to +-band, the deviation from the
    trade VWAP (bp), the RSI centred and scaled to [-1, 1], and ewma_vol (bp)."""

    name = "mean_reversion"
    neutral_if_undefined = ("bollinger_z", "vwap_deviation")
    columns = ("bollinger_z", "vwap_deviation", "rsi", VOL)   # what inputs reads, in order

    def inputs(self, features) -> np.ndarray:
        """(rows, p) regressors of each row, from that row's features only (class docstring)."""
        z = np.clip(self._get(features, "bollinger_z"), -self.band, self.band)
        rsi = (self._get(features, "rsi") - 50.0) / 50.0
        return np.column_stack([z, self._get(features, "vwap_deviation"), rsi, self._get(features, VOL)])


#: Feature columns the direction model never sees: price levels, which do not carry over in time.
LEVEL_COLUMNS = ("mid_ticks", "mid_price")


def logistic_parts(model) -> dict[str, Any]:
    """The fitted bot4.research.zoo logistic pipeline (median imputer, standard scaler, binary
    LogisticRegression) as float32 parameter vectors: median, mean, scale, coef and intercept
    (InputError for another pipeline)."""
    steps = list(getattr(model, "steps", None) or [])
    names = [n for n, _ in steps]
    if names != ["impute", "scale", "model"]:
        raise InputError("model", f"not a bot4 logistic pipeline (steps {names})")
    imp, sc, lr = (s for _, s in steps)
    coef = np.asarray(lr.coef_)
    if coef.shape[0] != 1 or list(lr.classes_) != [0, 1]:
        raise InputError("model", "the logistic classifier must be binary with classes [0, 1]")
    f32 = np.float32
    mean = np.zeros(coef.shape[1], f32) if sc.mean_ is None else np.asarray(sc.mean_).astype(f32)
    scale = np.ones(coef.shape[1], f32) if sc.scale_ is None else np.asarray(sc.scale_).astype(f32)
    return {"median": np.asarray(imp.statistics_).astype(f32), "mean": mean, "scale": scale,
            "coef": coef[0].astype(f32), "intercept": f32(np.asarray(lr.intercept_)[0])}


def logistic_proba(parts: dict[str, Any], X) -> np.ndarray:
    """P(class 1) of the logistic pipeline `parts` (logistic_parts) on rows X, the arithmetic the
    core's direction agent runs (core/portfolio/signal_agent.hpp): in float32 as sklearn does, NaN ->
    the column's median, (x - mean) / scale; then z = sum_j x_j coef_j left to right plus the
    intercept in double and 1 / (1 + exp(-z)) with the C library's exp (math.exp), so the two agree
    bit for bit. sklearn's own predict_proba sums and takes the sigmoid in float32 (BLAS order):
    the two agree to float32 precision."""
    with np.errstate(over="ignore", invalid="ignore"):   # beyond float32: inf, as the core's cast
        x = np.array(X, dtype=np.float32, copy=True)
        if x.ndim != 2 or x.shape[1] != parts["coef"].size:
            raise InputError("X", f"must be rows x {parts['coef'].size} columns, got shape {x.shape}")
        x = np.where(np.isnan(x), parts["median"], x)
        x = (x - parts["mean"]) / parts["scale"]              # float32 throughout
        z = np.zeros(x.shape[0])
        for j, c in enumerate(parts["coef"].astype(np.float64)):
            z += x[:, j].astype(np.float64) * c               # each product exact in double
        z += float(parts["intercept"])
        e = np.fromiter(map(_exp, (-z).tolist()), np.float64, count=z.size)
        return 1.0 / (1.0 + e)


def _exp(v: float) -> float:
    """The C library's exp (math.exp, which raises where exp overflows: inf, as std::exp)."""
    import math

    try:
        return math.exp(v)
    except OverflowError:
        return math.inf


class DirectionAgent(QuantileAgent):
    """The calibrated direction model as (mu, sigma). A bot4.research.zoo classifier (default
    logistic) on the feature rows learns P(r_h > 0 | r_h != 0) on the first `fit_fraction` of the
    training rows; an isotonic map (bot4.research.calibration) fitted on the rest calibrates it,
    after dropping the classifier rows whose labels reach that slice. Then
    mu = (2p - 1) * E|r_h| (E|r_h| per volatility regime, training rows), and sigma and the
    quantiles come from linear quantile regression of r_h on (2p - 1, ewma_vol) over the
    calibration slice (out of the classifier's sample, so p is not overconfident there)."""

    name = "direction"

    def __init__(self, horizon: int = 100, kind: str = "logistic", params: dict | None = None,
                 fit_fraction: float = 0.7, max_rows: int = 20_000):
        super().__init__(horizon, max_rows)
        if not 0 < fit_fraction < 1:
            raise InputError("fit_fraction", f"must be in (0, 1), got {fit_fraction!r}")
        self.kind = kind
        self.params = dict(params or ({"max_iter": 500} if kind == "logistic" else {}))
        self.fit_fraction = float(fit_fraction)
        self.columns: list[int] = []
        self.column_names: list[str] = []   # the classifier's feature columns, by name
        self.model: Any = None
        self._logistic: dict[str, Any] | None = None   # logistic_parts of a logistic model
        self.calibrator: Any = None  # bot4.research.calibration.IsotonicTable once fitted
        self.abs_return = np.zeros(0)      # E|r_h| per regime (bp); last entry: all training rows

    def _x(self, features) -> np.ndarray:
        with np.errstate(over="ignore"):     # beyond float32: inf (what the classifier then reads)
            return np.asarray(features.matrix[:, self.columns], dtype=np.float32)

    def _proba(self, X) -> np.ndarray:
        from bot4.research import zoo

        if self._logistic is not None:
            return logistic_proba(self._logistic, X)
        return zoo.proba(self.model, X)

    def raw_probability(self, features) -> np.ndarray:
        """The classifier's raw (uncalibrated) P(r_h > 0 | r_h != 0) of every row (logistic:
        logistic_proba; any other kind: its framework's predict_proba)."""
        self._check_fitted()
        return self._proba(self._x(features))

    def model_output(self, features) -> np.ndarray | None:
        """What the core reads beside the rows: None for the logistic kind (the core evaluates the
        classifier itself), else the classifier's raw P(up) of every row (raw_probability)."""
        self._check_fitted()
        return None if self._logistic is not None else self.raw_probability(features)

    def probability(self, features) -> np.ndarray:
        """Calibrated P(r_h > 0 | r_h != 0) of every row."""
        self._check_fitted()
        assert self.calibrator is not None
        return np.clip(self.calibrator.apply(self.raw_probability(features)), 0.0, 1.0)

    def _core_columns(self) -> tuple[str, ...]:
        return (VOL,)

    def core_spec(self) -> dict[str, Any]:
        """QuantileAgent.core_spec plus the isotonic table and E|r_h| per regime."""
        spec = super().core_spec()
        assert self.calibrator is not None
        spec.update(iso_x=[float(v) for v in self.calibrator.x], iso_y=[float(v) for v in self.calibrator.y],
                    abs_return=[float(v) for v in self.abs_return])
        if self._logistic is not None:   # the core evaluates the classifier (module text)
            lg = self._logistic
            spec.update(model_columns=list(self.column_names),
                        **{f"model_{k}": [float(v) for v in lg[k]] for k in ("median", "mean", "scale", "coef")},
                        model_intercept=float(lg["intercept"]))
        return spec

    def inputs(self, features) -> np.ndarray:
        """(rows, p) regressors of each row, from that row's features only (class docstring)."""
        return np.column_stack([2.0 * self.probability(features) - 1.0, _column(features, VOL)])

    def fit(self, features, rows) -> DirectionAgent:
        """Classifier, isotonic map, E|r_h| per regime and quantiles from the training `rows`
        (class docstring); InputError without enough labelled rows or with one-sided moves."""
        from bot4.research import zoo
        from bot4.research.calibration import fit_isotonic

        n = len(features.timestamps)
        idx = np.sort(_rows(rows, n))
        r, end = forward_returns(features, self.horizon)
        idx = idx[np.isfinite(r[idx])]
        if idx.size < 50:
            raise InputError("rows", f"too few training rows with a defined {self.horizon}-row return: {idx.size}")
        self.columns = [i for i, c in enumerate(features.names) if c not in LEVEL_COLUMNS]
        self.column_names = [str(features.names[i]) for i in self.columns]
        cut = int(idx.size * self.fit_fraction)
        first_cal = idx[cut]
        fit_rows = idx[:cut][end[idx[:cut]] < first_cal]      # purge: labels reaching the calibration slice
        cal_rows = idx[cut:]
        moved_fit = fit_rows[r[fit_rows] != 0]
        moved_cal = cal_rows[r[cal_rows] != 0]
        for what, rr in (("classifier", moved_fit), ("calibration", moved_cal)):
            ups = int((r[rr] > 0).sum())
            if ups == 0 or ups == rr.size:
                raise InputError("rows", f"the {what} rows need both up and down moves (got {ups} up of {rr.size})")
        self.model = zoo.fit(self.kind, self._x(features)[moved_fit], (r[moved_fit] > 0).astype(np.int8),
                             self.params)
        self._logistic = logistic_parts(self.model) if self.kind == "logistic" else None
        raw = self._proba(self._x(features)[moved_cal])
        self.calibrator = fit_isotonic(raw, (r[moved_cal] > 0).astype(np.int8))
        self.regime = VolRegime.fit(features, idx)
        reg = self.regime.labels(features)[idx]
        absr = np.abs(r[idx])
        self.abs_return = np.array([absr[reg == k].mean() if np.any(reg == k) else absr.mean()
                                    for k in range(self.regime.n_regimes)] + [absr.mean()])
        self.quantiles.fit(self.inputs(features)[cal_rows], r[cal_rows])
        self.model_version = self._version()
        return self

    def _version(self) -> str:
        """model_version: a hash of everything fitted, the classifier included (its kind, input
        columns and parameters: the logistic parts the core evaluates, else the pickled model), so
        two agents whose classifiers differ never share a version."""
        assert self.regime is not None and self.calibrator is not None
        parts = [np.frombuffer(self.kind.encode(), np.uint8), np.asarray(self.columns, np.float64)]
        if self._logistic is not None:
            parts += [np.asarray(self._logistic[k], np.float64).ravel() for k in sorted(self._logistic)]
        else:
            parts.append(np.frombuffer(pickle.dumps(self.model, protocol=5), np.uint8))
        return _version(self.quantiles.coef, self.quantiles.intercept, self.regime.edges, self.abs_return,
                        self.calibrator.x, self.calibrator.y, [self.horizon], *parts)

    def predict(self, features, regime=None) -> AgentOutput:
        """mu = (2p - 1) E|r_h| and sigma, quantiles, confidence |2p - 1| of every row."""
        self._check_fitted()
        assert self.regime is not None
        x = self.inputs(features)
        p = (x[:, 0] + 1.0) / 2.0
        q = self.quantiles.predict(x)
        vol_reg = self.regime.labels(features)
        m = self.abs_return[np.where(vol_reg >= 0, vol_reg, self.abs_return.size - 1)]
        mu = np.where(np.isfinite(q[:, 1]), (2.0 * p - 1.0) * m, np.nan)
        sigma = (q[:, 2] - q[:, 0]) / NORMAL_10_90
        return self._output(features, mu, sigma, q, _confidence(np.where(np.isfinite(mu), p, np.nan)), regime)


_CORE_KINDS = (MicropriceOFIAgent, VolBreakoutAgent, MeanReversionAgent, DirectionAgent)


def has_core_twin(agent) -> bool:
    """Whether the core evaluates `agent` (a built-in agent class, not a subclass of one)."""
    return type(agent) in _CORE_KINDS


def core_agent(agent: QuantileAgent, feature_names):
    """A bot4._core.portfolio.SignalAgent evaluating the fitted built-in `agent` on rows whose
    columns are `feature_names` (InputError: not fitted, no core twin, bad parameters, a missing
    column)."""
    from bot4._core.portfolio import SignalAgent

    return SignalAgent(**agent.core_spec(), feature_names=[str(n) for n in feature_names])


def predict_core(agent: QuantileAgent, features, core=None) -> AgentOutput:
    """`agent.predict(features)` evaluated in the core (`core`: a SignalAgent already built by
    core_agent for these rows' columns)."""
    core = core_agent(agent, features.names) if core is None else core
    out = core.evaluate_rows(np.ascontiguousarray(features.matrix, dtype=np.float64), agent.model_output(features))
    return AgentOutput(agent=core.name, model_version=core.model_version, horizon=int(core.horizon),
                       timestamps=np.asarray(features.timestamps, dtype=np.int64),
                       instruments=np.asarray(features.instruments), mu=out["mu"], sigma=out["sigma"],
                       quantiles=out["quantiles"], confidence=out["confidence"], regime=out["regime"])


def cross_fit(make_agent, features, folds) -> AgentOutput:
    """Out-of-fold outputs for stacking (what a meta-weighter should be fitted on): for each
    (train_rows, predict_rows) in `folds`, a fresh agent from `make_agent()` is fitted on
    train_rows and predicts predict_rows; rows in no predict set have no view. Pass purged
    folds (e.g. bot4.research.splits.purged_kfold), or the outputs leak the labels they predict.
    The model version is a hash of the folds' versions."""
    n = len(features.timestamps)
    out: AgentOutput | None = None
    versions = []
    for train_rows, predict_rows in folds:
        agent = make_agent().fit(features, train_rows)
        part = agent.predict(features)
        versions.append(agent.model_version)
        if out is None:
            out = AgentOutput(agent=part.agent, model_version="", horizon=part.horizon, timestamps=part.timestamps,
                              instruments=part.instruments, mu=np.full(n, np.nan), sigma=np.full(n, np.nan),
                              quantiles=np.full_like(part.quantiles, np.nan), confidence=np.zeros(n),
                              regime=np.full(n, -1, dtype=np.int64))
        sel = _rows(predict_rows, n)
        out.mu[sel], out.sigma[sel] = part.mu[sel], part.sigma[sel]
        out.quantiles[sel], out.confidence[sel] = part.quantiles[sel], part.confidence[sel]
        out.regime[sel] = part.regime[sel]
    if out is None:
        raise InputError("folds", "no fold to fit")
    out.model_version = hashlib.sha256("".join(versions).encode()).hexdigest()[:16]
    return out


def default_agents(horizon: int = 100, short_horizon: int | None = None) -> list[QuantileAgent]:
    """The four built-in agents: direction, micro-price/OFI (at `short_horizon`, default
    horizon // 5, at least 1), volatility breakout and mean reversion (at `horizon`)."""
    short = max(1, horizon // 5) if short_horizon is None else short_horizon
    return [DirectionAgent(horizon), MicropriceOFIAgent(short), VolBreakoutAgent(horizon),
            MeanReversionAgent(horizon)]
