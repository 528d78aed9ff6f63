"""The `bot4` command. Every command is a library call; this module parses, checks arguments
before any long work, prints, and turns mistakes into one line and exit status 2."""

from __future__ import annotations

import argparse
import json
import sys
from typing import NoReturn

from bot4.errors import Bot4Error, InputError
from bot4.sim.cli import _add_sim_commands
from bot4.sim.generate import DEFAULT_EVENTS as DEFAULT_SIM_EVENTS
from bot4.sim.generate import DEFAULT_SEED

#: Library parameter names (InputError.param) -> the option a person types.
OPTIONS = {"paths": "--data", "venue": "--venue", "n_events": "--events", "seed": "--seed",
           "out_dir": "--out", "out": "--out", "model": "--model", "risk_config": "--risk-config",
           "feature_config": "--feature-config", "params": "--params", "strategy": "--strategy", "stream": "--stream"}
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error: what is wrong and where the help is (exit 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def count(low: int = 1, high: int | None = None, what: str = "whole number"):
    """argparse type: an integer in [low, high], refused with the allowed range."""
    def parse(text: str) -> int:
        try:
            value = int(text.replace("_", ""))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {what}, got {text!r}") from None
        if value < low or (high is not None and value > high):
            bound = f"from {low:,} to {high:,}" if high is not None else f"at least {low:,}"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {value:,}")
        return value
    parse.__name__ = "count"
    return parse


def amount(low: float = 0.0, strict: bool = False):
    """argparse type: a finite float >= low (> low when strict)."""
    import math

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value) or value < low or (strict and value == low):
            raise argparse.ArgumentTypeError(f"must be {'>' if strict else '>='} {low:g}, got {text}")
        return value
    parse.__name__ = "amount"
    return parse


class Renamed(argparse.Action):
    """An option that was renamed or split: refused with a pointer to the new spelling."""

    def __init__(self, option_strings, dest, pointer: str = "", **kwargs):
        self.pointer = pointer
        kwargs.setdefault("help", argparse.SUPPRESS)
        super().__init__(option_strings, dest, nargs="?", **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        parser.error(f"{option_string} is gone: {self.pointer}")


def stream_from_args(args: argparse.Namespace):
    """The market stream named by --data/--venue or the embedded one (--seed, --events)."""
    from bot4.sources import load_stream

    return load_stream(args.data, args.venue, seed=args.seed, n_events=args.events,
                       progress=not args.quiet)


def check_stream_args(args: argparse.Namespace) -> None:
    """--data files before any long work (exists, a file, given once, the --venue's format)."""
    from bot4.sources import check_sources

    if args.data:
        check_sources(args.data, args.venue)


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


def _print_replay(result, label: str, args_check_bbo: bool = False) -> None:
    print(f"replayed      {label}")
    print(f"book level    {result.level}")
    print(f"events        {result.events:,}  ({result.messages:,} book messages)")
    print(f"level changes {result.level_changes:,}")
    if result.order_events:
        print(f"order events  {result.order_events:,}")
    print(f"trades        {result.trades:,}")
    if result.rejected:
        print("rejections    " + ", ".join(f"{k}={v:,}" for k, v in result.rejected.items()))
    else:
        print("rejections    none")
    if result.notices:
        print("notices       " + ", ".join(f"{k}={v:,}" for k, v in result.notices.items()))
    print(f"sequence gaps {result.sequence_gaps}")
    print(f"final bid/ask {result.final_bid} x {result.final_bid_qty} / "
          f"{result.final_ask} x {result.final_ask_qty}")
    if result.bbo is not None:
        pct = 100.0 * result.bbo.matched / result.bbo.checked if result.bbo.checked else 0.0
        print(f"bbo checked   {result.bbo.checked:,}, matched {result.bbo.matched:,} ({pct:.2f}%), "
              f"prices matched {result.bbo.price_matched:,}")
        if result.bbo.first_mismatch:
            print(f"first bbo mismatch {result.bbo.first_mismatch}")
    elif args_check_bbo:
        print("bbo checked   n/a (this data carries no venue top-of-book stream to check against)")
    if result.l2_l3_consistent is not None:
        print(f"L2 vs L3 book {'consistent' if result.l2_l3_consistent else 'INCONSISTENT'} "
              "(level changes and order events rebuild the same book)")
    print(f"load seconds  {result.load_seconds:.3f}")
    print(f"book seconds  {result.seconds:.4f}  ({result.rate / 1e6:.1f} M book events/s)")


def _cmd_replay(args: argparse.Namespace) -> int:
    from bot4.replay import replay, replay_parts

    check_stream_args(args)
    if args.stream:
        from bot4.sources import stream_parts

        parts = stream_parts(args.data, args.venue, seed=args.seed, n_events=args.events, progress=not args.quiet)
        result = replay_parts(parts.parts, check_bbo=args.check_bbo, progress=not args.quiet)
        label = f"{parts.label} (streamed part by part)"
    else:
        stream = stream_from_args(args)
        result = replay(stream.data, check_bbo=args.check_bbo, load_seconds=stream.load_seconds)
        label = stream.label
    if args.json:
        print(json.dumps(result.as_json()))
    else:
        _print_replay(result, label, args.check_bbo)
    return 0


def _add_stream_args(p: argparse.ArgumentParser) -> None:
    from bot4.data import VENUES

    p.add_argument("--data", nargs="+", metavar="PATH",
                   help="recording(s); several files are one recording, read in the order given. "
                        "Default: the embedded market simulator stream")
    p.add_argument("--venue", choices=VENUES,
                   help="data format (default: told from the file's content); checked against the file")
    p.add_argument("--seed", type=int, metavar="N", default=DEFAULT_SEED, help="simulator seed (no --data)")
    p.add_argument("--events", type=count(1), metavar="N", default=DEFAULT_SIM_EVENTS,
                   help=f"simulator events to generate (no --data; default {DEFAULT_SIM_EVENTS:,})")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout "
                   "(progress still goes to stderr)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")


