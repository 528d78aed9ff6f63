"""Leakage sentinels (METHODS.md §2): checks that a leak would fail, run by `bot4 validate
--sentinels` and in CI.

- truncation: the pipeline's features AND labels computed on the data cut at time c equal those
  computed on the whole data for every row before c (labels: every row whose label window ends
  before c; rows whose window crosses c must be unlabelled, never labelled differently); and
  with everything after c scrambled (another future) the features before c are unchanged, which
  catches code that reads future rows but happens to get the same value.
- permutation: the whole per-fold pipeline (fit, calibration, export, backtest after fees) rerun
  on labels permuted in blocks of `block_rows` samples (a block spans a label horizon, so
  overlapping labels move together and keep their autocorrelation). Under no leak the
  out-of-sample AUC is at chance and the after-fee Sharpe is not positive. The AUC null band
  uses the null standard error sqrt((n1 + n0 + 1) / (12 n1 n0)) inflated by sqrt(block_rows) for
  the overlap (n_eff = n / block_rows); the Sharpe band is one-sided (fees push a skill-less
  strategy below 0), SE(SR) = sqrt((1 + SR^2 / 2) / T) per bar. Fail if the mean of the R null
  statistics leaves mean +- 3 SE / sqrt(R) or any single one leaves +- 4 SE.
- planted leak: a feature column equal to the future label is added; the sentinel passes when the
  permutation test catches it (AUC above every null AUC, p = 1 / (R + 1) <= 0.05, and above the
  band of the null mean), proving the test has power. Needs R >= 19.
"""

from __future__ import annotations

import numpy as np
import msgspec

from bot4.research import metrics as M


class SentinelConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Settings of the leakage sentinels (truncation, label permutation, planted leak); see the field
    comments."""

    permutations: int = 20       # R; METHODS.md §2 suggests 20-100
    cuts: int = 6                # truncation checkpoints (random times, seeded)
    block_rows: int = 0          # permutation block in samples; 0 = the label horizon in samples
    backtest: bool = True        # also backtest each permuted model (after-fee Sharpe band)
    max_folds: int = 0           # 0 = every fold; else only the last max_folds folds (CI cost)
    seed: int = 0
    rel_tol: float = 1e-12       # truncation: |diff| <= rel_tol * max(1, |value|)


def _same(a: np.ndarray, b: np.ndarray, rel_tol: float) -> tuple[bool, float]:
    both_nan = np.isnan(a) & np.isnan(b)
    diff = np.where(both_nan, 0.0, np.abs(a.astype(np.float64) - b.astype(np.float64)))
    diff = np.where(np.isnan(diff), np.inf, diff)          # NaN on one side only
    scale = np.maximum(1.0, np.abs(np.nan_to_num(a.astype(np.float64))))
    worst = float(np.max(diff / scale)) if diff.size else 0.0
    return worst <= rel_tol, worst


def truncation_sentinel(data, feature_config, horizon: int, horizon_unit: str, dead_zone_bp: float,
                        cuts: int = 6, seed: int = 0, rel_tol: float = 1e-12, cut_times=None) -> dict:
    """Features and labels on data[:cut] vs the whole data, at `cuts` seeded random receive times
    (or `cut_times`)."""
    from bot4.features import compute
    from bot4.report.split import _keys, perturb_after, truncate
    from bot4.research.labels import UNDEFINED, forward_labels, label_end_index
    from bot4.research.dataset import MID_COLUMN

    def labelled(fs):
        ts = np.asarray(fs.timestamps, dtype=np.int64)
        mid = fs.matrix[:, fs.names.index(MID_COLUMN)]
        inst = np.asarray(fs.instruments)
        lab = np.full(ts.size, UNDEFINED, np.int8)
        end = np.zeros(ts.size, np.int64)
        for i in np.unique(inst):
            sel = np.flatnonzero(inst == i)
            lab_i, e = forward_labels(ts[sel], mid[sel], horizon, dead_zone_bp, horizon_unit)
            idx = label_end_index(ts[sel], e, horizon_unit)
            lab[sel] = lab_i
            # the global row the window ends at; "never" for windows past the data end
            end[sel] = np.where(idx < sel.size, sel[np.minimum(idx, sel.size - 1)], np.iinfo(np.int64).max)
        return lab, end

    full = compute(data, feature_config)
    full_lab, full_end = labelled(full)
    keys = np.sort(np.concatenate([_keys(a) for a in (data.book, data.orders, data.trades) if len(a)]))
    if cut_times is None:
        rng = np.random.default_rng(seed)
        cut_times = np.sort(rng.choice(keys[int(0.05 * keys.size):int(0.95 * keys.size)], size=cuts,
                                       replace=False))
    checks, worst_feat, label_mismatch = [], 0.0, 0
    for c in cut_times:
        part = compute(truncate(data, int(c)), feature_config)
        n = int(part.matrix.shape[0])
        ok_rows = n <= full.matrix.shape[0] and np.array_equal(np.asarray(part.timestamps),
                                                                np.asarray(full.timestamps)[:n])
        same, worst = _same(part.matrix, full.matrix[:n], rel_tol) if ok_rows else (False, float("inf"))
        lab, _ = labelled(part)
        complete = full_end[:n] < n                      # label window inside the truncated rows
        bad = int(np.sum(lab[complete] != full_lab[:n][complete]) + np.sum(lab[~complete] != UNDEFINED))
        # future perturbation: a different future must leave every row before the cut unchanged
        scrambled = compute(perturb_after(data, int(c), seed), feature_config)
        k = int(np.searchsorted(np.asarray(scrambled.timestamps), int(c), "left"))
        k_full = int(np.searchsorted(np.asarray(full.timestamps), int(c), "left"))
        ok_future = k == k_full and np.array_equal(np.asarray(scrambled.timestamps)[:k],
                                                    np.asarray(full.timestamps)[:k])
        same_f, worst_f = _same(scrambled.matrix[:k], full.matrix[:k], rel_tol) if ok_future else (False, float("inf"))
        worst_feat = max(worst_feat, worst, worst_f)
        label_mismatch += bad
        checks.append({"cut_ns": int(c), "rows": n, "max_rel_diff": worst, "label_mismatches": bad,
                       "future_scrambled_max_rel_diff": worst_f,
                       "pass": bool(ok_rows and same and bad == 0 and ok_future and same_f)})
    return {"name": "truncation", "statistic": {"max_rel_diff": worst_feat, "label_mismatches": label_mismatch},
            "null_band": {"max_rel_diff": [0.0, rel_tol], "label_mismatches": [0, 0]},
            "cuts": checks, "pass": all(c["pass"] for c in checks)}


def block_permutation(y: np.ndarray, block: int, rng) -> np.ndarray:
    """y with its blocks of `block` consecutive samples put in a random order (the last, shorter
    block moves as one block too)."""
    n = y.size
    starts = np.arange(0, n, max(int(block), 1))
    order = rng.permutation(starts.size)
    return np.concatenate([y[starts[i]:min(starts[i] + block, n)] for i in order])


def _band(center: float, se: float, R: int, one_sided: bool = False) -> dict:
    lo_mean: float | None
    lo_one: float | None
    lo_mean, hi_mean = center - 3 * se / np.sqrt(R), center + 3 * se / np.sqrt(R)
    lo_one, hi_one = center - 4 * se, center + 4 * se
    if not one_sided:      # an AUC band: [0, 1] at most
        lo_mean, hi_mean, lo_one, hi_one = max(lo_mean, 0.0), min(hi_mean, 1.0), max(lo_one, 0.0), min(hi_one, 1.0)
    if one_sided:
        lo_mean = lo_one = None
    return {"mean": [lo_mean, hi_mean], "single": [lo_one, hi_one], "se": se}


def _inside(band: dict, values) -> bool:
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)])
    if v.size == 0:
        return True
    lo_m, hi_m = band["mean"]
    lo_s, hi_s = band["single"]
    ok = v.mean() <= hi_m and v.max() <= hi_s
    if lo_m is not None:
        ok = ok and v.mean() >= lo_m and v.min() >= lo_s
    return bool(ok)


def _block_rows(samples, vconfig) -> int:
    if vconfig.horizon_unit == "events":
        return int(vconfig.horizon)
    dt = np.median(np.diff(samples.t0)) if samples.t0.size > 1 else 1
    return max(1, int(round(vconfig.horizon / max(float(dt), 1.0))))


def _run_folds(data, samples, folds, vconfig, fconf, y, X, root, backtest: bool, risk_config, source=None):
    """Pooled OOS (y, p) over folds and, with backtest, per-bar returns of the first threshold.
    With `source` (transfer mode) one model is trained on the source samples with labels y and
    scored on every fold's test samples against their true labels."""
    from bot4.research.validate import fit_and_calibration, predict, trade_span, train_fold

    ys, ps, bars = [], [], []
    shared = None
    if source is not None:
        fit, cal = fit_and_calibration(source, np.arange(source.y.size), vconfig.calibration_fraction)
        shared = train_fold(source, fit, cal, cal, vconfig, root / "model", fconf, y=y, X=source.X)
    for k, f in enumerate(folds):
        if shared is not None:
            model = shared
            ys.append(samples.y[f.test])
        else:
            fit, cal = fit_and_calibration(samples, f.train, vconfig.calibration_fraction)
            if np.unique(y[fit]).size < 2 or np.unique(y[cal]).size < 2:
                continue
            model = train_fold(samples, fit, cal, f.test, vconfig, root / f"fold{k}", fconf, y=y, X=X)
            ys.append(y[f.test])
        ps.append(predict(model, X[f.test]))
        if backtest:
            for g in f.test_groups:
                _, b, _ = trade_span(data, model.model_dir, int(samples.t0[g[0]]), int(samples.t0[g[-1]]) + 1,
                                  vconfig.thresholds[0], vconfig, risk_config)
                bars.append(b)
    y_all, p_all = np.concatenate(ys), np.concatenate(ps)
    return y_all, p_all, (np.concatenate(bars) if bars else np.zeros(0))


