"""Sweeps: walk-forward folds x a parameter grid x recordings, one task per cell, on dask.distributed
(a LocalCluster by default, or a running scheduler) or in this process (`bot4 sweep`).

A cell is (model configuration, recording, fold). It runs validate's per-fold pipeline
(bot4.research.validate.run_fold: features, labels, training, calibration, a backtest after fees
of the fold's test span) and trades the fold's model at every entry threshold of the grid, so a
threshold never retrains. A *configuration* is one grid point together with one threshold: the
deflated Sharpe ratio counts every configuration tried and PBO (CSCV) ranks them.

Cells are independent and seeded; each task loads its recording and computes its features itself
(cached per worker process), so a cell's result does not depend on where or in which order it
ran. A cell that fails is a row with its error text, never the end of the sweep.

Per configuration, the out-of-sample bar returns of its folds (every recording, in time order)
make one timeline: its Sharpe per bar, PSR and DSR (N = configurations tried, V = the variance of
their Sharpe ratios, METHODS.md §13). PBO takes the matrix of those timelines, with bars matched
by (recording, bar end time floored to the bar): exact when the grid leaves the label alone (the
folds' spans are then the same for every configuration), and within one bar when it varies the
horizon, which moves the folds' edges. Bars that some configuration lacks are left out, and
counted.

Calibration per regime: each cell labels its test rows with a volatility regime (GARCH(1,1)-t,
bot4.research.regimes) fitted on the fold's training rows only and run forward causally. Per
configuration, the test rows of all its folds are pooled by regime name; a regime with at least
`regime_min_per_class` rows of each class (the rule bot4.research.regime_calibration applies
before it fits a map of its own) gets its out-of-sample Brier, log-loss and ECE; the rows of the
other regimes (and rows without a regime) are reported together as the pooled fallback.
"""

from __future__ import annotations

import itertools
import tempfile
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from bot4.errors import ConfigError
from bot4.research import metrics as M
from bot4.research.regime_calibration import MIN_PER_CLASS
from bot4.sim.generate import DEFAULT_EVENTS, DEFAULT_SEED

EXTRA = "sweep"
#: ValidateConfig fields a grid may vary or fix (`threshold` is the grid's own: entry probabilities).
PARAMETERS = ("n_estimators", "max_depth", "learning_rate", "seed", "horizon", "horizon_unit", "dead_zone_bp",
              "calibration_fraction", "embargo_ns", "ece_bins", "bar_ns")
THRESHOLD = "threshold"
SWEEP_SCHEMES = ("walk-forward", "rolling", "kfold")   # each test block once: one timeline per config
EXECUTORS = ("dask", "local")


def require_dask():
    """dask.distributed, or a ConfigError naming the extra that installs it."""
    try:
        import dask.distributed as dd
    except ImportError as exc:
        raise ConfigError(f"sweeps on Dask need dask.distributed ({exc.name} is missing): "
                          f"pip install 'bot4[{EXTRA}]' (or run the cells in this process: --local, executor=\"local\")") from None
    return dd


def require_pandas():
    """The pandas module; ConfigError naming the extra to install when it is missing."""
    try:
        import pandas as pd
    except ImportError:
        raise ConfigError(f"the sweep table needs pandas: pip install 'bot4[{EXTRA}]'") from None
    return pd


# ---------------------------------------------------------------------------------------------
# the grid


class Grid(msgspec.Struct, frozen=True):
    """Axes (name, values) varied in every combination, values fixed for every configuration, and
    the entry thresholds each model is traded at."""
    axes: tuple = ()                    # ((name, (v, ...)), ...) in the file's order
    fixed: tuple = ()                   # ((name, v), ...)
    thresholds: tuple = (0.55,)

    def points(self) -> list[dict]:
        """Every combination of the axes (the last axis varies fastest), fixed values included."""
        names = [n for n, _ in self.axes]
        out = []
        for combo in itertools.product(*(vals for _, vals in self.axes)):
            out.append(dict(self.fixed) | dict(zip(names, combo)))
        return out or [dict(self.fixed)]

    @property
    def varied(self) -> list[str]:
        return [n for n, _ in self.axes]


