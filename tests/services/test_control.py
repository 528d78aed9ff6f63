"""Control commands through the engine service: kill, flatten, pause/resume and status act
between pieces, are answered on CONTROL_REPLIES with the command's trace id, are journaled with
the market data, and a journal replay applies them at the same place."""
from __future__ import annotations

import pytest
from paper_helpers import CONFIG, MODEL_DIR

from bot4 import contracts as c
from bot4.services.engine import EngineService, replay_journal
from bot4.services.feed import Feed
from bot4.sim import generate

SEED, EVENTS = 11, 20_000
CTL = c.Codec(c.CONTROL)
# The kill switch's own triggers off, so a trip is the command's.
NO_TRIPS = {**CONFIG, "kill_switch": {"max_consecutive_rejects": 0, "max_drawdown": 1.0, "max_latency_ns": 0}}


@pytest.fixture(scope="module")
def data():
    return generate(seed=SEED, n_events=EVENTS)


def _frames(data):
    feed = Feed([data], batch_events=512)
    frames = [(f.topic, bytes(f.frame)) for f in feed.frames()]
    end = feed.end_frame()
    return frames, (end.topic, bytes(end.frame))


def _run(data, frames, **kw):
    eng = EngineService(data.specs, l3=list(data.specs), model=MODEL_DIR, config=NO_TRIPS, **kw)
    out: list[tuple[bytes, bytes]] = []
    summary = eng.run_frames(frames, lambda t, f: out.append((t, bytes(f))))
    return eng, summary, out


def _replies(out):
    dec = c.Codec(c.CONTROL_REPLIES)
    return [dec.decode(f) for t, f in out if t == c.CONTROL_REPLIES]


def test_kill_mid_session_flattens_and_stops_trading(data):
    frames, end = _frames(data)
    clean, _, _ = _run(data, [*frames, end])
    at = len(frames) // 3
    kill = (c.CONTROL, CTL.encode(c.Kill(trace=77, ts=1, reason="drill")))
    eng, summary, out = _run(data, [*frames[:at], kill, *frames[at:], end])
    r = eng.result
    assert r.kill_reason == "manual" and r.counters["commands"] == 1
    assert summary["counters"]["commands_applied"] == 1
    (reply,) = _replies(out)
    assert reply.trace == 77 and reply.ok and reply.command == "kill"
    # (the service hands the records out as messages; the result keeps the totals) the killed
    # run traded before the kill, sent far fewer orders than the clean run and ends flat
    killed, full = r.instruments[0], clean.result.instruments[0]
    assert 0 < killed["orders"] < full["orders"] // 2
    assert killed["position"] == 0 and r.counters["kill_switch_closes"] + r.counters["cancels_sent"] > 0
    assert clean.result.counters["commands"] == 0 and clean.result.kill_reason == "none"


def test_pause_resume_status_and_refusals(data):
    frames, end = _frames(data)
    at = len(frames) // 4
    cmds = [c.Pause(trace=1, ts=1), c.Status(trace=2, ts=1), c.Resume(trace=3, ts=1),
            c.Flatten(trace=4, ts=1, instrument=5), c.SetParameter(trace=5, ts=1, key="strategy.x", value=1)]
    ctl = [(c.CONTROL, CTL.encode(m)) for m in cmds]
    eng, summary, out = _run(data, [*frames[:at], *ctl[:2], *frames[at:2 * at], *ctl[2:], *frames[2 * at:], end])
    replies = {r.trace: r for r in _replies(out)}
    assert replies[1].ok and replies[2].ok and replies[3].ok
    assert replies[2].data["paused"] is True
    assert not replies[4].ok and "instrument" in replies[4].error
    assert not replies[5].ok and "not supported" in replies[5].error
    assert summary["counters"]["commands_applied"] == 3 and summary["counters"]["commands_refused"] == 2
    # a garbage control frame is a counted rejection, not a crash
    eng2, summary2, _ = _run(data, [*frames[:at], (c.CONTROL, b"\x93\x01"), *frames[at:], end])
    assert sum(v for k, v in summary2["counters"].items() if k.startswith("ctl.rejected.")) == 1


def test_paused_engine_sends_no_new_orders(data):
    frames, end = _frames(data)
    pause = (c.CONTROL, CTL.encode(c.Pause(trace=1, ts=1)))
    eng, _, out = _run(data, [pause, *frames, end])
    assert eng.result.instruments[0]["orders"] == 0  # the strategy was never called
    assert eng.result.counters["decisions"] > 1000  # decisions still made and recorded (action none)
    dec = c.Codec(c.DECISIONS)
    actions = {dec.decode(f).action for t, f in out if t == c.DECISIONS}
    assert actions == {0}


def test_journal_replay_applies_commands_at_the_same_place(data, tmp_path):
    frames, end = _frames(data)
    at = len(frames) // 2
    flat = (c.CONTROL, CTL.encode(c.Flatten(trace=9, ts=1)))
    _, _, out = _run(data, [*frames[:at], flat, *frames[at:], end], journal=tmp_path / "j", fsync="never")
    fresh = EngineService(data.specs, l3=list(data.specs), model=MODEL_DIR, config=NO_TRIPS)
    replayed = replay_journal(tmp_path / "j", fresh)
    keep = (c.EXECUTIONS, c.CONTROL_REPLIES)
    assert [x for x in replayed if x[0] in keep] == [x for x in out if x[0] in keep]
    assert fresh.result.counters["commands"] == 1
