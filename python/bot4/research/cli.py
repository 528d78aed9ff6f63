"""`bot4 train`: fit, calibrate and export a direction classifier (bot4.research.train)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from bot4.errors import ConfigError

# Simulator streams are L3: every order message is a decision point under decision="message",
# which gives one row per event. On the embedded stream, rows are written on a 100 ms grid instead
# (1M events -> ~196k rows, ~5.8 s of features). Recordings keep a row per book message. Both
# sample returns on the 100 ms grid of bot4.features.trading_config().
SIM_DECISION_INTERVAL_NS = 100_000_000


def _feature_config(args: argparse.Namespace):
    import msgspec

    from bot4.features import FeatureConfig, trading_config

    if args.config:
        try:
            return FeatureConfig.from_toml(Path(args.config).read_bytes())
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise ConfigError(f"{args.config}: {exc}") from exc
    if not args.data:
        return trading_config(decision="time", decision_interval_ns=SIM_DECISION_INTERVAL_NS)
    return trading_config()


def _cmd_train(args: argparse.Namespace) -> int:
    from bot4.cli import _load_stream
    from bot4.research.train import TrainConfig, train

    started = time.perf_counter()
    overrides = {k: v for k, v in (("n_estimators", args.trees), ("max_depth", args.depth),
                                   ("horizon", args.horizon), ("horizon_unit", args.horizon_unit),
                                   ("dead_zone_bp", args.dead_zone_bp), ("seed", args.model_seed))
                 if v is not None}
    try:
        config = TrainConfig(**overrides)
    except (TypeError, ValueError) as exc:
        raise ConfigError(str(exc)) from exc
    feature_config = _feature_config(args)
    data, label, load_seconds = _load_stream(args)
    try:
        result = train(data, config, args.out, progress=not args.json, feature_config=feature_config,
                       source=label)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    summary = result.summary()
    summary["seconds"] = dict(summary["seconds"], load=round(load_seconds, 3),
                              wall=round(time.perf_counter() - started, 3))
    if args.json:
        for part in ("raw", "calibrated"):
            summary["metrics"]["test"][part].pop("reliability", None)
        summary["metrics"].pop("calibration_slice", None)
        print(json.dumps(summary))
        return 0
    rows = summary["rows"]
    test = summary["metrics"]["test"]
    print(f"trained on    {label}")
    print(f"rows          train {rows['train']:,}, calibration {rows['calibration']:,}, test {rows['test']:,} "
          f"(of {summary['feature_rows']:,} feature rows; purge gaps {summary['gaps_rows']})")
    print(f"model         xgboost {config.n_estimators} trees, depth {config.max_depth}; label horizon "
          f"{config.horizon} {config.horizon_unit}, dead zone {config.dead_zone_bp} bp")
    for part in ("raw", "calibrated"):
        m = test[part]
        auc = "n/a" if m["auc"] is None else f"{m['auc']:.4f}"
        print(f"test {part:<10} AUC {auc}  Brier {m['brier']:.4f}  log loss {m['log_loss']:.4f}  "
              f"ECE {m['ece']:.4f}")
    print(f"test base rate {test['base_rate']:.4f}")
    print(f"onnx parity   max |dp| {summary['parity']['max_abs_diff']:.2e} vs xgboost")
    print(f"written       {summary['model']}, {summary['sidecar']}")
    print(f"seconds       {summary['seconds']['wall']:.1f} (fit {summary['seconds']['fit']:.1f})")
    return 0


def add_train_command(sub, add_stream_args) -> None:
    p = sub.add_parser("train", help="train, calibrate and export (ONNX + sidecar) a direction model")
    add_stream_args(p)
    p.add_argument("--out", required=True, metavar="DIR", help="output directory (model.onnx, model.json)")
    p.add_argument("--trees", type=int, help="boosting rounds (default 500)")
    p.add_argument("--depth", type=int, help="maximum tree depth (default 6)")
    p.add_argument("--horizon", type=int, help="label horizon in --horizon-unit (default 100)")
    p.add_argument("--horizon-unit", choices=("events", "ns"), help="feature rows or ns (default events)")
    p.add_argument("--dead-zone-bp", type=float, help="label dead zone, basis points (default 0.5)")
    p.add_argument("--model-seed", type=int, help="xgboost random_state (default 0)")
    p.add_argument("--config", metavar="FILE",
                   help="feature config (TOML, fields of bot4.features.FeatureConfig); default: "
                        "FeatureConfig() for --data, a 100 ms decision grid for the embedded stream")
    p.set_defaults(func=_cmd_train)
