"""bot4.portfolio.cost_model: TCA by hand, the square-root law recovered from synthetic fills of a
known law, OLS parity with statsmodels, and bad input refused."""

from __future__ import annotations

import numpy as np
import pytest

from bot4.errors import InputError
from bot4.portfolio import cost_model as cm

TRUE = {"c": 0.0, "a": 1.0, "Y": 0.7, "delta": 0.5}


def synthetic_fills(seed: int, n: int = 2000, noise_bp: float = 1.0, delta: float = 0.5):
    """Fills whose shortfall follows the law exactly plus Gaussian noise, built as prices."""
    rng = np.random.default_rng(seed)
    side = rng.choice([-1.0, 1.0], n)
    mid = 60000.0 * np.exp(np.cumsum(rng.normal(0, 1e-4, n)))
    half_spread = mid * rng.uniform(0.2, 3.0, n) / 1e4          # 0.2 to 3 bp
    sigma_bp = rng.uniform(5.0, 40.0, n)
    qv = np.exp(rng.uniform(np.log(1e-4), np.log(0.2), n))
    hs_bp = half_spread / mid * 1e4
    short = TRUE["c"] + TRUE["a"] * hs_bp + TRUE["Y"] * sigma_bp * qv**delta + rng.normal(0, noise_bp, n)
    price = mid * (1 + side * short / 1e4)
    qty = rng.uniform(0.001, 0.5, n)
    return dict(side=side, price=price, mid=mid, qty=qty, half_spread=half_spread, hs_bp=hs_bp, sigma_bp=sigma_bp,
                qv=qv, short=short)


def test_tca_by_hand():
    t = cm.tca([1, -1], [101.0, 99.5], [100.0, 100.0], [2.0, 1.0], fee_bp=[4.0, 2.0], half_spread=[0.5, 0.5])
    np.testing.assert_allclose(t.shortfall_bp, [100.0, 50.0])
    np.testing.assert_allclose(t.cost_bp, [104.0, 52.0])
    np.testing.assert_allclose(t.impact_bp, [50.0, 0.0])
    assert t.weighted_cost_bp == pytest.approx((104 * 202 + 52 * 99.5) / (202 + 99.5))


def test_sqrt_law_recovered_from_synthetic_fills():
    f = synthetic_fills(0)
    t = cm.tca(f["side"], f["price"], f["mid"], f["qty"], half_spread=f["half_spread"])
    np.testing.assert_allclose(t.shortfall_bp, f["short"], atol=1e-6)
    fit = cm.fit_sqrt_law(t.shortfall_bp, f["hs_bp"], f["sigma_bp"], f["qv"])
    for name in ("c", "a", "Y"):
        lo, hi = fit.ci(name)
        assert lo <= TRUE[name] <= hi, (name, fit[name], lo, hi)
    assert fit["Y"] == pytest.approx(0.7, abs=0.02)
    assert fit["a"] == pytest.approx(1.0, abs=0.05)
    assert fit.resid_std == pytest.approx(1.0, rel=0.05)
    # R^2 is the share of variance the law explains: 1 - noise variance / shortfall variance
    assert fit.r2 == pytest.approx(1 - 1.0 / np.var(f["short"]), abs=0.02)
    assert fit.qv_range == (pytest.approx(f["qv"].min()), pytest.approx(f["qv"].max()))


def test_power_law_recovers_the_exponent():
    for delta in (0.5, 0.6):
        f = synthetic_fills(1, delta=delta)
        fit = cm.fit_power_law(f["short"], f["hs_bp"], f["sigma_bp"], f["qv"])
        assert fit["delta"] == pytest.approx(delta, abs=0.04)   # 3 standard errors (se ~ 0.012)
        assert fit["Y"] == pytest.approx(0.7, rel=0.1)
        pred = fit.predict_shortfall_bp(f["hs_bp"], f["sigma_bp"], f["qv"])
        assert np.std(f["short"] - pred) == pytest.approx(fit.resid_std, rel=0.01)


