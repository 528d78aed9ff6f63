"""bot4.services.session.run_paper: feed -> engine over ZeroMQ at speed max gives what one
backtest over the same data gives (orders, fills, pnl), in threads over inproc and in processes
over ipc; injected malformed frames are counted rejections that change nothing."""

from __future__ import annotations

import pytest
from paper_helpers import CONFIG, MODEL_DIR, assert_same_as_backtest
from recordings import BTCUSDT, data_path

from bot4 import contracts as c
from bot4.backtest import run
from bot4.services.session import run_paper
from bot4.sim import generate

SEED, EVENTS = 7, 30_000


@pytest.fixture(scope="module")
def whole():
    return run(generate(seed=SEED, n_events=EVENTS), MODEL_DIR, config=CONFIG, progress=False)


def _engine_clean(paper) -> None:
    eng = paper.counters["engine"]
    assert eng["end_of_stream"] == 1 and eng["missed_batches"] == 0 and eng["seq_gaps"] == 0
    assert eng["end_acknowledged"] == 1  # the collector had every output frame
    assert paper.counters["feed"]["end_acknowledged"] == 1  # the engine had the end of stream
    assert eng["core.late_events"] == 0 and eng["core.sim_late_feed_events"] == 0
    assert eng["batches"] == paper.counters["feed"]["batches"] > 10
    assert eng["records_in"] == paper.counters["feed"]["records"]


@pytest.mark.parametrize("processes", [False, True], ids=["threads-inproc", "processes-ipc"])
def test_paper_at_speed_max_equals_the_backtest(whole, processes):
    paper = run_paper(None, seed=SEED, n_events=EVENTS, part_events=9_000, model=MODEL_DIR, config=CONFIG,
                      processes=processes)
    assert whole.orders.size > 100 and whole.fills.size > 10  # the comparison covers trading
    assert_same_as_backtest(paper, whole)
    _engine_clean(paper)
    assert not any(v for k, v in paper.counters["engine"].items() if k.startswith("md.rejected."))


def test_malformed_frames_are_counted_and_change_nothing(whole):
    good = c.Codec(c.MARKET).encode(c.EndOfStream(ts=1, seq=0))
    faults = {0: [b"\xc1garbage"], 5: [good[:-3]],
              40: [c.Codec(c.DECISIONS).encode(c.Decision(ts=1, instrument=1, p=0.5, target=0, action=0,
                                                           position=0))]}
    paper = run_paper(None, seed=SEED, n_events=EVENTS, part_events=9_000, model=MODEL_DIR, config=CONFIG,
                      fault_frames=faults)
    eng = paper.counters["engine"]
    assert paper.counters["feed"]["fault_frames"] == 3
    assert eng["md.rejected.malformed"] == 1 and eng["md.rejected.truncated"] == 1
    assert eng["md.rejected.wrong_tag"] == 1
    assert eng["frames_in"] == eng["batches"] + 3 + 1  # every batch, the faults, the end of stream
    assert_same_as_backtest(paper, whole)
    _engine_clean(paper)


def test_speed_is_checked_before_anything_starts():
    with pytest.raises(ValueError, match="speed"):
        run_paper(None, n_events=100, speed="fast")
    with pytest.raises(ValueError, match="speed"):
        run_paper(None, n_events=100, speed=0)


@pytest.mark.realdata
def test_paper_equals_the_backtest_on_btcusdt():
    from bot4.data import load

    path = data_path(*BTCUSDT)
    data = load(path)
    whole = run(data, MODEL_DIR, config=CONFIG, progress=False)
    paper = run_paper(path, model=MODEL_DIR, config=CONFIG)
    assert whole.fills.size > 10
    assert_same_as_backtest(paper, whole)
    _engine_clean(paper)


def test_a_session_writes_its_perf_manifest(whole, tmp_path):
    import json

    paper = run_paper(None, seed=SEED, n_events=EVENTS, part_events=9_000, model=MODEL_DIR, config=CONFIG,
                      venue_service=True, control=None, perf=tmp_path / "perf.json")
    assert_same_as_backtest(paper, whole)  # the timings sent beside the outputs change nothing
    m = json.loads(paper.perf.read_text())
    stages = m["stages"]
    assert stages["engine:tick_to_decision"]["count"] == whole.decisions.size
    assert stages["engine:batch"]["count"] == paper.counters["engine"]["batches"]
    assert stages["bus:engine<->venue"]["count"] == paper.counters["engine"]["venue_exchanges"]
    for s in stages.values():
        assert s["p50"] <= s["p95"] <= s["p99"] <= s["p999"]
    assert m["machine"]["cores"] >= 1 and m["machine"]["simd_active"]
