"""bot4.services.feed: every record sent once, in order, as batches whose watermarks hold for
everything that follows; pacing on the recording's clock; fault frames where asked."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import zmq
from hypothesis import given, settings
from hypothesis import strategies as st

from bot4 import contracts as c
from bot4.events import ORDER_EVENT
from bot4.services.feed import Feed, parse_speed, run_feed
from bot4.sim import generate, generate_parts

DATA = generate(seed=3, n_events=1_500)
FIELD = {c.BookBatch: "book", c.TradeBatch: "trades", c.L3Batch: "orders"}


def _decoded(feed):
    codec = c.Codec(c.MARKET)
    return [codec.decode_strict(f.frame) for f in feed.frames()]


def _keys(a: np.ndarray) -> np.ndarray:
    return np.maximum.accumulate(a["ts_local"].astype(np.int64))


def _check(msgs, data):
    got = {k: [] for k in FIELD.values()}
    for m in msgs:
        got[FIELD[type(m)]].append(c.unpack(m))
    for k, parts in got.items():  # each stream whole and in order, byte for byte
        assert np.concatenate(parts).tobytes() == getattr(data, k).tobytes()
    # the watermark contract: after batch i, every record still to come has a key >= its watermark
    keys = {k: _keys(getattr(data, k)) for k in FIELD.values()}
    sent = dict.fromkeys(keys, 0)
    last = -(2**63)
    for i, m in enumerate(msgs):
        assert m.seq == i and m.watermark >= last
        last = m.watermark
        sent[FIELD[type(m)]] += m.count
        for k, kk in keys.items():
            if sent[k] < kk.size:
                assert kk[sent[k]] >= m.watermark, (i, k)
    assert last == 2**63 - 1


@settings(max_examples=15, deadline=None)
@given(batch=st.integers(1, 3_000))
def test_batches_cover_the_streams_and_watermarks_hold(batch):
    _check(_decoded(Feed([DATA], batch_events=batch)), DATA)


def test_generator_parts_give_the_same_records():
    parts = list(generate_parts(seed=3, n_events=1_500, part_events=400))
    _check(_decoded(Feed(parts, batch_events=256)), DATA)


def test_fault_frames_go_where_asked_and_empty_streams_send_nothing():
    feed = Feed([DATA], batch_events=500, fault_frames={0: [b"x"], 2: [b"y", b"z"]})
    frames = [f.frame for f in feed.frames()]
    assert frames[0] == b"x" and frames[3:5] == [b"y", b"z"] and feed.faults_sent == 3
    empty = Feed([(DATA.book[:0], DATA.trades[:0], np.zeros(0, ORDER_EVENT))])
    assert list(empty.frames()) == []
    end = c.Codec(c.MARKET).decode_strict(empty.end_frame().frame)
    assert isinstance(end, c.EndOfStream) and end.seq == 0


def test_speed():
    assert parse_speed("max") is None and parse_speed("10") == 10.0 and parse_speed(0.5) == 0.5
    for bad in ("fast", "0", -1, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="speed"):
            parse_speed(bad)
    with pytest.raises(ValueError, match="batch_events"):
        Feed([DATA], batch_events=0)


def test_publish_is_paced_on_the_recording_clock():
    span = (max(int(DATA.orders["ts_local"].max()), int(DATA.trades["ts_local"].max()))
            - min(int(DATA.orders["ts_local"].min()), int(DATA.trades["ts_local"].min()))) / 1e9
    speed = span / 0.5  # the recording in about half a second
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 1_000)
    sub.setsockopt(zmq.SUBSCRIBE, c.MARKET)
    sub.connect("inproc://feed-pace")
    got: dict = {}
    t = threading.Thread(target=lambda: got.update(run_feed(ctx, "inproc://feed-pace", [DATA], speed=speed,
                                                            batch_events=200)))
    t0 = time.perf_counter()
    t.start()
    codec = c.Codec(c.MARKET)
    arrivals = []
    while True:
        msg = codec.decode_strict(sub.recv_multipart()[1])
        if isinstance(msg, c.EndOfStream):
            sub.setsockopt(zmq.UNSUBSCRIBE, c.MARKET)  # the acknowledgement the feed waits for
            break
        arrivals.append((time.perf_counter() - t0, int(c.unpack(msg)["ts_local"].max())))
    t.join()
    sub.close()
    ctx.term()
    first = arrivals[0]
    # never ahead of the schedule (a lower bound: a loaded machine can only make it later)
    for wall, ts in arrivals:
        assert wall - first[0] >= (ts - first[1]) / 1e9 / speed - 0.01
    assert got["batches"] == len(arrivals) > 20 and got["end_acknowledged"] == 1
