"""The native Binance decoder (bot4.data.binance_native, core/ingest) against the Python reference
(bot4.data.binance.BinanceLoader): identical arrays, counters, rejection counts and samples, on
every real recording and on randomly damaged ones (differential fuzzing)."""

from __future__ import annotations

import gzip
import itertools
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot4 import _core
from bot4.data.binance import BinanceLoader, load_binance
from bot4.data.binance_native import NativeBinanceLoader
from bot4.instrument import DecimalGrid
from bot4.errors import DataError, DecimalParseError, OffGridError
from native_parity import OPS, assert_same_data, damaged

pytestmark = pytest.mark.realdata

BINANCE = "binance_hftbacktest"
RECORDINGS = {
    "usdm_btc": ["usdm/btcusdt_20240808.gz"],
    "usdm_eth": ["usdm/ethusdt_20240808.gz"],
    "spot_btc": ["spot/btcusdt_20240808.gz", "spot/btcusdt_20240809.gz"],
    "spot_eth": ["spot/ethusdt_20240808.gz", "spot/ethusdt_20240809.gz"],
    "coinm_btc": ["coinm/btcusd_perp_20240808.gz", "coinm/btcusd_perp_20240809.gz"],
    "coinm_eth": ["coinm/ethusd_perp_20240808.gz", "coinm/ethusd_perp_20240809.gz"],
    # single files, continuation files alone (no snapshot) and a chain in the wrong order
    "spot_btc_0808": ["spot/btcusdt_20240808.gz"],
    "spot_btc_0809": ["spot/btcusdt_20240809.gz"],
    "spot_eth_0809": ["spot/ethusdt_20240809.gz"],
    "coinm_btc_0808": ["coinm/btcusd_perp_20240808.gz"],
    "coinm_btc_0809": ["coinm/btcusd_perp_20240809.gz"],
    "coinm_eth_0809": ["coinm/ethusd_perp_20240809.gz"],
    "coinm_eth_reversed": ["coinm/ethusd_perp_20240809.gz", "coinm/ethusd_perp_20240808.gz"],
}


def assert_same(native, reference, native_loader=None, reference_loader=None) -> None:
    """Bit-identical arrays, counters and rejection samples."""
    assert_same_data(native, reference)
    if native_loader is not None:
        assert +native_loader.stats == +reference_loader.stats


def assert_same_outcome(path, **kwargs) -> None:
    """Both loaders raise the same error, or return the same result."""
    ref_loader, nat_loader = BinanceLoader(**kwargs), NativeBinanceLoader(**kwargs)
    try:
        reference = ref_loader.load(path)
    except DataError as exc:  # e.g. a damaged symbol name: an unknown instrument
        with pytest.raises(DataError) as caught:
            nat_loader.load(path)
        assert str(caught.value) == str(exc)
        return
    assert_same(nat_loader.load(path), reference, nat_loader, ref_loader)


@pytest.mark.parametrize("name", list(RECORDINGS))
def test_identical_to_the_reference_on_every_recording(shared_data, name):
    files = [shared_data / BINANCE / f for f in RECORDINGS[name]]
    ref_loader, nat_loader = BinanceLoader(), NativeBinanceLoader()
    reference = ref_loader.load(files)
    native = nat_loader.load(files)
    assert len(reference.book) + len(reference.trades) + len(reference.bbo) > 0
    assert_same(native, reference, nat_loader, ref_loader)


@pytest.mark.parametrize("on_gap", ["drop", "continue"])
def test_python_inflate_fallback_is_identical(shared_data, on_gap):
    """What a build without zlib headers does: Python inflates, the core parses."""
    files = [shared_data / BINANCE / f for f in RECORDINGS["coinm_eth_reversed"]]
    reference = BinanceLoader(on_gap=on_gap).load(files)
    native = NativeBinanceLoader(on_gap=on_gap, python_inflate=True).load(files)
    assert_same(native, reference)
    assert reference.sequence_gaps >= 1


