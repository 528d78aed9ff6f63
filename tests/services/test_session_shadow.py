"""Shadow models in paper trading: the engine scores them beside the champion at every decision,
publishes each score as a ShadowScore on DECISIONS, and the session keeps them; the scores are
the backtest's (bot4.backtest.run shadow=) and the champion's trading does not change."""
from __future__ import annotations

import json
import shutil

import pytest
from paper_helpers import CONFIG, MODEL_DIR, assert_same_as_backtest

from bot4 import contracts as c
from bot4.backtest import run
from bot4.services.engine import EngineService, replay_journal
from bot4.services.feed import Feed
from bot4.services.session import run_paper
from bot4.sim import generate

SEED, EVENTS = 11, 20_000


@pytest.fixture(scope="module")
def data():
    return generate(seed=SEED, n_events=EVENTS)


def _alternative(tmp_path, name="alt", edit=None):
    """The pinned model with its sidecar edited (default: its trees without their calibration,
    so every p differs from the champion's)."""
    d = tmp_path / name
    shutil.copytree(MODEL_DIR, d)
    side = json.loads((d / "model.json").read_text())
    (edit or (lambda s: s.pop("calibration")))(side)
    (d / "model.json").write_text(json.dumps(side))
    return d


@pytest.fixture(scope="module")
def alt(tmp_path_factory):
    return _alternative(tmp_path_factory.mktemp("shadow"))


def _shrunk(side):
    """Calibration halfway to 0.5 (still monotone): a third model."""
    side["calibration"]["y"] = [0.5 + 0.5 * (y - 0.5) for y in side["calibration"]["y"]]


def _columns(msgs, names):
    return {n: [getattr(m, n) for m in msgs] for n in names}


def _assert_scores_equal(paper, whole):
    assert whole.scores is not None and whole.scores.size > 1000
    names = ("ts", "p", "instrument", "slot")
    got = _columns(paper.scores, names)
    for n in names:
        assert got[n] == whole.scores[n].tolist(), n
    # the champion's p at the same decisions, in the same order
    dec = _columns(paper.scored_decisions, ("ts", "p", "instrument"))
    for n in dec:
        assert dec[n] == whole.decisions[n].tolist(), n


def test_paper_shadow_scores_equal_the_backtest_and_leave_trading_unchanged(data, alt):
    whole = run(data, MODEL_DIR, CONFIG, progress=False, shadow=alt)
    plain = run(data, MODEL_DIR, CONFIG, progress=False)
    paper = run_paper(data, config=CONFIG, model=MODEL_DIR, shadow=alt)
    _assert_scores_equal(paper, whole)
    assert len(paper.scores) == len(paper.scored_decisions) == paper.decisions
    # scored, never traded: orders, fills and pnl are those of a run without the shadow
    assert_same_as_backtest(paper, plain)
    without = run_paper(data, config=CONFIG, model=MODEL_DIR)
    assert without.scores == [] and without.scored_decisions == []
    assert without.orders == paper.orders and without.fills == paper.fills and without.pnl == paper.pnl
    # the shadow is another model: its scores are not the champion's
    assert sum(s.p != d.p for s, d in zip(paper.scores, paper.scored_decisions)) > 0.9 * len(paper.scores)


def test_processes_session_with_two_shadows(data, alt, tmp_path):
    other = _alternative(tmp_path, "other", _shrunk)
    whole = run(data, MODEL_DIR, CONFIG, progress=False, shadow=[alt, other])
    paper = run_paper(data, config=CONFIG, model=MODEL_DIR, shadow=[str(alt), str(other)], processes=True,
                      timeout_s=120)
    _assert_scores_equal(paper, whole)
    assert sorted({s.slot for s in paper.scores}) == [1, 2]
    assert len(paper.scores) == 2 * paper.decisions


def test_engine_publishes_each_score_after_its_decision_and_replays(data, alt, tmp_path):
    feed = Feed([data], batch_events=512)
    frames = [(f.topic, bytes(f.frame)) for f in feed.frames()]
    end = feed.end_frame()
    frames.append((end.topic, bytes(end.frame)))
    svc = EngineService(data.specs, l3=list(data.specs), model=MODEL_DIR, config=CONFIG, shadow=alt,
                        journal=tmp_path / "j")
    out: list[tuple[bytes, bytes]] = []
    svc.run_frames(frames, lambda t, f: out.append((t, bytes(f))))
    codec = c.Codec(c.DECISIONS)
    msgs = [codec.decode(f) for t, f in out if t == c.DECISIONS]
    assert not any(isinstance(m, c.Rejection) for m in msgs)
    scores = [m for m in msgs if isinstance(m, c.ShadowScore)]
    assert len(scores) == sum(isinstance(m, c.Decision) for m in msgs) > 1000
    # in time order; at one time the decisions first, then their scores (one per decision)
    assert [m.ts for m in msgs] == sorted(m.ts for m in msgs)
    at: dict[int, list] = {}
    for m in msgs:
        at.setdefault(m.ts, []).append(m)
    for same in at.values():
        kinds = [isinstance(m, c.ShadowScore) for m in same]
        assert kinds == sorted(kinds)
        assert sorted(m.instrument for m in same if isinstance(m, c.Decision)) == \
            sorted(m.instrument for m in same if isinstance(m, c.ShadowScore))
    # deterministic: the journal replayed through a fresh engine with the same shadow
    fresh = EngineService(data.specs, l3=list(data.specs), model=MODEL_DIR, config=CONFIG, shadow=alt)
    again = replay_journal(tmp_path / "j", fresh)
    keep = (c.DECISIONS, c.EXECUTIONS, c.POSITIONS)
    assert [x for x in again if x[0] in keep] == [x for x in out if x[0] in keep]


def test_shadow_without_a_champion_or_with_other_features_is_refused(data, alt, tmp_path):
    with pytest.raises(ValueError, match="beside a champion"):
        run_paper(data, config=CONFIG, shadow=alt, control=None)
    other = _alternative(tmp_path, "window", lambda side: (side.pop("calibration"), side["features"].update(window=64)))
    with pytest.raises(ValueError, match="feature config"):
        run_paper(data, config=CONFIG, model=MODEL_DIR, shadow=other, control=None)
