"""Tardis.dev "downloadable CSV" files -> MarketData.

The kind of each file is told by its header (plain, gzip or zstd, any mix of kinds in one load).
`load_tardis` reads the rows with the native decoder (bot4.data.tardis_native) by default; this
module's Python reader (``engine="python"``) is the reference it is tested against.

* ``incremental_book_L2`` (exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount)
  -> ``book``: one BOOK_EVENT per row, ``amount`` the new absolute level size (0 deletes).
  Consecutive rows of one symbol sharing (timestamp, local_timestamp, is_snapshot) are one
  message: FLAG_LAST on its last record. ``is_snapshot=true`` rows carry FLAG_SNAPSHOT, and the
  first row of a run of snapshot rows (at the start of the symbol's data or after non-snapshot
  rows) carries FLAG_CLEAR: the book is reset there, as Tardis asks on reconnection snapshots.
  Tardis gives no update ids: ``seq`` is the message's ordinal in the load (merged order).
* ``trades`` (exchange,symbol,timestamp,local_timestamp,id,side,price,amount) -> ``trades``.
  ``side`` is the aggressor (buy -> BID, sell -> ASK, anything Tardis marks unknown -> NO_SIDE).
  ``seq`` is the numeric trade id when the file's ids are integers; when they are not (BitMEX
  uuids) it is the row's ordinal in the load, so order is kept. FLAG_LAST on each.
* ``quotes`` (exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_price,bid_amount)
  -> ``bbo``; an empty side gets the NO_BID_PRICE / NO_ASK_PRICE sentinel and size 0.
* ``book_snapshot_N`` (asks[i].price, asks[i].amount, bids[i].price, bids[i].amount, ...) -> ``book``:
  each row is one message, a full top-N snapshot (FLAG_SNAPSHOT on all records, FLAG_CLEAR on
  the first, bids then asks from the touch out).

Timestamps: ``timestamp`` (exchange, µs) -> ts_exchange ns, ``local_timestamp`` (Tardis receive
time, µs) -> ts_local ns.

Several files (an instrument's incremental_book_L2 and trades files, several days, several
symbols) are read in one merged row order, so every array is in receive order across files: by
each file's running maximum of local_timestamp (a row without a readable one keeps its file's
maximum so far), ties to the file given first, each file's rows in their order. An L2 message
never spans files: a row of another file that opens a message (a book_snapshot row) ends it.
``iter_tardis`` decodes the same rows in the same order part by part, with bounded memory.

Instrument specs: pass ``spec`` (one InstrumentSpec, for files of that symbol) or a dict
symbol -> spec. Rows of a symbol without a spec are rejected as ``unknown_symbol``. With
``spec=None`` the grid is inferred per symbol in a first pass over the files: tick = 10^-d where d
is the largest number of decimals written in any price of that symbol (trailing zeros ignored),
lot likewise from the amounts. That is the finest decimal grid the data is written on, not
necessarily the venue's real tick (Deribit BTC-PERPETUAL writes 6421.5 and 6422: inferred tick
0.1, real tick 0.5); every value is exact on it. Inferred instrument ids are 1, 2, ... in order of
first appearance in the load.

Bad rows never raise; each is counted in ``rejections`` with its first sample: ``malformed_row``
(wrong number of fields, bad is_snapshot), ``bad_timestamp``, ``implausible_timestamp`` (beyond int64 ns,
or local and exchange time more than a day apart), ``bad_side``, ``bad_number``,
``off_grid``, ``negative_qty``, ``nonpositive_price``, ``bad_id`` (non-integer id in a file whose
ids are integers), ``unknown_symbol``, ``truncated_file`` / ``corrupt_file``. A bad row is dropped
alone; the rest of its message is kept.
"""

from __future__ import annotations

import csv
import heapq
import re
import time
from collections.abc import Iterator, Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path

import numpy as np

