"""Binance raw websocket recordings (hftbacktest collector format) -> MarketData.

File format: gzip, zstd (or plain) text, one record per line: ``<local receive ns> <raw JSON>``. JSON
is either a combined-stream envelope ``{"stream": "<sym>@depth@0ms" | "<sym>@trade" |
"<sym>@bookTicker", "data": {...}}`` or an envelope-less REST depth snapshot
``{"lastUpdateId": ..., "bids": [...], "asks": [...]}`` (see ../shared/data/README.md, section 1).

Output (`MarketData`), per array in receive order:

* book: BOOK_EVENT, one record per price level. A depth diff is one message: its bids then asks in
  message order, FLAG_LAST on its last record, ``seq`` = the diff's final update id ``u``. A REST
  snapshot is one message with FLAG_SNAPSHOT on every record, FLAG_CLEAR on its first record and
  ``seq`` = ``lastUpdateId``. Diffs that arrived before the snapshot and are still needed follow
  the snapshot records (they keep their own, earlier, ts_local).
* trades: TRADE_EVENT, ``seq`` = trade id ``t``, aggressor ASK when ``m`` (buyer is maker, so the
  seller aggressed) else BID, FLAG_LAST on each.
* bbo: BBO_EVENT from bookTicker, ``seq`` = its ``u``, FLAG_LAST on each.

Timestamps are int64 ns. ``ts_local`` is the line's receive time. ``ts_exchange`` is the venue's
time in ms * 1e6: for depth diffs, snapshots and bookTicker the transaction time ``T`` when the
venue sends it (futures), else the event time ``E``; for trades the trade time ``T``. Spot
bookTicker and spot REST snapshots carry no venue time at all: their ts_exchange is the latest
venue time seen before them in the recording (a lower bound), or ts_local if none was seen yet.

Synchronisation follows Binance's documented procedure ("How to manage a local order book
correctly", spot and USD-M/COIN-M futures docs):

* diffs that arrive before a snapshot are buffered; when the snapshot arrives the book is set to
  it and the buffer is replayed through the rules below;
* first diff after a snapshot with ``lastUpdateId`` = L: futures drop ``u < L`` and need
  ``U <= L <= u``; spot drops ``u <= L`` and needs ``U <= L+1 <= u``. Dropped ones are counted
  as ``covered_by_snapshot`` (normal: the snapshot already contains them);
* afterwards futures need ``pu == previous u`` and spot ``U == previous u + 1``;
* a diff with ``u`` equal to the last applied ``u`` is ``duplicate_diff``, lower is ``stale_diff``;
  both are dropped and do not break the chain;
* anything else breaks the chain: ``sequence_gaps`` += 1 and one ``sequence_gap`` rejection (a
  count of gaps, not of messages). With ``on_gap="drop"`` (default, Binance's rule) the book is
  not updated again until a new snapshot arrives: diffs are buffered for it and, if none comes,
  counted as ``awaiting_snapshot`` at the end. The records of the resync snapshot carry
  FLAG_RESYNC. With ``on_gap="continue"`` the loader keeps applying diffs after the gap (the book
  may be wrong at the levels the lost diffs touched until the venue updates them again); the
  records of the first diff after each gap carry FLAG_RESYNC so consumers can tell.

Bad input never raises (except an unknown symbol, which is a configuration error: DataError).
Every dropped item is counted in ``rejections`` with the first sample (file, line, text):

* ``truncated_file`` / ``corrupt_file``: the gzip stream ends early or is damaged; every complete
  line before it is kept;
* ``malformed_line`` (no ``<int ns> <json>`` shape), ``malformed_json``, ``bad_schema`` (valid
  JSON with missing or mistyped fields), ``unknown_message`` (a stream or message type not read
  here), ``ambiguous_snapshot`` (snapshot without symbol when several symbols are recorded),
  ``implausible_timestamp`` (receive time outside 2000..2100, or more than a day away from the
  venue's time in the record, or from the latest venue time seen when the record has none);
  integer fields beyond int64 (ids, venue times) are ``bad_schema``;
* per price level: ``bad_number`` (not a finite decimal, or out of int64 range), ``off_grid``
  (not a multiple of tick/lot), ``negative_qty``, ``nonpositive_price``. Policy: only the bad
  level is dropped; the rest of the message is applied and its ``u`` stays in the update-id chain
  (the level is counted, the book may be stale at that one price until its next update).
  Dropping the whole message would leave every level of it stale; breaking the chain would stop
  the book until the next snapshot. A trade or bookTicker with a bad number is dropped whole;
* ``duplicate_trade`` / ``stale_trade``: a trade id not above the previous one of the symbol.

Quantities: spot sizes are stored in lots of 1e-8 (the precision Binance writes): far-from-touch
levels in the recordings hold sizes finer than the current trading step (e.g. BTCUSDT
"25.42618900", ETHUSDT "2292.22972000"), so the exchange's LOT_SIZE step would put real data off
the grid.
"""

