"""A backtest's records as Parquet files (orders, fills, decisions, equity), so a run can be
analysed with any Parquet reader, without Python access to the BacktestResult.

One row per record, every field of the engine's record as its own column (same name, same
integer width), plus for each price in ticks a `<field>_px` column in venue units (ticks x
tick size) and for each size in lots a `<field>_size` column in base units (lots x lot size);
enum codes also get a `<field>_name` column. Table-level metadata holds tick_size, lot_size and
the column units.
"""

from __future__ import annotations

import json
import os
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from bot4.backtest.result import BacktestResult

TABLES = ("orders", "fills", "decisions", "equity")
#: Fields in ticks (int64) per table: a `<field>_px` float64 column is added in venue units.
TICK_FIELDS = {"orders": ("price",), "fills": ("price",)}
#: Fields in lots (int64) per table: a `<field>_size` float64 column is added in base units.
LOT_FIELDS = {"orders": ("qty", "filled"), "fills": ("qty",), "decisions": ("position",),
              "equity": ("position",)}
SIDES = ("buy", "sell")


def _enum_names() -> dict[str, dict[str, tuple[str, ...]]]:
    from bot4.backtest import engine

    orders = {"side": SIDES, "type": engine.ORDER_TYPES, "status": engine.ORDER_STATES,
              "kind": engine.ORDER_EVENT_KINDS, "role": engine.ORDER_ROLES}
    return {"orders": orders, "fills": {"side": SIDES, "role": engine.ORDER_ROLES}}


def _decimals(step: float) -> int:
    """Decimal places of a tick or lot size (0.1 -> 1, 0.001 -> 3), so ticks x size prints exact."""
    exp = Decimal(repr(float(step))).normalize().as_tuple().exponent
    return max(0, -int(exp))


def _scaled(values: np.ndarray, step: float) -> np.ndarray:
    return np.round(values.astype(np.float64) * step, _decimals(step))


def table(result: BacktestResult, name: str):
    """One of TABLES as a pyarrow.Table (columns as described in the module docstring)."""
    import pyarrow as pa

    arr = getattr(result, name)
    names = _enum_names().get(name, {})
    cols: dict[str, np.ndarray | pa.Array] = {}
    for field in arr.dtype.names or ():
        if field.startswith("pad"):
            continue
        values = np.ascontiguousarray(arr[field])
        cols[field] = values
        if field in TICK_FIELDS.get(name, ()):
            cols[f"{field}_px"] = _scaled(values, result.tick_size)
        if field in LOT_FIELDS.get(name, ()):
            cols[f"{field}_size"] = _scaled(values, result.lot_size)
        if field in names:
            labels = np.array(names[field] + ("unknown",), dtype=object)
            codes = np.minimum(values.astype(np.int64), len(labels) - 1)
            cols[f"{field}_name"] = pa.array(labels[codes], type=pa.string())
    units = {f: "ticks" for f in TICK_FIELDS.get(name, ())}
    units |= {f: "lots" for f in LOT_FIELDS.get(name, ())}
    units |= {f"{f}_px": "quote per base unit" for f in TICK_FIELDS.get(name, ())}
    units |= {f"{f}_size": "base units" for f in LOT_FIELDS.get(name, ())}
    units |= {"ts": "ns since epoch (local clock)"}
    if name == "equity":
        units |= {k: "quote units" for k in ("realised", "unrealised", "fees", "equity")}
    if name == "fills":
        units |= {"fee": "quote units"}
    meta = {"bot4.table": name, "bot4.tick_size": repr(float(result.tick_size)),
            "bot4.lot_size": repr(float(result.lot_size)), "bot4.units": json.dumps(units)}
    return pa.table(cols).replace_schema_metadata(meta)


def write_parquet(result: BacktestResult, out_dir: str | Path) -> dict[str, Path]:
    """Write `<out_dir>/{orders,fills,decisions,equity}.parquet`; returns table name -> path.
    Each file is written under a temporary name and renamed when complete."""
    import pyarrow.parquet as pq

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name in TABLES:
        path = out / f"{name}.parquet"
        tmp = out / f".{name}.parquet.partial"
        try:
            pq.write_table(table(result, name), tmp)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        paths[name] = path
    return paths
