"""`bot4 paper`: a paper-trading session (bot4.services.session.run_paper) from the command line."""

from __future__ import annotations

import argparse
import json
import sys

from bot4.errors import ConfigError, InputError


def _speed(text: str) -> str | float:
    from bot4.services.feed import parse_speed

    try:
        parse_speed(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text if text == "max" else float(text)


def _cmd_paper(args: argparse.Namespace) -> int:
    from bot4.services.session import run_paper

    config = None
    if args.config is not None:
        from bot4.config import load_config

        try:
            config = load_config(args.config)
        except ConfigError as exc:
            raise InputError("config", str(exc), fix=f"check it with `bot4 config check {args.config}`") from exc
    if args.control != "auto":
        from bot4.services.control import check_endpoint

        try:
            check_endpoint(args.control)
        except ValueError as exc:
            raise InputError("--control", str(exc)) from None

    def announce(endpoint: str) -> None:  # stderr: --json keeps stdout one JSON object
        print(f"paper: control endpoint {endpoint} (`bot4 ctl status --endpoint {endpoint}`)", file=sys.stderr,
              flush=True)
    out = run_paper(args.data, speed=args.speed, config=config, model=args.model, strategy=args.strategy,
                    journal=args.journal, fsync=args.fsync, processes=args.processes, seed=args.seed,
                    n_events=args.events, control=args.control, on_control=announce, announce=True)
    if args.json:
        print(json.dumps(out.as_json(), indent=2, sort_keys=True))
        return 0
    eng = out.counters.get("engine", {})
    rejected = sum(v for k, v in eng.items() if k.startswith("md.rejected."))
    print(f"paper: {out.decisions:,} decisions, {len(out.orders):,} order events, {len(out.fills):,} fills, "
          f"pnl {out.pnl:,.4f}")
    print(f"feed: {out.counters.get('feed', {}).get('batches', 0):,} batches, "
          f"{out.counters.get('feed', {}).get('records', 0):,} records, "
          f"{out.counters.get('feed', {}).get('behind_schedule', 0):,} behind schedule")
    print(f"engine: {eng.get('frames_in', 0):,} frames in, {eng.get('frames_out', 0):,} out, {rejected:,} rejected, "
          f"{eng.get('missed_batches', 0):,} missed batches, "
          f"{eng.get('core.sim_late_feed_events', 0):,} late for the venue")
    if out.journal is not None:
        print(f"journal: {out.journal} ({eng.get('journal.records', 0):,} records)")
    return 0


def add_paper_command(sub) -> None:
    from bot4.sim import DEFAULT_SEED
    from bot4.sim.generate import DEFAULT_EVENTS

    p = sub.add_parser("paper", help="paper-trade a recording or the simulator: feed -> engine over ZeroMQ")
    p.add_argument("--data", nargs="+", metavar="PATH",
                   help="recording(s) to replay (default: the embedded market simulator stream)")
    p.add_argument("--seed", type=int, metavar="N", default=DEFAULT_SEED, help="simulator seed (no --data)")
    p.add_argument("--events", type=int, metavar="N", default=DEFAULT_EVENTS,
                   help=f"simulator events (no --data; default {DEFAULT_EVENTS:,})")
    p.add_argument("--speed", type=_speed, default="max", metavar="N|max",
                   help="replay pace: N x the recording's own clock, or max (default: max)")
    p.add_argument("--config", metavar="FILE", help="risk and strategy config (TOML; `bot4 config check FILE`)")
    p.add_argument("--model", metavar="DIR", help="model directory (model.onnx + model.json); default: none")
    p.add_argument("--strategy", metavar="NAME", help="strategy: a built-in (`bot4 strategies`), module:Class or a "
                   "file (default: the config's [strategy], threshold_bracket)")
    p.add_argument("--journal", metavar="DIR", help="journal every frame in and out of the engine there")
    p.add_argument("--fsync", default="every:1000", metavar="POLICY",
                   help="journal fsync policy: always, every:N, interval:S or never (default every:1000)")
    p.add_argument("--processes", action="store_true",
                   help="run feed and engine as processes over ipc (default: threads over inproc)")
    p.add_argument("--control", default="auto", metavar="ADDR",
                   help="control endpoint for `bot4 ctl` (ipc://PATH or inproc://NAME; default: ipc in a fresh "
                        "run folder, printed at start)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd_paper)