from bot4.data.binance import _as_paths
from bot4.data.book_columns import BookColumns
from bot4.data.market_data import MAX_CLOCK_SKEW_NS, MarketData, RejectionLog, log
from bot4.data.progress import _NoProgress, byte_progress, iter_lines
from bot4.errors import ConfigError, DataError, DecimalParseError, OffGridError
from bot4.events import ASK, BBO_EVENT, BID, FLAG_LAST, FLAG_SNAPSHOT, \
    NO_ASK_PRICE, NO_BID_PRICE, NO_SIDE, TRADE_EVENT
from bot4.instrument import InstrumentSpec

_I64 = 1 << 63
_US = 1000
_INT64_LIMIT = 1 << 62
_CACHE_CAP = 1 << 20

_BASE = ["exchange", "symbol", "timestamp", "local_timestamp"]
KINDS = {
    "incremental_book_L2": _BASE + ["is_snapshot", "side", "price", "amount"],
    "trades": _BASE + ["id", "side", "price", "amount"],
    "quotes": _BASE + ["ask_amount", "ask_price", "bid_price", "bid_amount"],
}
_SNAPSHOT_COL = re.compile(r"^(asks|bids)\[(\d+)\]\.(price|amount)$")
_AGGRESSOR = {"buy": BID, "sell": ASK, "unknown": NO_SIDE, "": NO_SIDE}
_BOOK_SIDE = {"bid": BID, "ask": ASK}


def _header_kind(header: list[str]) -> str:
    for kind, cols in KINDS.items():
        if header == cols:
            return kind
    if header[:4] == _BASE and len(header) > 4 and all(_SNAPSHOT_COL.match(c) for c in header[4:]):
        return "book_snapshot"
    raise DataError(f"not a Tardis CSV kind read here (incremental_book_L2, trades, quotes, "
                    f"book_snapshot_N); header: {','.join(header)[:200]}")


def _split(line: bytes) -> list[str]:
    text = line.decode("utf-8", "replace")
    if '"' in text:
        try:
            return next(csv.reader([text]))
        except csv.Error:  # e.g. a CR inside an unquoted field: no fields, a malformed row
            return []
    return text.split(",")


def _decimals(text: str) -> int | None:
    """Decimal places needed to write `text` exactly (None if it is not a finite decimal)."""
    s = text.strip()
    if "e" in s or "E" in s:
        try:
            d = Decimal(s)
        except (InvalidOperation, ArithmeticError):
            return None
        if not d.is_finite():
            return None
        exponent = d.normalize().as_tuple().exponent
        assert isinstance(exponent, int)  # only NaN/inf have a letter exponent, refused above
        return max(0, -exponent) if d else 0
    _, dot, frac = s.partition(".")
    return len(frac.rstrip("0")) if dot else 0


def _step(decimals: int) -> str:
    return "1" if decimals <= 0 else "0." + "0" * (decimals - 1) + "1"


class _Sym:
    __slots__ = ("spec", "iid", "pgrid", "qgrid", "pcache", "qcache", "in_snapshot")

    def __init__(self, spec: InstrumentSpec):
        self.spec = spec
        self.iid = spec.instrument_id
        self.pgrid = spec.price_grid
        self.qgrid = spec.qty_grid
        self.pcache: dict[str, int] = {}
        self.qcache: dict[str, int] = {}
        self.in_snapshot = False

    def price(self, text: str) -> int | str:
        v: int | str | None = self.pcache.get(text)
        if v is not None:
            return v
        v = self._value(text, self.pgrid)
        if isinstance(v, int):
            if v <= 0:
                return "nonpositive_price"
            if len(self.pcache) >= _CACHE_CAP:
                self.pcache.clear()
            self.pcache[text] = v
        return v

    def qty(self, text: str) -> int | str:
        v: int | str | None = self.qcache.get(text)
        if v is not None:
            return v
        v = self._value(text, self.qgrid)
        if isinstance(v, int):
            if v < 0:
                return "negative_qty"
            if len(self.qcache) >= _CACHE_CAP:
                self.qcache.clear()
            self.qcache[text] = v
        return v

    @staticmethod
    def _value(text: str, grid) -> int | str:
        try:
            v = grid.to_units(text)
        except OffGridError:
            return "off_grid"
        except (DecimalParseError, ValueError, TypeError, ArithmeticError):
            return "bad_number"
        return v if -_INT64_LIMIT < v < _INT64_LIMIT else "bad_number"


