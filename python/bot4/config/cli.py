"""`bot4 config check FILE`: parse and validate a risk/strategy config."""

from __future__ import annotations

import argparse
import json


def _cmd_config_check(args: argparse.Namespace) -> int:
    from bot4.config.risk import build_risk, load_config

    config = load_config(args.file)  # ConfigError -> exit 2 via bot4.cli.main
    build_risk(config)  # the core accepts it too (same fields, unknown keys rejected there)
    summary = config.summary()
    if args.json:
        print(json.dumps({"file": args.file, "ok": True, "config": summary}))
        return 0
    print(f"config ok     {args.file}")
    for section, fields in (("risk." + k, v) for k, v in summary["risk"].items()):
        print(f"[{section}]")
        for key, value in fields.items():
            print(f"  {key:<24} {value}")
    print("[strategy]")
    for key, value in summary["strategy"].items():
        print(f"  {key:<24} {value}")
    return 0


def add_config_command(sub) -> None:
    p = sub.add_parser("config", help="configuration tools (check a risk/strategy TOML file)")
    csub = p.add_subparsers(dest="config_command", required=True)
    c = csub.add_parser("check", help="parse and validate a config file; exit 2 on error")
    c.add_argument("file", metavar="FILE", help="TOML file ([risk.sizing], [risk.pre_trade], "
                   "[risk.kill_switch], [strategy])")
    c.add_argument("--json", action="store_true", help="print one JSON object")
    c.set_defaults(func=_cmd_config_check)
