"""Windows of the last L feature rows: layout against a plain loop, names, refusals, and the dataset
built on them (same labels and slices as the one-row dataset, minus the rows without history)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot4.research.windows import check_length, has_history, window_names, window_rows


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 40), f=st.integers(1, 5), length=st.integers(1, 8), seed=st.integers(0, 2**31))
def test_layout_is_oldest_row_first(n, f, length, seed):
    rng = np.random.default_rng(seed)
    m = rng.normal(size=(n, f))
    m[rng.random(m.shape) < 0.2] = np.nan
    rows = np.flatnonzero(has_history(np.arange(n), length))
    rng.shuffle(rows)
    w = window_rows(m, rows, length)
    assert w.shape == (rows.size, length * f) and w.dtype == np.float32
    for i, r in enumerate(rows):
        expect = np.concatenate([m[r - length + 1 + k] for k in range(length)]).astype(np.float32)
        np.testing.assert_array_equal(w[i], expect)
        np.testing.assert_array_equal(w[i, -f:], m[r].astype(np.float32))   # the current row last


def test_names_keep_the_current_row_plain():
    assert window_names(["a", "b"], 3) == ["a@t-2", "b@t-2", "a@t-1", "b@t-1", "a", "b"]
    assert window_names(["a"], 1) == ["a"]


def test_refusals():
    m = np.zeros((10, 2))
    with pytest.raises(ValueError, match=r"feature row 2 has no full window of 4 rows"):
        window_rows(m, [5, 2], 4)
    with pytest.raises(ValueError, match="feature row 10 has no full window"):
        window_rows(m, [10], 2)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="sequence length must be an integer >= 1"):
            check_length(bad)
    with pytest.raises(ValueError, match="2-D"):
        window_rows(np.zeros(5), [1], 1)


@pytest.mark.realdata
def test_dataset_of_windows(shared_data):
    from bot4.data import load
    from bot4.features import compute, trading_config
    from bot4.research import build_dataset

    data = load(shared_data / "binance_hftbacktest" / "usdm" / "btcusdt_20240808.gz", progress=False)
    fs = compute(data, trading_config())
    one = build_dataset(None, features=fs)
    L = 16
    win = build_dataset(None, features=fs, sequence_length=L)
    F = one.X.shape[1]
    assert win.X.shape[1] == L * F and win.sequence_length == L and win.names[-F:] == one.names
    assert win.rows.min() >= L - 1
    for name in ("train", "calibration", "test"):
        a, b = one.rows[getattr(one, name)], win.rows[getattr(win, name)]
        np.testing.assert_array_equal(b, a[a >= L - 1])          # same slices, less the first L - 1 rows
    same = np.searchsorted(one.rows, win.rows)
    np.testing.assert_array_equal(win.X[:, -F:], one.X[same])      # the current row is the one-row sample
    np.testing.assert_array_equal(win.y, one.y[same])
    np.testing.assert_array_equal(win.X[:, :F], fs.matrix[win.rows - (L - 1)].astype(np.float32))
    t0, t1 = win.label_intervals(win.train)
    assert (t1 >= t0).all() and (t1 > t0).mean() > 0.9                 # label end times, from the rows
