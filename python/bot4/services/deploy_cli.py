"""`bot4 serve feed|venue|engine|collector --plan FILE`: one service of a paper session across
hosts (bot4.services.deploy), from the session's plan."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from bot4.errors import InputError


def _plan(args: argparse.Namespace) -> Any:
    import msgspec

    from bot4.services.deploy import load_plan

    plan = load_plan(args.plan)  # a ConfigError names the file and the field
    if args.keys is not None:
        plan = msgspec.structs.replace(plan, keys=args.keys)
    if plan.keys is not None:
        from bot4.services.security import KeyDir

        KeyDir(plan.keys).server_public()  # a KeyFileError names the missing or bad file before anything starts
    return plan


def _cmd_serve(args: argparse.Namespace) -> int:
    from bot4.services import deploy

    plan = _plan(args)
    service = args.service
    if service != "engine" and (args.shard != 0 or args.recover):
        raise InputError("--shard/--recover", "are for `bot4 serve engine`")
    print(f"serve: {service} of {args.plan}", file=sys.stderr, flush=True)
    out: Any
    if service == "feed":
        out = deploy.serve_feed(plan, client=args.name)
    elif service == "venue":
        out = deploy.serve_venue(plan, client=args.name)
    elif service == "engine":
        out = deploy.serve_engine(plan, shard=args.shard, recover=args.recover, client=args.name)
    else:
        def announce(endpoint: str) -> None:
            print(f"serve: control endpoint {endpoint} (`bot4 ctl status --endpoint {endpoint}"
                  f"{' --keys ' + plan.keys if endpoint.startswith('tcp://') and plan.keys else ''}`)",
                  file=sys.stderr, flush=True)
        result = deploy.serve_collector(plan, client=args.name, on_control=announce, announce=args.announce,
                                        perf=args.perf)
        if args.json:
            print(json.dumps(result.as_json(), indent=2, sort_keys=True))
        else:
            print(f"paper: {result.decisions:,} decisions, {len(result.orders):,} order events, "
                  f"{len(result.fills):,} fills, pnl {result.pnl:,.4f}")
        return 0
    if args.json:
        print(json.dumps(out, indent=2, sort_keys=True, default=str))
    else:
        counters = out.get("counters", out) if isinstance(out, dict) else {}
        print(f"{service}: done ({len(counters)} counters; --json prints them)")
    return 0


def add_serve_command(sub) -> None:
    """Register `bot4 serve` on the top-level subparsers."""
    from bot4.services.security import DEFAULT_CLIENT

    p = sub.add_parser("serve", help="run one service of a paper session across hosts, from its plan (TOML)")
    p.add_argument("service", choices=("feed", "venue", "engine", "collector"),
                   help="feed (binds md, replay), venue (binds venue), engine (connects to all), collector (binds "
                        "out and control_pub; prints the session's result)")
    p.add_argument("--plan", required=True, metavar="FILE",
                   help="the session plan: [links] md, out, venue, replay, control_pub endpoints, keys, data, ...")
    p.add_argument("--keys", metavar="DIR", help="CURVE keys directory on this host (default: the plan's keys)")
    p.add_argument("--name", default=DEFAULT_CLIENT, metavar="NAME",
                   help=f"this service's client name in the keys directory (default {DEFAULT_CLIENT})")
    p.add_argument("--shard", type=int, default=0, metavar="K", help="engine: which shard of the plan's shards")
    p.add_argument("--recover", action="store_true",
                   help="engine: carry on from its journal after a crash (the feed replays what it missed)")
    p.add_argument("--announce", action="store_true",
                   help="collector: write the control endpoint where `bot4 ctl` looks first")
    p.add_argument("--perf", metavar="FILE", help="collector: write the session's perf manifest there")
    p.add_argument("--json", action="store_true", help="print one JSON object (the result or the counters)")
    p.set_defaults(func=_cmd_serve)
