"""Full backtest throughput and tick-to-decision latency on the reference BTCUSDT recording.

bot4: train a 500-tree depth-6 model on the first half (by time) of the recording, then time
bot4.backtest.run over the whole recording (book → features → model → strategy → risk → orders →
sim, in the core): events/s and the engine's tick_to_decision samples (p50/p99/p99.9).

nautilus_trader (optional; never installed by this benchmark): a BacktestEngine with a strategy that
reads the top of book, over the same L2 deltas, in the same run. Figures → build/perf/backtest.json.
Gates are generous (shared machines); the issue's targets are ≥ 40× nautilus' deltas/s and a
tick-to-decision p99.9 ≤ 10 µs.
"""

from __future__ import annotations

import importlib.util
import os
import time
from pathlib import Path

import numpy as np
import pytest

from bot4.perf import PerfManifest

PERF_DIR = Path(os.environ.get("BOT4_PERF_DIR", Path(__file__).resolve().parents[1] / "build" / "perf"))
N_TREES, DEPTH = 500, 6
MIN_EVENTS_PER_S = 1_000_000        # generous gate (target: >= 40 x 234k = 9.4 M/s)
MAX_P999_NS = 200_000               # generous gate (target: 10 us)

pytestmark = pytest.mark.skipif(importlib.util.find_spec("bot4.backtest") is None,
                                reason="bot4.backtest is not built yet")


@pytest.fixture(scope="module")
def manifest():
    m = PerfManifest(name="backtest")
    yield m
    path = m.write(PERF_DIR / "backtest.json")
    print(f"\nperf manifest written to {path}")


@pytest.fixture(scope="module")
def model_dir(reference_data, tmp_path_factory):
    from bot4.report.split import split_by_time
    from bot4.research.train import TrainConfig, train

    out = tmp_path_factory.mktemp("model")
    split = split_by_time(reference_data, 0.5, 1)
    train(split.train, TrainConfig(n_estimators=N_TREES, max_depth=DEPTH), out, progress=False)
    return out


def test_backtest_throughput_and_tick_to_decision(reference_data, model_dir, manifest):
    import bot4.backtest
    import bot4.models

    model = bot4.models.load(model_dir)
    bot4.backtest.run(reference_data, model, progress=False)          # warm-up
    best = None
    for _ in range(3):
        t = time.perf_counter()
        result = bot4.backtest.run(reference_data, model, progress=False)
        wall = time.perf_counter() - t
        if best is None or wall < best[1]:
            best = (result, wall)
    result, wall = best
    rate = manifest.add_throughput("bot4_backtest", result.events, wall, unit="events/s")
    manifest.add_throughput("bot4_backtest_engine_seconds", result.events, float(result.seconds),
                            unit="events/s")
    for stage, samples in result.latency_ns.items():
        manifest.add_latency(stage, np.asarray(samples))
    t2d = manifest.stages.get("tick_to_decision", {})
    manifest.notes.update({"file": "binance_hftbacktest/usdm/btcusdt_20240808.gz", "model": f"{N_TREES} trees, "
                           f"depth {DEPTH}", "decisions": int(len(result.decisions)),
                           "orders": int(len(result.orders)), "fills": int(len(result.fills)),
                           "book_deltas": int(len(reference_data.book))})
    print(f"\nbot4 backtest: {result.events:,} events in {wall:.3f} s = {rate / 1e6:.2f} M events/s; "
          f"tick_to_decision p50 {t2d.get('p50')} p99 {t2d.get('p99')} p99.9 {t2d.get('p999')} ns")
    assert result.events >= len(reference_data.book)
    assert rate >= MIN_EVENTS_PER_S, rate
    assert t2d.get("count", 0) > 0 and t2d["p999"] <= MAX_P999_NS, t2d


def _nautilus_rate(data) -> tuple[int, float]:
    """Deltas/s of nautilus_trader's BacktestEngine over the same L2 deltas, with a strategy that
    reads the top of book on every delta."""
    from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
    from nautilus_trader.model.currencies import USDT
    from nautilus_trader.model.data import BookOrder, OrderBookDelta
    from nautilus_trader.model.enums import AccountType, BookAction, BookType, OmsType, OrderSide
    from nautilus_trader.model.identifiers import Venue
    from nautilus_trader.model.objects import Money, Price, Quantity
    from nautilus_trader.test_kit.providers import TestInstrumentProvider
    from nautilus_trader.trading.strategy import Strategy

    spec = data.spec
    instrument = TestInstrumentProvider.btcusdt_perp_binance()
    iid = instrument.id
    book = data.book
    pp, sp = instrument.price_precision, instrument.size_precision
    deltas = []
    for i, r in enumerate(book):
        price = Price(float(r["price"]) * spec.tick_size, pp)
        size = Quantity(float(r["qty"]) * spec.lot_size, sp)
        action = BookAction.DELETE if r["qty"] == 0 else BookAction.UPDATE
        side = OrderSide.BUY if r["side"] == 0 else OrderSide.SELL
        deltas.append(OrderBookDelta(iid, action, BookOrder(side, price, size, 0), 0, i,
                                     int(r["ts_exchange"]), int(r["ts_local"])))

    class TopOfBook(Strategy):
        def on_start(self):
            self.subscribe_order_book_deltas(iid, BookType.L2_MBP)
            self.n = 0

        def on_order_book_deltas(self, _deltas):
            self.cache.order_book(iid).best_bid_price()
            self.n += 1

    engine = BacktestEngine(BacktestEngineConfig())
    engine.add_venue(Venue("BINANCE"), OmsType.NETTING, AccountType.MARGIN, [Money(1_000_000, USDT)],
                     book_type=BookType.L2_MBP)
    engine.add_instrument(instrument)
    engine.add_data(deltas)
    engine.add_strategy(TopOfBook())
    t = time.perf_counter()
    engine.run()
    return len(deltas), time.perf_counter() - t


def test_nautilus_trader_same_deltas(reference_data, manifest):
    if importlib.util.find_spec("nautilus_trader") is None:
        manifest.notes["nautilus_trader"] = ("not installed: no same-run comparison (the issue quotes "
                                             "~234k deltas/s for its BacktestEngine on this file)")
        pytest.skip("nautilus_trader not installed (optional benchmark extra)")
    n, seconds = _nautilus_rate(reference_data)
    rate = manifest.add_throughput("nautilus_backtest_engine", n, seconds, unit="deltas/s")
    manifest.notes["nautilus_trader"] = "measured in this run"
    ours = manifest.throughput.get("bot4_backtest", {}).get("rate")
    if ours:
        manifest.notes["speedup_vs_nautilus"] = ours / rate
        print(f"\nnautilus_trader: {rate / 1e3:.0f} k deltas/s; bot4 is {ours / rate:.1f}x")
