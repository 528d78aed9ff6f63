"""Binance raw recordings -> MarketData through the native decoder (core/ingest), the default.

Same contract, output and rejections as the Python reference `bot4.data.binance.BinanceLoader`
(whose docstring states the format, the sync rules and the rejection reasons); the test suite
checks the two produce identical arrays, counters and samples on every recording in
../shared/data and on injected faults. Python reads the file in 1 MiB chunks (progress bar over
the compressed bytes) and the core inflates (zlib), splits lines, scans the JSON with a
fixed-schema scanner and applies the sync rules, without the GIL.

If the extension was built without zlib headers (`bot4._core.ingest.has_zlib` is False), Python
inflates the chunks (the reference's own inflate loop) and the core does the rest. zstd
recordings (.zst) are decompressed in Python by the pip `zstandard` package and fed to the core
as plain bytes (bot4.data.native_feed).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator, Sequence
from decimal import Decimal
from pathlib import Path

import numpy as np

from bot4 import _core
from bot4.data.binance import BINANCE_SPECS, VENUE_NAMES, LoaderOptions, _as_paths, binance_spec, \
    detect_market
from bot4.data.market_data import MarketData, RejectionLog, log
from bot4.data.native_feed import compression, feed_file
from bot4.data.progress import CHUNK, byte_progress
from bot4.errors import ConfigError, DataError
from bot4.events import BBO_EVENT, BOOK_EVENT, TRADE_EVENT
from bot4.instrument import DecimalGrid, InstrumentSpec

_INT64_MAX = (1 << 63) - 1
_NATIVE_CHUNK = 4 * CHUNK  # compressed bytes per call into the core (the GIL is released inside)


def _grid_args(grid: DecimalGrid) -> tuple[int, int]:
    unit = int(Decimal(grid.step).scaleb(grid.digits))
    if not 0 < unit <= _INT64_MAX:
        raise ConfigError(f"grid step {grid.step!r} is out of the native decoder's range")
    return grid.digits, unit


def _capacity_hint(files: list[Path]) -> tuple[int, int, int]:
    """Generous record counts for the decoder's vectors, from the file sizes (gzip text of these
    recordings holds ~0.12 book, ~0.006 trade and ~0.02 bbo records per byte; plain text ~8x
    fewer). Over-estimates only reserve address space."""
    book = trades = bbo = 0
    for path in files:
        size = path.stat().st_size
        # zstd packs these recordings ~1.5x tighter than gzip
        per = {"gzip": 1.0, "zstd": 1.5, "plain": 0.125}[compression(path)]
        book += int(size * 0.25 * per)
        trades += int(size * 0.02 * per)
        bbo += int(size * 0.05 * per)
    return min(book, 1 << 31), min(trades, 1 << 30), min(bbo, 1 << 30)


def _sample_text(kind: int, raw: bytes, prefix: bytes, side: bytes, p: bytes, q: bytes) -> str:
    if kind == 1:
        return f"{side.decode()} level [{p.decode('utf-8', 'replace')!r}, {q.decode('utf-8', 'replace')!r}]"
    text = raw.decode("utf-8", "replace")
    return prefix.decode() + text if kind == 2 else text


class NativeBinanceLoader(LoaderOptions):
    """Drop-in twin of `BinanceLoader` backed by `bot4._core.ingest.BinanceDecoder`.

    python_inflate: force the Python-side inflate (what a build without zlib does); for tests.
    threads: inflate on a second thread while the core parses (same output either way; on the
    loaded 2-core machine measured so far the two paths were within noise of each other,
    bench/test_bench_ingest.py measures both).
    """

    def __init__(self, market: str | None = None, *, specs: dict[str, InstrumentSpec] | None = None,
                 on_gap: str = "drop", progress: bool = False, python_inflate: bool = False,
                 threads: bool = True):
        super().__init__(market, specs=specs, on_gap=on_gap, progress=progress)
        self.python_inflate = python_inflate or not _core.ingest.has_zlib
        self.threads = threads

    def _specs(self) -> dict[str, InstrumentSpec]:
        table = {symbol: spec for (m, symbol), spec in BINANCE_SPECS.items() if m == self.market}
        table.update(self.extra_specs)
        return table

    def load(self, paths: str | Path | Sequence[str | Path]) -> MarketData:
        """Decode Binance recordings with the core's native decoder into MarketData (same arrays,
        rejections and sequence gaps as BinanceLoader.load; `seconds` is the wall time of the call).
        """
        started = time.perf_counter()
        files = _as_paths(paths)
        decoder, table = self._decoder(files)
        decoder.reserve(*_capacity_hint(files))
        for _ in self._run(decoder, files, _NATIVE_CHUNK):
            pass
        data = self._take(decoder, table, files, final=True)
        self.seconds = time.perf_counter() - started
        log.info("loaded %s (native): %d book events, %d trades, %d bbo, %d gaps, rejections %s in %.2fs",
                 ", ".join(data.sources), len(data.book), len(data.trades), len(data.bbo),
                 data.sequence_gaps, data.rejections.as_dict(), self.seconds)
        return data

    def iter_chunks(self, paths: str | Path | Sequence[str | Path],
                    chunk_bytes: int = CHUNK) -> Iterator[MarketData]:
        """The recording as consecutive MarketData pieces, one per `chunk_bytes` of file read:
        memory stays bounded by one chunk's records whatever the recording's size.

        Concatenating the pieces' arrays gives exactly `load(paths)`'s arrays. Each piece
        carries the rejections, gaps and instruments seen so far (the last piece: all of them).
        """
        if chunk_bytes <= 0:
            raise ConfigError(f"chunk_bytes must be positive, got {chunk_bytes}")
        files = _as_paths(paths)
        decoder, table = self._decoder(files)
        for _ in self._run(decoder, files, chunk_bytes):
            piece = self._take(decoder, table, files, final=False)
            if len(piece.book) or len(piece.trades) or len(piece.bbo):
                yield piece
        yield self._take(decoder, table, files, final=True)

    def _decoder(self, files: list[Path]):
        self.market = self.requested_market or detect_market(files[0])
        table = self._specs()
        decoder = _core.ingest.BinanceDecoder(self.market != "spot", self.on_gap == "continue")
        decoder.set_threads(self.threads)
        for symbol, spec in table.items():
            decoder.add_spec(symbol, spec.instrument_id, *_grid_args(spec.price_grid),
                             *_grid_args(spec.qty_grid))
        return decoder, table

    def _run(self, decoder, files: list[Path], chunk_bytes: int) -> Iterator[None]:
        """Feeds every file to the decoder, yielding after each chunk; finish() at the end."""
        bar = byte_progress(files, self.progress, f"binance {self.market}")
        try:
            for index, path in enumerate(files):
                yield from self._read_file(decoder, index, path, bar, chunk_bytes)
            decoder.finish()
        except _core.ingest.UnknownSymbol as exc:
            symbol = exc.args[0]
            binance_spec(self.market or "", symbol)  # raises the reference's DataError
            raise DataError(f"unknown Binance {self.market} symbol {symbol!r}") from None
        finally:
            bar.close()

    def _take(self, decoder, table: dict[str, InstrumentSpec], files: list[Path], final: bool) -> MarketData:
        """The records decoded since the last take, with the counters so far."""
        rejections = RejectionLog()
        for reason, count, file, line, kind, raw, prefix, side, p, q in decoder.rejections():
            text = _sample_text(kind, raw, prefix, side, p, q)[:200]
            rejections.counts[reason] = count
            rejections.samples[reason] = (str(files[file]), line, text)
            if final:
                log.info("rejected (%s) at %s:%d: %s", reason, files[file], line, text)
        self.stats = Counter({k: v for k, v in decoder.stats.items() if v})
        self.rejections = rejections
        specs = {}
        for name in decoder.symbols:
            spec = table[name.upper()]
            specs[spec.instrument_id] = spec
        return MarketData(
            specs=specs,
            book=np.asarray(decoder.take_book()).view(BOOK_EVENT),
            trades=np.asarray(decoder.take_trades()).view(TRADE_EVENT),
            bbo=np.asarray(decoder.take_bbo()).view(BBO_EVENT),
            rejections=rejections,
            sequence_gaps=decoder.sequence_gaps,
            sources=[str(p) for p in files],
            venue=VENUE_NAMES[self.market or ""],
        )

    def _read_file(self, decoder, index: int, path: Path, bar, chunk_bytes: int) -> Iterator[None]:
        # gzip: inflated by the core; zstd: decompressed here (pip zstandard) and fed plain.
        yield from feed_file(decoder, path, bar, lambda gzip: decoder.begin_file(index, gzip),
                             chunk_bytes, self.python_inflate)
