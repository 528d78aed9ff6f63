"""Control plane (topic CONTROL, replies on CONTROL_REPLIES): commands a running session obeys and
its answers. A reply carries the command's trace id so a client matches it to its request.

ConfigUpdate carries bot4.config.RiskConfig itself (the Structs made from the core's declaration):
its fields, units and bounds are checked at decode exactly as when the TOML is loaded, and a
field the core does not have is refused. Nested config Structs travel as maps (by field name)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from bot4.config.risk import RiskConfig
from bot4.contracts.base import Instrument, Message, TsNs

Sha256Hex = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$", description="sha256 hex digest")]


class Kill(Message, frozen=True, kw_only=True, tag="kill"):
    """Trip the kill switch: cancel every order, then close positions reduce-only until flat;
    no new exposure until restarted. With `instrument`, halt that one only (cancel, close, its
    strategy never called again); the kill switch stays untouched and the others trade on."""

    ts: TsNs
    reason: str = ""
    instrument: Instrument | None = None


class Flatten(Message, frozen=True, kw_only=True, tag="flatten"):
    """Close the position of `instrument` (None = every instrument) and cancel its orders;
    trading continues afterwards."""

    ts: TsNs
    instrument: Instrument | None = None


class Pause(Message, frozen=True, kw_only=True, tag="pause"):
    """Stop sending new orders for `instrument` (None = all); working orders stay."""

    ts: TsNs
    instrument: Instrument | None = None


class Resume(Message, frozen=True, kw_only=True, tag="resume"):
    """Undo Pause for `instrument` (None = all)."""

    ts: TsNs
    instrument: Instrument | None = None


class SwapModel(Message, frozen=True, kw_only=True, tag="swap_model"):
    """Load the model directory `path` and trade with it from the next decision; `sha256` is the
    digest the model must have (a mismatch or a bad model is refused and the old model stays)."""

    ts: TsNs
    path: str
    sha256: Sha256Hex


class RefreshWeights(Message, frozen=True, kw_only=True, tag="refresh_weights"):
    """Recompute every instrument's adaptive ensemble weights now, from the losses so far
    (core/inference/ensemble.hpp; Engine::refresh_ensemble_weights). The reply's data holds the
    number of instruments refreshed (0 without an adaptive [ensemble])."""

    ts: TsNs


class SetParameter(Message, frozen=True, kw_only=True, tag="set"):
    """Set one config field by its dotted TOML path (e.g. "strategy.long_threshold",
    "risk.pre_trade.max_position"); the receiver validates it against the config schema."""

    ts: TsNs
    key: Annotated[str, msgspec.Meta(min_length=1)]
    value: bool | int | float | str


class ConfigUpdate(Message, frozen=True, kw_only=True, tag="config"):
    """Replace the risk configuration as a whole (sizing, pre-trade limits, kill switch)."""

    ts: TsNs
    risk: RiskConfig


class Status(Message, frozen=True, kw_only=True, tag="status"):
    """Ask for the session's state; the reply's `data` holds it."""

    ts: TsNs


Command = Kill | Flatten | Pause | Resume | SwapModel | RefreshWeights | SetParameter | ConfigUpdate | Status


class CommandReply(Message, frozen=True, kw_only=True, tag="reply"):
    """The answer to one command (same trace id). command: the command's tag. ok: it was applied;
    otherwise `error` says why. data: the result (state for Status), builtin types only."""

    ts: TsNs
    command: str
    ok: bool
    error: str = ""
    data: dict[str, Any] = msgspec.field(default_factory=dict)
