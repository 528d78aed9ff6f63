"""The engine's ledger (core/portfolio/ledger, bot4._core.risk.Ledger) for inverse (coin-margined)
contracts beside linear ones: a hand-computed example, property tests against the direct
formulas in exact fractions, and the inverse notional of the pre-trade checks.

Inverse contract of face value F quote units, fills (s_i = +1 buy / -1 sell, q_i contracts, P_i):
coin P&L with the final position Q marked at M = F (sum_i s_i q_i / P_i - Q / M) (a long from P0
closed at P1 makes q F (1/P0 - 1/P1)); average entry of an open position = harmonic mean of its
fill prices weighted by contracts; quote-unit figures = coin x M."""
from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot4._core import engine as core_engine
from bot4._core import risk

TICK, LOT, FACE = 0.1, 1.0, 100.0          # BTCUSD_PERP
REL = 1e-9


def close(a: float, b: float, scale: float = 1.0) -> bool:
    return abs(a - b) <= REL * max(1.0, abs(b), scale)


def test_hand_computed_inverse_round_trip():
    led = risk.Ledger()
    s = led.add_instrument(201, TICK, LOT, inverse=True, contract_size=FACE)
    fee_open = core_engine.fee(600_000, 10, False, TICK, LOT, 2.0, 5.0, inverse=True, contract_size=FACE)
    # 10 contracts x 100 USD at 60000 = 1/60 BTC of notional; 5 bp of it
    assert fee_open == pytest.approx(1000 / 60_000 * 5e-4, rel=1e-12)
    led.fill(s, "buy", 600_000, 10, fee_open)
    led.mark(s, 620_000)
    b = led.book(s)
    # long 10 from 60000 marked at 62000: 1000 (1/60000 - 1/62000) BTC = 5.376344e-4 BTC = 33.33 USD
    assert b["unrealised_coin"] == pytest.approx(1000 * (1 / 60_000 - 1 / 62_000), rel=1e-12)
    assert b["unrealised"] == pytest.approx(1000 * (62_000 / 60_000 - 1), rel=1e-12)   # 33.333... USD
    assert b["average_entry"] == pytest.approx(600_000)
    assert b["fees"] == pytest.approx(fee_open * 62_000, rel=1e-12)                     # coin x mark
    # add 10 at 62000: average entry is the harmonic mean 20 / (10/60000 + 10/62000) = 60983.6066
    led.fill(s, "buy", 620_000, 10, 0.0)
    assert led.book(s)["average_entry"] * TICK == pytest.approx(2 / (1 / 60_000 + 1 / 62_000), rel=1e-12)
    assert led.book(s)["average_entry"] * TICK == pytest.approx(60_983.606557377, rel=1e-11)
    # sell 25 at 59000: closes 20 (realised 2000 (1/60983.6 - 1/59000) = 2000 (1/60000 + 1/62000)/2
    # - 2000/59000 = -1.102606e-3 BTC) and opens a short of 5 at 59000
    led.fill(s, "sell", 590_000, 25, 0.0)
    b = led.book(s)
    realised = 1000 * (1 / 60_000 + 1 / 62_000) - 2000 / 59_000
    assert realised == pytest.approx(-1.102606e-3, rel=1e-6)
    assert b["realised_coin"] == pytest.approx(realised, rel=1e-12)
    assert b["position"] == -5 and b["average_entry"] == pytest.approx(590_000)
    led.mark(s, 580_000)
    b = led.book(s)
    # the short of 5 from 59000 marked at 58000: 500 (1/58000 - 1/59000) BTC
    assert b["unrealised_coin"] == pytest.approx(500 * (1 / 58_000 - 1 / 59_000), rel=1e-12)
    coin = realised + 500 * (1 / 58_000 - 1 / 59_000) - fee_open
    assert b["equity"] == pytest.approx(coin * 58_000, rel=1e-12)
    assert b["realised"] == pytest.approx(realised * 58_000, rel=1e-12)
    assert led.total_equity() == pytest.approx(coin * 58_000, rel=1e-12)


