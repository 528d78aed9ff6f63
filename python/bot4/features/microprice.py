"""Stoikov (2018) micro-price: estimate the table g(I, S) that the core feature engine applies.

Reference: S. Stoikov, "The micro-price: a high-frequency estimator of future prices",
Quantitative Finance 18(12):1959-1966 (2018); METHODS.md section 4.3.

The micro-price is P_micro = M + g(I, S), where M is the mid, I = Qb/(Qb+Qa) the L1 imbalance and
S the spread, and g = sum_{i>=1} g^i with

    g^1(x)     = E[M_{tau_1} - M_t | state x]        (tau_1: the next mid-price change)
    g^{i+1}(x) = E[g^i(state at tau_1) | x].

Estimation (the model is a Markov chain on the discretised state x = (spread row, I bucket)):

1. Discretise. Snapshots that are not two-sided (an empty side, a zero size, a locked or crossed
   book) or whose spread exceeds ``n_spreads`` ticks are dropped *before* transitions are formed,
   as in Stoikov's notebook, so a transition may step over a dropped stretch and its mid change is
   the net change across it. Imbalance buckets are those of the core lookup
   (core/features/book_state_features.cpp): bucket = min(floor(I * n), n - 1), computed with the same
   double expression so the fitted table indexes exactly as the core will read it.
2. Transitions are between consecutive kept snapshots; the mid change dM is kept exactly, in
   half-ticks (mid = (bid + ask) / 2 with integer tick prices).
3. Symmetrise: every transition (x -> y, dM) gets a mirrored copy with the imbalance bucket
   b -> n-1-b at both ends (I -> 1-I) and dM -> -dM. The mirror is applied to bucket indices, which
   is I -> 1-I up to which side of a bucket edge a value exactly on the edge falls.
4. Count and normalise per origin state (maximum likelihood):
     Q[x, y] = P(next state y, mid unchanged | x)
     R[x, k] = P(mid moves by K[k] | x)
     T[x, y] = P(mid moves and next state is y | x)
   so each visited row satisfies sum_y Q + sum_k R = sum_y Q + sum_y T = 1.
   K is the sorted set of the nonzero mid changes observed (in ticks, multiples of 0.5).
5. g^1 = (I - Q)^{-1} R K, B = (I - Q)^{-1} T, g^{i+1} = B g^i, and g = g^1 + ... + g^iterations.

Decisions where the data do not determine g (documented here, tested in
tests/features/test_microprice.py):

* Large moves. As in Stoikov's notebook, transitions whose mid change exceeds one tick are dropped
  by default (``max_move_ticks=1.0``), so K = {-1, -0.5, +0.5, +1} ticks at most. In practice this keeps
  |g| within half the spread (an empirical property, not a theorem; the tests check it). On small-tick books (BTCUSDT at 0.1 USDT, and the simulator
  calibrated on it) most mid changes between book messages are larger than a tick, and the filter
  discards them; ``max_move_ticks=None`` keeps every move (K = every observed change), which on the
  simulator predicts the mid much better but gives |g| of tens of ticks, far outside the spread,
  and on the real BTCUSDT recording it was worse than the plain mid at some horizons.
* Singular I - Q. A state from which no mid change is reachable through the no-move transitions
  (for example a state seen only with mid-unchanged self-transitions) makes I - Q singular: for
  such a state the first-passage expectation g^1 is undefined. These states are found by graph
  reachability and excluded from the linear solve; on the remaining ("live") states I - Q is
  non-singular (every state reaches absorption). The solve itself uses ``numpy.linalg.lstsq``, which
  equals the exact inverse when I - Q is non-singular and cannot raise on an ill-conditioned one.
  Mass that a live state sends to a non-live state contributes nothing to g^1 (the mid never moves
  from there in the data), and such states have g^i = 0 while iterating.
* Unvisited states. States never observed as the origin of a transition, and non-live states,
  have no estimate. After the sum, their g is filled per spread row by linear interpolation in the
  bucket index between the nearest live buckets, and held constant beyond the outermost live bucket
  (numpy.interp). Symmetrisation makes the live set mirror-symmetric within a row, so the fill keeps
  g antisymmetric, and it cannot break monotonicity where the live values are monotone. A spread
  row with no live bucket is left at g = 0 (micro-price = mid): nothing is known there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from bot4.events import FLAG_LAST, NO_ASK_PRICE, NO_BID_PRICE
from bot4.features.config import MicropriceTable

DEFAULT_RESOURCE = "default_microprice.json"
DEFAULT_N_IMBALANCE = 10
DEFAULT_N_SPREADS = 2
DEFAULT_ITERATIONS = 6
DEFAULT_MAX_MOVE_TICKS = 1.0  # Stoikov's notebook: transitions with |dM| > 1 tick are dropped


@dataclass
class MicropriceFit:
    """Everything the estimation produced; ``table`` is what the core uses.

    States are indexed s = (spread - 1) * n_imbalance + bucket (the table's row-major order).
    """

    table: MicropriceTable
    K: np.ndarray           # mid-move sizes in ticks (sorted, nonzero)
    Q: np.ndarray           # (n, n) next state, mid unchanged
    R: np.ndarray           # (n, len(K)) mid moves by K[k]
    T: np.ndarray           # (n, n) next state after a mid move
    B: np.ndarray           # (n, n) (I - Q)^{-1} T on live states, 0 elsewhere
    g_terms: np.ndarray     # (iterations, n) g^1 .. g^iterations (before the fill)
    counts: np.ndarray      # (n,) transitions out of each state, after symmetrisation
    live: np.ndarray        # (n,) bool: a mid change is reachable from the state
    snapshots: int          # snapshots kept (two-sided, 1 <= spread <= n_spreads)
    transitions: int        # transitions used, before symmetrisation
    dropped_large_moves: int

    @property
    def g(self) -> np.ndarray:
        return np.asarray(self.table.g).reshape(self.table.n_spreads, self.table.n_imbalance)


def imbalance_buckets(bid_qty, ask_qty, n_imbalance: int) -> np.ndarray:
    """Bucket of I = Qb/(Qb+Qa) exactly as the core computes it (double arithmetic)."""
    qb = np.asarray(bid_qty, dtype=np.float64)
    qa = np.asarray(ask_qty, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        x = qb / (qb + qa) * n_imbalance
    return np.minimum(np.floor(x), n_imbalance - 1).astype(np.int64)


def _kept(bid, bid_qty, ask, ask_qty, n_spreads: int):
    bid = np.asarray(bid, dtype=np.int64)
    ask = np.asarray(ask, dtype=np.int64)
    bid_qty = np.asarray(bid_qty, dtype=np.int64)
    ask_qty = np.asarray(ask_qty, dtype=np.int64)
    if not (len(bid) == len(ask) == len(bid_qty) == len(ask_qty)):
        raise ValueError("bid, bid_qty, ask and ask_qty must have the same length")
    ok = (bid != NO_BID_PRICE) & (ask != NO_ASK_PRICE) & (bid_qty > 0) & (ask_qty > 0)
    spread = np.zeros(len(bid), dtype=np.int64)
    spread[ok] = ask[ok] - bid[ok]
    ok &= (spread >= 1) & (spread <= n_spreads)
    return bid[ok], bid_qty[ok], ask[ok], ask_qty[ok]


def _live_states(Q: np.ndarray, R: np.ndarray) -> np.ndarray:
    """States from which a mid change is reachable through no-move transitions."""
    live = R.sum(axis=1) > 0
    edges = Q > 0
    while True:
        grown = live | (edges & live[None, :]).any(axis=1)
        if (grown == live).all():
            return live
        live = grown


def fit_microprice_details(bid, bid_qty, ask, ask_qty, n_imbalance: int = DEFAULT_N_IMBALANCE,
                           n_spreads: int = DEFAULT_N_SPREADS, iterations: int = DEFAULT_ITERATIONS,
                           max_move_ticks: float | None = DEFAULT_MAX_MOVE_TICKS) -> MicropriceFit:
    """As fit_microprice, returning the estimated chain and the g^i terms too."""
    if n_imbalance < 1 or n_spreads < 1 or iterations < 1:
        raise ValueError("n_imbalance, n_spreads and iterations must be >= 1")
    bid, bid_qty, ask, ask_qty = _kept(bid, bid_qty, ask, ask_qty, n_spreads)
    n = n_imbalance * n_spreads
    bucket = imbalance_buckets(bid_qty, ask_qty, n_imbalance)
    row = ask - bid - 1
    state = row * n_imbalance + bucket
    mirror = row * n_imbalance + (n_imbalance - 1 - bucket)
    mid2 = bid + ask                                      # mid in half-ticks
    x, y, d2 = state[:-1], state[1:], np.diff(mid2)
    xm, ym = mirror[:-1], mirror[1:]
    dropped = 0
    if max_move_ticks is not None:
        keep = np.abs(d2) <= 2.0 * max_move_ticks
        dropped = int((~keep).sum())
        x, y, d2, xm, ym = x[keep], y[keep], d2[keep], xm[keep], ym[keep]
    # Symmetrise: mirrored copies (I -> 1 - I, dM -> -dM).
    xs = np.concatenate([x, xm])
    ys = np.concatenate([y, ym])
    ds = np.concatenate([d2, -d2])

    moves = np.unique(ds[ds != 0])
    K = moves / 2.0
    still = ds == 0
    Qc = np.zeros((n, n))
    Tc = np.zeros((n, n))
    Rc = np.zeros((n, len(K)))
    np.add.at(Qc, (xs[still], ys[still]), 1.0)
    np.add.at(Tc, (xs[~still], ys[~still]), 1.0)
    np.add.at(Rc, (xs[~still], np.searchsorted(moves, ds[~still])), 1.0)
    counts = Qc.sum(axis=1) + Rc.sum(axis=1)
    norm = np.where(counts > 0, counts, 1.0)[:, None]
    Q, R, T = Qc / norm, Rc / norm, Tc / norm

    live = _live_states(Q, R)
    idx = np.flatnonzero(live)
    B = np.zeros((n, n))
    g1 = np.zeros(n)
    if len(idx):
        A = np.eye(len(idx)) - Q[np.ix_(idx, idx)]
        rhs = np.column_stack([R[idx] @ K, T[idx]])
        sol = np.linalg.lstsq(A, rhs, rcond=None)[0]
        g1[idx] = sol[:, 0]
        B[idx] = sol[:, 1:]
    terms = np.zeros((iterations, n))
    terms[0] = g1
    for i in range(1, iterations):
        terms[i] = B @ terms[i - 1]
    g = terms.sum(axis=0).reshape(n_spreads, n_imbalance)

    # Fill states without an estimate (see the module docstring).
    live2 = live.reshape(n_spreads, n_imbalance)
    cols = np.arange(n_imbalance)
    for s in range(n_spreads):
        have = live2[s]
        if not have.any():
            g[s] = 0.0
        elif not have.all():
            g[s] = np.interp(cols, cols[have], g[s, have])

    table = MicropriceTable(n_spreads=n_spreads, n_imbalance=n_imbalance,
                            g=[float(v) for v in g.ravel()])
    return MicropriceFit(table=table, K=K, Q=Q, R=R, T=T, B=B, g_terms=terms, counts=counts, live=live,
                         snapshots=len(bid), transitions=len(x), dropped_large_moves=dropped)


def fit_microprice(bid, bid_qty, ask, ask_qty, n_imbalance: int = DEFAULT_N_IMBALANCE,
                   n_spreads: int = DEFAULT_N_SPREADS, iterations: int = DEFAULT_ITERATIONS,
                   max_move_ticks: float | None = DEFAULT_MAX_MOVE_TICKS) -> MicropriceTable:
    """Fit Stoikov's micro-price table g(I, S) (ticks) on a sequence of L1 snapshots.

    bid, ask: best prices in integer ticks; bid_qty, ask_qty: best sizes in lots; one row per book
    message end, in time order (``l1_snapshots`` builds them). Rows that are not two-sided or whose
    spread is outside 1..n_spreads ticks are dropped before transitions are formed.
    iterations: number of terms g^1..g^iterations summed.
    max_move_ticks: drop transitions whose mid change exceeds this (Stoikov's notebook uses 1 tick);
        None keeps every move. See the module docstring for the handling of unvisited states and of
        a singular I - Q.
    """
    return fit_microprice_details(bid, bid_qty, ask, ask_qty, n_imbalance, n_spreads, iterations,
                                  max_move_ticks).table


def l1_snapshots(data, instrument: int | None = None) -> np.ndarray:
    """Top of book (TOP_OF_BOOK records: bid_price, bid_qty, ask_price, ask_qty; ticks and lots)
    after each complete book message of one instrument, rebuilt with the core book.

    L3 data (``data.orders`` non-empty) is rebuilt from its order events, L2 data from its level
    changes. A message ends at a record carrying FLAG_LAST. One-sided rows are kept (with the
    NO_BID_PRICE / NO_ASK_PRICE sentinels); fit_microprice drops them.
    """
    from bot4.replay import build_books

    if instrument is None:
        instrument = data.spec.instrument_id
    events = data.orders if len(data.orders) else data.book
    positions = np.flatnonzero((events["flags"] & FLAG_LAST) & (events["instrument"] == instrument))
    books = build_books(data)
    return books.apply(events, positions.astype(np.int64))


def microprice_offsets(table: MicropriceTable, bid, bid_qty, ask, ask_qty) -> np.ndarray:
    """g(I, S) in ticks per snapshot, as the core looks it up; NaN where the core gives NaN."""
    bid = np.asarray(bid, dtype=np.int64)
    ask = np.asarray(ask, dtype=np.int64)
    bid_qty = np.asarray(bid_qty, dtype=np.int64)
    ask_qty = np.asarray(ask_qty, dtype=np.int64)
    ok = (bid != NO_BID_PRICE) & (ask != NO_ASK_PRICE) & (bid_qty + ask_qty > 0)
    spread = np.zeros(len(bid), dtype=np.int64)
    spread[ok] = ask[ok] - bid[ok]
    ok &= (spread >= 1) & (spread <= table.n_spreads)
    out = np.full(len(bid), np.nan)
    bucket = imbalance_buckets(bid_qty[ok], ask_qty[ok], table.n_imbalance)
    g = np.asarray(table.g, dtype=np.float64)
    out[ok] = g[(spread[ok] - 1) * table.n_imbalance + bucket]
    return out


def forecast_mse(table: MicropriceTable, bid, bid_qty, ask, ask_qty,
                 horizons=(1, 2, 3, 5, 10)) -> dict[int, dict[str, float]]:
    """Out-of-sample check of METHODS section 4.3: how well mid, weighted mid and micro-price
    predict the mid after the h-th subsequent mid change.

    Works on the snapshots fit_microprice would keep (two-sided, 1 <= spread <= n_spreads): for
    each snapshot t, the target is the mid right after the h-th mid change following t (snapshots
    without h later changes are skipped). Returns {h: {"n", "mid", "weighted_mid", "microprice"}}
    with mean squared errors in ticks^2.
    """
    bid, bid_qty, ask, ask_qty = _kept(bid, bid_qty, ask, ask_qty, table.n_spreads)
    mid = 0.5 * (bid + ask)
    imb = bid_qty / (bid_qty + ask_qty).astype(np.float64)
    wmid = imb * ask + (1.0 - imb) * bid
    micro = mid + microprice_offsets(table, bid, bid_qty, ask, ask_qty)
    changes = np.flatnonzero(np.diff(bid + ask)) + 1
    first = np.searchsorted(changes, np.arange(len(mid)), side="right")
    out = {}
    for h in horizons:
        j = first + h - 1
        ok = j < len(changes)
        target = mid[changes[j[ok]]]
        out[int(h)] = {
            "n": int(ok.sum()),
            "mid": float(np.mean((target - mid[ok]) ** 2)) if ok.any() else float("nan"),
            "weighted_mid": float(np.mean((target - wmid[ok]) ** 2)) if ok.any() else float("nan"),
            "microprice": float(np.mean((target - micro[ok]) ** 2)) if ok.any() else float("nan"),
        }
    return out


def fit_default() -> MicropriceTable:
    """The shipped default: fitted on the built-in simulator stream (``bot4.sim.generate()`` with
    its default parameters, seed and length), never on a real recording, so backtests on real
    data do not see a table fitted on themselves."""
    return _fit_default_details().table


def _fit_default_details() -> MicropriceFit:
    from bot4.sim import generate

    data = generate()
    tops = l1_snapshots(data)
    return fit_microprice_details(tops["bid_price"], tops["bid_qty"], tops["ask_price"],
                                  tops["ask_qty"], DEFAULT_N_IMBALANCE, DEFAULT_N_SPREADS,
                                  DEFAULT_ITERATIONS, DEFAULT_MAX_MOVE_TICKS)


_default: MicropriceTable | None = None


def default_microprice() -> MicropriceTable:
    """The shipped default table (package data ``bot4/features/default_microprice.json``)."""
    global _default
    if _default is None:
        doc = json.loads(resources.files("bot4.features").joinpath(DEFAULT_RESOURCE).read_text())
        t = doc["table"]
        _default = MicropriceTable(n_spreads=int(t["n_spreads"]), n_imbalance=int(t["n_imbalance"]),
                                   g=[float(v) for v in t["g"]])
    return _default


def write_default(path: str | Path | None = None) -> Path:
    """Regenerate default_microprice.json (``python -m bot4.features.microprice``)."""
    from bot4.sim import DEFAULT_EVENTS, DEFAULT_SEED

    fit = _fit_default_details()
    if path is None:
        path = Path(__file__).with_name(DEFAULT_RESOURCE)
    path = Path(path)
    doc = {
        "description": "Stoikov micro-price table g(I, S) in ticks, row-major: rows = spread 1.."
                       "n_spreads ticks, columns = equal-width buckets of I = Qb/(Qb+Qa). "
                       "Written by bot4.features.microprice.write_default().",
        "fitted_on": f"bot4.sim.generate() default params, seed={DEFAULT_SEED}, "
                     f"n_events={DEFAULT_EVENTS}; L1 at each order-message end",
        "iterations": DEFAULT_ITERATIONS,
        "max_move_ticks": DEFAULT_MAX_MOVE_TICKS,
        "snapshots": fit.snapshots,
        "transitions": fit.transitions,
        "dropped_large_moves": fit.dropped_large_moves,
        "table": {"n_spreads": fit.table.n_spreads, "n_imbalance": fit.table.n_imbalance,
                  "g": fit.table.g},
    }
    path.write_text(json.dumps(doc, indent=1) + "\n")
    return path


if __name__ == "__main__":
    print(write_default())
