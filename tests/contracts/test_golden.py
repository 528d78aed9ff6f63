"""Golden frames: every message type's sample encodes to the committed bytes in golden/, byte for
byte, and those bytes decode back to the sample. A failure here is a schema change: if it is
intended, bump SCHEMA_VERSION when a layout changed and run `python tests/contracts/make_golden.py`."""

from __future__ import annotations

from pathlib import Path

import pytest
from contract_samples import samples, topic_of_type

from bot4.contracts import Codec, message_types

GOLDEN = Path(__file__).parent / "golden"
SAMPLES = samples()


def test_every_message_type_has_a_sample_and_a_golden_frame():
    tags = {tp.__struct_config__.tag for tp in message_types()}
    assert tags == set(SAMPLES)
    assert {p.stem for p in GOLDEN.glob("*.msgpack")} == tags


@pytest.mark.parametrize("tag", sorted(SAMPLES))
def test_encodes_to_the_golden_bytes(tag):
    msg = SAMPLES[tag]
    expected = (GOLDEN / f"{tag}.msgpack").read_bytes()
    got = Codec(topic_of_type(type(msg))).encode(msg)
    assert got == expected, (f"{tag}: encoding changed ({len(expected)} -> {len(got)} B); a schema change? "
                             f"see tests/contracts/make_golden.py")


@pytest.mark.parametrize("tag", sorted(SAMPLES))
def test_golden_bytes_decode_to_the_sample(tag):
    msg = SAMPLES[tag]
    codec = Codec(topic_of_type(type(msg)))
    decoded = codec.decode((GOLDEN / f"{tag}.msgpack").read_bytes())
    assert type(decoded) is type(msg)
    assert decoded == msg
    assert codec.decoded == 1 and sum(codec.rejected.values()) == 0
