"""`bot4 config check FILE` (parse and validate a config) and `bot4 config schema` (every
section's fields with defaults, bounds and units, from the core's declarations)."""

from __future__ import annotations

import argparse
import json


def _cmd_config_check(args: argparse.Namespace) -> int:
    from bot4 import _core
    from bot4.config.risk import build_risk, load_config

    config = load_config(args.file)  # ConfigError -> exit 2 via bot4.cli.main
    build_risk(config)  # the core accepts it too (same fields, unknown keys rejected there)
    _core.engine.echo_config(config.to_core_dict())  # and the engine, strategy and simulator sections
    summary = config.summary()
    if args.json:
        print(json.dumps({"file": args.file, "ok": True, "config": summary}))
        return 0
    print(f"config ok     {args.file}")
    sections = [("engine", summary["engine"])] + [("risk." + k, v) for k, v in summary["risk"].items()]
    sections += [("sim", summary["sim"]), ("ensemble", summary["ensemble"]), ("strategy", summary["strategy"])]
    for section, fields in sections:
        print(f"[{section}]")
        for key, value in fields.items():
            print(f"  {key:<24} {value}")
    return 0


def _bound(f: dict) -> str:
    lo = "" if f["min"] is None else ("(" if f["min_exclusive"] else "[") + f"{f['min']:g}"
    hi = "" if f["max"] is None else f"{f['max']:g}" + (")" if f["max_exclusive"] else "]")
    return f"{lo or '(-inf'}, {hi or 'inf)'}" if (lo or hi) else ""


def _cmd_config_schema(args: argparse.Namespace) -> int:
    from bot4.config.risk import schema

    sch = schema()
    tables = {"engine": sch["engine"], "risk.sizing": sch["sizing"], "risk.pre_trade": sch["pre_trade"],
              "risk.kill_switch": sch["kill_switch"], "sim": sch["sim"], "ensemble": sch["ensemble"]}
    for name, spec in sch["strategies"].items():
        tables[f"strategy (name = \"{name}\")"] = spec["fields"]
    if args.json:
        print(json.dumps(tables))
        return 0
    for table, fields in tables.items():
        print(f"[{table}]")
        for f in fields:
            print(f"  {f['name']:<24} {f['type']:<5} {f['default']!s:<14} {_bound(f):<14} {f['unit']:<20} {f['doc']}")
    return 0


def add_config_command(sub) -> None:
    p = sub.add_parser("config", help="configuration tools (check a config file, list every field)")
    csub = p.add_subparsers(dest="config_command", required=True)
    c = csub.add_parser("check", help="parse and validate a config file; exit 2 on error")
    c.add_argument("file", metavar="FILE", help="TOML file ([engine], [risk.sizing], [risk.pre_trade], "
                   "[risk.kill_switch], [sim], [ensemble], [strategy])")
    c.add_argument("--json", action="store_true", help="print one JSON object")
    c.set_defaults(func=_cmd_config_check)
    c = csub.add_parser("schema", help="every config field: type, default, bounds, unit, meaning")
    c.add_argument("--json", action="store_true", help="print one JSON object")
    c.set_defaults(func=_cmd_config_schema)