def _scalar(name: str, v):
    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        raise ConfigError(f"grid: {name} values must be numbers or strings, got {v!r}")
    return v


def parse_grid(doc: dict) -> Grid:
    """A Grid from a TOML document: [grid] name = [values...] (every combination is tried) and
    [fixed] name = value. ConfigError (one line) for an unknown section or parameter, an empty or
    repeated list, or a value ValidateConfig refuses."""
    from bot4.research.validate import ValidateConfig

    unknown = set(doc) - {"grid", "fixed"}
    if unknown:
        raise ConfigError(f"grid: unknown section(s) {sorted(unknown)}; expected [grid] and [fixed]")
    axes, fixed, thresholds = [], [], None
    known = PARAMETERS + (THRESHOLD,)
    for section in ("grid", "fixed"):
        body = doc.get(section, {})
        if not isinstance(body, dict):
            raise ConfigError(f"grid: [{section}] must be a table of parameters")
        for name, v in body.items():
            if name not in known:
                raise ConfigError(f"grid: unknown parameter {name!r} in [{section}]; known: {', '.join(known)}")
            vals = v if section == "grid" else [v]
            if section == "grid" and (not isinstance(v, list) or not v):
                raise ConfigError(f"grid: {name} must be a non-empty list of values, got {v!r}")
            vals = tuple(_scalar(name, x) for x in vals)
            if len(set(vals)) != len(vals):
                raise ConfigError(f"grid: {name} lists a value twice: {list(vals)}")
            if name == THRESHOLD:
                if thresholds is not None:
                    raise ConfigError(f"grid: {THRESHOLD} is given in both [grid] and [fixed]")
                if any(isinstance(x, str) or not 0.5 < x < 1 for x in vals):
                    raise ConfigError(f"grid: each {THRESHOLD} must be an entry probability in (0.5, 1), got {list(vals)}")
                thresholds = tuple(float(x) for x in vals)
            elif section == "grid":
                axes.append((name, vals))
            else:
                fixed.append((name, vals[0]))
    both = {n for n, _ in axes} & {n for n, _ in fixed}
    if both:
        raise ConfigError(f"grid: {sorted(both)} given in both [grid] and [fixed]")
    grid = Grid(axes=tuple(axes), fixed=tuple(fixed), thresholds=thresholds or Grid().thresholds)
    for point in grid.points():
        try:
            msgspec.convert(dict(point, thresholds=list(grid.thresholds)), ValidateConfig)
        except (TypeError, ValueError, msgspec.ValidationError) as exc:
            raise ConfigError(f"grid: the point {point} is refused: {exc}") from None
    return grid


