"""Decision messages (topic DECISIONS): what the strategy decided at one decision point, the
fields of the core's decision record (core/engine/records.hpp DecisionRec, same names and units),
and what each shadow model scored at that point (ScoreRec)."""

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


class ShadowScore(Message, frozen=True, kw_only=True, tag="shadow_score"):
    """A shadow (challenger) model's output at one decision, on the same feature row as the
    champion's p in the Decision of the same ts and instrument; logged, never traded. ts: the
    decision's time. slot: the model slot (1, 2, ...: the order the shadows were given in; 0 is
    the champion). p: the shadow's output (NaN if it produced none)."""

    ts: TsNs
    instrument: Instrument
    slot: Annotated[int, msgspec.Meta(ge=1, le=2**32 - 1)]
    p: float


#: What travels on DECISIONS.
DecisionMessage = Decision | ShadowScore