class _Reader:
    def __init__(self, specs: dict[str, InstrumentSpec]):
        self.rejections = RejectionLog()
        self.syms = {name: _Sym(s) for name, s in specs.items()}
        self.venue = ""
        self.msg_seq = 0
        self.row_seq = 0
        self.book = BookColumns()
        self.trades: list[tuple] = []
        self.bbo: list[tuple] = []
        self.msg_file: _File | None = None  # the file whose row opened the last message

    def reject(self, reason: str, source: str, line_no: int, text) -> None:
        if isinstance(text, bytes):
            text = text[:200].decode("utf-8", "replace")
        self.rejections.reject(reason, source, line_no, text)

    # --- book message plumbing ---

    def _open_message(self, ff: _File, tsx: int, tsl: int, iid: int, flags: int, clear: bool) -> None:
        self.book.open_message(tsx, tsl, self.msg_seq, iid, flags, clear)
        self.msg_seq += 1
        self.msg_file = ff

    # --- rows ---

    def _common(self, f: list[str], ncols: int, source: str, line_no: int, line: bytes):
        """(sym state, ts_exchange ns, ts_local ns) or None after counting the rejection."""
        if len(f) != ncols:
            self.reject("malformed_row", source, line_no, line)
            return None
        sym = self.syms.get(f[1])
        if sym is None:
            self.reject("unknown_symbol", source, line_no, line)
            return None
        try:
            tsx = int(f[2]) * _US
            tsl = int(f[3]) * _US
        except ValueError:
            self.reject("bad_timestamp", source, line_no, line)
            return None
        # Not the absolute 2000..2100 window (plausible_ts): fixtures and replays may use small
        # synthetic clocks; the exchange time in every row still pins the receive time.
        if not (-_I64 <= tsx < _I64 and -_I64 <= tsl < _I64) or abs(tsl - tsx) > MAX_CLOCK_SKEW_NS:
            self.reject("implausible_timestamp", source, line_no, line)
            return None
        if not self.venue:
            self.venue = f[0]
        return sym, tsx, tsl

    def read(self, files: list[Path], kinds: list[str], headers: list[list[str]], bar) -> None:
        """Every file's rows in the merged order (see merged_rows)."""
        states = [_File(i, path, kind, header) for i, (path, kind, header) in enumerate(zip(files, kinds, headers))]
        for _, index, line_no, line, f, damage in merged_rows(states, bar):
            ff = states[index]
            if damage is not None:
                self.reject(damage, ff.source, line_no, line)
            elif line_no != 1:  # the header
                getattr(self, "_row_" + ff.kind)(ff, f, line_no, line)

    def _row_incremental_book_L2(self, ff: _File, f: list[str], line_no: int, line: bytes) -> None:
        source = ff.source
        common = self._common(f, 8, source, line_no, line)
        if common is None:
            return
        sym, tsx, tsl = common
        snap_text = f[4]
        if snap_text == "true":
            is_snap = True
        elif snap_text == "false":
            is_snap = False
        else:
            self.reject("malformed_row", source, line_no, line)
            return
        side = _BOOK_SIDE.get(f[5])
        if side is None:
            self.reject("bad_side", source, line_no, line)
            return
        row_key = (f[1], tsx, tsl, is_snap)
        # a row of another file in between (a book_snapshot row) ended this file's message
        if row_key != ff.key or self.msg_file is not ff:
            ff.key = row_key
            clear = is_snap and not sym.in_snapshot
            sym.in_snapshot = is_snap
            self._open_message(ff, tsx, tsl, sym.iid, FLAG_SNAPSHOT if is_snap else 0, clear)
        price = sym.price(f[6])
        qty = sym.qty(f[7])
        if isinstance(price, str) or isinstance(qty, str):
            self.reject(price if isinstance(price, str) else qty, source, line_no, line)
            return
        self.book.add_level(side, price, qty)

    def _row_trades(self, ff: _File, f: list[str], line_no: int, line: bytes) -> None:
        source = ff.source
        common = self._common(f, 8, source, line_no, line)
        if common is None:
            return
        sym, tsx, tsl = common
        row_seq = self.row_seq
        self.row_seq += 1
        if ff.numeric_ids is None:
            ff.numeric_ids = f[4].isdigit()
        if ff.numeric_ids:
            if not f[4].isdigit():
                self.reject("bad_id", source, line_no, line)
                return
            seq = int(f[4])
            if seq >= 1 << 63:
                self.reject("bad_id", source, line_no, line)
                return
        else:
            seq = row_seq
        aggressor = _AGGRESSOR.get(f[5])
        if aggressor is None:
            self.reject("bad_side", source, line_no, line)
            return
        price = sym.price(f[6])
        qty = sym.qty(f[7])
        if isinstance(price, str) or isinstance(qty, str):
            self.reject(price if isinstance(price, str) else qty, source, line_no, line)
            return
        self.trades.append((tsx, tsl, seq, price, qty, sym.iid, aggressor, FLAG_LAST, 0))

    def _row_quotes(self, ff: _File, f: list[str], line_no: int, line: bytes) -> None:
        source = ff.source
        common = self._common(f, 8, source, line_no, line)
        if common is None:
            return
        sym, tsx, tsl = common
        seq = self.row_seq
        self.row_seq += 1
        ask_qty, ask_price, bid_price, bid_qty = f[4], f[5], f[6], f[7]
        values = []
        for p_text, q_text, none in ((bid_price, bid_qty, NO_BID_PRICE),
                                     (ask_price, ask_qty, NO_ASK_PRICE)):
            if p_text == "":
                values += [none, 0]
                continue
            p, q = sym.price(p_text), sym.qty(q_text or "0")
            bad = p if isinstance(p, str) else q if isinstance(q, str) else None
            if bad is not None:
                self.reject(bad, source, line_no, line)
                return
            values += [p, q]
        self.bbo.append((tsx, tsl, seq, values[0], values[1], values[2], values[3], sym.iid,
                         FLAG_LAST, 0, 0))

    def _row_book_snapshot(self, ff: _File, f: list[str], line_no: int, line: bytes) -> None:
        source = ff.source
        common = self._common(f, len(ff.header), source, line_no, line)
        if common is None:
            return
        sym, tsx, tsl = common
        self._open_message(ff, tsx, tsl, sym.iid, FLAG_SNAPSHOT, True)
        for side, pi, qi in ff.pairs:
            if f[pi] == "":
                continue
            price, qty = sym.price(f[pi]), sym.qty(f[qi])
            if isinstance(price, str) or isinstance(qty, str):
                self.reject(price if isinstance(price, str) else qty, source, line_no, line)
                continue
            self.book.add_level(side, price, qty)


