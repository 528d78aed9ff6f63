"""Crash recovery: the engine process killed with SIGKILL mid-session and started again carries
on from its journal, the feed replaying what it missed and the venue answering its repeated
exchanges once. The session's orders, fills and P&L equal one backtest's, the venue saw every
order exactly once, at kill points spread over the whole session (chosen by how much the engine
had journaled, so each kill lands mid-run)."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest
from paper_helpers import CONFIG, MODEL_DIR, assert_same_as_backtest, journal_size

from bot4.backtest import run
from bot4.services.session import run_paper
from bot4.sim import generate

SEED, EVENTS = 7, 10_000  # the pinned model has placed all 156 requests by then (as at 30,000)
KW = dict(seed=SEED, n_events=EVENTS, part_events=4_000, model=MODEL_DIR, config=CONFIG, processes=True,
          venue_service=True, control=None)


@pytest.fixture(scope="module")
def whole():
    return run(generate(seed=SEED, n_events=EVENTS), MODEL_DIR, config=CONFIG, progress=False)


@pytest.fixture(scope="module")
def journal_bytes(tmp_path_factory):
    """How much a whole session journals (the kill points are fractions of it)."""
    d = tmp_path_factory.mktemp("full") / "journal"
    run_paper(None, journal=d, **KW)
    return journal_size(d)


class _Killer:
    """Kills each engine process it is told about once the journal holds `at[i]` bytes."""

    def __init__(self, journal: Path, at: list[int]):
        self.journal, self.at, self.killed = journal, list(at), []
        self._stop = threading.Event()

    def __call__(self, pid: int) -> None:
        if len(self.killed) < len(self.at):
            threading.Thread(target=self._watch, args=(pid, self.at[len(self.killed)]), daemon=True).start()

    def _watch(self, pid: int, at: int) -> None:
        while not self._stop.is_set():
            if journal_size(self.journal) >= at:
                try:
                    os.kill(pid, signal.SIGKILL)
                    self.killed.append(journal_size(self.journal))
                except ProcessLookupError:
                    pass
                return
            self._stop.wait(0.005)

    def stop(self) -> None:
        self._stop.set()


# Early, late, and twice in one session (each case is a whole multi-process session: CI time).
@pytest.mark.parametrize("fractions", [[0.15], [0.85], [0.3, 0.7]], ids=["15%", "85%", "twice-30%-70%"])
def test_kill_9_of_the_engine_loses_and_duplicates_nothing(whole, journal_bytes, tmp_path, fractions):
    jdir = tmp_path / "journal"
    killer = _Killer(jdir, [int(f * journal_bytes) for f in fractions])
    try:
        paper = run_paper(None, journal=jdir, restarts=len(fractions), on_engine_start=killer, **KW)
    finally:
        killer.stop()
    assert len(killer.killed) == len(fractions)  # every kill landed, mid-session
    assert paper.counters["supervisor"]["engine_restarts"] == len(fractions)
    assert paper.counters["collector"]["engine_restarts"] == len(fractions)
    assert_same_as_backtest(paper, whole)
    ven = paper.counters["venue"]
    # The venue saw each order once: as many requests and fills as the backtest's simulator.
    assert ven["sim.1.requests"] == whole.counters["sim_requests"] > 100
    assert ven["sim.1.fills"] == whole.fills.size
    assert ven["refused"] == 0
    eng = paper.counters["engine"]
    assert eng["recovery.last_md_seq"] >= 0 and eng["core.late_events"] == 0


def test_restarts_need_the_journal_and_the_venue_service():
    with pytest.raises(ValueError, match="journal"):
        run_paper(None, n_events=1_000, processes=True, venue_service=True, restarts=1)
    with pytest.raises(ValueError, match="venue_service"):
        run_paper(None, n_events=1_000, processes=True, journal="j", restarts=1)
