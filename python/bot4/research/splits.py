"""Cross-validation splitters that purge by label interval and embargo after each test block
(METHODS.md §1; AFML ch. 7 and §12.4).

Every sample i has a prediction time t0[i] (ns, when its features are known) and a label end time
t1[i] >= t0[i]: its label uses information in the closed interval [t0[i], t1[i]]. Samples are in
time order (t0 non-decreasing) and never shuffled.

- A test block T covers the span [a, b] = [min t0 over T, max t1 over T].
- Purge (closed intervals, AFML Snippet 7.1): a training sample is dropped when
  t0[i] <= b and t1[i] >= a, so no training label shares an instant with a test block's span.
- Embargo: training samples with t0[i] in (b, b + embargo_ns] are dropped too, after each test
  block only. It is measured in time from the end of the block's last label (b), not from its
  last row, so it holds for any label horizon.

Unlike splitters that purge a fixed number of rows, this is exact for label windows of any length
in time (a horizon of 100 feature rows spans milliseconds or seconds depending on the activity).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from math import comb

import numpy as np

SCHEMES = ("walk-forward", "rolling", "kfold", "cpcv")


@dataclass(frozen=True)
class Fold:
    """One split: training sample indices, and the test samples as contiguous groups."""
    train: np.ndarray                 # int64 sample indices, increasing
    test_groups: tuple                # tuple of int64 index arrays, one per test group, in time order
    group_ids: tuple = ()             # which of the scheme's groups each test group is
    path_ids: tuple = ()              # CPCV: the backtest path each test group belongs to

    @property
    def test(self) -> np.ndarray:
        return np.concatenate(self.test_groups) if self.test_groups else np.zeros(0, np.int64)


def check_intervals(t0, t1) -> tuple[np.ndarray, np.ndarray]:
    """t0 and t1 as int64 arrays; ValueError unless 1-D, equal length, t0 sorted and t1 >= t0."""
    a = np.asarray(t0, dtype=np.int64)
    b = np.asarray(t1, dtype=np.int64)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"t0 and t1 must be 1-D of equal length, got {a.shape} and {b.shape}")
    if a.size and np.any(np.diff(a) < 0):
        raise ValueError("t0 must be non-decreasing (samples in time order)")
    if np.any(b < a):
        raise ValueError("t1[i] must be >= t0[i] (a label cannot end before its prediction time)")
    return a, b


def group_bounds(n: int, n_groups: int) -> list[tuple[int, int]]:
    """[lo, hi) of n_groups contiguous groups of n samples (np.array_split sizes: the first
    n % n_groups groups get one extra sample)."""
    if int(n_groups) != n_groups or n_groups < 1:
        raise ValueError(f"the number of groups must be a positive integer, got {n_groups!r}")
    if n < n_groups:
        raise ValueError(f"{n} samples cannot make {n_groups} non-empty groups")
    sizes = np.full(n_groups, n // n_groups)
    sizes[: n % n_groups] += 1
    edges = np.concatenate([[0], np.cumsum(sizes)])
    return [(int(edges[g]), int(edges[g + 1])) for g in range(n_groups)]


def purge_mask(t0, t1, test_spans, embargo_ns: int = 0) -> np.ndarray:
    """True for samples that may train: outside every test span's purge and embargo.

    test_spans: iterable of (a, b). A sample is purged when [t0, t1] meets [a, b] (closed) and
    embargoed when t0 lies in (b, b + embargo_ns].
    """
    if embargo_ns < 0:
        raise ValueError(f"embargo_ns must be >= 0, got {embargo_ns}")
    keep = np.ones(np.asarray(t0).shape, dtype=bool)
    for a, b in test_spans:
        keep &= ~((t0 <= b) & (t1 >= a))
        if embargo_ns:
            keep &= ~((t0 > b) & (t0 <= b + int(embargo_ns)))
    return keep


def _span(t0, t1, idx) -> tuple[int, int]:
    return int(t0[idx[0]]), int(t1[idx].max())


def _fold(t0, t1, candidates: np.ndarray, groups, bounds, embargo_ns, path_ids=()) -> Fold:
    tests = tuple(np.arange(*bounds[g], dtype=np.int64) for g in groups)
    spans = [_span(t0, t1, idx) for idx in tests]
    keep = purge_mask(t0[candidates], t1[candidates], spans, embargo_ns)
    return Fold(train=candidates[keep].astype(np.int64), test_groups=tests, group_ids=tuple(groups),
                path_ids=tuple(path_ids))


def walk_forward(t0, t1, n_splits: int, *, window: int | None = None, embargo_ns: int = 0) -> list[Fold]:
    """Walk-forward: n_splits + 1 contiguous groups; fold k tests group k + 1 and trains on the
    groups before it (all of them: expanding/anchored; the last `window` groups: rolling), with
    the training rows whose labels reach the test span purged. Training never follows the test,
    so the embargo has nothing to drop here; it is accepted for a uniform interface."""
    t0, t1 = check_intervals(t0, t1)
    if int(n_splits) != n_splits or n_splits < 1:
        raise ValueError(f"n_splits must be a positive integer, got {n_splits!r}")
    if window is not None and (int(window) != window or window < 1):
        raise ValueError(f"window must be a positive integer (groups), got {window!r}")
    bounds = group_bounds(t0.size, n_splits + 1)
    folds = []
    for g in range(1, n_splits + 1):
        first = 0 if window is None else max(0, g - window)
        cand = np.arange(bounds[first][0], bounds[g][0], dtype=np.int64)
        folds.append(_fold(t0, t1, cand, (g,), bounds, embargo_ns))
    return folds


def purged_kfold(t0, t1, n_splits: int, *, embargo_ns: int = 0) -> list[Fold]:
    """K contiguous groups; fold k tests group k and trains on every other sample that survives
    the purge around group k and the embargo after it (AFML PurgedKFold, by time)."""
    t0, t1 = check_intervals(t0, t1)
    if int(n_splits) != n_splits or n_splits < 2:
        raise ValueError(f"n_splits must be an integer >= 2, got {n_splits!r}")
    bounds = group_bounds(t0.size, n_splits)
    everything = np.arange(t0.size, dtype=np.int64)
    folds = []
    for g in range(n_splits):
        lo, hi = bounds[g]
        cand = np.concatenate([everything[:lo], everything[hi:]])
        folds.append(_fold(t0, t1, cand, (g,), bounds, embargo_ns))
    return folds


def cpcv_path_ids(n_groups: int, n_test_groups: int) -> np.ndarray:
    """(C(N, k), k) array: the backtest path of each test group of each split, splits in
    lexicographic order of their group combinations. Group g's j-th appearance goes to path j,
    so every path holds each group exactly once (same numbering as skfolio's get_path_ids)."""
    seen = np.zeros(n_groups, dtype=np.int64)
    out = []
    for combo in combinations(range(n_groups), n_test_groups):
        out.append([int(seen[g]) for g in combo])
        for g in combo:
            seen[g] += 1
    return np.asarray(out, dtype=np.int64).reshape(-1, n_test_groups)


def n_paths(n_groups: int, n_test_groups: int) -> int:
    """phi = (k / N) * C(N, k) = C(N - 1, k - 1) backtest paths."""
    return comb(n_groups - 1, n_test_groups - 1)


def cpcv(t0, t1, n_groups: int, n_test_groups: int = 2, *, embargo_ns: int = 0) -> list[Fold]:
    """Combinatorial purged CV: N groups, every choice of k as the test set (C(N, k) splits), purge
    and embargo around every test group. Each Fold carries the path of each of its test groups."""
    t0, t1 = check_intervals(t0, t1)
    if int(n_groups) != n_groups or n_groups < 2:
        raise ValueError(f"n_groups must be an integer >= 2, got {n_groups!r}")
    if int(n_test_groups) != n_test_groups or not 1 <= n_test_groups < n_groups:
        raise ValueError(f"n_test_groups must be an integer in [1, {n_groups - 1}], got {n_test_groups!r}")
    bounds = group_bounds(t0.size, n_groups)
    paths = cpcv_path_ids(n_groups, n_test_groups)
    everything = np.arange(t0.size, dtype=np.int64)
    folds = []
    for s, combo in enumerate(combinations(range(n_groups), n_test_groups)):
        in_test = np.zeros(t0.size, dtype=bool)
        for g in combo:
            in_test[bounds[g][0]:bounds[g][1]] = True
        folds.append(_fold(t0, t1, everything[~in_test], combo, bounds, embargo_ns, paths[s]))
    return folds


def assemble_paths(folds: list[Fold], values_per_group: list[list]) -> list[list]:
    """Rebuild the CPCV backtest paths: path p is, for g = 0..N-1, the value (predictions, returns,
    ...) of group g from the split where g is tested and assigned to path p.

    values_per_group[s][j] is the value for folds[s].test_groups[j]. Returns one list per path, in
    group order."""
    n_groups = 1 + max(g for f in folds for g in f.group_ids)
    n_p = 1 + max(p for f in folds for p in f.path_ids)
    paths: list[list] = [[None] * n_groups for _ in range(n_p)]
    for f, vals in zip(folds, values_per_group):
        for g, p, v in zip(f.group_ids, f.path_ids, vals):
            if paths[p][g] is not None:
                raise ValueError(f"group {g} appears twice on path {p}")
            paths[p][g] = v
    for p, row in enumerate(paths):
        missing = [g for g, v in enumerate(row) if v is None]
        if missing:
            raise ValueError(f"path {p} has no value for groups {missing}")
    return paths


def split(scheme: str, t0, t1, n_folds: int, *, embargo_ns: int = 0, n_test_groups: int = 2,
          window: int | None = None) -> list[Fold]:
    """The folds of `scheme`: "walk-forward" (expanding, n_folds test blocks; `window` is ignored), "rolling"
    (n_folds test blocks, each trained on the `window` groups before it, default 1), "kfold"
    (n_folds groups) or "cpcv" (n_folds groups, n_test_groups of them tested per split)."""
    if scheme == "walk-forward":
        return walk_forward(t0, t1, n_folds, embargo_ns=embargo_ns)
    if scheme == "rolling":
        return walk_forward(t0, t1, n_folds, window=window or 1, embargo_ns=embargo_ns)
    if scheme == "kfold":
        return purged_kfold(t0, t1, n_folds, embargo_ns=embargo_ns)
    if scheme == "cpcv":
        return cpcv(t0, t1, n_folds, n_test_groups, embargo_ns=embargo_ns)
    raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")


def boundaries(t0, t1, fold: Fold) -> list[dict]:
    """The purge gap at every train/test boundary of a fold, in time.

    At each boundary, take the last sample before it (train before a test group, or the test
    group's last sample before later training) and the first sample after it. gap_ns is the time
    from the earlier sample's prediction to the later one's; horizon_ns is the earlier sample's
    label window t1 - t0. The purge guarantees gap_ns > horizon_ns at every boundary (its label
    ends before the next part starts), and with an embargo the gap after a test group exceeds
    the test labels' end by more than embargo_ns."""
    t0, t1 = check_intervals(t0, t1)
    out = []
    train = fold.train
    for idx in fold.test_groups:
        a_i, b_i = int(idx[0]), int(idx[-1])
        before = train[train < a_i]
        after = train[train > b_i]
        if before.size:
            i = int(before[-1])
            out.append({"side": "before", "gap_ns": int(t0[a_i] - t0[i]), "horizon_ns": int(t1[i] - t0[i])})
        if after.size:
            j = int(after[0])
            last = idx[int(np.argmax(t1[idx]))]   # the test label that ends last
            out.append({"side": "after", "gap_ns": int(t0[j] - t0[last]),
                        "horizon_ns": int(t1[last] - t0[last])})
    return out


def purge_summary(t0, t1, fold: Fold) -> dict:
    """min_purge_ns: the smallest boundary gap; horizon_ns: the label window at that boundary
    (the purge makes min_purge_ns > horizon_ns); max_horizon_ns: the longest label window over
    all boundaries. None when the fold has no boundary (no training sample)."""
    bs = boundaries(t0, t1, fold)
    if not bs:
        return {"min_purge_ns": None, "horizon_ns": None, "max_horizon_ns": None}
    tightest = min(bs, key=lambda d: d["gap_ns"] - d["horizon_ns"])
    low = min(bs, key=lambda d: d["gap_ns"])
    return {"min_purge_ns": int(low["gap_ns"]), "horizon_ns": int(low["horizon_ns"]),
            "max_horizon_ns": int(max(d["horizon_ns"] for d in bs)),
            "min_margin_ns": int(tightest["gap_ns"] - tightest["horizon_ns"])}
