"""The other engines bot4's backtest is measured against, on the same recording, in the same run.

hftbacktest (numba `wait_next_feed` loop over its ROIVector market depth) and nautilus_trader
(BacktestEngine, L2_MBP book, a strategy reading best bid/ask). Both are optional: the `bench`
extra pins them and .ci/run installs it just before the benchmarks. Each harness here does the
same work as bot4's `top_of_book` strategy where the engine allows it: read the touch at the end of
every book message of the recording, sum bid + ask (ticks) over the two-sided reads (the checksum
`top_of_book` reports), and count the reads.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import time

import numpy as np

# Keep in sync with pyproject.toml [bench] (.ci/run installs that list).
PINS = {"nautilus_trader": "nautilus_trader==1.221.0", "hftbacktest": "hftbacktest==2.4.4"}


def missing(dist: str) -> str | None:
    """Why `dist` cannot run here (None when it imports): the note .ci/run leaves when installing the
    `bench` extra failed, else "not installed"."""
    if importlib.util.find_spec(dist) is not None:
        return None
    why = os.environ.get("BOT4_BENCH_NAUTILUS_NOTE")   # .ci/run: the whole extra failed to install
    return why or f"not installed (`pip install {PINS[dist]}`, the optional benchmark extra `bench`)"


def version(dist: str) -> str:
    return importlib.metadata.version(dist)


# ---------------------------------------------------------------- hftbacktest

TIMEOUT_NS = 1 << 62            # wait_next_feed never times out: it returns at a feed or the end
HBT_FEED, HBT_END = 2, 1        # wait_next_feed's return codes
I64_MIN, I64_MAX = -(1 << 63), (1 << 63) - 1   # best_bid_tick / best_ask_tick of an empty side


def hftbacktest_feed(raw_path) -> np.ndarray:
    """The recording converted by hftbacktest's own Binance USD-M converter (REST snapshot as a
    clear + snapshot rows, depth diffs and trades, local clock corrected and exchange/local event
    order set by hftbacktest's validation helpers)."""
    from hftbacktest.data.utils import binancefutures

    return binancefutures.convert(str(raw_path), buffer_size=4_000_000)


def hftbacktest_end_ts(feed: np.ndarray) -> int:
    from hftbacktest import LOCAL_EVENT

    return int(feed["local_ts"][(feed["ev"] & LOCAL_EVENT) != 0].max())


def hftbacktest_read_points(feed: np.ndarray, book: np.ndarray) -> np.ndarray:
    """hftbacktest's local timestamps of bot4's book messages (the points where `top_of_book` reads).

    hftbacktest shifts every local timestamp by one constant (its clock correction), so bot4's
    message times map by the shift measured on the REST snapshot, which both take from the same
    line. Messages bot4 drops as stale (diffs older than the snapshot) are fed to hftbacktest but
    not read there."""
    from hftbacktest import DEPTH_CLEAR_EVENT, DEPTH_EVENT, DEPTH_SNAPSHOT_EVENT, LOCAL_EVENT

    from bot4.events import FLAG_LAST, FLAG_SNAPSHOT

    ev = feed["ev"]
    kind = ev & 0xFF
    local_book = ((ev & LOCAL_EVENT) != 0) & np.isin(kind, [DEPTH_EVENT, DEPTH_SNAPSHOT_EVENT, DEPTH_CLEAR_EVENT])
    hbt_snapshot = feed["local_ts"][local_book & (kind == DEPTH_SNAPSHOT_EVENT)]
    ends = np.flatnonzero(book["flags"] & FLAG_LAST)
    bot4_snapshot = book["ts_local"][ends][(book["flags"][ends] & FLAG_SNAPSHOT) != 0]
    if hbt_snapshot.size == 0 or bot4_snapshot.size != 1:
        raise AssertionError(f"expected one REST snapshot: hftbacktest {hbt_snapshot.size} rows, bot4 {bot4_snapshot.size}")
    shift = int(hbt_snapshot.min()) - int(bot4_snapshot[0])
    points = np.sort(book["ts_local"][ends].astype(np.int64) + shift)
    messages = np.unique(feed["local_ts"][local_book])
    if np.unique(points).size != points.size or not np.isin(points, messages).all():
        raise AssertionError("bot4's book messages do not map one to one onto hftbacktest's")
    return points


_LOOP = None


