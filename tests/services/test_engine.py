"""bot4.services.engine: frames in, contract messages out; bad frames are counted rejections;
a session's journal replayed through a fresh engine reproduces its orders bit for bit."""

from __future__ import annotations

import pytest
from paper_helpers import CONFIG, MODEL_DIR

from bot4 import contracts as c
from bot4.services.engine import EngineService, journal_frames, replay_journal
from bot4.services.feed import Feed
from bot4.services.session import run_paper
from bot4.sim import generate

SEED, EVENTS = 11, 20_000


@pytest.fixture(scope="module")
def data():
    return generate(seed=SEED, n_events=EVENTS)


def _frames(data, batch_events=512):
    feed = Feed([data], batch_events=batch_events)
    out = [(f.topic, f.frame) for f in feed.frames()]
    end = feed.end_frame()
    return out, (end.topic, end.frame)


def _engine(data, **kw):
    return EngineService(data.specs, l3=list(data.specs), model=MODEL_DIR, config=CONFIG, **kw)


def _run(data, frames):
    eng = _engine(data)
    out: list[tuple[bytes, bytes]] = []
    summary = eng.run_frames(frames, lambda t, f: out.append((t, bytes(f))))
    return eng, summary, [x for x in out if x[0] == c.EXECUTIONS]


def test_bad_frames_are_counted_rejections(data):
    frames, end = _frames(data)
    _, _, clean = _run(data, [*frames, end])
    batch = c.Codec(c.MARKET).decode(frames[3][1])
    assert isinstance(batch, c.MarketBatch)
    short = c.BookBatch(seq=batch.seq, ts=batch.ts, dtype="BookEvent", count=batch.count + 1, data=batch.data,
                        watermark=batch.watermark)
    wrong_version = bytearray(frames[0][1])
    wrong_version[1 + len("book") + 1] = c.SCHEMA_VERSION + 1  # fixarray, fixstr tag, then v
    bad = [(c.MARKET, b""), (c.MARKET, b"\x93"), (c.MARKET, c.Codec(c.MARKET).encode(short)),
           (c.MARKET, bytes(wrong_version)), (c.MARKET, b"\x92\xa4book\x02")]
    eng, summary, got = _run(data, [*frames[:10], *bad, *frames[10:], end])
    rej = {k.removeprefix("md.rejected."): v for k, v in summary["counters"].items() if k.startswith("md.rejected.")}
    assert rej["truncated"] == 2 and rej["payload_size"] == 1 and rej["unknown_version"] == 1
    assert rej["invalid_field"] == 1 and sum(rej.values()) == len(bad)
    assert got == clean and len(clean) > 50  # identical orders and fills, frame for frame


def test_a_missing_batch_is_counted(data):
    frames, end = _frames(data)
    eng, summary, _ = _run(data, [*frames[:7], *frames[9:], end])
    assert summary["counters"]["seq_gaps"] == 1 and summary["counters"]["missed_batches"] == 2
    eng, summary, _ = _run(data, [*frames[:-1], end])  # the last batch lost: the end of stream tells
    assert summary["counters"]["seq_gaps"] == 0 and summary["counters"]["missed_batches"] == 1


def test_outputs_are_a_function_of_the_input_frames(data):
    frames, end = _frames(data)
    _, _, a = _run(data, [*frames, end])
    _, _, b = _run(data, [*frames, end])
    assert a == b
    # Other batch sizes give other frames in, the same orders out (the watermarks are exact).
    # (orders and fills each frame for frame; how they interleave within one time can differ).
    frames2, end2 = _frames(data, batch_events=5_000)
    _, _, d = _run(data, [*frames2, end2])
    assert len(frames2) < len(frames) / 3

    codec = c.Codec(c.EXECUTIONS)

    def by_type(frames):
        msgs = [(f, codec.decode(f)) for _, f in frames]
        return [f for f, m in msgs if isinstance(m, c.OrderEvent)], [f for f, m in msgs if isinstance(m, c.Fill)]
    assert by_type(d) == by_type(a) and all(by_type(a))
    assert sorted(d) == sorted(a)


@pytest.mark.parametrize("fsync", ["never", "every:100"])
def test_journal_replay_reproduces_the_orders_bit_for_bit(data, tmp_path, fsync):
    jdir = tmp_path / "journal"
    paper = run_paper(data, model=MODEL_DIR, config=CONFIG, journal=jdir, fsync=fsync, batch_events=700,
                      fault_frames={3: [b"\xc1"]})
    eng = paper.counters["engine"]
    assert eng["journal.records"] == eng["frames_in"] + eng["frames_out"]
    periodic = 0 if fsync == "never" else eng["journal.records"] // 100
    assert periodic <= eng["journal.fsyncs"] <= periodic + (0 if fsync == "never" else 2)  # + segment creation
    journaled = [x for x in journal_frames(jdir, "out") if x[0] == c.EXECUTIONS]
    assert len(journaled) == len(paper.orders) + len(paper.fills) > 50
    replayed = [x for x in replay_journal(jdir, _engine(data)) if x[0] == c.EXECUTIONS]
    assert replayed == journaled
    # ... and the journaled outputs are what went over the bus
    codec = c.Codec(c.EXECUTIONS)
    sent = [codec.decode(f) for _, f in journaled]
    assert [m for m in sent if isinstance(m, c.OrderEvent)] == paper.orders
    assert [m for m in sent if isinstance(m, c.Fill)] == paper.fills
    inputs = list(journal_frames(jdir, "in"))
    assert inputs[3] == (c.MARKET, b"\xc1")  # the fault frame, journaled where it arrived


def test_engine_needs_instruments():
    with pytest.raises(ValueError, match="instruments"):
        EngineService({})
    with pytest.raises(ValueError, match="lookahead"):
        EngineService({1: object()}, venue_lookahead_ns=-1)


def test_replay_of_the_journal_of_an_empty_stream(tmp_path, data):
    end = Feed([]).end_frame()
    eng = _engine(data, journal=tmp_path / "j")
    summary = eng.run_frames([(end.topic, end.frame)], lambda t, f: None)
    assert summary["counters"]["end_of_stream"] == 1 and summary["counters"]["core.decisions"] == 0
    assert list(journal_frames(tmp_path / "j", "in")) == [(end.topic, end.frame)]
