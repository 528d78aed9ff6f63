"""The engine's full outputs stay bit-identical to the pinned ones (tests/engine/pinned/golden.json)
unless a commit re-pins them on purpose (see pinned_outputs.py)."""
from __future__ import annotations

import json

import pytest

import pinned_outputs as pinned
from recordings import require_recording

GOLDEN = json.loads(pinned.GOLDEN.read_text())


def _check(source: str) -> None:
    want = GOLDEN[source]
    got = pinned.digests(pinned.run_source(source), want)
    for name in pinned.OUTPUTS:
        assert {k: got[name][k] for k in ("rows", "sha256")} == {k: want[name][k] for k in ("rows", "sha256")}, \
            f"{source}: {name} changed"
    assert got["counters"] == want["counters"]
    assert got["pnl"] == want["pnl"]


def test_embedded_stream_outputs_pinned():
    _check("embedded")


@pytest.mark.realdata
def test_btcusdt_outputs_pinned():
    require_recording(pinned.REFERENCE)
    _check("btcusdt")