def test_load_binance_defaults_to_native(shared_data, monkeypatch):
    calls = []
    original = NativeBinanceLoader.load

    def spy(self, paths):
        calls.append(paths)
        return original(self, paths)

    monkeypatch.setattr(NativeBinanceLoader, "load", spy)
    path = shared_data / BINANCE / "spot/ethusdt_20240809.gz"
    load_binance(path)
    assert len(calls) == 1
    load_binance(path, engine="python")
    assert len(calls) == 1
    from bot4.data import load

    load(path)
    assert len(calls) == 2


# --- differential fuzzing -------------------------------------------------------------------

N_BASE = 400  # the REST snapshot is line 55; ~100 depth diffs follow in these lines


@pytest.fixture(scope="module")
def base_lines(shared_data) -> list[bytes]:
    with gzip.open(shared_data / BINANCE / "usdm/btcusdt_20240808.gz", "rb") as fh:
        return [line.rstrip(b"\n") for line in itertools.islice(fh, N_BASE)]


JUNK = [b"", b" ", b"{", b"}", b"[", b"]", b'"', b"\\", b",", b":", b"0", b"-", b".", b"e", b"null",
        b"true", b"\\u0041", b"\\ud800", b"\xff", b"\xc3\xa9", b"\x00", b"\t", b"\r", b"1e999", b"NaN",
        b'"stream"', b'"data"', b'"lastUpdateId"', b"@depth", b"@trade", b"@bookTicker"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_damaged_lines_give_identical_results(base_lines, tmp_path, data):
    lines = data.draw(damaged(base_lines, JUNK, keep=0, ops=(*OPS, "flip")))
    on_gap = data.draw(st.sampled_from(["drop", "continue"]))
    path = tmp_path / "fuzz.gz"
    path.write_bytes(gzip.compress(b"\n".join(lines) + b"\n", mtime=0))
    assert_same_outcome(path, market="usdm", on_gap=on_gap)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_damaged_gzip_gives_identical_results(base_lines, tmp_path, data):
    """Byte damage to the compressed stream: truncation, overwrites, appended junk, members."""
    body = b"\n".join(base_lines) + b"\n"
    cut = data.draw(st.integers(1, len(body) - 1))
    blob = bytearray(gzip.compress(body[:cut], mtime=0) + gzip.compress(body[cut:], mtime=0))
    op = data.draw(st.sampled_from(["truncate", "overwrite", "append", "none"]))
    if op == "truncate":
        blob = blob[:data.draw(st.integers(2, len(blob)))]
    elif op == "overwrite":
        at = data.draw(st.integers(10, len(blob) - 1))
        blob[at:at + 16] = data.draw(st.binary(min_size=16, max_size=16))
    elif op == "append":
        blob += data.draw(st.sampled_from([b"\x00" * 7, b"junk", b"\x1f\x8b\x08"]))
    path = tmp_path / "damaged.gz"
    path.write_bytes(bytes(blob))
    ref_loader, nat_loader = BinanceLoader(market="usdm"), NativeBinanceLoader(market="usdm")
    reference = ref_loader.load(path)
    native = nat_loader.load(path)
    assert_same(native, reference, nat_loader, ref_loader)
    # and the Python-inflate fallback agrees too
    assert_same(NativeBinanceLoader(market="usdm", python_inflate=True).load(path), reference)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(blob=st.binary(max_size=3000), gz=st.booleans())
def test_garbage_bytes_never_crash_and_agree(tmp_path, blob, gz):
    path = tmp_path / "garbage.bin"
    path.write_bytes(gzip.compress(blob, mtime=0) if gz else blob)
    assert_same_outcome(path, market="spot")


# --- exact decimals -------------------------------------------------------------------------

def reference_units(text: str, grid: DecimalGrid):
    try:
        units = grid.to_units(text)
    except OffGridError:
        return "off_grid"
    except (DecimalParseError, ValueError, ArithmeticError):
        return "bad_number"
    return units if -(1 << 62) < units < (1 << 62) else "bad_number"


def native_units(text: str, grid: DecimalGrid):
    from decimal import Decimal

    unit = int(Decimal(grid.step).scaleb(grid.digits))
    return _core.ingest.to_units(text, grid.digits, unit)


NUMBER_TEXT = st.text(alphabet="0123456789.-+eE_ \t", max_size=24) | st.from_regex(
    r"\A[+-]?[0-9]{0,25}(\.[0-9]{0,25})?([eE][+-]?[0-9]{1,3})?\Z")


@settings(max_examples=3000, deadline=None)
@given(text=NUMBER_TEXT, step=st.sampled_from(["0.10", "0.01", "0.001", "1", "0.00000001", "5", "0.25",
                                               "100"]))
def test_decimal_units_match_decimal_grid(text, step):
    grid = DecimalGrid(step)
    expected = reference_units(text, grid)
    got = native_units(text, grid)
    if isinstance(expected, int) and not isinstance(got, int):
        pytest.fail(f"{text!r} on {step}: native {got}, reference {expected}")
    # Exponent forms beyond 27 significant digits are rounded by Decimal's context but treated
    # exactly here (documented in core/ingest/decimal_units.hpp): compare plain forms strictly.
    if "e" not in text.lower() or len(text.strip()) < 20:
        assert got == expected, (text, step)


@pytest.mark.parametrize("text, expected", [
    ("61800.20", 618002), ("61800.2", 618002), ("61800.200000", 618002), ("061800.2", 618002),
    ("61800.25", "off_grid"), ("-61800.20", -618002), ("+1", 10), (".5", 5), ("1.", 10),
    ("1e2", 1000), ("1E-1", 1), ("1_000", 10000), (" 1.0\t", 10), ("", "bad_number"),
    (".", "bad_number"), ("NaN", "bad_number"), ("inf", "bad_number"), ("-Infinity", "bad_number"),
    ("1e999", "bad_number"), ("1e999999999", "bad_number"), ("1e-999999999", 0), ("1e-5000", "off_grid"),
    ("0e999999999", 0), ("\u0661", "bad_number"), ("461168601842738790.3", (1 << 62) - 1),
    ("461168601842738790.4", "bad_number"), ("-461168601842738790.4", "bad_number"), ("99999999999999999999999.05", "off_grid"),
])
def test_decimal_units_cases(text, expected):
    grid = DecimalGrid("0.10")
    assert native_units(text, grid) == expected
    assert reference_units(text, grid) == expected


def test_decompression_floor_matches_zlib(shared_data):
    """The native reader sees exactly the lines Python's zlib produces (line count check)."""
    path = shared_data / BINANCE / "usdm/ethusdt_20240808.gz"
    lines = zlib.decompress(path.read_bytes(), wbits=31).count(b"\n")
    loader = NativeBinanceLoader()
    loader.load(path)
    assert loader.stats["lines"] == lines == 74655


@pytest.mark.parametrize("chunk_bytes", [4096, 65_536, 1 << 20])
def test_chunks_concatenate_to_the_whole_load(shared_data, chunk_bytes):
    """Bounded-memory decoding: pieces of a chained recording concatenate to the whole load, and
    a book fed piece by piece ends where the whole-array replay ends."""
    files = [shared_data / BINANCE / f for f in RECORDINGS["spot_btc"]]
    whole = NativeBinanceLoader().load(files)
    pieces = list(NativeBinanceLoader().iter_chunks(files, chunk_bytes=chunk_bytes))
    assert len(pieces) > 2
    for name in ("book", "trades", "bbo"):
        joined = np.concatenate([getattr(p, name) for p in pieces])
        assert joined.tobytes() == getattr(whole, name).tobytes(), name
    last = pieces[-1]
    assert last.rejections.as_dict() == whole.rejections.as_dict()
    assert last.rejections.samples == whole.rejections.samples
    assert last.sequence_gaps == whole.sequence_gaps and last.specs == whole.specs
    iid = whole.spec.instrument_id
    chunked, at_once = _core.book.BookSet(), _core.book.BookSet()
    chunked.add(iid)
    at_once.add(iid)
    for p in pieces:
        chunked.apply(p.book)
    at_once.apply(whole.book)
    assert chunked.book(iid).top() == at_once.book(iid).top()
    assert chunked.counters() == at_once.counters()
