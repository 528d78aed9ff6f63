"""Online regime labels: causal, fitted on a training window, and on the reference data."""

from __future__ import annotations

import numpy as np
import pytest

from bot4.research.regimes import REGIME_COLUMNS, RegimeModel, fit_regimes, grid_returns, with_regime_columns

REF = ("binance_hftbacktest", "usdm", "btcusdt_20240808.gz")
SEC = 1_000_000_000


def _prices(n_sec=1500, seed=0):
    """A mid observed ~5 times a second, calm, then 5x more volatile from the middle on."""
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, n_sec * SEC, n_sec * 5)) + 1_700_000_000 * SEC
    vol = np.where(np.arange(t.size) < t.size // 2, 0.2, 1.0)
    mid = 50_000 * np.exp(np.cumsum(rng.standard_t(5, t.size) * vol * 1e-4 / 2))
    return t, mid


def test_grid_returns_use_the_last_mid_at_or_before_each_point():
    t = np.array([0, 3, 10, 12, 25, 31]) * 100 + 1000
    mid = np.array([100, 101, 102, np.nan, 104, 105.0])
    grid, r = grid_returns(t, mid, 1000)
    np.testing.assert_array_equal(grid, [1000, 2000, 3000, 4000])
    # mids at the grid points: 100 (t=1000), 102 (t=2000; the NaN at 2200 is skipped), 102, 104
    np.testing.assert_allclose(r, np.diff(np.log([100, 102, 102, 104])) * 1e4)


def test_regimes_are_causal_and_separate_volatility():
    t, mid = _prices()
    half = t.size // 2
    model = fit_regimes(t[: half // 2 * 3], mid[: half // 2 * 3])     # calm part plus some wild part
    full = model.columns(t, mid)
    cut = int(t.size * 0.7)
    part = model.columns(t[:cut], mid[:cut])
    for name in REGIME_COLUMNS:
        np.testing.assert_array_equal(full[name][:cut], part[name])   # truncating the future changes nothing
    vol = model.labels(t, mid, "vol")
    # edges at the terciles of a window that is 2/3 calm: the calm part is low or mid, the wild part high
    calm, wild = vol[100: half // 2], vol[-half // 2:]
    assert np.mean(calm <= 1) > 0.95 and np.mean(calm == 0) > 0.3 and np.mean(wild == 2) > 0.8
    assert set(np.unique(model.labels(t, mid, "vol+changepoint"))) <= {-1, 0, 1, 2, 3, 4, 5}
    again = RegimeModel.from_dict(model.to_dict())
    np.testing.assert_array_equal(again.labels(t, mid, "changepoint"), model.labels(t, mid, "changepoint"))


def test_regime_signals_as_feature_columns():
    t, mid = _prices(600)
    model = fit_regimes(t, mid)
    X = np.random.default_rng(0).normal(size=(t.size, 3)).astype(np.float32)
    X2, names = with_regime_columns(X, ["a", "b", "c"], t, mid, model)
    assert names == ["a", "b", "c", *REGIME_COLUMNS] and X2.dtype == np.float32
    np.testing.assert_array_equal(X2[:, :3], X)
    np.testing.assert_allclose(X2[:, 3 + REGIME_COLUMNS.index("vol_regime")],
                               model.columns(t, mid)["vol_regime"].astype(np.float32))
    with pytest.raises(ValueError, match="rows"):
        with_regime_columns(X[:-1], ["a", "b", "c"], t, mid, model)


def test_rows_before_the_first_return_are_undefined():
    t, mid = _prices(600)
    model = fit_regimes(t, mid)
    labels = model.labels(t, mid)
    first_known = t[0] - t[0] % SEC + 2 * SEC      # second grid point after the first mid
    assert np.all(labels[t < first_known - SEC] == -1)
    assert np.all(labels[t >= first_known + SEC] >= 0)


def test_bad_input_refused():
    t, mid = _prices(50)
    with pytest.raises(ValueError, match="at least 100"):
        fit_regimes(t, mid)
    with pytest.raises(ValueError, match="non-decreasing"):
        grid_returns(t[::-1], mid)
    with pytest.raises(ValueError, match="vol_quantiles"):
        fit_regimes(*_prices(), vol_quantiles=(0.6, 0.3))
    with pytest.raises(ValueError, match="kind"):
        fit_regimes(*_prices()).labels(t, mid, "trend")


@pytest.mark.realdata
def test_reference_data_regimes_and_diagnostics(shared_data):
    from bot4.data import load
    from bot4.features import compute, trading_config

    fs = compute(load(shared_data.joinpath(*REF), progress=False), trading_config(), progress=False)
    t, mid = np.asarray(fs.timestamps), fs.column("mid_price")
    n = t.size * 6 // 10
    model = fit_regimes(t[:n], mid[:n])
    d = model.diagnostics
    assert d["grid_returns"] > 150
    for key in ("ljung_box_z", "ljung_box_z2", "arch_lm_z"):
        assert 0 <= d[key]["pvalue"] <= 1
    labels = model.labels(t, mid, "vol")
    assert set(np.unique(labels)) == {-1, 0, 1, 2}
    assert np.mean(labels == -1) < 0.02
