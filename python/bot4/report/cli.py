"""`bot4 backtest` and `bot4 demo`: bot4.pipeline.run_pipeline on the stream named on the command
line, into a new run folder under --out, with a printed summary."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bot4.errors import Bot4Error, ConfigError, InputError
from bot4.pipeline import TRAIN_FRACTION

DEFAULT_OUT = "bot4-out"
MAX_TREES = 100_000
MAX_DEPTH = 12   # the core's tree evaluator (core/inference/tree_ensemble.hpp kMaxDepth)


def train_config(args: argparse.Namespace, extra: tuple[str, ...] = ()):
    """TrainConfig from the model options given (the rest default)."""
    from bot4.research.train import TrainConfig

    names = {"trees": "n_estimators", "depth": "max_depth", "horizon": "horizon",
             "horizon_unit": "horizon_unit", "model_seed": "seed"} | {k: k for k in extra}
    overrides = {field: getattr(args, opt) for opt, field in names.items() if getattr(args, opt) is not None}
    try:
        return TrainConfig(**overrides)
    except (TypeError, ValueError) as exc:
        raise ConfigError(str(exc)) from exc


def feature_config(path: str | None):
    """FeatureConfig from --feature-config FILE, or None (the pipeline's default)."""
    if path is None:
        return None
    import msgspec

    from bot4.features import FeatureConfig

    p = Path(path)
    if not p.is_file():
        raise InputError("feature_config", f"no such file: {p}", fix="name a feature config TOML file")
    try:
        return FeatureConfig.from_toml(p.read_bytes())
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise InputError("feature_config", f"{p}: {exc}",
                         fix="use the fields of bot4.features.FeatureConfig") from exc


def _risk_config(path: str | None):
    if path is None:
        return None
    from bot4.config import load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        raise InputError("risk_config", str(exc), fix=f"check it with `bot4 config check {path}`") from exc


def _check_model(path: str | None) -> None:
    if path is None:
        return
    from bot4.models import load

    d = Path(path)
    if not d.is_dir() or not (d / "model.json").is_file():
        raise InputError("model", f"{d} is not a model folder (model.onnx + model.json)",
                         fix="name a folder written by `bot4 train --out DIR` or a run's model/ folder")
    try:
        load(d)
    except Bot4Error as exc:
        raise InputError("model", str(exc), fix="retrain it or name another model folder") from exc


def _check_strategy(spec: str | None, risk) -> None:
    """Makes the strategy once (a .pyx is compiled here, into the cache) so that a bad spec, a
    failing build or a [strategy] table for another strategy stops the run before any data is read."""
    if spec is None:
        return
    from bot4 import strategies

    try:
        strategies.make(spec, None)
        strategies.config_for(spec, risk)
    except (ValueError, TypeError, RuntimeError, FileNotFoundError) as exc:
        raise InputError("strategy", str(exc), fix="`bot4 strategies` lists the built-ins; or give "
                         "module:Class, a .py/.pyx file or a C++ plugin .so") from exc


def _emit(out, label: str, as_json: bool) -> None:
    from bot4.report.html import format_summary, summarize

    result = out.result
    if as_json:
        doc = dict(result.as_json())
        doc.update({"source": label, "out": str(out.out_dir), "report": str(out.report), "perf": str(out.perf),
                    "model": str(out.model) if out.model is not None else None, "records": {k: str(v) for k, v in out.records.items()},
                    "run": out.run, "wall_seconds": out.seconds})
        print(json.dumps(doc, default=float))
        return
    run = out.run
    print(f"backtested    {label}")
    if run.get("trained"):
        sp = run["split"]
        print(f"model         trained here: xgboost {run['trees']} trees, depth {run['depth']}, label horizon "
              f"{run['horizon']}, on the first {sp['train_events']:,} events; purge gap "
              f"{sp['gap_ns'] / 1e9:.3f} s; traded the last {sp['trade_events']:,}")
    else:
        print(f"model         {run['model'] or '(none)'}" + ("; streamed part by part" if run.get("streamed") else ""))
    for line in format_summary(summarize(result)):
        print(line)
    print(f"run folder    {out.out_dir}")
    print(f"report        {out.report}")
    print(f"perf manifest {out.perf}")
    print(f"records       {out.out_dir}/{{{','.join(out.records)}}}.parquet")
    if run.get("trained"):
        print(f"model files   {out.model}/model.onnx, {out.model}/model.json")


def _cmd_backtest(args: argparse.Namespace) -> int:
    from bot4.cli import check_stream_args, stream_from_args
    from bot4.outdir import check_out_root, new_run_dir
    from bot4.pipeline import run_pipeline

    # every argument is checked before the data is read or a model trained
    root = check_out_root(args.out)
    check_stream_args(args)
    risk = _risk_config(args.risk_config)
    features = feature_config(args.feature_config)
    tconf = train_config(args) if args.model is None else None
    for m in args.model or []:
        _check_model(m)
    _check_ensemble(args.model, risk)
    _check_strategy(args.strategy, risk)
    if getattr(args, "stream", False):
        return _backtest_streamed(args, root, risk)
    stream = stream_from_args(args)
    run_dir = new_run_dir(root, args.command)
    out = run_pipeline(stream.data, run_dir, label=stream.label, model=_model_arg(args.model), train_config=tconf,
                       feature_config=features, risk_config=risk, progress=not args.quiet,
                       strategy=args.strategy)
    _emit(out, stream.label, args.json)
    return 0


def _model_arg(models: list[str] | None) -> str | list[str] | None:
    """--model given once: that folder; several times: the list (model slots 0, 1, ...)."""
    if not models:
        return None
    return models[0] if len(models) == 1 else list(models)


def _check_ensemble(models: list[str] | None, risk) -> None:
    mode = risk.ensemble.mode if risk is not None else "none"
    if mode != "none" and len(models or []) < 2:
        raise InputError("model", f"the config's [ensemble] mode {mode!r} combines several models",
                         fix="pass --model DIR once per model slot (slot 0 first)")


def _backtest_streamed(args: argparse.Namespace, root: Path, risk) -> int:
    """`bot4 backtest --stream`: the recording part by part through the streamed engine
    (bot4.pipeline.run_streamed); nothing is trained."""
    from bot4.outdir import new_run_dir
    from bot4.pipeline import run_streamed
    from bot4.sources import stream_parts

    training = [f"--{o.replace('_', '-')}" for o in ("trees", "depth", "horizon", "horizon_unit", "model_seed",
                                                     "feature_config") if getattr(args, o) is not None]
    if training:
        raise InputError("stream", f"a streamed run trains nothing, so {', '.join(training)} has no use",
                         fix="train first (`bot4 train --out DIR`) and pass --model DIR")
    if args.model is None and args.strategy is None:
        raise InputError("stream", "a streamed run trains nothing and the default strategy trades on a model",
                         fix="pass --model DIR (from `bot4 train`) or a --strategy that needs no model "
                             "(e.g. top_of_book)")
    stream = stream_parts(args.data, args.venue, seed=args.seed, n_events=args.events, progress=not args.quiet)
    out = run_streamed(stream.parts, new_run_dir(root, args.command), label=stream.label, model=_model_arg(args.model),
                       risk_config=risk, progress=not args.quiet, strategy=args.strategy)
    _emit(out, stream.label, args.json)
    return 0


def add_model_args(p: argparse.ArgumentParser) -> None:
    """Training options shared by `bot4 train`, `bot4 backtest` and `bot4 demo`."""
    from bot4.cli import count

    p.add_argument("--trees", metavar="N", type=count(1, MAX_TREES), help="boosting rounds when training (default 500)")
    p.add_argument("--depth", metavar="N", type=count(1, MAX_DEPTH),
                   help=f"maximum tree depth when training, 1..{MAX_DEPTH} (default 6)")
    p.add_argument("--horizon", metavar="N", type=count(1), help="label horizon in --horizon-unit (default 100)")
    p.add_argument("--horizon-unit", choices=("events", "ns"), help="feature rows or ns (default events)")
    p.add_argument("--model-seed", metavar="N", type=count(0), help="xgboost random_state (default 0)")
    p.add_argument("--feature-config", metavar="FILE",
                   help="feature config for training (TOML, fields of bot4.features.FeatureConfig); "
                        "default: trading_config(), on a 100 ms decision grid for simulator streams")


def _add_common(p: argparse.ArgumentParser) -> None:
    from bot4.cli import Renamed

    p.add_argument("--model", metavar="DIR", action="append",
                   help="model directory (model.onnx + model.json); repeat it for several model slots (0, 1, ...) "
                        "that the --risk-config's [ensemble] section combines; default: "
                        f"train on the first {TRAIN_FRACTION * 100:.0f}%% of events by time, leave a purge gap, "
                        "trade the rest")
    p.add_argument("--risk-config", metavar="FILE",
                   help="risk and strategy config (TOML; check it with `bot4 config check FILE`)")
    p.add_argument("--strategy", metavar="SPEC",
                   help="what trades: a built-in (`bot4 strategies`; parameters from --risk-config's [strategy]), "
                        "module:Class, a .py or Cython .pyx file, or a C++ plugin .so (default: the config's "
                        "[strategy], threshold_bracket)")
    p.add_argument("--config", action=Renamed, pointer="use --risk-config FILE for the risk and strategy "
                   "TOML (or --feature-config FILE for the training features)")
    p.add_argument("--out", default=DEFAULT_OUT, metavar="DIR",
                   help="folder of runs: each run writes report.html, perf.json, orders/fills/decisions/"
                        f"equity.parquet and model/ into a new DIR/<UTC time>-<command> (default ./{DEFAULT_OUT})")
    add_model_args(p)
    p.set_defaults(func=_cmd_backtest)


def add_backtest_commands(sub, add_stream_args) -> None:
    p = sub.add_parser("backtest", help="backtest a recording: train (or --model), trade, report")
    add_stream_args(p)
    _add_common(p)
    p.add_argument("--stream", action="store_true",
                   help="read the recording part by part (Binance, Tardis or LOBSTER files, a `bot4 convert` dataset or the "
                        "embedded stream) so that market data of any size fits in memory; trains nothing: "
                        "needs --model DIR or a --strategy that needs no model")
    p = sub.add_parser("demo", help="the main job: train, backtest and report on the embedded default "
                                    "market stream (or --data FILE)")
    add_stream_args(p)
    _add_common(p)
