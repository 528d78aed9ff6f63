"""Shared by the realdata tests here: 1 s mids of six Binance instruments recorded together
(spot, USD-M and COIN-M, BTC and ETH), read in place from ../shared/data with bot4.data.load."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bot4.portfolio.selection import mid_bars

BINANCE = {
    "BTCUSDT@binance-usdm": ["usdm/btcusdt_20240808.gz"],
    "ETHUSDT@binance-usdm": ["usdm/ethusdt_20240808.gz"],
    "BTCUSDT@binance-spot": ["spot/btcusdt_20240808.gz", "spot/btcusdt_20240809.gz"],
    "ETHUSDT@binance-spot": ["spot/ethusdt_20240808.gz", "spot/ethusdt_20240809.gz"],
    "BTCUSD_PERP@binance-coinm": ["coinm/btcusd_perp_20240808.gz", "coinm/btcusd_perp_20240809.gz"],
    "ETHUSD_PERP@binance-coinm": ["coinm/ethusd_perp_20240808.gz", "coinm/ethusd_perp_20240809.gz"],
}


def binance_mid_bars(root: Path, bar_ns: int = 1_000_000_000) -> tuple[list[str], np.ndarray]:
    """(names, T x 6 mids in price units) on the exchange clock over the instruments' common span;
    the venue's own bookTicker gives the mid."""
    from bot4.data import load

    series = []
    for files in BINANCE.values():
        data = load([root / "binance_hftbacktest" / f for f in files])
        tick = float(next(iter(data.specs.values())).tick_size)
        bbo = data.bbo
        series.append((bbo["ts_exchange"], (bbo["bid_price"] + bbo["ask_price"]) * tick / 2.0))
    start = max(int(t[0]) for t, _ in series)
    end = min(int(t[-1]) for t, _ in series)
    return list(BINANCE), np.column_stack([mid_bars(t, m, bar_ns, start, end) for t, m in series])


def binance_mid_returns(root: Path, bar_ns: int = 1_000_000_000) -> np.ndarray:
    """1 s log mid returns of the six instruments (T - 1 x 6)."""
    return np.diff(np.log(binance_mid_bars(root, bar_ns)[1]), axis=0)


def momentum_scores(r: np.ndarray, window: int) -> np.ndarray:
    """|trailing sum| / (trailing std * sqrt(window)) at each row, from rows up to and including it."""
    out = np.zeros_like(r)
    for t in range(window - 1, len(r)):
        w = r[t - window + 1:t + 1]
        out[t] = np.abs(w.sum(axis=0)) / (w.std(axis=0, ddof=1) * np.sqrt(window) + 1e-12)
    return out
