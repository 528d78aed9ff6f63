"""Instrument specs and exact decimal <-> integer tick/lot conversion.

Venue prices and sizes arrive as decimal strings. They are converted to integers at the edge
without ever passing through a binary float; a value that is not a whole number of ticks (or
lots) is an OffGridError, never silently rounded.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

import msgspec

from bot4.errors import DecimalParseError, OffGridError


class DecimalGrid:
    """A grid of multiples of `step` (a decimal string such as "0.10" or "0.001")."""

    __slots__ = ("step", "_digits", "_unit", "_scale")

    def __init__(self, step: str):
        try:
            value = Decimal(step)
        except InvalidOperation as exc:
            raise DecimalParseError(f"grid step {step!r} is not a decimal number") from exc
        if not value.is_finite() or value <= 0:
            raise DecimalParseError(f"grid step {step!r} must be a positive finite decimal")
        self.step = step
        exponent = value.normalize().as_tuple().exponent
        self._digits = max(0, -int(exponent))
        self._scale = 10**self._digits
        self._unit = int(value * self._scale)

    @property
    def digits(self) -> int:
        """Decimal places needed to write any grid value exactly."""
        return self._digits

    def to_units(self, text: str) -> int:
        """Exact integer number of steps in `text`; raises on non-numbers and off-grid values."""
        s = text.strip()
        negative = s.startswith("-")
        body = s[1:] if negative or s.startswith("+") else s
        int_part, dot, frac = body.partition(".")
        if not (int_part.isdigit() or (dot and int_part == "")) or (frac and not frac.isdigit()) or (
            int_part == "" and frac == ""
        ) or not body.isascii():
            return self._to_units_slow(text)
        digits = self._digits
        if len(frac) > digits:
            if frac[digits:].strip("0"):
                raise OffGridError(f"{text!r} is not a multiple of {self.step}")
            frac = frac[:digits]
        scaled = int((int_part or "0") + frac.ljust(digits, "0"))
        units, remainder = divmod(scaled, self._unit)
        if remainder:
            raise OffGridError(f"{text!r} is not a multiple of {self.step}")
        return -units if negative else units

    def _to_units_slow(self, text: str) -> int:
        if not isinstance(text, str) or not text.isascii():
            raise DecimalParseError(f"{text!r} is not an ASCII decimal number")
        try:
            value = Decimal(text.strip())
        except (InvalidOperation, AttributeError) as exc:
            raise DecimalParseError(f"{text!r} is not a decimal number") from exc
        if not value.is_finite():
            raise DecimalParseError(f"{text!r} is not a finite number")
        units = value * self._scale / self._unit
        if units != units.to_integral_value():
            raise OffGridError(f"{text!r} is not a multiple of {self.step}")
        return int(units)

    def to_decimal(self, units: int) -> Decimal:
        """The exact decimal value of `units` grid steps."""
        return Decimal(units * self._unit) / self._scale

    def to_str(self, units: int) -> str:
        """`units` grid steps as decimal text with the grid's digits (e.g. 12345 ticks of 0.01 -> '123.45').
        """
        return f"{self.to_decimal(units):.{self._digits}f}"


class InstrumentSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What a price tick and a size lot are for one instrument.

    tick_size, lot_size: decimal strings (price units per tick, quantity units per lot).
    contract_size: quantity multiplier in quote or base currency (e.g. 100 USD per BTCUSD_PERP
    contract); "1" for linear instruments quoted in the base asset.
    """

    instrument_id: int
    symbol: str
    venue: str
    tick_size: str
    lot_size: str
    contract_size: str = "1"
    inverse: bool = False

    @property
    def price_grid(self) -> DecimalGrid:
        return _grid(self.tick_size)

    @property
    def qty_grid(self) -> DecimalGrid:
        return _grid(self.lot_size)

    @property
    def price_precision(self) -> int:
        return self.price_grid.digits

    @property
    def qty_precision(self) -> int:
        return self.qty_grid.digits

    def price_ticks(self, text: str) -> int:
        """A decimal price text as integer ticks (ValueError if it is not on the tick grid)."""
        return self.price_grid.to_units(text)

    def qty_lots(self, text: str) -> int:
        """A decimal quantity text as integer lots (ValueError if it is not on the lot grid)."""
        return self.qty_grid.to_units(text)

    def price_str(self, ticks: int) -> str:
        """Integer ticks as decimal price text."""
        return self.price_grid.to_str(ticks)

    def qty_str(self, lots: int) -> str:
        """Integer lots as decimal quantity text."""
        return self.qty_grid.to_str(lots)

    def price_float(self, ticks: int) -> float:
        """For display and features only."""
        return float(self.price_grid.to_decimal(ticks))


_GRIDS: dict[str, DecimalGrid] = {}


def _grid(step: str) -> DecimalGrid:
    grid = _GRIDS.get(step)
    if grid is None:
        grid = _GRIDS[step] = DecimalGrid(step)
    return grid
