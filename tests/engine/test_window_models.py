"""Window models in the engine: a model whose input is the last L feature rows (oldest first,
flattened, bot4.research.windows) runs at every decision on the lane's ring of rows, and its output
equals the same model applied offline to compute()'s rows windowed the research way; it has no
prediction (NaN) until L rows have arrived. A width that is not a whole number of feature rows is
refused with the cause. Runs on the embedded simulator stream (no recorded data needed)."""
from __future__ import annotations

import msgspec
import numpy as np
import pytest

from bot4 import _core
from bot4.features import FeatureConfig, compute
from bot4.research.windows import window_rows
from bot4.sim import generate



@pytest.fixture(scope="module")
def data():
    return generate(seed=11, n_events=20_000)


@pytest.fixture(scope="module")
def rows(data):
    """The engine's rows: every book message (FeatureConfig() deciding per message)."""
    fs = compute(data, msgspec.structs.replace(FeatureConfig(), decision="message"), progress=False)
    return np.ascontiguousarray(fs.matrix, dtype=np.float32), np.asarray(fs.timestamps)


def _logistic_onnx(matrix, length: int, seed: int):
    """A logistic regression over windows of `length` rows of `matrix` (NaN imputed as 0 and every
    column standardised inside the graph: nearly every feature row has a NaN feature, and prices
    would saturate it), fitted on those windows against a noisy label, exported by skl2onnx."""
    from skl2onnx import to_onnx
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(seed)
    X = window_rows(matrix, np.arange(length - 1, matrix.shape[0], 4), length)   # every 4th: fit time
    col = np.nan_to_num(X[:, rng.integers(X.shape[1])])
    y = (col + rng.normal(scale=col.std() + 1e-9, size=col.size) > np.median(col)).astype(np.int64)
    lr = LogisticRegression(C=0.1, max_iter=500)
    clf = make_pipeline(SimpleImputer(strategy="constant", fill_value=0.0, keep_empty_features=True),
                        StandardScaler(), lr).fit(X, y)
    onx = to_onnx(clf, X[:1], options={id(lr): {"zipmap": False}}, target_opset=15)
    return onx.SerializeToString(), clf


def _core_model(onnx_bytes: bytes, width: int):
    from bot4.models import load_bytes

    return load_bytes(onnx_bytes, width)


def _width(rows) -> int:
    return rows[0].shape[1]


@pytest.mark.parametrize("length", [2, 5])
def test_window_model_equals_offline_windows(data, rows, length):
    import bot4.backtest

    matrix, ts = rows
    f = _width(rows)
    onnx_bytes, _ = _logistic_onnx(matrix, length, seed=length)
    model = _core_model(onnx_bytes, length * f)
    res = bot4.backtest.run(data, model, progress=False)
    assert res.decisions.size == matrix.shape[0] > 100
    np.testing.assert_array_equal(res.decisions["ts"], ts)
    got = res.decisions["p"]
    # no prediction before L rows
    assert np.isnan(got[: length - 1]).all()
    idx = np.arange(length - 1, matrix.shape[0])
    expected = model.predict_proba(window_rows(matrix, idx, length))
    both_nan = np.isnan(expected) & np.isnan(got[idx])
    assert (np.isnan(expected) == np.isnan(got[idx])).all()
    assert (~both_nan).sum() > 50            # windows without a NaN feature: real comparisons
    # batch vs one row through ONNX Runtime: float32 kernels differ in the last bits (seen 1.4e-6)
    np.testing.assert_allclose(got[idx][~both_nan], expected[~both_nan], rtol=0, atol=1e-5)
    # the engine's own path, one window at a time: bit for bit
    some = np.random.default_rng(0).choice(idx, 200, replace=False)
    one_by_one = [model.predict_one(w) for w in window_rows(matrix, some, length)]
    np.testing.assert_array_equal(got[some], one_by_one)
    # a shifted window (off by one row) would not match: the check has power
    shifted = model.predict_proba(window_rows(matrix, idx[:-1], length))
    ok = ~(np.isnan(shifted) | np.isnan(got[idx[1:]]))
    assert np.abs(shifted[ok] - got[idx[1:]][ok]).max() > 1e-3


