"""`bot4 validate`: walk-forward / purged k-fold / CPCV validation of the whole pipeline per fold,
with the deflated Sharpe ratio, PBO and optional leakage sentinels (bot4.research.validate)."""

from __future__ import annotations

import argparse
import json
import re

from bot4.errors import ConfigError

_UNITS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000,
          "h": 3_600_000_000_000}


def parse_duration(text: str) -> int:
    """'250ms', '2s', '1.5m', '100us', '0' or a bare integer (ns) -> ns (argparse type)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*(ns|us|ms|s|m|h)?\s*", str(text))
    if not m:
        raise argparse.ArgumentTypeError(f"expected a duration such as 500ms, 2s or 1m, got {text!r}")
    return int(round(float(m.group(1)) * _UNITS[m.group(2) or "ns"]))


parse_duration.__name__ = "duration"


def thresholds(text: str) -> tuple:
    """'0.55,0.6' -> (0.55, 0.6), each an entry probability in (0.5, 1) (argparse type)."""
    try:
        out = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated probabilities, got {text!r}") from None
    if any(not 0.5 < t < 1 for t in out):
        raise argparse.ArgumentTypeError(f"each must be in (0.5, 1), got {text!r}")
    return out


thresholds.__name__ = "thresholds"


def _config(args: argparse.Namespace):
    from bot4.research.validate import ValidateConfig

    if args.scheme == "cpcv" and args.folds < 3:
        raise ConfigError(f"--folds: cpcv needs at least 3 groups, got {args.folds}")
    kw = {"scheme": args.scheme, "folds": args.folds, "embargo_ns": args.embargo}
    if args.test_groups is not None:
        if args.test_groups >= args.folds:
            raise ConfigError(f"--test-groups: must be < --folds ({args.folds}), got {args.test_groups}")
        kw["test_groups"] = args.test_groups
    for key, v in (("n_estimators", args.trees), ("max_depth", args.depth), ("horizon", args.horizon),
                   ("window", args.window), ("thresholds", args.thresholds), ("model", args.model),
                   ("sequence_length", args.sequence_length)):
        if v is not None:
            kw[key] = v
    if args.no_backtest:
        kw["backtest"] = False
    from bot4.research.zoo import SEQUENCE_KINDS
    if args.model in SEQUENCE_KINDS and args.sequence_length is None:
        kw["sequence_length"] = 16
    try:
        return ValidateConfig(**kw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(str(exc)) from exc


def _fmt(x, spec=".4f") -> str:
    return "n/a" if x is None else format(x, spec)


def _cmd_validate(args: argparse.Namespace) -> int:
    from bot4.cli import check_stream_args, stream_from_args
    from bot4.outdir import check_new_dir
    from bot4.pipeline import default_feature_config
    from bot4.report.cli import feature_config
    from bot4.research.sentinels import SentinelConfig
    from bot4.research.validate import validate

    # every argument is checked before the data is read
    config = _config(args)
    sconf = SentinelConfig(permutations=args.permutations)
    out = check_new_dir(args.out) if args.out else None
    fconf = feature_config(args.feature_config)
    check_stream_args(args)
    if args.after_train_data and not args.train_data:
        raise ConfigError("--after-train-data: needs --train-data")
    train_data = None
    if args.train_data:
        from bot4.sources import check_sources, load_stream

        check_sources(args.train_data, None)
        train_data = load_stream(args.train_data, None, progress=not (args.json or args.quiet)).data
    stream = stream_from_args(args)
    data, label = stream.data, stream.label
    if train_data is not None:
        label = f"{label} (model trained on {', '.join(args.train_data)})"
    if fconf is None:
        fconf = default_feature_config(data)
    try:
        result = validate(data, config, feature_config=fconf, out_dir=out, sentinels=args.sentinels,
                          sentinel_config=sconf, source=label, train_data=train_data,
                          after_source=args.after_train_data, progress=not (args.json or args.quiet))
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    doc = result.as_json()
    if out is not None:
        path = out / "validation.json"
        path.write_text(json.dumps(doc, indent=2, default=float) + "\n")
    if args.json:
        print(json.dumps(doc, default=float))
        return 0
    print(f"validated     {label}")
    print(f"scheme        {result.scheme}, {len(result.folds)} folds, {result.samples:,} labelled samples, "
          f"embargo {config.embargo_ns / 1e9:g} s")
    for f in result.folds:
        m = f["metrics"]
        print(f"fold {f['fold']:<3}      train {f['train']['samples']:,}, test "
              f"{sum(t['samples'] for t in f['test']):,}, min purge {_fmt(f['min_purge_ns'] and f['min_purge_ns'] / 1e9, '.3f')} s "
              f"(horizon {_fmt(f['horizon_ns'] and f['horizon_ns'] / 1e9, '.3f')} s); AUC {_fmt(m['auc'])} "
              f"Brier {_fmt(m['brier'])} ECE {_fmt(m['ece'])}"
              + (f"; pnl {m['pnl']:,.2f} after {m['fees']:,.2f} fees, {m['trades']} trades" if "pnl" in m else ""))
    print(f"out of sample AUC {_fmt(doc['auc'])}  Brier {_fmt(doc['brier'])}  log loss {_fmt(doc['log_loss'])}  "
          f"ECE {_fmt(doc['ece'])}  (base rate {_fmt(doc['oos'].get('base_rate'))})")
    if config.backtest:
        sd = doc["sharpe_detail"]
        print(f"after fees    Sharpe per {config.bar_ns / 1e9:g} s bar {_fmt(doc['sharpe'])}, PSR(0) {_fmt(doc['psr'])}, "
              f"deflated {_fmt(doc['deflated_sharpe'])} over {sd.get('n_trials')} thresholds "
              f"{list(config.thresholds)}; PBO {_fmt(doc['pbo'], '.3f')}")
    for s in doc.get("sentinels") or []:
        print(f"sentinel      {s['name']:<24} {'n/a ' if s['pass'] is None else 'pass' if s['pass'] else 'FAIL'}  {json.dumps(s['statistic'], default=float)[:90]}")
    if out is not None:
        print(f"written       {out / 'validation.json'}")
    print(f"seconds       {result.seconds.get('total', 0):.1f}")
    return 0


def add_validate_command(sub, add_stream_args) -> None:
    from bot4.cli import count
    from bot4.research.validate import SCHEMES
    from bot4.research.zoo import ALL_KINDS

    p = sub.add_parser("validate", help="walk-forward / purged k-fold / CPCV validation with purging, "
                                        "embargo, deflated Sharpe, PBO and leakage sentinels")
    add_stream_args(p)
    p.add_argument("--scheme", default="walk-forward", choices=SCHEMES,
                   help="walk-forward (expanding), rolling, kfold or cpcv (default walk-forward)")
    p.add_argument("--folds", type=count(2), default=4, metavar="N",
                   help="test blocks (walk-forward, rolling) or groups (kfold, cpcv); default 4")
    p.add_argument("--test-groups", type=count(1), metavar="K", help="cpcv: groups tested per split (default 2)")
    p.add_argument("--window", type=count(1), metavar="N",
                   help="rolling: groups of training before each test block (default 1)")
    p.add_argument("--embargo", type=parse_duration, default=0, metavar="DURATION",
                   help="embargo after each test block's last label end, e.g. 500ms, 2s (default 0)")
    p.add_argument("--horizon", type=count(1), metavar="ROWS", help="label horizon in feature rows (default 100)")
    p.add_argument("--trees", type=count(1), metavar="N", help="boosting rounds per fold (default 100)")
    p.add_argument("--depth", type=count(1), metavar="N", help="maximum tree depth (default 4)")
    p.add_argument("--model", choices=ALL_KINDS,
                   help="model trained per fold (default xgboost; lstm / attention need "
                        "pip install 'bot4[deep]', --sequence-length and --no-backtest)")
    p.add_argument("--sequence-length", type=count(1), metavar="L",
                   help="feature rows per sample: the window of the last L rows (default 1; 16 for lstm / attention)")
    p.add_argument("--thresholds", type=thresholds, metavar="P,P,...",
                   help="entry probabilities tried (trials of the deflated Sharpe and PBO); the first is "
                        "reported (default 0.55,0.52,0.6,0.65)")
    p.add_argument("--no-backtest", action="store_true", help="probability metrics only, no trading")
    p.add_argument("--sentinels", action="store_true",
                   help="run the leakage sentinels (truncation, permuted labels, planted leak)")
    p.add_argument("--permutations", type=count(2), default=20, metavar="R",
                   help="sentinel label permutations (default 20)")
    p.add_argument("--train-data", nargs="+", metavar="PATH",
                   help="transfer: train one model on this recording and score / trade every test block "
                        "of --data with it (nothing of --data is trained on)")
    p.add_argument("--after-train-data", action="store_true",
                   help="with --train-data: evaluate only --data's samples after the training recording ends")
    p.add_argument("--feature-config", metavar="FILE", help="feature config TOML (default: the pipeline's)")
    p.add_argument("--out", metavar="DIR", help="new directory for validation.json and each fold's model")
    p.set_defaults(func=_cmd_validate)
