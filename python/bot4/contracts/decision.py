"""Decision messages (topic DECISIONS): what the strategy decided at one decision point, the
fields of the core's decision record (core/engine/records.hpp DecisionRec, same names and units)."""

from __future__ import annotations

from typing import Annotated

import msgspec

from bot4.contracts.base import Instrument, Lots, Message, TsNs
from bot4.contracts.codes import DecisionAction


class Decision(Message, frozen=True, kw_only=True, tag="decision"):
    """ts: decision time (local clock). p: model slot 0's output (NaN without a model).
    target: the strategy's signal (+1 / -1 / 0). action: DECISION_ACTIONS code. position: lots
    after the decision."""

    ts: TsNs
    instrument: Instrument
    p: float
    target: Annotated[int, msgspec.Meta(ge=-128, le=127)]
    action: DecisionAction
    position: Lots
