"""`bot4 train`: fit, calibrate and export a direction classifier (bot4.research.train)."""

from __future__ import annotations

import argparse
import json
import time

from bot4.errors import ConfigError


def _cmd_train(args: argparse.Namespace) -> int:
    from bot4.cli import check_stream_args, stream_from_args
    from bot4.outdir import check_new_dir, staged_dir
    from bot4.pipeline import default_feature_config
    from bot4.report.cli import feature_config, train_config
    from bot4.research.train import train

    started = time.perf_counter()
    # every argument is checked before the data is read
    out = check_new_dir(args.out)
    config = train_config(args, extra=("dead_zone_bp",))
    features = feature_config(args.feature_config)
    check_stream_args(args)
    stream = stream_from_args(args)
    data, label = stream.data, stream.label
    if features is None:
        features = default_feature_config(data)
    try:
        # staged: an interrupted or failed fit leaves no (empty or partial) model folder
        with staged_dir(out) as stage:
            result = train(data, config, stage, progress=not args.quiet, feature_config=features,
                           source=label)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    summary = result.summary()
    summary["model"], summary["sidecar"] = str(out / result.model_path.name), str(out / result.sidecar_path.name)
    summary["seconds"] = dict(summary["seconds"], load=round(stream.load_seconds, 3),
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
    from bot4.cli import Renamed, amount
    from bot4.report.cli import add_model_args

    p = sub.add_parser("train", help="train, calibrate and export (ONNX + sidecar) a direction model")
    add_stream_args(p)
    p.add_argument("--out", required=True, metavar="DIR",
                   help="new (or empty) model folder: model.onnx, model.json; written when complete")
    add_model_args(p)
    p.add_argument("--dead-zone-bp", type=amount(0.0), help="label dead zone, basis points (default 0.5)")
    p.add_argument("--config", action=Renamed, pointer="use --feature-config FILE for the feature TOML")
    p.set_defaults(func=_cmd_train)
