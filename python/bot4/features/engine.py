"""`compute`: feature rows from event arrays through the core FeatureEngine.

The core merges the book, order and trade streams by availability time (the running maximum of
each stream's ts_local) and writes a row at every decision point. Here the streams are cut into
chunks at common times so a progress bar can move; the engine keeps its state across chunks, so
the rows are identical to one call over the whole input (a test checks it).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bot4 import _core
from bot4.data.market_data import MarketData
from bot4.events import BOOK_EVENT, ORDER_EVENT, TRADE_EVENT
from bot4.features.config import FeatureConfig


@dataclass
class FeatureSet:
    """The rows `compute` returns: one row per decision point, columns in catalog() order.

    timestamps: int64 (rows,), ns on the engine clock (running maximum of ts_local) of each row.
    matrix: float64 (rows, features), features = len(names) (88 today); NaN where a feature is
    undefined (warm-up, empty side, too few samples). names: the column names (feature_names()).
    valid: bool (rows, features), True where matrix is finite. instruments: uint32 (rows,),
    instrument id of each row. counters: the engine's counters (events seen and rejected per stream,
    messages, ...). kernel_level: SIMD level of the window kernels (e.g. "avx2", "scalar").
    seconds: wall time of compute().
    """

    timestamps: np.ndarray     # int64 ns, engine clock of each row
    matrix: np.ndarray         # float64 (rows, features); NaN where a feature is undefined
    names: list[str]
    valid: np.ndarray          # bool (rows, features): finite value
    instruments: np.ndarray    # uint32 instrument id of each row
    counters: dict = field(default_factory=dict)
    kernel_level: str = ""
    seconds: float = 0.0

    def column(self, name: str) -> np.ndarray:
        """The float64 (rows,) column of feature `name` (ValueError if there is no such feature)."""
        return self.matrix[:, self.names.index(name)]

    def summary(self) -> dict:
        """Rows, feature count, fraction of finite values, kernel level, seconds and counters, JSON-able."""
        return {
            "rows": int(self.matrix.shape[0]),
            "features": len(self.names),
            "valid_fraction": float(self.valid.mean()) if self.valid.size else 0.0,
            "kernel_level": self.kernel_level,
            "seconds": round(self.seconds, 3),
            "counters": self.counters,
        }


def catalog() -> list[dict]:
    """Name, family, unit, window and one-line definition of every feature, in column order."""
    keys = ("name", "family", "unit", "window", "definition")
    return [dict(zip(keys, entry)) for entry in _core.features.catalog()]


def feature_names() -> list[str]:
    """The feature column names in matrix order (from the core catalogue)."""
    return [entry[0] for entry in _core.features.catalog()]


def _empty(dtype) -> np.ndarray:
    return np.zeros(0, dtype)


def _availability(a: np.ndarray) -> np.ndarray:
    return np.maximum.accumulate(a["ts_local"]) if len(a) else np.zeros(0, np.int64)


def make_engine(data: MarketData, config: FeatureConfig | None = None):
    """A core FeatureEngine with every instrument of `data` registered (L3 when it has orders)."""
    config = config or FeatureConfig()
    engine = _core.features.FeatureEngine(config.to_core())
    l3_ids = set(np.unique(data.orders["instrument"]).tolist()) if len(data.orders) else set()
    for iid, spec in data.specs.items():
        engine.add_instrument(int(iid), tick_size=float(spec.tick_size), lot_size=float(spec.lot_size),
                              l3=int(iid) in l3_ids)
    return engine


def compute(events: MarketData, config: FeatureConfig | None = None, *, progress: bool = False,
            chunks: int = 50) -> FeatureSet:
    """Feature rows for `events` (a MarketData from bot4.data.load or the simulator).

    config: FeatureConfig (None: FeatureConfig(), a row per book message). Returns a FeatureSet:
    matrix float64 (rows, features), timestamps int64 ns (rows,), instruments uint32 (rows,). The
    events go to the engine in `chunks` time slices only so that `progress` (a tqdm bar on stderr)
    can move; the rows equal those of one call over the whole input. TypeError if `events` is not
    a MarketData.
    """
    if not isinstance(events, MarketData):
        raise TypeError("compute() takes a MarketData (bot4.data.load, bot4.sim.generate)")
    config = config or FeatureConfig()
    engine = make_engine(events, config)
    book = np.ascontiguousarray(events.book) if len(events.book) else _empty(BOOK_EVENT)
    orders = np.ascontiguousarray(events.orders) if len(events.orders) else _empty(ORDER_EVENT)
    trades = np.ascontiguousarray(events.trades) if len(events.trades) else _empty(TRADE_EVENT)
    keys = [_availability(a) for a in (book, orders, trades)]
    last = max((int(k[-1]) for k in keys if len(k)), default=0)
    first = min((int(k[0]) for k in keys if len(k)), default=0)
    # In float and clipped below 2**63: the linspace of int64 extremes rounds past the int64 range.
    cuts = np.clip(np.linspace(float(first), float(last), max(chunks, 1) + 1)[1:], float(first),
                   np.nextafter(2.0**63, 0)).astype(np.int64)
    cuts[-1] = last
    started = time.perf_counter()
    bar = None
    if progress:
        from tqdm import tqdm
        import sys
        bar = tqdm(total=len(book) + len(orders) + len(trades), unit="ev", unit_scale=True,
                   desc="features", file=sys.stderr, leave=False, dynamic_ncols=True)
    pos = [0, 0, 0]
    for cut in cuts:
        ends = [int(np.searchsorted(k, cut, side="right")) for k in keys]
        engine.run(book[pos[0]:ends[0]], orders[pos[1]:ends[1]], trades[pos[2]:ends[2]])
        if bar is not None:
            bar.update(sum(e - p for e, p in zip(ends, pos)))
        pos = ends
    if bar is not None:
        bar.close()
    seconds = time.perf_counter() - started
    matrix = np.array(engine.matrix)
    return FeatureSet(
        timestamps=np.array(engine.timestamps),
        matrix=matrix,
        names=feature_names(),
        valid=np.isfinite(matrix),
        instruments=np.array(engine.instruments),
        counters=engine.counters,
        kernel_level=engine.kernel_level,
        seconds=seconds,
    )


def compute_parts(parts: Iterable[MarketData], config: FeatureConfig | None = None, *,
                  on_rows: Callable[[FeatureSet], None], progress: bool = False) -> dict:
    """Feature rows of a recording given as consecutive MarketData parts in receive order
    (bot4.sources.stream_parts, NativeBinanceLoader.iter_chunks, bot4.sim.generate_parts), handed
    to `on_rows` as a FeatureSet per piece and then dropped by the engine, so memory holds one
    part whatever the recording's size. The parts are re-cut at watermarks
    (bot4.backtest.streaming.watermarked), so the rows handed out, in order, equal compute()'s over
    the whole recording. The instruments (and which are L3) are those of the first part.

    Returns the summary of the whole run as FeatureSet.summary() gives it (rows, features,
    valid_fraction, kernel_level, seconds, counters) plus `events`."""
    import sys

    from bot4.backtest.streaming import watermarked

    config = config or FeatureConfig()
    it = iter(parts)
    first = next(it, None)
    if first is None:
        raise ValueError("no parts to compute")
    if not isinstance(first, MarketData):
        raise TypeError("compute_parts() takes MarketData parts (bot4.sources.stream_parts)")
    engine = make_engine(first, config)
    names = feature_names()
    rows = valid = events = 0
    started = shown = time.perf_counter()

    def chained():
        yield first
        yield from it

    for piece in watermarked(chained()):
        book = np.ascontiguousarray(piece.book) if len(piece.book) else _empty(BOOK_EVENT)
        orders = np.ascontiguousarray(piece.orders) if len(piece.orders) else _empty(ORDER_EVENT)
        trades = np.ascontiguousarray(piece.trades) if len(piece.trades) else _empty(TRADE_EVENT)
        engine.run(book, orders, trades)
        events += len(book) + len(orders) + len(trades)
        if engine.rows:
            matrix = np.array(engine.matrix)
            finite = np.isfinite(matrix)
            on_rows(FeatureSet(timestamps=np.array(engine.timestamps), matrix=matrix, names=names, valid=finite,
                               instruments=np.array(engine.instruments), kernel_level=engine.kernel_level))
            rows += matrix.shape[0]
            valid += int(finite.sum())
            engine.clear_rows()
        now = time.perf_counter()
        if progress and now - shown >= 1.0:
            shown = now
            print(f"features: {events:,} events, {rows:,} rows, {events / (now - started):,.0f} events/s",
                  file=sys.stderr, flush=True)
    return {"rows": rows, "features": len(names), "valid_fraction": valid / (rows * len(names)) if rows else 0.0,
            "kernel_level": engine.kernel_level, "seconds": round(time.perf_counter() - started, 3),
            "counters": engine.counters, "events": events}


class RowWriter:
    """Feature rows appended to one Parquet file piece by piece (the columns save() writes), for
    compute_parts' on_rows; close() finishes the file (an empty table when no row came)."""

    def __init__(self, path) -> None:
        import pyarrow.parquet as pq

        self.path = path
        self._pq = pq
        self._writer: Any = None   # a pyarrow.parquet.ParquetWriter once the first rows came
        self.rows = 0

    def __call__(self, features: FeatureSet) -> None:
        """Append one piece's rows (the first piece fixes the file's schema)."""
        table = _rows_table(features)
        if self._writer is None:
            self._writer = self._pq.ParquetWriter(self.path, table.schema)
        self._writer.write_table(table)
        self.rows += table.num_rows

    def close(self) -> None:
        """Finish the file; with no rows written, an empty table with the columns save() writes."""
        if self._writer is None:
            empty = FeatureSet(timestamps=np.zeros(0, np.int64), matrix=np.zeros((0, len(feature_names()))),
                               names=feature_names(), valid=np.zeros((0, len(feature_names())), bool),
                               instruments=np.zeros(0, np.uint32))
            self._pq.write_table(_rows_table(empty), self.path)
            return
        self._writer.close()


