"""Out-of-sample validation of the whole pipeline per fold: features, labels, training,
calibration, and a backtest after fees on each fold's test span (`bot4 validate`).

Features are computed once on the whole stream: they are causal, which the truncation sentinel
(bot4.research.sentinels) checks rather than assumes. Labels too, with each sample's label
interval [t0, t1] (its feature row's time, the time of the row its label window ends at) driving
the purge and embargo of bot4.research.splits. Inside every fold the training samples are cut
into an earlier fitting part and a later calibration part (the last `calibration_fraction` of
them, with the fitting rows whose labels reach it purged), the model is fitted, calibrated,
exported to ONNX, scored on the test samples, and traded by the core engine on each test group's
span, started from a snapshot of the book.

Trials for the deflated Sharpe ratio and PBO are the entry thresholds tried (`thresholds`); the
first is the reported configuration. Every threshold tried counts, as METHODS.md §13 requires.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from bot4.research import metrics as M
from bot4.research import splits as S
from bot4.research.labels import UNDEFINED, forward_labels, label_end_index

SCHEMES = ("walk-forward", "rolling", "kfold", "cpcv")


class ValidateConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Settings of `validate`: split scheme, label, per-fold model, thresholds and costs (units in the
    field comments)."""

    scheme: str = "walk-forward"        # walk-forward (expanding), rolling, kfold or cpcv
    folds: int = 4                      # test blocks (walk-forward, rolling) or groups (kfold, cpcv)
    test_groups: int = 2                # cpcv: groups tested per split
    window: int = 1                     # rolling: groups of training before each test block
    embargo_ns: int = 0                 # embargo after each test block's last label end, ns
    # label
    horizon: int = 100                  # label horizon in horizon_unit
    horizon_unit: str = "events"        # "events" (feature rows) or "ns"
    dead_zone_bp: float = 0.5
    # model: small on purpose, validation trains one per fold
    model: str = "xgboost"              # bot4.research.zoo.ALL_KINDS (the tree settings: xgboost, lightgbm)
    sequence_length: int = 1            # feature rows per sample (windows, bot4.research.windows);
                                        # >= 2 for lstm / attention; > 1 needs backtest=False
    n_estimators: int = 100
    max_depth: int = 4
    learning_rate: float = 0.1
    seed: int = 0
    calibration_fraction: float = 0.25  # last share of each fold's training samples -> calibration
    ece_bins: int = 10
    # trading
    backtest: bool = True               # trade each test span after fees in the core engine
    thresholds: tuple[float, ...] = (0.55, 0.52, 0.6, 0.65)  # entry probabilities tried; first = reported
    bar_ns: int = 1_000_000_000         # bar for Sharpe per unit time
    pbo_blocks: int = 8                 # CSCV blocks (even)

    def __post_init__(self):
        if self.scheme not in SCHEMES:
            raise ValueError(f"scheme must be one of {SCHEMES}, got {self.scheme!r}")
        if self.folds < 2 or (self.scheme == "cpcv" and self.folds < 3):
            raise ValueError(f"folds must be >= 2 (>= 3 for cpcv), got {self.folds}")
        if self.scheme == "cpcv" and not 1 <= self.test_groups < self.folds:
            raise ValueError(f"test_groups must be in [1, folds - 1], got {self.test_groups}")
        if self.embargo_ns < 0:
            raise ValueError(f"embargo_ns must be >= 0, got {self.embargo_ns}")
        if not 0 < self.calibration_fraction < 1:
            raise ValueError(f"calibration_fraction must be in (0, 1), got {self.calibration_fraction}")
        if not self.thresholds or any(not 0.5 < t < 1 for t in self.thresholds):
            raise ValueError(f"thresholds must be entry probabilities in (0.5, 1), got {self.thresholds}")
        if self.bar_ns <= 0:
            raise ValueError(f"bar_ns must be > 0, got {self.bar_ns}")
        from bot4.research.windows import check_length
        from bot4.research.zoo import ALL_KINDS, SEQUENCE_KINDS
        if self.model not in ALL_KINDS:
            raise ValueError(f"model must be one of {ALL_KINDS}, got {self.model!r}")
        check_length(self.sequence_length)
        if self.model in SEQUENCE_KINDS and self.sequence_length < 2:
            raise ValueError(f"model {self.model!r} reads windows of feature rows: set sequence_length >= 2")
        if self.sequence_length > 1 and self.backtest:
            raise ValueError("the engine feeds a model one feature row per decision, not a window of "
                             f"{self.sequence_length}: set backtest=False (--no-backtest; probability metrics only)")


