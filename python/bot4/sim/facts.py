"""Stylised facts of a market stream, measured the same way on a recording and on the simulator.

`stylised_facts(data)` rebuilds the book from the BOOK_EVENTs (core BookSet) and samples it on a
regular exchange-time grid (every `grid_ms`, the state after the last complete message at or
before each grid time), so that batched venue feeds (Binance diffs every ~50 ms) and the event-by-
event simulator are observed alike. It returns a flat dict of floats whose keys carry units, and
the raw samples (for two-sample tests) in `samples`.

`compare_facts(real, sim)` checks a simulated stream against a real one with the tolerances in
`TOLERANCES` and returns one row per check.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bot4.data.market_data import MarketData
from bot4.events import FLAG_LAST, FLAG_SNAPSHOT

QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9, 0.99)


@dataclass
class Facts:
    """stylised_facts' output: scalar facts by name (units in the keys) and the raw samples behind the
    distributions."""

    values: dict[str, float]
    samples: dict[str, np.ndarray] = field(repr=False, default_factory=dict)


def ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: sup |F_a(x) - F_b(x)| (numpy only)."""
    a = np.sort(np.asarray(a, np.float64))
    b = np.sort(np.asarray(b, np.float64))
    if len(a) == 0 or len(b) == 0:
        return float("nan")
    x = np.concatenate([a, b])
    fa = np.searchsorted(a, x, side="right") / len(a)
    fb = np.searchsorted(b, x, side="right") / len(b)
    return float(np.max(np.abs(fa - fb)))


def _quantile_keys(prefix: str, x: np.ndarray, unit: str, out: dict[str, float]) -> None:
    qs = np.quantile(x, QUANTILES) if len(x) else [float("nan")] * len(QUANTILES)
    for q, v in zip(QUANTILES, qs):
        out[f"{prefix}_p{int(round(q * 100)):02d}_{unit}"] = float(v)
    out[f"{prefix}_mean_{unit}"] = float(np.mean(x)) if len(x) else float("nan")