def build_parser() -> argparse.ArgumentParser:
    from bot4 import __version__

    parser = Parser(prog="bot4", description="bot4 trading platform")
    parser.add_argument("--version", action="version", version=f"bot4 {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("info", help="version, compiler, build type and SIMD levels")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("replay", help="rebuild order books from a recording or the default stream")
    _add_stream_args(p)
    p.add_argument("--check-bbo", action="store_true",
                   help="compare the rebuilt top of book with the venue's own (Binance bookTicker)")
    p.add_argument("--stream", action="store_true",
                   help="read the recording part by part (Binance, Tardis or LOBSTER files, a `bot4 convert` dataset or the embedded "
                        "stream): memory holds one part")
    p.set_defaults(func=_cmd_replay)

    from bot4.report.cli import add_backtest_commands

    add_backtest_commands(sub, _add_stream_args)
    _add_sim_commands(sub)
    from bot4.features.cli import add_features_command

    add_features_command(sub, _add_stream_args)
    from bot4.research.cli import add_train_command
    add_train_command(sub, _add_stream_args)
    from bot4.research.validate_cli import add_validate_command
    add_validate_command(sub, _add_stream_args)
    from bot4.research.sweep_cli import add_sweep_command
    add_sweep_command(sub, _add_stream_args)
    from bot4.config.cli import add_config_command
    add_config_command(sub)
    from bot4.models.cli import add_models_command
    add_models_command(sub)
    from bot4.strategy_cli import add_strategies_command
    add_strategies_command(sub)
    from bot4.data.cli import add_convert_command
    add_convert_command(sub)
    from bot4.services.cli import add_paper_command
    add_paper_command(sub)
    from bot4.services.ctl_cli import add_ctl_command
    add_ctl_command(sub)
    from bot4.services.keys_cli import add_keys_command
    add_keys_command(sub)
    from bot4.services.deploy_cli import add_serve_command
    add_serve_command(sub)
    from bot4.portfolio.cli import add_portfolio_command
    add_portfolio_command(sub)
    return parser


def _prog(args: argparse.Namespace | None) -> str:
    parts = ["bot4"]
    for attr in ("command", "sim_command", "config_command"):
        if args is not None and getattr(args, attr, None):
            parts.append(getattr(args, attr))
    return " ".join(parts)


def main(argv: list[str] | None = None) -> int:
    args = None
    try:
        parser = build_parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:   # usage error (2; message printed), --help or --version (0)
            return exc.code if isinstance(exc.code, int) else EXIT_USAGE
        return args.func(args)
    except InputError as exc:
        print(f"{_prog(args)}: error: {exc.render(OPTIONS)}", file=sys.stderr)
        return EXIT_USAGE
    except Bot4Error as exc:
        print(f"{_prog(args)}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        # Outputs are staged (bot4.outdir): whatever was being written has been removed.
        print(f"\n{_prog(args)}: interrupted; no output was written", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
