"""bot4.data.lobster.iter_lobster (the native decoder in streaming mode): message and orderbook
files read side by side part by part give load_lobster's arrays, stats and rejections (counts,
samples with file and line, order) exactly at any chunk size, damaged rows and streams included."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot4.data.lobster import iter_lobster, load_lobster
from bot4.data.market_data import MarketData
from bot4.errors import ConfigError
from bot4.events import FLAG_LAST
from native_parity import assert_same_data, damaged

STEM = "AAPL_2012-06-21_34200000_57600000"
JUNK = [b"", b" ", b",", b"-", b".", b"0", b"1", b"-1", b"7", b"\xff", b"99999999999999999999", b"9999999999",
        b"34200.1234567891", b"5853350"]


@pytest.fixture(scope="module")
def files(shared_data) -> tuple[Path, Path]:
    d = shared_data / "lobster_aapl"
    return d / f"{STEM}_message_10.csv", d / f"{STEM}_orderbook_10.csv"


@pytest.fixture(scope="module")
def base(files) -> tuple[list[bytes], list[bytes]]:
    return files[0].read_bytes().splitlines()[:300], files[1].read_bytes().splitlines()[:300]


def joined(parts: list[MarketData]) -> MarketData:
    last = parts[-1]
    md = MarketData(specs=last.specs, orders=np.concatenate([p.orders for p in parts]),
                    trades=np.concatenate([p.trades for p in parts]), rejections=last.rejections,
                    sources=last.sources, venue=last.venue)
    md.stats = last.stats
    return md


def assert_streams_as_whole(mpath, bpath, chunk, **kwargs) -> MarketData:
    whole = load_lobster(mpath, bpath, **kwargs)
    parts = list(iter_lobster(mpath, bpath, chunk_bytes=chunk, **kwargs))
    assert_same_data(joined(parts), whole, stats=True)
    for p in parts[:-1]:
        assert len(p.orders) + len(p.trades) > 0
        assert len(p.orders) == 0 or p.orders["flags"][-1] & FLAG_LAST  # whole rows
    return whole


def write(path: Path, lines: list[bytes], codec: str) -> Path:
    body = b"\n".join(lines) + b"\n"
    if codec == "gz":
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(body, mtime=0))
    elif codec == "zst":
        path = path.with_name(path.name + ".zst")
        path.write_bytes(zstandard.compress(body))
    else:
        path.write_bytes(body)
    return path


@pytest.mark.realdata
@pytest.mark.parametrize("chunk", [100, 4096, 8 << 20])
@pytest.mark.parametrize("with_book", [True, False])
@pytest.mark.parametrize("tick_size", [None, "0.01"])
def test_the_sample_streams_as_the_whole_load(files, chunk, with_book, tick_size):
    whole = assert_streams_as_whole(files[0], files[1] if with_book else None, chunk, tick_size=tick_size)
    assert len(whole.orders) > 500


@pytest.mark.realdata
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_damaged_rows_stream_as_the_whole_load(base, tmp_path, data):
    messages = data.draw(damaged(base[0], JUNK, min_ops=0, max_ops=6))
    book = data.draw(damaged(base[1], JUNK, min_ops=0, max_ops=4))
    codecs = data.draw(st.lists(st.sampled_from(["plain", "gz", "zst"]), min_size=2, max_size=2))
    mpath = write(tmp_path / f"{STEM}_message_10.csv", messages, codecs[0])
    bpath = write(tmp_path / f"{STEM}_orderbook_10.csv", book, codecs[1])
    with_book = data.draw(st.booleans())
    tick = data.draw(st.sampled_from([None, "0.01", "0.0001"]))
    chunk = data.draw(st.integers(1, 5000))
    assert_streams_as_whole(mpath, bpath if with_book else None, chunk, tick_size=tick)


@pytest.mark.realdata
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_damaged_streams_of_both_files(base, tmp_path, data):
    """Truncated or overwritten gzip/zstd in either file or both: the damage is counted once per
    file at its line, the first sample the message file's, as in the whole load."""
    blobs = []
    for lines, name in ((base[0], "message"), (base[1], "orderbook")):
        codec = data.draw(st.sampled_from(["gz", "zst"]))
        body = b"\n".join(lines) + b"\n"
        blob = bytearray(gzip.compress(body, mtime=0) if codec == "gz" else zstandard.compress(body))
        if data.draw(st.booleans()):
            blob = blob[:data.draw(st.integers(4, len(blob) - 1))]
        path = tmp_path / f"{STEM}_{name}_10.csv.{codec}"
        path.write_bytes(bytes(blob))
        blobs.append(path)
    whole = assert_streams_as_whole(blobs[0], blobs[1], data.draw(st.integers(1, 3000)))
    assert whole.rejections.counts["truncated_file"] <= 2


@pytest.mark.realdata
def test_rejections_keep_file_and_line_across_chunks(base, tmp_path):
    messages, book = list(base[0]), list(base[1])
    messages[211] = b"34200.5,1,16113600,100,5859450,7"
    book[150] = book[150] + b",1"
    mpath = write(tmp_path / f"{STEM}_message_10.csv", messages, "gz")
    bpath = write(tmp_path / f"{STEM}_orderbook_10.csv", book, "plain")
    for chunk in (7, 100, 4096):
        last = list(iter_lobster(mpath, bpath, chunk_bytes=chunk))[-1]
        assert last.rejections.samples["bad_direction"] == (str(mpath), 212, messages[211].decode())
        assert last.rejections.samples["orderbook_bad_row"] == (str(bpath), 151, book[150].decode()[:200])
    assert_streams_as_whole(mpath, bpath, 7)


def test_chunk_bytes_must_be_positive(tmp_path):
    path = tmp_path / f"{STEM}_message_10.csv"
    path.write_text("34200.1,1,1,100,5853300,1\n")
    with pytest.raises(ConfigError, match="chunk_bytes"):
        iter_lobster(path, chunk_bytes=0)


@pytest.mark.realdata
def test_stream_parts_and_convert_read_lobster_part_by_part(files, tmp_path, monkeypatch):
    """`--stream` (bot4.sources.stream_parts) replays the sample as the whole load, and
    `bot4 convert` writes it part by part into a dataset that reads back as the whole load."""
    from bot4.data import load
    from bot4.data.cache import convert, load_dataset
    from bot4.replay import replay, replay_parts
    from bot4.sources import stream_parts

    whole = load(files[0])
    stream = stream_parts([files[0]], chunk_bytes=2000)
    assert stream.venue == "lobster"
    timings = {"seconds", "load_seconds", "book_events_per_second"}
    a, b = replay_parts(stream.parts).as_json(), replay(whole).as_json()
    assert {k: v for k, v in a.items() if k not in timings} == {k: v for k, v in b.items() if k not in timings}

    def refuse(*args, **kwargs):
        raise AssertionError("convert read the whole recording")

    monkeypatch.setattr("bot4.data.load", refuse)
    convert(files[0], tmp_path / "ds", chunk_bytes=3000)
    back = load_dataset(tmp_path / "ds")
    for name in ("orders", "trades"):
        assert getattr(back, name).tobytes() == getattr(whole, name).tobytes()
    assert back.rejections.as_dict() == whole.rejections.as_dict() and back.specs == whole.specs
