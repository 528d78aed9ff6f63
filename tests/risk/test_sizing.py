"""Position sizing: METHODS §7 hand vectors and the sizer's composition of them."""

from __future__ import annotations

import math
import statistics

import pytest
from bot4._core import risk
from hypothesis import given, settings
from hypothesis import strategies as st

R = [-0.05, -0.03, -0.01, 0.0, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06]

BASE = dict(kelly_fraction=0.5, payoff_ratio=1.0, edge_threshold=0.0, target_vol=0.10,
            periods_per_year=252.0, max_vol_scale=2.0, max_symbol_fraction=0.2, max_leverage=1.0,
            var_limit=0.02, var_confidence=0.99, max_heat=0.06, crisis_correlation=0.8,
            crisis_multiplier=0.5)


def sizer(**over):
    return risk.PositionSizer({**BASE, **over})


# --- §7.1 Kelly -------------------------------------------------------------------------------

@pytest.mark.parametrize("p,b,f", [(0.6, 1.0, 0.2), (0.55, 1.5, 0.25), (0.4, 1.0, -0.2)])
def test_kelly_table(p, b, f):
    assert risk.kelly_binary(p, b) == pytest.approx(f, abs=1e-12)


def test_half_kelly_and_loss_form():
    assert 0.5 * risk.kelly_binary(0.6, 1.0) == pytest.approx(0.1)
    assert risk.kelly_binary_loss(0.6, 1.0, 1.0) == pytest.approx(0.2)
    assert risk.kelly_binary_loss(0.6, 0.5, 1.0) == pytest.approx(0.6 / 0.5 - 0.4)


def test_kelly_growth_verified():
    assert risk.kelly_growth(0.2, 0.6, 1.0) == pytest.approx(0.0201355, abs=5e-8)
    assert risk.kelly_growth(0.4, 0.6, 1.0) == pytest.approx(-0.0024469, abs=5e-8)


def test_negative_kelly_is_no_trade():
    # p = 0.6 but b = 0.5: f* = 0.6 − 0.4/0.5 = −0.2 → no bet on either side
    r = sizer(payoff_ratio=0.5).size(0.6, 0.01)
    assert r["status"] == "no_kelly_edge" and r["size"] == 0.0 and r["kelly"] == 0.0


# --- §7.2 volatility targeting ----------------------------------------------------------------

def test_vol_target_hand_vector():
    assert 0.01 * math.sqrt(252) == pytest.approx(0.1587, abs=1e-4)
    assert risk.vol_target_weight(0.10, 0.01, 252.0, 10.0) == pytest.approx(0.630, abs=5e-4)
    assert risk.vol_target_weight(0.10, 0.001, 252.0, 2.0) == 2.0  # L_max binds
    assert risk.vol_target_weight(0.10, 0.0, 252.0, 2.0) == 0.0


# --- §7.3 VaR / CVaR --------------------------------------------------------------------------

@pytest.mark.parametrize("beta,var,cvar", [(0.90, 0.03, 0.05), (0.80, 0.01, 0.04)])
def test_historical_var_cvar_skfolio_convention(beta, var, cvar):
    assert risk.var_historical(R, beta) == pytest.approx(var, abs=1e-12)
    assert risk.cvar_historical(R, beta) == pytest.approx(cvar, abs=1e-12)


def test_cvar_fractional_atom():
    # β = 0.85, n = 10: k = 1.5 → (0.05 + 0.5·0.03) / 1.5
    assert risk.cvar_historical(R, 0.85) == pytest.approx((0.05 + 0.5 * 0.03) / 1.5)


def test_parametric_normal_verified():
    mu, sd = statistics.mean(R), statistics.stdev(R)  # ddof = 1
    assert risk.var_normal(mu, sd, 0.95) == pytest.approx(0.0459213, abs=5e-7)
    assert risk.es_normal(mu, sd, 0.95) == pytest.approx(0.0606356, abs=5e-7)


@pytest.mark.parametrize("prob,z", [(0.5, 0.0), (0.95, 1.6448536269514722), (0.975, 1.959963984540054),
                                    (0.99, 2.3263478740408408), (1e-6, -4.753424308822899)])
def test_normal_quantile(prob, z):
    assert risk.normal_quantile(prob) == pytest.approx(z, abs=1e-12)


# --- §7.4 heat --------------------------------------------------------------------------------

def test_heat_hand_vector():
    pos = [(50, 48, 100, 1), (200, 204, 50, 1), (4000, 3990, 10, 5)]
    assert risk.portfolio_heat(pos, 100_000) == pytest.approx(0.009)


# --- the sizer --------------------------------------------------------------------------------

