"""The native LOBSTER decoder (bot4.data.lobster_native, core/ingest/lobster_decoder) against the
Python reference (load_lobster(engine="python")): identical order and trade arrays, stats,
rejection counts and samples on the AAPL sample in ../shared/data (with and without its orderbook
file, every tick choice), on damaged rows and compressed streams and on random rows
(differential fuzzing); every bad row is a counted rejection."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot4.data import lobster_native
from bot4.data.lobster import load_lobster
from bot4.errors import Bot4Error
from native_parity import assert_same_data, damaged

STEM = "AAPL_2012-06-21_34200000_57600000"


@pytest.fixture(scope="module")
def files(shared_data) -> tuple[Path, Path]:
    d = shared_data / "lobster_aapl"
    return d / f"{STEM}_message_10.csv", d / f"{STEM}_orderbook_10.csv"


def assert_same(native, reference) -> None:
    assert_same_data(native, reference, stats=True)


def assert_same_outcome(message, orderbook=None, **kwargs):
    try:
        reference = load_lobster(message, orderbook, engine="python", **kwargs)
    except Bot4Error as exc:
        with pytest.raises(type(exc)) as caught:
            load_lobster(message, orderbook, **kwargs)
        assert str(caught.value) == str(exc)
        return None
    native = load_lobster(message, orderbook, **kwargs)
    assert_same(native, reference)
    return native


@pytest.mark.parametrize("with_book", [True, False])
@pytest.mark.parametrize("tick_size", [None, "0.01", "0.0001", "0.05"])
def test_identical_to_the_reference_on_the_sample(files, with_book, tick_size):
    native = assert_same_outcome(files[0], files[1] if with_book else None, tick_size=tick_size)
    assert native is not None and len(native.orders) > (100 if tick_size == "0.05" else 900)
    if tick_size == "0.05":  # AAPL prices are whole cents, not all on a 5-cent grid
        assert native.rejections.counts["off_grid_price"] > 0


def test_gzip_zstd_and_plain_are_identical(files, tmp_path):
    whole = load_lobster(*files)
    for codec, pack in (("gz", lambda b: gzip.compress(b, mtime=0)), ("zst", zstandard.compress)):
        paths = []
        for f in files:
            p = tmp_path / f"{f.name}.{codec}"
            p.write_bytes(pack(f.read_bytes()))
            paths.append(p)
        data = load_lobster(*paths, symbol="AAPL", date="2012-06-21")
        assert data.orders.tobytes() == whole.orders.tobytes() and data.stats == whole.stats
        assert_same(data, load_lobster(*paths, symbol="AAPL", date="2012-06-21", engine="python"))


def test_load_lobster_defaults_to_native(files, monkeypatch):
    calls = []
    original = lobster_native.load_lobster_native

    def spy(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(lobster_native, "load_lobster_native", spy)
    load_lobster(*files)
    assert len(calls) == 1
    load_lobster(*files, engine="python")
    assert len(calls) == 1
    import bot4.data

    bot4.data.load(files[0], venue="lobster")
    assert len(calls) == 2


# --- differential fuzzing -------------------------------------------------------------------

N_BASE = 120
JUNK = [b"", b" ", b",", b"-", b".", b"0", b"1", b"-1", b"7", b"6", b"\xff", b"\t", b"99999999999999999999",
        b"1_0", b"9999999999", b"-9999999999", b"34200.1234567891", b"e"]


@pytest.fixture(scope="module")
def base(files) -> tuple[list[bytes], list[bytes]]:
    return (files[0].read_bytes().splitlines()[:N_BASE], files[1].read_bytes().splitlines()[:N_BASE])


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_damaged_rows_give_identical_results(base, tmp_path, data):
    messages = data.draw(damaged(base[0], JUNK, min_ops=0, max_ops=6))
    book = data.draw(damaged(base[1], JUNK, min_ops=0, max_ops=3))
    mpath = tmp_path / f"{STEM}_message_10.csv"
    bpath = tmp_path / f"{STEM}_orderbook_10.csv"
    mpath.write_bytes(b"\n".join(messages) + b"\n")
    bpath.write_bytes(b"\n".join(book) + b"\n")
    with_book = data.draw(st.booleans())
    tick = data.draw(st.sampled_from([None, "0.01"]))
    native = assert_same_outcome(mpath, bpath if with_book else None, tick_size=tick)
    if native is not None:
        # every message row is an accepted message, a halt or a counted rejection
        message_reasons = {"bad_column_count", "non_numeric", "implausible_timestamp", "out_of_range",
                           "unknown_type", "negative_size", "zero_size", "bad_direction",
                           "nonpositive_price", "off_grid_price"}
        rejected = sum(c for r, c in native.rejections.counts.items() if r in message_reasons)
        assert native.stats["messages"] + native.stats.get("halt_messages", 0) + rejected == len(messages)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_damaged_compressed_streams_give_identical_results(base, tmp_path, data):
    body = b"\n".join(base[0]) + b"\n"
    codec = data.draw(st.sampled_from(["gz", "zst"]))
    blob = bytearray(gzip.compress(body, mtime=0) if codec == "gz" else zstandard.compress(body))
    if data.draw(st.booleans()):
        blob = blob[:data.draw(st.integers(4, len(blob) - 1))]
    else:
        at = data.draw(st.integers(12, len(blob) - 1))
        blob[at:at + 8] = data.draw(st.binary(min_size=8, max_size=8))
    mpath = tmp_path / f"{STEM}_message_10.csv.{codec}"
    mpath.write_bytes(bytes(blob))
    native = assert_same_outcome(mpath)
    assert native is not None
    damage = native.rejections.counts["truncated_file"] + native.rejections.counts["corrupt_file"]
    assert damage <= 1
    if damage:  # the rows before the damage are kept
        line = native.rejections.samples.get("truncated_file", native.rejections.samples.get("corrupt_file"))[1]
        assert native.stats["messages"] + native.rejections.total - damage == line - 1


ROW = st.tuples(st.sampled_from(["34200.1", "34200", "34200.0000000001", "-1", "90000", "x", " 34200.5 ", ""]),
                st.sampled_from(["1", "2", "3", "4", "5", "6", "7", "8", "x"]),
                st.sampled_from(["1", "2", "3", "-4", "4611686018427387904"]),
                st.sampled_from(["0", "1", "5", "-5", "100"]),
                st.sampled_from(["5853300", "5853350", "0", "-5853300", "5853400"]),
                st.sampled_from(["1", "-1", "0", "2"]))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(ROW, min_size=1, max_size=40), book_rows=st.lists(
    st.lists(st.sampled_from(["5853400", "5853300", "5", "0", "9999999999", "-9999999999", "x"]),
             min_size=4, max_size=4), min_size=0, max_size=40))
def test_random_rows_are_identical_and_counted(tmp_path, rows, book_rows):
    mpath = tmp_path / f"{STEM}_message_1.csv"
    bpath = tmp_path / f"{STEM}_orderbook_1.csv"
    mpath.write_text("\n".join(",".join(r) for r in rows) + "\n")
    bpath.write_text("\n".join(",".join(r) for r in book_rows) + ("\n" if book_rows else ""))
    native = assert_same_outcome(mpath, bpath)
    assert native is not None
    assert native.stats["messages"] + native.stats.get("halt_messages", 0) <= len(rows)
    assert_same_outcome(mpath)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(blob=st.binary(max_size=2000), gz=st.booleans())
def test_garbage_bytes_never_crash_and_agree(tmp_path, blob, gz):
    mpath = tmp_path / f"{STEM}_message_5.csv"
    mpath.write_bytes(gzip.compress(blob, mtime=0) if gz else blob)
    assert_same_outcome(mpath)


@pytest.mark.parametrize("row", [b"34200.005,1,16113600\x1e,100,5859400,-1", b"\x1c34200.005\x1f,1,16113600,100,5859400,-1",
                                 b"34200.005,1, 16113600\t,100,+5859400,-1"])
def test_fuzz_findings(tmp_path, row):
    """Rows on which the differential fuzzer (fuzz/fuzz_lobster.py) once found the engines apart:
    int() strips \\t\\n\\v\\f\\r and space but not \\x1c-\\x1f (str.strip, used on the time, does)."""
    mpath = tmp_path / f"{STEM}_message_1.csv"
    mpath.write_bytes(row + b"\n")
    native = assert_same_outcome(mpath)
    assert native is not None and native.stats["messages"] + native.rejections.total == 1
