"""Tardis CSV files -> MarketData through the native decoder (core/ingest/tardis_decoder), the
default of `bot4.data.tardis.load_tardis`.

Same contract, arrays, rejection counts and samples as the Python reference in bot4.data.tardis
(whose docstring states the format and the rejection reasons; `load_tardis(engine="python")`); the
tests check the two agree on every Tardis file in ../shared/data and on damaged and random rows.
Python reads each file's header (its kind) and owns the specs; the core reads the rows: the
grid-inference pass (when no spec is given) and the decoding pass, streaming chunk by chunk
(gzip inflated in the core; zstd decompressed here by the pip `zstandard` package).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from bot4 import _core
from bot4.data.binance_native import _grid_args
from bot4.data.market_data import MarketData, RejectionLog, log
from bot4.data.native_feed import feed_file
from bot4.data.progress import CHUNK, byte_progress
from bot4.events import BBO_EVENT, BOOK_EVENT, TRADE_EVENT
from bot4.instrument import InstrumentSpec

_KIND_CODE = {"incremental_book_L2": 0, "trades": 1, "quotes": 2, "book_snapshot": 3}
_CHUNK = 4 * CHUNK  # compressed bytes per call into the core (the GIL is released inside)


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def _file_layout(kind: str, header: list[str]) -> tuple[list[int], list[int], list[tuple[int, int, int]]]:
    """(price columns, amount columns, snapshot (side, price col, amount col) pairs) of a file."""
    from bot4.data.tardis import _price_amount_columns, snapshot_pairs

    prices, amounts = _price_amount_columns(kind, header)
    return prices, amounts, snapshot_pairs(header) if kind == "book_snapshot" else []


def _run(decoder, files: list[Path], kinds: list[str], headers: list[list[str]], bar) -> None:
    for index, (path, kind, header) in enumerate(zip(files, kinds, headers)):
        prices, amounts, pairs = _file_layout(kind, header)

        def begin(gzip: bool, index=index, kind=kind, header=header, prices=prices, amounts=amounts,
                  pairs=pairs) -> None:
            decoder.begin_file(index, gzip, _KIND_CODE[kind], len(header), prices, amounts, pairs)

        for _ in feed_file(decoder, path, bar, begin, _CHUNK):
            pass


def infer_specs_native(files: list[Path], kinds: list[str], headers: list[list[str]],
                       bar) -> tuple[dict[str, InstrumentSpec], dict[str, bytes]]:
    """The reference's infer_specs through the core: (symbol -> spec, symbol -> its bytes)."""
    from bot4.data.tardis import _decimals, _step

    decoder = _core.ingest.TardisDecoder(True)
    _run(decoder, files, kinds, headers, bar)
    found = decoder.found
    decimals = [[pd, qd] for _, _, pd, qd in found]  # price, amount decimals per symbol
    for index, is_amount, raw in decoder.exotic:
        d = _decimals(_text(raw))
        if d is not None and d > decimals[index][is_amount]:
            decimals[index][is_amount] = d
    specs: dict[str, InstrumentSpec] = {}
    keys: dict[str, bytes] = {}
    for i, ((raw_symbol, exchange, _, _), (pd, qd)) in enumerate(zip(found, decimals), start=1):
        symbol = _text(raw_symbol)
        specs[symbol] = InstrumentSpec(instrument_id=i, symbol=symbol, venue=_text(exchange),
                                       tick_size=_step(pd), lot_size=_step(qd))
        keys[symbol] = raw_symbol
    return specs, keys


class _Port:
    """One file's side of a decoder that reads several files together: what feed_file drives."""

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


def _decode(decoder, files: list[Path], kinds: list[str], headers: list[list[str]], bar,
            chunk_bytes: int) -> Iterator[None]:
    """Feeds the files together in the merged row order (bot4.data.tardis.merged_rows): each
    round, one chunk to every file the merge waits for; yields after each round. Memory: about a
    chunk of queued lines per file plus the records decoded since the caller last took them."""
    decoder.expect(len(files))
    feeds = []
    for index, (path, kind, header) in enumerate(zip(files, kinds, headers)):
        prices, amounts, pairs = _file_layout(kind, header)

        def begin(gzip: bool, index=index, kind=kind, header=header, prices=prices, amounts=amounts,
                  pairs=pairs) -> None:
            decoder.begin_file(index, gzip, _KIND_CODE[kind], len(header), prices, amounts, pairs)

        feeds.append(feed_file(_Port(decoder, index), path, bar, begin, chunk_bytes))
    while waiting := decoder.merge():
        for index in waiting:
            # the last next() ends the file (feed_file calls end_file), so the merge stops waiting for it
            next(feeds[index], None)
        yield


