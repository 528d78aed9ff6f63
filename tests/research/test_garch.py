"""GARCH(1,1)-t MLE against the `arch` package (METHODS.md §6): the likelihood of fixed parameters,
conditional volatilities, fitted parameters, and the reference BTCUSDT data."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from arch import arch_model
from arch.univariate import GARCH

from bot4.research.garch import backcast, fit_garch_t, loglikelihood

REF = ("binance_hftbacktest", "usdm", "btcusdt_20240808.gz")


def simulate(n, omega=.05, alpha=.08, beta=.9, nu=6.0, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.standard_t(nu, n) / np.sqrt(nu / (nu - 2))
    e = np.empty(n)
    s2 = omega / (1 - alpha - beta)
    for t in range(n):
        e[t] = np.sqrt(s2) * z[t]
        s2 = omega + alpha * e[t] ** 2 + beta * s2
    return e


def test_methods_vector_loglikelihood_and_volatility():
    e = simulate(3000)
    fixed = arch_model(e, mean="Zero", dist="t").fix([.05, .08, .9, 6])
    ll = loglikelihood(e, [0, .05, .08, .9, 6], mean="zero")
    assert ll == pytest.approx(fixed.loglikelihood, abs=1e-8)
    assert backcast(e) == pytest.approx(GARCH().backcast(e), rel=1e-14)


@pytest.mark.parametrize("seed", range(4))
def test_fit_matches_arch(seed):
    rng = np.random.default_rng(seed)
    params = dict(omega=rng.uniform(.02, .2), alpha=rng.uniform(.03, .15), nu=rng.uniform(4, 12))
    params["beta"] = rng.uniform(.6, .95 - params["alpha"])
    y = simulate(2000, seed=seed, **params) + rng.normal(0, .05)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = arch_model(y, mean="Constant", dist="t").fit(disp="off")
    mine = fit_garch_t(y)
    assert mine.converged
    # the same maximum: never worse than arch's, and within optimiser tolerance of it
    assert mine.loglikelihood >= ref.loglikelihood - 1e-6
    assert mine.loglikelihood == pytest.approx(ref.loglikelihood, abs=1e-3)
    np.testing.assert_allclose([mine.mu, mine.omega, mine.alpha, mine.beta, mine.nu],
                               ref.params.values, rtol=2e-2, atol=2e-3)
    # conditional volatility of the fitted parameters, from the fit's own backcast
    s2, z = mine.filter(y)
    fixed = arch_model(y, mean="Constant", dist="t").fix([mine.mu, mine.omega, mine.alpha, mine.beta, mine.nu])
    np.testing.assert_allclose(np.sqrt(s2), fixed.conditional_volatility, rtol=1e-10)
    assert mine.loglikelihood == pytest.approx(fixed.loglikelihood, abs=1e-8)
    np.testing.assert_allclose(z, (y - mine.mu) / np.sqrt(s2))


def test_forecast_matches_arch_analytic():
    y = simulate(1500, seed=3)
    mine = fit_garch_t(y, mean="zero")
    s2, _ = mine.filter(y)
    fixed = arch_model(y, mean="Zero", dist="t").fix([mine.omega, mine.alpha, mine.beta, mine.nu])
    ref = fixed.forecast(horizon=5, method="analytic", reindex=False).variance.values[-1]
    np.testing.assert_allclose(mine.forecast(y[-1], s2[-1], 5), ref, rtol=1e-10)


def test_bad_input_refused():
    with pytest.raises(ValueError, match="at least"):
        fit_garch_t(np.ones(10))
    with pytest.raises(ValueError, match="finite"):
        fit_garch_t(np.r_[simulate(200), np.nan])
    with pytest.raises(ValueError, match="zero variance"):
        fit_garch_t(np.zeros(500), mean="zero")
    with pytest.raises(ValueError, match="mean"):
        fit_garch_t(simulate(200), mean="ar1")


@pytest.mark.realdata
def test_reference_btcusdt_returns_match_arch(shared_data):
    from bot4.data import load
    from bot4.features import compute, trading_config
    from bot4.research.regimes import grid_returns

    fs = compute(load(shared_data.joinpath(*REF), progress=False), trading_config(), progress=False)
    _, r = grid_returns(fs.timestamps, fs.column("mid_price"), 1_000_000_000)   # 1 s mid returns, bp
    assert r.size > 300
    ref = arch_model(r, mean="Constant", dist="t").fit(disp="off")
    mine = fit_garch_t(r)
    # measured: both reach -393.012918 with alpha+beta ~ 1 and nu ~ 2.14 on this recording
    assert mine.loglikelihood == pytest.approx(ref.loglikelihood, abs=1e-4)
    np.testing.assert_allclose([mine.mu, mine.omega, mine.alpha, mine.beta, mine.nu],
                               ref.params.values, rtol=1e-3, atol=1e-4)
