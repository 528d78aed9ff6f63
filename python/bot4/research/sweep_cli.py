"""`bot4 sweep`: walk-forward folds x a parameter grid x recordings on Dask or in this process
(bot4.research.sweep), written as Parquet, JSON and an HTML report (bot4.research.sweep_report)."""

from __future__ import annotations

import argparse
import json


def _cmd_sweep(args: argparse.Namespace) -> int:
    from bot4.outdir import check_new_dir
    from bot4.report.cli import feature_config
    from bot4.research.sweep import Grid, Source, load_grid, require_dask, require_pandas, sweep
    from bot4.sources import check_sources

    # every argument is checked before any cell runs
    grid = load_grid(args.grid) if args.grid else Grid()
    out = check_new_dir(args.out) if args.out else None
    fconf = feature_config(args.feature_config)
    require_pandas()
    executor = "local" if args.local else "dask"
    if executor == "dask":
        require_dask()
    if args.data:
        checked = check_sources(args.data, args.venue)
        sources = [Source(path=str(s.path), venue=args.venue) for s in checked]
    else:
        sources = [Source(seed=args.seed, events=args.events)]
    result = sweep(sources, grid, folds=args.folds, scheme=args.scheme, feature_config=fconf, executor=executor,
                   workers=args.workers, scheduler=args.scheduler, progress=not (args.json or args.quiet),
                   regime_min_per_class=args.regime_min)
    written = None
    if out is not None:
        from bot4.research.sweep_report import write_report

        written = write_report(result, out)
    doc = result.as_json()
    if written:
        doc["written"] = written
    if args.json:
        print(json.dumps(doc, default=float))
        return 0
    print(f"swept         {len(result.sources)} recording(s) x {len(result.configurations)} configurations x "
          f"{result.folds} folds ({result.scheme}) on {result.executor['scheduler']} "
          f"({result.executor.get('workers')} worker(s)) in {result.seconds['run']:.1f} s")
    for c in doc["configurations"]:
        params = " ".join(f"{k}={c[k]}" for k in result.grid.varied)
        dsr = "n/a" if c["deflated_sharpe"] is None else f"{c['deflated_sharpe']:.3f}"
        sr = "n/a" if c["sharpe"] is None else f"{c['sharpe']:.4f}"
        auc = "n/a" if c["auc"] is None else f"{c['auc']:.3f}"
        pnl = "n/a" if c["pnl"] is None else f"{c['pnl']:,.2f}"
        print(f"config {c['config']:<6} {params} threshold={c['threshold']:g}: AUC {auc}, pnl {pnl}, "
              f"Sharpe/bar {sr}, deflated {dsr}" + (f", {c['failed']} failed cell(s)" if c["failed"] else ""))
        for name, m in result.regime_calibration.get(c["config"], {}).items():
            if name != "all" and m.get("rows"):
                merged = f" ({', '.join(m['regimes'])})" if m["status"] == "fallback" else ""
                print(f"  regime {name}{merged}: rows {m['rows']:,}, Brier {m['brier']:.4f}, ECE {m['ece']:.4f}")
    pbo = result.pbo or {}
    print("PBO           " + (f"{pbo['pbo']:.3f} ({pbo['combinations']} CSCV splits, {pbo['bars']} bars)"
                              if pbo.get("pbo") is not None else f"n/a: {pbo.get('reason')}"))
    failed = result.table[result.table["error"].notna()]
    for _, row in failed.drop_duplicates(["config", "source", "fold"]).iterrows():
        print(f"failed        config {row['config']} {row['recording']} fold {row['fold']}: {row['error']}")
    if written:
        print(f"written       {written['html']} (and sweep.parquet, configurations.parquet, regimes.parquet, "
              "sweep.json)")
    return 0


def add_sweep_command(sub, add_stream_args) -> None:
    from bot4.cli import count
    from bot4.research.regime_calibration import MIN_PER_CLASS
    from bot4.research.sweep import SWEEP_SCHEMES

    p = sub.add_parser("sweep", help="walk-forward folds x parameter grid x recordings on Dask, with the "
                                     "deflated Sharpe over every configuration and PBO")
    add_stream_args(p)
    p.description = ("Each --data file is its own recording (a day or an instrument), unlike other commands. "
                     "Needs the sweep extra: pip install 'bot4[sweep]'.")
    p.add_argument("--grid", metavar="FILE.toml",
                   help="[grid] name = [values...] tried in every combination, [fixed] name = value; names: "
                        "n_estimators, max_depth, learning_rate, seed, horizon, horizon_unit, dead_zone_bp, "
                        "calibration_fraction, embargo_ns, ece_bins, bar_ns, threshold (default: one configuration)")
    p.add_argument("--folds", type=count(2), default=3, metavar="N", help="test blocks per recording (default 3)")
    p.add_argument("--scheme", default="walk-forward", choices=SWEEP_SCHEMES, help="default walk-forward")
    p.add_argument("--workers", type=count(1), default=2, metavar="N",
                   help="LocalCluster worker processes, one thread each (default 2)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="a running dask scheduler (tcp://host:8786) instead of a LocalCluster")
    p.add_argument("--local", action="store_true", help="run every cell in this process, without Dask")
    p.add_argument("--feature-config", metavar="FILE", help="feature config TOML (default: the pipeline's)")
    p.add_argument("--regime-min", type=count(1), default=MIN_PER_CLASS, metavar="N",
                   help="test rows of each class a regime needs for its own calibration figures; fewer: "
                        f"reported with the pooled fallback (default {MIN_PER_CLASS})")
    p.add_argument("--out", metavar="DIR",
                   help="new directory for sweep.parquet, configurations.parquet, regimes.parquet, sweep.json "
                        "and report.html")
    p.set_defaults(func=_cmd_sweep)