def load_grid(path) -> Grid:
    """parse_grid of a TOML file (ConfigError when it is missing or not TOML)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"grid: {path} is not a file")
    try:
        # msgspec.toml: tomllib on 3.11+, tomli before (tomllib is not in 3.10's standard library)
        doc = msgspec.toml.decode(path.read_text())
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"grid: {path} is not valid TOML: {exc}") from None
    return parse_grid(doc)


# ---------------------------------------------------------------------------------------------
# cells


class Source(msgspec.Struct, frozen=True):
    """One recording (a file, read in the worker) or the embedded simulator stream (path None)."""
    path: str | None = None
    venue: str | None = None
    seed: int = DEFAULT_SEED
    events: int = DEFAULT_EVENTS

    @property
    def label(self) -> str:
        return self.path if self.path is not None else f"embedded seed {self.seed}, {self.events:,} events"


class Cell(msgspec.Struct, frozen=True):
    """One task of a sweep: a grid point validated on one recording's fold (msgspec, so it crosses process
    boundaries)."""

    point: int                          # index of the grid point
    source: int                         # index of the recording
    fold: int
    config: dict                        # ValidateConfig fields (thresholds = the grid's)
    src: Source
    feature_config: bytes | None = None  # msgspec JSON of a FeatureConfig; None = the pipeline's default

    @property
    def key(self) -> str:
        return f"p{self.point}-s{self.source}-f{self.fold}"


_CACHE: OrderedDict = OrderedDict()     # per process: recordings, features, samples (small LRU)
_CACHE_SIZE = 6


def _cached(key, make):
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    value = make()
    _CACHE[key] = value
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return value


def _load(src: Source):
    from bot4.sources import load_stream

    if src.path:
        return _cached(("data", src), lambda: load_stream([src.path], src.venue).data)
    return _cached(("data", src), lambda: load_stream(None, seed=src.seed, n_events=src.events).data)


def run_cell(cell: Cell) -> dict:
    """One cell: validate's per-fold pipeline on one recording, fold and grid point. Never raises:
    a failure comes back as {"error": text}. Returns the fold's probability and trading metrics
    per threshold, its test labels and probabilities, and its bar returns per test group."""
    from threadpoolctl import threadpool_limits

    t = time.perf_counter()
    out = {"key": cell.key, "point": cell.point, "source": cell.source, "fold": cell.fold, "error": None}
    # One thread per cell for OpenMP (XGBoost) and BLAS, whichever executor runs it, as a Dask
    # worker with threads_per_worker=1 has: on a loaded 2-core machine their spinning pools made a
    # BTCUSDT sweep of 6 cells take 21-34 s in one process against 2.4 s with one thread each.
    try:
        with threadpool_limits(limits=1):
            out.update(_cell(cell))
    except Exception as exc:   # noqa: BLE001 -- a cell's failure is data for the table, not the sweep's end
        out["error"] = f"{type(exc).__name__}: {exc}"
    out["seconds"] = time.perf_counter() - t
    out["worker"] = _worker_address()
    return out


def _worker_address() -> str:
    """The dask worker running this task, or "in-process" (kept out of the table: where a cell ran
    must not change it)."""
    import sys

    if "distributed" in sys.modules:
        try:
            return sys.modules["distributed"].get_worker().address
        except ValueError:   # not inside a worker
            pass
    return "in-process"


def _cell(cell: Cell) -> dict:
    from bot4.features import compute
    from bot4.features.config import FeatureConfig
    from bot4.pipeline import default_feature_config
    from bot4.research import splits as S
    from bot4.research.validate import ValidateConfig, build_samples, run_fold

    config = ValidateConfig(**cell.config)
    data = _load(cell.src)
    fconf = (msgspec.json.decode(cell.feature_config, type=FeatureConfig) if cell.feature_config
             else default_feature_config(data))
    fkey = msgspec.json.encode(fconf)
    features = _cached(("features", cell.src, fkey), lambda: compute(data, fconf))
    lkey = (config.horizon, config.horizon_unit, config.dead_zone_bp)
    s = _cached(("samples", cell.src, fkey, lkey), lambda: build_samples(features, config))
    if s.y.size < 10 * config.folds:
        raise ValueError(f"{s.y.size} labelled samples are too few for {config.folds} folds")
    folds = S.split(config.scheme, s.t0, s.t1, config.folds, embargo_ns=config.embargo_ns,
                    n_test_groups=config.test_groups, window=config.window)
    if cell.fold >= len(folds):
        raise ValueError(f"fold {cell.fold} of {len(folds)}")
    with tempfile.TemporaryDirectory(prefix="bot4-sweep-") as tmp:
        run = run_fold(data, s, folds[cell.fold], cell.fold, config, fconf, Path(tmp))
    doc = run.doc
    regimes, regime_error = fold_regimes(s, folds[cell.fold])
    return dict(train_samples=doc["train"]["samples"], test_samples=int(run.y.size),
                test_start_ns=doc["test"][0]["start_ns"], test_end_ns=doc["test"][-1]["end_ns"],
                min_purge_ns=doc.get("min_purge_ns"), horizon_ns=doc.get("horizon_ns"),
                probability={k: doc["metrics"][k] for k in ("auc", "brier", "log_loss", "ece", "base_rate")},
                y=run.y.astype(np.int8), p=run.p.astype(np.float64), bar_ns=config.bar_ns,
                regimes=regimes, regime_error=regime_error,
                groups=[{"start_ns": g["start_ns"], "bars": b} for g, b in zip(doc["trading"], run.bars)],
                trading=[_threshold_totals(doc["trading"], run.bars, j) for j in range(len(config.thresholds))])


#: Regimes the sweep reports calibration in (bot4.research.regimes.RegimeModel.labels kind).
REGIME_KIND = "vol"
#: Name of the group of regimes below the minimum sample (and rows without a regime).
FALLBACK = "pooled_fallback"


def fold_regimes(s, fold) -> tuple[np.ndarray, str | None]:
    """Regime name of each test row of `fold` (in the fold's test order), from a regime model
    fitted on the fold's training rows and run forward over the samples in time order;
    ("undefined" rows, the error) when no model can be fitted (too short or flat a window)."""
    from bot4.research.dataset import MID_COLUMN
    from bot4.research.regimes import fit_regimes

    test = fold.test
    mid = s.X[:, s.names.index(MID_COLUMN)].astype(np.float64)
    train = np.sort(fold.train)
    try:
        model = fit_regimes(s.t0[train], mid[train])
        ids = model.labels(s.t0, mid, REGIME_KIND)[test]
    except ValueError as exc:
        return np.full(test.size, "undefined", dtype=object), str(exc)
    names = model.names(REGIME_KIND)
    return np.array([names.get(int(i), "undefined") if i >= 0 else "undefined" for i in ids], dtype=object), None



def regime_calibration_table(y, p, regimes, min_per_class: int = MIN_PER_CLASS, n_bins: int = 10) -> dict:
    """Out-of-sample calibration per regime of pooled test rows: {regime name: {rows, positives,
    brier, log_loss, ece, status "own"}} for each regime with >= min_per_class rows of each class,
    and FALLBACK for the rows of every other regime together (status "fallback", `regimes` lists
    them, `reason` says why); "all" is every row."""
    from bot4.research.regime_calibration import metrics_by_regime

    yy = np.asarray(y, dtype=np.int64)
    rr = np.asarray(regimes, dtype=object)
    if yy.size != rr.size or yy.size != np.asarray(p).size:
        raise ValueError(f"y, p and regimes must have one entry per row, got {yy.size}, {np.asarray(p).size}, {rr.size}")
    own: list[str] = []
    fallback: list[str] = []
    for name in sorted(set(rr.tolist())):
        m = rr == name
        n1 = int(yy[m].sum())
        n0 = int(m.sum()) - n1
        (own if name != "undefined" and min(n0, n1) >= min_per_class else fallback).append(name)
    ids = np.full(yy.size, -1, dtype=np.int64)
    names = {-1: FALLBACK}
    for i, name in enumerate(own):
        ids[rr == name] = i
        names[i] = name
    table = metrics_by_regime(yy, p, ids, names, n_bins) if yy.size else {"all": {"rows": 0}}
    out: dict[str, Any] = {"all": table["all"] | {"positives": int(yy.sum()), "status": "all"}}
    for name in own:
        out[name] = table[name] | {"positives": int(yy[rr == name].sum()), "status": "own"}
    if fallback:
        m = np.isin(rr, fallback)
        out[FALLBACK] = table[FALLBACK] | {
            "positives": int(yy[m].sum()), "status": "fallback", "regimes": fallback,
            "reason": f"fewer than {min_per_class} rows of a class (or no regime): pooled"}
    return out


def _threshold_totals(trading: list, bars: list, j: int) -> dict:
    """A fold's after-fee trading at threshold j over its test groups."""
    per = [g["by_threshold"][j] for g in trading]
    trades = sum(d["trades"] for d in per)
    hits = [d["hit_rate"] * d["trades"] for d in per if d["hit_rate"] is not None]
    col = np.concatenate([b[:, j] for b in bars]) if bars else np.zeros(0)
    return {"pnl": float(sum(d["pnl"] for d in per)), "fees": float(sum(d["fees"] for d in per)), "trades": int(trades),
            "hit_rate": (sum(hits) / trades) if trades else None,
            "turnover": float(sum(d["turnover"] for d in per)), "sharpe_per_bar": M._none(M.sharpe(col)),
            "bars": int(col.size)}


def make_cells(sources: list[Source], grid: Grid, *, folds: int, scheme: str,
               feature_config=None) -> list[Cell]:
    """Every (grid point, recording, fold), recordings outermost so a worker's cache is reused."""
    fjson = msgspec.json.encode(feature_config) if feature_config is not None else None
    cells = []
    points = grid.points()
    for si, src in enumerate(sources):
        for pi, point in enumerate(points):
            conf = dict(point, scheme=scheme, folds=folds, thresholds=grid.thresholds)
            for k in range(folds):
                cells.append(Cell(point=pi, source=si, fold=k, config=conf, src=src, feature_config=fjson))
    return cells


# ---------------------------------------------------------------------------------------------
# executors


def run_local(cells: list[Cell], progress=None) -> list[dict]:
    """Every cell in this process, in order."""
    out = []
    for i, c in enumerate(cells):
        out.append(run_cell(c))
        if progress:
            progress(i + 1, len(cells), out[-1])
    return out


def run_dask(cells: list[Cell], *, workers: int = 2, scheduler: str | None = None, progress=None) -> tuple[list[dict], dict]:
    """Every cell as one task on dask.distributed: a LocalCluster of `workers` processes with one
    thread each, or the scheduler at `scheduler` (its workers need bot4 installed). A task lost
    with its worker is a failed cell. Returns (results in cell order, cluster info)."""
    dd = require_dask()
    t = time.perf_counter()
    cluster = None
    if scheduler:
        try:
            client = dd.Client(scheduler, timeout="20s")
        except (OSError, TimeoutError) as exc:
            raise ConfigError(f"scheduler: cannot reach {scheduler}: {exc}") from None
    else:
        cluster = dd.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                  dashboard_address=None, silence_logs=40)
        client = dd.Client(cluster)
    info = {"scheduler": scheduler or "LocalCluster", "start_seconds": time.perf_counter() - t}
    try:
        info["workers"] = len(client.scheduler_info()["workers"])
        futures = client.map(run_cell, cells, key=[f"bot4-sweep-{c.key}" for c in cells], pure=False)
        results: list = [None] * len(cells)
        index = {f.key: i for i, f in enumerate(futures)}
        done = 0
        for fut in dd.as_completed(futures):
            i = index[fut.key]
            try:
                results[i] = fut.result()
            except Exception as exc:   # noqa: BLE001 -- e.g. KilledWorker: recorded for that cell
                c = cells[i]
                results[i] = {"key": c.key, "point": c.point, "source": c.source, "fold": c.fold,
                              "error": f"{type(exc).__name__}: {exc}", "seconds": None}
            done += 1
            if progress:
                progress(done, len(cells), results[i])
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    per_worker: dict = {}
    for r in results:
        w = r.get("worker") or "lost"
        per_worker[w] = per_worker.get(w, 0) + 1
    info["cells_per_worker"] = dict(sorted(per_worker.items()))
    return results, info


