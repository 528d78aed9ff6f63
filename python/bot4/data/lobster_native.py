"""LOBSTER files -> MarketData through the native decoder (core/ingest/lobster_decoder), the
default of `bot4.data.lobster.load_lobster`.

Same contract, arrays, stats, rejection counts and samples as the Python reference in
bot4.data.lobster (whose docstring states the format, the reconciliation and the counters;
`load_lobster(engine="python")`); the tests check the two agree on the recording in
../shared/data and on damaged and random rows. The core reads both files streaming (gzip
inflated in the core; zstd decompressed here by the pip `zstandard` package), Python picks the
tick from what it saw and the core builds the events and reconciles its book with the published
rows without the GIL.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from bot4 import _core
from bot4.data.market_data import MarketData, RejectionLog, log
from bot4.data.native_feed import feed_file
from bot4.data.progress import CHUNK, byte_progress
from bot4.events import ORDER_EVENT, TRADE_EVENT
from bot4.instrument import InstrumentSpec

_CHUNK = 4 * CHUNK
_DAMAGE = ("truncated_file", "corrupt_file")


def load_lobster_native(mpath: Path, bpath: Path | None, *, tick_size: str | None, instrument_id: int,
                        symbol: str, base_ns: int, progress: bool = False) -> MarketData:
    """load_lobster's work once the files, symbol and day are known (see bot4.data.lobster)."""
    from bot4.data.lobster import _tick_unit

    files = [mpath] + ([bpath] if bpath is not None else [])
    decoder = _core.ingest.LobsterDecoder()
    bar = byte_progress(files, progress, f"lobster {mpath.name}")
    try:
        for index, path in enumerate(files):
            def begin(gzip: bool, index: int = index) -> None:
                decoder.begin_file(index, gzip)

            for _ in feed_file(decoder, path, bar, begin, _CHUNK):
                pass
    finally:
        bar.close()
    decoder.finish_parse()
    if tick_size is None:
        tick_size = "0.01" if decoder.all_cents else "0.0001"
    spec = InstrumentSpec(instrument_id=instrument_id, symbol=symbol, venue="NASDAQ",
                          tick_size=tick_size, lot_size="1")
    decoder.build(_tick_unit(tick_size), bpath is not None, base_ns, instrument_id)
    rejections = RejectionLog()
    for reason, count, file, line, raw in decoder.rejections():
        # damage tails are decoded as the line reader does (utf-8), rows as the reference (ASCII)
        text = raw.decode("utf-8" if reason in _DAMAGE else "ascii", "replace")
        rejections.counts[reason] = count
        rejections.samples[reason] = (str(files[file]), line, text)
        log.info("rejected (%s) at %s:%d: %s", reason, files[file], line, text)
    md = MarketData(specs={instrument_id: spec},
                    orders=np.asarray(decoder.take_orders()).view(ORDER_EVENT),
                    trades=np.asarray(decoder.take_trades()).view(TRADE_EVENT),
                    rejections=rejections, sources=[str(p) for p in files], venue="NASDAQ")
    md.stats = dict(decoder.stats())
    return md


class _Port:
    """One file's side of a decoder reading both files side by side: what feed_file drives."""

    __slots__ = ("decoder", "index")

    def __init__(self, decoder, index: int):
        self.decoder = decoder
        self.index = index

    def feed(self, data) -> None:
        self.decoder.feed(data, self.index)

    def feed_plain(self, data) -> None:
        self.decoder.feed_plain(data, self.index)

    def damage(self, kind: str) -> None:
        self.decoder.damage(kind, self.index)

    def end_file(self) -> None:
        self.decoder.end_file(self.index)


def _side_by_side(decoder, files: list[Path], bar, chunk_bytes: int) -> Iterator[None]:
    """Feeds the files in streaming mode, a chunk to each file pump() waits for; yields after each
    round. Memory: the message rows waiting for their orderbook rows (about a chunk)."""
    feeds = []
    for index, path in enumerate(files):
        def begin(gzip: bool, index: int = index) -> None:
            decoder.begin_file(index, gzip)

        feeds.append(feed_file(_Port(decoder, index), path, bar, begin, chunk_bytes))
    while waiting := decoder.pump():
        for index in waiting:
            next(feeds[index], None)  # the last next() ends the file
        yield


def iter_lobster_native(mpath: Path, bpath: Path | None, *, tick_size: str | None, instrument_id: int,
                        symbol: str, base_ns: int, chunk_bytes: int, progress: bool = False) -> Iterator[MarketData]:
    """bot4.data.lobster.iter_lobster's work once the files, symbol and day are known."""
    from bot4.data.lobster import _tick_unit

    files = [mpath] + ([bpath] if bpath is not None else [])
    bar = byte_progress(files * (2 if tick_size is None else 1), progress, f"lobster {mpath.name}")
    try:
        if tick_size is None:  # a pass of its own: the tick needs every price in the files
            scan = _core.ingest.LobsterDecoder()
            scan.stream_begin(1, bpath is not None, base_ns, instrument_id, True)
            for _ in _side_by_side(scan, files, bar, chunk_bytes):
                pass
            tick_size = "0.01" if scan.all_cents else "0.0001"
        spec = InstrumentSpec(instrument_id=instrument_id, symbol=symbol, venue="NASDAQ",
                              tick_size=tick_size, lot_size="1")
        decoder = _core.ingest.LobsterDecoder()
        decoder.stream_begin(_tick_unit(tick_size), bpath is not None, base_ns, instrument_id, False)
        for _ in _side_by_side(decoder, files, bar, chunk_bytes):
            part = _take(decoder, spec, files, final=False)
            if len(part.orders) or len(part.trades):
                yield part
    finally:
        bar.close()
    yield _take(decoder, spec, files, final=True)


def _take(decoder, spec: InstrumentSpec, files: list[Path], final: bool) -> MarketData:
    """The events built since the last take, with the rejections so far (and, final, the stats)."""
    rejections = RejectionLog()
    for reason, count, file, line, raw in decoder.rejections():
        text = raw.decode("utf-8" if reason in _DAMAGE else "ascii", "replace")
        rejections.counts[reason] = count
        rejections.samples[reason] = (str(files[file]), line, text)
        if final:
            log.info("rejected (%s) at %s:%d: %s", reason, files[file], line, text)
    md = MarketData(specs={spec.instrument_id: spec},
                    orders=np.asarray(decoder.take_orders()).view(ORDER_EVENT),
                    trades=np.asarray(decoder.take_trades()).view(TRADE_EVENT),
                    rejections=rejections, sources=[str(p) for p in files], venue="NASDAQ")
    if final:
        md.stats = dict(decoder.stats())
    return md
