"""Signal messages (topic SIGNALS): what one agent expects of one instrument at one decision time
(bot4.portfolio.agents emits them; the meta-weighter, selection and sizing consume them)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from bot4.contracts.base import Instrument, Message, TsNs

# Finite bounds on purpose: a NaN or infinite expectation is a rejected frame, never a signal.
Bp = Annotated[float, msgspec.Meta(ge=-1e6, le=1e6, description="basis points")]
NonNegBp = Annotated[float, msgspec.Meta(ge=0.0, le=1e6, description="basis points, >= 0")]
Unit = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]


class Signal(Message, frozen=True, kw_only=True, tag="signal"):
    """ts: decision time (engine clock, ns). instrument: who it is about. agent: the emitting
    agent's id; model_version: the version of its fitted parameters. mu: expected return over the
    horizon (bp of the mid); sigma: its uncertainty (bp, from the agent's conditional quantiles);
    q10 / q50 / q90: those quantiles (bp). horizon: its length in horizon_unit ("rows": feature
    rows of that instrument, "ns": engine-clock time). confidence: in [0, 1] (0: no view).
    regime: the regime id the agent saw (-1: undefined)."""

    ts: TsNs
    instrument: Instrument
    agent: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    model_version: Annotated[str, msgspec.Meta(max_length=64)] = ""
    mu: Bp
    sigma: NonNegBp
    q10: Bp
    q50: Bp
    q90: Bp
    horizon: Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]
    horizon_unit: Literal["rows", "ns"] = "rows"
    confidence: Unit
    regime: Annotated[int, msgspec.Meta(ge=-1, le=2**31 - 1)] = -1
