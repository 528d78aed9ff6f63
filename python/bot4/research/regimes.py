"""Online regime labels for feature rows: a GARCH(1,1)-t volatility regime and BOCPD change points.

Everything is fitted on a training window and then run forward causally: a feature row at time t
sees only mid prices at or before t. The mid is sampled on a fixed grid (the last mid at or before
each grid time); returns between grid points, in basis points, drive
  - the GARCH(1,1)-t one-step forecast sigma_{k+1|k} of the next grid return (bot4.research.garch),
    bucketed into volatility regimes by edges taken from the training window's forecasts;
  - BOCPD (bot4.research.changepoint) on the returns divided by the training window's standard
    deviation (a frozen scale: the prior is set on that scale), giving the mass on short run
    lengths, which flags a recent change point.

`RegimeModel.columns(timestamps, mid)` returns extra feature columns (REGIME_COLUMNS) and
`RegimeModel.labels(...)` the integer regime the calibrator conditions on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bot4.research.changepoint import BOCPD, NormalGamma
from bot4.research.garch import GarchT, fit_garch_t

# 1 s, not the 100 ms feature grid: on Binance USD-M BTCUSDT 89% of 100 ms mid returns are exactly 0,
# and a t likelihood on such zero-inflated data is unbounded (sigma -> 0, nu -> 2), so the fit is
# degenerate; at 1 s 48% are 0 and the fit is regular (and matches `arch`).
DEFAULT_GRID_NS = 1_000_000_000
REGIME_COLUMNS = ("garch_sigma_bp", "vol_regime", "cp_short_mass", "cp_map_run", "cp_recent")
REGIME_KINDS = ("vol", "changepoint", "vol+changepoint")


def grid_returns(timestamps, mid, grid_ns: int = DEFAULT_GRID_NS, start_ns: int | None = None):
    """(grid_times, returns_bp): mid sampled at each grid time (last finite positive mid at or
    before it) and the log returns between consecutive grid points, times 1e4.

    returns_bp[k] is the return over (grid_times[k], grid_times[k + 1]]; it is known at
    grid_times[k + 1]. Grid points before the first valid mid are skipped."""
    t = np.asarray(timestamps, dtype=np.int64)
    m = np.asarray(mid, dtype=np.float64)
    if t.ndim != 1 or t.shape != m.shape:
        raise ValueError(f"timestamps and mid must be 1-D of equal length, got {t.shape}, {m.shape}")
    if int(grid_ns) != grid_ns or grid_ns <= 0:
        raise ValueError(f"grid_ns must be a positive integer, got {grid_ns!r}")
    if t.size and np.any(np.diff(t) < 0):
        raise ValueError("timestamps must be non-decreasing")
    ok = np.isfinite(m) & (m > 0)
    if ok.sum() < 2:
        raise ValueError("need at least two valid (finite, positive) mid prices")
    tv, mv = t[ok], m[ok]
    g0 = tv[0] if start_ns is None else max(int(start_ns), int(tv[0]))
    # first grid point at or after the first valid mid, on a grid anchored at multiples of grid_ns
    g0 = -(-g0 // grid_ns) * grid_ns
    grid = np.arange(g0, tv[-1] + 1, grid_ns, dtype=np.int64)
    if grid.size < 2:
        raise ValueError("the data spans less than two grid intervals")
    idx = np.searchsorted(tv, grid, side="right") - 1
    lm = np.log(mv[idx])
    return grid, np.diff(lm) * 1e4


@dataclass
class RegimeModel:
    """Regimes of a recording on a time grid (grid_ns): a volatility regime from a GARCH(1,1)-t
    sigma (bp) cut at vol_edges, and a change-point regime from BOCPD on the grid returns.
    Fitted on training data only; field units in the comments.
    """

    garch: GarchT
    grid_ns: int
    vol_edges: np.ndarray                 # increasing sigma_bp edges: regime = searchsorted(edges, sigma)
    cp_scale_bp: float                    # training std of the grid returns (BOCPD input scale)
    cp_lam: float = 250.0
    cp_prior: NormalGamma = field(default_factory=NormalGamma)
    cp_short_run: int = 10
    cp_threshold: float = 0.5             # short-run mass above this marks a recent change
    cp_max_run: int = 2000
    diagnostics: dict = field(default_factory=dict)

    @property
    def n_vol_regimes(self) -> int:
        return int(self.vol_edges.size) + 1

    def grid_signals(self, timestamps, mid):
        """Per grid point k (known at grid_times[k + 1]): sigma forecast for the next return,
        short-run mass and MAP run length of BOCPD after return k."""
        grid, r = grid_returns(timestamps, mid, self.grid_ns)
        s2, _ = self.garch.filter(r)
        eps = r - self.garch.mu
        sigma_next = np.sqrt(self.garch.omega + self.garch.alpha * eps ** 2 + self.garch.beta * s2)
        det = BOCPD(self.cp_lam, self.cp_prior, self.cp_max_run)
        short = np.empty(r.size)
        map_run = np.empty(r.size, np.int64)
        for k, v in enumerate(r / self.cp_scale_bp):
            post = det.update(v)
            short[k] = post[:self.cp_short_run + 1].sum()
            map_run[k] = int(np.argmax(post))
        return grid[1:], sigma_next, short, map_run

    def columns(self, timestamps, mid) -> dict:
        """REGIME_COLUMNS for every row: the signals of the last grid point at or before the row
        (NaN for rows before the second grid point, which have no completed return)."""
        t = np.asarray(timestamps, dtype=np.int64)
        known_at, sigma, short, map_run = self.grid_signals(t, mid)
        k = np.searchsorted(known_at, t, side="right") - 1
        have = k >= 0
        kk = np.where(have, k, 0)

        def pick(a, fill=np.nan):
            return np.where(have, a[kk].astype(np.float64), fill)

        sig = pick(sigma)
        vol = np.where(have, np.searchsorted(self.vol_edges, sig, side="right"), np.nan)
        sm = pick(short)
        return {"garch_sigma_bp": sig, "vol_regime": vol, "cp_short_mass": sm,
                "cp_map_run": pick(map_run), "cp_recent": np.where(have, (sm > self.cp_threshold) * 1.0, np.nan)}

    def labels(self, timestamps, mid, kind: str = "vol") -> np.ndarray:
        """Integer regime per row (-1 where undefined): "vol" the volatility bucket, "changepoint"
        1 after a recent change point else 0, "vol+changepoint" vol * 2 + changepoint."""
        if kind not in REGIME_KINDS:
            raise ValueError(f"kind must be one of {REGIME_KINDS}, got {kind!r}")
        c = self.columns(timestamps, mid)
        vol, cp = c["vol_regime"], c["cp_recent"]
        lab = vol if kind == "vol" else cp if kind == "changepoint" else vol * 2 + cp
        return np.where(np.isfinite(lab), lab, -1).astype(np.int64)

    def names(self, kind: str = "vol") -> dict:
        """Regime id -> readable name."""
        vols = ["low_vol", "mid_vol", "high_vol"] if self.n_vol_regimes == 3 else \
            [f"vol_{i}" for i in range(self.n_vol_regimes)]
        if kind == "vol":
            return dict(enumerate(vols))
        if kind == "changepoint":
            return {0: "stable", 1: "recent_change"}
        return {v * 2 + c: f"{vols[v]}+{'recent_change' if c else 'stable'}"
                for v in range(self.n_vol_regimes) for c in (0, 1)}

    def to_dict(self) -> dict:
        """Every field JSON-able (the model sidecar's regime entry)."""
        p = self.cp_prior
        return {"garch": self.garch.to_dict(), "grid_ns": int(self.grid_ns),
                "vol_edges": [float(v) for v in self.vol_edges], "cp_scale_bp": float(self.cp_scale_bp),
                "cp_lam": float(self.cp_lam),
                "cp_prior": {"mu": p.mu, "kappa": p.kappa, "alpha": p.alpha, "beta": p.beta},
                "cp_short_run": int(self.cp_short_run), "cp_threshold": float(self.cp_threshold),
                "cp_max_run": int(self.cp_max_run), "diagnostics": self.diagnostics}

    @classmethod
    def from_dict(cls, d: dict) -> RegimeModel:
        """The model written by to_dict."""
        return cls(garch=GarchT.from_dict(d["garch"]), grid_ns=int(d["grid_ns"]),
                   vol_edges=np.asarray(d["vol_edges"], dtype=np.float64), cp_scale_bp=float(d["cp_scale_bp"]),
                   cp_lam=float(d["cp_lam"]), cp_prior=NormalGamma(**d["cp_prior"]),
                   cp_short_run=int(d["cp_short_run"]), cp_threshold=float(d["cp_threshold"]),
                   cp_max_run=int(d["cp_max_run"]), diagnostics=dict(d.get("diagnostics", {})))


def with_regime_columns(X, names, timestamps, mid, model: RegimeModel):
    """(X with REGIME_COLUMNS appended as float32, names + REGIME_COLUMNS): regime signals as extra
    feature columns for research models. The core's feature engine does not compute them, so a
    model trained on them cannot be served by the core as is."""
    cols = model.columns(timestamps, mid)
    A = np.asarray(X)
    if A.ndim != 2 or A.shape[0] != np.asarray(timestamps).size or len(names) != A.shape[1]:
        raise ValueError(f"X must be (rows, len(names)) with one row per timestamp, got {A.shape}")
    extra = np.column_stack([cols[c] for c in REGIME_COLUMNS]).astype(np.float32)
    return np.hstack([A.astype(np.float32, copy=False), extra]), [*names, *REGIME_COLUMNS]


def fit_regimes(timestamps, mid, *, grid_ns: int = DEFAULT_GRID_NS, vol_quantiles=(1 / 3, 2 / 3),
                cp_lam: float = 250.0, cp_prior: NormalGamma | None = None, cp_short_run: int = 10,
                cp_threshold: float = 0.5) -> RegimeModel:
    """Fit the regime model on a training window (rows in time order): GARCH(1,1)-t by MLE on its
    grid returns, volatility edges at `vol_quantiles` of its in-window sigma forecasts, the BOCPD
    input scale, and residual diagnostics (Ljung-Box on z and z^2, ARCH-LM on z)."""
    from bot4.research.diagnostics import garch_diagnostics

    q = np.asarray(vol_quantiles, dtype=np.float64)
    if q.ndim != 1 or q.size == 0 or np.any(q <= 0) or np.any(q >= 1) or np.any(np.diff(q) <= 0):
        raise ValueError(f"vol_quantiles must be increasing values in (0, 1), got {vol_quantiles!r}")
    _, r = grid_returns(timestamps, mid, grid_ns)
    garch = fit_garch_t(r)
    s2, z = garch.filter(r)
    eps = r - garch.mu
    sigma_next = np.sqrt(garch.omega + garch.alpha * eps ** 2 + garch.beta * s2)
    edges = np.quantile(sigma_next, q)
    if np.any(np.diff(np.concatenate([[0.0], edges])) <= 1e-9 * edges.max()):
        raise ValueError("volatility forecasts of the training window do not separate into regimes "
                         f"(edges {edges.tolist()}); use a longer window or fewer regimes")
    scale = float(np.std(r))
    if not scale > 0:
        raise ValueError("training grid returns are constant; no regime can be fitted")
    try:
        diag = garch_diagnostics(z)
    except ValueError as exc:
        diag = {"error": str(exc)}
    diag["grid_returns"] = int(r.size)
    return RegimeModel(garch=garch, grid_ns=int(grid_ns), vol_edges=edges, cp_scale_bp=scale, cp_lam=cp_lam,
                       cp_prior=cp_prior or NormalGamma(), cp_short_run=cp_short_run, cp_threshold=cp_threshold,
                       diagnostics=diag)