class _File:
    """One file's reading state: its layout, the last L2 message key and the trades' id kind."""

    __slots__ = ("index", "path", "source", "kind", "header", "pairs", "key", "numeric_ids")

    def __init__(self, index: int, path: Path, kind: str, header: list[str]):
        self.index = index
        self.path = path
        self.source = str(path)
        self.kind = kind
        self.header = header
        self.pairs = snapshot_pairs(header) if kind == "book_snapshot" else []
        self.key: tuple | None = None
        self.numeric_ids: bool | None = None


_KEY = re.compile(r"-?[0-9]{1,18}")
_NO_KEY = -(1 << 63)


def _file_rows(ff: _File, bar) -> Iterator[tuple]:
    """(key, file index, line number, line, fields, None) of each line of a file, then
    (key, file index, line number, tail, None, damage reason) if it is damaged. key: the running
    maximum of the rows' local_timestamp (the 4th field when it is -?[0-9]{1,18})."""
    damage: list[tuple] = []
    run_max = _NO_KEY
    for line_no, line in iter_lines(ff.path, bar, lambda k, n, t: damage.append((k, n, t))):
        f = _split(line)
        if len(f) >= 4 and _KEY.fullmatch(f[3]):
            run_max = max(run_max, int(f[3]))
        yield run_max, ff.index, line_no, line, f, None
    for kind, line_no, tail in damage:
        yield run_max, ff.index, line_no, tail, None, kind


