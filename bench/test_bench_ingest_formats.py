"""Native vs Python ingestion of Tardis CSV and LOBSTER files, measured in the same run (issue 14).

* Tardis incremental_book_L2: the reference BTCUSDT recording's depth (the derived CSV in
  ../shared/data, real rows: 2,000 snapshot + 443,521 update rows) written in Tardis's
  incremental_book_L2 layout and gzipped, so that the comparison runs on a realistically sized
  file; the gzip inflate-only floor of that file is measured beside it.
* Tardis trades and quotes: the real Binance-futures .csv.gz fixtures (9,999 rows each).
* LOBSTER: the real AAPL sample (999 messages) with its 10-level orderbook file (reconciliation
  on) and without it.

Gates are ratios of medians from this run (native speedup over the Python reference engine);
the figures go to build/perf/ingest_formats.json.
"""

from __future__ import annotations

import gzip
import zlib

import pytest

from bot4.data.lobster import load_lobster
from bot4.data.tardis import load_tardis

from conftest import written_manifest

FIGURES: dict[str, float] = {}
ROUNDS = 5


@pytest.fixture(scope="module")
def manifest():
    with written_manifest("ingest_formats", FIGURES) as m:
        yield m


def _median(benchmark) -> float:
    return benchmark.stats.stats.median


@pytest.fixture(scope="module")
def tardis_l2(shared_data, tmp_path_factory):
    """The BTCUSDT depth rows as a Tardis incremental_book_L2 .csv.gz (µs timestamps)."""
    src = shared_data / "binance_hftbacktest" / "derived" / "binance_usdm_btcusdt_20240808_depth.csv.gz"
    out = ["exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount"]
    with gzip.open(src, "rt") as fh:
        next(fh)
        for row in fh:
            local_ns, event_ms, _, kind, _, _, _, side, price, qty = row.rstrip("\n").split(",")
            out.append(f"binance-futures,BTCUSDT,{int(event_ms) * 1000},{int(local_ns) // 1000},"
                       f"{'true' if kind == 'snapshot' else 'false'},{'bid' if side == 'b' else 'ask'},"
                       f"{price},{qty}")
    path = tmp_path_factory.mktemp("tardis") / "binance-futures_incremental_book_L2_BTCUSDT.csv.gz"
    path.write_bytes(gzip.compress(("\n".join(out) + "\n").encode(), compresslevel=6, mtime=0))
    return path, len(out) - 1


