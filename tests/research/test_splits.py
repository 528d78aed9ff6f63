"""Purged / embargoed splitters (METHODS.md §1 vectors) and their invariants (hypothesis)."""

from math import comb

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot4.research.splits import (assemble_paths, boundaries, cpcv, cpcv_path_ids, n_paths, purge_summary,
                                  purged_kfold, split, walk_forward)

# METHODS.md §1: n = 20 daily rows, t0 = day i, t1 = day i + 2.
T0 = np.arange(20)
T1 = T0 + 2


def rows(*ranges):
    return np.concatenate([np.arange(a, b + 1) for a, b in ranges]) if ranges else np.zeros(0, int)


def test_purged_kfold_methods_vector():
    folds = purged_kfold(T0, T1, 4)
    want = [rows((7, 19)), rows((0, 2), (12, 19)), rows((0, 7), (17, 19)), rows((0, 12))]
    for f, w in zip(folds, want):
        np.testing.assert_array_equal(f.train, w)
    assert [f.test.tolist() for f in folds] == [list(range(5 * k, 5 * k + 5)) for k in range(4)]


def test_purged_kfold_embargo_vector():
    # "With an embargo of 1 bar, fold 5-9 gives train 0-2, 13-19."
    np.testing.assert_array_equal(purged_kfold(T0, T1, 4, embargo_ns=1)[1].train, rows((0, 2), (13, 19)))


def test_cpcv_methods_vector():
    folds = cpcv(T0, T1, 4, 2, embargo_ns=1)
    want = {(0, 1): rows((13, 19)), (0, 2): rows((18, 19)), (0, 3): rows((8, 12)),
            (1, 2): rows((0, 2), (18, 19)), (1, 3): rows((0, 2)), (2, 3): rows((0, 7))}
    assert [f.group_ids for f in folds] == list(want)
    for f in folds:
        np.testing.assert_array_equal(f.train, want[f.group_ids])
    assert [list(f.path_ids) for f in folds] == [[0, 0], [1, 0], [2, 0], [1, 1], [2, 1], [2, 2]]


@pytest.mark.parametrize("N,k,splits,paths", [(6, 2, 15, 5), (10, 8, 45, 36), (4, 2, 6, 3)])
def test_cpcv_counts(N, k, splits, paths):
    assert comb(N, k) == splits and n_paths(N, k) == paths
    ids = cpcv_path_ids(N, k)
    assert ids.shape == (splits, k) and ids.max() + 1 == paths


def test_walk_forward_expanding_and_rolling():
    t0 = np.arange(30)
    t1 = t0 + 2
    exp = walk_forward(t0, t1, 4)          # 5 groups of 6
    assert [f.test.tolist() for f in exp] == [list(range(6 * g, 6 * g + 6)) for g in range(1, 5)]
    # train = everything before the test block, minus the 2 rows whose labels reach into it
    for g, f in enumerate(exp, start=1):
        np.testing.assert_array_equal(f.train, np.arange(0, 6 * g - 2))
    roll = walk_forward(t0, t1, 4, window=2)
    for g, f in enumerate(roll, start=1):
        np.testing.assert_array_equal(f.train, np.arange(max(0, 6 * (g - 2)), 6 * g - 2))
    assert split("rolling", t0, t1, 4)[2].train.tolist() == list(range(12, 16))
    # walk-forward is expanding whatever the window says
    assert split("walk-forward", t0, t1, 4, window=1)[2].train.tolist() == list(range(0, 16))


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="non-decreasing"):
        purged_kfold([3, 2, 1], [3, 3, 3], 2)
    with pytest.raises(ValueError, match="t1"):
        purged_kfold([0, 1, 2], [0, 0, 5], 2)
    with pytest.raises(ValueError, match="groups"):
        purged_kfold([0, 1], [0, 1], 3)
    with pytest.raises(ValueError, match="scheme"):
        split("shuffle", T0, T1, 3)
    with pytest.raises(ValueError, match="n_test_groups"):
        cpcv(T0, T1, 4, 4)


def test_assemble_paths_covers_every_group_once():
    folds = cpcv(T0, T1, 4, 2)
    vals = [[(f.group_ids[j], s) for j in range(2)] for s, f in enumerate(folds)]
    paths = assemble_paths(folds, vals)
    assert len(paths) == 3
    for p in paths:
        assert [g for g, _ in p] == [0, 1, 2, 3]
    # each (group, split) pair is used by exactly one path
    used = [v for p in paths for v in p]
    assert len(set(used)) == len(used) == 12


@st.composite
def intervals(draw):
    n = draw(st.integers(8, 80))
    steps = draw(st.lists(st.integers(0, 5), min_size=n, max_size=n))   # duplicate times allowed
    t0 = np.cumsum(steps).astype(np.int64)
    h = np.asarray(draw(st.lists(st.integers(0, 30), min_size=n, max_size=n)), dtype=np.int64)
    return t0, t0 + h


def _check_fold(t0, t1, f, embargo):
    test_mask = np.zeros(t0.size, bool)
    test_mask[f.test] = True
    assert not test_mask[f.train].any()
    for idx in f.test_groups:
        a, b = t0[idx[0]], t1[idx].max()
        tr0, tr1 = t0[f.train], t1[f.train]
        assert not np.any((tr0 <= b) & (tr1 >= a)), "a training label overlaps a test span"
        assert not np.any((tr0 > b) & (tr0 <= b + embargo)), "embargo violated"
    for bd in boundaries(t0, t1, f):
        assert bd["gap_ns"] > bd["horizon_ns"]
    s = purge_summary(t0, t1, f)
    if s["min_purge_ns"] is not None:
        assert s["min_margin_ns"] > 0


@settings(max_examples=150, deadline=None)
@given(intervals(), st.integers(0, 20), st.sampled_from(["walk-forward", "rolling", "kfold", "cpcv"]),
       st.integers(2, 5))
def test_no_training_label_overlaps_a_test_span_and_embargo_holds(iv, embargo, scheme, k):
    t0, t1 = iv
    folds = split(scheme, t0, t1, k, embargo_ns=embargo, n_test_groups=min(2, k - 1))
    for f in folds:
        _check_fold(t0, t1, f, embargo)
    # the purge drops only what it must: every sample not dropped by the rules is kept
    for f in folds:
        cand = np.setdiff1d(np.arange(t0.size), f.test)
        if scheme in ("walk-forward", "rolling"):
            cand = cand[cand < f.test[0]]
            if scheme == "rolling":
                continue
        keep = np.ones(cand.size, bool)
        for idx in f.test_groups:
            a, b = t0[idx[0]], t1[idx].max()
            keep &= ~((t0[cand] <= b) & (t1[cand] >= a)) & ~((t0[cand] > b) & (t0[cand] <= b + embargo))
        np.testing.assert_array_equal(f.train, cand[keep])


@settings(max_examples=60, deadline=None)
@given(intervals(), st.integers(3, 7), st.integers(1, 3))
def test_cpcv_paths_cover_each_group_once(iv, N, k):
    t0, t1 = iv
    k = min(k, N - 1)
    folds = cpcv(t0, t1, N, k)
    assert len(folds) == comb(N, k)
    paths = assemble_paths(folds, [[tuple(g.tolist()) for g in f.test_groups] for f in folds])
    assert len(paths) == comb(N - 1, k - 1)
    for p in paths:   # each path is the whole sample, every group once, in order
        assert [i for grp in p for i in grp] == list(range(t0.size))