def merged_rows(states: list[_File], bar) -> Iterator[tuple]:
    """The rows of several files in one order: by each file's running maximum of local_timestamp,
    ties to the earlier file, each file's rows in their order (a stable sort of the files' rows
    concatenated). The native decoder (TardisDecoder.merge) reads several files in this order."""
    streams = [_file_rows(ff, bar) for ff in states]
    if len(streams) == 1:
        return streams[0]
    return heapq.merge(*streams, key=lambda item: (item[0], item[1]))


def snapshot_pairs(header: list[str]) -> list[tuple[int, int, int]]:
    """(side, price column, amount column) of a book_snapshot_N header: bids then asks, each from
    the touch out, levels that have both columns (by the levels present, not range(N): a damaged
    header may claim level 10^50)."""
    columns = {}
    for i, name in enumerate(header[4:], start=4):
        m = _SNAPSHOT_COL.match(name)
        assert m is not None  # the file kind was told from these very column names
        columns[(m.group(1), int(m.group(2)), m.group(3))] = i
    levels = sorted({level for _, level, _ in columns})
    return [(BID if side == "bids" else ASK, columns[(side, i, "price")], columns[(side, i, "amount")])
            for side in ("bids", "asks") for i in levels
            if (side, i, "price") in columns and (side, i, "amount") in columns]


def _read_header(path: Path) -> list[str]:
    from bot4.data.sniff import _head

    head = _head(path)  # the first 64 KiB of text, not the first 1 MiB chunk iter_lines inflates
    if b"\n" in head:
        line = head.split(b"\n", 1)[0]
        return _split((line[:-1] if line.endswith(b"\r") else line).lstrip(b"\xef\xbb\xbf"))
    for _, line in iter_lines(path, _NoProgress(), lambda *a: None):
        return _split(line.lstrip(b"\xef\xbb\xbf"))
    raise DataError(f"empty file: {path}")


def _price_amount_columns(kind: str, header: list[str]) -> tuple[list[int], list[int]]:
    if kind in ("incremental_book_L2", "trades"):
        return [6], [7]
    if kind == "quotes":
        return [5, 6], [4, 7]
    prices = [i for i, c in enumerate(header) if c.endswith(".price")]
    amounts = [i for i, c in enumerate(header) if c.endswith(".amount")]
    return prices, amounts


def infer_specs(paths: str | Path | Sequence[str | Path], progress=None) -> dict[str, InstrumentSpec]:
    """Per symbol, the finest decimal grids its prices and amounts are written on (see module doc)."""
    files = _as_paths(paths)
    bar = progress or _NoProgress()
    found: dict[str, list] = {}  # symbol -> [exchange, price decimals, amount decimals]
    for path in files:
        header = _read_header(path)
        kind = _header_kind(header)
        pcols, qcols = _price_amount_columns(kind, header)
        first = True
        for _, line in iter_lines(path, bar, lambda *a: None):
            if first:
                first = False
                continue
            f = _split(line)
            if len(f) != len(header):
                continue
            entry = found.get(f[1])
            if entry is None:
                entry = found[f[1]] = [f[0], 0, 0]
            for cols, slot in ((pcols, 1), (qcols, 2)):
                for i in cols:
                    d = _decimals(f[i]) if f[i] else 0
                    if d is not None and d > entry[slot]:
                        entry[slot] = d
    return {symbol: InstrumentSpec(instrument_id=i, symbol=symbol, venue=exchange,
                                   tick_size=_step(pd), lot_size=_step(qd))
            for i, (symbol, (exchange, pd, qd)) in enumerate(found.items(), start=1)}