def test_row_and_window_models_side_by_side(data, rows):
    """Slot 0 a one-row model, slot 1 (a shadow) a 3-row window model: each reads its own input."""
    import bot4.backtest

    matrix, _ = rows
    f = _width(rows)
    one = _core_model(_logistic_onnx(matrix, 1, seed=1)[0], f)
    win = _core_model(_logistic_onnx(matrix, 3, seed=3)[0], 3 * f)
    res = bot4.backtest.run(data, one, shadow=win, progress=False)
    p0 = res.decisions["p"]
    exp0 = one.predict_proba(matrix)
    m = ~np.isnan(exp0)
    np.testing.assert_allclose(p0[m], exp0[m], rtol=0, atol=1e-5)
    scores = res.scores[res.scores["slot"] == 1]["p"]
    assert scores.size == matrix.shape[0]
    assert np.isnan(scores[:2]).all()
    exp1 = win.predict_proba(window_rows(matrix, np.arange(2, matrix.shape[0]), 3))
    m1 = ~np.isnan(exp1)
    assert (np.isnan(scores[2:]) == ~m1).all()
    np.testing.assert_allclose(scores[2:][m1], exp1[m1], rtol=0, atol=1e-5)


def test_width_not_whole_rows_is_refused(data, rows):
    import bot4.backtest

    matrix, _ = rows
    f = _width(rows)
    wide = np.concatenate([matrix, matrix[:, :1]], axis=1)      # F + 1 columns
    odd = _core_model(_logistic_onnx(wide, 1, seed=0)[0], f + 1)
    with pytest.raises(ValueError, match=rf"model input width {f + 1} does not match the feature engine's columns "
                                         rf"\({f}, or a window of L whole feature rows"):
        bot4.backtest.run(data, odd, progress=False)


def test_swapped_in_window_model_waits_for_its_rows(data, rows):
    """A window model swapped in mid-run (control plane) grows the lane's ring and predicts once L
    rows have arrived after the swap; the rows before it are not invented."""
    from bot4.backtest.engine import _Prepared

    matrix, ts = rows
    f = _width(rows)
    one = _core_model(_logistic_onnx(matrix, 1, seed=1)[0], f)
    win = _core_model(_logistic_onnx(matrix, 4, seed=4)[0], 4 * f)
    prep = _Prepared(data.specs, set(data.specs), one, None, None)   # the embedded stream is L3
    eng = _core.engine.StreamingBacktest(prep.cfg, prep.instruments)
    book, trades, orders = prep.streams(data)
    cut = int(ts[matrix.shape[0] // 2])

    def before(a):
        return a[a["ts_local"] <= cut]

    def after(a):
        return a[a["ts_local"] > cut]

    eng.push(before(book), before(trades), before(orders), cut)
    eng.push(after(book), after(trades), after(orders), int(orders["ts_local"][-1]))  # runs up to `cut`
    eng.swap_model(win.core, 1)
    out = eng.finish()
    s1 = out["scores"][out["scores"]["slot"] == 1]
    first = int(np.searchsorted(ts, s1["ts"][0]))
    assert first > matrix.shape[0] // 4 and s1.size == matrix.shape[0] - first
    np.testing.assert_array_equal(s1["ts"], ts[first:])
    assert np.isnan(s1["p"][:3]).all() and not np.isnan(s1["p"][3:]).any()
    idx = np.arange(first + 3, matrix.shape[0])
    exp = win.predict_proba(window_rows(matrix, idx, 4))
    np.testing.assert_allclose(s1["p"][3:], exp, rtol=0, atol=1e-5)
