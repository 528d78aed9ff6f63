from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot4.errors import DecimalParseError, OffGridError
from bot4.instrument import DecimalGrid, InstrumentSpec

BTCUSDT = InstrumentSpec(instrument_id=1, symbol="BTCUSDT", venue="binance-usdm",
                         tick_size="0.10", lot_size="0.001")


@pytest.mark.parametrize("text, ticks", [("61800.20", 618002), ("61800.2", 618002), ("0.1", 1),
                                         ("61800", 618000), ("61800.2000000", 618002),
                                         (".5", 5), ("-3.3", -33), ("1e1", 100)])
def test_exact_price_parsing(text, ticks):
    assert BTCUSDT.price_ticks(text) == ticks


@pytest.mark.parametrize("text", ["61800.25", "0.05", "61800.2000001"])
def test_off_grid_price_is_rejected(text):
    with pytest.raises(OffGridError):
        BTCUSDT.price_ticks(text)


@pytest.mark.parametrize("text", ["nan", "NaN", "inf", "-Infinity", "", "abc", "1.2.3", "١٢"])
def test_non_numbers_are_rejected(text):
    with pytest.raises(DecimalParseError):
        BTCUSDT.price_ticks(text)


def test_grid_with_non_power_of_ten_step():
    grid = DecimalGrid("0.25")
    assert grid.to_units("4810.25") == 19241
    with pytest.raises(OffGridError):
        grid.to_units("4810.10")


@given(units=st.integers(min_value=-10**12, max_value=10**12),
       step=st.sampled_from(["0.1", "0.01", "0.001", "0.25", "5", "0.00000001"]))
def test_round_trip_is_exact(units, step):
    grid = DecimalGrid(step)
    text = grid.to_str(units)
    assert grid.to_units(text) == units
    assert Decimal(text) == Decimal(step) * units


def test_spec_is_frozen_and_rejects_unknown_fields():
    with pytest.raises(AttributeError):
        BTCUSDT.tick_size = "1"  # type: ignore[misc]
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"instrument_id": 1, "symbol": "X", "venue": "v", "tick_size": "1",
                         "lot_size": "1", "colour": "red"}, InstrumentSpec)