# ---------------------------------------------------------------------------------------------
# gathering


@dataclass
class SweepResult:
    """A finished sweep: the per-cell table, the per-configuration summary with deflated Sharpe, PBO and
    timings."""

    table: Any                          # pandas DataFrame: one row per (configuration, recording, fold)
    configurations: Any                 # pandas DataFrame: one row per configuration, with DSR
    pbo: dict | None
    grid: Grid
    sources: list
    folds: int
    scheme: str
    executor: dict
    seconds: dict
    calibration: dict = field(default_factory=dict)   # per configuration: pooled reliability bins
    # per configuration: out-of-sample Brier / log-loss / ECE per regime (regime_calibration_table)
    regime_calibration: dict = field(default_factory=dict)
    regime_min_per_class: int = MIN_PER_CLASS
    cell_seconds: list = field(default_factory=list)

    def as_json(self) -> dict:
        """The sweep as a JSON-able dict (configurations as records)."""
        import json

        return {"scheme": self.scheme, "folds": self.folds, "sources": [s.label for s in self.sources],
                "grid": {"axes": {n: list(v) for n, v in self.grid.axes}, "fixed": dict(self.grid.fixed),
                         "thresholds": list(self.grid.thresholds)},
                "cells": int(len(self.cell_seconds)), "failed_cells": int(self.table["error"].notna().sum()),
                "configurations": json.loads(self.configurations.to_json(orient="records")),
                "pbo": self.pbo, "executor": self.executor, "seconds": self.seconds,
                "regime_calibration": {"kind": REGIME_KIND, "min_per_class": self.regime_min_per_class,
                                       "configurations": {str(k): v for k, v in self.regime_calibration.items()}}}

    def regime_table(self):
        """One row per (configuration, regime): rows, positives, status, Brier, log-loss, ECE."""
        pd = require_pandas()
        rows = [{"config": cid, "regime": name, **{k: m.get(k) for k in ("status", "rows", "positives", "brier",
                                                                         "log_loss", "ece")},
                 "merged": ", ".join(m.get("regimes", []))}
                for cid, per in sorted(self.regime_calibration.items()) for name, m in per.items()]
        return pd.DataFrame(rows, columns=["config", "regime", "status", "rows", "positives", "brier", "log_loss",
                                           "ece", "merged"])


