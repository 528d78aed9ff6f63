"""zstd recordings (pip zstandard) through bot4.data.progress.iter_decompressed and
bot4.data.native_feed: a .zst gives exactly the arrays of the .gz it was made from, for the native
and the Python loaders; a truncated or corrupt .zst is one counted truncated_file/corrupt_file
with every line decoded before it kept."""

from __future__ import annotations

import gzip
import io

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from bot4.data.binance import BinanceLoader
from bot4.data.binance_native import NativeBinanceLoader
from bot4.data.native_feed import compression
from bot4.data.progress import _NoProgress, iter_decompressed, iter_lines

BINANCE = "binance_hftbacktest"


def _decompressed(blob: bytes) -> tuple[bytes, str | None]:
    parts, damage = [], None
    for out in iter_decompressed(io.BytesIO(blob), _NoProgress()):
        if isinstance(out, tuple):
            damage = out[0]
        else:
            parts.append(out)
    return b"".join(parts), damage


@settings(max_examples=60, deadline=None)
@given(body=st.binary(max_size=20_000), cuts=st.lists(st.integers(0, 20_000), max_size=3))
def test_multi_frame_zstd_round_trips(body, cuts):
    points = sorted({0, len(body), *(c % (len(body) + 1) for c in cuts)})
    blob = b"".join(zstandard.compress(body[a:b]) for a, b in zip(points, points[1:])) or zstandard.compress(b"")
    assert _decompressed(blob) == (body, None)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), data=st.data())
def test_damaged_zstd_keeps_a_prefix_and_counts_once(seed, data):
    import random

    rng = random.Random(seed)
    body = b"".join(b"%d,%d\n" % (i, rng.randrange(10**6)) for i in range(30_000))
    blob = bytearray(zstandard.compress(body))
    if data.draw(st.booleans()):
        blob = blob[:data.draw(st.integers(4, len(blob) - 1))]
        expected = {"truncated_file", "corrupt_file"}
    else:
        at = data.draw(st.integers(8, len(blob) - 1))
        blob[at:at + 4] = data.draw(st.binary(min_size=4, max_size=4))
        expected = {"truncated_file", "corrupt_file", None}  # an overwrite may leave valid data
    out, damage = _decompressed(bytes(blob))
    assert damage in expected
    if damage is not None:
        assert body.startswith(out)


def test_iter_lines_counts_zstd_truncation(tmp_path):
    body = b"".join(b"row %d\n" % i for i in range(50_000))
    blob = zstandard.compress(body)
    path = tmp_path / "cut.zst"
    path.write_bytes(blob[: len(blob) // 2])
    seen = []
    lines = list(iter_lines(path, _NoProgress(), lambda *a: seen.append(a)))
    assert len(seen) == 1 and seen[0][0] == "truncated_file"
    assert seen[0][1] == len(lines) + 1 and 0 < len(lines) < 50_000
    assert [line for _, line in lines] == body.split(b"\n")[: len(lines)]


def test_compression_is_told_by_content(tmp_path):
    for name, blob, kind in (("a.csv", gzip.compress(b"x"), "gzip"), ("b.gz", zstandard.compress(b"x"), "zstd"),
                             ("c.zst", b"plain", "plain")):
        (tmp_path / name).write_bytes(blob)
        assert compression(tmp_path / name) == kind


@pytest.fixture(scope="module")
def spot_zst(shared_data, tmp_path_factory):
    gz = shared_data / BINANCE / "spot/ethusdt_20240808.gz"
    path = tmp_path_factory.mktemp("zst") / "ethusdt_20240808.zst"
    path.write_bytes(zstandard.compress(gzip.decompress(gz.read_bytes()), level=3))
    return gz, path


def _same(a, b) -> None:
    for name in ("book", "trades", "bbo"):
        assert getattr(a, name).tobytes() == getattr(b, name).tobytes(), name
    assert a.rejections.as_dict() == b.rejections.as_dict() and a.sequence_gaps == b.sequence_gaps
    assert a.specs == b.specs and a.venue == b.venue


def test_binance_zst_equals_the_gz(spot_zst):
    gz, zst = spot_zst
    from_gz = NativeBinanceLoader().load(gz)
    assert len(from_gz.book) > 50_000
    _same(NativeBinanceLoader().load(zst), from_gz)  # market detected from the .zst too
    _same(BinanceLoader().load(zst), from_gz)


def test_binance_damaged_zst_agrees_and_is_counted(spot_zst, tmp_path):
    _, zst = spot_zst
    blob = zst.read_bytes()
    cut = tmp_path / "cut.zst"
    cut.write_bytes(blob[: len(blob) * 2 // 3])
    native = NativeBinanceLoader(market="spot").load(cut)
    reference = BinanceLoader(market="spot").load(cut)
    _same(native, reference)
    assert native.rejections.samples == reference.rejections.samples
    assert native.rejections.counts["truncated_file"] == 1
    whole = NativeBinanceLoader(market="spot").load(zst)
    n = len(native.book)
    assert 0 < n < len(whole.book) and native.book.tobytes() == whole.book[:n].tobytes()


def test_load_guesses_venues_of_compressed_files(shared_data, tmp_path, spot_zst):
    """bot4.data.load on .zst / .gz recordings: the venue from the name without the compression
    suffix, Binance instruments grouped from the decompressed lines."""
    from bot4.data import guess_venue, load

    assert guess_venue("AAPL_2012-06-21_34200000_57600000_message_10.csv.zst") == "lobster"
    assert guess_venue("AAPL_2012-06-21_34200000_57600000_message_10.csv.gz") == "lobster"
    assert guess_venue("deribit_incremental_book_L2_BTC-PERPETUAL.csv.zst") == "tardis"
    assert guess_venue("btcusdt_20240808.zst") == "binance"
    lobster = shared_data / "lobster_aapl"
    for f in lobster.iterdir():
        (tmp_path / f"{f.name}.zst").write_bytes(zstandard.compress(f.read_bytes()))
    message = next(tmp_path.glob("*_message_*.zst"))
    assert load(message).orders.tobytes() == load(next(lobster.glob("*_message_*"))).orders.tobytes()
    gz, zst = spot_zst
    other = tmp_path / "btcusdt_20240808.zst"
    other.write_bytes(zstandard.compress(gzip.decompress((shared_data / BINANCE / "spot/btcusdt_20240808.gz")
                                                         .read_bytes())))
    both = load([zst, other])  # two instruments: grouped by the symbol in their lines, merged
    assert len(both.specs) == 2
