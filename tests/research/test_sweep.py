"""bot4.research.sweep: folds x grid x recordings as cells of validate's per-fold pipeline, the
same table from a 2-process LocalCluster and from this process, failed cells kept as rows, the
aggregates (deflated Sharpe over every configuration, PBO) and the grid's one-line errors."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from bot4.errors import ConfigError
from bot4.features import trading_config
from bot4.research.sweep import Grid, Source, parse_grid, require_dask, sweep
from recordings import BTCUSDT, data_path

pd = pytest.importorskip("pandas")
FCONF = trading_config(decision="time", decision_interval_ns=100_000_000)
SIM = Source(seed=11, events=50_000)
# horizon 10**7 feature rows leaves no labelled sample: every cell of that point fails, naturally
GRID = {"grid": {"max_depth": [2, 3], "horizon": [20, 10_000_000], "threshold": [0.55, 0.6]},
        "fixed": {"n_estimators": 10}}


@pytest.fixture(scope="module")
def local():
    return sweep([SIM], parse_grid(GRID), folds=3, feature_config=FCONF, executor="local")


def test_dask_local_cluster_gives_the_same_table_as_one_process(local):
    pytest.importorskip("dask.distributed")
    dask = sweep([SIM], parse_grid(GRID), folds=3, feature_config=FCONF, executor="dask", workers=2)
    assert dask.executor["executor"] == "dask" and dask.executor["workers"] == 2
    per_worker = dask.executor["cells_per_worker"]      # both processes ran cells, none was lost
    assert len(per_worker) == 2 and "lost" not in per_worker and sum(per_worker.values()) == 4 * 3
    pd.testing.assert_frame_equal(local.table, dask.table)
    pd.testing.assert_frame_equal(local.configurations, dask.configurations)
    assert local.pbo == dask.pbo
    assert json.dumps(local.calibration, sort_keys=True) == json.dumps(dask.calibration, sort_keys=True)
    assert json.dumps(local.regime_calibration, sort_keys=True) == json.dumps(dask.regime_calibration, sort_keys=True)


def test_cells_configurations_and_failures(local):
    t, c = local.table, local.configurations
    # 4 grid points x 1 recording x 3 folds cells, each a row per threshold
    assert len(t) == 4 * 3 * 2 and len(c) == 4 * 2
    failed = t[t["error"].notna()]
    assert set(failed["horizon"]) == {10_000_000} and len(failed) == 2 * 3 * 2
    assert failed["error"].str.contains("too few").all()
    ok = t[t["error"].isna()]
    assert ok["auc"].between(0, 1).all() and (ok["test_samples"] > 0).all() and (ok["fees"] >= 0).all()
    assert (ok["min_purge_ns"] > ok["horizon_ns"]).all()
    # every configuration tried counts in the deflated Sharpe, the failed ones too
    assert (c["n_trials"] == 8).all()
    good = c[c["failed"] == 0]
    assert len(good) == 4 and good["deflated_sharpe"].notna().all()
    for _, row in good.iterrows():
        rows = ok[ok["config"] == row["config"]]
        assert row["pnl"] == pytest.approx(rows["pnl"].sum()) and row["trades"] == rows["trades"].sum()
    assert sorted(local.pbo["configs"]) == sorted(good["config"]) and 0 <= local.pbo["pbo"] <= 1
    assert local.pbo["bars_not_shared"] == 0            # the label is the same for every run point
    assert sorted(local.pbo["left_out"]) == sorted(c.loc[c["failed"] > 0, "config"])


def test_a_cell_runs_validate_s_fold_pipeline():
    """One grid point's cells are validate()'s folds: same AUC, P&L and out-of-sample Sharpe."""
    from bot4.research.validate import ValidateConfig, validate
    from bot4.sources import load_stream

    g = parse_grid({"fixed": {"n_estimators": 10, "max_depth": 3, "horizon": 20}, "grid": {"threshold": [0.55, 0.6]}})
    res = sweep([SIM], g, folds=3, feature_config=FCONF, executor="local")
    data = load_stream(None, seed=SIM.seed, n_events=SIM.events).data
    v = validate(data, ValidateConfig(folds=3, n_estimators=10, max_depth=3, horizon=20, thresholds=(0.55, 0.6)),
                 feature_config=FCONF).as_json()
    rows = res.table[res.table["threshold"] == 0.55].sort_values("fold")
    assert rows["auc"].tolist() == pytest.approx([f["metrics"]["auc"] for f in v["folds"]])
    assert rows["pnl"].tolist() == pytest.approx([f["metrics"]["pnl"] for f in v["folds"]])
    c0 = res.configurations.iloc[0]
    assert c0["sharpe"] == pytest.approx(v["sharpe"]) and c0["n_trials"] == 2
    assert c0["deflated_sharpe"] == pytest.approx(v["deflated_sharpe"])


@pytest.mark.parametrize("doc,match", [
    ({"grid": {"max_dept": [2]}}, "unknown parameter 'max_dept'"),
    ({"grids": {}}, "unknown section"),
    ({"grid": {"max_depth": 3}}, "non-empty list"),
    ({"grid": {"max_depth": []}}, "non-empty list"),
    ({"grid": {"max_depth": [3, 3]}}, "twice"),
    ({"grid": {"threshold": [0.4]}}, "entry probability"),
    ({"grid": {"max_depth": [2]}, "fixed": {"max_depth": 3}}, "both"),
    ({"grid": {"calibration_fraction": [0.5, 1.5]}}, "refused"),
    ({"grid": {"max_depth": ["deep"]}}, "refused"),
    ({"grid": {"max_depth": [True]}}, "numbers or strings"),
])
def test_bad_grids_are_refused_in_one_line(doc, match):
    with pytest.raises(ConfigError, match=match) as err:
        parse_grid(doc)
    assert "\n" not in str(err.value)


def test_bad_sweep_arguments_and_cli_errors(tmp_path, capsys):
    from bot4.cli import main

    with pytest.raises(ConfigError, match="scheme"):
        sweep([SIM], Grid(), scheme="cpcv", executor="local")
    with pytest.raises(ConfigError, match="executor"):
        sweep([SIM], Grid(), executor="threads")
    bad = tmp_path / "g.toml"
    bad.write_text("[grid]\nn_trees = [1, 2]\n")
    assert main(["sweep", "--grid", str(bad), "--local"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown parameter 'n_trees'" in err
    bad.write_text("[grid\n")
    assert main(["sweep", "--grid", str(bad)]) == 2
    assert "not valid TOML" in capsys.readouterr().err


def test_missing_dask_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "dask.distributed", None)
    with pytest.raises(ConfigError, match=r"bot4\[sweep\]"):
        require_dask()
    with pytest.raises(ConfigError, match=r"bot4\[sweep\]"):
        sweep([SIM], Grid(), executor="dask")


def test_cli_writes_table_json_and_report(tmp_path, capsys):
    from bot4.cli import main

    grid = tmp_path / "grid.toml"
    grid.write_text("[grid]\nthreshold = [0.55, 0.6]\n[fixed]\nn_estimators = 8\nmax_depth = 2\nhorizon = 20\n")
    out = tmp_path / "out"
    rc = main(["sweep", "--events", "40000", "--grid", str(grid), "--folds", "2", "--local", "--out", str(out),
               "--json"])
    assert rc == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["cells"] == 2 and doc["failed_cells"] == 0 and len(doc["configurations"]) == 2
    table = pd.read_parquet(out / "sweep.parquet")
    assert len(table) == 4 and set(table["threshold"]) == {0.55, 0.6}
    html = (out / "report.html").read_text()
    assert "deflated_sharpe.png" in html and "Per-fold metrics" in html and (out / "deflated_sharpe.png").stat().st_size
    regimes = pd.read_parquet(out / "regimes.parquet")
    assert "Calibration per regime" in html and set(regimes["config"]) == {0, 1}
    for cid, sub in regimes.groupby("config"):   # the regimes' rows partition the configuration's test rows
        assert sub.loc[sub["status"] != "all", "rows"].sum() == sub.loc[sub["status"] == "all", "rows"].item()
        assert set(doc["regime_calibration"]["configurations"][str(cid)]) == set(sub["regime"])


@pytest.mark.realdata
def test_small_sweep_on_the_reference_recording():
    path = data_path(*BTCUSDT)
    g = parse_grid({"grid": {"max_depth": [2, 3]}, "fixed": {"n_estimators": 10}})
    res = sweep([Source(path=str(path))], g, folds=2, executor="local")
    t = res.table
    assert len(t) == 2 * 2 and t["error"].isna().all()
    assert t["auc"].between(0, 1).all() and (t["test_samples"] > 100).all() and (t["trades"] >= 0).all()
    assert np.isfinite(res.configurations["deflated_sharpe"].astype(float)).all()
    assert res.pbo["pbo"] is not None and res.pbo["bars_not_shared"] == 0
    for per in res.regime_calibration.values():
        assert sum(m["rows"] for k, m in per.items() if k != "all") == per["all"]["rows"] > 0


def _direct_regimes(data, cfg, fold_index):
    """Regime names of one fold's test rows, computed here from the pieces: samples, folds, a
    regime model fitted on the fold's training rows and run forward."""
    from bot4.features import compute
    from bot4.research import splits as S
    from bot4.research.dataset import MID_COLUMN
    from bot4.research.regimes import fit_regimes
    from bot4.research.validate import build_samples

    s = build_samples(compute(data, FCONF), cfg)
    f = S.split(cfg.scheme, s.t0, s.t1, cfg.folds, embargo_ns=cfg.embargo_ns, n_test_groups=cfg.test_groups,
                window=cfg.window)[fold_index]
    mid = s.X[:, s.names.index(MID_COLUMN)].astype(np.float64)
    tr = np.sort(f.train)
    model = fit_regimes(s.t0[tr], mid[tr])
    names = model.names("vol")
    return [names[int(i)] if i >= 0 else "undefined" for i in model.labels(s.t0, mid, "vol")[f.test]]


