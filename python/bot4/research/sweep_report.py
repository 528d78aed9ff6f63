"""A sweep's files: the cell table and the configurations as Parquet, sweep.json, and report.html
with its PNG figures (per-fold metrics, out-of-sample equity per configuration, deflated Sharpe,
PBO's logit distribution, pooled reliability per configuration, out-of-sample calibration per
regime)."""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np

#: What the per-regime table shows (bot4.research.sweep.regime_calibration_table).
REGIME_NOTE = ("Out-of-sample Brier, log-loss and ECE (10 equal-width bins) per volatility regime of each "
               "configuration's test rows, pooled over its folds and recordings. Each fold's regimes come from a "
               "GARCH(1,1)-t regime model fitted on that fold's training rows only and run forward. The probabilities "
               "are the fold models' pooled calibration. A regime with fewer than {m} test rows of a class (and rows "
               "without a regime) is not reported on its own: those rows are shown together as "
               "'pooled_fallback', the map a regime calibrator would give them.")


def _figure(path: Path, draw) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    draw(ax)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path.name


def _name(row, varied) -> str:
    return f"c{row['config']} " + " ".join(f"{k}={row[k]}" for k in varied) + f" thr={row['threshold']:g}"


def write_report(result, out_dir) -> dict:
    """Write the sweep's files into out_dir (created if needed); returns {kind: path}."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"table": out / "sweep.parquet", "configurations": out / "configurations.parquet",
             "regimes": out / "regimes.parquet", "json": out / "sweep.json", "html": out / "report.html"}
    result.table.to_parquet(paths["table"], index=False)
    result.configurations.to_parquet(paths["configurations"], index=False)
    result.regime_table().to_parquet(paths["regimes"], index=False)
    paths["json"].write_text(json.dumps(result.as_json(), indent=2, default=float) + "\n")
    t, c, varied = result.table, result.configurations, result.grid.varied
    ok = t[t["error"].isna()]
    names = {row["config"]: _name(row, varied) for row in c.to_dict("records")}   # records keep ints ints
    figs = []

    def per_fold(metric):
        def draw(ax):
            for cid, sub in ok.groupby("config"):
                label = names[cid]
                x = sub["source"] * (result.folds + 1) + sub["fold"]
                ax.plot(x, sub[metric], marker="o", label=label)
            ax.set_xlabel("recording x fold")
            ax.set_ylabel(metric)
            ax.set_title(f"{metric} per test fold")
            if c.shape[0] <= 8:
                ax.legend(fontsize=7)
        return draw

    if not ok.empty:
        figs.append(_figure(out / "fold_auc.png", per_fold("auc")))
        figs.append(_figure(out / "fold_pnl.png", per_fold("pnl")))

        def deflated(ax):
            names = [f"c{i}" for i in c["config"]]
            ax.bar(names, c["deflated_sharpe"].fillna(0.0))
            ax.axhline(0.95, color="k", lw=0.8, ls="--")
            ax.set_ylim(0, 1)
            ax.set_ylabel("DSR")
            ax.set_title(f"deflated Sharpe ratio (N = {len(c)} configurations)")
        figs.append(_figure(out / "deflated_sharpe.png", deflated))

        def reliability(ax):
            for cid, cal in result.calibration.items():
                b = cal["bins"]
                ax.plot([x["mean_p"] for x in b], [x["rate"] for x in b], marker=".", label=f"c{cid}")
            ax.plot([0, 1], [0, 1], color="k", lw=0.8, ls="--")
            ax.set_xlabel("predicted P(up)")
            ax.set_ylabel("observed rate")
            ax.set_title("pooled out-of-sample reliability")
            if len(result.calibration) <= 8:
                ax.legend(fontsize=7)
        figs.append(_figure(out / "reliability.png", reliability))
    logits = (result.pbo or {}).get("logits")
    if logits:
        def pbo_hist(ax):
            ax.hist(np.asarray(logits), bins=20)
            ax.axvline(0, color="k", lw=0.8)
            ax.set_xlabel("logit of the in-sample best's out-of-sample rank")
            ax.set_title(f"CSCV: PBO = {result.pbo['pbo']:.3f} over {result.pbo['combinations']} splits")
        figs.append(_figure(out / "pbo_logits.png", pbo_hist))
    pbo = result.pbo or {}
    pbo_line = (f"PBO {pbo['pbo']:.3f} over {len(pbo.get('configs', []))} configurations, {pbo.get('bars')} shared bars "
                f"({pbo.get('bars_not_shared')} not shared), {pbo.get('n_blocks')} blocks"
                if pbo.get("pbo") is not None else f"PBO not available: {html.escape(str(pbo.get('reason')))}")
    failed = t[t["error"].notna()][["config", "recording", "fold", "error"]]
    regimes = result.regime_table()
    body = [
        "<!doctype html><html><head><meta charset='utf-8'><title>bot4 sweep</title>",
        "<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;font-size:12px}"
        "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}</style></head><body>",
        "<h1>bot4 sweep</h1>",
        f"<p>{html.escape(result.scheme)}, {result.folds} folds x {len(c)} configurations x {len(result.sources)} "
        f"recording(s): {html.escape(', '.join(s.label for s in result.sources))}. Executor: "
        f"{html.escape(json.dumps(result.executor, default=float))}; {result.seconds.get('run')} s.</p>",
        f"<p>{pbo_line}.</p>",
        "<h2>Configurations</h2>", c.to_html(index=False, float_format=lambda x: f"{x:.4g}", na_rep="n/a"),
        "<h2>Per-fold metrics</h2>",
        ok.drop(columns=["error"]).to_html(index=False, float_format=lambda x: f"{x:.4g}", na_rep="n/a"),
        "<h2>Calibration per regime</h2>",
        f"<p>{html.escape(REGIME_NOTE.format(m=result.regime_min_per_class))}</p>",
        regimes.to_html(index=False, float_format=lambda x: f"{x:.4g}", na_rep="n/a") if len(regimes)
        else "<p>no test rows</p>",
        f"<h2>Failed cells ({len(failed)})</h2>",
        failed.to_html(index=False) if len(failed) else "<p>none</p>",
        "<h2>Figures</h2>", *[f"<p><img src='{f}' alt='{f}'></p>" for f in figs],
        "</body></html>"]
    paths["html"].write_text("\n".join(body))
    return {k: str(v) for k, v in paths.items()}
