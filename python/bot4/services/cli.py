"""`bot4 paper`: a paper-trading session (bot4.services.session.run_paper) from the command line.

With --live the session runs in a thread and this thread draws the live view
(bot4.services.live_view.watch) from the session's observer endpoint, so however slowly the
terminal draws, the session is never held up (bot4.services.observer)."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
from typing import Any

from bot4.errors import ConfigError, InputError


def _speed(text: str) -> str | float:
    from bot4.services.feed import parse_speed

    try:
        parse_speed(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text if text == "max" else float(text)


def _shards(text: str) -> list[list[int]]:
    try:
        groups = [[int(x) for x in g.split(",") if x.strip()] for g in text.split(";")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected instrument ids like '1,2;3', got {text!r}") from None
    if any(not g for g in groups):
        raise argparse.ArgumentTypeError(f"a shard without instruments in {text!r}")
    return groups


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
            check_endpoint(args.control, curve=args.keys is not None)
        except ValueError as exc:
            raise InputError("--control", str(exc)) from None
    if args.observe is not None:
        from bot4.services.observer import check_observe_endpoint

        try:
            check_observe_endpoint(args.observe, curve=args.keys is not None)
        except ValueError as exc:
            raise InputError("--observe", str(exc)) from None
    if args.restarts and not (args.processes and args.venue_service and args.journal):
        raise InputError("--restarts", "needs --processes, --venue-service and --journal (the state a restarted "
                                       "engine carries on from)")
    if args.transport == "tcp" and not (args.processes and args.keys is not None):
        raise InputError("--transport", "tcp links are between processes, with CURVE keys",
                         fix="add --processes and --keys DIR (`bot4 keys generate DIR`)")
    if args.shards is not None and not args.processes:
        raise InputError("--shards", "shards run as engine processes", fix="add --processes")
    if args.keys is not None:
        from bot4.services.security import KeyDir

        KeyDir(args.keys).authorised()  # a KeyFileError names the missing or bad file before anything starts

    keys_hint = f" --keys {args.keys}" if args.keys is not None else ""

    def announce(endpoint: str) -> None:  # stderr: --json keeps stdout one JSON object
        hint = keys_hint if endpoint.startswith("tcp://") else ""
        print(f"paper: control endpoint {endpoint} (`bot4 ctl status --endpoint {endpoint}{hint}`)", file=sys.stderr,
              flush=True)
    kwargs = dict(speed=args.speed, config=config, model=args.model, strategy=args.strategy,
                  journal=args.journal, fsync=args.fsync, processes=args.processes, seed=args.seed,
                  n_events=args.events, control=args.control, on_control=announce, announce=True,
                  observe=args.observe, keys=args.keys, venue_service=args.venue_service, restarts=args.restarts,
                  shards=args.shards, perf=args.perf, transport=args.transport)
    if args.shadow:
        kwargs["shadow"] = list(args.shadow)
    if args.live:
        out = _run_live(args, kwargs)
    else:
        if args.observe is not None:
            hint = keys_hint if args.observe.startswith("tcp://") else ""
            print(f"paper: observer endpoint {args.observe} (`bot4 ctl watch --endpoint {args.observe}{hint}`)",
                  file=sys.stderr, flush=True)
        out = run_paper(args.data, **kwargs)
    if args.json:
        print(json.dumps(out.as_json(), indent=2, sort_keys=True))
        return 0
    eng = out.counters.get("engine", {})
    rejected = sum(v for k, v in eng.items() if k.startswith("md.rejected."))
    print(f"paper: {out.decisions:,} decisions, {len(out.orders):,} order events, {len(out.fills):,} fills, "
          f"pnl {out.pnl:,.4f}")
    if out.scores:
        print(f"paper: {len(out.scores):,} shadow scores over {len(args.shadow)} shadow model(s)")
    print(f"feed: {out.counters.get('feed', {}).get('batches', 0):,} batches, "
          f"{out.counters.get('feed', {}).get('records', 0):,} records, "
          f"{out.counters.get('feed', {}).get('behind_schedule', 0):,} behind schedule")
    print(f"engine: {eng.get('frames_in', 0):,} frames in, {eng.get('frames_out', 0):,} out, {rejected:,} rejected, "
          f"{eng.get('missed_batches', 0):,} missed batches, "
          f"{eng.get('core.sim_late_feed_events', 0):,} late for the venue")
    if out.journal is not None:
        print(f"journal: {out.journal} ({eng.get('journal.records', 0):,} records)")
    return 0


def _run_live(args: argparse.Namespace, kwargs: dict) -> Any:
    """run_paper in a thread, the live view drawn here until the session ends."""
    import zmq
    from rich.console import Console

    from bot4.services.live_view import LiveView, subscribe, watch
    from bot4.services.session import run_paper

    folder = None
    if kwargs["observe"] is None:
        folder = tempfile.mkdtemp(prefix="bot4-live-")
        kwargs["observe"] = f"ipc://{folder}/observe"
    box: dict[str, Any] = {}

    def session() -> None:
        try:
            box["out"] = run_paper(args.data, observers=1, **kwargs)  # starts once the view has subscribed
        except BaseException as exc:  # raised again below, in the CLI's thread
            box["error"] = exc
    th = threading.Thread(target=session, name="bot4-paper", daemon=True)
    ctx = zmq.Context()
    sock = subscribe(ctx, kwargs["observe"], keys=args.keys, name=args.name)
    try:
        th.start()
        # --json keeps stdout one JSON object: the view goes to stderr then.
        watch(sock, LiveView(), console=Console(stderr=args.json), idle_timeout_s=None,
              stop=lambda: not th.is_alive())
        th.join()
    finally:
        sock.close()
        ctx.term()
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
    if "error" in box:
        raise box["error"]
    return box["out"]


def add_paper_command(sub) -> None:
    from bot4.cli import count
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
    p.add_argument("--shadow", nargs="+", metavar="DIR",
                   help="shadow model directories scored beside --model at every decision, never traded (judge them "
                        "with `bot4 models canary --session JOURNAL_DIR`)")
    p.add_argument("--strategy", metavar="NAME", help="strategy: a built-in (`bot4 strategies`), module:Class or a "
                   "file (default: the config's [strategy], threshold_bracket)")
    p.add_argument("--journal", metavar="DIR", help="journal every frame in and out of the engine there")
    p.add_argument("--fsync", default="every:1000", metavar="POLICY",
                   help="journal fsync policy: always, every:N, interval:S or never (default every:1000)")
    p.add_argument("--processes", action="store_true",
                   help="run feed and engine as processes over ipc (default: threads over inproc)")
    p.add_argument("--transport", choices=("ipc", "tcp"), default="ipc",
                   help="with --processes: the links between the services as ipc sockets (default) or tcp on "
                        "127.0.0.1 with CURVE (needs --keys); across hosts see `bot4 serve`")
    p.add_argument("--venue-service", action="store_true",
                   help="run the venue simulators as a service of their own (ROUTER/DEALER), not inside the engine")
    p.add_argument("--restarts", type=count(0), default=0, metavar="N",
                   help="start a dead engine process again up to N times; it carries on from its journal (needs "
                        "--processes, --venue-service and --journal)")
    p.add_argument("--shards", type=_shards, metavar="IDS;IDS",
                   help="split the instruments over engine processes, e.g. '1,2;3' (needs --processes)")
    p.add_argument("--perf", metavar="FILE", help="write the session's perf manifest (p50..p99.9 per stage) there")
    p.add_argument("--control", default="auto", metavar="ADDR",
                   help="control endpoint for `bot4 ctl` (ipc://PATH, inproc://NAME, or tcp://HOST:PORT with --keys; "
                        "default: ipc in a fresh run folder, printed at start)")
    p.add_argument("--observe", metavar="ADDR",
                   help="publish every engine output to observers (`bot4 ctl watch`) there: ipc://PATH, or "
                        "tcp://HOST:PORT with --keys; a slow observer is conflated, never waited for")
    p.add_argument("--live", action="store_true",
                   help="draw a live view (positions, P&L, orders, fills, decisions, latency) while the session runs")
    p.add_argument("--keys", metavar="DIR",
                   help="CURVE keys directory (`bot4 keys generate DIR`): required for tcp endpoints, whose peers "
                        "must hold an authorised client key")
    p.add_argument("--name", metavar="NAME", default=None,
                   help="the live view's client name in --keys when --observe is tcp (default: client)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd_paper)
