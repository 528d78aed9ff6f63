"""The sequence models (LSTM, attention): ONNX Runtime (Python and the core's C API path) against torch
on test windows (<= 1e-5), determinism under a seed, the purged early-stopping fold, the graph's own
imputation and standardisation, refusals of bad windows, the engine running one, and real-data training and purged
walk-forward validation."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the sequence models need PyTorch: pip install 'bot4[deep]'")

import bot4.models  # noqa: E402
from bot4.errors import ModelError  # noqa: E402
from bot4.research import TrainConfig, sequence, train, zoo  # noqa: E402
from bot4.research.train import onnx_proba  # noqa: E402

L, F = 8, 5
FAST = {"length": L, "hidden": 8, "epochs": 15, "patience": 3, "batch_size": 64, "lr": 1e-2}
REF = ("binance_hftbacktest", "usdm", "btcusdt_20240808.gz")


def synthetic(n=1600, seed=0):
    """Windows whose label depends on the sum of feature 0 over the window (an order the LSTM and the
    attention have to read), with NaNs and a badly scaled column; t0/t1: label intervals of 3 rows."""
    rng = np.random.default_rng(seed)
    rows = rng.normal(size=(n + L - 1, F))
    rows[:, 2] = rows[:, 2] * 1e4 + 5e4                    # standardisation must handle the scale
    X = np.lib.stride_tricks.sliding_window_view(rows, L, axis=0).transpose(0, 2, 1).reshape(n, L * F).copy()
    y = (X[:, 0::F].sum(axis=1) + 0.5 * rng.normal(size=n) > 0).astype(np.int8)
    X[rng.random(X.shape) < 0.03] = np.nan
    t0 = np.arange(n, dtype=np.int64) * 10
    return X.astype(np.float32), y, t0, t0 + 30


@pytest.fixture(scope="module")
def data():
    return synthetic()


@pytest.fixture(scope="module", params=sequence.KINDS)
def fitted(request, data):
    X, y, t0, t1 = data
    tr = slice(0, 1200)
    return request.param, sequence.fit(request.param, X[tr], y[tr], FAST, t0=t0[tr], t1=t1[tr])


def test_parity_torch_onnxruntime_and_the_core(fitted, data):
    from sklearn.metrics import roc_auc_score

    kind, model = fitted
    X, y = data[0][1200:], data[1][1200:]
    assert np.isnan(X).any()
    ref = zoo.proba(model, X)
    onx = zoo.export(kind, model, L * F)
    py = onnx_proba(onx, X)
    core = bot4.models.load_bytes(onx, L * F)
    assert core.kind == "onnxruntime"
    raw = core.raw_proba(X)
    one = np.array([core.raw_proba(X[i:i + 1])[0] for i in range(40)])   # batch of one, as per decision
    for got in (py, raw, one):
        assert np.abs(got - ref[:got.size]).max() <= 1e-5, np.abs(got - ref[:got.size]).max()
    assert roc_auc_score(y, ref) > 0.8          # it learnt the window's sum: a fitted model
    import onnx

    ops = {n.op_type for n in onnx.load_from_string(onx).graph.node}
    assert ("LSTM" in ops) == (kind == "lstm") and {"IsNaN", "Where", "Div"} <= ops


def test_imputation_and_standardisation_are_in_the_graph(fitted, data):
    kind, model = fitted
    X = data[0][1200:1400].copy()
    pre = model.module.pre
    fill = pre.fill.numpy()
    filled = np.where(np.isnan(X), np.tile(fill, L), X).astype(np.float32)
    onx = zoo.export(kind, model, L * F)
    np.testing.assert_allclose(onnx_proba(onx, X), onnx_proba(onx, filled), atol=1e-7)
    own = data[0][:1200].reshape(-1, L, F)[:, -1, :]           # training rows (superset of the fitted ones)
    assert np.allclose(fill, np.nanmedian(own, axis=0), rtol=0.1, atol=0.1)
    assert abs(pre.mean.numpy()[2] - 5e4) < 2e3 and abs(pre.scale.numpy()[2] - 1e4) < 1e3


def test_seed_makes_it_deterministic(data):
    X, y, t0, t1 = data
    tr = slice(0, 800)
    a = sequence.fit("attention", X[tr], y[tr], FAST, t0=t0[tr], t1=t1[tr])
    b = sequence.fit("attention", X[tr], y[tr], FAST, t0=t0[tr], t1=t1[tr])
    c = sequence.fit("attention", X[tr], y[tr], dict(FAST, seed=1), t0=t0[tr], t1=t1[tr])
    pa, pb, pc = (m.predict_proba(X[800:1000])[:, 1] for m in (a, b, c))
    np.testing.assert_array_equal(pa, pb)
    for k, v in a.module.state_dict().items():
        assert torch.equal(v, b.module.state_dict()[k]), k
    assert a.history == b.history
    assert np.abs(pa - pc).max() > 1e-4
    assert zoo.export("attention", a, L * F) == zoo.export("attention", b, L * F)


def test_lstm_seed_makes_it_deterministic(data):
    X, y, t0, t1 = data
    tr = slice(0, 600)
    p = [sequence.fit("lstm", X[tr], y[tr], dict(FAST, epochs=3), t0=t0[tr], t1=t1[tr]).predict_proba(X[600:700])
         for _ in range(2)]
    np.testing.assert_array_equal(p[0], p[1])


def test_early_stopping_fold_is_purged(fitted, data):
    _, model = fitted
    t0, t1 = data[2][:1200], data[3][:1200]
    fit_idx, val_idx = sequence.validation_split(t0, t1, 0.2)
    assert val_idx[0] == 960 and val_idx[-1] == 1199
    assert t1[fit_idx].max() < t0[val_idx[0]]                   # no fitting label reaches the fold
    assert fit_idx[-1] == 956                                    # labels of 3 rows: 957..959 purged
    h = model.history
    assert (h["fit_samples"], h["validation_samples"], h["purged_samples"]) == (957, 240, 3)
    assert h["best_epoch"] == int(np.argmin(h["validation_loss"])) and h["epochs_run"] <= FAST["epochs"]
    assert h["validation_loss"][h["best_epoch"]] < h["validation_loss"][0]


def test_bad_windows_refused(fitted, data):
    kind, model = fitted
    X, y, t0, t1 = data
    with pytest.raises(ValueError, match=r"windows of 8 rows x 5 features = 40 columns, got 35"):
        model.predict_proba(X[:10, :35])
    with pytest.raises(ValueError, match="2-D array"):
        model.predict_proba(X[:10].reshape(10, L, F))
    nan_row = X[:10].copy()
    nan_row[3, 2 * F:3 * F] = np.nan
    with pytest.raises(ValueError, match=r"sample 3: row t-5 of its window is all NaN"):
        model.predict_proba(nan_row)
    inf = X[:10].copy()
    inf[4, 0] = np.inf
    with pytest.raises(ValueError, match="sample 4 has an infinite feature value"):
        sequence.fit(kind, inf, y[:10], FAST, t0=t0[:10], t1=t1[:10])
    with pytest.raises(ValueError, match=r"42 columns are not windows of 8 rows"):
        sequence.fit(kind, np.zeros((10, 42), np.float32), y[:10], FAST, t0=t0[:10], t1=t1[:10])
    with pytest.raises(ValueError, match="pass t0 and t1"):
        sequence.fit(kind, X[:100], y[:100], FAST)
    with pytest.raises(ValueError, match="unknown sequence-model settings"):
        sequence.fit(kind, X[:100], y[:100], dict(FAST, layers=2), t0=t0[:100], t1=t1[:100])
    with pytest.raises(ValueError, match="windows of >= 2 rows"):
        sequence.fit(kind, X[:100, :F], y[:100], dict(FAST, length=1), t0=t0[:100], t1=t1[:100])
    with pytest.raises(ValueError, match="single label class"):
        sequence.fit(kind, X[:100], np.zeros(100, np.int8), FAST, t0=t0[:100], t1=t1[:100])
    with pytest.raises(ValueError, match=r"takes 40 columns \(8 rows x 5 features\), not 5"):
        zoo.export(kind, model, F)
    with pytest.raises(ModelError, match="feature-count mismatch"):     # the core: one row is not a window
        bot4.models.load_bytes(zoo.export(kind, model, L * F), F)
    with pytest.raises(ValueError, match="set sequence_length >= 2"):
        TrainConfig(model=kind)


@pytest.fixture(scope="module")
def ref_data(shared_data):
    from bot4.data import load

    return load(shared_data.joinpath(*REF), progress=False)


@pytest.mark.realdata
@pytest.mark.parametrize("kind", sequence.KINDS)
def test_train_on_real_windows_through_the_core(kind, ref_data, tmp_path):
    result = train(ref_data, TrainConfig(model=kind, sequence_length=16), tmp_path / "m", progress=False)
    side, ds = result.sidecar, result.dataset
    assert side["model"]["kind"] == kind and side["model"]["opset"] == sequence.ONNX_OPSET
    assert side["input"]["sequence_length"] == 16 and side["n_features"] == ds.X.shape[1] == 16 * 88
    assert side["parity"]["max_abs_diff"] <= 1e-5 and side["versions"]["torch"] == torch.__version__
    assert side["model"]["training"]["purged_samples"] > 0      # the early-stopping fold was purged
    model = bot4.models.load(tmp_path / "m")
    assert model.kind == "onnxruntime" and model.n_features == 16 * 88
    X_te = ds.X[ds.test]
    ref = zoo.proba(result.classifier, X_te)
    raw = model.raw_proba(X_te)
    assert np.abs(raw - ref).max() <= 1e-5, np.abs(raw - ref).max()
    assert ref.std() > 1e-3 and np.unique(ref).size > 100
    np.testing.assert_allclose(model.predict_proba(X_te), result.calibration.apply(raw), atol=1e-12)
    for part in ("raw", "calibrated"):
        m = result.metrics["test"][part]
        assert m["rows"] == ds.test.size and 0 <= m["auc"] <= 1 and 0 < m["brier"] < 1


@pytest.mark.realdata
def test_the_engine_runs_a_window_model(ref_data, tmp_path):
    """The engine keeps the last L feature rows per instrument: a window model trained by the
    pipeline decides from the L-th row on, on the same windows the research pipeline builds."""
    import msgspec

    import bot4.backtest as backtest
    from bot4.features import compute
    from bot4.research.windows import window_rows

    train(ref_data, TrainConfig(model="attention", sequence_length=4), tmp_path / "m", progress=False)
    model = bot4.models.load(tmp_path / "m")
    res = backtest.run(ref_data, str(tmp_path / "m"), progress=False)
    p = res.decisions["p"]
    assert np.isnan(p[:3]).all() and np.isfinite(p[3:]).all()
    fs = compute(ref_data, msgspec.structs.replace(model.feature_config, decision="message"), progress=False)
    matrix = np.ascontiguousarray(fs.matrix, dtype=np.float32)
    assert matrix.shape[0] == p.size
    some = np.random.default_rng(0).choice(np.arange(3, p.size), 100, replace=False)
    np.testing.assert_array_equal(p[some], [model.predict_one(w) for w in window_rows(matrix, some, 4)])


@pytest.mark.realdata
def test_purged_walk_forward_out_of_sample(ref_data):
    from bot4.research.validate import ValidateConfig, validate

    with pytest.raises(ValueError, match="one feature row per decision"):
        ValidateConfig(model="attention", sequence_length=16)
    cfg = ValidateConfig(model="attention", sequence_length=16, backtest=False, folds=2)
    res = validate(ref_data, cfg)
    doc = res.as_json()
    assert doc["config"]["model"] == "attention" and len(doc["folds"]) == 2
    for f in doc["folds"]:
        assert f["min_purge_ns"] > f["horizon_ns"]                      # the purge held at every boundary
        assert f["fit_samples"] + f["calibration_samples"] <= f["train"]["samples"]
        assert 0 <= f["metrics"]["auc"] <= 1
    n_test = sum(t["samples"] for f in doc["folds"] for t in f["test"])
    assert doc["oos"]["rows"] == n_test and 0 <= doc["auc"] <= 1 and 0 < doc["brier"] < 1
