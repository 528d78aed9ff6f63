"""The `bot4` command."""

from __future__ import annotations

import argparse
import json
import sys

from bot4.errors import Bot4Error
from bot4.sim.generate import DEFAULT_EVENTS as DEFAULT_SIM_EVENTS
from bot4.sim.cli import _add_sim_commands
from bot4.sim.generate import DEFAULT_SEED


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




def _load_stream(args: argparse.Namespace):
    """The data named on the command line, or the embedded default market stream."""
    import time

    from bot4.data import load

    start = time.perf_counter()
    if args.data:
        data = load(args.data, venue=args.venue, progress=not args.json)
        label = ", ".join(args.data)
    else:
        from bot4.sim import generate

        data = generate(seed=args.seed, n_events=args.events)
        label = (f"embedded default market stream (simulator calibrated on Binance USD-M BTCUSDT, "
                 f"seed {args.seed}, {args.events:,} events)")
    return data, label, time.perf_counter() - start


def _print_replay(result, label: str, args_check_bbo: bool = False) -> None:
    from bot4.replay import ReplayResult  # noqa: F401  (for the reader: result's type)

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
    from bot4.replay import replay

    data, label, load_seconds = _load_stream(args)
    result = replay(data, check_bbo=args.check_bbo, load_seconds=load_seconds)
    if args.json:
        print(json.dumps(result.as_json()))
    else:
        _print_replay(result, label, args.check_bbo)
    return 0


def _add_stream_args(p: argparse.ArgumentParser) -> None:
    from bot4.data import VENUES

    p.add_argument("--data", nargs="+", metavar="PATH",
                   help="recording(s); several files are one recording, replayed in the order given. "
                        "Default: the embedded market simulator stream")
    p.add_argument("--venue", choices=VENUES, help="data format (default: guessed from the file)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="simulator seed (no --data)")
    p.add_argument("--events", type=int, default=DEFAULT_SIM_EVENTS,
                   help="simulator events to generate (no --data)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bot4", description="bot4 trading platform")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("info", help="version, compiler, build type and SIMD levels")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("replay", help="rebuild order books from a recording or the default stream")
    _add_stream_args(p)
    p.add_argument("--check-bbo", action="store_true",
                   help="compare the rebuilt top of book with the venue's own (Binance bookTicker)")
    p.set_defaults(func=_cmd_replay)

    from bot4.report.cli import add_backtest_commands

    add_backtest_commands(sub, _add_stream_args)
    _add_sim_commands(sub)
    from bot4.features.cli import add_features_command

    add_features_command(sub, _add_stream_args)
    from bot4.research.cli import add_train_command
    add_train_command(sub, _add_stream_args)
    from bot4.config.cli import add_config_command
    add_config_command(sub)
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