def _touch_loop():
    """The numba loop, compiled once per process (hftbacktest's documented usage: an @njit function
    over the backtest object)."""
    global _LOOP
    if _LOOP is None:
        from numba import njit

        @njit(cache=False)
        def touch_loop(hbt, points, end_ts, timeout):
            j = 0
            feeds = reads = missed = one_sided = 0
            checksum = spread = 0
            rc = 0
            while True:
                rc = hbt.wait_next_feed(False, timeout)
                if rc != HBT_FEED and rc != HBT_END:
                    break
                feeds += rc == HBT_FEED
                # The end-of-data return comes after the last message is applied, with the clock
                # left at the message before it: that message's time is the data's last one.
                now = hbt.current_timestamp if rc == HBT_FEED else end_ts
                while j < points.size and points[j] < now:
                    missed += 1          # a message that did not come back on its own
                    j += 1
                if j < points.size and points[j] == now:
                    j += 1
                    depth = hbt.depth(0)
                    bid, ask = depth.best_bid_tick, depth.best_ask_tick
                    reads += 1
                    if bid != I64_MIN and ask != I64_MAX:
                        checksum += bid + ask
                        spread += ask - bid
                    else:
                        one_sided += 1
                if rc == HBT_END:
                    break
            return rc, feeds, reads, missed + (points.size - j), one_sided, checksum, spread

        _LOOP = touch_loop
    return _LOOP


def hftbacktest_roi(feed: np.ndarray, tick_size: float) -> tuple[float, float]:
    """ROIVector bounds: the 0.1% to 99.9% quantiles of the feed's prices widened by 10%. A few diffs
    of this file reach far from the touch (levels at 560 and 621,368); ROIVector drops levels
    outside its range by design, and the checksum against bot4 shows none of them reaches the touch."""
    px = feed["px"][feed["px"] > 0]
    lo, hi = np.quantile(px, [0.001, 0.999])
    return float(np.floor(lo * 0.9 / tick_size) * tick_size), float(np.ceil(hi * 1.1 / tick_size) * tick_size)


def hftbacktest_backtest(feed: np.ndarray, tick_size: float, lot_size: float, roi: tuple[float, float]):
    """A fresh ROIVector backtest over `feed`. No orders are sent: the latency, queue and fee models
    are required by the builder and never used."""
    from hftbacktest import BacktestAsset, ROIVectorMarketDepthBacktest

    asset = (BacktestAsset().data(feed).linear_asset(1.0).constant_order_latency(0, 0)
             .risk_adverse_queue_model().no_partial_fill_exchange().trading_value_fee_model(0.0, 0.0)
             .tick_size(tick_size).lot_size(lot_size).last_trades_capacity(0).roi_lb(roi[0]).roi_ub(roi[1]))
    return ROIVectorMarketDepthBacktest([asset])


def hftbacktest_touch(hbt, points: np.ndarray, end_ts: int) -> dict:
    """Runs the touch loop over a fresh backtest: wait_next_feed to the end of the data, reading
    best bid/ask ticks at `points` (local timestamps of the book messages to read at); `end_ts` is
    the feed's last local timestamp."""
    rc, feeds, reads, missed, one_sided, checksum, spread = _touch_loop()(hbt, points, end_ts, TIMEOUT_NS)
    return {"rc": int(rc), "feeds": int(feeds), "reads": int(reads), "missed": int(missed),
            "one_sided": int(one_sided), "checksum": int(checksum), "spread_sum": int(spread)}


# ---------------------------------------------------------------- nautilus_trader

def nautilus_deltas(data, instrument) -> list:
    """Every L2 level change of `data` (book deltas only, file order) as nautilus OrderBookDeltas.
    qty 0 -> DELETE, else UPDATE (absolute size at the level); bot4's FLAG_LAST (end of one venue
    message) -> RecordFlag.F_LAST and FLAG_SNAPSHOT -> F_SNAPSHOT, except on the snapshot's last
    delta, which carries F_LAST alone: nautilus' delta buffer (DataEngineConfig.buffer_deltas) ends
    a message only at flags == F_LAST, and would merge the snapshot into the next message.
    ts_event = exchange time; ts_init (nautilus' replay order) = exchange time too, because it is
    non-decreasing in this file while the recorder's local clock is not, and the engine sorts by
    ts_init: this keeps file order."""
    from decimal import Decimal

    from nautilus_trader.model.data import BookOrder, OrderBookDelta
    from nautilus_trader.model.enums import BookAction, OrderSide, RecordFlag
    from nautilus_trader.model.objects import Price, Quantity

    from bot4.events import BID, FLAG_LAST, FLAG_SNAPSHOT

    spec = data.spec
    assert Decimal(str(instrument.price_increment)) == Decimal(spec.tick_size), (instrument, spec)
    assert Decimal(str(instrument.size_increment)) == Decimal(spec.lot_size), (instrument, spec)
    tick, lot = float(Decimal(spec.tick_size)), float(Decimal(spec.lot_size))
    pp, sp = instrument.price_precision, instrument.size_precision
    iid = instrument.id
    f_last, f_snapshot = int(RecordFlag.F_LAST), int(RecordFlag.F_SNAPSHOT)
    deltas = []
    for ts_exchange, _ts_local, seq, price, qty, _inst, side, flags, _ in data.book.tolist():
        nflags = f_last if flags & FLAG_LAST else (f_snapshot if flags & FLAG_SNAPSHOT else 0)
        order = BookOrder(OrderSide.BUY if side == BID else OrderSide.SELL, Price(price * tick, pp),
                          Quantity(qty * lot, sp), 0)
        deltas.append(OrderBookDelta(iid, BookAction.DELETE if qty == 0 else BookAction.UPDATE, order,
                                     nflags, seq, ts_exchange, ts_exchange))
    return deltas