def _pair(benchmark, manifest, name: str, native, python, rows: int, python_rounds: int = 3) -> float:
    """Times the native call with `benchmark`, the Python one by hand (same process, same run);
    returns the speedup (python median / native median)."""
    import statistics
    import time

    native_out = benchmark.pedantic(native, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    times = []
    for _ in range(python_rounds):
        started = time.perf_counter()
        python_out = python()
        times.append(time.perf_counter() - started)
    for arr in ("book", "trades", "bbo", "orders"):
        assert getattr(native_out, arr).tobytes() == getattr(python_out, arr).tobytes(), arr
    native_s, python_s = _median(benchmark), statistics.median(times)
    speedup = python_s / native_s
    FIGURES.update({f"{name}_rows": rows, f"{name}_native_seconds": round(native_s, 6),
                    f"{name}_python_seconds": round(python_s, 6), f"{name}_speedup": round(speedup, 1)})
    manifest.add_throughput(f"{name}_native", rows, native_s, unit="rows/s")
    manifest.add_throughput(f"{name}_python", rows, python_s, unit="rows/s")
    return speedup


def test_tardis_l2_gzip_floor(benchmark, tardis_l2):
    path, _ = tardis_l2
    n = benchmark.pedantic(lambda: len(zlib.decompress(path.read_bytes(), wbits=31)), rounds=ROUNDS,
                           iterations=1, warmup_rounds=1)
    assert n > 20_000_000
    FIGURES["tardis_l2_floor_read_and_inflate_seconds"] = round(_median(benchmark), 6)


def test_tardis_incremental_l2(benchmark, manifest, tardis_l2):
    path, rows = tardis_l2
    speedup = _pair(benchmark, manifest, "tardis_l2", lambda: load_tardis(path),
                    lambda: load_tardis(path, engine="python"), rows)
    FIGURES["tardis_l2_native_over_floor"] = round(
        FIGURES["tardis_l2_native_seconds"] / FIGURES["tardis_l2_floor_read_and_inflate_seconds"], 2)
    # two passes over the file (grid inference, then decoding), so about 2x the floor at best
    # measured 15.4x (0.153 s against 2.36 s), 7.0x with the 2 cores at load 6: the gate is the latter less ~30%
    assert speedup > 5, FIGURES


@pytest.mark.parametrize("name", ["trades", "quotes"])
def test_tardis_real_fixture(benchmark, manifest, shared_data, name):
    path = shared_data / "nautilus_fixtures" / "tardis" / f"binance-futures_{name}_BTCUSDT_2020-02-22.csv.gz"
    speedup = _pair(benchmark, manifest, f"tardis_{name}", lambda: load_tardis(path),
                    lambda: load_tardis(path, engine="python"), 9_999, python_rounds=5)
    assert speedup > 3, FIGURES


@pytest.mark.parametrize("with_book", [True, False])
def test_lobster_aapl(benchmark, manifest, shared_data, with_book):
    d = shared_data / "lobster_aapl"
    stem = "AAPL_2012-06-21_34200000_57600000"
    files = (d / f"{stem}_message_10.csv", d / f"{stem}_orderbook_10.csv" if with_book else None)
    name = "lobster_with_orderbook" if with_book else "lobster_messages_only"
    speedup = _pair(benchmark, manifest, name, lambda: load_lobster(*files),
                    lambda: load_lobster(*files, engine="python"), 999, python_rounds=5)
    assert speedup > 3, FIGURES


def test_binance_zstd_against_gzip(benchmark, shared_data, tmp_path):
    """The reference BTCUSDT recording recompressed as zstd (pip zstandard decompresses in Python,
    the core parses the plain bytes) against its own parts, same run, rounds interleaved: zstd
    decompression alone plus the core's load of the same bytes uncompressed. The gzip path
    (inflated in the core, on a thread of its own beside the parser) is recorded beside it, not
    gated: it overlaps inflate and parse, the zstd path does not, so their ratio depends on the
    machine (0.99x once, 1.57-1.77x on later runs)."""
    import statistics
    import time

    import zstandard

    from bot4.data.binance_native import NativeBinanceLoader
    from conftest import REFERENCE_FILE

    raw = gzip.decompress(REFERENCE_FILE.read_bytes())
    zst = tmp_path / "btcusdt_20240808.zst"
    zst.write_bytes(zstandard.compress(raw, level=3))
    plain = tmp_path / "btcusdt_20240808.txt"
    plain.write_bytes(raw)
    zbytes = zst.read_bytes()
    data = benchmark.pedantic(lambda: NativeBinanceLoader().load(zst), rounds=ROUNDS, iterations=1,
                              warmup_rounds=1)
    zstd_t, gz_t, plain_t, dec_t = [], [], [], []

    def timed(fn, out):
        started = time.perf_counter()
        result = fn()
        out.append(time.perf_counter() - started)
        return result

    for _ in range(ROUNDS):
        timed(lambda: NativeBinanceLoader().load(zst), zstd_t)
        from_gz = timed(lambda: NativeBinanceLoader().load(REFERENCE_FILE), gz_t)
        from_plain = timed(lambda: NativeBinanceLoader().load(plain), plain_t)
        timed(lambda: zstandard.ZstdDecompressor().decompressobj().decompress(zbytes), dec_t)
    assert data.book.tobytes() == from_gz.book.tobytes() == from_plain.book.tobytes()
    zstd_s, gz_s, plain_s, dec_s = (statistics.median(x) for x in (zstd_t, gz_t, plain_t, dec_t))
    FIGURES.update(binance_zstd_seconds=round(zstd_s, 6), binance_gzip_seconds=round(gz_s, 6),
                   binance_plain_seconds=round(plain_s, 6), binance_zstd_decompress_seconds=round(dec_s, 6),
                   binance_zstd_over_gzip=round(zstd_s / gz_s, 2),
                   binance_zstd_over_parts=round(zstd_s / (dec_s + plain_s), 2))
    # Measured 1.37x its parts (0.161 s against 0.026 s decompression + 0.092 s plain load): the
    # Python-side chunking between zstandard and the core costs the rest, and this gate keeps it
    # from growing.
    assert FIGURES["binance_zstd_over_parts"] < 1.6, FIGURES