def test_calibration_per_regime_equals_a_direct_computation(local):
    """The sweep's per-regime Brier / ECE of a configuration are those of its test rows, pooled over
    the folds, computed here with scikit-learn's Brier and the ECE of METHODS §3; regimes below the
    minimum sample are reported together as the pooled fallback."""
    from sklearn.metrics import brier_score_loss

    from bot4.research.calibration import ece
    from bot4.research.sweep import FALLBACK, make_cells, regime_calibration_table, run_cell
    from bot4.research.validate import ValidateConfig
    from bot4.sources import load_stream

    grid = parse_grid(GRID)
    cells = [c for c in make_cells([SIM], grid, folds=3, scheme="walk-forward", feature_config=FCONF)
             if c.point == 0]
    data = load_stream(None, seed=SIM.seed, n_events=SIM.events).data
    runs = [run_cell(c) for c in cells]
    assert all(r["error"] is None and r["regime_error"] is None for r in runs)
    cfg = ValidateConfig(**cells[0].config)
    for c, r in zip(cells, runs):
        assert r["regimes"].tolist() == _direct_regimes(data, cfg, c.fold)
    y = np.concatenate([r["y"] for r in runs]).astype(int)
    p = np.concatenate([r["p"] for r in runs])
    reg = np.concatenate([r["regimes"] for r in runs])
    for cid in (0, 1):                   # point 0 at both thresholds: the same test rows
        got = local.regime_calibration[cid]
        assert got["all"]["rows"] == y.size and got["all"]["brier"] == pytest.approx(brier_score_loss(y, p))
        own = [k for k, m in got.items() if m["status"] == "own"]
        assert own and FALLBACK not in got    # 50k simulator events: every regime has 200 rows per class
        for name in own:
            m = reg == name
            assert min(y[m].sum(), (1 - y[m]).sum()) >= 200
            assert got[name]["rows"] == m.sum() and got[name]["positives"] == y[m].sum()
            assert got[name]["brier"] == pytest.approx(brier_score_loss(y[m], p[m]), rel=1e-12)
            assert got[name]["ece"] == pytest.approx(ece(y[m], p[m], 10), rel=1e-12)
    # a minimum above some regimes' counts sends them to the pooled fallback, computed on their rows
    counts = {k: min(int(y[reg == k].sum()), int((1 - y[reg == k]).sum())) for k in set(reg.tolist())}
    cut = sorted(counts.values())[-1]             # only the largest regime keeps its own figures
    table = regime_calibration_table(y, p, reg, min_per_class=cut)
    small = sorted(k for k, v in counts.items() if v < cut)
    assert small and table[FALLBACK]["regimes"] == small and table[FALLBACK]["status"] == "fallback"
    m = np.isin(reg, small)
    assert table[FALLBACK]["rows"] == m.sum()
    assert table[FALLBACK]["brier"] == pytest.approx(brier_score_loss(y[m], p[m]), rel=1e-12)
    assert table[FALLBACK]["ece"] == pytest.approx(ece(y[m], p[m], 10), rel=1e-12)
    assert [k for k, v in table.items() if v["status"] == "own"] == [k for k, v in counts.items() if v >= cut]
    with pytest.raises(ConfigError, match="regime_min_per_class"):
        sweep([SIM], Grid(), executor="local", regime_min_per_class=0)