def gather(cells: list[Cell], results: list[dict], grid: Grid, sources: list[Source], *,
           regime_min_per_class: int = MIN_PER_CLASS):
    """(table, configurations, pbo, calibration, regime calibration) from the cells' results,
    independent of the order they ran in."""
    pd = require_pandas()
    points = grid.points()
    n_thr = len(grid.thresholds)
    rows: list[dict] = []
    timelines: dict[int, list] = {}
    pooled: dict[int, list] = {}
    for cell, r in sorted(zip(cells, results), key=lambda cr: (cr[0].point, cr[0].source, cr[0].fold)):
        for j, th in enumerate(grid.thresholds):
            cid = cell.point * n_thr + j
            row = {"config": cid, **{n: points[cell.point][n] for n in grid.varied}, "threshold": th,
                   "source": cell.source, "recording": sources[cell.source].label, "fold": cell.fold}
            if r["error"] is None:
                row.update({k: r[k] for k in ("train_samples", "test_samples", "test_start_ns", "test_end_ns",
                                              "min_purge_ns", "horizon_ns", "regime_error")})
                row.update(r["probability"])
                row.update(r["trading"][j])
                for g in r["groups"]:
                    ends = (g["start_ns"] + r["bar_ns"] * np.arange(1, g["bars"].shape[0] + 1)) // r["bar_ns"]
                    timelines.setdefault(cid, []).append((cell.source, ends, g["bars"][:, j]))
                pooled.setdefault(cid, []).append((r["y"], r["p"], r["regimes"]))
            row["error"] = r["error"]
            rows.append(row)
    table = pd.DataFrame(rows)
    for col in ("auc", "brier", "log_loss", "ece", "pnl", "sharpe_per_bar"):
        if col not in table:
            table[col] = np.nan
    n_configs = len(points) * n_thr
    confs, series = [], {}
    for cid in range(n_configs):
        sub = table[table["config"] == cid]
        ok = sub["error"].isna()
        parts = sorted(timelines.get(cid, []), key=lambda x: (x[0], x[1][0] if x[1].size else 0))
        returns = np.concatenate([p[2] for p in parts]) if parts else np.zeros(0)
        series[cid] = ({(int(s), int(e)) for s, e_arr, _ in parts for e in e_arr}, parts)
        yp = pooled.get(cid, [])
        prob = M.probability_metrics(np.concatenate([a for a, _, _ in yp]), np.concatenate([b for _, b, _ in yp])) if yp \
            else M.probability_metrics([], [])
        point = points[cid // n_thr]
        confs.append({"config": cid, **{n: point[n] for n in grid.varied}, "threshold": grid.thresholds[cid % n_thr],
                      "cells": int(len(sub)), "failed": int((~ok).sum()),
                      "pnl": float(sub.loc[ok, "pnl"].sum()) if ok.any() else None,
                      "trades": int(sub.loc[ok, "trades"].sum()) if ok.any() else 0,
                      "auc": prob["auc"], "brier": prob["brier"], "ece": prob["ece"], "log_loss": prob["log_loss"],
                      "bars": int(returns.size), "sharpe": M._none(M.sharpe(returns)), "_returns": returns})
    trial_srs = [c["sharpe"] for c in confs if c["sharpe"] is not None]
    var = float(np.var(trial_srs, ddof=1)) if len(trial_srs) > 1 else 0.0
    for c in confs:
        c.update(_deflated(c.pop("_returns"), c["sharpe"], n_configs, var))
    configurations = pd.DataFrame(confs)
    pbo = _pbo(series, n_configs, confs)
    calibration = {cid: _reliability(pooled[cid]) for cid in sorted(pooled)}
    by_regime = {cid: regime_calibration_table(np.concatenate([a for a, _, _ in pooled[cid]]),
                                               np.concatenate([b for _, b, _ in pooled[cid]]),
                                               np.concatenate([c for _, _, c in pooled[cid]]), regime_min_per_class)
                 for cid in sorted(pooled)}
    return table, configurations, pbo, calibration, by_regime


def _deflated(r: np.ndarray, sr, n_trials: int, variance: float) -> dict:
    """PSR(0) and DSR of one configuration's timeline; N counts every configuration tried, failed
    ones included (they were tried), V is the variance of the finite Sharpe ratios."""
    out: dict[str, Any] = {"psr": None, "deflated_sharpe": None, "sr0": None, "n_trials": n_trials}
    if sr is None:
        return out
    from scipy.stats import kurtosis, skew

    g3, g4 = float(skew(r)), float(kurtosis(r, fisher=False))
    try:
        out["psr"] = M.probabilistic_sharpe(sr, r.size, g3, g4)
        out["deflated_sharpe"], out["sr0"] = M.deflated_sharpe(sr, r.size, n_trials, variance, g3, g4)
    except ValueError:
        pass   # degenerate moments: no PSR rather than a wrong one
    return out


def _pbo(series: dict, n_configs: int, confs: list, n_blocks: int = 8) -> dict | None:
    """CSCV over the configurations whose every cell ran, on the bars they all have."""
    ids = [c["config"] for c in confs if c["failed"] == 0 and series[c["config"]][1]]
    left_out = [c["config"] for c in confs if c["config"] not in ids]
    if len(ids) < 2:
        return {"pbo": None, "reason": f"{len(ids)} configuration(s) with every cell run; PBO needs 2",
                "configs": ids, "left_out": left_out}
    common = set.intersection(*(series[i][0] for i in ids))
    keys = sorted(common)
    cols = []
    for i in ids:
        lookup = {}
        for s, ends, vals in series[i][1]:
            for e, v in zip(ends.tolist(), vals.tolist()):
                lookup[(int(s), int(e))] = v
        cols.append([lookup[k] for k in keys])
    matrix = np.asarray(cols, dtype=np.float64).T.reshape(len(keys), len(ids))
    dropped = int(max(len(series[i][0]) for i in ids) - len(keys))
    doc = {"configs": ids, "left_out": left_out, "bars": len(keys), "bars_not_shared": dropped}
    blocks = n_blocks
    while blocks > 2 and len(keys) < 2 * blocks:
        blocks -= 2
    try:
        res = M.pbo_cscv(matrix, n_blocks=blocks)
    except ValueError as exc:
        return doc | {"pbo": None, "reason": str(exc)}
    return doc | res


def _reliability(yp: list, n_bins: int = 10) -> dict:
    """Pooled out-of-sample reliability: per equal-width bin, mean probability and observed rate."""
    y = np.concatenate([a for a, _, _ in yp]).astype(np.float64)
    p = np.concatenate([b for _, b, _ in yp])
    edges = np.linspace(0, 1, n_bins + 1)
    idx = np.clip(np.searchsorted(edges, p, side="left") - 1, 0, n_bins - 1)
    bins = []
    for b in range(n_bins):
        m = idx == b
        if m.any():
            bins.append({"bin": b, "count": int(m.sum()), "mean_p": float(p[m].mean()), "rate": float(y[m].mean())})
    return {"bins": bins, "rows": int(y.size)}


def sweep(sources, grid: Grid | None = None, *, folds: int = 3, scheme: str = "walk-forward",
          feature_config=None, executor: str = "dask", workers: int = 2, scheduler: str | None = None,
          progress: bool = False, regime_min_per_class: int = MIN_PER_CLASS) -> SweepResult:
    """Run every (grid point, recording, fold) cell and gather one table.

    sources: Source objects, paths (str / Path), or None for the embedded simulator stream.
    executor: "dask" (LocalCluster of `workers` processes, or `scheduler`) or "local" (this
    process, no Dask). The table is the same whichever executor ran it. regime_min_per_class:
    rows of each class a regime needs for its own calibration figures (else pooled fallback)."""
    import sys

    grid = grid or Grid()
    if scheme not in SWEEP_SCHEMES:
        raise ConfigError(f"scheme: a sweep runs {', '.join(SWEEP_SCHEMES)} (one timeline per configuration), got {scheme!r}")
    if executor not in EXECUTORS:
        raise ConfigError(f"executor must be one of {EXECUTORS}, got {executor!r}")
    if int(folds) != folds or folds < 2:
        raise ConfigError(f"folds must be an integer >= 2, got {folds!r}")
    if int(regime_min_per_class) != regime_min_per_class or regime_min_per_class < 1:
        raise ConfigError(f"regime_min_per_class must be an integer >= 1, got {regime_min_per_class!r}")
    if int(workers) != workers or workers < 1:
        raise ConfigError(f"workers must be an integer >= 1, got {workers!r}")
    srcs = [s if isinstance(s, Source) else Source(path=str(s)) for s in (sources or [Source()])]
    if not srcs:
        raise ConfigError("sources: give at least one recording")
    require_pandas()
    if executor == "dask":
        require_dask()
    cells = make_cells(srcs, grid, folds=folds, scheme=scheme, feature_config=feature_config)

    def say(done, total, r):
        if progress:
            state = "failed: " + r["error"] if r["error"] else f"{r['seconds']:.1f} s"
            print(f"cell {done}/{total} {r['key']} {state}", file=sys.stderr, flush=True)

    t = time.perf_counter()
    if executor == "local":
        results, info = run_local(cells, say), {"scheduler": "in-process", "workers": 1}
    else:
        results, info = run_dask(cells, workers=workers, scheduler=scheduler, progress=say)
    run_s = time.perf_counter() - t
    table, configurations, pbo, calibration, by_regime = gather(cells, results, grid, srcs,
                                                                 regime_min_per_class=regime_min_per_class)
    seconds = {"run": round(run_s, 3), "total": round(time.perf_counter() - t, 3)}
    info = {"executor": executor, **info}
    return SweepResult(table=table, configurations=configurations, pbo=pbo, grid=grid, sources=srcs, folds=folds,
                       scheme=scheme, executor=info, seconds=seconds, calibration=calibration,
                       regime_calibration=by_regime, regime_min_per_class=int(regime_min_per_class),
                       cell_seconds=[(r["key"], r["seconds"]) for r in results])
