"""Shared by the services tests: the pinned engine setup and field-by-field comparison of what a
paper session published against a backtest's result arrays."""

from __future__ import annotations

import math

import msgspec
import numpy as np
from engine.pinned_outputs import CONFIG, MODEL_DIR

__all__ = ["CONFIG", "MODEL_DIR", "assert_same_as_backtest", "message_fields"]


def message_fields(tp: type) -> list[str]:
    return [f.name for f in msgspec.structs.fields(tp) if f.name not in ("v", "trace")]


def _column(msgs: list, name: str) -> list:
    return [getattr(m, name) for m in msgs]


def assert_same_as_backtest(paper, whole) -> None:
    """Orders and fills field for field, pnl exactly, decision count."""
    from bot4 import contracts as c

    assert len(paper.orders) == whole.orders.size and len(paper.fills) == whole.fills.size
    for name in message_fields(c.OrderEvent):
        assert _column(paper.orders, name) == whole.orders[name].tolist(), f"orders.{name}"
    for name in message_fields(c.Fill):
        if name == "exec_id":  # the engine numbers executions 1, 2, ... in the order it books them
            assert _column(paper.fills, name) == list(range(1, whole.fills.size + 1))
        elif name == "maker":
            assert _column(paper.fills, name) == [bool(x) for x in whole.fills[name]]
        else:
            assert _column(paper.fills, name) == whole.fills[name].tolist(), f"fills.{name}"
    assert paper.decisions == whole.decisions.size
    assert paper.pnl == whole.pnl and math.isfinite(paper.pnl)
    assert np.isfinite(whole.fills["fee"]).all()


def journal_size(d) -> int:
    """Bytes a journal directory holds (its lock file aside; 0 before it exists)."""
    from pathlib import Path

    try:
        return sum(f.stat().st_size for f in Path(d).iterdir() if f.suffix != ".lock")
    except FileNotFoundError:
        return 0
