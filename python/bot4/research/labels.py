"""Forward-return labels and a chronological train / calibration / test split with purge gaps.

Conventions (METHODS.md §1): row i's label uses information in the closed window
[i, label_end_index[i]]. A row is purged from a split when that window reaches the first row of the
next split, so no label in an earlier split is computed from prices that a later split sees.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

UP, DOWN, UNDEFINED = 1, 0, -1
HORIZON_UNITS = ("events", "ns")


def forward_labels(timestamps, mid, horizon: int, dead_zone_bp: float, horizon_unit: str = "events"):
    """Sign of the forward mid return over `horizon`, with a dead zone.

    horizon_unit="events": the window of row i ends at row j = i + horizon.
    horizon_unit="ns": it ends at the first row j with timestamps[j] >= timestamps[i] + horizon.
    Return r = (mid[j] / mid[i] - 1) in basis points. Label is 1 (up) if r > 0 and 0 (down) if r < 0
    when |r| >= dead_zone_bp; -1 if |r| < dead_zone_bp, r == 0 (no direction, also with a zero dead
    zone), j past the data end, or either mid is not a finite positive number.

    Returns (label int8, label_end int64). label_end is the end row index (events) or the end
    timestamp (ns); for rows whose window runs past the data end it is the nominal end
    (i + horizon, or timestamps[i] + horizon), which lies beyond the data, so `label_end_index`
    maps it to n_rows.
    """
    if horizon_unit not in HORIZON_UNITS:
        raise ValueError(f"horizon_unit must be one of {HORIZON_UNITS}, got {horizon_unit!r}")
    if int(horizon) != horizon or horizon < 1:
        raise ValueError(f"horizon must be a positive integer, got {horizon!r}")
    if not dead_zone_bp >= 0:
        raise ValueError(f"dead_zone_bp must be >= 0, got {dead_zone_bp!r}")
    horizon = int(horizon)
    t = np.asarray(timestamps, dtype=np.int64)
    m = np.asarray(mid, dtype=np.float64)
    if t.ndim != 1 or m.shape != t.shape:
        raise ValueError(f"timestamps and mid must be 1-D of equal length, got {t.shape} and {m.shape}")
    if t.size and np.any(np.diff(t) < 0):
        raise ValueError("timestamps must be non-decreasing")
    n = t.size
    i = np.arange(n, dtype=np.int64)
    if horizon_unit == "events":
        end_idx = i + horizon
        label_end = end_idx.copy()
    else:
        nominal = t + horizon
        # side="left": the first row at or after t_i + H, as the label definition says.
        end_idx = np.searchsorted(t, nominal, side="left").astype(np.int64)
        label_end = np.where(end_idx < n, t[np.minimum(end_idx, n - 1)] if n else nominal, nominal)
    label = np.full(n, UNDEFINED, dtype=np.int8)
    inside = end_idx < n
    j = np.where(inside, end_idx, 0)
    m0, m1 = m, m[j] if n else m
    ok = inside & np.isfinite(m0) & np.isfinite(m1) & (m0 > 0) & (m1 > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r_bp = np.where(ok, (m1 / np.where(ok, m0, 1.0) - 1.0) * 1e4, 0.0)
    directional = ok & (r_bp != 0) & (np.abs(r_bp) >= dead_zone_bp)
    label[directional & (r_bp > 0)] = UP
    label[directional & (r_bp < 0)] = DOWN
    return label, np.asarray(label_end, dtype=np.int64)


def label_end_index(timestamps, label_end, horizon_unit: str = "events"):
    """Map `forward_labels`' label_end to row indices (n_rows for windows past the data end).

    For "ns" the end timestamp is that of the first row at or after t_i + H, so a left
    searchsorted recovers exactly that row even with duplicate timestamps.
    """
    if horizon_unit not in HORIZON_UNITS:
        raise ValueError(f"horizon_unit must be one of {HORIZON_UNITS}, got {horizon_unit!r}")
    t = np.asarray(timestamps, dtype=np.int64)
    end = np.asarray(label_end, dtype=np.int64)
    if horizon_unit == "events":
        return np.minimum(end, t.size)
    return np.searchsorted(t, end, side="left").astype(np.int64)


class Split(NamedTuple):
    """Row indices of each slice, and the purge gap (in rows) after train and after calibration."""
    train: np.ndarray
    calibration: np.ndarray
    test: np.ndarray
    gaps: tuple


def chronological_split(n_rows: int, label_end_index, fractions=(0.6, 0.2, 0.2)) -> Split:
    """Contiguous train / calibration / test slices of [0, n_rows), in time order, with purge gaps.

    Nominal boundaries are floor(n * cumulative fraction). Each slice is then cut back at the first
    row whose label window [i, label_end_index[i]] reaches the next slice's first row (closed
    interval, as in AFML's purge). Cutting at the first such row, rather than dropping rows one by
    one, keeps every slice contiguous even if the end indices are not monotone; for monotone ends
    (any fixed horizon) the two are the same. The test slice is cut the same way at n_rows, since
    those rows' windows run past the data and have no label. With a horizon of H rows every gap
    is therefore at least H rows.

    gaps = (rows purged between train and calibration, rows purged between calibration and test).
    """
    n = int(n_rows)
    end = np.asarray(label_end_index, dtype=np.int64)
    if end.shape != (n,):
        raise ValueError(f"label_end_index must have shape ({n},), got {end.shape}")
    if n and np.any(end < np.arange(n)):
        raise ValueError("label_end_index[i] must be >= i (a label cannot end before its row)")
    f = np.asarray(fractions, dtype=np.float64)
    if f.shape != (3,) or np.any(f < 0) or not np.isclose(f.sum(), 1.0):
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {fractions!r}")
    b1 = int(np.floor(n * f[0]))
    b2 = max(b1, int(np.floor(n * (f[0] + f[1]))))
    bounds = [(0, b1), (b1, b2), (b2, n)]
    slices, kept_ends = [], []
    for lo, hi in bounds:
        crosses = np.flatnonzero(end[lo:hi] >= hi)
        stop = lo + int(crosses[0]) if crosses.size else hi
        slices.append(np.arange(lo, stop, dtype=np.int64))
        kept_ends.append(stop)
    gaps = (b1 - kept_ends[0], b2 - kept_ends[1])
    return Split(slices[0], slices[1], slices[2], gaps)
