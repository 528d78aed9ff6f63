"""The portfolio job's report: one self-contained report.html (matplotlib PNGs inline as base64)
beside result.json: equity and drawdown per instrument and in total, exposures against the limits
over time, risk-budget use, correlation of the picks before (plain top-K) and after (diversified)
selection, costs (fees and TCA per fill against the arrival mid, cost_model.tca), the OPE
estimates of the alternative policy beside its actual backtest, and the sizer (with sizer = "rl":
equity of the RL and the fixed sizer over the held-out steps, the RL multiplier per step)."""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np

from bot4.report.html import _png

REPORT_FILE = "report.html"
RESULT_FILE = "result.json"
SECTIONS = ("equity", "drawdown", "exposure", "risk_budget", "correlation", "costs", "ope", "sizer")


def fill_tca(result) -> dict:
    """Per fill of the main run: lane, side, shortfall / fee / cost (bp of the arrival mid, the
    lane's mid when it sent the leg the fill belongs to) and notional (quote); plus per-lane fees."""
    from bot4.portfolio.cost_model import tca

    res, coord, lanes = result.main.result, result.main.coordinator, result.lanes
    f = res.fills
    out: dict = {"lane": [], "cost_bp": np.zeros(0), "shortfall_bp": np.zeros(0), "fee_bp": np.zeros(0),
                 "notional": np.zeros(0), "weighted_cost_bp": None, "unmatched": 0}
    if f.size == 0:
        return out
    arr = np.array(coord.arrival or [], dtype=[("ts", "i8"), ("lane", "i8"), ("mid", "f8")])
    side, px, mid, qty, fee_bp, lane = [], [], [], [], [], []
    for r in f:
        k = lanes.ids.index(int(r["instrument"]))
        a = arr[arr["lane"] == k]
        j = int(np.searchsorted(a["ts"], int(r["ts"]), side="right")) - 1
        if j < 0 or not np.isfinite(a["mid"][j]) or a["mid"][j] <= 0 or r["qty"] <= 0:
            out["unmatched"] += 1
            continue
        p = float(r["price"]) * lanes.tick_size[k]
        q = float(r["qty"]) * lanes.lot_size[k]
        inverse = lanes.inverse is not None and bool(lanes.inverse[k])
        if inverse:  # contracts -> base coin (q F / p), so p q is the quote notional; the fee is in coin
            q = q * float(lanes.contract_size[k]) / p
        side.append(1.0 if int(r["side"]) == 0 else -1.0)
        px.append(p)
        mid.append(float(a["mid"][j]))
        qty.append(q)
        fee_bp.append(float(r["fee"]) / (q if inverse else p * q) * 1e4)
        lane.append(k)
    if side:
        t = tca(side, px, mid, qty, fee_bp)
        out.update(lane=lane, cost_bp=t.cost_bp, shortfall_bp=t.shortfall_bp, fee_bp=t.fee_bp, notional=t.notional,
                   weighted_cost_bp=t.weighted_cost_bp)
    return out


def _axis(ts) -> tuple[np.ndarray, str]:
    ts = np.asarray(ts, dtype=np.int64)
    if ts.size == 0:
        return ts.astype(float), "s"
    return (ts - ts[0]) / 1e9, "seconds from the first record"


def _equity_fig(result, kind: str) -> str:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fx = result.config.quote_to_account
    eq = result.main.result.equity
    fig, ax = plt.subplots(figsize=(9, 3.4))
    if eq.size:
        t0 = int(eq["ts"][0])
        series = [("total", eq["ts"], eq["total_equity"] * fx)]
        for k, i in enumerate(result.lanes.ids):
            m = eq["instrument"] == i
            series.append((result.lanes.symbols[k], eq["ts"][m], eq["equity"][m] * fx))
        for name, ts, v in series:
            v = np.asarray(v, np.float64)
            y = v if kind == "equity" else np.maximum.accumulate(np.concatenate([[0.0], v]))[1:] - v
            ax.plot((np.asarray(ts) - t0) / 1e9, y, lw=1.6 if name == "total" else 0.9, label=name)
        ax.axvline((result.signals.split_ns[2] - t0) / 1e9, color="grey", ls=":", lw=0.8, label="trading starts")
        ax.legend(fontsize=7)
    ax.set_xlabel("seconds from the first record")
    ax.set_ylabel("P&L (account)" if kind == "equity" else "drawdown (account)")
    return _png(fig)


