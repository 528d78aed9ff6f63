"""A supervised dataset: feature rows at decision points, a forward-return direction label, and a
chronological train / calibration / test split with purge gaps.

The split is made on the full row timeline (every feature row, labelled or not) so that the purge
gap is measured in real rows; rows whose label is undefined (dead zone, zero return, window past
the data end, missing mid) are dropped from each slice afterwards. With a sequence length L > 1 a
sample's features are the window of its last L feature rows (bot4.research.windows), and rows with
fewer than L - 1 rows before them are dropped the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bot4.research.labels import UNDEFINED, chronological_split, forward_labels, label_end_index

SLICES = ("train", "calibration", "test")
MID_COLUMN = "mid_price"


def label_definition(horizon: int, horizon_unit: str, dead_zone_bp: float) -> str:
    """The label's definition in words for a horizon, its unit ('events' or 'ns') and dead zone (bp); the
    model sidecar records it."""
    if horizon_unit == "events":
        where = f"the feature row {horizon} rows later (j = i + {horizon})"
    else:
        where = f"the first feature row at or after t_i + {horizon} ns"
    return (f"y_i = 1 if r > 0 and 0 if r < 0, where r = (mid_j / mid_i - 1) * 1e4 bp is the mid-price "
            f"return from feature row i to {where}; rows with |r| < {dead_zone_bp} bp, r == 0, a "
            f"window past the data end or a missing mid have no label and are dropped. mid is the "
            f"'{MID_COLUMN}' feature column.")


@dataclass
class Dataset:
    """Labelled rows in time order. Index arrays (train, calibration, test) point into X / y."""
    X: np.ndarray                 # float32 (rows, features); NaN where a feature is undefined;
                                  # with sequence_length L: windows, L * F columns, oldest row first
    y: np.ndarray                 # int8 0/1 label of each row
    timestamps: np.ndarray        # int64 ns, engine clock of each row
    rows: np.ndarray              # int64 row index in the instrument's feature rows (the split timeline)
    names: list[str]              # feature names in column order
    label: dict                   # horizon, unit, dead_zone_bp, definition
    train: np.ndarray             # int64 indices into X / y
    calibration: np.ndarray
    test: np.ndarray
    gaps: tuple                   # feature rows purged after train, after calibration
    n_feature_rows: int           # rows of the full feature matrix (labelled or not)
    instrument: int = 0
    spans: dict = field(default_factory=dict)  # slice -> [t_start_ns, t_end_ns, rows]
    label_end_ns: np.ndarray | None = None     # int64 ns: time of the row each label window ends at
    sequence_length: int = 1                   # feature rows per sample (bot4.research.windows)

    def label_intervals(self, idx) -> tuple[np.ndarray, np.ndarray]:
        """(t0, t1) of the samples `idx` in ns: the row's time and its label's end (bot4.research.splits).
        Without label_end_ns (a Dataset built by hand), t1 = t0 + the horizon for an ns horizon and
        the time of the row `horizon` samples later (or the last) for an events horizon."""
        idx = np.asarray(idx, dtype=np.int64)
        t0 = self.timestamps[idx]
        if self.label_end_ns is not None:
            return t0, self.label_end_ns[idx]
        h = int(self.label["horizon"])
        if self.label["unit"] == "ns":
            return t0, t0 + h
        return t0, self.timestamps[np.minimum(idx + h, self.timestamps.size - 1)]

    def part(self, name: str):
        """(X, y) of one slice."""
        idx = getattr(self, name)
        return self.X[idx], self.y[idx]

    def row_ranges(self) -> dict:
        """slice -> [first, last] feature-matrix row index of its labelled rows."""
        out = {}
        for name in SLICES:
            r = self.rows[getattr(self, name)]
            out[name] = [int(r[0]), int(r[-1])] if r.size else [None, None]
        return out


def _pick_instrument(instruments: np.ndarray, instrument: int | None) -> int:
    ids, counts = np.unique(instruments, return_counts=True)
    if instrument is not None:
        if instrument not in ids:
            raise ValueError(f"instrument {instrument} has no feature rows (present: {ids.tolist()})")
        return int(instrument)
    if ids.size == 0:
        raise ValueError("no feature rows: the data is empty or has no decision points")
    return int(ids[np.argmax(counts)])  # one instrument per model: the one with the most rows


def build_dataset(data, feature_config=None, horizon: int = 100, horizon_unit: str = "events",
                  dead_zone_bp: float = 0.5, fractions=(0.6, 0.2, 0.2), *, instrument: int | None = None,
                  features=None, progress: bool = False, sequence_length: int = 1) -> Dataset:
    """Feature rows of `data` (MarketData) with forward-return labels and a purged split.

    `features` may pass an already computed FeatureSet (then `data` and `feature_config` are unused).
    With several instruments, only one instrument's rows are used (`instrument`, default: the one
    with the most rows), since the label compares consecutive mids of one price series.
    sequence_length L > 1: each sample is the window of its last L feature rows, flattened oldest
    first (L * F columns, names from bot4.research.windows.window_names); rows without L - 1 rows
    before them are dropped like unlabelled rows.
    """
    from bot4.research.windows import check_length, has_history, window_names, window_rows

    sequence_length = check_length(sequence_length)
    if features is None:
        from bot4.features import FeatureConfig, compute

        features = compute(data, feature_config or FeatureConfig(), progress=progress)
    inst = _pick_instrument(np.asarray(features.instruments), instrument)
    sel = np.flatnonzero(np.asarray(features.instruments) == inst)
    matrix = features.matrix[sel]
    ts = np.asarray(features.timestamps, dtype=np.int64)[sel]
    mid = matrix[:, features.names.index(MID_COLUMN)]
    label, end = forward_labels(ts, mid, horizon, dead_zone_bp, horizon_unit)
    end_idx = label_end_index(ts, end, horizon_unit)
    split = chronological_split(ts.size, end_idx, fractions)
    parts, start = {}, 0
    keep_rows = []
    for name, idx in zip(SLICES, (split.train, split.calibration, split.test)):
        kept = idx[(label[idx] != UNDEFINED) & has_history(idx, sequence_length)]  # after the split:
                                                # the purge used all rows
        keep_rows.append(kept)
        parts[name] = np.arange(start, start + kept.size, dtype=np.int64)
        start += kept.size
    rows = np.concatenate(keep_rows) if keep_rows else np.zeros(0, np.int64)
    X = window_rows(matrix, rows, sequence_length)
    y = label[rows].astype(np.int8)
    t_rows = ts[rows]
    spans = {}
    for name in SLICES:
        idx = parts[name]
        spans[name] = ([int(t_rows[idx[0]]), int(t_rows[idx[-1]]), int(idx.size)] if idx.size
                       else [None, None, 0])
    label_info = {"horizon": int(horizon), "unit": horizon_unit, "dead_zone_bp": float(dead_zone_bp),
                  "definition": label_definition(int(horizon), horizon_unit, dead_zone_bp)}
    return Dataset(X=X, y=y, timestamps=t_rows, rows=rows,
                   names=window_names(features.names, sequence_length), label=label_info, train=parts["train"],
                   calibration=parts["calibration"], test=parts["test"], gaps=tuple(split.gaps),
                   n_feature_rows=int(ts.size), instrument=inst, spans=spans,
                   label_end_ns=ts[np.minimum(end_idx[rows], ts.size - 1)], sequence_length=sequence_length)
