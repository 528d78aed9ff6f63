"""The backtest report: one self-contained report.html (matplotlib PNGs embedded as base64) and a
perf manifest JSON (per-stage latency percentiles with the machine and build they ran on)."""

from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path

import numpy as np

from bot4.perf import PerfManifest

REPORT_FILE = "report.html"
PERF_FILE = "perf.json"
# the plot sections every report carries, in order (ids of the <section> elements)
SECTIONS = ("equity", "drawdown", "position", "latency", "calibration")


def _stage_percentiles(samples) -> dict:
    a = np.asarray(samples, dtype=np.float64)
    if a.size == 0:
        return {"count": 0, "p50": None, "p99": None, "p999": None}
    p50, p99, p999 = np.percentile(a, (50.0, 99.0, 99.9))
    return {"count": int(a.size), "p50": float(p50), "p99": float(p99), "p999": float(p999)}


def _orders_created(orders) -> int:
    """Orders sent (New records); every order record counts when there is no event kind."""
    names = getattr(getattr(orders, "dtype", None), "names", None) or ()
    return int(np.count_nonzero(orders["kind"] == 0)) if "kind" in names else int(len(orders))


def summarize(result) -> dict:
    """Headline figures of a BacktestResult (what the CLI prints and the report's table shows)."""
    seconds = float(getattr(result, "seconds", 0.0) or 0.0)
    events = int(result.events)
    return {
        "events": events,
        "seconds": seconds,
        "events_per_s": events / seconds if seconds > 0 else None,
        "decisions": int(len(result.decisions)),
        "orders": _orders_created(result.orders),
        "order_events": int(len(result.orders)),
        "fills": int(len(result.fills)),
        "pnl": float(result.pnl),
        "max_drawdown": float(result.max_drawdown),
        "rejections": {str(k): int(v) for k, v in dict(result.rejections or {}).items()},
        "latency_ns": {str(stage): _stage_percentiles(v) for stage, v in dict(result.latency_ns or {}).items()},
    }


def _ns(v) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    if v >= 1e6:
        return f"{v / 1e6:.2f} ms"
    if v >= 1e3:
        return f"{v / 1e3:.2f} µs"
    return f"{v:.0f} ns"


def format_summary(summary: dict) -> list[str]:
    """The summary as aligned text lines."""
    rate = summary["events_per_s"]
    lines = [f"events        {summary['events']:,} in {summary['seconds']:.3f} s"
             + (f"  ({rate / 1e6:.2f} M events/s)" if rate else ""),
             f"decisions     {summary['decisions']:,}",
             f"orders        {summary['orders']:,}  ({summary['order_events']:,} order events)",
             f"fills         {summary['fills']:,}",
             f"pnl           {summary['pnl']:,.4f}",
             f"max drawdown  {summary['max_drawdown']:,.4f}"]
    rej = summary["rejections"]
    nonzero = {k: v for k, v in rej.items() if v}
    lines.append("rejections    " + (", ".join(f"{k}={v:,}" for k, v in sorted(nonzero.items()))
                                     if nonzero else "none"))
    if summary["latency_ns"]:
        lines.append("latency       stage               p50        p99      p99.9   samples")
        for stage, s in summary["latency_ns"].items():
            lines.append(f"              {stage:<16} {_ns(s['p50']):>9}  {_ns(s['p99']):>9}  "
                         f"{_ns(s['p999']):>9}  {s['count']:>8,}")
    return lines


# ------------------------------------------------------------------ plots

def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _time_axis(ts: np.ndarray) -> tuple[np.ndarray, str]:
    ts = np.asarray(ts, dtype=np.float64)
    if ts.size == 0:
        return ts, "time"
    return (ts - ts[0]) / 1e9, "seconds since start"


def _field(arr, name):
    if arr is None or getattr(arr, "dtype", None) is None or arr.dtype.names is None or name not in arr.dtype.names:
        return None
    return np.asarray(arr[name])


def _empty(ax, msg: str) -> None:
    ax.text(0.5, 0.5, msg, ha="center", va="center", transform=ax.transAxes, color="grey")