def _exposure_fig(result) -> str:
    import matplotlib.pyplot as plt

    log = result.main.coordinator.log
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    if log.ts:
        x, unit = _axis(log.ts)
        caps = np.array(log.caps)
        ax = axes[0]
        ax.plot(x, log.gross, label="gross")
        ax.plot(x, np.abs(log.net), label="|net|")
        ax.plot(x, log.max_group, label="largest group")
        ax.plot(x, caps[:, 2], "--", lw=0.8, label="gross limit")
        ax.plot(x, caps[:, 3], "--", lw=0.8, label="net limit")
        ax.plot(x, caps[:, 1], ":", lw=0.8, label="group limit")
        ax.set_xlabel(unit)
        ax.set_ylabel("exposure (account)")
        ax.legend(fontsize=7)
        ax = axes[1]
        ex = np.array(log.exposure)
        for k in range(ex.shape[1]):
            ax.plot(x, ex[:, k], lw=0.8, label=result.lanes.symbols[k])
        ax.plot(x, caps[:, 0], "--", color="k", lw=0.8, label="+- position limit")
        ax.plot(x, -caps[:, 0], "--", color="k", lw=0.8)
        ax.set_xlabel(unit)
        ax.legend(fontsize=7)
    return _png(fig)


def _risk_fig(result) -> str:
    import matplotlib.pyplot as plt

    log = result.main.coordinator.log
    fig, ax = plt.subplots(figsize=(9, 3))
    if log.ts:
        x, unit = _axis(log.ts)
        ax.plot(x, log.risk_used, lw=0.9)
        ax.axhline(1.0, color="r", ls="--", lw=0.8, label="budget (risk_per_trade x top_k)")
        ax.set_xlabel(unit)
        ax.set_ylabel("CVaR at risk / budget")
        ax.legend(fontsize=7)
    return _png(fig)


def _corr_fig(result) -> str:
    import matplotlib.pyplot as plt

    log = result.main.coordinator.log
    fig, ax = plt.subplots(figsize=(6, 3.2))
    a, b = np.array(log.corr_topk), np.array(log.corr_div)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.any():
        bins = [float(x) for x in np.linspace(-1, 1, 41)]
        ax.hist(a[ok], bins=bins, alpha=0.6, label=f"plain top-K (mean {a[ok].mean():.3f})")
        ax.hist(b[ok], bins=bins, alpha=0.6, label=f"diversified (mean {b[ok].mean():.3f})")
        ax.legend(fontsize=7)
    ax.set_xlabel("mean pairwise correlation of the picks (per step)")
    return _png(fig)


def _costs_fig(result, t: dict) -> str:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
    inst = result.instruments()
    axes[0].bar([d["symbol"] for d in inst], [d["fees"] for d in inst])
    axes[0].set_ylabel("fees (account)")
    axes[0].tick_params(axis="x", labelsize=7, rotation=20)
    if len(t["cost_bp"]):
        axes[1].hist(t["shortfall_bp"], bins=40, alpha=0.6, label="shortfall vs arrival mid")
        axes[1].hist(t["cost_bp"], bins=40, alpha=0.6, label="shortfall + fee")
        axes[1].legend(fontsize=7)
    axes[1].set_xlabel("bp per fill")
    return _png(fig)


def _ope_fig(result, j: dict) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2))
    names = list(j["ope"])
    for n_, name in enumerate(names):
        e = j["ope"][name]
        ax.errorbar([n_], [e["value"]], yerr=[[e["value"] - e["low"]], [e["high"] - e["value"]]], fmt="o", capsize=4)
    alt = j.get("alternative")
    if alt and alt.get("value_per_round") is not None:
        ax.axhline(alt["value_per_round"], color="r", ls="--", lw=1, label="alternative's actual backtest")
        ax.legend(fontsize=7)
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel("value per round (account)")
    return _png(fig)


