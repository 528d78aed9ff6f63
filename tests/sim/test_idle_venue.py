"""A simulated venue that is never sent a request does not replay the feed into its book: its
counters come from the book's checks alone (SimVenue::counters, VenueSimulator::counters_after),
and equal those of a venue that replays every event into its book (one sent a request at the first
decision, one at the last)."""
from __future__ import annotations

import numpy as np
import pytest

from bot4 import strategy as S
from bot4.backtest import run
from bot4.data.market_data import MarketData
from bot4.events import ASK, BID, BOOK_EVENT, FLAG_CLEAR, FLAG_LAST, FLAG_SNAPSHOT, TRADE_EVENT
from bot4.instrument import InstrumentSpec

SPEC = InstrumentSpec(instrument_id=1, symbol="TEST", venue="test", tick_size="0.1", lot_size="0.001")
BAD = 5  # rejections built into the stream below (the snapshot restarting the sequence is not one)


def _stream() -> MarketData:
    rows = []  # (ts, seq, side, price, qty, flags)
    seq = 0
    for k in range(200):
        ts = 1_000_000 * (k + 1)
        seq += 1
        rows.append((ts, seq, BID, 10_000 - k % 7, 5 + k % 3, 0))
        seq += 1
        rows.append((ts, seq, ASK, 10_010 + k % 5, 4 + k % 2, FLAG_LAST))
        if k == 20:
            rows.append((ts + 1, seq + 1, BID, 9_990, -3, FLAG_LAST))       # negative size
        if k == 40:
            rows.append((ts + 1, seq - 5, BID, 9_991, 2, FLAG_LAST))        # sequence regression
        if k == 60:
            rows.append((ts + 1, seq + 1, ASK, 0, 2, FLAG_LAST))            # non-positive price
        if k == 80:
            rows.append((ts + 1, seq + 1, 7, 10_020, 2, FLAG_LAST))         # unknown side
        if k == 100:                                                        # a snapshot restarts the sequence
            seq = 3
            rows.append((ts + 1, seq, BID, 9_995, 1, FLAG_SNAPSHOT | FLAG_CLEAR))
            rows.append((ts + 1, seq, ASK, 10_012, 1, FLAG_SNAPSHOT | FLAG_LAST))
        if k == 150:
            rows.append((ts + 1, 1, ASK, 10_013, 1, FLAG_LAST))             # regression after the restart
    book = np.zeros(len(rows), BOOK_EVENT)
    for i, (ts, sq, side, price, qty, flags) in enumerate(rows):
        book[i]["ts_exchange"], book[i]["ts_local"] = ts, ts + 50_000
        book[i]["seq"], book[i]["side"], book[i]["price"], book[i]["qty"] = sq, side, price, qty
        book[i]["flags"], book[i]["instrument"] = flags, 1
    trades = np.zeros(60, TRADE_EVENT)
    for i in range(trades.size):
        ts = 3_000_000 * (i + 1) + 500
        trades[i]["ts_exchange"], trades[i]["ts_local"] = ts, ts + 50_000
        trades[i]["price"], trades[i]["qty"], trades[i]["aggressor"] = 10_000 if i % 2 else 10_010, 1, 1 + i % 2
        trades[i]["instrument"] = 1
    return MarketData(specs={1: SPEC}, book=book, trades=trades, venue="test")


class RestsOnce(S.Strategy):
    """Rests one buy far below the book at decision `at` (never fills): the venue replays from then on."""

    def __init__(self, at):
        self.at, self.n = at, 0

    def on_decision(self, ctx):
        self.n += 1
        if self.n == self.at:
            ctx.submit("limit", "buy", price=9_980, qty=1)
        return None


@pytest.fixture(scope="module")
def data():
    return _stream()


def _sim(res) -> dict:
    return {k: v for k, v in res.counters.items() if k.startswith("sim_")}


def test_idle_venue_counts_rejections_as_a_replaying_one(data):
    idle = run(data, None, progress=False, strategy="top_of_book")
    assert idle.orders.size == 0 and idle.counters["sim_requests"] == 0
    ends = int(np.count_nonzero(data.book["flags"] & FLAG_LAST))
    for at in (1, ends):   # replays (almost) everything with an order working / everything at the end
        busy = run(data, None, progress=False, strategy=RestsOnce(at))
        assert busy.counters["sim_requests"] == 1 and busy.fills.size == 0
        assert {k: v for k, v in _sim(busy).items() if k != "sim_requests"} == \
            {k: v for k, v in _sim(idle).items() if k != "sim_requests"}
    assert idle.counters["sim_book_rejected"] == BAD