def _plot_series(result, name: str) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 3))
    eq = getattr(result, "equity", None)
    ts = _field(eq, "ts")
    if ts is None or ts.size == 0:
        _empty(ax, "no equity samples")
    else:
        x, xlabel = _time_axis(ts)
        if name == "equity":
            equity = _field(eq, "equity").astype(np.float64)
            ax.plot(x, equity, lw=1, label="equity")
            for extra in ("realised", "fees"):
                v = _field(eq, extra)
                if v is not None:
                    ax.plot(x, v.astype(np.float64) * (-1 if extra == "fees" else 1), lw=0.8, alpha=0.7,
                            label="−fees" if extra == "fees" else extra)
            ax.legend(loc="best", fontsize=8)
            ax.set_ylabel("equity (quote currency)")
        elif name == "drawdown":
            equity = _field(eq, "equity").astype(np.float64)
            dd = equity - np.maximum.accumulate(equity)
            ax.fill_between(x, dd, 0, color="tab:red", alpha=0.4, step="post")
            ax.set_ylabel("drawdown from peak")
        else:
            pos = _field(eq, "position").astype(np.float64)
            ax.step(x, pos, where="post", lw=1, color="tab:green")
            ax.axhline(0, color="grey", lw=0.5)
            ax.set_ylabel("position (lots)")
        ax.set_xlabel(xlabel)
    ax.grid(alpha=0.3)
    return _png(fig)


def _plot_latency(result) -> str:
    import matplotlib.pyplot as plt

    stages = {k: np.asarray(v, dtype=np.float64) for k, v in dict(result.latency_ns or {}).items()}
    stages = {k: v[v > 0] for k, v in stages.items()}
    stages = {k: v for k, v in stages.items() if v.size}
    n = max(len(stages), 1)
    cols = 2 if n > 1 else 1
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(9, 2.6 * rows), squeeze=False)
    axes = axes.ravel()
    if not stages:
        _empty(axes[0], "no latency samples")
    for ax, (stage, v) in zip(axes, stages.items()):
        lo, hi = max(v.min(), 1.0), max(v.max(), 2.0)
        bins = np.logspace(math.log10(lo), math.log10(hi * 1.01), 60)
        ax.hist(v, bins=bins, color="tab:blue", alpha=0.7)
        ax.set_xscale("log")
        ax.set_yscale("log")
        for q, color, lab in ((50, "tab:green", "p50"), (99, "tab:orange", "p99"), (99.9, "tab:red", "p99.9")):
            x = float(np.percentile(v, q))
            ax.axvline(x, color=color, lw=1.2, label=f"{lab} {_ns(x)}")
        ax.set_title(stage, fontsize=9)
        ax.set_xlabel("ns", fontsize=8)
        ax.legend(fontsize=7, loc="upper right")
    for ax in axes[len(stages):]:
        ax.axis("off")
    fig.tight_layout()
    return _png(fig)


def _plot_calibration(sidecar: dict | None) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--", label="perfect")
    test = ((sidecar or {}).get("metrics") or {}).get("test") or {}
    drawn = False
    for part, style in (("raw", "o-"), ("calibrated", "s-")):
        rel = (test.get(part) or {}).get("reliability")
        if not rel:
            continue
        mp = np.asarray(rel.get("mean_p", []), dtype=np.float64)
        my = np.asarray(rel.get("mean_y", []), dtype=np.float64)
        ok = np.isfinite(mp) & np.isfinite(my)
        if ok.any():
            ece = (test.get(part) or {}).get("ece")
            ax.plot(mp[ok], my[ok], style, ms=4, label=f"{part}" + (f" (ECE {ece:.4f})" if ece is not None else ""))
            drawn = True
    if not drawn:
        _empty(ax, "no reliability curve in the model sidecar")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("predicted P(up), bin mean")
    ax.set_ylabel("observed frequency")
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    return _png(fig)


# ------------------------------------------------------------------ html

_CSS = """body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}img{max-width:100%}
section{margin-top:1.5em}code{background:#f5f5f5;padding:0 3px}"""


