"""`bot4 keys`: CURVE keys for services over tcp (bot4.services.security) from the command line."""

from __future__ import annotations

import argparse
import json


def _cmd_generate(args: argparse.Namespace) -> int:
    from bot4.services.security import generate_keys

    out = generate_keys(args.dir, name=args.name, force=args.force)
    for p in out.written:
        print(f"wrote {p}")
    if not out.server_created:
        print(f"kept the existing server keys in {args.dir}")
    print(f"client {args.name!r}: copy {args.dir}/server.key and {args.dir}/{args.name}.key_secret to its host")
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    from bot4.services.security import KeyDir

    info = KeyDir(args.dir).describe()
    if args.json:
        print(json.dumps(info, indent=2, sort_keys=True))
        return 0
    print(f"keys    {info['directory']}")
    print(f"server  {info['server']}")
    for name, key in info["clients"].items():
        print(f"client  {key}  {name}")
    for s in info["secrets"]:
        print(f"secret  {s['file']} (mode {s['mode']}{'' if s['private'] else ', READABLE BY OTHERS'})")
    return 0


def add_keys_command(sub) -> None:
    """Register `bot4 keys generate|show` on the top-level subparsers."""
    from bot4.services.security import DEFAULT_CLIENT

    p = sub.add_parser("keys", help="CURVE keys for paper-trading services over tcp")
    ks = p.add_subparsers(dest="keys_command", required=True)
    g = ks.add_parser("generate", help="write the server's keys (when missing) and a client's")
    g.add_argument("dir", metavar="DIR", help="keys directory (created, mode 0700)")
    g.add_argument("--name", default=DEFAULT_CLIENT, metavar="NAME", help=f"client name (default {DEFAULT_CLIENT})")
    g.add_argument("--force", action="store_true", help="replace client NAME's existing keys")
    g.set_defaults(func=_cmd_generate)
    s = ks.add_parser("show", help="the public keys and secret files of a keys directory")
    s.add_argument("dir", metavar="DIR", help="keys directory")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=_cmd_show)
