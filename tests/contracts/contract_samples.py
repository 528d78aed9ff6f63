"""One fixed sample of every bus message type (the golden frames in golden/ are their encodings).

Values are spelled out, not generated, so the golden bytes change only when the schema does."""

from __future__ import annotations

import numpy as np

from bot4 import contracts as c
from bot4 import events
from bot4.config import RiskConfig

TRACE = 0x0123456789ABCDEF
TS = 1_700_000_000_123_456_789


def _book() -> np.ndarray:
    a = np.zeros(3, events.BOOK_EVENT)
    a["ts_exchange"] = [TS, TS + 1, TS + 2]
    a["ts_local"] = a["ts_exchange"] + 500
    a["seq"] = [10, 11, 12]
    a["price"] = [6_500_000, 6_500_010, 6_499_990]
    a["qty"] = [12, 0, 7]
    a["instrument"] = 1
    a["side"] = [events.BID, events.ASK, events.BID]
    a["flags"] = [0, 0, events.FLAG_LAST]
    return a


def _trades() -> np.ndarray:
    a = np.zeros(2, events.TRADE_EVENT)
    a["ts_exchange"] = [TS, TS + 3]
    a["ts_local"] = a["ts_exchange"] + 400
    a["seq"] = [20, 21]
    a["price"] = [6_500_000, 6_500_010]
    a["qty"] = [3, 1]
    a["instrument"] = 1
    a["aggressor"] = [events.BID, events.ASK]
    a["flags"] = events.FLAG_LAST
    return a


def _l3() -> np.ndarray:
    a = np.zeros(2, events.ORDER_EVENT)
    a["ts_exchange"] = [TS, TS + 1]
    a["ts_local"] = a["ts_exchange"] + 300
    a["seq"] = [30, 31]
    a["order_id"] = [9001, 9001]
    a["price"] = 6_500_000
    a["qty"] = [5, 0]
    a["instrument"] = 2
    a["side"] = events.ASK
    a["action"] = [events.ACTION_ADD, events.ACTION_CANCEL]
    a["flags"] = [0, events.FLAG_LAST]
    return a


def _bbo() -> np.ndarray:
    a = np.zeros(1, events.BBO_EVENT)
    a["ts_exchange"] = TS
    a["ts_local"] = TS + 200
    a["seq"] = 40
    a["bid_price"], a["bid_qty"], a["ask_price"], a["ask_qty"] = 6_499_990, 7, 6_500_010, 4
    a["instrument"] = 1
    a["flags"] = events.FLAG_LAST
    return a


def _venue_requests() -> np.ndarray:
    a = np.zeros(2, events.VENUE_REQUEST)
    a["sent_local"] = [TS, TS + 5]
    a["clock_offset"] = [1_270_000_000, 1_269_999_000]
    a["id"] = [77, 77]
    a["price"] = [6_500_000, 6_499_990]
    a["qty"] = [2, 3]
    a["instrument"] = 1
    a["kind"] = [0, 2]
    a["type"] = 0
    a["reduce_only"] = [0, 1]
    return a


def _venue_responses() -> np.ndarray:
    a = np.zeros(2, events.VENUE_RESPONSE)
    a["venue_ts"] = [TS - 1_270_000_000, TS - 1_269_000_000]
    a["local_ts"] = [TS + 900, TS + 1_000_900]
    a["id"] = 77
    a["price"] = 6_500_000
    a["qty"] = [2, 1]
    a["fee"] = [0.0, -0.0125]
    a["instrument"] = 1
    a["kind"] = [0, 1]
    a["maker"] = [0, 1]
    return a


