"""`bot4 strategies`: the built-in strategies and their parameters (the [strategy] table of a
--risk-config TOML), from the core's declarations (bot4.strategies.builtins)."""
from __future__ import annotations

import argparse
import json


def _num(x, kind: str):
    return int(x) if kind == "int" and x is not None else x


def _bounds(f: dict) -> str:
    lo, hi = _num(f.get("min"), f["type"]), _num(f.get("max"), f["type"])
    if lo is None and hi is None:
        return ""
    left = "" if lo is None else f"{lo} {'<' if f.get('min_exclusive') else '<='} "
    right = "" if hi is None else f" {'<' if f.get('max_exclusive') else '<='} {hi}"
    return f"{left}x{right}"


def format_builtins(builtins: dict) -> list[str]:
    lines: list[str] = []
    for name, spec in builtins.items():
        lines.append(f"{name}: {spec['doc']}")
        if not spec["fields"]:
            lines.append("    (no parameters)")
        for f in spec["fields"]:
            unit = f" {f['unit']}" if f.get("unit") else ""
            bounds = _bounds(f)
            lines.append(f"    {f['name']:<20} {f['type']:<6} = {f['default']!s:<14}{unit}"
                         f"{'  [' + bounds + ']' if bounds else ''}".rstrip())
            lines.append(f"        {f['doc']}")
        lines.append("")
    lines.append("Use one with --strategy NAME (parameters: the [strategy] table of --risk-config, "
                 "`name = \"NAME\"` + fields);")
    lines.append("or a strategy of your own: --strategy module:Class | path.py | path.pyx | path.so "
                 "(README, Writing a strategy).")
    return lines


def _cmd_strategies(args: argparse.Namespace) -> int:
    from bot4.strategies import builtins

    b = builtins()
    if args.json:
        print(json.dumps(b))
    else:
        print("\n".join(format_builtins(b)))
    return 0


def add_strategies_command(sub) -> None:
    p = sub.add_parser("strategies", help="the built-in strategies and their parameters")
    p.add_argument("--json", action="store_true", help="print one JSON object: name -> {doc, fields}")
    p.set_defaults(func=_cmd_strategies)
