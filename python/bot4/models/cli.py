"""`bot4 models ...`: the model registry and lifecycle (bot4.models.registry, .abtest, .rollback,
.canary)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from bot4.errors import ConfigError
from bot4.sim.generate import DEFAULT_SEED


def _registry(args):
    from bot4.models.registry import Registry

    return Registry(args.registry)


def _print(args, obj, lines) -> int:
    if args.json:
        print(json.dumps(obj, sort_keys=True))
    else:
        for line in lines:
            print(line)
    return 0


def _fmt_metrics(m: dict) -> str:
    keys = ("calibrated_auc", "calibrated_brier", "calibrated_log_loss", "calibrated_ece")
    return "  ".join(f"{k.split('_', 1)[1]} {m[k]:.4f}" for k in keys if isinstance(m.get(k), (int, float)))


def _cmd_register(args) -> int:
    reg = _registry(args)
    entry = reg.register(args.model_dir, data_files=args.data or (), parent=args.parent, note=args.note or "")
    if args.promote:
        reg.promote(entry.id, args.promote)
    return _print(args, {"id": entry.id, "promoted": args.promote},
                  [f"registered  {entry.id}", f"files       {', '.join(sorted(entry.files))}"]
                  + ([f"promoted    {args.promote}"] if args.promote else []))


def _cmd_list(args) -> int:
    rows = _registry(args).list()
    lines = []
    for r in rows:
        if "error" in r:
            lines.append(f"{r['id'][:12]}  CORRUPT: {r['error']}")
            continue
        alias = ",".join(r["aliases"]) or "-"
        parent = (r["parent"] or "-")[:12]
        lines.append(f"{r['id'][:12]}  {r['created']}  {alias:<20} parent {parent:<12}  {_fmt_metrics(r['metrics'])}"
                     f"  {r['trained_on']}")
    return _print(args, rows, lines or ["(no models registered)"])


def _cmd_show(args) -> int:
    entry = _registry(args).resolve(args.ref)
    m = entry.manifest
    lines = [f"id          {entry.id}", f"created     {entry.created}",
             f"trained on  {entry.lineage.get('trained_on', '')}",
             f"parent      {entry.lineage.get('parent') or '-'}",
             f"code        {json.dumps(entry.lineage.get('code'))}"]
    lines += [f"file        {name}  {meta['sha256']}  {meta['size']:,} bytes" for name, meta in sorted(entry.files.items())]
    lines += [f"data        {d['path']}  {d['sha256']}" for d in entry.lineage.get("data", [])]
    lines += [f"metric      {k} {v}" for k, v in sorted(entry.metrics.items())]
    lines.append("verified    every file's SHA-256 matches")
    return _print(args, m, lines)


def _cmd_promote(args) -> int:
    entry = _registry(args).promote(args.ref, args.alias)
    return _print(args, {"alias": args.alias, "id": entry.id}, [f"{args.alias} -> {entry.id}"])


def _read_json(path: str, what: str):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{what} {path}: {exc}") from exc


def _cmd_rollback(args) -> int:
    reg = _registry(args)
    if args.metrics:
        import msgspec

        from bot4.models.rollback import RollbackPolicy, evaluate_rollback

        record = _read_json(args.metrics, "metrics record")
        try:
            policy = (msgspec.convert(_read_json(args.policy, "rollback policy"), RollbackPolicy)
                      if args.policy else RollbackPolicy())
            decision = evaluate_rollback(record, policy)
        except (msgspec.ValidationError, ValueError) as exc:
            raise ConfigError(str(exc)) from exc
        out = decision.to_dict()
        if not decision.rollback:
            out["rolled_back"] = None
            return _print(args, out, ["no trigger fired; nothing rolled back"]
                          + [f"  {t.name} {t.value} (limit {t.limit}) {t.note}" for t in decision.triggers])
        entry = reg.rollback(args.alias, reason="; ".join(decision.reasons))
        out["rolled_back"] = {"alias": args.alias, "id": entry.id}
        return _print(args, out, [f"triggered: {r}" for r in decision.reasons] + [f"{args.alias} -> {entry.id}"])
    entry = reg.rollback(args.alias, reason="manual")
    return _print(args, {"rolled_back": {"alias": args.alias, "id": entry.id}}, [f"{args.alias} -> {entry.id}"])


def _cmd_diff(args) -> int:
    d = _registry(args).diff(args.a, args.b)
    lines = [f"a {d['a']}", f"b {d['b']}"]
    lines += [f"file     {k}: {v['a']} -> {v['b']}" for k, v in d["files"].items()]
    lines += [f"lineage  {k}: {json.dumps(v['a'])[:80]} -> {json.dumps(v['b'])[:80]}" for k, v in d["lineage"].items()]
    lines += [f"metric   {k}: {v['a']} -> {v['b']}" + (f" ({v['delta']:+.4f})" if v["delta"] is not None else "")
              for k, v in d["metrics"].items()]
    return _print(args, d, lines)


def _cmd_checkout(args) -> int:
    out = _registry(args).checkout(args.ref, args.dest)
    return _print(args, {"path": str(out)}, [f"written {out}"])


def _cmd_evaluate(args) -> int:
    from bot4.data import load
    from bot4.research.transfer import evaluate_on

    ref = Path(args.ref)
    data = load(args.data, venue=args.venue, progress=not args.json)
    if (ref / "model.json").is_file():
        result = evaluate_on(ref, data)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            result = evaluate_on(_registry(args).checkout(args.ref, tmp), data)
    lines = [f"rows {result['rows']:,}  base rate {result['base_rate']:.4f}"]
    for part in ("raw", "calibrated", "regime_calibrated"):
        if part in result:
            m = result[part]
            lines.append(f"{part:<18} AUC {m['auc']:.4f}  Brier {m['brier']:.4f}  log loss {m['log_loss']:.4f}  "
                         f"ECE {m['ece']:.4f}")
    for part, regimes in result.get("by_regime", {}).items():
        for name, m in regimes.items():
            if m.get("rows"):
                lines.append(f"  {part:<18} {name:<12} rows {m['rows']:>6,}  Brier {m['brier']:.4f}  "
                             f"log loss {m['log_loss']:.4f}  ECE {m['ece']:.4f}")
    return _print(args, result, lines)


def _read_sample(path: str) -> list:
    text = Path(path).read_text() if Path(path).is_file() else None
    if text is None:
        raise ConfigError(f"sample file not found: {path}")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        try:
            data = [float(v) for v in text.split()]
        except ValueError as exc:
            raise ConfigError(f"{path}: expected a JSON list or one number per line ({exc})") from exc
    if not isinstance(data, list):
        raise ConfigError(f"{path}: expected a list of numbers")
    return data


def _cmd_ab(args) -> int:
    from bot4.models.abtest import ab_test, paired_test

    try:
        res = (paired_test if args.paired else ab_test)(_read_sample(args.a), _read_sample(args.b), args.n, args.alpha)
    except (TypeError, ValueError) as exc:
        raise ConfigError(str(exc)) from exc
    if res.statistic is None:
        lines = [f"insufficient sample: a {res.n_a}, b {res.n_b}, need {res.n_required} each (no test run)"]
    else:
        lo, hi = res.ci or (float("nan"), float("nan"))
        lines = [f"{res.decision} ({res.test}): mean(b) - mean(a) {res.mean_diff:+.6g}, t {res.statistic:.4f}, "
                 f"df {res.df:.2f}, "
                 f"p {res.pvalue:.4g}, {100 * (1 - res.alpha):.0f}% CI [{lo:.6g}, {hi:.6g}] "
                 f"(first {res.n_required} of each arm)"]
    return _print(args, res.to_dict(), lines)


def _cmd_live_canary(args) -> int:
    from bot4.models.live_canary import live_canary

    data = None
    if args.data:
        from bot4.data import load

        data = load([Path(p) for p in args.data], venue=args.venue, progress=not args.json)
    try:
        res = live_canary(args.session, data, horizon_ns=int(round(args.horizon_ms * 1e6)),
                          instrument=args.instrument, n_required=args.n, alpha=args.alpha, loss=args.loss)
    except (FileNotFoundError, ValueError) as exc:
        raise ConfigError(f"live canary on {args.session}: {exc}") from exc
    out = res.as_json() | {"session": args.session}
    ch = res.champion
    lines = [f"session     {args.session}  instrument {res.instrument}  decisions {res.n_decisions:,}  labelled "
             f"{res.n_labelled:,}  pairs one horizon apart {res.n_spaced:,}",
             f"champion    Brier {ch['brier']:.4f}  log loss {ch['log_loss']:.4f}  AUC {ch['auc']:.4f}"]
    for slot, m in res.shadows.items():
        t = res.tests[slot]
        stat = f", t {t['statistic']:.3f}, p {t['pvalue']:.4g}" if t.get("pvalue") is not None else ""
        lines += [f"shadow {slot}    Brier {m['brier']:.4f}  log loss {m['log_loss']:.4f}  AUC {m['auc']:.4f}",
                  f"  decision  {res.decisions[slot]}: {res.reasons[slot]} (paired {res.loss}, first "
                  f"{t['n_required']} pairs{stat})"]
    return _print(args, out, lines)


def _cmd_canary(args) -> int:
    import msgspec

    from bot4.models.canary import CanaryConfig, resolve_model, run_canary
    from bot4.models.rollback import RollbackPolicy
    from bot4.sources import load_stream

    if args.session:
        return _cmd_live_canary(args)
    if args.fraction is None:
        raise ConfigError("give --fraction (a canary trading part of the budget) or --session DIR (a paper "
                          "session's shadow scores)")
    try:
        policy = (msgspec.convert(_read_json(args.policy, "rollback policy"), RollbackPolicy)
                  if args.policy else RollbackPolicy())
    except msgspec.ValidationError as exc:
        raise ConfigError(f"rollback policy {args.policy}: {exc}") from exc
    canary = CanaryConfig(fraction=args.fraction, bar_ns=int(round(args.bar_ms * 1e6)), n_required=args.n,
                          alpha=args.alpha, policy=policy)
    config = None
    if args.risk_config:
        from bot4.config import load_config

        config = load_config(args.risk_config)
    with tempfile.TemporaryDirectory(prefix="bot4-canary-") as work:
        # both references are checked (and registry models checked out) before any data is read
        champion = resolve_model(args.champion, args.registry, work)
        challenger = resolve_model(args.challenger, args.registry, work)
        stream = load_stream(args.data, args.venue, seed=args.seed, n_events=args.events, progress=not args.json)
        res = run_canary(stream.data, champion, challenger, canary=canary, config=config, progress=False)
    out = res.to_dict() | {"data": stream.label}
    lines = [f"data        {stream.label}",
             f"decision    {res.decision}"] + [f"  reason    {r}" for r in res.reasons]
    for leg in (res.champion, res.challenger, res.control):
        if leg is None:
            continue
        sr = f"{leg.sharpe:+.4f}" if leg.sharpe is not None else "n/a"
        lines.append(f"{leg.name:<11} share {leg.share:.3f}  capital {leg.capital:,.2f}  pnl {leg.pnl:+,.2f} "
                     f"(fees {leg.fees:,.2f}, {leg.return_ * 1e4:+.2f} bp)  sharpe/bar {sr}  "
                     f"drawdown {leg.max_drawdown:.5f}  errors {leg.errors}/{leg.decisions}  "
                     f"p99.9 {leg.latency_p999_ns / 1e3:.1f} us  fills {leg.fills}  max |pos| {leg.max_abs_position} "
                     f"(cap {leg.max_position_lots})  kill {leg.kill_reason}")
    ab = res.ab
    lines.append(f"A/B         {ab['decision']}, challenger against control (first {ab['n_required']} bars of each leg; bars {ab['n_a']}/{ab['n_b']}"
                 + (f", t {ab['statistic']:.3f}, p {ab['pvalue']:.4g})" if ab.get("pvalue") is not None else ")"))
    return _print(args, out, lines)


def add_models_command(sub) -> None:
    p = sub.add_parser("models", help="model registry: register, list, show, promote, rollback, diff, evaluate, ab, canary")
    msub = p.add_subparsers(dest="models_command", required=True)

    def common(q):
        q.add_argument("--registry", metavar="DIR", help="registry directory (default: $BOT4_REGISTRY)")
        q.add_argument("--json", action="store_true", help="print one JSON object")

    q = msub.add_parser("register", help="store a model directory (every file by SHA-256) with its lineage")
    common(q)
    q.add_argument("model_dir", metavar="DIR")
    q.add_argument("--data", nargs="+", metavar="PATH", help="recordings the model was trained on (hashed)")
    q.add_argument("--parent", metavar="REF", help="the model this one derives from (id prefix or alias)")
    q.add_argument("--note", help="free text kept in the manifest")
    q.add_argument("--promote", choices=("champion", "challenger"), help="also point this alias at it")
    q.set_defaults(func=_cmd_register)
    q = msub.add_parser("list", help="registered models, oldest first")
    common(q)
    q.set_defaults(func=_cmd_list)
    q = msub.add_parser("show", help="one model's manifest, after verifying every file")
    common(q)
    q.add_argument("ref", metavar="REF", help="alias (champion, challenger), id or id prefix")
    q.set_defaults(func=_cmd_show)
    q = msub.add_parser("promote", help="point an alias at a model")
    common(q)
    q.add_argument("ref", metavar="REF")
    q.add_argument("--alias", choices=("champion", "challenger"), default="champion")
    q.set_defaults(func=_cmd_promote)
    q = msub.add_parser("rollback", help="point an alias back at its previous model "
                                         "(with --metrics: only if a rollback trigger fires)")
    common(q)
    q.add_argument("--alias", choices=("champion", "challenger"), default="champion")
    q.add_argument("--metrics", metavar="FILE", help="metrics record (JSON: latency_p999_ns, errors, decisions, "
                                                     "max_drawdown, sharpe, baseline_sharpe, observations)")
    q.add_argument("--policy", metavar="FILE", help="trigger limits (JSON, fields of bot4.models.rollback.RollbackPolicy)")
    q.set_defaults(func=_cmd_rollback)
    q = msub.add_parser("diff", help="files, lineage and test metrics that differ between two models")
    common(q)
    q.add_argument("a", metavar="REF_A")
    q.add_argument("b", metavar="REF_B")
    q.set_defaults(func=_cmd_diff)
    q = msub.add_parser("checkout", help="write a verified copy of a model to a directory")
    common(q)
    q.add_argument("ref", metavar="REF")
    q.add_argument("dest", metavar="DIR")
    q.set_defaults(func=_cmd_checkout)
    q = msub.add_parser("evaluate", help="out-of-sample metrics (pooled and per regime) on another recording")
    common(q)
    q.add_argument("ref", metavar="REF", help="model directory, or a registry reference")
    q.add_argument("--data", nargs="+", required=True, metavar="PATH")
    q.add_argument("--venue", help="data format (default: guessed from the file)")
    q.set_defaults(func=_cmd_evaluate)
    q = msub.add_parser("ab", help="Welch's t-test of per-period returns at a fixed sample size (no peeking); "
                                   "--paired when a[i] and b[i] are measured on the same period or event")
    common(q)
    q.add_argument("--a", required=True, metavar="FILE", help="champion's per-period returns (JSON list or lines)")
    q.add_argument("--b", required=True, metavar="FILE", help="challenger's per-period returns")
    q.add_argument("--n", type=int, required=True, help="observations per arm, fixed before the test")
    q.add_argument("--alpha", type=float, default=0.05)
    q.add_argument("--paired", action="store_true", help="paired t-test on b[i] - a[i] (same length)")
    q.set_defaults(func=_cmd_ab)
    q = msub.add_parser("canary", help="trade the challenger on a fraction of the risk budget and the champion on "
                                       "the rest, then promote / keep / rollback; or, with --session, judge a paper "
                                       "session's shadow models against its champion on its own decisions")
    common(q)
    q.add_argument("--data", nargs="+", metavar="PATH", help="recording (default: the embedded simulator stream)")
    q.add_argument("--venue", help="data format (default: told from the file)")
    q.add_argument("--seed", type=int, default=DEFAULT_SEED, help="embedded stream seed")
    q.add_argument("--events", type=int, default=200_000, help="embedded stream size")
    q.add_argument("--champion", default="champion", metavar="REF", help="model directory or registry reference")
    q.add_argument("--challenger", default="challenger", metavar="REF", help="model directory or registry reference")
    q.add_argument("--fraction", type=float, help="share of the risk budget the challenger trades, (0, 1)")
    q.add_argument("--session", metavar="JOURNAL_DIR",
                   help="a paper session's journal (bot4 paper --shadow DIR --journal JOURNAL_DIR): paired test of "
                        "the shadows' per-decision losses against the champion's (labels from --data, else from "
                        "the journal's market data)")
    q.add_argument("--horizon-ms", type=float, default=5000.0, help="with --session: label horizon, ms")
    q.add_argument("--instrument", type=int, help="with --session: instrument id (default: the only one)")
    q.add_argument("--loss", choices=("log_loss", "brier"), default="log_loss",
                   help="with --session: the per-decision loss compared")
    q.add_argument("--risk-config", metavar="FILE", help="engine, risk and strategy config of the full budget (TOML)")
    q.add_argument("--bar-ms", type=float, default=1000.0, help="bar of the per-bar returns (Sharpe, A/B), ms")
    q.add_argument("--n", type=int, default=200, help="bars per leg for the A/B test (with --session: decision "
                                                      "pairs one horizon apart), fixed before the run")
    q.add_argument("--alpha", type=float, default=0.05)
    q.add_argument("--policy", metavar="FILE", help="rollback trigger limits (JSON, fields of "
                                                    "bot4.models.rollback.RollbackPolicy; Sharpe per bar)")
    q.set_defaults(func=_cmd_canary)
