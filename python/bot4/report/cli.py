"""`bot4 backtest` and `bot4 demo`: train on the earlier part of a stream (or load --model), leave a
purge gap, backtest the later part in the core engine, print a summary and write report.html and
perf.json."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from bot4.errors import ConfigError

DEFAULT_OUT = "bot4-out"
TRAIN_FRACTION = 0.5


def _say(enabled: bool, msg: str) -> None:
    if enabled:
        print(msg, file=sys.stderr, flush=True)


def _train_config(args: argparse.Namespace):
    from bot4.research.train import TrainConfig

    overrides = {k: v for k, v in (("n_estimators", args.trees), ("max_depth", args.depth),
                                   ("horizon", args.horizon), ("horizon_unit", args.horizon_unit),
                                   ("seed", args.model_seed)) if v is not None}
    try:
        return TrainConfig(**overrides)
    except (TypeError, ValueError) as exc:
        raise ConfigError(str(exc)) from exc


def _feature_config(embedded: bool):
    from bot4.features import trading_config
    from bot4.research.cli import SIM_DECISION_INTERVAL_NS

    if embedded:   # same choice as `bot4 train` on the embedded stream: a 100 ms decision grid
        return trading_config(decision="time", decision_interval_ns=SIM_DECISION_INTERVAL_NS)
    return trading_config()


def run_pipeline(data, label: str, args: argparse.Namespace, progress: bool) -> dict:
    """Train (unless --model) → backtest → report. Returns everything the commands print."""
    import bot4.backtest as backtest
    from bot4.report.html import PERF_FILE, write_perf_manifest, write_report
    from bot4.report.split import event_count, purge_gap_ns, split_by_time, time_at_fraction

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    config = None
    if args.config:
        from bot4.config import load_config

        config = load_config(args.config)
    run_info: dict = {"source": label, "total_events": event_count(data)}
    seconds: dict = {}
    if args.model:
        model_dir = Path(args.model)
        trade = data
        run_info["model"] = str(model_dir)
        run_info["trained"] = False
    else:
        from bot4.research.train import train

        tconf = _train_config(args)
        embedded = not args.data
        fconf = _feature_config(embedded)
        cut = time_at_fraction(data, TRAIN_FRACTION)
        gap = purge_gap_ns(data, cut, tconf.horizon, tconf.horizon_unit, fconf)
        split = split_by_time(data, TRAIN_FRACTION, gap)
        _say(progress, f"split         train {split.train_events:,} events, purge gap "
                       f"{split.gap_ns / 1e9:.3f} s ({split.gap_events:,} events), trade "
                       f"{split.trade_events:,} events")
        model_dir = out / "model"
        t = time.perf_counter()
        try:
            train(split.train, tconf, model_dir, progress=progress, feature_config=fconf,
                source=f"{label} (first {TRAIN_FRACTION:.0%} of events by time)")
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
        seconds["train"] = round(time.perf_counter() - t, 3)
        trade = split.trade
        run_info.update({"model": str(model_dir), "trained": True, "split": split.as_json(),
                         "trees": tconf.n_estimators, "depth": tconf.max_depth,
                         "horizon": f"{tconf.horizon} {tconf.horizon_unit}"})
    sidecar_path = model_dir / "model.json"
    sidecar = json.loads(sidecar_path.read_text()) if sidecar_path.exists() else None

    _say(progress, f"backtesting   {event_count(trade):,} events with the model in {model_dir}")
    t = time.perf_counter()
    result = backtest.run(trade, str(model_dir), config=config, progress=progress)
    seconds["backtest_wall"] = round(time.perf_counter() - t, 3)

    report = write_report(result, out, sidecar, title=f"bot4 backtest — {label}",
                          extra={k: v for k, v in run_info.items() if k != "split"}
                          | ({"split": json.dumps(run_info["split"])} if "split" in run_info else {}))
    perf = write_perf_manifest(result, out / PERF_FILE, name="backtest",
                               notes={"source": label, "run": run_info})
    return {"result": result, "report": report, "perf": perf, "model": model_dir, "run": run_info,
            "seconds": seconds}


def _emit(out: dict, label: str, as_json: bool) -> None:
    from bot4.report.html import format_summary, summarize

    result = out["result"]
    if as_json:
        doc = dict(result.as_json())
        doc.update({"source": label, "report": str(out["report"]), "perf": str(out["perf"]),
                    "model": str(out["model"]), "run": out["run"], "wall_seconds": out["seconds"]})
        print(json.dumps(doc, default=float))
        return
    run = out["run"]
    print(f"backtested    {label}")
    if run.get("trained"):
        sp = run["split"]
        print(f"model         trained here: xgboost {run['trees']} trees, depth {run['depth']}, label horizon "
              f"{run['horizon']}, on the first {sp['train_events']:,} events; purge gap "
              f"{sp['gap_ns'] / 1e9:.3f} s; traded the last {sp['trade_events']:,}")
    else:
        print(f"model         {run['model']}")
    for line in format_summary(summarize(result)):
        print(line)
    print(f"report        {out['report']}")
    print(f"perf manifest {out['perf']}")
    if run.get("trained"):
        print(f"model files   {out['model']}/model.onnx, {out['model']}/model.json")


def _cmd_backtest(args: argparse.Namespace) -> int:
    from bot4.cli import _load_stream

    data, label, _ = _load_stream(args)
    out = run_pipeline(data, label, args, progress=not args.json)
    _emit(out, label, args.json)
    return 0


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", metavar="DIR", help="model directory (model.onnx + model.json); default: "
                   f"train on the first {TRAIN_FRACTION * 100:.0f}%% of events by time, leave a purge gap, trade the rest")
    p.add_argument("--config", metavar="FILE", help="risk and strategy config (TOML; `bot4 config check`)")
    p.add_argument("--out", default=DEFAULT_OUT, metavar="DIR",
                   help=f"output directory for report.html, perf.json and the trained model "
                        f"(default ./{DEFAULT_OUT})")
    p.add_argument("--trees", type=int, help="boosting rounds when training (default 500)")
    p.add_argument("--depth", type=int, help="maximum tree depth when training (default 6)")
    p.add_argument("--horizon", type=int, help="label horizon when training (default 100)")
    p.add_argument("--horizon-unit", choices=("events", "ns"), help="feature rows or ns (default events)")
    p.add_argument("--model-seed", type=int, help="xgboost random_state (default 0)")
    p.set_defaults(func=_cmd_backtest)


def add_backtest_commands(sub, add_stream_args) -> None:
    p = sub.add_parser("backtest", help="backtest a recording: train (or --model), trade, report")
    add_stream_args(p)
    _add_common(p)
    p = sub.add_parser("demo", help="the main job: train, backtest and report on the embedded default "
                                    "market stream (or --data FILE)")
    add_stream_args(p)
    _add_common(p)
