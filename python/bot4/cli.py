"""The `bot4` command."""

from __future__ import annotations

import argparse
import json
import sys

from bot4.errors import Bot4Error


def _cmd_info(args: argparse.Namespace) -> int:
    from bot4.info import build_info

    info = build_info()
    if args.json:
        print(json.dumps(info))
        return 0
    print(f"bot4 {info['version']}")
    print(f"compiler      {info['compiler']}")
    print(f"build type    {info['build_type']}")
    print(f"python        {info['python']}")
    print(f"cpu           {info['cpu']} ({info['cores']} cores)")
    print(f"simd offered  {', '.join(info['simd_available'])}")
    source = "BOT4_SIMD" if info["simd_overridden"] else "auto"
    print(f"simd active   {info['simd_active']} ({source})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bot4", description="bot4 trading platform")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("info", help="version, compiler, build type and SIMD levels")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except Bot4Error as exc:
        print(f"bot4: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
