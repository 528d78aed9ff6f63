"""Codec: round trips of every message type (hypothesis, from the schema itself), and every kind
of bad frame comes back as a Rejection counted under its reason, never an exception."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import msgspec
import numpy as np
import pytest
from contract_samples import TS, samples, topic_of_type
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from message_strategies import for_struct

from bot4 import contracts as c
from bot4 import events
from bot4.contracts.codes import ORDER_TYPES
from bot4.errors import MessageRejected

GOLDEN = Path(__file__).parent / "golden"
SAMPLES = samples()
TYPES = c.message_types()


def _golden(tag: str) -> bytes:
    return (GOLDEN / f"{tag}.msgpack").read_bytes()


def _edit(frame: bytes, index: int, value) -> bytes:
    items = msgspec.msgpack.decode(frame)
    items[index] = value
    return msgspec.msgpack.encode(items)


def _only(codec: c.Codec, reason: str, n: int = 1) -> None:
    assert codec.rejected[reason] == n
    assert sum(codec.rejected.values()) == n, codec.rejected
    assert codec.decoded == 0


@pytest.mark.parametrize("tp", TYPES, ids=lambda t: t.__struct_config__.tag)
@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_round_trip(tp, data):
    msg = data.draw(for_struct(tp))
    codec = c.Codec(topic_of_type(tp))
    frame = codec.encode(msg)
    back = codec.decode(frame)
    assert type(back) is tp
    assert back == msg
    assert codec.encode(back) == frame  # one canonical encoding
    buf = bytearray(b"xx")
    codec.encode_into(msg, buf, 2)
    assert bytes(buf[2:]) == frame


def test_nan_probability_round_trips():
    codec = c.Codec(c.DECISIONS)
    msg = c.Decision(ts=TS, instrument=1, p=float("nan"), target=0, action=0, position=0)
    back = codec.decode(codec.encode(msg))
    assert isinstance(back, c.Decision) and math.isnan(back.p)


def test_every_message_layout_starts_with_version_and_trace():
    for tp in TYPES:
        names = [f.name for f in msgspec.structs.fields(tp)]
        assert names[:2] == ["v", "trace"], f"{tp.__name__} is missing kw_only=True: {names}"


@pytest.mark.parametrize("tag", sorted(SAMPLES))
def test_every_truncation_is_a_counted_rejection(tag):
    frame = _golden(tag)
    codec = c.Codec(topic_of_type(type(SAMPLES[tag])))
    for cut in range(len(frame)):
        out = codec.decode(frame[:cut])
        assert isinstance(out, c.Rejection) and out.reason == "truncated", (cut, out)
        assert out.size == cut
    _only(codec, "truncated", len(frame))


@pytest.mark.parametrize("tag", sorted(SAMPLES))
def test_unknown_version_is_a_counted_rejection(tag):
    frame = _golden(tag)
    codec = c.Codec(topic_of_type(type(SAMPLES[tag])))
    for version in (0, c.SCHEMA_VERSION + 1, 255):
        out = codec.decode(_edit(frame, 1, version))
        assert isinstance(out, c.Rejection) and out.reason == "unknown_version"
    _only(codec, "unknown_version", 3)


@pytest.mark.parametrize("tag", sorted(SAMPLES))
def test_a_message_of_another_topic_is_a_wrong_tag(tag):
    frame = _golden(tag)
    home = topic_of_type(type(SAMPLES[tag]))
    for topic in c.TOPICS:
        if topic == home:
            continue
        codec = c.Codec(topic)
        out = codec.decode(frame)
        assert isinstance(out, c.Rejection) and out.reason == "wrong_tag", (topic, out)
        _only(codec, "wrong_tag")
    codec = c.Codec(home)
    for bad_tag in ("no_such_type", 7, None):
        assert codec.decode(_edit(frame, 0, bad_tag)).reason == "wrong_tag"
    _only(codec, "wrong_tag", 3)


def _book_batch(n: int = 4) -> c.BookBatch:
    a = np.zeros(n, events.BOOK_EVENT)
    a["price"] = np.arange(n) + 100
    return c.pack(c.BookBatch, a, seq=1, ts=TS)


def test_wrong_payload_size_is_a_counted_rejection():
    codec = c.Codec(c.MARKET)
    good = _book_batch()
    itemsize = events.BOOK_EVENT.itemsize
    cases = [
        msgspec.structs.replace(good, data=memoryview(bytes(good.data)[:-1])),        # one byte short
        msgspec.structs.replace(good, data=memoryview(bytes(good.data) + b"\0")),     # one byte long
        msgspec.structs.replace(good, count=good.count + 1),                          # count says more
        msgspec.structs.replace(good, count=good.count - 1),                          # count says fewer
        msgspec.structs.replace(good, data=memoryview(bytes(itemsize * 3))),          # 3 records, count 4
    ]
    for msg in cases:
        out = codec.decode(codec.encode(msg))
        assert isinstance(out, c.Rejection) and out.reason == "payload_size", out
    _only(codec, "payload_size", len(cases))


def test_wrong_payload_dtype_is_a_counted_rejection():
    codec = c.Codec(c.MARKET)
    good = _book_batch()
    for name in ("TradeEvent", "OrderEvent", "float64", ""):
        out = codec.decode(codec.encode(msgspec.structs.replace(good, dtype=name)))
        assert isinstance(out, c.Rejection) and out.reason == "payload_dtype"
    _only(codec, "payload_dtype", 4)


def test_invalid_fields_are_counted_rejections():
    codec = c.Codec(c.ORDER_REQUESTS)
    frame = _golden("new")
    names = [f.name for f in msgspec.structs.fields(c.OrderIntent)]
    bad = {"qty": 0, "side": 2, "type": len(ORDER_TYPES), "instrument": -1, "id": "77", "reduce_only": 1,
           "price": 2**63}
    for field, value in bad.items():
        out = codec.decode(_edit(frame, 1 + names.index(field), value))
        assert isinstance(out, c.Rejection) and out.reason == "invalid_field", (field, out)
    items = msgspec.msgpack.decode(frame)
    # an extra field, or required fields missing (trailing fields with defaults may be left out)
    for edited in (items + [1], items[:names.index("qty") + 1]):
        assert codec.decode(msgspec.msgpack.encode(edited)).reason == "invalid_field"
    _only(codec, "invalid_field", len(bad) + 2)


def test_config_update_is_checked_against_the_core_declaration():
    codec = c.Codec(c.CONTROL)
    items = msgspec.msgpack.decode(_golden("config"))
    risk_at = 1 + [f.name for f in msgspec.structs.fields(c.ConfigUpdate)].index("risk")
    unknown = {**items[risk_at], "sizing": {**items[risk_at]["sizing"], "no_such_limit": 1}}
    out = codec.decode(_edit(_golden("config"), risk_at, unknown))
    assert out.reason == "invalid_field" and "no_such_limit" in out.detail
    sha = 1 + [f.name for f in msgspec.structs.fields(c.SwapModel)].index("sha256")
    assert codec.decode(_edit(_golden("swap_model"), sha, "AB" * 32)).reason == "invalid_field"
    _only(codec, "invalid_field", 2)


def test_garbage_and_trailing_bytes_are_malformed():
    codec = c.Codec(c.EXECUTIONS)
    for frame in (b"\xc1", _golden("fill") + b"\x00", msgspec.msgpack.encode({"t": "fill"}),
                  msgspec.msgpack.encode([]), msgspec.msgpack.encode(5)):
        out = codec.decode(frame)
        assert isinstance(out, c.Rejection) and out.reason == "malformed", (frame, out)
    _only(codec, "malformed", 5)


@settings(max_examples=300)
@given(frame=st.binary(max_size=96), topic=st.sampled_from(sorted(c.TOPICS)))
def test_any_bytes_give_a_message_or_a_counted_rejection(frame, topic):
    codec = c.Codec(topic)
    out = codec.decode(frame)
    if isinstance(out, c.Rejection):
        assert out.reason in c.REJECT_REASONS and codec.rejected[out.reason] == 1 and codec.decoded == 0
    else:
        assert type(out) in c.message_types() and codec.decoded == 1


@given(tag=st.sampled_from(sorted(SAMPLES)), data=st.data())
def test_any_single_byte_flip_never_raises(tag, data):
    frame = bytearray(_golden(tag))
    i = data.draw(st.integers(0, len(frame) - 1))
    frame[i] ^= data.draw(st.integers(1, 255))
    codec = c.Codec(topic_of_type(type(SAMPLES[tag])))
    out = codec.decode(bytes(frame))
    assert codec.decoded + sum(codec.rejected.values()) == 1
    assert isinstance(out, (c.Rejection, c.Message))


def test_decode_strict_raises_with_the_reason_and_still_counts():
    codec = c.Codec(c.POSITIONS)
    with pytest.raises(MessageRejected) as err:
        codec.decode_strict(_golden("position")[:-3])
    assert err.value.reason == "truncated"
    assert codec.rejected["truncated"] == 1
    assert codec.decode_strict(_golden("position")) == SAMPLES["position"]


def test_encoding_a_message_of_another_topic_is_a_type_error():
    codec = c.Codec(c.ORDER_REQUESTS)
    with pytest.raises(TypeError, match="Fill is not carried"):
        codec.encode(SAMPLES["fill"])
    with pytest.raises(TypeError):
        codec.encode_into(SAMPLES["fill"], bytearray())
    assert codec.encoded == 0


def test_unknown_topic_is_refused():
    with pytest.raises(ValueError, match="unknown topic"):
        c.Codec(b"nope/")


def test_rejections_are_logged_sparsely(caplog):
    codec = c.Codec(c.TELEMETRY)
    with caplog.at_level(logging.WARNING, logger="bot4.contracts"):
        for _ in range(12):
            codec.decode(b"\xc1")
    logged = [r for r in caplog.records if "malformed" in r.getMessage()]
    assert [r.getMessage().split("#")[1].split(" ")[0] for r in logged] == ["1", "10"]
    assert codec.counters()["rejected.malformed"] == 12


def test_counters_are_one_flat_dict():
    codec = c.Codec(c.DECISIONS)
    codec.decode(codec.encode(SAMPLES["decision"]))
    codec.decode(b"")
    assert codec.counters() == {"decoded": 1, "encoded": 1, **{f"rejected.{r}": int(r == "truncated")
                                                                for r in c.REJECT_REASONS}}