@dataclass
class Samples:
    """Labelled feature rows of one instrument, in time order, with their label intervals."""
    X: np.ndarray
    y: np.ndarray
    t0: np.ndarray              # ns, prediction time (feature row time)
    t1: np.ndarray              # ns, label end (time of the row the label window ends at)
    names: list
    instrument: int
    n_feature_rows: int
    label: dict


def build_samples(features, config: ValidateConfig, instrument: int | None = None) -> Samples:
    """Labelled samples from a FeatureSet (rows whose label is undefined are dropped, and with
    config.sequence_length L > 1 the rows without L - 1 rows before them; X then holds windows)."""
    from bot4.research.dataset import MID_COLUMN, _pick_instrument, label_definition
    from bot4.research.windows import has_history, window_names, window_rows

    inst = _pick_instrument(np.asarray(features.instruments), instrument)
    sel = np.flatnonzero(np.asarray(features.instruments) == inst)
    matrix = features.matrix[sel]
    ts = np.asarray(features.timestamps, dtype=np.int64)[sel]
    mid = matrix[:, features.names.index(MID_COLUMN)]
    label, end = forward_labels(ts, mid, config.horizon, config.dead_zone_bp, config.horizon_unit)
    end_idx = label_end_index(ts, end, config.horizon_unit)
    L = config.sequence_length
    ok = (label != UNDEFINED) & (end_idx < ts.size) & has_history(np.arange(ts.size), L)
    rows = np.flatnonzero(ok)
    return Samples(X=window_rows(matrix, rows, L), y=label[rows].astype(np.int8),
                   t0=ts[rows], t1=ts[end_idx[rows]], names=window_names(features.names, L), instrument=inst,
                   n_feature_rows=int(ts.size),
                   label={"horizon": config.horizon, "unit": config.horizon_unit,
                          "dead_zone_bp": config.dead_zone_bp,
                          "definition": label_definition(config.horizon, config.horizon_unit,
                                                         config.dead_zone_bp)})