def _decoder(files: list[Path], kinds: list[str], headers: list[list[str]],
             spec: InstrumentSpec | dict[str, InstrumentSpec] | None, bar):
    """(decoding-pass decoder with the specs added, symbol -> spec); infers the specs first when
    spec is None (a pass over the files of its own)."""
    if spec is None:
        specs, keys = infer_specs_native(files, kinds, headers, bar)
    else:
        specs = {spec.symbol: spec} if isinstance(spec, InstrumentSpec) else dict(spec)
        keys = {name: name.encode() for name in specs}
    decoder = _core.ingest.TardisDecoder(False)
    for name, s in specs.items():
        decoder.add_spec(keys[name], s.instrument_id, *_grid_args(s.price_grid), *_grid_args(s.qty_grid))
    return decoder, specs


def _take(decoder, specs: dict[str, InstrumentSpec], files: list[Path], final: bool) -> MarketData:
    """The records decoded since the last take (the book records of messages no later row can
    extend, all of them when final), with the rejections so far."""
    rejections = RejectionLog()
    for reason, count, file, line, raw in decoder.rejections():
        text = _text(raw)
        rejections.counts[reason] = count
        rejections.samples[reason] = (str(files[file]), line, text)
        if final:
            log.info("rejected (%s) at %s:%d: %s", reason, files[file], line, text)
    book = decoder.take_book() if final else decoder.take_closed_book()
    return MarketData(
        specs={s.instrument_id: s for s in specs.values()},
        book=np.asarray(book).view(BOOK_EVENT),
        trades=np.asarray(decoder.take_trades()).view(TRADE_EVENT),
        bbo=np.asarray(decoder.take_bbo()).view(BBO_EVENT),
        rejections=rejections,
        sequence_gaps=0,
        sources=[str(p) for p in files],
        venue=_text(decoder.venue),
    )


def load_tardis_native(files: list[Path], kinds: list[str], headers: list[list[str]],
                       spec: InstrumentSpec | dict[str, InstrumentSpec] | None,
                       progress: bool = False) -> MarketData:
    """load_tardis's work for files whose headers were read (see bot4.data.tardis.load_tardis)."""
    started = time.perf_counter()
    bar = byte_progress(files * (2 if spec is None else 1), progress, "tardis")
    try:
        decoder, specs = _decoder(files, kinds, headers, spec, bar)
        for _ in _decode(decoder, files, kinds, headers, bar, _CHUNK):
            pass
    finally:
        bar.close()
    data = _take(decoder, specs, files, final=True)
    log.info("loaded %s (%s, native): %d book events, %d trades, %d quotes, rejections %s in %.2fs",
             ", ".join(data.sources), ", ".join(kinds), len(data.book), len(data.trades),
             len(data.bbo), data.rejections.as_dict(), time.perf_counter() - started)
    return data


def iter_tardis_native(files: list[Path], kinds: list[str], headers: list[list[str]],
                       spec: InstrumentSpec | dict[str, InstrumentSpec] | None, chunk_bytes: int,
                       progress: bool = False) -> Iterator[MarketData]:
    """bot4.data.tardis.iter_tardis's work for files whose headers were read."""
    bar = byte_progress(files * (2 if spec is None else 1), progress, "tardis")
    try:
        decoder, specs = _decoder(files, kinds, headers, spec, bar)
        for _ in _decode(decoder, files, kinds, headers, bar, chunk_bytes):
            piece = _take(decoder, specs, files, final=False)
            if len(piece.book) or len(piece.trades) or len(piece.bbo):
                yield piece
    finally:
        bar.close()
    yield _take(decoder, specs, files, final=True)
