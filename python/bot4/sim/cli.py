"""`bot4 sim ...`: calibrate the market generator, generate its stream, compare it with a recording.

Registered by bot4.cli.build_parser() through `_add_sim_commands(sub)`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from bot4.sim.generate import DEFAULT_EVENTS, DEFAULT_SEED


def _say(args: argparse.Namespace, text: str) -> None:
    # Human-readable progress goes to stderr when stdout carries JSON.
    print(text, file=sys.stderr if getattr(args, "json", False) else sys.stdout)


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from bot4.sim.calibration import calibrate
    from bot4.data import load

    from bot4.outdir import check_new_file, staged_file
    from bot4.sources import check_sources

    if args.out:
        check_new_file(args.out, suffixes=(".json",))
    check_sources([args.data])
    start = time.perf_counter()
    data = load(args.data, progress=True)
    print(f"calibrating   queue-reactive model and Hawkes clocks on {args.data}", file=sys.stderr, flush=True)
    params = calibrate(data, n_levels=args.levels, source_path=args.data)
    seconds = time.perf_counter() - start
    summary = {
        "source": args.data,
        "sha256": params.source.sha256 if params.source else None,
        "n_levels": params.n_levels,
        "limit_clock": {"mu": params.limit_clock.mu, "alpha": params.limit_clock.alpha,
                        "beta": params.limit_clock.beta,
                        "mean_rate_per_s": params.limit_clock.mean_rate},
        "market_clock": {"mu": params.market_clock.mu, "alpha": params.market_clock.alpha,
                         "beta": params.market_clock.beta,
                         "mean_rate_per_s": params.market_clock.mean_rate},
        "latency_median_ns": params.latency_median_ns,
        "seconds": seconds,
        "out": args.out,
    }
    if args.out:
        with staged_file(args.out) as tmp:
            params.save(tmp)
    else:
        sys.stdout.buffer.write(params.to_json())
    if args.json:
        if args.out:
            print(json.dumps(summary))
    elif args.out:
        lc, mc = params.limit_clock, params.market_clock
        print(f"calibrated    {args.data} ({seconds:.1f} s)")
        print(f"levels        {params.n_levels} ticks per side")
        print(f"limit clock   mu={lc.mu:.3g}/s alpha={lc.alpha:.3g}/s beta={lc.beta:.3g}/s "
              f"(branching {lc.branching_ratio:.2f}, {lc.mean_rate:.1f} events/s)")
        print(f"market clock  mu={mc.mu:.3g}/s alpha={mc.alpha:.3g}/s beta={mc.beta:.3g}/s "
              f"(branching {mc.branching_ratio:.2f}, {mc.mean_rate:.1f} orders/s)")
        print(f"latency       median {params.latency_median_ns / 1e6:.2f} ms")
        print(f"written       {args.out}")
    return 0


def _load_params(path: str | None):
    from bot4.errors import InputError
    from bot4.sim.params import MarketModelParams, default_params

    if path is None:
        return default_params()
    if not Path(path).is_file():
        raise InputError("params", f"no such file: {path}", fix="name a file written by `bot4 sim calibrate --out`")
    return MarketModelParams.load(path)


def _cmd_generate(args: argparse.Namespace) -> int:
    from bot4.outdir import check_new_file, staged_file
    from bot4.sim.generate import generate, save_npz

    check_new_file(args.out, suffixes=(".npz",))
    params = _load_params(args.params)
    _say(args, f"generating    {args.events:,} events (seed {args.seed})")
    start = time.perf_counter()
    data = generate(params, seed=args.seed, n_events=args.events, duration_s=args.duration)
    gen_seconds = time.perf_counter() - start
    with staged_file(args.out) as tmp:
        save_npz(data, tmp)
    counters = data.sim_counters  # type: ignore[attr-defined]  # set by generate() on its MarketData
    book = data.book
    sim_seconds = (int(book["ts_exchange"][-1]) - int(book["ts_exchange"][0])) / 1e9 if len(book) else 0.0
    summary = {
        "out": str(args.out),
        "params": args.params or "default",
        "seed": args.seed,
        "events": counters["events"],
        "book_events": int(len(data.book)),
        "order_events": int(len(data.orders)),
        "trade_events": int(len(data.trades)),
        "simulated_seconds": sim_seconds,
        "generate_seconds": gen_seconds,
        "events_per_second": counters["events"] / gen_seconds if gen_seconds > 0 else None,
        "counters": counters,
    }
    if args.json:
        print(json.dumps(summary))
        return 0
    print(f"generated     {counters['events']:,} events, seed {args.seed}, params {summary['params']}")
    print(f"records       {len(data.book):,} book, {len(data.orders):,} order, "
          f"{len(data.trades):,} trade")
    print(f"simulated     {sim_seconds:,.1f} s of market time")
    print(f"speed         {gen_seconds:.3f} s ({summary['events_per_second'] / 1e6:.2f} M events/s)")
    print(f"written       {args.out}")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from bot4.data import load
    from bot4.sim.facts import compare_facts, format_checks, stylised_facts
    from bot4.sim.generate import generate

    from bot4.sources import check_sources

    check_sources([args.data])
    params = _load_params(args.params)
    real = stylised_facts(load(args.data, progress=True))
    print(f"generating    {args.events:,} simulated events (seed {args.seed})", file=sys.stderr, flush=True)
    sim = stylised_facts(generate(params, seed=args.seed, n_events=args.events))
    checks = compare_facts(real, sim)
    if args.json:
        print(json.dumps({
            "checks": [c.__dict__ for c in checks],
            "real": real.values,
            "sim": sim.values,
        }))
    else:
        print(format_checks(checks))
        keys = ("mid_move_per_s", "mid_move_abs_median_ticks", "mid_change_1s_std_ticks",
                "trades_per_market_order", "market_orders_per_s", "spread_mean_ticks")
        print()
        print(f"{'also':32s} {'real':>12s} {'sim':>12s}")
        for k in keys:
            print(f"{k:32s} {real.values[k]:12.4g} {sim.values[k]:12.4g}")
    return 0 if all(c.ok for c in checks) else 1


def _add_sim_commands(sub: argparse._SubParsersAction) -> None:
    """Register `bot4 sim calibrate|generate|compare` on the top-level subparsers."""
    from bot4.cli import amount, count

    sim = sub.add_parser("sim", help="the built-in market simulator: calibrate, generate, compare")
    sim_sub = sim.add_subparsers(dest="sim_command", required=True)

    p = sim_sub.add_parser("calibrate", help="estimate simulator parameters from a recording")
    p.add_argument("--data", required=True, metavar="FILE", help="recording (e.g. a Binance .gz)")
    p.add_argument("--out", metavar="PARAMS.json", help="write the parameters here (default: stdout)")
    p.add_argument("--levels", type=count(1, 1000), default=20, help="ticks modelled per side (default 20)")
    p.add_argument("--json", action="store_true", help="print a JSON summary (needs --out)")
    p.set_defaults(func=_cmd_calibrate)

    p = sim_sub.add_parser("generate", help="generate the market stream into an .npz file")
    p.add_argument("--params", metavar="FILE", help="parameters JSON (default: the shipped default)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"PRNG seed (default {DEFAULT_SEED})")
    p.add_argument("--events", type=count(1), default=DEFAULT_EVENTS,
                   help=f"atomic events to generate (default {DEFAULT_EVENTS:,})")
    p.add_argument("--duration", type=amount(0.0, strict=True), metavar="SECONDS",
                   help="stop after this much simulated time")
    p.add_argument("--out", required=True, type=Path, metavar="FILE.npz",
                   help="output: arrays book, orders, trades and the instrument spec "
                        "(read back by --data FILE.npz of every command)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd_generate)

    p = sim_sub.add_parser("compare", help="stylised facts of the simulator vs a recording")
    p.add_argument("--data", required=True, metavar="FILE", help="recording to compare with")
    p.add_argument("--params", metavar="FILE", help="parameters JSON (default: the shipped default)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--events", type=count(1), default=300_000, help="simulated events (default 300,000)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd_compare)