def test_size_hand_vector():
    # f(p) = |2·0.6 − 1| = 0.2 (threshold 0); w = 0.1/0.15875 = 0.62994; heat room = 1 − 0.03/0.06 = 0.5;
    # Kelly = 0.5·0.2 = 0.1; VaR cap = 0.02/(2.3263·0.01) = 0.8597; caps 0.2, 1.0 → min = 0.1.
    r = sizer().size(0.6, 0.01, heat=0.03)
    w = 0.10 / (0.01 * math.sqrt(252))
    assert r["status"] == "ok"
    assert r["edge_scale"] == pytest.approx(0.2)
    assert r["vol_scale"] == pytest.approx(w)
    assert r["heat_room"] == pytest.approx(0.5)
    assert r["kelly"] == pytest.approx(0.1)
    assert r["var_cap"] == pytest.approx(0.02 / (2.3263478740408408 * 0.01))
    assert r["cap"] == pytest.approx(0.1)
    assert r["size"] == pytest.approx(0.2 * w * 0.5 * 0.1)
    # short side is symmetric
    assert sizer().size(0.4, 0.01, heat=0.03)["size"] == pytest.approx(-0.2 * w * 0.5 * 0.1)


def test_crisis_override_halves():
    base = sizer().size(0.6, 0.01)["size"]
    assert sizer().size(0.6, 0.01, crisis=True)["size"] == pytest.approx(base / 2)
    assert sizer().size(0.6, 0.01, correlation=0.9)["size"] == pytest.approx(base / 2)
    assert sizer().size(0.6, 0.01, correlation=0.8)["size"] == pytest.approx(base)  # not above


def test_edge_threshold_maps_to_unit_interval():
    s = sizer(edge_threshold=0.1)
    assert s.size(0.54, 0.01)["status"] == "no_edge"
    assert s.edge_scale(0.6) == pytest.approx((0.2 - 0.1) / 0.9)
    assert s.edge_scale(1.0) == 1.0 and s.edge_scale(0.0) == 1.0 and s.edge_scale(0.5) == 0.0


def test_var_cap_binds():
    r = sizer(var_limit=0.001).size(0.6, 0.01)
    assert r["cap"] == pytest.approx(0.001 / (2.3263478740408408 * 0.01))
    assert r["cap"] < r["kelly"]


def test_leverage_room_and_heat_room():
    assert sizer().size(0.6, 0.01, gross_exposure=0.95)["cap"] == pytest.approx(0.05)
    assert sizer().size(0.6, 0.01, gross_exposure=1.2)["status"] == "no_capacity"
    assert sizer().size(0.6, 0.01, heat=0.06)["status"] == "no_heat_room"
    assert sizer().size(0.6, 0.01, heat=0.07)["size"] == 0.0


def test_hard_caps_hold_when_vol_scale_above_one():
    # p = 0.9: Kelly 0.5·0.8 = 0.4, cap = min(0.4, 0.2) = 0.2; f(p) = 0.8; w = 2 → raw 0.32 > 0.2.
    r = sizer().size(0.9, 0.002)
    assert r["vol_scale"] == 2.0
    assert r["size"] == pytest.approx(0.2)


@pytest.mark.parametrize("p,vol", [(1.5, 0.01), (-0.1, 0.01), (0.6, 0.0), (0.6, float("nan"))])
def test_bad_input_is_a_status(p, vol):
    r = sizer().size(p, vol)
    assert r["status"] == "bad_input" and r["size"] == 0.0


def test_to_lots_truncates_toward_zero():
    assert risk.to_lots(0.1, 100_000, 50_000, 0.001) == 200
    assert risk.to_lots(-0.1, 100_000, 30_000, 0.001) == -333
    assert risk.to_lots(0.1, 100_000, 0.0, 0.001) == 0


@settings(max_examples=300, deadline=None)
@given(p=st.floats(0, 1), vol=st.floats(1e-5, 0.2), heat=st.floats(0, 0.1),
       gross=st.floats(0, 2), corr=st.floats(-1, 1), crisis=st.booleans())
def test_size_never_breaks_limits(p, vol, heat, gross, corr, crisis):
    s = sizer()
    r = s.size(p, vol, heat=heat, gross_exposure=gross, correlation=corr, crisis=crisis)
    x = abs(r["size"])
    assert x <= BASE["max_symbol_fraction"] + 1e-12
    assert x <= max(0.0, BASE["max_leverage"] - gross) + 1e-12
    # one-period parametric VaR of the position fits the limit
    assert x * 2.3263478740408408 * vol <= BASE["var_limit"] * (1 + 1e-9)
    if r["size"] != 0.0:
        assert (r["size"] > 0) == (p >= 0.5)
    if heat >= BASE["max_heat"]:
        assert x == 0.0
    if crisis or corr > 0.8:
        assert x <= r["crisis"] * r["edge_scale"] * r["vol_scale"] * r["heat_room"] * r["cap"] + 1e-12
