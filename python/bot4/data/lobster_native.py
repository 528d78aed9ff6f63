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