from __future__ import annotations

import itertools
import time
import zlib
from collections import Counter, deque
from collections.abc import Iterable, Sequence
from typing import Annotated, Any
from pathlib import Path

import msgspec
import numpy as np
import zstandard

from bot4.data.book_columns import BookColumns
from bot4.data.market_data import MarketData, RejectionLog, log, plausible_ts
from bot4.data.progress import GZIP_MAGIC, ZSTD_MAGIC, _NoProgress, byte_progress, iter_lines
from bot4.errors import ConfigError, DataError, DecimalParseError, OffGridError
from bot4.events import ASK, BBO_EVENT, BID, FLAG_LAST, FLAG_RESYNC, \
    FLAG_SNAPSHOT, TRADE_EVENT
from bot4.instrument import InstrumentSpec

MARKETS = ("usdm", "coinm", "spot")
VENUE_NAMES = {"usdm": "binance-usdm", "coinm": "binance-coinm", "spot": "binance-spot"}
_NS_PER_MS = 1_000_000

# (market, symbol) -> (instrument_id, tick, lot, contract_size, inverse). Ticks and lots are checked
# against every price and size in ../shared/data (tests/data/test_binance.py).
_TABLE: dict[tuple[str, str], tuple[int, str, str, str, bool]] = {
    ("usdm", "BTCUSDT"): (1, "0.10", "0.001", "1", False),
    ("usdm", "ETHUSDT"): (2, "0.01", "0.001", "1", False),
    ("spot", "BTCUSDT"): (101, "0.01", "0.00000001", "1", False),
    ("spot", "ETHUSDT"): (102, "0.01", "0.00000001", "1", False),
    ("coinm", "BTCUSD_PERP"): (201, "0.1", "1", "100", True),
    ("coinm", "ETHUSD_PERP"): (202, "0.01", "1", "10", True),
}

BINANCE_SPECS: dict[tuple[str, str], InstrumentSpec] = {
    (market, symbol): InstrumentSpec(instrument_id=iid, symbol=symbol, venue=VENUE_NAMES[market],
                                     tick_size=tick, lot_size=lot, contract_size=contract,
                                     inverse=inverse)
    for (market, symbol), (iid, tick, lot, contract, inverse) in _TABLE.items()
}
"""Known instruments by (market, symbol). Pass `specs=` to the loader for others."""

_MS = 1_000_000
_INT64_LIMIT = 1 << 62
_BUFFER_CAP = 20_000  # diffs held while waiting for a snapshot; older ones are counted and dropped
_CACHE_CAP = 1 << 20


def binance_spec(market: str, symbol: str) -> InstrumentSpec:
    """The built-in spec of a known Binance instrument (DataError for others)."""
    try:
        return BINANCE_SPECS[(market, symbol.upper())]
    except KeyError:
        raise DataError(
            f"unknown Binance {market} symbol {symbol!r} (known: "
            f"{sorted(s for m, s in BINANCE_SPECS if m == market)}); pass "
            f"specs={{'{symbol.upper()}': InstrumentSpec(...)}} to the loader") from None


# --- wire structs (msgspec) -------------------------------------------------------------------