def _sizer_fig(result) -> str | None:
    """Equity of the RL run and the fixed comparison run per step, the RL multiplier below
    (None for the fixed sizer)."""
    if result.config.sizer != "rl" or result.fixed is None:
        return None
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, figsize=(9, 4.4), sharex=True, height_ratios=(2, 1))
    c = result.main.coordinator
    t0 = c.log.ts[0] if c.log.ts else 0
    for name, run in (("rl sizer", result.main), ("fixed sizer", result.fixed)):
        lc = run.coordinator.log
        axes[0].plot((np.asarray(lc.ts) - t0) / 1e9, lc.equity, lw=1.2, label=name)
    axes[1].step((np.asarray(c.log.ts) - t0) / 1e9, c.log.multiplier, where="post", lw=1.0)
    if c.split_ns is not None:
        for ax in axes:
            ax.axvline((c.split_ns - t0) / 1e9, color="grey", ls=":", lw=0.8)
    axes[0].set_ylabel("equity (account)")
    axes[0].legend(fontsize=7)
    axes[1].set_ylabel("multiplier")
    axes[1].set_xlabel("seconds from the first trading step (dotted: the RL sizer is trained)")
    return _png(fig)


def _table(rows) -> str:
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table>{body}</table>"


def render_html(result) -> str:
    """The report as one HTML string."""
    j = result.as_json()
    t = fill_tca(result)
    rows = [("P&L", f"{j['pnl']:.2f}"), ("max drawdown", f"{j['max_drawdown']:.2f}"),
            ("limit breaches", json.dumps(j["limit_breaches"])), ("projections", json.dumps(j["projections"])),
            ("skipped", json.dumps(j["skipped"])), ("correlation before / after",
                                                     f"{j['correlation_before']} / {j['correlation_after']}"),
            ("TCA weighted cost (bp)", t["weighted_cost_bp"]), ("fills without an arrival mid", t["unmatched"])]
    rows += [(d["symbol"], f"pnl {d['pnl']:.2f}, fills {d['fills']}, max exposure {d['max_exposure']:.2f}")
             for d in j["instruments"]]
    if j["sizer"]["kind"] == "rl":
        s = j["sizer"]
        rows.append(("rl sizer", f"trained on {s['logged_decisions']} logged decisions; error: {s['train_error']}; "
                                 f"lambdas {json.dumps(s['lambdas'])}"))
        for name, h in s["held_out"].items():
            rows.append((f"held-out {name}", json.dumps(h)))
    if j.get("alternative"):
        rows.append(("alternative (actual)", json.dumps({k: j["alternative"][k] for k in
                                                          ("scale", "pnl", "rounds", "value_per_round")})))
    figs = {"equity": _equity_fig(result, "equity"), "drawdown": _equity_fig(result, "drawdown"),
            "exposure": _exposure_fig(result), "risk_budget": _risk_fig(result), "correlation": _corr_fig(result),
            "costs": _costs_fig(result, t), "ope": _ope_fig(result, j), "sizer": _sizer_fig(result)}
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>bot4 portfolio backtest</title>",
             "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}td{padding:2px 8px}</style></head><body>",
             "<h1>bot4 portfolio backtest</h1>", _table(rows)]
    for sec in SECTIONS:
        body = (f"<img alt='{sec}' src='data:image/png;base64,{figs[sec]}'>" if figs[sec] is not None
                else "<p>fixed sizer (multiplier 1 at every step)</p>")
        parts.append(f"<section id='{sec}'><h2>{sec.replace('_', ' ')}</h2>{body}</section>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(result, out_dir) -> dict[str, Path]:
    """Write report.html and result.json (as_json) into `out_dir` (created if missing)."""
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    try:
        (out / REPORT_FILE).write_text(render_html(result), encoding="utf-8")
    finally:
        plt.close("all")
    (out / RESULT_FILE).write_text(json.dumps(result.as_json(), indent=1), encoding="utf-8")
    return {"report": out / REPORT_FILE, "result": out / RESULT_FILE}


__all__ = ["REPORT_FILE", "RESULT_FILE", "SECTIONS", "fill_tca", "render_html", "write_report"]