def samples() -> dict[str, c.Message]:
    """tag -> the sample of that message type."""
    out: list[c.Message] = [
        c.pack(c.BookBatch, _book(), seq=1, ts=TS, trace=TRACE, watermark=TS - 1_000),
        c.pack(c.TradeBatch, _trades(), seq=2, ts=TS, trace=TRACE, watermark=TS - 1_000),
        c.pack(c.L3Batch, _l3(), seq=3, ts=TS, trace=TRACE, watermark=TS - 1_000),
        c.pack(c.BboBatch, _bbo(), seq=4, ts=TS, trace=TRACE, watermark=TS - 1_000),
        c.EndOfStream(ts=TS, seq=5, trace=TRACE),
        c.Decision(ts=TS, instrument=1, p=0.625, target=1, action=1, position=-3, trace=TRACE),
        c.ShadowScore(ts=TS, instrument=1, slot=2, p=0.4375, trace=TRACE),
        c.OrderIntent(ts=TS, id=77, instrument=1, side=0, type=0, price=6_500_000, qty=2, reduce_only=False,
                      role=1, group=77, trace=TRACE),
        c.CancelIntent(ts=TS, id=77, instrument=1, trace=TRACE),
        c.ReplaceIntent(ts=TS, id=77, instrument=1, price=6_499_990, qty=3, trace=TRACE),
        c.OrderEvent(ts=TS, id=77, instrument=1, side=0, price=6_500_000, qty=2, filled=1, type=0, status=2,
                     kind=3, role=1, reason=0, flags=1, trace=TRACE),
        c.Fill(ts=TS, id=77, exec_id=123_456_789, instrument=1, side=0, price=6_500_000, qty=1, fee=-0.0125,
               maker=True, role=1, trace=TRACE),
        c.Position(ts=TS, instrument=1, position=-3, realised=12.5, unrealised=-1.25, fees=0.375, equity=10.875,
                   total_equity=10_010.875, trace=TRACE),
        c.Kill(ts=TS, reason="drawdown limit", trace=TRACE),
        c.Flatten(ts=TS, instrument=2, trace=TRACE),
        c.Pause(ts=TS, instrument=None, trace=TRACE),
        c.Resume(ts=TS, instrument=1, trace=TRACE),
        c.SwapModel(ts=TS, path="models/v2", sha256="ab" * 32, trace=TRACE),
        c.RefreshWeights(ts=TS, trace=TRACE),
        c.SetParameter(ts=TS, key="strategy.long_threshold", value=0.61, trace=TRACE),
        c.ConfigUpdate(ts=TS, risk=RiskConfig(), trace=TRACE),
        c.Status(ts=TS, trace=TRACE),
        c.CommandReply(ts=TS, command="set", ok=False, error="strategy.long_threshold: must be <= 1",
                       data={"position": -3, "paused": False}, trace=TRACE),
        c.Heartbeat(ts=TS, service="engine", instance=4242, seq=17, state="running",
                    counters={"md.conflated": 3, "rejected.truncated": 0}, trace=TRACE),
        c.pack(c.PerfSample, np.array([850, 910, 1_020, 15_000], "<i8"), seq=5, ts=TS, trace=TRACE,
               service="engine", stage="strategy_risk"),
        c.EnrichmentRequest(ts=TS, key="funding:BTCUSDT", timeout_ns=2_000_000_000, trace=TRACE),
        c.Enrichment(ts=TS, key="funding:BTCUSDT", ok=True, value=0.0001, ttl_ns=60_000_000_000,
                     latency_ns=1_500_000_000, trace=TRACE),
        c.JournalEntry(ts=TS, seq=9, service="venue", direction="in", topic=c.ORDER_REQUESTS,
                       frame=memoryview(b"\x93\xa6cancel\x01"), trace=TRACE),
        c.Signal(ts=TS, instrument=1, agent="ofi", model_version="ab12cd34", mu=0.75, sigma=2.5, q10=-2.5,
                 q50=0.75, q90=3.875, horizon=100, horizon_unit="rows", confidence=0.25, regime=2, trace=TRACE),
        c.pack(c.VenueRequests, _venue_requests(), seq=6, ts=TS, trace=TRACE, instrument=1, now=TS + 10,
               clock_offset=1_269_999_000, md_seq=41, engine="engine-a"),
        c.pack(c.VenueResponses, _venue_responses(), seq=6, ts=TS, trace=TRACE, live=True),
        c.ReplayRequest(ts=TS, from_seq=41, max_frames=256, trace=TRACE),
    ]
    return {type(m).__struct_config__.tag: m for m in out}


def topic_of_type(tp: type) -> bytes:
    """The topic that carries message type `tp`."""
    for topic, union in c.TOPICS.items():
        if tp in (getattr(union, "__args__", None) or (union,)):
            return topic
    raise KeyError(tp)