def test_power_law_exponent_unbiased_and_covered():
    deltas, hits = [], 0
    for seed in range(40):
        f = synthetic_fills(seed, n=1000)
        fit = cm.fit_power_law(f["short"], f["hs_bp"], f["sigma_bp"], f["qv"])
        deltas.append(fit["delta"])
        lo, hi = fit.ci("delta")
        hits += lo <= 0.5 <= hi
    se_mean = np.std(deltas) / np.sqrt(len(deltas))
    assert abs(np.mean(deltas) - 0.5) < 3 * se_mean
    assert 33 <= hits <= 40


def test_ci_coverage_over_seeds():
    hits = 0
    for seed in range(40):
        f = synthetic_fills(100 + seed, n=300, noise_bp=2.0)
        lo, hi = cm.fit_sqrt_law(f["short"], f["hs_bp"], f["sigma_bp"], f["qv"]).ci("Y")
        hits += lo <= TRUE["Y"] <= hi
    assert 33 <= hits <= 40   # 95% intervals: 38 expected, 33 is 2.3 sd below


def test_ols_matches_statsmodels():
    sm = pytest.importorskip("statsmodels.api")
    f = synthetic_fills(7, n=500, noise_bp=3.0)
    fit = cm.fit_sqrt_law(f["short"], f["hs_bp"], f["sigma_bp"], f["qv"])
    X = np.column_stack([np.ones(500), f["hs_bp"], f["sigma_bp"] * np.sqrt(f["qv"])])
    ref = sm.OLS(f["short"], X).fit()
    np.testing.assert_allclose(fit.params, ref.params, rtol=1e-10)
    np.testing.assert_allclose(fit.se, ref.bse, rtol=1e-8)
    np.testing.assert_allclose(np.column_stack([fit.ci_low, fit.ci_high]), ref.conf_int(0.05), rtol=1e-8)
    assert fit.r2 == pytest.approx(ref.rsquared, rel=1e-10)
    assert fit.resid_std == pytest.approx(np.sqrt(ref.scale), rel=1e-10)


def test_expected_cost_in_currency():
    f = synthetic_fills(3)
    fit = cm.fit_sqrt_law(f["short"], f["hs_bp"], f["sigma_bp"], f["qv"])
    bp = fit.predict_shortfall_bp(1.0, 20.0, 0.01) + 4.0
    assert fit.expected_cost(-1000.0, 1.0, 20.0, 0.01, fee_bp=4.0) == pytest.approx(1000.0 * bp / 1e4)


def test_rejects_bad_input():
    f = synthetic_fills(0, n=50)
    with pytest.raises(InputError, match="side"):
        cm.tca(np.zeros(50), f["price"], f["mid"], f["qty"])
    bad = f["price"].copy()
    bad[3] = np.nan
    with pytest.raises(InputError, match="fill 3"):
        cm.tca(f["side"], bad, f["mid"], f["qty"])
    with pytest.raises(InputError, match="qty"):
        cm.tca(f["side"], f["price"], f["mid"], -f["qty"])
    with pytest.raises(InputError, match="expected 50"):
        cm.tca(f["side"], f["price"], f["mid"][:-1], f["qty"])
    with pytest.raises(InputError, match="q_over_v"):
        cm.fit_sqrt_law(f["short"], f["hs_bp"], f["sigma_bp"], np.zeros(50))
    with pytest.raises(InputError, match="same size"):
        cm.fit_sqrt_law(f["short"], f["hs_bp"], f["sigma_bp"], np.full(50, 0.01))
    with pytest.raises(InputError, match="collinear"):
        cm.fit_sqrt_law(f["short"], np.full(50, 1.0), f["sigma_bp"], f["qv"])
    with pytest.raises(InputError, match="at least"):
        cm.fit_power_law(f["short"][:5], f["hs_bp"][:5], f["sigma_bp"][:5], f["qv"][:5])


def test_exponent_at_its_bound_is_refused():
    f = synthetic_fills(5, n=500, noise_bp=0.1)
    steep = f["hs_bp"] + 5.0 * f["sigma_bp"] * f["qv"] ** 3.0     # delta = 3: outside [0, 2]
    with pytest.raises(InputError, match="bound"):
        cm.fit_power_law(steep, f["hs_bp"], f["sigma_bp"], f["qv"])