def fit_and_calibration(s: Samples, train: np.ndarray, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(fit, calibration) indices: the last `fraction` of the training samples calibrate; fitting
    samples whose label interval meets the calibration span are purged."""
    n_cal = max(1, int(round(train.size * fraction)))
    cal = train[-n_cal:]
    fit = train[:-n_cal]
    keep = S.purge_mask(s.t0[fit], s.t1[fit], [(int(s.t0[cal[0]]), int(s.t1[cal].max()))])
    return fit[keep], cal


@dataclass
class FoldModel:
    """One fold's exported model: classifier, calibration, folder, and the rows it was fitted and
    calibrated on."""

    classifier: Any     # a fitted bot4.research.zoo model (predict_proba)
    calibration: Any    # its calibrator (apply)
    model_dir: Path
    fit_rows: int
    calibration_rows: int


def train_fold(s: Samples, fit: np.ndarray, cal: np.ndarray, test: np.ndarray, config: ValidateConfig,
               out_dir: Path, feature_config, y=None, X=None) -> FoldModel:
    """Fit, calibrate and export one fold's model with bot4.research.train (ONNX + sidecar), so
    the backtest trades exactly what `bot4 train` would produce. y / X override the labels or
    features (sentinels: permuted labels, a planted leak)."""
    from bot4.research.dataset import Dataset
    from bot4.research.train import TrainConfig, train

    y = s.y if y is None else y
    X = s.X if X is None else X
    order = np.concatenate([fit, cal, test])
    n_f, n_c = fit.size, cal.size
    parts = (np.arange(n_f), np.arange(n_f, n_f + n_c), np.arange(n_f + n_c, order.size))
    spans = {}
    for name, idx in zip(("train", "calibration", "test"), parts):
        t = s.t0[order[idx]]
        spans[name] = [int(t.min()), int(t.max()), int(idx.size)] if idx.size else [None, None, 0]
    ds = Dataset(X=np.ascontiguousarray(X[order]), y=np.asarray(y[order], dtype=np.int8), timestamps=s.t0[order],
                 rows=order.astype(np.int64), names=s.names, label=s.label, train=parts[0],
                 calibration=parts[1], test=parts[2], gaps=(0, 0), n_feature_rows=s.n_feature_rows,
                 instrument=s.instrument, spans=spans, label_end_ns=s.t1[order],
                 sequence_length=config.sequence_length)
    tconf = TrainConfig(model=config.model, sequence_length=config.sequence_length,
                        n_estimators=config.n_estimators, max_depth=config.max_depth,
                        learning_rate=config.learning_rate, seed=config.seed, horizon=config.horizon,
                        horizon_unit=config.horizon_unit, dead_zone_bp=config.dead_zone_bp,
                        ece_bins=config.ece_bins)
    res = train(None, tconf, out_dir, progress=False, feature_config=feature_config, dataset=ds)
    return FoldModel(res.classifier, res.calibration, Path(out_dir), int(n_f), int(n_c))


def predict(model: FoldModel, X) -> np.ndarray:
    """Calibrated P(up)."""
    return model.calibration.apply(model.classifier.predict_proba(np.asarray(X, np.float32))[:, 1])


def trade_span(data, model_dir, start_ns: int, end_ns: int, threshold: float, config: ValidateConfig,
               risk_config=None) -> tuple[dict, np.ndarray, np.ndarray]:
    """Backtest after fees on [start_ns, end_ns) from a book snapshot; (metrics, bar P&L / capital,
    round-trip P&L)."""
    import bot4.backtest as backtest
    from bot4.backtest.engine import engine_config
    from bot4.report.split import time_window

    window = time_window(data, start_ns, end_ns)
    cfg = engine_config(risk_config)
    cfg["strategy"] = dict(cfg.get("strategy", {}), long_threshold=float(threshold))
    res = backtest.run(window, str(model_dir), config=cfg, progress=False)
    capital = float(cfg["strategy"].get("equity", 100_000.0))
    inst = res.instruments[0] if res.instruments else {}
    m = M.trading_metrics(res.equity, res.fills, capital, start_ns, end_ns, config.bar_ns,
                          res.tick_size, res.lot_size, float(inst.get("contract_size", 1.0)),
                          bool(inst.get("inverse", False)))
    m["orders"] = int(res.n_orders)
    bars = M.bar_pnls(res.equity, start_ns, end_ns, config.bar_ns) / capital
    return m, bars, M.trade_pnls(res.equity)


@dataclass
class ValidationResult:
    """The outcome of `validate`: per-fold spans and metrics, pooled out-of-sample metrics, Sharpe / PSR /
    DSR, PBO and timings."""

    scheme: str
    config: dict
    source: str
    folds: list                          # per fold: spans, purge, probability and trading metrics
    oos: dict                            # pooled out-of-sample probability metrics
    sharpe: dict                         # per-bar Sharpe of the reported threshold, PSR, DSR
    pbo: dict | None
    paths: list = field(default_factory=list)      # cpcv: per-path Sharpe
    trials: list = field(default_factory=list)     # per threshold: Sharpe per bar over the OOS timeline
    sentinels: list | None = None
    seconds: dict = field(default_factory=dict)
    samples: int = 0

    def as_json(self) -> dict:
        """The result as a JSON-able dict (headline figures first, details after; what `bot4 validate
        --json` prints)."""
        doc = {"scheme": self.scheme, "source": self.source, "samples": self.samples, "config": self.config,
               "folds": self.folds, "sharpe": self.sharpe.get("sharpe"),
               "deflated_sharpe": self.sharpe.get("deflated_sharpe"), "psr": self.sharpe.get("psr"),
               "sharpe_detail": self.sharpe, "pbo": None if self.pbo is None else self.pbo["pbo"],
               "pbo_detail": self.pbo, "brier": self.oos.get("brier"), "ece": self.oos.get("ece"),
               "auc": self.oos.get("auc"), "log_loss": self.oos.get("log_loss"), "oos": self.oos,
               "trials": self.trials, "paths": self.paths, "seconds": self.seconds}
        if self.sentinels is not None:
            doc["sentinels"] = self.sentinels
        return doc


@dataclass
class FoldRun:
    """One fold's outcome: its document (spans, purge, metrics, trading per test group), the test
    labels and calibrated probabilities, and per test group the (bars, thresholds) after-fee bar
    returns / capital."""
    doc: dict
    y: np.ndarray
    p: np.ndarray
    bars: list


def run_fold(data, s: Samples, f, k: int, config: ValidateConfig, fconf, root: Path, *, risk_config=None,
             shared: FoldModel | None = None, src: Samples | None = None) -> FoldRun:
    """The per-fold pipeline: train / calibrate / export on f's purged training samples (or score
    with `shared`, transfer mode), score f's test samples, and trade each test group's span at
    every threshold of config. Also one task of a sweep (bot4.research.sweep)."""
    n_thr = len(config.thresholds)
    if shared is not None:
        f = S.Fold(train=np.zeros(0, np.int64), test_groups=f.test_groups, group_ids=f.group_ids,
                   path_ids=f.path_ids)
    elif f.train.size < 20 or np.unique(s.y[f.train]).size < 2:
        raise ValueError(f"fold {k} has {f.train.size} training samples after the purge; use "
                         "fewer folds, a shorter horizon or more data")
    test = f.test
    if shared is None:
        fit, cal = fit_and_calibration(s, f.train, config.calibration_fraction)
        model = train_fold(s, fit, cal, test, config, root / f"fold{k}", fconf)
    else:
        model = shared
    p = predict(model, s.X[test])
    if shared is None:
        train_doc, gap_doc = _fold_span(s, f.train), S.purge_summary(s.t0, s.t1, f)
    else:
        assert src is not None  # a shared model is trained on src (validate's transfer mode)
        train_doc = dict(_fold_span(src, np.arange(src.y.size)), recording="train_data")
        gap_doc = _source_gap(src, s, test)
    doc = {"fold": k, "groups": list(f.group_ids), "paths": [int(x) for x in f.path_ids],
           "train": train_doc,
           "fit_samples": model.fit_rows, "calibration_samples": model.calibration_rows,
           "test": [_fold_span(s, g) for g in f.test_groups],
           **gap_doc,
           "metrics": M.probability_metrics(s.y[test], p, config.ece_bins)}
    bars_k = []
    if config.backtest:
        trading, fold_trades, fold_bars = [], [], []
        for g in f.test_groups:
            start, end = int(s.t0[g[0]]), int(s.t0[g[-1]]) + 1
            per_thr, cols = [], []
            for j, th in enumerate(config.thresholds):
                m, bars, pnls = trade_span(data, model.model_dir, start, end, th, config, risk_config)
                per_thr.append(dict(m, threshold=th))
                cols.append(bars)
                if j == 0:
                    fold_trades.append(pnls)
                    fold_bars.append(bars)
            bars_k.append(np.column_stack(cols) if cols[0].size else np.zeros((0, n_thr)))
            trading.append(per_thr[0] | {"start_ns": start, "end_ns": end, "by_threshold": [
                {k2: v for k2, v in d.items() if k2 in ("threshold", "pnl", "fees", "trades", "hit_rate",
                                                        "turnover", "sharpe_per_bar")}
                for d in per_thr]})
        doc["trading"] = trading
        doc["metrics"].update(_sum_trading(trading, np.concatenate(fold_trades),
                                           np.concatenate(fold_bars)))
    return FoldRun(doc=doc, y=s.y[test], p=p, bars=bars_k)


def _fold_span(s: Samples, idx) -> dict:
    return {"start_ns": int(s.t0[idx[0]]), "end_ns": int(s.t1[idx].max()), "samples": int(idx.size)}


def validate(data, config: ValidateConfig | None = None, *, feature_config=None, risk_config=None,
             out_dir=None, sentinels: bool = False, sentinel_config=None, source: str = "",
             train_data=None, after_source: bool = False, progress: bool = False) -> ValidationResult:
    """Run `config.scheme` over `data` (MarketData): per fold, train / calibrate / export on the
    purged training samples, score the test samples and backtest their spans after fees.

    train_data (another recording): transfer mode. One model is trained on all of train_data
    (its last calibration_fraction calibrates) and every fold's test blocks of `data` are scored
    and traded with it; nothing of `data` is trained on. after_source: keep only the samples of
    `data` whose label starts after the training recording's last label ends (+ embargo), so the
    evaluation is later in time as well as on another instrument or market."""
    from bot4.features import compute, trading_config

    config = config or ValidateConfig()
    fconf = feature_config if feature_config is not None else trading_config()
    say = (lambda m: print(m, flush=True, file=__import__("sys").stderr)) if progress else (lambda m: None)
    t_start = time.perf_counter()
    seconds = {}
    features = compute(data, fconf)
    s = build_samples(features, config)
    src = None
    if train_data is not None:
        src = build_samples(compute(train_data, fconf), config)
        if after_source:
            s = subset(s, s.t0 > int(src.t1.max()) + config.embargo_ns)
    seconds["features_labels"] = time.perf_counter() - t_start
    if s.y.size < 10 * config.folds:
        raise ValueError(f"{s.y.size} labelled samples are too few for {config.folds} folds")
    folds = S.split(config.scheme, s.t0, s.t1, config.folds, embargo_ns=config.embargo_ns,
                    n_test_groups=config.test_groups, window=config.window)
    tmp = None
    if out_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="bot4-validate-")
        root = Path(tmp.name)
    else:
        root = Path(out_dir)
        root.mkdir(parents=True, exist_ok=True)
    n_thr = len(config.thresholds)
    fold_docs, all_y, all_p = [], [], []
    group_bars: list[list] = []           # [split][group] -> (T_g, n_thr) bar returns
    t = time.perf_counter()
    shared = None
    try:
        if src is not None:
            fit, cal = fit_and_calibration(src, np.arange(src.y.size), config.calibration_fraction)
            shared = train_fold(src, fit, cal, cal, config, root / "model", fconf)
        for k, f in enumerate(folds):
            run = run_fold(data, s, f, k, config, fconf, root, risk_config=risk_config, shared=shared, src=src)
            doc, bars_k = run.doc, run.bars
            all_y.append(run.y)
            all_p.append(run.p)
            group_bars.append(bars_k)
            fold_docs.append(doc)
            say(f"fold {k + 1}/{len(folds)}: test AUC {doc['metrics']['auc']}, "
                f"pnl {doc['metrics'].get('pnl')}")
    finally:
        if tmp is not None:
            tmp.cleanup()
    seconds["folds"] = time.perf_counter() - t
    y_all = np.concatenate(all_y)
    p_all = np.concatenate(all_p)
    oos = M.probability_metrics(y_all, p_all, config.ece_bins)
    sharpe_doc: dict[str, Any] = {"sharpe": None, "deflated_sharpe": None}
    pbo_doc, paths_doc, trials_doc = None, [], []
    if config.backtest:
        timelines = _timelines(folds, group_bars, config.scheme)
        per_path = []
        for tl in timelines:
            trial_sr = [M.sharpe(tl[:, j]) for j in range(n_thr)]
            rep = M.sharpe_report(tl[:, 0], trial_sharpes=trial_sr)
            per_path.append((rep, trial_sr))
        if config.scheme == "cpcv":
            paths_doc = [{"path": i, "sharpe": r["sharpe"], "deflated_sharpe": r["deflated_sharpe"]}
                         for i, (r, _) in enumerate(per_path)]
            srs = [r["sharpe"] for r, _ in per_path if r["sharpe"] is not None]
            dsrs = [r["deflated_sharpe"] for r, _ in per_path if r["deflated_sharpe"] is not None]
            sharpe_doc = dict(per_path[0][0], sharpe=float(np.mean(srs)) if srs else None,
                              deflated_sharpe=float(np.median(dsrs)) if dsrs else None,
                              note="sharpe: mean over paths; deflated_sharpe: median over paths")
            matrix = np.mean(np.stack(timelines), axis=0)
        else:
            sharpe_doc = per_path[0][0]
            matrix = timelines[0]
        trials_doc = [{"threshold": th, "sharpe_per_bar": M._none(M.sharpe(matrix[:, j]))}
                      for j, th in enumerate(config.thresholds)]
        if n_thr >= 2:
            try:
                pbo_doc = M.pbo_cscv(matrix, n_blocks=config.pbo_blocks)
                pbo_doc.pop("logits")
            except ValueError as exc:
                pbo_doc = {"pbo": None, "reason": str(exc)}
    result = ValidationResult(scheme=config.scheme, config=msgspec.to_builtins(config), source=source,
                              folds=fold_docs, oos=oos, sharpe=sharpe_doc, pbo=pbo_doc, paths=paths_doc,
                              trials=trials_doc, samples=int(s.y.size))
    if sentinels:
        from bot4.research.sentinels import SentinelConfig, run_sentinels

        t = time.perf_counter()
        result.sentinels = run_sentinels(data, s, folds, config, fconf, sentinel_config or SentinelConfig(),
                                         risk_config=risk_config, real_auc=oos.get("auc"), progress=progress,
                                         source=src)
        seconds["sentinels"] = time.perf_counter() - t
    seconds["total"] = time.perf_counter() - t_start
    result.seconds = {k: round(v, 3) for k, v in seconds.items()}
    return result


def subset(s: Samples, mask) -> Samples:
    """The samples where boolean `mask` (or an index array) selects, every array cut alike."""
    return Samples(X=s.X[mask], y=s.y[mask], t0=s.t0[mask], t1=s.t1[mask], names=s.names,
                   instrument=s.instrument, n_feature_rows=s.n_feature_rows, label=s.label)


def _source_gap(src: Samples, s: Samples, test) -> dict:
    """Transfer mode: time from the training recording's last decision to the first test decision
    (negative when the recordings overlap in time) and that last training label's window."""
    last = int(np.argmax(src.t0))
    return {"min_purge_ns": int(s.t0[test].min() - src.t0[last]), "horizon_ns": int(src.t1[last] - src.t0[last]),
            "max_horizon_ns": int((src.t1 - src.t0).max()),
            "min_margin_ns": int(s.t0[test].min() - src.t1.max())}


def _sum_trading(trading: list, trade_pnls: np.ndarray, bars: np.ndarray) -> dict:
    """A fold's trading metrics over its test groups (CPCV folds have several)."""
    pnl = sum(t["pnl"] for t in trading)
    trades = sum(t["trades"] for t in trading)
    hits = [t["hit_rate"] * t["trades"] for t in trading if t["hit_rate"] is not None]
    return {"pnl": pnl, "fees": sum(t["fees"] for t in trading), "trades": trades,
            "hit_rate": (sum(hits) / trades) if trades else None,
            "turnover": sum(t["turnover"] for t in trading),
            "sharpe_per_trade": M._none(M.sharpe(trade_pnls)), "sharpe_per_bar": M._none(M.sharpe(bars))}


def _timelines(folds, group_bars, scheme: str) -> list[np.ndarray]:
    """Out-of-sample bar returns (T, trials) in time order: one timeline (walk-forward, rolling,
    kfold: every test block once) or one per CPCV path."""
    if scheme != "cpcv":
        return [np.concatenate([b for bars in group_bars for b in bars], axis=0)]
    paths = S.assemble_paths(folds, group_bars)
    return [np.concatenate(p, axis=0) for p in paths]