def _table(rows: list[tuple], header: tuple | None = None) -> str:
    out = ["<table>"]
    if header:
        out.append("<tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in header) + "</tr>")
    for r in rows:
        out.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>")
    out.append("</table>")
    return "".join(out)


def render_html(result, sidecar: dict | None = None, title: str = "bot4 backtest",
                extra: dict | None = None) -> str:
    """A self-contained HTML report of a BacktestResult (summary table, rejections, latency percentiles,
    equity and drawdown plots inlined as PNG)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    s = summarize(result)
    rate = s["events_per_s"]
    rows = [("events", f"{s['events']:,}"), ("seconds", f"{s['seconds']:.3f}"),
            ("events/s", f"{rate:,.0f}" if rate else "n/a"), ("decisions", f"{s['decisions']:,}"),
            ("orders", f"{s['orders']:,}"), ("fills", f"{s['fills']:,}"), ("PnL", f"{s['pnl']:,.4f}"),
            ("max drawdown", f"{s['max_drawdown']:,.4f}")]
    rej_rows = sorted(s["rejections"].items()) or [("(none)", 0)]
    lat_rows = [(k, _ns(v["p50"]), _ns(v["p99"]), _ns(v["p999"]), f"{v['count']:,}")
                for k, v in s["latency_ns"].items()]
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>",
             "<section id='summary'><h2>Summary</h2>", _table(rows, ("figure", "value")),
             "<h3>Rejections</h3>", _table(rej_rows, ("reason", "count")),
             "<h3>Per-stage latency</h3>", _table(lat_rows, ("stage", "p50", "p99", "p99.9", "samples")),
             "</section>"]
    if extra:
        parts.append("<section id='run'><h2>Run</h2>"
                     + _table([(k, v if isinstance(v, str) else repr(v)) for k, v in extra.items()])
                     + "</section>")
    plots = {"equity": ("Equity", _plot_series(result, "equity")),
             "drawdown": ("Drawdown", _plot_series(result, "drawdown")),
             "position": ("Position", _plot_series(result, "position")),
             "latency": ("Per-stage latency distributions (log x; p50 / p99 / p99.9 marked)",
                         _plot_latency(result)),
             "calibration": ("Calibration curve (model sidecar, test slice)", _plot_calibration(sidecar))}
    for sec in SECTIONS:
        head, png = plots[sec]
        parts.append(f"<section id='{sec}'><h2>{html.escape(head)}</h2>"
                     f"<img alt='{sec}' src='data:image/png;base64,{png}'></section>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(result, out_dir, sidecar: dict | None = None, title: str = "bot4 backtest",
                 extra: dict | None = None) -> Path:
    """Write out_dir/report.html (self-contained) and return its path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / REPORT_FILE
    path.write_text(render_html(result, sidecar, title, extra), encoding="utf-8")
    return path


def perf_manifest(result, name: str = "backtest", notes: dict | None = None) -> PerfManifest:
    """A PerfManifest of a BacktestResult: per-stage latencies (ns), event throughput, decision/order/fill
    counts, pnl, drawdown and library versions."""
    m = PerfManifest(name=name)
    for stage, samples in dict(result.latency_ns or {}).items():
        m.add_latency(stage, np.asarray(samples))
    m.add_throughput("events", int(result.events), float(result.seconds or 0.0), unit="events/s")
    m.notes.update({"decisions": int(len(result.decisions)), "orders": _orders_created(result.orders),
                    "order_events": int(len(result.orders)),
                    "fills": int(len(result.fills)), "pnl": float(result.pnl),
                    "max_drawdown": float(result.max_drawdown),
                    "rejections": {str(k): int(v) for k, v in dict(result.rejections or {}).items()}})
    m.notes["versions"] = _versions()
    if notes:
        m.notes.update(notes)
    return m


def _versions() -> dict:
    import importlib.metadata as md
    import platform

    out = {"python": platform.python_version()}
    for dist in ("bot4", "numpy", "onnxruntime", "xgboost-cpu", "xgboost", "matplotlib"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    return out


def write_perf_manifest(result, path, name: str = "backtest", notes: dict | None = None) -> Path:
    """Write the perf manifest: per-stage p50/p95/p99/p99.9 (ns) + machine and build info
    (CPU model, cores, SIMD level, build type, versions)."""
    return perf_manifest(result, name, notes).write(path)