def test_inverse_and_linear_side_by_side_add_up():
    led = risk.Ledger()
    lin = led.add_instrument(1, 0.1, 0.001)                 # BTCUSDT: 0.001 BTC lots
    inv = led.add_instrument(201, TICK, LOT, inverse=True, contract_size=FACE)
    led.fill(lin, "buy", 600_000, 1000, 0.3)               # 1 BTC at 60000, 0.3 USDT fee
    led.fill(inv, "sell", 600_000, 600, 1e-5)              # 60000 USD short, 1e-5 BTC fee
    led.mark(lin, 610_000)
    led.mark(inv, 610_000)
    lin_eq = (61_000 - 60_000) * 1.0 - 0.3
    inv_eq = (60_000 * (1 / 61_000 - 1 / 60_000) - 1e-5) * 61_000      # 60000 USD short loses ~ -1000 USD
    assert led.book(lin)["equity"] == pytest.approx(lin_eq, rel=1e-12)
    assert led.book(inv)["equity"] == pytest.approx(inv_eq, rel=1e-12)
    # (the two nearly cancel: compare on the scale of the legs, ~1000 USD)
    assert led.total_equity() == pytest.approx(lin_eq + inv_eq, abs=1e-9)
    assert led.total_fees() == pytest.approx(0.3 + 1e-5 * 61_000, rel=1e-12)
    # in quote units an inverse short of N = 60000 USD makes -N r (r = P1/P0 - 1), as a linear one
    assert inv_eq + 1e-5 * 61_000 == pytest.approx(-60_000 * (61_000 / 60_000 - 1), rel=1e-12)


# -- properties: the ledger against the direct formula, in exact fractions ------------------------

fills_st = st.lists(st.tuples(st.sampled_from(["buy", "sell"]), st.integers(200_000, 900_000),
                              st.integers(1, 50), st.floats(0, 1e-4)), min_size=1, max_size=40)


def reference(fills, face: float, tick: float, lot: float):
    """Average cost in 1/price with exact fractions: (position, basis, realised coin, fees)."""
    k = Fraction(lot) * Fraction(face) / Fraction(tick)
    pos, basis, realised, fees = 0, Fraction(0), Fraction(0), Fraction(0)
    for side, price, qty, fee in fills:
        q = qty if side == "buy" else -qty
        fees += Fraction(fee)
        if pos == 0 or (pos > 0) == (q > 0):
            basis += Fraction(q, price)
            pos += q
            continue
        closing = min(abs(q), abs(pos))
        closed = basis * closing / abs(pos)
        direction = 1 if pos > 0 else -1
        realised += k * (closed - Fraction(closing * direction, price))
        basis -= closed
        pos += q
        if pos == 0:
            basis = Fraction(0)
        elif (pos > 0) != (direction > 0):
            basis = Fraction(pos, price)
    return pos, basis, realised, fees


@settings(max_examples=300, deadline=None)
@given(fills=fills_st, mid=st.integers(200_000, 900_000),
       spec=st.sampled_from([(0.1, 1.0, 100.0), (0.01, 1.0, 10.0), (0.5, 1.0, 1.0)]))
def test_inverse_pnl_equals_the_sum_over_fills(fills, mid, spec):
    tick, lot, face = spec
    led = risk.Ledger()
    s = led.add_instrument(7, tick, lot, inverse=True, contract_size=face)
    for side, price, qty, fee in fills:
        led.fill(s, side, price, qty, fee)
    led.mark(s, mid)
    b = led.book(s)
    k = Fraction(lot) * Fraction(face) / Fraction(tick)
    signed = [(q if sd == "buy" else -q, p) for sd, p, q, _ in fills]
    position = sum(q for q, _ in signed)
    assert b["position"] == position
    # realised + unrealised = F (sum s q / P - Q / M), whatever the path (coin)
    total = k * (sum(Fraction(q, p) for q, p in signed) - Fraction(position, mid))
    scale = float(k * sum(Fraction(abs(q), p) for q, p in signed))     # size of the terms summed
    assert close(b["realised_coin"] + b["unrealised_coin"], float(total), scale)
    pos, basis, realised, fees = reference(fills, face, tick, lot)
    assert close(b["realised_coin"], float(realised), scale)
    assert close(b["unrealised_coin"], float(k * (basis - Fraction(position, mid))) if position else 0.0, scale)
    assert b["fees_settlement"] == pytest.approx(float(fees), rel=1e-12, abs=1e-18)
    if position:
        # harmonic mean of the open position's prices: between the extreme fill prices
        assert b["average_entry"] == pytest.approx(float(Fraction(position) / basis), rel=1e-9)
        assert min(p for _, p, _, _ in fills) * (1 - 1e-12) <= b["average_entry"] <= max(p for _, p, _, _ in fills) * (1 + 1e-12)
    else:
        assert b["average_entry"] == 0.0 and b["unrealised_coin"] == 0.0
    # quote units: the coin total times the mark
    m = mid * tick
    assert close(b["equity"], float(total - fees) * m, scale * m)
    assert close(b["realised"], b["realised_coin"] * m, scale * m)
    assert close(b["fees"], float(fees) * m)
    assert close(led.total_equity(), b["equity"], scale * m)