def nautilus_run(instrument, deltas, *, buffer_deltas: bool, bypass_logging: bool = True) -> dict:
    """One fresh BacktestEngine (simulated BINANCE venue with an L2_MBP book) over `deltas`, with a
    strategy that subscribes to the L2_MBP deltas and, in every on_order_book_deltas callback, reads
    best bid and best ask from the cached book and adds them (ticks) to a checksum. buffer_deltas=False
    (DataEngineConfig's default): one callback per delta; True: one per venue message (F_LAST), the
    points where bot4's top_of_book reads. Only engine.run() is timed."""
    from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
    from nautilus_trader.config import LoggingConfig
    from nautilus_trader.data.config import DataEngineConfig
    from nautilus_trader.model.currencies import USDT
    from nautilus_trader.model.enums import AccountType, BookType, OmsType
    from nautilus_trader.model.identifiers import Venue
    from nautilus_trader.model.objects import Money, Price
    from nautilus_trader.trading.strategy import Strategy

    iid = instrument.id
    tick_raw = Price(float(instrument.price_increment), instrument.price_precision).raw

    class TopOfBook(Strategy):
        def on_start(self):
            self.callbacks = self.one_sided = 0
            self.checksum_raw = self.spread_raw = 0
            self.bid = self.ask = None
            self.subscribe_order_book_deltas(iid, BookType.L2_MBP)

        def on_order_book_deltas(self, _deltas):
            book = self.cache.order_book(iid)
            self.bid, self.ask = bid, ask = book.best_bid_price(), book.best_ask_price()
            self.callbacks += 1
            if bid is None or ask is None:
                self.one_sided += 1
            else:
                self.checksum_raw += bid.raw + ask.raw
                self.spread_raw += ask.raw - bid.raw

    engine = BacktestEngine(BacktestEngineConfig(logging=LoggingConfig(bypass_logging=bypass_logging),
                                                 data_engine=DataEngineConfig(buffer_deltas=buffer_deltas)))
    try:
        engine.add_venue(Venue("BINANCE"), OmsType.NETTING, AccountType.MARGIN, [Money(1_000_000, USDT)],
                         book_type=BookType.L2_MBP)
        engine.add_instrument(instrument)
        engine.add_data(deltas)
        strategy = TopOfBook()
        engine.add_strategy(strategy)
        t = time.perf_counter()
        engine.run()
        seconds = time.perf_counter() - t
        book = engine.cache.order_book(iid)
        checksum, rem = divmod(strategy.checksum_raw, tick_raw)
        assert rem == 0, "a price off the tick grid"
        return {"seconds": seconds, "callbacks": strategy.callbacks, "one_sided": strategy.one_sided,
                "checksum": int(checksum), "spread_sum": int(strategy.spread_raw // tick_raw),
                "last_read": (str(strategy.bid), str(strategy.ask)),
                "update_count": int(book.update_count),
                "top": (str(book.best_bid_price()), str(book.best_bid_size()),
                        str(book.best_ask_price()), str(book.best_ask_size())),
                "levels": (len(book.bids()), len(book.asks()))}
    finally:
        engine.dispose()


class NautilusReference:
    """nautilus_trader's runs over the reference recording, made once per benchmark session and
    shared by the benchmark modules (each run takes seconds): `runs(buffer_deltas)` is the list of
    `nautilus_run` results, `best(buffer_deltas)` the fastest."""

    RUNS = 3   # fresh engines per configuration, as bot4 gets several rounds

    def __init__(self, data):
        from nautilus_trader.test_kit.providers import TestInstrumentProvider

        self.data = data
        self.instrument = TestInstrumentProvider.btcusdt_perp_binance()
        self.deltas = nautilus_deltas(data, self.instrument)        # built before any timing
        self._runs: dict[tuple[bool, bool], list[dict]] = {}

    def runs(self, buffer_deltas: bool, bypass_logging: bool = True, n: int | None = None) -> list[dict]:
        key = (buffer_deltas, bypass_logging)
        if key not in self._runs:
            self._runs[key] = [nautilus_run(self.instrument, self.deltas, buffer_deltas=buffer_deltas,
                                            bypass_logging=bypass_logging) for _ in range(n or self.RUNS)]
        return self._runs[key]

    def median_seconds(self, buffer_deltas: bool) -> float:
        return float(np.median([r["seconds"] for r in self.runs(buffer_deltas)]))
