"""`bot4 portfolio backtest`: the portfolio job (bot4.portfolio.job.portfolio_backtest) on
recordings of several instruments, its report (bot4.portfolio.report) and `--json` figures.

Registered by bot4.cli.build_parser() through `add_portfolio_command(sub)`. Every argument is
checked (config parsed and validated, recordings sniffed, output folder free) before data is read."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def load_config(path: str | None):
    """The PortfolioConfig of a TOML file (defaults when None); InputError for a missing file or
    an unknown / invalid field."""
    from bot4.errors import InputError
    from bot4.portfolio.job import PortfolioConfig

    if path is None:
        return PortfolioConfig()
    p = Path(path)
    if not p.is_file():
        raise InputError("config", f"{p} is not a file", fix="name a TOML file with PortfolioConfig fields")
    return PortfolioConfig.from_toml(p.read_bytes())


def _cmd_backtest(args: argparse.Namespace) -> int:
    from bot4.outdir import check_new_dir, new_run_dir, check_out_root, staged_dir
    from bot4.portfolio.job import load_recordings, portfolio_backtest
    from bot4.portfolio.report import write_report
    from bot4.sources import check_sources

    config = load_config(args.config)
    if args.sizer is not None:
        import msgspec

        config = msgspec.structs.replace(config, sizer=args.sizer)
    if getattr(args, "step", None) is not None:
        import msgspec

        config = msgspec.structs.replace(config, step=args.step)
    if getattr(args, "agent_eval", None) is not None:
        import msgspec

        config = msgspec.structs.replace(config, agent_eval=args.agent_eval)
    for p in args.data:     # one by one: several venues side by side are one portfolio
        check_sources([p])
    from bot4.portfolio.user_agents import make_agent

    user_agents = [make_agent(spec) for spec in (getattr(args, "agent", None) or [])]   # loaded before the data
    if args.out is not None:
        out = check_new_dir(args.out, "out_dir")
    else:
        out = new_run_dir(check_out_root("runs"), "portfolio")
    if not args.quiet:
        print(f"portfolio: {len(args.data)} recording(s), grid {config.grid_s} s ...", file=sys.stderr, flush=True)
    data = load_recordings(args.data)
    result = portfolio_backtest(data, config, user_agents)
    with staged_dir(out) as tmp:
        write_report(result, tmp)
    j = result.as_json()
    j["out"] = str(out)
    if args.json:
        print(json.dumps(j))
        return 0
    print(f"portfolio     {', '.join(d['symbol'] for d in j['instruments'])}")
    for d in j["instruments"]:
        print(f"  {d['symbol']:<28} pnl {d['pnl']:12.2f}  fills {d['fills']:6d}  max exposure {d['max_exposure']:12.2f}")
    print(f"pnl           {j['pnl']:.2f} (max drawdown {j['max_drawdown']:.2f})")
    print(f"breaches      {j['limit_breaches']} over {j['breach_checks']} checks")
    print(f"projections   {j['projections']}")
    print(f"skipped       {j['skipped']}")
    print(f"correlation   top-K {j['correlation_before']} -> diversified {j['correlation_after']}")
    for name, e in j["ope"].items():
        print(f"ope {name:<9} {e['value']:.4f} [{e['low']:.4f}, {e['high']:.4f}] per round")
    if j["sizer"]["kind"] == "rl":
        s = j["sizer"]
        print(f"rl sizer      trained on {s['logged_decisions']} decisions"
              + (f" (not trained: {s['train_error']})" if s["train_error"] else ""))
        for name, h in s["held_out"].items():
            print(f"  held-out {name:<6} pnl {h['pnl']:10.2f}  drawdown {h['max_drawdown']:9.2f}  "
                  f"cvar95 {h['cvar95_step_pnl']}  breaches {sum(h['limit_breaches'].values())}  "
                  f"projections {h['projections']['steps']}")
    if j["alternative"]:
        a = j["alternative"]
        print(f"alternative   actual {a['value_per_round']} per round, pnl {a['pnl']:.2f}")
    print(f"written       {out}")
    return 0


def add_portfolio_command(sub: argparse._SubParsersAction) -> None:
    """Add `bot4 portfolio backtest` to the top-level subparsers."""
    p = sub.add_parser("portfolio", help="the portfolio layer: several instruments blended, selected and sized")
    psub = p.add_subparsers(dest="portfolio_command", required=True)
    b = psub.add_parser("backtest", help="agents -> meta-weighter -> selection -> sizing -> engine, with a report")
    b.add_argument("--data", nargs="+", required=True, metavar="PATH",
                   help="recordings of the instruments (e.g. Binance USD-M BTCUSDT and ETHUSDT of one day)")
    b.add_argument("--config", metavar="FILE", help="TOML with PortfolioConfig fields ([limits] for SizingLimits)")
    b.add_argument("--out", metavar="DIR", help="new folder for report.html and result.json (default runs/<time>-portfolio)")
    b.add_argument("--sizer", choices=("fixed", "rl"), help="override the config's sizer: 'rl' trains the constrained "
                   "RL sizer on the first rl_train_fraction of the trading steps and compares it with the fixed one")
    b.add_argument("--step", choices=("core", "python"), help="override the config's portfolio step: 'core' (C++, "
                   "the default) or 'python' (the reference implementation)")
    b.add_argument("--agent-eval", choices=("core", "upfront", "python"), help="override the config's agent "
                   "evaluation: 'core' (the fitted agents evaluated in C++, inside the portfolio step on each "
                   "decision's feature rows; the default), 'upfront' (in C++ on every row before the run, the step "
                   "reading those outputs) or 'python' (their predict)")
    b.add_argument("--agent", action="append", metavar="SPEC", help="a user signal agent blended beside the "
                   "built-in four (repeatable): module:Class, a .py/.pyx file with one agent class, or a C++ agent "
                   "plugin .so (bot4.portfolio.user_agents)")
    b.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    b.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    b.set_defaults(func=_cmd_backtest)


__all__ = ["add_portfolio_command", "load_config"]