@settings(max_examples=200, deadline=None)
@given(fills=fills_st, mid=st.integers(200_000, 900_000))
def test_a_single_long_or_short_block_is_q_face_times_the_inverse_price_change(fills, mid):
    """All fills on one side: no realised P&L; unrealised = F (sum q/P - Q/M) with the harmonic entry."""
    side = fills[0][0]
    same = [(side, p, q, 0.0) for _, p, q, _ in fills]
    led = risk.Ledger()
    s = led.add_instrument(7, TICK, LOT, inverse=True, contract_size=FACE)
    for f in same:
        led.fill(s, *f)
    led.mark(s, mid)
    b = led.book(s)
    q = sum(x[2] for x in same)
    entry = Fraction(q) / sum(Fraction(x[2], x[1]) for x in same)             # harmonic mean, ticks
    sign = 1 if side == "buy" else -1
    want = sign * q * Fraction(FACE) * Fraction(LOT) / Fraction(TICK) * (1 / entry - Fraction(1, mid))
    assert b["realised_coin"] == 0.0
    assert b["average_entry"] == pytest.approx(float(entry), rel=1e-12)
    assert b["unrealised_coin"] == pytest.approx(float(want), rel=1e-9, abs=1e-15)


@settings(max_examples=200, deadline=None)
@given(fills=fills_st, mid=st.integers(200_000, 900_000))
def test_linear_pnl_is_the_integer_sum_over_fills(fills, mid):
    """Linear instruments as before: realised + unrealised = (Q M - sum s q P) tick lot."""
    led = risk.Ledger()
    s = led.add_instrument(1, 0.1, 0.001)
    for side, price, qty, fee in fills:
        led.fill(s, side, price, qty, fee)
    led.mark(s, mid)
    b = led.book(s)
    signed = [(q if sd == "buy" else -q, p) for sd, p, q, _ in fills]
    position = sum(q for q, _ in signed)
    ticks_lots = position * mid - sum(q * p for q, p in signed)
    assert b["realised"] + b["unrealised"] == pytest.approx(ticks_lots * 0.1 * 0.001, rel=1e-12, abs=1e-9)
    assert b["fees"] == b["fees_settlement"] == pytest.approx(sum(f for *_, f in fills), rel=1e-12, abs=1e-18)
    assert not b["inverse"] and b["realised_coin"] == 0.0


def test_ledger_binding_refuses_bad_fills():
    led = risk.Ledger()
    s = led.add_instrument(1, TICK, LOT, inverse=True, contract_size=FACE)
    for args in [("hold", 600_000, 1), ("buy", 0, 1), ("buy", 600_000, 0), ("sell", -5, 1)]:
        with pytest.raises(ValueError):
            led.fill(s, *args)
    with pytest.raises(IndexError):
        led.fill(5, "buy", 600_000, 1)
    assert led.book(s)["fills"] == 0


# -- pre-trade checks: an inverse lot's notional is F / tick ticks whatever the price -------------

def test_pre_trade_notional_of_inverse_contracts_does_not_move_with_price():
    # 1000 ticks x lots per contract (100 USD / 0.1); cap 10 contracts = 10_000
    chk = risk.PreTradeChecks({"max_notional": 10_000, "max_position_lots": 10**6, "collar_bps": 0,
                               "collar_ticks": 0, "rate_capacity": 0})
    chk.set_notional_price(1000)
    assert chk.check(1, "buy", 6, 600_000, 600_000, 0) == "ok"
    assert chk.check(2, "buy", 4, 300_000, 300_000, 1) == "ok"        # 10 contracts at any price
    assert chk.check(3, "buy", 1, 100_000, 100_000, 2) == "MaxNotional"
    assert chk.buys["notional"] == 10_000
    assert chk.on_fill(1, 6) and chk.on_cancel(2)
    assert chk.buys["notional"] == 0 and chk.position == 6
    assert chk.check(4, "buy", 4, 900_000, 900_000, 3) == "ok"
    assert chk.check(5, "buy", 1, 900_000, 900_000, 4) == "MaxNotional"
    # linear: the same order at its price is far beyond the cap
    lin = risk.PreTradeChecks({"max_notional": 10_000, "max_position_lots": 10**6, "collar_bps": 0,
                               "collar_ticks": 0, "rate_capacity": 0})
    assert lin.check(1, "buy", 1, 600_000, 600_000, 0) == "MaxNotional"
