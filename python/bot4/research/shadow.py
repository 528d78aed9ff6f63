"""Shadow evaluation: a challenger model scored by the engine on the same events and feature rows
as the champion (`bot4.backtest.run(..., shadow=challenger)`), never traded, compared afterwards
on what the market did next.

Each decision is labelled by the direction of the mid price over `horizon_ns` after it (the book
rebuilt from the same recording; decisions whose mid does not move, or whose horizon runs past
the data, are left out). Both models get Brier score, log-loss and AUC on the same labelled
decisions. Both are scored at the same decisions, so the A/B test is paired (fixed sample,
METHODS §11, bot4.models.abtest.paired_test): the per-decision loss differences, on decisions at
least one horizon apart. Closer decisions' labels share part of their window, their differences
would be correlated and the paired standard error too small; neighbouring windows still share
the market's own autocorrelation, which the test assumes weak at that spacing. The same
comparison runs on a paper session's scores (compare_scores; bot4.models.live_canary).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bot4.events import NO_ASK_PRICE, NO_BID_PRICE

EPS = 1e-6  # probabilities clipped to [EPS, 1 - EPS] for the log-loss
#: The per-decision losses the paired test compares.
LOSSES = ("log_loss", "brier")


@dataclass(frozen=True)
class ShadowReport:
    """Champion (slot 0) against each shadow slot on the same labelled decisions."""

    horizon_ns: int
    n_decisions: int           # decisions of the run (instrument filtered)
    n_labelled: int            # with a mid move over the horizon
    champion: dict[str, float]  # brier, log_loss, auc
    shadows: dict[int, dict[str, float]] = field(default_factory=dict)  # slot -> metrics
    ab: dict[int, dict[str, Any]] = field(default_factory=dict)         # slot -> paired_test result
    instrument: int = -1
    n_spaced: int = 0          # labelled decisions at least one horizon apart (the test's pairs)
    loss: str = "log_loss"     # the per-decision loss the test compares

    def as_json(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {"horizon_ns": self.horizon_ns, "n_decisions": self.n_decisions, "n_labelled": self.n_labelled,
                "instrument": self.instrument, "n_spaced": self.n_spaced, "loss": self.loss,
                "champion": self.champion, "shadows": {str(k): v for k, v in self.shadows.items()},
                "ab": {str(k): v for k, v in self.ab.items()}}


def mid_path(data, instrument: int) -> tuple[np.ndarray, np.ndarray]:
    """(ts_local, mid in ticks as float) after every book event of `instrument`, from the book
    rebuilt in the core; NaN while the book is one-sided."""
    from bot4.replay import build_books

    l3 = data.orders.size > 0
    events = data.orders if l3 else data.book
    events = events[events["instrument"] == instrument]
    if not events.size:
        raise ValueError(f"no book events for instrument {instrument}")
    books = build_books(data)
    tops = books.apply(np.ascontiguousarray(events), np.arange(events.size, dtype=np.int64))
    bid = tops["bid_price"].astype(np.float64)
    ask = tops["ask_price"].astype(np.float64)
    mid = (bid + ask) / 2.0
    mid[(tops["bid_price"] == NO_BID_PRICE) | (tops["ask_price"] == NO_ASK_PRICE)] = np.nan
    return np.asarray(events["ts_local"], np.int64), mid


def direction_labels(decision_ts: np.ndarray, ts: np.ndarray, mid: np.ndarray, horizon_ns: int):
    """1 (mid up) / 0 (down) over `horizon_ns` after each decision, and a mask of the decisions
    with a label (mid known at both ends, not flat, horizon inside the data)."""
    if horizon_ns <= 0:
        raise ValueError(f"horizon_ns must be positive, got {horizon_ns}")
    at = np.searchsorted(ts, decision_ts, side="right") - 1
    later = np.searchsorted(ts, decision_ts + horizon_ns, side="right") - 1
    ok = (at >= 0) & (decision_ts + horizon_ns <= ts[-1])
    m0 = np.where(ok, mid[np.clip(at, 0, None)], np.nan)
    m1 = np.where(ok, mid[np.clip(later, 0, None)], np.nan)
    move = m1 - m0
    mask = np.isfinite(move) & (move != 0)
    return (move > 0).astype(np.int8), mask


def _metrics(p: np.ndarray, y: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import roc_auc_score

    q = np.clip(p, EPS, 1 - EPS)
    ll = -(y * np.log(q) + (1 - y) * np.log(1 - q))
    auc = float(roc_auc_score(y, p)) if 0 < y.sum() < y.size else float("nan")
    return {"brier": float(np.mean((p - y) ** 2)), "log_loss": float(ll.mean()), "auc": auc}


def _spaced(ts: np.ndarray, gap: int) -> np.ndarray:
    """Indices of decisions at least `gap` ns apart, greedily from the first."""
    keep, last = [], None
    for i, t in enumerate(ts):
        if last is None or t - last >= gap:
            keep.append(i)
            last = t
    return np.asarray(keep, np.int64)


def compare(result, data, horizon_ns: int = 5_000_000_000, instrument: int | None = None,
            n_required: int = 100, alpha: float = 0.05, loss: str = "log_loss") -> ShadowReport:
    """Champion against shadows for one run of bot4.backtest.run(..., shadow=...) on `data`
    (compare_scores on its decisions and scores)."""
    if result.scores is None or not result.scores.size:
        raise ValueError("the run has no shadow scores: run it with shadow=MODEL")
    return compare_scores(result.decisions, result.scores, data, horizon_ns, instrument, n_required, alpha, loss)


def decision_losses(p: np.ndarray, y: np.ndarray, loss: str = "log_loss") -> np.ndarray:
    """Per-decision loss of probabilities `p` against labels `y` (0/1): "log_loss" (p clipped to
    [EPS, 1 - EPS]) or "brier"."""
    if loss == "brier":
        return (p - y) ** 2
    if loss != "log_loss":
        raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")
    q = np.clip(p, EPS, 1 - EPS)
    return -(y * np.log(q) + (1 - y) * np.log(1 - q))


def compare_scores(decisions: np.ndarray, scores: np.ndarray, data, horizon_ns: int = 5_000_000_000,
                   instrument: int | None = None, n_required: int = 100, alpha: float = 0.05,
                   loss: str = "log_loss") -> ShadowReport:
    """Champion (the decisions' p) against each shadow slot (scores: ts, p, instrument, slot, one
    per decision per slot, as bot4.backtest's result.scores or a paper session's) on `data`.

    horizon_ns: label horizon (default 5 s). instrument: which one (default: the only one).
    n_required, alpha: the fixed number of pairs and the level of the paired test of per-decision
    `loss` ("log_loss" or "brier"; b = the shadow, "b_better" means its loss is lower), on
    decisions at least one horizon apart so that no two pairs share a label window."""
    from bot4.models.abtest import paired_test

    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")
    if not scores.size:
        raise ValueError("no shadow scores to compare")
    ids = sorted(int(i) for i in np.unique(decisions["instrument"]))
    if instrument is None:
        if len(ids) != 1:
            raise ValueError(f"several instruments in the run ({ids}); pass instrument=")
        instrument = ids[0]
    dec = decisions[decisions["instrument"] == instrument]
    sc = scores[scores["instrument"] == instrument]
    if not dec.size:
        raise ValueError(f"no decision of instrument {instrument} (the run has {ids})")
    ts_dec = np.asarray(dec["ts"], np.int64)
    ts, mid = mid_path(data, instrument)
    y, mask = direction_labels(ts_dec, ts, mid, int(horizon_ns))
    p0 = np.asarray(dec["p"], np.float64)
    mask &= np.isfinite(p0)
    slots = sorted(int(s) for s in np.unique(sc["slot"]))
    per_slot = {}
    for s in slots:
        mine = sc[sc["slot"] == s]
        if mine.size != dec.size or not np.array_equal(np.asarray(mine["ts"], np.int64), ts_dec):
            raise ValueError(f"slot {s}: {mine.size} scores do not pair with the {dec.size} decisions")
        per_slot[s] = np.asarray(mine["p"], np.float64)
        mask &= np.isfinite(per_slot[s])
    if not mask.any():
        raise ValueError("no decision has a label (mid never moved over the horizon, or the data is too short)")
    yl = y[mask].astype(np.float64)
    spaced = _spaced(ts_dec[mask], int(horizon_ns))
    report = ShadowReport(horizon_ns=int(horizon_ns), n_decisions=int(dec.size), n_labelled=int(mask.sum()),
                          champion=_metrics(p0[mask], yl), instrument=int(instrument), n_spaced=int(spaced.size),
                          loss=loss)
    # paired_test's b is better when its mean is higher: compare negative losses
    la = -decision_losses(p0[mask][spaced], yl[spaced], loss)
    for s, ps in per_slot.items():
        report.shadows[s] = _metrics(ps[mask], yl)
        lb = -decision_losses(ps[mask][spaced], yl[spaced], loss)
        if la.size >= n_required and np.array_equal(la[:n_required], lb[:n_required]):
            # the same losses on every pair (the champion as its own shadow): no difference, and
            # no t statistic (the differences have no spread)
            report.ab[s] = {"decision": "no_difference", "n_required": int(n_required), "n_a": int(la.size),
                            "n_b": int(lb.size), "statistic": None, "df": None, "pvalue": None, "mean_diff": 0.0,
                            "ci": None, "alpha": alpha, "test": "paired"}
        else:
            report.ab[s] = paired_test(la, lb, n_required=n_required, alpha=alpha).to_dict()
    return report
