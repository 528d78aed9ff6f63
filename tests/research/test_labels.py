"""Forward-return labels and the purged chronological split."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot4.research import chronological_split, forward_labels, label_end_index


def test_event_labels_hand_checked():
    t = np.arange(6, dtype=np.int64) * 10
    mid = np.array([100.0, 100.0, 101.0, 100.005, 99.0, 99.0])
    label, end = forward_labels(t, mid, horizon=2, dead_zone_bp=1.0)
    # r(0->2)=+100bp up; r(1->3)=+0.5bp dead; r(2->4)<0 down; r(3->5)<0 down; 4, 5 past the end.
    np.testing.assert_array_equal(label, [1, -1, 0, 0, -1, -1])
    np.testing.assert_array_equal(end, [2, 3, 4, 5, 6, 7])
    np.testing.assert_array_equal(label_end_index(t, end, "events"), [2, 3, 4, 5, 6, 6])
    assert label.dtype == np.int8


def test_zero_return_is_never_directional():
    label, _ = forward_labels(np.arange(3), np.array([5.0, 5.0, 6.0]), 1, dead_zone_bp=0.0)
    np.testing.assert_array_equal(label, [-1, 1, -1])


def test_bad_mid_is_undefined():
    mid = np.array([100.0, np.nan, 101.0, 0.0, 102.0])
    label, _ = forward_labels(np.arange(5), mid, 1, 0.0)
    np.testing.assert_array_equal(label, [-1, -1, -1, -1, -1])
    label, _ = forward_labels(np.arange(5), mid, 2, 0.0)
    np.testing.assert_array_equal(label, [1, -1, 1, -1, -1])


def test_ns_labels_first_row_at_or_after():
    t = np.array([0, 5, 5, 12, 20, 31], dtype=np.int64)
    mid = np.array([10.0, 11.0, 12.0, 9.0, 13.0, 8.0])
    label, end = forward_labels(t, mid, horizon=10, dead_zone_bp=0.0, horizon_unit="ns")
    # row 0 -> first t >= 10 is row 3 (t=12); rows 1, 2 -> t >= 15 is row 4 (t=20);
    # row 3 -> t >= 22 is row 5; rows 4, 5 have no row at t >= 30 / 41 except row 5 for row 4.
    np.testing.assert_array_equal(end, [12, 20, 20, 31, 31, 41])
    np.testing.assert_array_equal(label_end_index(t, end, "ns"), [3, 4, 4, 5, 5, 6])
    np.testing.assert_array_equal(label, [0, 1, 1, 0, 0, -1])


def test_ns_duplicate_timestamps_end_at_first_duplicate():
    t = np.array([0, 10, 10, 10], dtype=np.int64)
    label, end = forward_labels(t, np.array([1.0, 2.0, 0.5, 3.0]), 10, 0.0, "ns")
    np.testing.assert_array_equal(label_end_index(t, end, "ns")[:1], [1])
    assert label[0] == 1


def test_argument_checks():
    with pytest.raises(ValueError):
        forward_labels([0, 1], [1.0, 1.0], 0, 0.0)
    with pytest.raises(ValueError):
        forward_labels([0, 1], [1.0, 1.0], 1, -1.0)
    with pytest.raises(ValueError):
        forward_labels([1, 0], [1.0, 1.0], 1, 0.0)
    with pytest.raises(ValueError):
        forward_labels([0, 1], [1.0, 1.0], 1, 0.0, horizon_unit="bars")
    with pytest.raises(ValueError):
        chronological_split(3, np.array([0, 0, 2]))  # an end before its row
    with pytest.raises(ValueError):
        chronological_split(3, np.array([0, 1, 2]), fractions=(0.5, 0.5, 0.5))


def test_split_fixed_horizon_gaps_equal_h():
    n, h = 100, 7
    s = chronological_split(n, np.arange(n) + h)
    np.testing.assert_array_equal(s.train, np.arange(0, 60 - h))
    np.testing.assert_array_equal(s.calibration, np.arange(60, 80 - h))
    np.testing.assert_array_equal(s.test, np.arange(80, 100 - h))
    assert s.gaps == (h, h)


def _check_split(n, end, s):
    parts = [s.train, s.calibration, s.test]
    allrows = np.concatenate(parts)
    assert len(np.unique(allrows)) == len(allrows)  # disjoint
    for part in parts:
        assert np.all(np.diff(part) == 1)  # contiguous
    for a, b in zip(parts, parts[1:]):
        if a.size and b.size:
            assert a[-1] < b[0]  # ordered
    for k, part in enumerate(parts):
        later = np.concatenate(parts[k + 1:]) if k < 2 else np.array([], dtype=np.int64)
        if part.size and later.size:
            # Closed windows [i, end_i] of this slice touch no row of a later slice.
            assert end[part].max() < later.min()
        if part.size:
            assert end[part].max() < n  # every kept window lies inside the data
    nominal = [int(np.floor(n * 0.6)), int(np.floor(n * 0.8))]
    assert s.gaps[0] == nominal[0] - (s.train[-1] + 1 if s.train.size else 0)


@settings(max_examples=300, deadline=None)
@given(n=st.integers(0, 400), h=st.integers(1, 60))
def test_split_property_fixed_horizon(n, h):
    end = np.arange(n, dtype=np.int64) + h
    s = chronological_split(n, end)
    _check_split(n, end, s)
    b1, b2 = int(np.floor(n * 0.6)), int(np.floor(n * 0.8))
    # At least H rows, unless the whole slice is shorter than H (then it is entirely purged).
    assert s.gaps[0] >= min(h, b1) and s.gaps[1] >= min(h, b2 - b1)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_split_property_variable_horizon(data):
    n = data.draw(st.integers(1, 300))
    extra = np.array(data.draw(st.lists(st.integers(0, 40), min_size=n, max_size=n)), dtype=np.int64)
    if data.draw(st.booleans()):
        end = np.maximum.accumulate(np.arange(n) + extra)  # monotone, like an ns horizon
    else:
        end = np.arange(n) + extra  # arbitrary windows
    fr = data.draw(st.sampled_from([(0.6, 0.2, 0.2), (0.5, 0.25, 0.25), (0.8, 0.1, 0.1), (1 / 3, 1 / 3, 1 / 3)]))
    s = chronological_split(n, end, fractions=fr)
    parts = [s.train, s.calibration, s.test]
    for k, part in enumerate(parts):
        later = np.concatenate(parts[k + 1:]) if k < 2 else np.array([], dtype=np.int64)
        if part.size and later.size:
            assert end[part].max() < later.min()
        if part.size:
            assert end[part].max() < n
    allrows = np.concatenate(parts)
    assert np.all(np.diff(allrows) > 0)  # disjoint and ordered


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_ns_labels_property(data):
    n = data.draw(st.integers(1, 80))
    dt = np.array(data.draw(st.lists(st.integers(0, 20), min_size=n, max_size=n)), dtype=np.int64)
    t = np.cumsum(dt)
    mid = np.array(data.draw(st.lists(st.integers(90, 110), min_size=n, max_size=n)), dtype=np.float64)
    h = data.draw(st.integers(1, 50))
    dz = data.draw(st.sampled_from([0.0, 50.0, 500.0]))
    label, end = forward_labels(t, mid, h, dz, "ns")
    idx = label_end_index(t, end, "ns")
    for i in range(n):
        js = [j for j in range(n) if t[j] >= t[i] + h]
        if not js:
            assert label[i] == -1 and idx[i] == n
            continue
        j = js[0]
        assert idx[i] == j and end[i] == t[j]
        r = (mid[j] / mid[i] - 1) * 1e4
        expect = -1 if (r == 0 or abs(r) < dz) else int(r > 0)
        assert label[i] == expect


@pytest.mark.realdata
@pytest.mark.parametrize("unit,horizon", [("events", 100), ("ns", 5_000_000_000)])
def test_real_data_labels_and_split(shared_data, unit, horizon):
    import bot4.data
    import bot4.features

    fs = bot4.features.compute(bot4.data.load(shared_data / "binance_hftbacktest" / "usdm" / "btcusdt_20240808.gz"))
    t, mid = fs.timestamps, fs.column("mid_ticks")
    label, end = forward_labels(t, mid, horizon, dead_zone_bp=0.5, horizon_unit=unit)
    n = len(t)
    counts = {v: int((label == v).sum()) for v in (-1, 0, 1)}
    defined = counts[0] + counts[1]
    assert defined > 0.3 * n, counts
    assert 0.25 < counts[1] / defined < 0.75, counts  # neither direction dominates a day of BTC
    idx = label_end_index(t, end, unit)
    s = chronological_split(n, idx)
    _check_split(n, idx, s)
    if unit == "events":
        assert min(s.gaps) >= horizon
    else:
        # In time: the first calibration / test row is at least H ns after every earlier slice's row.
        assert t[s.calibration[0]] - t[s.train[-1]] >= horizon
        assert t[s.test[0]] - t[s.calibration[-1]] >= horizon
    for part in (s.train, s.calibration, s.test):
        assert part.size > 0.1 * n
        y = label[part]
        assert np.isin(y, [-1, 0, 1]).all() and (y >= 0).sum() > 0
