"""The whole demo pipeline as one library call: split the stream in time (training part, purge
gap, trading part), train a model on the first part (or use a given one), backtest the trading
part in the core engine, and write the report, perf manifest and the run's records."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from bot4.errors import ConfigError

if TYPE_CHECKING:
    from bot4.backtest.result import BacktestResult
    from bot4.config.risk import Config
    from bot4.data.market_data import MarketData
    from bot4.features import FeatureConfig
    from bot4.research.train import TrainConfig

#: Share of events (by receive time) the model is trained on; the rest, after a purge gap, is traded.
TRAIN_FRACTION = 0.5
#: Decision grid for simulator streams (bot4-sim). They are L3: every order message is a decision
#: point under decision="message", which gives one row per event; a 100 ms grid gives ~196k rows
#: for 1M events (~5.8 s of features). Recordings keep a row per book message. Both sample
#: returns on the 100 ms grid of bot4.features.trading_config().
SIM_DECISION_INTERVAL_NS = 100_000_000
MODEL_DIR = "model"


def default_feature_config(data: MarketData) -> FeatureConfig:
    """The feature config training uses unless told otherwise: trading_config(), on a 100 ms
    decision grid for simulator streams."""
    from bot4.features import trading_config

    if data.venue == "bot4-sim":
        return trading_config(decision="time", decision_interval_ns=SIM_DECISION_INTERVAL_NS)
    return trading_config()


@dataclass
class PipelineResult:
    """What run_pipeline produced; every path is inside `out_dir`."""
    result: BacktestResult
    out_dir: Path
    report: Path                  # report.html
    perf: Path                    # perf.json
    model: Path | None            # the model directory used (trained here: out_dir/model); None: none
    records: dict[str, Path]      # orders, fills, decisions, equity -> .parquet
    run: dict[str, Any]           # source, split (train/gap/trade), model settings
    seconds: dict[str, float] = field(default_factory=dict)  # wall seconds per phase


def _say(progress: bool, msg: str) -> None:
    if progress:
        print(msg, file=sys.stderr, flush=True)


def run_pipeline(data: MarketData, out_dir: str | Path, *, label: str = "",
                 model: str | Path | Sequence[str | Path] | None = None,
                 train_config: TrainConfig | None = None, feature_config: FeatureConfig | None = None,
                 risk_config: Config | None = None, train_fraction: float = TRAIN_FRACTION,
                 progress: bool = True, strategy: Any = None) -> PipelineResult:
    """Train (unless `model`) → backtest → report, all files into the new folder `out_dir`.

    data: the whole stream. Without `model`, the first `train_fraction` of events by receive time
    trains a model (`train_config`, `feature_config`: default_feature_config(data)), a purge gap
    at least one label horizon long follows, and the rest is traded from a snapshot of the book at
    its first instant. With `model` (a model directory), the whole stream is traded; a list of
    model directories is several model slots (0, 1, ...), combined by risk_config's [ensemble].
    risk_config: the risk and strategy config (bot4.config.load_config), default the engine's.
    strategy: what trades (bot4.strategies.make's specs: a built-in name, "module:Class", a
    .py/.pyx file, a C++ plugin .so); default the config's [strategy] (threshold_bracket).
    out_dir must not exist or be empty; the files are written into a temporary folder beside it
    that is renamed to `out_dir` only when everything is written (deleted on error or Ctrl-C).
    progress: one line per phase on stderr (and the trainer's and engine's own progress).
    """
    import bot4.backtest as backtest
    from bot4.outdir import staged_dir
    from bot4.report.split import event_count, purge_gap_ns, split_by_time, time_at_fraction

    final = Path(out_dir)
    run_info: dict[str, Any] = {"source": label, "total_events": event_count(data), "out": str(final)}
    seconds: dict[str, float] = {}
    with staged_dir(final) as stage:
        slots = _model_dirs(model)
        if slots:
            model_dir = slots[0]
            final_model = model_dir
            trade = data
            run_info.update(model=str(model_dir), trained=False)
            if len(slots) > 1:
                run_info["models"] = [str(d) for d in slots]
        else:
            from bot4.research.train import TrainConfig, train

            tconf = train_config or TrainConfig()
            fconf = feature_config if feature_config is not None else default_feature_config(data)
            cut = time_at_fraction(data, train_fraction)
            _say(progress, "purge gap     placing it after the training rows' label windows")
            gap = purge_gap_ns(data, cut, tconf.horizon, tconf.horizon_unit, fconf)
            split = split_by_time(data, train_fraction, gap)
            _say(progress, f"split         train {split.train_events:,} events, purge gap "
                           f"{split.gap_ns / 1e9:.3f} s ({split.gap_events:,} events), trade "
                           f"{split.trade_events:,} events")
            model_dir = stage / MODEL_DIR
            final_model = final / MODEL_DIR
            t = time.perf_counter()
            try:
                train(split.train, tconf, model_dir, progress=progress, feature_config=fconf,
                      source=f"{label} (first {train_fraction:.0%} of events by time)")
            except ValueError as exc:
                raise ConfigError(str(exc)) from exc
            seconds["train"] = round(time.perf_counter() - t, 3)
            trade = split.trade
            run_info.update({"model": str(final_model), "trained": True, "split": split.as_json(),
                             "trees": tconf.n_estimators, "depth": tconf.max_depth,
                             "horizon": f"{tconf.horizon} {tconf.horizon_unit}"})
        sidecar_path = model_dir / "model.json"
        sidecar = json.loads(sidecar_path.read_text()) if sidecar_path.exists() else None

        _say(progress, f"backtesting   {event_count(trade):,} events with the model in {final_model}")
        t = time.perf_counter()
        config: Any = risk_config
        if strategy is not None:
            from bot4.strategies import config_for

            config = config_for(strategy, risk_config)
        given: Any = [str(d) for d in slots] if len(slots) > 1 else str(model_dir)
        result = backtest.run(trade, given, config=config, progress=progress, strategy=strategy)
        seconds["backtest_wall"] = round(time.perf_counter() - t, 3)
        records = _write_outputs(result, stage, final, sidecar, label, run_info, seconds, progress)
    return _pipeline_result(result, final, final_model, records, run_info, seconds)


def _model_dirs(model: str | Path | Sequence[str | Path] | None) -> list[Path]:
    """The model directories given (one, a list for several slots, or none)."""
    if model is None:
        return []
    if isinstance(model, (str, Path)):
        return [Path(model)]
    return [Path(m) for m in model]


def run_streamed(parts: Iterable[MarketData], out_dir: str | Path, *, label: str = "",
                 model: str | Path | Sequence[str | Path] | None = None, risk_config: Config | None = None, progress: bool = True,
                 strategy: Any = None) -> PipelineResult:
    """Backtest → report over a recording given as consecutive MarketData parts (bot4.sources.
    stream_parts): each part is pushed into the streamed engine (bot4.backtest.run_stream) and
    dropped, so the market data held at any time is one part (plus the venue's look-ahead),
    whatever the recording's size. Nothing is trained: `model` is a model directory, a list of them
    (model slots, see run_pipeline), or None for a strategy that needs none. The run's records (decisions, orders, fills, equity) are kept for
    the report and the Parquet files. The files are as run_pipeline's, in the new folder `out_dir`."""
    import bot4.backtest as backtest
    from bot4.outdir import staged_dir

    final = Path(out_dir)
    slots = _model_dirs(model)
    first = slots[0] if slots else None
    run_info: dict[str, Any] = {"source": label, "out": str(final), "streamed": True,
                                "model": str(first) if first is not None else None, "trained": False}
    if len(slots) > 1:
        run_info["models"] = [str(d) for d in slots]
    seconds: dict[str, float] = {}
    with staged_dir(final) as stage:
        sidecar = None
        if first is not None and (first / "model.json").exists():
            sidecar = json.loads((first / "model.json").read_text())
        config: Any = risk_config
        if strategy is not None:
            from bot4.strategies import config_for

            config = config_for(strategy, risk_config)
        _say(progress, f"backtesting   part by part, model {', '.join(map(str, slots)) or '(none)'}")
        t = time.perf_counter()
        given: Any = [str(d) for d in slots] if len(slots) > 1 else (str(first) if first is not None else None)
        result = backtest.run_stream(parts, model=given, config=config,
                                     progress=progress, strategy=strategy)
        seconds["backtest_wall"] = round(time.perf_counter() - t, 3)
        run_info["total_events"] = int(result.events)
        records = _write_outputs(result, stage, final, sidecar, label, run_info, seconds, progress)
    return _pipeline_result(result, final, first, records, run_info, seconds)


def _write_outputs(result: BacktestResult, stage: Path, final: Path, sidecar: dict | None, label: str,
                   run_info: dict[str, Any], seconds: dict[str, float], progress: bool) -> dict[str, Path]:
    """report.html, perf.json and the records (Parquet) into the staging folder; the records'
    final paths by table."""
    from bot4.report.html import PERF_FILE, write_perf_manifest, write_report

    t = time.perf_counter()
    _say(progress, "writing       report.html, perf.json and the run's records (Parquet)")
    extra = {k: v for k, v in run_info.items() if k != "split"}
    if "split" in run_info:
        extra["split"] = json.dumps(run_info["split"])
    write_report(result, stage, sidecar, title=f"bot4 backtest — {label}", extra=extra)
    write_perf_manifest(result, stage / PERF_FILE, name="backtest", notes={"source": label, "run": run_info})
    records = {name: final / path.name for name, path in result.write_parquet(stage).items()}
    seconds["write"] = round(time.perf_counter() - t, 3)
    return records


def _pipeline_result(result: BacktestResult, final: Path, model: Path | None, records: dict[str, Path],
                     run_info: dict[str, Any], seconds: dict[str, float]) -> PipelineResult:
    from bot4.report.html import PERF_FILE, REPORT_FILE

    return PipelineResult(result=result, out_dir=final, report=final / REPORT_FILE, perf=final / PERF_FILE,
                          model=model, records=records, run=run_info, seconds=seconds)
