"""Live canary: a challenger run as a shadow in a paper session (run_paper(shadow=...),
`bot4 paper --shadow DIR`), judged against the champion on the session's own decisions.

The engine scores the shadow on the same feature row as the champion at every decision and never
trades it (bot4.services.engine), so the two models' outputs come in pairs. Each decision is
labelled by the direction of the mid price over `horizon_ns` after it (bot4.research.shadow: the
book rebuilt from the session's market data, the journal's own input frames by default; decisions
whose mid does not move, or whose horizon runs past the data, are left out). Both models get
Brier score, log-loss and AUC on the same labelled decisions (bot4.research.shadow.compare_scores,
the comparison a backtest's shadow scores get too).

The verdict is a paired t-test (bot4.models.abtest.paired_test) of the per-decision loss
differences, champion minus shadow (positive: the shadow is better), at a sample size fixed before
the session (no peeking: only the first n_required pairs count). The pairs are taken at decisions
at least one horizon apart: a label looks `horizon_ns` ahead, so the labels of closer decisions
share part of their window and their loss differences are correlated, which would make the paired
standard error too small. Neighbouring windows still share the market's own autocorrelation; the
test assumes it is weak at that spacing.

Decision per shadow slot: promote when the shadow's loss is lower (p < alpha), rollback (withdraw
the challenger) when it is higher, keep otherwise (no difference, or the fixed sample not reached).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from bot4 import contracts as c

DECISION_DTYPE = np.dtype([("ts", "<i8"), ("p", "<f8"), ("instrument", "<u4")])
SCORE_DTYPE = np.dtype([("ts", "<i8"), ("p", "<f8"), ("instrument", "<u4"), ("slot", "<u4")])


@dataclass(frozen=True)
class LiveCanary:
    """Champion against each shadow slot on one instrument's labelled decisions of a session."""

    instrument: int
    horizon_ns: int
    loss: str                   # the loss the paired test compares (LOSSES)
    n_decisions: int            # decisions of the session (this instrument)
    n_labelled: int             # with a mid move over the horizon
    n_spaced: int               # labelled decisions at least one horizon apart (the test's pairs)
    champion: dict[str, float]  # brier, log_loss, auc over the labelled decisions
    shadows: dict[int, dict[str, float]] = field(default_factory=dict)  # slot -> metrics
    tests: dict[int, dict[str, Any]] = field(default_factory=dict)      # slot -> paired_test result
    decisions: dict[int, str] = field(default_factory=dict)            # slot -> promote / keep / rollback
    reasons: dict[int, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """JSON-ready dict (what `bot4 models canary --session DIR --json` prints)."""
        return {"instrument": self.instrument, "horizon_ns": self.horizon_ns, "loss": self.loss,
                "n_decisions": self.n_decisions, "n_labelled": self.n_labelled, "n_spaced": self.n_spaced,
                "champion": self.champion, "shadows": {str(k): v for k, v in self.shadows.items()},
                "tests": {str(k): v for k, v in self.tests.items()},
                "decisions": {str(k): v for k, v in self.decisions.items()},
                "reasons": {str(k): v for k, v in self.reasons.items()}}


def _journal_dirs(journal: Path) -> list[Path]:
    """The engine journals of a session: the directory itself, or its shard-<k> directories."""
    if not journal.is_dir():
        raise FileNotFoundError(f"no session journal at {journal}")
    shards = sorted(p for p in journal.iterdir() if p.is_dir() and p.name.startswith("shard-"))
    return shards or [journal]


def session_scores(session: Any) -> tuple[np.ndarray, np.ndarray]:
    """(decisions, scores) of a paper session as arrays (DECISION_DTYPE, SCORE_DTYPE: the
    fields of the backtest's result.decisions and result.scores): from a PaperResult (its
    scored_decisions and scores), or from a session's journal directory (the DECISIONS frames the
    engine sent, decoded; a frame that does not decode is an error, as the journal is the record)."""
    if isinstance(session, (str, os.PathLike)):
        from bot4.services.engine import journal_frames

        codec = c.Codec(c.DECISIONS)
        decs: list[Any] = []
        scores: list[Any] = []
        for d in _journal_dirs(Path(session)):
            for topic, frame in journal_frames(d, "out"):
                if not bytes(topic).startswith(c.DECISIONS):
                    continue
                msg = codec.decode_strict(frame)
                (scores if isinstance(msg, c.ShadowScore) else decs).append(msg)
    else:
        decs, scores = list(session.scored_decisions), list(session.scores)
    return (np.array([(m.ts, m.p, m.instrument) for m in decs], DECISION_DTYPE),
            np.array([(m.ts, m.p, m.instrument, m.slot) for m in scores], SCORE_DTYPE))


def journal_market_data(journal: str | os.PathLike[str]) -> Any:
    """The market data a session's engine took in, rebuilt from its journal's input frames (book
    and L3 batches; the feed's order): what bot4.research.shadow.mid_path needs (book, orders,
    specs by instrument id)."""
    from bot4.events import BOOK_EVENT, ORDER_EVENT
    from bot4.services.engine import journal_frames

    codec = c.Codec(c.MARKET)
    book: list[np.ndarray] = []
    orders: list[np.ndarray] = []
    for topic, frame in journal_frames(_journal_dirs(Path(journal))[0], "in"):
        if not bytes(topic).startswith(c.MARKET):
            continue
        msg = codec.decode_strict(frame)
        if isinstance(msg, c.BookBatch):
            book.append(np.array(c.unpack(msg)))
        elif isinstance(msg, c.L3Batch):
            orders.append(np.array(c.unpack(msg)))
    b = np.concatenate(book) if book else np.zeros(0, BOOK_EVENT)
    o = np.concatenate(orders) if orders else np.zeros(0, ORDER_EVENT)
    ids = np.unique(np.concatenate([b["instrument"], o["instrument"]])).tolist()
    return SimpleNamespace(book=b, orders=o, specs=dict.fromkeys(int(i) for i in ids))


def live_canary(session: Any, data: Any = None, *, horizon_ns: int = 5_000_000_000, instrument: int | None = None,
                n_required: int = 100, alpha: float = 0.05, loss: str = "log_loss") -> LiveCanary:
    """Judge the shadow models of a paper session against its champion (module docstring).

    session: a PaperResult of run_paper(shadow=...) or the session's journal directory. data: the
    market data the labels come from (MarketData or a recording path); default: rebuilt from the
    journal (a PaperResult needs `data` unless it was journaled). horizon_ns: label horizon.
    instrument: which one (default: the only one). n_required, alpha: the fixed number of pairs
    and the level of the paired test. loss: "log_loss" or "brier"."""
    from bot4.research.shadow import LOSSES, compare_scores

    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")
    dec, sc = session_scores(session)
    if not sc.size:
        raise ValueError("the session has no shadow scores: run it with a shadow model (run_paper shadow=, "
                         "bot4 paper --shadow DIR)")
    if data is None:
        journal = session if isinstance(session, (str, os.PathLike)) else getattr(session, "journal", None)
        if journal is None:
            raise ValueError("the labels need the session's market data: pass data= or journal the session")
        data = journal_market_data(journal)
    elif isinstance(data, (str, os.PathLike)):
        from bot4.data import load

        data = load(Path(data))
    rep = compare_scores(dec, sc, data, horizon_ns, instrument, n_required, alpha, loss)
    out = LiveCanary(instrument=rep.instrument, horizon_ns=rep.horizon_ns, loss=loss, n_decisions=rep.n_decisions,
                     n_labelled=rep.n_labelled, n_spaced=rep.n_spaced, champion=rep.champion, shadows=rep.shadows,
                     tests=rep.ab)
    for s, res in rep.ab.items():
        out.decisions[s], out.reasons[s] = _verdict(res, loss)
    return out


def _verdict(res: dict, loss: str) -> tuple[str, str]:
    n = res["n_required"]
    if res["decision"] == "b_better":
        return "promote", f"shadow's {loss} lower (paired t {res['statistic']:.3f}, p {res['pvalue']:.4g} on {n} pairs)"
    if res["decision"] == "a_better":
        return "rollback", (f"shadow's {loss} higher (paired t {res['statistic']:.3f}, p {res['pvalue']:.4g} "
                            f"on {n} pairs)")
    if res["decision"] == "insufficient_sample":
        return "keep", f"fixed sample not reached ({res['n_a']} of {n} pairs one horizon apart)"
    if res["statistic"] is None:
        return "keep", f"the two models' losses are identical on the first {n} pairs"
    return "keep", f"no difference (p {res['pvalue']:.4g} on {n} pairs)"
