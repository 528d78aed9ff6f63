"""The Signal contract: a frame whose expectation is not a finite number, whose sigma is negative
or whose confidence leaves [0, 1] is a counted rejection, never a signal."""

from __future__ import annotations

import math

import msgspec
import pytest

from bot4 import contracts as c


def _frame(**fields) -> bytes:
    base = dict(ts=1, instrument=3, agent="meanrev", model_version="v1", mu=1.5, sigma=2.0, q10=-1.0, q50=1.5,
                q90=4.0, horizon=50, horizon_unit="rows", confidence=0.4, regime=1, trace=7)
    base.update(fields)
    # encode through a plain struct so invalid values can reach the wire at all
    return msgspec.msgpack.encode(["signal", c.SCHEMA_VERSION, base.pop("trace"), *base.values()])


def test_a_valid_frame_decodes_to_the_signal():
    codec = c.Codec(c.SIGNALS)
    msg = codec.decode(_frame())
    assert isinstance(msg, c.Signal) and msg.mu == 1.5 and msg.trace == 7 and msg.horizon_unit == "rows"
    assert codec.decoded == 1 and sum(codec.rejected.values()) == 0


@pytest.mark.parametrize("bad", [dict(mu=math.nan), dict(mu=math.inf), dict(sigma=-0.5), dict(confidence=1.5),
                                 dict(horizon=0), dict(horizon_unit="bars"), dict(agent=""), dict(regime=-2)])
def test_invalid_fields_are_counted_rejections(bad):
    codec = c.Codec(c.SIGNALS)
    out = codec.decode(_frame(**bad))
    assert isinstance(out, c.Rejection) and out.reason == "invalid_field"
    assert codec.decoded == 0 and codec.rejected["invalid_field"] == 1 and sum(codec.rejected.values()) == 1
