"""The order, fill, decision and position messages carry the core's record fields under the same
names (core/engine/records.hpp), checked against the arrays a backtest returns."""

from __future__ import annotations

import msgspec
import pytest

from bot4 import contracts as c
from bot4.backtest import run
from bot4.sim.generate import generate

#: message type -> (result array, record fields the message leaves out on purpose)
PAIRS = {c.OrderEvent: ("orders", set()), c.Fill: ("fills", {"accepted"}), c.Decision: ("decisions", set()),
         c.Position: ("equity", set())}


@pytest.fixture(scope="module")
def result():
    return run(generate(seed=3, n_events=2000))


@pytest.mark.parametrize("tp", list(PAIRS), ids=lambda t: t.__name__)
def test_message_fields_cover_the_core_record(result, tp):
    table, left_out = PAIRS[tp]
    record = {n for n in getattr(result, table).dtype.names if not n.startswith("pad")}
    fields = {f.name for f in msgspec.structs.fields(tp)}
    assert record - left_out <= fields, f"{tp.__name__} lacks {sorted(record - left_out - fields)} of {table}"