Levels = list[tuple[str, str]]
# Integer fields beyond what the arrays hold are a schema error (``bad_schema``), not an
# OverflowError when the arrays are built: ids fit int64, venue times (ms) fit int64 ns.
Id = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
Ms = Annotated[int, msgspec.Meta(ge=0, le=(2**63 - 1) // 1_000_000)]


class _Depth(msgspec.Struct):
    E: Ms
    s: str
    U: Id
    u: Id
    b: Levels
    a: Levels
    T: Ms | None = None
    pu: Id | None = None


class _Trade(msgspec.Struct):
    E: Ms
    s: str
    t: Id
    p: str
    q: str
    m: bool
    T: Ms | None = None


class _Ticker(msgspec.Struct):
    u: Id
    s: str
    b: str
    B: str
    a: str
    A: str
    E: Ms | None = None
    T: Ms | None = None


class _Snapshot(msgspec.Struct):
    lastUpdateId: Id
    bids: Levels
    asks: Levels
    E: Ms | None = None
    T: Ms | None = None
    symbol: str | None = None


class _DepthEnv(msgspec.Struct):
    stream: str
    data: _Depth


class _TradeEnv(msgspec.Struct):
    stream: str
    data: _Trade


class _TickerEnv(msgspec.Struct):
    stream: str
    data: _Ticker


class _AnyLine(msgspec.Struct):
    stream: str | None = None
    data: msgspec.Raw = msgspec.Raw(b"")  # (Raw | None is not supported by msgspec)
    lastUpdateId: int | None = None


_ENV_DECODERS: dict[str, msgspec.json.Decoder[Any]] = {
    "depth": msgspec.json.Decoder(_DepthEnv),
    "trade": msgspec.json.Decoder(_TradeEnv),
    "bookTicker": msgspec.json.Decoder(_TickerEnv),
}
_DATA_DECODERS: dict[str, msgspec.json.Decoder[Any]] = {
    "depth": msgspec.json.Decoder(_Depth),
    "trade": msgspec.json.Decoder(_Trade),
    "bookTicker": msgspec.json.Decoder(_Ticker),
}
_ANY = msgspec.json.Decoder(_AnyLine)
_SNAPSHOT = msgspec.json.Decoder(_Snapshot)
_PREFIX = b'{"stream":"'


def _stream_kind(stream: str) -> str | None:
    """'depth' | 'trade' | 'bookTicker' | None from '<sym>@depth@0ms' and the like."""
    _, _, rest = stream.partition("@")
    kind = rest.partition("@")[0]
    return kind if kind in _ENV_DECODERS else None


# --- per-symbol state -------------------------------------------------------------------------

class _Diff:
    """A parsed depth diff waiting to be applied (or buffered)."""

    __slots__ = ("tsx", "tsl", "U", "u", "pu", "prices", "qtys", "nb", "source", "line_no", "text")

    def __init__(self, tsx, tsl, U, u, pu, prices, qtys, nb, source, line_no, text):
        self.tsx, self.tsl, self.U, self.u, self.pu = tsx, tsl, U, u, pu
        self.prices, self.qtys, self.nb = prices, qtys, nb
        self.source, self.line_no, self.text = source, line_no, text


class _Symbol:
    __slots__ = ("spec", "iid", "price_grid", "qty_grid", "pcache", "qcache", "live", "need_first",
                 "after_gap", "last_u", "buffer", "last_trade")

    def __init__(self, spec: InstrumentSpec):
        self.spec = spec
        self.iid = spec.instrument_id
        self.price_grid = spec.price_grid
        self.qty_grid = spec.qty_grid
        self.pcache: dict[str, int] = {}
        self.qcache: dict[str, int] = {}
        self.live = False          # book synced to a snapshot and chained since
        self.need_first = False    # next diff is the first after a snapshot
        self.after_gap = False     # a gap happened since the last sync
        self.last_u = 0
        self.buffer: deque[_Diff] = deque()
        self.last_trade = -1

    def value(self, text: str, is_price: bool) -> int | str:
        """Exact ticks/lots of `text`, or a rejection reason."""
        grid = self.price_grid if is_price else self.qty_grid
        try:
            units = grid.to_units(text)
        except OffGridError:
            return "off_grid"
        except (DecimalParseError, ValueError, TypeError, AttributeError, ArithmeticError):
            return "bad_number"
        if not -_INT64_LIMIT < units < _INT64_LIMIT:
            return "bad_number"
        if is_price:
            if units <= 0:
                return "nonpositive_price"
            cache = self.pcache
        else:
            if units < 0:
                return "negative_qty"
            cache = self.qcache
        if len(cache) >= _CACHE_CAP:
            cache.clear()
        cache[text] = units
        return units


# --- the loader -------------------------------------------------------------------------------

class LoaderOptions:
    """What every Binance loader (this module's and the native one) is told: the market (None:
    detected from the first file), extra instrument specs, the gap policy and progress; checked
    once here, with the per-load stats and time."""

    def __init__(self, market: str | None = None, *, specs: dict[str, InstrumentSpec] | None = None,
                 on_gap: str = "drop", progress: bool = False):
        if market is not None and market not in MARKETS:
            raise ConfigError(f"market must be one of {MARKETS}, got {market!r}")
        if on_gap not in ("drop", "continue"):
            raise ConfigError(f"on_gap must be 'drop' or 'continue', got {on_gap!r}")
        self.requested_market = market
        self.market = market
        self.extra_specs = {k.upper(): v for k, v in (specs or {}).items()}
        self.on_gap = on_gap
        self.progress = progress
        self.stats: Counter = Counter()
        self.seconds = 0.0


class BinanceLoader(LoaderOptions):
    """Stateful reader of one continuous Binance recording (one or more files, in order).

    `load_binance` is the one-call API; this class is exposed so that callers can also read
    `stats` (messages and level changes decoded per kind) after `load`.
    """

    def __init__(self, market: str | None = None, *, specs: dict[str, InstrumentSpec] | None = None,
                 on_gap: str = "drop", progress: bool = False):
        super().__init__(market, specs=specs, on_gap=on_gap, progress=progress)
        self._reset()

    def _reset(self) -> None:
        self.rejections = RejectionLog()
        self.sequence_gaps = 0
        self.symbols: dict[str, _Symbol] = {}
        self.pending_snapshots: list[tuple] = []
        self.last_exchange_ns = 0
        self.book = BookColumns()
        self.trades: list[tuple] = []
        self.bbo: list[tuple] = []

    # -- public --

    def load(self, paths: str | Path | Sequence[str | Path]) -> MarketData:
        """Decode Binance recordings (one instrument's files in order, continuation files included) into
        MarketData.

        The market is the constructor's, else detected from the first file. Bad lines are counted in
        `rejections` (with one sample each); `stats` and `seconds` describe the last call.
        """
        started = time.perf_counter()
        files = _as_paths(paths)
        self._reset()
        self.stats = Counter()
        self.market = self.requested_market or detect_market(files[0])
        futures = self.market != "spot"
        bar = byte_progress(files, self.progress, f"binance {self.market}")
        try:
            for path in files:
                self._read_file(path, futures, bar)
        finally:
            bar.close()
        self._finish()
        data = MarketData(
            specs={s.iid: s.spec for s in self.symbols.values()},
            book=self.book.to_array(),
            trades=np.array(self.trades, dtype=TRADE_EVENT) if self.trades else np.zeros(0, TRADE_EVENT),
            bbo=np.array(self.bbo, dtype=BBO_EVENT) if self.bbo else np.zeros(0, BBO_EVENT),
            rejections=self.rejections,
            sequence_gaps=self.sequence_gaps,
            sources=[str(p) for p in files],
            venue=VENUE_NAMES[self.market],
        )
        self.seconds = time.perf_counter() - started
        log.info("loaded %s: %d book events, %d trades, %d bbo, %d gaps, rejections %s in %.2fs",
                 ", ".join(data.sources), len(data.book), len(data.trades), len(data.bbo),
                 data.sequence_gaps, self.rejections.as_dict(), self.seconds)
        return data

    # -- reading --

    def _reject(self, reason: str, source: str, line_no: int, text) -> None:
        if isinstance(text, (bytes, bytearray, memoryview)):
            text = bytes(text[:200]).decode("utf-8", "replace")
        self.rejections.reject(reason, source, line_no, text)

    def _read_file(self, path: Path, futures: bool, bar) -> None:
        source = str(path)
        stats = self.stats
        env_decoders = _ENV_DECODERS
        on_damage = lambda kind, line_no, text: self._reject(kind, source, line_no, text)  # noqa: E731
        for line_no, line in iter_lines(path, bar, on_damage):
            stats["lines"] += 1
            ts_bytes, sep, payload = line.partition(b" ")
            if not (sep and ts_bytes.isdigit()):
                if line.strip():
                    self._reject("malformed_line", source, line_no, line)
                else:
                    stats["empty_lines"] += 1
                continue
            tsl = int(ts_bytes)
            try:
                if payload.startswith(_PREFIX):
                    end = payload.find(b'"', len(_PREFIX))
                    kind = _stream_kind(payload[len(_PREFIX):end].decode("ascii", "replace"))
                    if kind is None:
                        self._reject("unknown_message", source, line_no, line)
                        continue
                    msg = env_decoders[kind].decode(payload).data
                else:
                    generic = _ANY.decode(payload)
                    if generic.lastUpdateId is not None:
                        snap = _SNAPSHOT.decode(payload)
                        venue_ms = snap.T if snap.T is not None else snap.E
                        if not plausible_ts(tsl, venue_ms * _MS if venue_ms is not None
                                            else self.last_exchange_ns or None):
                            self._reject("implausible_timestamp", source, line_no, line)
                            continue
                        stats["snapshots"] += 1
                        self._on_snapshot(snap, tsl, source, line_no, line)
                        continue
                    kind = _stream_kind(generic.stream) if generic.stream else None
                    if kind is None or not len(generic.data):
                        self._reject("unknown_message", source, line_no, line)
                        continue
                    msg = _DATA_DECODERS[kind].decode(generic.data)
            except msgspec.ValidationError:
                self._reject("bad_schema", source, line_no, line)
                continue
            except msgspec.DecodeError:
                self._reject("malformed_json", source, line_no, line)
                continue
            venue_ms = msg.T if msg.T is not None else msg.E
            if not plausible_ts(tsl, venue_ms * _MS if venue_ms is not None else self.last_exchange_ns or None):
                self._reject("implausible_timestamp", source, line_no, line)
                continue
            if kind == "depth":
                stats["depth_messages"] += 1
                stats["depth_levels"] += len(msg.b) + len(msg.a)
                self._on_depth(msg, tsl, futures, source, line_no, line)
            elif kind == "trade":
                stats["trades"] += 1
                self._on_trade(msg, tsl, source, line_no, line)
            else:
                stats["book_tickers"] += 1
                self._on_ticker(msg, tsl, source, line_no, line)

    def _symbol(self, name: str) -> _Symbol:
        state = self.symbols.get(name)
        if state is None:
            assert self.market is not None  # load() settles the market before any line is read
            spec = self.extra_specs.get(name.upper()) or binance_spec(self.market, name)
            state = self.symbols[name] = _Symbol(spec)
            if self.pending_snapshots and len(self.symbols) == 1:
                pending, self.pending_snapshots = self.pending_snapshots, []
                for snap, tsl, source, line_no, line in pending:
                    self._sync(state, snap, tsl, source, line_no, line)
        return state

    def _levels(self, state: _Symbol, levels: Levels, side: str, prices: list, qtys: list,
                source: str, line_no: int) -> int:
        """Append the valid levels' ticks/lots; count the bad ones. Returns the number appended."""
        pc = state.pcache
        qc = state.qcache
        n = 0
        for p, q in levels:
            pt: int | str | None = pc.get(p)
            qt: int | str | None = qc.get(q)
            if pt is None or qt is None:
                if pt is None:
                    pt = state.value(p, True)
                if qt is None:
                    qt = state.value(q, False)
                bad = pt if isinstance(pt, str) else qt if isinstance(qt, str) else None
                if bad is not None:
                    self._reject(bad, source, line_no, f"{side} level [{p!r}, {q!r}]")
                    continue
            prices.append(pt)
            qtys.append(qt)
            n += 1
        return n

    def _exchange_ns(self, t: int | None, e: int | None, tsl: int) -> int:
        ms = t if t is not None else e
        if ms is None:
            return self.last_exchange_ns or tsl
        ns = ms * _MS
        if ns > self.last_exchange_ns:
            self.last_exchange_ns = ns
        return ns

    # -- depth sync --

    def _on_depth(self, msg: _Depth, tsl: int, futures: bool, source: str, line_no: int, line) -> None:
        state = self._symbol(msg.s)
        if futures and msg.pu is None:
            self._reject("bad_schema", source, line_no, line)
            return
        prices: list[int] = []
        qtys: list[int] = []
        nb = self._levels(state, msg.b, "bid", prices, qtys, source, line_no)
        self._levels(state, msg.a, "ask", prices, qtys, source, line_no)
        diff = _Diff(self._exchange_ns(msg.T, msg.E, tsl), tsl, msg.U, msg.u, msg.pu, prices, qtys,
                     nb, source, line_no, None)
        if not state.live:
            diff.text = bytes(line[:200]).decode("utf-8", "replace")
            self._buffer(state, diff)
        else:
            self._on_diff(state, diff, futures, line)

    def _buffer(self, state: _Symbol, diff: _Diff) -> None:
        state.buffer.append(diff)
        if len(state.buffer) > _BUFFER_CAP:
            old = state.buffer.popleft()
            self._reject("awaiting_snapshot", old.source, old.line_no, old.text or "")

    def _on_diff(self, state: _Symbol, diff: _Diff, futures: bool, line=None) -> None:
        last = state.last_u
        if state.need_first:
            if futures:
                covered = diff.u < last
                bridges = diff.U <= last <= diff.u
            else:
                covered = diff.u <= last
                bridges = diff.U <= last + 1 <= diff.u
            if covered:
                self._reject("covered_by_snapshot", diff.source, diff.line_no, diff.text or line or b"")
                return
            if not bridges:
                self._gap(state, diff, futures, line)
                return
            state.need_first = False
        else:
            if diff.u <= last:
                reason = "duplicate_diff" if diff.u == last else "stale_diff"
                self._reject(reason, diff.source, diff.line_no, diff.text or line or b"")
                return
            if (diff.pu != last) if futures else (diff.U != last + 1):
                self._gap(state, diff, futures, line)
                return
        self._emit_diff(state, diff, 0)

    def _gap(self, state: _Symbol, diff: _Diff, futures: bool, line) -> None:
        self.sequence_gaps += 1
        expected = f"pu={state.last_u}" if futures else f"U={state.last_u + 1}"
        text = diff.text or (bytes(line[:160]).decode("utf-8", "replace") if line is not None else "")
        self._reject("sequence_gap", diff.source, diff.line_no,
                     f"expected {expected}, got U={diff.U} u={diff.u} pu={diff.pu}: {text}")
        if self.on_gap == "continue":
            state.need_first = False
            self._emit_diff(state, diff, FLAG_RESYNC)
            return
        state.live = False
        state.need_first = False
        state.after_gap = True
        if diff.text is None:
            diff.text = text
        self._buffer(state, diff)

    def _emit_diff(self, state: _Symbol, diff: _Diff, flags: int) -> None:
        state.last_u = diff.u
        n = len(diff.prices)
        if n == 0:
            return
        self.book.add_message(diff.tsx, diff.tsl, diff.u, state.iid, flags, False, diff.prices,
                              diff.qtys, diff.nb)

    def _on_snapshot(self, snap: _Snapshot, tsl: int, source: str, line_no: int, line) -> None:
        if snap.symbol is not None:
            state = self._symbol(snap.symbol)
        elif len(self.symbols) == 1:
            state = next(iter(self.symbols.values()))
        elif not self.symbols:
            # Nothing recorded yet names the symbol: hold the snapshot for the first one that does.
            self.pending_snapshots.append((snap, tsl, source, line_no, bytes(line[:200])))
            return
        else:
            self._reject("ambiguous_snapshot", source, line_no, line)
            return
        self._sync(state, snap, tsl, source, line_no, line)

    def _sync(self, state: _Symbol, snap: _Snapshot, tsl: int, source: str, line_no: int, line) -> None:
        self.stats["snapshot_levels"] += len(snap.bids) + len(snap.asks)
        prices: list[int] = []
        qtys: list[int] = []
        nb = self._levels(state, snap.bids, "bid", prices, qtys, source, line_no)
        self._levels(state, snap.asks, "ask", prices, qtys, source, line_no)
        if prices:  # (a snapshot without a single valid level cannot carry FLAG_CLEAR: counted)
            self.book.add_message(self._exchange_ns(snap.T, snap.E, tsl), tsl, snap.lastUpdateId,
                                  state.iid, FLAG_SNAPSHOT | (FLAG_RESYNC if state.after_gap else 0),
                                  True, prices, qtys, nb)
        else:
            self._reject("empty_snapshot", source, line_no, line)
        state.live = True
        state.need_first = True
        state.after_gap = False
        state.last_u = snap.lastUpdateId
        futures = self.market != "spot"
        buffered, state.buffer = state.buffer, deque()
        for diff in buffered:
            if state.live:
                self._on_diff(state, diff, futures)
            else:  # a gap inside the buffer: back to waiting
                self._buffer(state, diff)

    # -- trades and bookTicker --

    def _on_trade(self, msg: _Trade, tsl: int, source: str, line_no: int, line) -> None:
        state = self._symbol(msg.s)
        price: int | str | None = state.pcache.get(msg.p)
        if price is None:
            price = state.value(msg.p, True)
        qty: int | str | None = state.qcache.get(msg.q)
        if qty is None:
            qty = state.value(msg.q, False)
        bad = price if isinstance(price, str) else qty if isinstance(qty, str) else None
        if bad is not None:
            self._reject(bad, source, line_no, line)
            return
        if msg.t <= state.last_trade:
            self._reject("duplicate_trade" if msg.t == state.last_trade else "stale_trade",
                         source, line_no, line)
            return
        state.last_trade = msg.t
        self.trades.append((self._exchange_ns(msg.T, msg.E, tsl), tsl, msg.t, price, qty, state.iid,
                            ASK if msg.m else BID, FLAG_LAST, 0))

    def _on_ticker(self, msg: _Ticker, tsl: int, source: str, line_no: int, line) -> None:
        state = self._symbol(msg.s)
        values = []
        for text, is_price, cache in ((msg.b, True, state.pcache), (msg.B, False, state.qcache),
                                      (msg.a, True, state.pcache), (msg.A, False, state.qcache)):
            v: int | str | None = cache.get(text)
            if v is None:
                v = state.value(text, is_price)
                if isinstance(v, str):
                    self._reject(v, source, line_no, line)
                    return
            values.append(v)
        self.bbo.append((self._exchange_ns(msg.T, msg.E, tsl), tsl, msg.u, values[0], values[1],
                         values[2], values[3], state.iid, FLAG_LAST, 0, 0))

    # -- end --

    def _finish(self) -> None:
        for _snap, _tsl, source, line_no, line in self.pending_snapshots:
            self._reject("ambiguous_snapshot", source, line_no, line)
        self.pending_snapshots = []
        for state in self.symbols.values():
            for diff in state.buffer:
                self._reject("awaiting_snapshot", diff.source, diff.line_no, diff.text or "")
            state.buffer.clear()


def _as_paths(paths: str | Path | Iterable[str | Path]) -> list[Path]:
    if isinstance(paths, (str, Path)):
        paths = [paths]
    files = [Path(p) for p in paths]
    if not files:
        raise DataError("no input files")
    for p in files:
        if not p.is_file():
            raise DataError(f"no such file: {p}")
    return files


def detect_market(path: str | Path, max_lines: int = 5000) -> str:
    """'usdm' | 'coinm' | 'spot' from the first messages of a recording.

    A symbol whose pair ends in USD (BTCUSD_PERP) is COIN-M; otherwise a depth diff with `pu`, a
    trade with `X` or a bookTicker with `E` is USD-M futures, and a depth diff without `pu`, a
    trade with `M` or a bookTicker without `E` is spot.
    """
    path = Path(path)
    # The first 64 KiB of text nearly always decides; the whole first-lines scan is the fallback.
    head = _head_lines(path)[:max_lines]
    market = _market_of_lines(head)
    if market is None and len(head) < max_lines:
        lines = (line for _, line in iter_lines(path, _NoProgress(), lambda *a: None))
        market = _market_of_lines(itertools.islice(lines, max_lines))
    if market is None:
        raise DataError(f"cannot tell the Binance market of {path}; pass market='usdm'|'coinm'|'spot'")
    return market


def _head_lines(path: Path, text_bytes: int = 1 << 16) -> list[bytes]:
    """The complete lines within the first `text_bytes` of decompressed text ([] if unreadable)."""
    with open(path, "rb") as raw:
        data = raw.read(text_bytes)
    if data.startswith(GZIP_MAGIC):
        try:
            data = zlib.decompressobj(wbits=31).decompress(data, text_bytes)
        except zlib.error:
            return []
    elif data.startswith(ZSTD_MAGIC):
        try:
            data = zstandard.ZstdDecompressor().decompressobj().decompress(data)[:text_bytes]
        except zstandard.ZstdError:
            return []
    else:
        data = data[:text_bytes]
    lines = data.split(b"\n")[:-1]
    return [line[:-1] if line.endswith(b"\r") else line for line in lines]


def _market_of_lines(lines: Iterable[bytes]) -> str | None:
    decoder = msgspec.json.Decoder()
    for line in lines:
        payload = line.partition(b" ")[2]
        if b'"stream"' not in payload:
            continue
        try:
            obj = decoder.decode(payload)
            stream, data = obj["stream"], obj["data"]
        except (msgspec.DecodeError, KeyError, TypeError):
            continue
        kind = _stream_kind(stream) if isinstance(stream, str) else None
        if kind is None or not isinstance(data, dict):
            continue
        if stream.partition("@")[0].partition("_")[0].endswith("usd"):
            return "coinm"  # inverse: BTCUSD_PERP, ETHUSD_240927
        if kind == "depth":
            return "usdm" if "pu" in data else "spot"
        if kind == "trade":
            if "X" in data:
                return "usdm"
            if "M" in data:
                return "spot"
        if kind == "bookTicker":
            return "usdm" if "E" in data else "spot"
    return None


ENGINES = ("native", "python")


def load_binance(paths: str | Path | Sequence[str | Path], market: str | None = None,
                 progress: bool = False, *, specs: dict[str, InstrumentSpec] | None = None,
                 on_gap: str = "drop", engine: str = "native") -> MarketData:
    """Load one continuous Binance raw recording (one file, or several in recording order).

    market: "usdm" | "coinm" | "spot", or None to detect it from the first file's messages.
    specs: symbol -> InstrumentSpec for instruments not in BINANCE_SPECS (or to override them).
    on_gap: "drop" (default: after a sequence gap, wait for a new snapshot) or "continue" (keep
    applying diffs, first records after the gap flagged FLAG_RESYNC). See the module docstring.
    progress: tqdm bar over the compressed bytes read, on stderr.
    engine: "native" (default: the C++ decoder, bot4.data.binance_native) or "python" (this
    module's BinanceLoader, the reference the native one is tested against).
    """
    if engine == "native":
        from bot4.data.binance_native import NativeBinanceLoader

        return NativeBinanceLoader(market, specs=specs, on_gap=on_gap, progress=progress).load(paths)
    if engine != "python":
        raise ConfigError(f"engine must be one of {ENGINES}, got {engine!r}")
    return BinanceLoader(market, specs=specs, on_gap=on_gap, progress=progress).load(paths)
