"""Windows of the last L feature rows, flattened into one model input row (the sequence models of
bot4.research.sequence read them; any zoo model can).

A sample at feature row i gets rows i - L + 1 .. i of its instrument's feature matrix (every feature
row, labelled or not: what a ring buffer of the last L rows holds when row i is decided on), laid
out oldest first and flattened row-major: column k * F + j is feature j of row i - (L - 1 - k).
The last F columns are the sample's own row, so they keep the plain feature names and a column
looked up by name (such as the mid price) is the current row's.
"""

from __future__ import annotations

import numpy as np


def window_names(names, length: int) -> list[str]:
    """Column names of flattened windows: `name@t-k` for the row k rows back, the plain name for
    the current row (oldest first, as `window_rows` lays them out)."""
    length = check_length(length)
    names = list(names)
    return [f"{n}@t-{lag}" for lag in range(length - 1, 0, -1) for n in names] + names


def check_length(length) -> int:
    """`length` as an int; ValueError unless it is an integer >= 1."""
    if isinstance(length, bool) or int(length) != length or length < 1:
        raise ValueError(f"sequence length must be an integer >= 1 (feature rows per window), got {length!r}")
    return int(length)


def has_history(rows, length: int) -> np.ndarray:
    """True for the feature-row indices with at least length - 1 rows before them (a full window)."""
    return np.asarray(rows, dtype=np.int64) >= check_length(length) - 1


def window_rows(matrix, rows, length: int) -> np.ndarray:
    """Float32 [len(rows), length * F]: the window ending at each feature-row index in `rows` of
    `matrix` [n_rows, F]. ValueError when a row index is out of range or has fewer than
    length - 1 rows before it (drop those with `has_history` first)."""
    length = check_length(length)
    m = np.asarray(matrix)
    if m.ndim != 2:
        raise ValueError(f"feature matrix must be 2-D [rows, features], got shape {m.shape}")
    r = np.asarray(rows, dtype=np.int64)
    if r.ndim != 1:
        raise ValueError(f"row indices must be 1-D, got shape {r.shape}")
    if r.size and (r.min() < length - 1 or r.max() >= m.shape[0]):
        bad = int(r[(r < length - 1) | (r >= m.shape[0])][0])
        raise ValueError(f"feature row {bad} has no full window of {length} rows in a matrix of "
                         f"{m.shape[0]} rows (it needs rows {bad - length + 1}..{bad})")
    if length == 1 or r.size == 0:
        return np.ascontiguousarray(m[r], dtype=np.float32).reshape(r.size, length * m.shape[1])
    view = np.lib.stride_tricks.sliding_window_view(m, length, axis=0)   # [n - L + 1, F, L]
    w = view[r - (length - 1)].transpose(0, 2, 1)                          # [N, L, F], oldest first
    return np.ascontiguousarray(w.reshape(r.size, length * m.shape[1]), dtype=np.float32)
