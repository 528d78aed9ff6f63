"""Position messages (topic POSITIONS): the ledger of one instrument after a decision or a fill;
the fields of the core's equity record (EquityRec), same names and units."""

from __future__ import annotations

from bot4.contracts.base import Instrument, Lots, Message, TsNs


class Position(Message, frozen=True, kw_only=True, tag="position"):
    """position: lots. realised, unrealised, fees, equity (= realised + unrealised - fees): quote
    units of this instrument. total_equity: all instruments, each marked at its last mid."""

    ts: TsNs
    instrument: Instrument
    position: Lots
    realised: float
    unrealised: float
    fees: float
    equity: float
    total_equity: float
