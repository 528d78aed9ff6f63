"""Validation metrics against published and hand-computed vectors, and sklearn for AUC / Brier /
log loss (METHODS.md §3, §13)."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

from bot4.research.metrics import (auc, auc_null_se, bar_pnls, deflated_sharpe, expected_max_sharpe,
                                   pbo_cscv, probabilistic_sharpe, probability_metrics, sharpe,
                                   sharpe_report, trade_pnls, trading_metrics, turnover)

EQUITY = np.dtype([("ts", "<i8"), ("position", "<f8"), ("realised", "<f8"), ("unrealised", "<f8"),
                   ("fees", "<f8"), ("equity", "<f8")])
FILL = np.dtype([("price", "<i8"), ("qty", "<i8")])


def test_dsr_worked_example_bailey_lopez_de_prado_2014():
    # annualised SR 2.5, T = 1250 daily returns, N = 100 trials with annualised variance 0.5,
    # skew -3, kurtosis 10 -> SR0 = 0.1132, DSR = 0.9004 (METHODS.md §13)
    sr = 2.5 / math.sqrt(250)
    dsr, sr0 = deflated_sharpe(sr, 1250, 100, 0.5 / 250, skewness=-3.0, kurt=10.0)
    assert sr0 == pytest.approx(0.113172, abs=5e-7)
    assert round(sr0, 4) == 0.1132
    assert dsr == pytest.approx(0.90040, abs=5e-6)
    assert round(dsr, 4) == 0.9004
    assert probabilistic_sharpe(sr, 1250, -3.0, 10.0, 0.0) == pytest.approx(0.999997, abs=5e-7)


def test_psr_and_expected_max_hand_values():
    # normal returns, SR = SR*: PSR = 1/2; one trial: SR0 = 0
    assert probabilistic_sharpe(0.1, 100, 0.0, 3.0, 0.1) == 0.5
    assert expected_max_sharpe(1, 0.3) == 0.0
    # z = 0.1 * sqrt(99) / sqrt(1 + 0.5 * 0.01) by hand
    z = 0.1 * math.sqrt(99) / math.sqrt(1 + 0.005)
    assert probabilistic_sharpe(0.1, 100) == pytest.approx(0.5 * (1 + math.erf(z / math.sqrt(2))), abs=1e-12)
    with pytest.raises(ValueError):
        probabilistic_sharpe(0.1, 1)


def test_sharpe_report_counts_trials():
    rng = np.random.default_rng(1)
    r = rng.normal(0.05, 1.0, 500)
    one = sharpe_report(r)
    many = sharpe_report(r, trial_sharpes=[sharpe(r), 0.0, -0.1, 0.2, 0.05])
    assert one["n_trials"] == 1 and one["deflated_sharpe"] == pytest.approx(one["psr"])
    assert many["n_trials"] == 5 and many["sr0"] > 0 and many["deflated_sharpe"] < one["psr"]


def test_sharpe_by_hand():
    assert sharpe([1.0, 2.0, 3.0]) == pytest.approx(2.0 / 1.0)
    assert math.isnan(sharpe([1.0])) and math.isnan(sharpe([2.0, 2.0]))


METHODS_P = np.array([0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9, 0.9, 0.95])
METHODS_Y = np.array([0, 0, 1, 0, 1, 1, 0, 1, 1, 1])


def test_probability_metrics_methods_vector():
    m = probability_metrics(METHODS_Y, METHODS_P, n_bins=5)
    assert m["brier"] == pytest.approx(0.16125, abs=1e-12)
    assert m["log_loss"] == pytest.approx(0.4782255300905989, abs=1e-12)
    assert m["ece"] == pytest.approx(0.175, abs=1e-12)
    assert m["auc"] == pytest.approx(roc_auc_score(METHODS_Y, METHODS_P))
    assert probability_metrics(METHODS_Y, METHODS_P, n_bins=10)["ece"] == pytest.approx(0.315, abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 6)), min_size=2, max_size=60))
def test_auc_brier_logloss_match_sklearn(pairs):
    y = np.array([a for a, _ in pairs], dtype=float)
    p = np.array([b for _, b in pairs], dtype=float) / 6.0     # many ties
    if 0 < y.sum() < y.size:
        assert auc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    else:
        assert math.isnan(auc(y, p))
    m = probability_metrics(y, p)
    assert m["brier"] == pytest.approx(brier_score_loss(y, p), abs=1e-12)
    assert m["log_loss"] == pytest.approx(log_loss(y, p, labels=[0, 1]), abs=1e-9)


def test_auc_null_se_methods_value():
    assert auc_null_se(500, 500) == pytest.approx(0.0183, abs=5e-5)


def _equity(rows):
    return np.array(rows, dtype=EQUITY)


def test_trade_pnls_and_bars_by_hand():
    # flat, open (entry fee 1), mark, close at +5 net, flat, open, still open at -2
    eq = _equity([(0, 0, 0, 0, 0, 0.0), (10, 1, 0, 0, 1, -1.0), (20, 1, 0, 3, 1, 2.0), (30, 0, 6, 0, 2, 4.0),
                  (40, 0, 6, 0, 2, 4.0), (50, -1, 6, 0, 3, 3.0), (60, -1, 6, -3, 3, 0.0)])
    np.testing.assert_allclose(trade_pnls(eq), [4.0, -4.0])
    # bars of 20 ns on [0, 80): levels at 0, 20, 40, 60, 80 -> 0, 2, 4, 0, 0
    np.testing.assert_allclose(bar_pnls(eq, 0, 80, 20), [2.0, 2.0, -4.0, 0.0])
    fills = np.array([(100, 2), (110, 2)], dtype=FILL)
    assert turnover(fills, capital=1000.0, tick_size=0.5, lot_size=0.1) == pytest.approx((10 + 11) / 1000)
    # a linear contract's multiplier scales the notional; an inverse contract's is qty x face value
    assert turnover(fills, 1000.0, 0.5, 0.1, contract_size=50.0) == pytest.approx(50 * (10 + 11) / 1000)
    assert turnover(fills, 1000.0, 0.5, 1.0, contract_size=100.0, inverse=True) == pytest.approx(4 * 100 / 1000)
    m = trading_metrics(eq, fills, 1000.0, 0, 80, 20, 0.5, 0.1)
    assert m["trades"] == 2 and m["hit_rate"] == 0.5 and m["pnl"] == 0.0 and m["fees"] == 3.0
    assert m["sharpe_per_trade"] == pytest.approx(sharpe([4.0, -4.0]))
    assert m["sharpe_per_bar"] == pytest.approx(sharpe([2.0, 2.0, -4.0, 0.0]))


def test_pbo_hand_vectors():
    # two trials, two blocks; each wins where the other loses: the in-sample winner is always the
    # out-of-sample loser -> w = 1/3, lambda = ln(1/2), PBO = 1
    a = np.r_[np.linspace(1, 2, 10), np.linspace(-2, -1, 10)]
    M = np.c_[a, -a]
    out = pbo_cscv(M, n_blocks=2)
    assert out["pbo"] == 1.0 and out["combinations"] == 2
    np.testing.assert_allclose(out["logits"], [math.log(0.5)] * 2)
    # one trial dominates everywhere: w = 2/3, lambda = ln 2, PBO = 0
    M2 = np.c_[np.abs(a) + 1, np.abs(a) * 0.5 - 0.3 * np.arange(20) % 2]
    out2 = pbo_cscv(M2, n_blocks=4)
    assert out2["pbo"] == 0.0 and out2["combinations"] == 6
    np.testing.assert_allclose(out2["logits"], [math.log(2.0)] * 6)
    with pytest.raises(ValueError):
        pbo_cscv(M, n_blocks=3)
    with pytest.raises(ValueError, match="constant"):
        pbo_cscv(np.zeros((40, 3)), n_blocks=4)     # no trial traded


def test_pbo_of_pure_noise_is_near_one_half():
    rng = np.random.default_rng(7)
    pbos = [pbo_cscv(rng.normal(size=(200, 10)), n_blocks=8)["pbo"] for _ in range(20)]
    assert 0.3 < float(np.mean(pbos)) < 0.7