def load_tardis(paths: str | Path | Sequence[str | Path],
                spec: InstrumentSpec | dict[str, InstrumentSpec] | None = None,
                progress: bool = False, *, engine: str = "native") -> MarketData:
    """Load Tardis CSV files (incremental_book_L2, trades, quotes, book_snapshot_N; plain, .gz
    or .zst).

    spec: the instrument (or a dict symbol -> spec); None infers the grid from the data (see the
    module docstring). progress: tqdm bar over the compressed bytes read, on stderr.
    engine: "native" (default: the C++ decoder, bot4.data.tardis_native) or "python" (this
    module's reader, the reference the native one is tested against).
    """
    started = time.perf_counter()
    if engine not in ("native", "python"):
        raise ConfigError(f"engine must be 'native' or 'python', got {engine!r}")
    files = _as_paths(paths)
    headers = [_read_header(p) for p in files]
    kinds = [_header_kind(h) for h in headers]
    if engine == "native":
        from bot4.data.tardis_native import load_tardis_native

        return load_tardis_native(files, kinds, headers, spec, progress)
    passes = files * (2 if spec is None else 1)
    bar = byte_progress(passes, progress, "tardis")
    try:
        if spec is None:
            specs = infer_specs(files, bar)
        elif isinstance(spec, InstrumentSpec):
            specs = {spec.symbol: spec}
        else:
            specs = dict(spec)
        reader = _Reader(specs)
        reader.read(files, kinds, headers, bar)
    finally:
        bar.close()
    data = MarketData(
        specs={s.instrument_id: s for s in specs.values()},
        book=reader.book.to_array(),
        trades=np.array(reader.trades, dtype=TRADE_EVENT) if reader.trades else np.zeros(0, TRADE_EVENT),
        bbo=np.array(reader.bbo, dtype=BBO_EVENT) if reader.bbo else np.zeros(0, BBO_EVENT),
        rejections=reader.rejections,
        sequence_gaps=0,
        sources=[str(p) for p in files],
        venue=reader.venue,
    )
    log.info("loaded %s (%s): %d book events, %d trades, %d quotes, rejections %s in %.2fs",
             ", ".join(data.sources), ", ".join(kinds), len(data.book), len(data.trades),
             len(data.bbo), reader.rejections.as_dict(), time.perf_counter() - started)
    return data


def iter_tardis(paths: str | Path | Sequence[str | Path],
                spec: InstrumentSpec | dict[str, InstrumentSpec] | None = None, *,
                chunk_bytes: int = 8 << 20, progress: bool = False) -> Iterator[MarketData]:
    """The files load_tardis would read, as consecutive MarketData parts decoded `chunk_bytes`
    of file (as stored) at a time by the native decoder: memory stays bounded by about a chunk
    per file whatever the files' sizes (gzip inflated and zstd decompressed in pieces; a line,
    an L2 message and the book state carry over from one chunk to the next).

    Several files are decoded together in load_tardis's merged row order, so concatenating the
    parts' arrays gives exactly load_tardis(paths, spec)'s arrays. Each part carries the
    instruments and the rejections counted so far (the last part: all of them; it may hold no
    records). spec=None infers the grids first, in a pass over the files of its own.
    """
    from bot4.data.tardis_native import iter_tardis_native

    if chunk_bytes <= 0:
        raise ConfigError(f"chunk_bytes must be positive, got {chunk_bytes}")
    files = _as_paths(paths)
    headers = [_read_header(p) for p in files]
    kinds = [_header_kind(h) for h in headers]
    return iter_tardis_native(files, kinds, headers, spec, chunk_bytes, progress)