def _rows_table(features: FeatureSet):
    import pyarrow as pa

    columns = {"timestamp": features.timestamps, "instrument": features.instruments}
    for i, name in enumerate(features.names):
        columns[name] = features.matrix[:, i]
    return pa.table(columns)


def save(features: FeatureSet, path) -> None:
    """Writes .npz (numpy) or .parquet (pyarrow, one column per feature)."""
    from pathlib import Path

    path = Path(path)
    if path.suffix == ".npz":
        np.savez_compressed(path, timestamps=features.timestamps, matrix=features.matrix,
                            names=np.array(features.names), valid=features.valid,
                            instruments=features.instruments)
    elif path.suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise RuntimeError("writing .parquet needs pyarrow (pip install pyarrow), or use .npz") from exc
        pq.write_table(_rows_table(features), path)
    else:
        raise ValueError(f"unsupported output format '{path.suffix}': use .npz or .parquet")


def catalog_markdown() -> str:
    """The catalogue as a Markdown table (docs/features.md is this text; a test keeps it so)."""
    lines = [
        "# Feature catalogue",
        "",
        "Generated from the core catalogue (`bot4.features.catalog()`, core/features/feature_catalog.hpp).",
        "Column order is the order of the feature matrix. Windows name the `FeatureConfig` field that",
        "sets them. A value that is undefined (warm-up, empty side, too few samples) is NaN and its",
        "validity flag is false.",
        "",
        "| # | name | family | unit | window | definition |",
        "|---|---|---|---|---|---|",
    ]
    for i, f in enumerate(catalog()):
        lines.append(f"| {i} | `{f['name']}` | {f['family']} | {f['unit']} | {f['window']} | {f['definition']} |")
    return "\n".join(lines) + "\n"
