"""bot4.replay.replay_parts (`bot4 replay --stream`): a recording replayed part by part gives
replay()'s counts, rejections, notices, final top and BBO check over the whole recording."""

from __future__ import annotations

import pytest

from bot4.cli import main
from bot4.replay import replay, replay_parts
from bot4.sim import generate, generate_parts

TIMINGS = {"seconds", "load_seconds", "book_events_per_second"}


def _same(a, b) -> None:
    a, b = a.as_json(), b.as_json()
    assert {k: v for k, v in a.items() if k not in TIMINGS} == {k: v for k, v in b.items() if k not in TIMINGS}


@pytest.mark.parametrize("part_events", [1_000, 9_999, 60_000])
def test_simulator_parts_replay_as_the_whole_stream(part_events):
    whole = replay(generate(n_events=60_000))
    streamed = replay_parts(generate_parts(n_events=60_000, part_events=part_events))
    _same(whole, streamed)
    assert streamed.level == "L3" and streamed.l2_l3_consistent is True


@pytest.mark.realdata
@pytest.mark.parametrize("chunk_bytes", [50_000, 400_000, 8 << 20])
def test_native_chunks_replay_as_the_whole_recording_with_the_bbo_check(shared_data, chunk_bytes):
    from bot4.data import load
    from bot4.data.binance_native import NativeBinanceLoader

    path = shared_data / "binance_hftbacktest/usdm/btcusdt_20240808.gz"
    whole = replay(load(path), check_bbo=True)
    streamed = replay_parts(NativeBinanceLoader().iter_chunks(path, chunk_bytes=chunk_bytes), check_bbo=True)
    _same(whole, streamed)
    assert streamed.bbo is not None and streamed.bbo.checked == 629


def test_no_parts_is_an_error():
    with pytest.raises(ValueError, match="no parts"):
        replay_parts(iter(()))


def test_cli_replay_stream_prints_the_whole_replay(capsys):
    import json

    assert main(["replay", "--stream", "--events", "30000", "--json", "-q"]) == 0
    streamed = json.loads(capsys.readouterr().out)
    assert main(["replay", "--events", "30000", "--json", "-q"]) == 0
    whole = json.loads(capsys.readouterr().out)
    assert {k: v for k, v in streamed.items() if k not in TIMINGS} == {k: v for k, v in whole.items()
                                                                        if k not in TIMINGS}
