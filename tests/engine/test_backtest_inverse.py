"""Backtests of Binance COIN-M (inverse) recordings: every fill's fee and the instrument's P&L
reconcile with the inverse formulas (coin P&L F (sum s q/P - Q/M), fees in coin on q F / P, quote
figures = coin x the final mid), the risk stage sizes inverse orders by their face value, and one
engine holds linear and inverse instruments side by side."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from bot4 import Strategy
from bot4 import _core
from bot4.backtest.engine import run
from bot4.data import load
from recordings import data_path, require_recording

COINM_BTC = "coinm/btcusd_perp_20240808.gz"
USDM_BTC = "usdm/btcusdt_20240808.gz"
MM = {"strategy": {"name": "market_maker", "quote_lots": 3, "max_inventory_lots": 12}}


def _load(*names):
    return load([require_recording(data_path("binance_hftbacktest", n)) for n in names])


def _reference(fills, face: float, tick: float, lot: float):
    """Average cost in 1/price in exact fractions: (position, basis, realised coin, fees coin)."""
    k = Fraction(lot) * Fraction(face) / Fraction(tick)
    pos, basis, realised, fees = 0, Fraction(0), Fraction(0), Fraction(0)
    for f in fills:
        q, price = int(f["qty"]) if int(f["side"]) == 0 else -int(f["qty"]), int(f["price"])
        fees += Fraction(float(f["fee"]))
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
        basis = Fraction(0) if pos == 0 else (Fraction(pos, price) if (pos > 0) != (direction > 0) else basis)
    return pos, basis, realised, fees


def _final_mid(data, instrument: int) -> int:
    books = _core.book.BookSet()
    books.add(instrument)
    books.apply(data.book[data.book["instrument"] == instrument])
    bid, _, ask, _ = books.book(instrument).top()
    return int((bid + ask) // 2)


@pytest.mark.realdata
def test_coin_m_fills_and_pnl_reconcile_with_the_inverse_formula():
    data = _load(COINM_BTC)
    (iid, spec), = data.specs.items()
    assert spec.inverse and spec.contract_size == "100"
    r = run(data, None, MM, progress=False)
    s, = r.instruments
    fills = r.fills[r.fills["accepted"] == 1]
    assert s["inverse"] and s["contract_size"] == 100.0
    assert len(fills) > 50 and s["fills"] == len(fills)
    tick, lot, face = float(spec.tick_size), float(spec.lot_size), float(spec.contract_size)
    # each fee: maker 2 bp / taker 5 bp of the fill's coin notional q F / P
    bps = np.where(fills["maker"] == 1, 2.0, 5.0)
    coin_notional = fills["qty"] * lot * face / (fills["price"] * tick)
    np.testing.assert_allclose(fills["fee"], coin_notional * bps * 1e-4, rtol=1e-12)
    assert len(np.unique(fills["qty"])) >= 1 and np.abs(np.diff(fills["price"])).max() > 0
    pos, basis, realised, fees = _reference(fills, face, tick, lot)
    assert s["position"] == pos
    assert realised != 0
    # quote figures are the coin amounts times the mid of the last decision (the final book)
    m = _final_mid(data, iid)
    usd = m * tick
    k = Fraction(lot) * Fraction(face) / Fraction(tick)
    unreal = k * (basis - Fraction(pos, m)) if pos else Fraction(0)
    assert s["realised"] == pytest.approx(float(realised) * usd, rel=1e-9)
    assert s["fees"] == pytest.approx(float(fees) * usd, rel=1e-9)
    assert s["unrealised"] == pytest.approx(float(unreal) * usd, rel=1e-9, abs=1e-9)
    assert s["pnl"] == pytest.approx(float(realised + unreal - fees) * usd, rel=1e-9, abs=1e-9)
    # the whole path: coin P&L = F (sum s q / P - Q / M) - fees
    signed = np.where(fills["side"] == 0, 1, -1) * fills["qty"]
    direct = k * (sum(Fraction(int(q), int(p)) for q, p in zip(signed, fills["price"])) - Fraction(pos, m))
    assert s["pnl"] == pytest.approx(float(direct - fees) * usd, rel=1e-9, abs=1e-9)
    assert r.pnl == pytest.approx(s["pnl"], rel=1e-12, abs=1e-12)
    print(f"\nBTCUSD_PERP market maker: {len(fills)} fills, realised {float(realised):.8f} BTC, "
          f"fees {float(fees):.8f} BTC, pnl {s['pnl']:.4f} USD at mid {usd}")


class _SizedOnce(Strategy):
    """One market buy sized by the risk stage (qty 0) with a confident probability."""

    def __init__(self):
        self.sent = None

    def on_decision(self, ctx):
        if self.sent is None and ctx.two_sided:
            self.sent = ctx.submit("market", "buy", 0, 0, probability=0.9)
        return None


@pytest.mark.realdata
def test_the_risk_stage_sizes_inverse_orders_by_face_value():
    """The sizer's size is a fraction of equity; an inverse order gets size x equity / F contracts
    (the old linear arithmetic, size x equity / (P lot), would give 0 contracts at P = 61800 for
    any size below 0.6)."""
    data = _load(COINM_BTC)
    equity, cap = 100_000.0, 0.2
    cfg = {"engine": {"equity": equity, "vol_from_features": False, "current_vol": 0.02},
           "sizing": {"max_symbol_fraction": cap}}
    strat = _SizedOnce()
    r = run(data, None, cfg, progress=False, strategy=strat)
    assert strat.sent is not None and strat.sent["ok"], strat.sent
    filled = int(r.fills[r.fills["accepted"] == 1]["qty"].sum())
    assert r.counters["size_zero"] == 0
    assert 1 <= filled and filled * 100.0 <= cap * equity
    print(f"\nsized inverse order: {filled} contracts = {filled * 100} USD of {cap * equity:.0f} USD cap")


@pytest.mark.realdata
def test_linear_and_inverse_side_by_side_in_one_engine():
    both = _load(USDM_BTC, COINM_BTC)
    assert {s.inverse for s in both.specs.values()} == {False, True}
    r = run(both, None, MM, progress=False)
    per = {d["instrument"]: d for d in r.instruments}
    assert all(d["fills"] > 10 for d in per.values())
    # the total is the sum of the instruments' quote-unit P&L, each marked at its last mid
    assert r.pnl == pytest.approx(sum(d["pnl"] for d in per.values()), rel=1e-9, abs=1e-9)
    # each alone gives the same per-instrument figures (separate venues, shared ledger only sums)
    for names, iid in ((USDM_BTC,), 1), ((COINM_BTC,), 201):
        alone, = run(_load(*names), None, MM, progress=False).instruments
        for key in ("fills", "position", "realised", "unrealised", "fees", "pnl"):
            assert alone[key] == pytest.approx(per[iid][key], rel=1e-12, abs=1e-12), (iid, key)