def market_orders(trades: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group consecutive trades with the same exchange time and aggressor into market orders.

    Returns (time ns, size lots) per market order. On Binance one aggressive order produces one
    trade per resting order it meets, all with the same trade time (ms).
    """
    if len(trades) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    ts = trades["ts_exchange"]
    agg = trades["aggressor"]
    start = np.r_[True, (ts[1:] != ts[:-1]) | (agg[1:] != agg[:-1])]
    gid = np.cumsum(start) - 1
    sizes = np.bincount(gid, weights=trades["qty"].astype(np.float64)).round().astype(np.int64)
    return ts[start], sizes


def fano_factor(times_ns: np.ndarray, window_s: float, t0: int, t1: int) -> float:
    """Variance / mean of event counts in consecutive windows of window_s seconds."""
    w = int(window_s * 1e9)
    n = int((t1 - t0) // w)
    if n < 4 or len(times_ns) == 0:
        return float("nan")
    idx = (times_ns[(times_ns >= t0) & (times_ns < t0 + n * w)] - t0) // w
    counts = np.bincount(idx.astype(np.int64), minlength=n)
    mean = counts.mean()
    return float(counts.var() / mean) if mean > 0 else float("nan")


def book_grid(data: MarketData, grid_ms: float = 100.0, instrument: int | None = None):
    """Top of book on a regular exchange-time grid: (times ns, TOP_OF_BOOK array)."""
    from bot4._core.book import BookSet

    book = data.book
    if instrument is None:
        instrument = next(iter(data.specs))
    book = book[book["instrument"] == instrument]
    last = np.flatnonzero(book["flags"] & FLAG_LAST)
    snap = np.flatnonzero(book["flags"] & FLAG_SNAPSHOT)
    first = snap[-1] + 1 if len(snap) and snap[0] == 0 else 0
    msgs = last[last >= first]
    ts = book["ts_exchange"][msgs]
    step = int(grid_ms * 1e6)
    grid = np.arange(ts[0] + step, ts[-1], step, dtype=np.int64)
    pos = np.searchsorted(ts, grid, side="right") - 1  # last message at or before each grid time
    record_at = msgs[pos].astype(np.int64)
    bs = BookSet()
    bs.add(instrument)
    tops = bs.apply(np.ascontiguousarray(book), record_at)
    return grid, tops, bs.counters()


def stylised_facts(data: MarketData, grid_ms: float = 100.0) -> Facts:
    """Spread, touch sizes, trade sizes, inter-trade times, clustering and volatility."""
    instrument = next(iter(data.specs))
    grid, tops, _ = book_grid(data, grid_ms, instrument)
    ok = (tops["bid_qty"] > 0) & (tops["ask_qty"] > 0)
    tops = tops[ok]
    grid = grid[ok]
    spread = tops["ask_price"] - tops["bid_price"]
    l1 = np.concatenate([tops["bid_qty"], tops["ask_qty"]])
    v: dict[str, float] = {}
    v["duration_s"] = float((grid[-1] - grid[0]) / 1e9) if len(grid) > 1 else 0.0
    v["spread_1tick_frac"] = float(np.mean(spread == 1))
    v["spread_mean_ticks"] = float(spread.mean())
    v["spread_p99_ticks"] = float(np.quantile(spread, 0.99))
    _quantile_keys("l1", l1, "lots", v)

    trades = data.trades[data.trades["instrument"] == instrument]
    tq = trades["qty"]
    _quantile_keys("trade", tq, "lots", v)
    # Inter-trade times at the venue's 1 ms resolution (Binance stamps trades in ms).
    tms = trades["ts_exchange"] // 1_000_000
    gaps = np.diff(tms).astype(np.float64)
    v["trade_gap_zero_frac"] = float(np.mean(gaps == 0)) if len(gaps) else float("nan")
    pos_gaps = gaps[gaps > 0]
    _quantile_keys("trade_gap", pos_gaps, "ms", v)
    mo_t, mo_q = market_orders(trades)
    _quantile_keys("market_order", mo_q, "lots", v)
    dur = v["duration_s"] if v["duration_s"] > 0 else float("nan")
    v["trades_per_s"] = len(trades) / dur
    v["market_orders_per_s"] = len(mo_t) / dur
    v["trades_per_market_order"] = len(trades) / max(len(mo_t), 1)
    t0, t1 = int(grid[0]), int(grid[-1])
    v["market_order_fano_1s"] = fano_factor(mo_t, 1.0, t0, t1)
    v["market_order_fano_10s"] = fano_factor(mo_t, 10.0, t0, t1)
    # Mid-price changes over 1 s, in ticks (volatility at one second).
    mid2 = tops["bid_price"] + tops["ask_price"]  # 2 x mid, ticks
    per_s = max(int(round(1000.0 / grid_ms)), 1)
    dmid = (mid2[per_s::per_s] - mid2[:-per_s:per_s]) / 2.0
    v["mid_change_1s_std_ticks"] = float(np.std(dmid)) if len(dmid) else float("nan")
    v["mid_change_1s_abs_mean_ticks"] = float(np.mean(np.abs(dmid))) if len(dmid) else float("nan")
    # Price moves seen on the grid: how often the mid changes between two grid times and by how
    # much when it does (ticks).
    step_moves = np.diff(mid2) / 2.0
    moved = step_moves != 0
    v["mid_move_per_s"] = float(moved.sum() / dur)
    v["mid_move_abs_median_ticks"] = float(np.median(np.abs(step_moves[moved]))) if moved.any() else 0.0
    samples = {
        "spread": spread,
        "l1": l1,
        "trade_qty": tq.astype(np.int64),
        "trade_gap_pos_ms": pos_gaps,
        "market_order_qty": mo_q,
        "mid_change_1s": dmid,
        "mid_move": step_moves[moved],
    }
    return Facts(v, samples)


@dataclass(frozen=True)
class Check:
    """One comparison of compare_facts: the real and simulated value, the tolerance as text, and whether it
    held."""

    name: str
    real: float
    sim: float
    tolerance: str
    ok: bool


# The tolerances of compare_facts. KS = two-sample Kolmogorov-Smirnov statistic (sup distance
# between the empirical CDFs; 0 = identical). Ratios are sim/real.
TOLERANCES = {
    "spread_1tick_frac_abs": 0.02,     # |sim - real| of the share of one-tick spreads
    "l1_median_ratio": (0.67, 1.5),    # median touch size within a factor 1.5
    "l1_ks": 0.12,
    "trade_median_ratio": (0.5, 2.0),  # trade sizes: median within a factor 2 ...
    "trade_ks": 0.12,                  # ... and the whole distribution
    "market_order_ks": 0.08,           # market-order sizes
    "trade_gap_zero_abs": 0.06,        # share of inter-trade gaps of 0 ms (same-ms prints)
    "trade_gap_ks": 0.18,              # positive inter-trade gaps (ms)
    "trades_per_s_ratio": (0.75, 1.33),
    "mo_fano_1s_ratio": (0.5, 2.0),    # clustering of market orders in 1 s windows
}


def compare_facts(real: Facts, sim: Facts, tol: dict | None = None) -> list[Check]:
    """One Check per stylised fact (see TOLERANCES)."""
    t = dict(TOLERANCES, **(tol or {}))
    r, s = real.values, sim.values
    checks: list[Check] = []

    def absdiff(name: str, key: str, bound: float) -> None:
        checks.append(Check(name, r[key], s[key], f"|sim-real| <= {bound}", abs(s[key] - r[key]) <= bound))

    def ratio(name: str, key: str, bounds: tuple[float, float]) -> None:
        q = s[key] / r[key] if r[key] else float("nan")
        checks.append(Check(name, r[key], s[key], f"sim/real in [{bounds[0]}, {bounds[1]}]",
                            bool(bounds[0] <= q <= bounds[1])))

    def ks(name: str, sample: str, bound: float) -> None:
        a, b = real.samples[sample], sim.samples[sample]
        stat = ks_statistic(a, b)
        checks.append(Check(name, 0.0, stat, f"KS <= {bound}", stat <= bound))

    absdiff("spread one-tick share", "spread_1tick_frac", t["spread_1tick_frac_abs"])
    ratio("L1 size median", "l1_p50_lots", t["l1_median_ratio"])
    ks("L1 size KS", "l1", t["l1_ks"])
    ratio("trade size median", "trade_p50_lots", t["trade_median_ratio"])
    ks("trade size KS", "trade_qty", t["trade_ks"])
    ks("market-order size KS", "market_order_qty", t["market_order_ks"])
    absdiff("inter-trade 0 ms share", "trade_gap_zero_frac", t["trade_gap_zero_abs"])
    ks("inter-trade gap KS (>0 ms)", "trade_gap_pos_ms", t["trade_gap_ks"])
    ratio("trades per second", "trades_per_s", t["trades_per_s_ratio"])
    ratio("market-order Fano factor 1 s", "market_order_fano_1s", t["mo_fano_1s_ratio"])
    return checks


def format_checks(checks: list[Check]) -> str:
    """The checks as a fixed-width text table, one line per check with ok / FAIL."""
    lines = [f"{'check':32s} {'real':>12s} {'sim':>12s}  tolerance"]
    for c in checks:
        real = "" if c.tolerance.startswith("KS") else f"{c.real:12.4g}"
        lines.append(f"{c.name:32s} {real:>12s} {c.sim:12.4g}  {c.tolerance}  {'ok' if c.ok else 'FAIL'}")
    return "\n".join(lines)
