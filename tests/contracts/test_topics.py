"""Topics and the package boundary: prefixes never overlap, every message type travels on exactly
one topic under a tag no other type uses, and bot4.contracts imports no transport."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bot4 import contracts as c
from bot4.contracts.codec import _members


def test_no_topic_is_a_prefix_of_another():
    for a in c.TOPICS:
        assert a.endswith(b"/") and a.count(b"/") == 1
        for b in c.TOPICS:
            assert a == b or not b.startswith(a)


def test_every_type_is_on_one_topic_with_a_unique_tag():
    seen: dict[str, type] = {}
    for union in c.TOPICS.values():
        for tp in _members(union):
            tag = tp.__struct_config__.tag
            assert isinstance(tag, str) and tag not in seen, (tag, tp, seen.get(tag))
            seen[tag] = tp
    assert set(seen.values()) == set(c.message_types())


def test_instrument_topics_have_a_fixed_width():
    t4, t42 = c.instrument_topic(c.MARKET, 4), c.instrument_topic(c.MARKET, 42)
    assert len(t4) == len(t42) == len(c.MARKET) + 4 and not t42.startswith(t4)
    assert c.topic_of(t42) == c.MARKET and c.topic_of(c.CONTROL) == c.CONTROL
    with pytest.raises(ValueError):
        c.instrument_topic(b"xx/", 1)
    with pytest.raises(ValueError):
        c.topic_of(b"zz/1")


def test_contracts_import_no_transport():
    code = "import sys, bot4.contracts; print(sorted(m for m in sys.modules if m.split('.')[0] in ('zmq', 'bot4') " \
           "and (m == 'zmq' or m.startswith('bot4.services'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_trace_ids_are_nonzero_and_distinct():
    ids = {c.new_trace_id() for _ in range(1000)}
    assert len(ids) == 1000 and 0 not in ids and max(ids) < 2**64