def permutation_and_leak_sentinels(data, samples, folds, vconfig, fconf, config: SentinelConfig,
                                   risk_config=None, real_auc=None, progress: bool = False,
                                   source=None) -> list[dict]:
    """Permuted-label AUC and after-fee Sharpe against their null bands, and the planted leak.
    source: transfer mode (labels of the training recording are permuted; see _run_folds)."""
    import sys
    import tempfile
    from pathlib import Path

    folds = folds[-config.max_folds:] if config.max_folds else folds
    rng = np.random.default_rng(config.seed)
    block = config.block_rows or _block_rows(samples, vconfig)
    aucs, srs, n_bars = [], [], 0
    with tempfile.TemporaryDirectory(prefix="bot4-sentinel-") as tmp:
        root = Path(tmp)
        for r in range(config.permutations):
            y_perm = block_permutation((source or samples).y, block, rng)
            y_t, p_t, bars = _run_folds(data, samples, folds, vconfig, fconf, y_perm, samples.X, root / f"p{r}",
                                        config.backtest and vconfig.backtest, risk_config, source)
            aucs.append(M.auc(y_t, p_t))
            if bars.size:
                srs.append(M.sharpe(bars))
                n_bars = bars.size
            if progress:
                print(f"sentinel permutation {r + 1}/{config.permutations}: AUC {aucs[-1]:.4f}", file=sys.stderr,
                      flush=True)
        # the planted leak: the label itself as an extra feature column
        X_leak = np.column_stack([samples.X, samples.y.astype(np.float32)])
        leak_s = _LeakSamples(samples, X_leak)
        leak_src = None
        if source is not None:
            leak_src = _LeakSamples(source, np.column_stack([source.X, source.y.astype(np.float32)]))
        y_l, p_l, _ = _run_folds(data, leak_s, folds, vconfig, None, (leak_src or samples).y, X_leak,
                                 root / "leak", False, risk_config, leak_src)
        leak_auc = M.auc(y_l, p_l)
    n1 = int(y_t.sum())
    n0 = int(y_t.size - n1)
    se_auc = M.auc_null_se(n1, n0) * np.sqrt(block)
    R = max(len(aucs), 1)
    auc_band = _band(0.5, se_auc, R)
    out = [{"name": "permuted_labels_auc", "statistic": {"mean": float(np.mean(aucs)), "max": float(np.max(aucs)),
                                                         "min": float(np.min(aucs)), "values": aucs},
            "null_band": auc_band, "permutations": R, "block_rows": int(block), "test_samples": int(y_t.size),
            "pass": _inside(auc_band, aucs)}]
    if real_auc is not None:
        out[0]["real_auc"] = real_auc
        out[0]["p_value"] = float((1 + sum(a >= real_auc for a in aucs)) / (R + 1))
    if srs and not any(np.isfinite(x) for x in srs):
        out.append({"name": "permuted_labels_sharpe", "statistic": {"mean": None, "max": None, "values": []},
                    "null_band": None, "bars": int(n_bars), "permutations": R, "pass": None,
                    "note": "no permuted model traded: the after-fee Sharpe is undefined"})
    elif srs:
        fin = [x for x in srs if np.isfinite(x)]
        se_sr = float(np.sqrt((1 + (np.mean(fin) if fin else 0.0) ** 2 / 2) / max(n_bars, 1)))
        sr_band = _band(0.0, se_sr, R, one_sided=True)
        out.append({"name": "permuted_labels_sharpe", "statistic": {
            "mean": float(np.mean(fin)) if fin else None, "max": float(np.max(fin)) if fin else None,
            "values": [M._none(x) for x in srs]}, "null_band": sr_band, "bars": int(n_bars),
            "permutations": R, "pass": _inside(sr_band, srs)})
    # caught: above every permuted-label AUC (permutation p-value 1 / (R + 1), <= 0.05 from R = 19)
    # and above the band of the null mean. The analytic single-value band can cover [0, 1] on a
    # short recording, so it is not the test of power.
    p_leak = float((1 + sum(a >= leak_auc for a in aucs)) / (R + 1))
    caught = bool(p_leak <= 0.05 and leak_auc > auc_band["mean"][1])
    out.append({"name": "planted_leak", "statistic": {"auc": leak_auc, "p_value": p_leak},
                "null_band": auc_band, "caught": caught, "pass": caught})
    return out


class _LeakSamples:
    """samples with another feature matrix (the planted column is not an engine feature)."""

    y: np.ndarray  # with every other field of Samples, copied from s.__dict__

    def __init__(self, s, X):
        self.__dict__.update(s.__dict__)
        self.X = X
        self.names = list(s.names) + ["planted_future_label"]


def run_sentinels(data, samples, folds, vconfig, fconf, config: SentinelConfig | None = None, *,
                  risk_config=None, real_auc=None, progress: bool = False, source=None) -> list[dict]:
    """Every sentinel on one validation run: the truncation check of the features, then the
    permutation and planted-leak checks over `folds`; one dict per sentinel with its value, band
    and verdict.
    """
    config = config or SentinelConfig()
    out = [truncation_sentinel(data, fconf, vconfig.horizon, vconfig.horizon_unit, vconfig.dead_zone_bp,
                               cuts=config.cuts, seed=config.seed, rel_tol=config.rel_tol)]
    out += permutation_and_leak_sentinels(data, samples, folds, vconfig, fconf, config, risk_config=risk_config,
                                          real_auc=real_auc, progress=progress, source=source)
    return out
