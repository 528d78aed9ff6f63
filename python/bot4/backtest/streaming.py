"""bot4.backtest.run_stream: a backtest of a recording fed in pieces, with bounded memory.

The core keeps book, feature, order, ledger and venue state across pieces (the same engine and
per-event path as `bot4.backtest.run`); it holds only what it has not processed yet plus one piece
of look-ahead for the simulated venues, and the per-event records are handed to `on_records` as
the run goes instead of piling up. With pieces cut at watermarks (`time_pieces` does so exactly)
the result equals one `run` over the whole recording; `counters["late_events"]` and
`counters["sim_late_feed_events"]` count records that arrived after the engine or a venue had
passed their time (a source not in receive order), and are 0 for an exact run.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple

import numpy as np

from bot4 import _core
from bot4.backtest.engine import BacktestResult, _done, _l3_ids, _Prepared
from bot4.events import BOOK_EVENT, ORDER_EVENT, TRADE_EVENT

_RECORDS = ("decisions", "scores", "orders", "fills", "equity")


class Piece(NamedTuple):
    """The next records of each stream, and a watermark: every record not yet given has a merge
    key (its stream's running maximum of ts_local) >= watermark."""

    book: np.ndarray
    trades: np.ndarray
    orders: np.ndarray
    watermark: int


def _running_max(ts: np.ndarray) -> np.ndarray:
    return np.maximum.accumulate(ts) if ts.size else ts


def time_pieces(data, seconds: float | None = None, cuts: Iterable[int] | None = None) -> Iterator[Piece]:
    """`data` (a MarketData) cut into pieces at local times: every `seconds` from its first
    record, or at the given `cuts` (ns, increasing). Each stream is cut where its running maximum
    of ts_local reaches the cut, so the pieces meet run_stream's watermark contract exactly."""
    if (seconds is None) == (cuts is None):
        raise ValueError("give either seconds or cuts")
    streams = (data.book, data.trades, data.orders)
    keys = [_running_max(np.asarray(s["ts_local"])) for s in streams]
    if cuts is None:
        if not seconds or seconds <= 0:
            raise ValueError(f"seconds must be positive, got {seconds}")
        starts = [int(k[0]) for k in keys if k.size]
        ends = [int(k[-1]) for k in keys if k.size]
        if not starts:
            return
        step = int(seconds * 1e9)
        cuts = range(min(starts) + step, max(ends) + 1, step)
    at = [0, 0, 0]
    last = None
    for cut in cuts:
        cut = int(cut)
        if last is not None and cut < last:
            raise ValueError(f"cuts must increase: {cut} after {last}")
        last = cut
        nxt = [int(np.searchsorted(k, cut, side="left")) for k in keys]
        yield Piece(streams[0][at[0]:nxt[0]], streams[1][at[1]:nxt[1]], streams[2][at[2]:nxt[2]], cut)
        at = nxt
    yield Piece(streams[0][at[0]:], streams[1][at[1]:], streams[2][at[2]:], np.iinfo(np.int64).max)


def watermarked(parts: Iterable) -> Iterator[Piece]:
    """Exact pieces from consecutive parts of the three streams (book, trades, orders: each part
    continues each stream; a part may be a MarketData or a (book, trades, orders) tuple), with no
    assumption on how the streams interleave: a record is held back until every stream's running
    maximum of ts_local has passed its own, so each piece's watermark holds for all that follows."""
    dtypes = (BOOK_EVENT, TRADE_EVENT, ORDER_EVENT)
    carry = [_empty(dt) for dt in dtypes]
    carry_keys = [np.zeros(0, np.int64) for _ in dtypes]
    running = [np.iinfo(np.int64).min] * 3
    seen = [False] * 3
    for part in parts:
        arrays = (part.book, part.trades, part.orders) if hasattr(part, "book") else tuple(part)
        for i, a in enumerate(arrays):
            if a is None or not a.size:
                continue
            keys = np.maximum.accumulate(np.maximum(np.asarray(a["ts_local"], np.int64), running[i]))
            running[i] = int(keys[-1])
            seen[i] = True
            carry[i] = np.concatenate([carry[i], a])
            carry_keys[i] = np.concatenate([carry_keys[i], keys])
        if not any(seen):
            continue
        # Every later record of stream i has a key >= running[i]; a stream not seen yet bounds nothing.
        mark = min(r for r, s in zip(running, seen) if s)
        cut = [int(np.searchsorted(k, mark, side="left")) for k in carry_keys]
        # copies: a view would pin the whole joined carry (the records held back included), and a
        # caller keeping the pieces would hold every part's carry again (quadratic: 6.4 GB for 638
        # parts of the 150k-event embedded stream)
        yield Piece(carry[0][:cut[0]].copy(), carry[1][:cut[1]].copy(), carry[2][:cut[2]].copy(), mark)
        carry = [c[n:] for c, n in zip(carry, cut)]
        carry_keys = [k[n:] for k, n in zip(carry_keys, cut)]
    yield Piece(carry[0], carry[1], carry[2], np.iinfo(np.int64).max)


def market_data_pieces(pieces: Iterable) -> Iterator[Piece]:
    """Pieces from consecutive MarketData parts of one recording (as
    NativeBinanceLoader.iter_chunks yields them); see watermarked."""
    return watermarked(pieces)


def _empty(dtype) -> np.ndarray:
    return np.zeros(0, dtype)


def run_stream(pieces: Iterable, specs: dict | None = None, model=None, config=None, progress: bool = True, *,
               strategy=None, shadow=None, l3: Iterable[int] = (),
               on_records: Callable[[dict], None] | None = None,
               control: Callable[[Any], None] | None = None,
               venue: Callable[[int, np.ndarray, int, int], tuple[np.ndarray, bool]] | None = None) -> BacktestResult:
    """Backtest a recording given in pieces (Piece tuples, or MarketData parts in receive order).

    specs: {instrument id: InstrumentSpec}; default: the first MarketData part's (give them when
    the pieces are Piece tuples). l3: instrument ids whose order events make the book (L3); with
    MarketData parts, also those with order events in the first part. model, config, strategy,
    shadow: as bot4.backtest.run. on_records: called after each piece with the records produced so far
    (dict of decisions, orders, fills, equity, latency_ns arrays), which the engine then forgets;
    the result then carries no per-event records, only totals and the last equity record.
    control: called with the core's StreamingBacktest before each piece is pushed (and once
    before the end), to apply control commands between pieces: kill(), flatten(), pause(on). Without it, the records are
    gathered into the result as run() returns them. venue: None = each instrument trades against
    a venue simulator in the process, fed the pieces; else the venue is outside the process and
    reached through venue(instrument, requests, clock_offset, now) -> (responses, live) (arrays of
    bot4.events.VENUE_REQUEST / VENUE_RESPONSE; see bot4.services.venue): the core asks it only
    while it is live or has requests to send, so a remote simulator gives the same run."""
    it = iter(pieces)
    first = next(it, None)
    if first is None:
        raise ValueError("no pieces to run")
    l3_ids = set(int(i) for i in l3)
    if not isinstance(first, Piece):
        specs = specs if specs is not None else first.specs
        l3_ids |= _l3_ids(first)

        def chain():
            yield first
            yield from it
        source: Iterator[Piece] = market_data_pieces(chain())
    else:
        source = _prepend(first, it)
    if not specs:
        raise ValueError("specs are needed: the instruments to trade")
    prep = _Prepared(specs, l3_ids, model, config, strategy, shadow)
    engine = _core.engine.StreamingBacktest(prep.cfg, prep.instruments, venue)
    kept: dict[str, list] = {k: [] for k in _RECORDS}
    lat: dict[str, list] = {}

    last_equity: list[np.ndarray] = []  # the latest equity record handed out (pnl of a sink run)

    def collect() -> None:
        rec = engine.take_records()
        if on_records is not None:
            if rec["equity"].size:
                last_equity[:] = [rec["equity"][-1:]]
            on_records(rec)
            return
        for k in _RECORDS:
            if rec[k].size:
                kept[k].append(rec[k])
        for k, v in rec["latency_ns"].items():
            lat.setdefault(k, []).append(v)

    n_events = 0
    pieces_done = 0
    t0 = time.perf_counter()
    shown = t0
    for piece in source:
        book, trades, orders = _streams(piece, prep.l3_ids)
        if control is not None:
            control(engine)
        engine.push(book, trades, orders, int(piece.watermark))
        n_events += book.size + trades.size + (orders.size if orders is not None else 0)
        pieces_done += 1
        collect()
        now = time.perf_counter()
        if progress and now - shown >= 1.0:
            shown = now
            print(f"backtest: {pieces_done:,} pieces, {n_events:,} events, {n_events / (now - t0):,.0f} events/s",
                  file=sys.stderr, flush=True)
    if control is not None:
        control(engine)
        collect()
    out = engine.finish()
    seconds = time.perf_counter() - t0
    if on_records is not None:
        on_records({k: out[k] for k in (*_RECORDS, "latency_ns")})
        records = {k: out[k][:0] for k in _RECORDS}
        records["latency_ns"] = {k: v[:0] for k, v in out["latency_ns"].items()}
        # the totals still hold: the last equity record (the result's pnl) is kept
        records["equity"] = out["equity"][-1:] if out["equity"].size else (
            last_equity[0] if last_equity else out["equity"])
    else:
        for k in _RECORDS:
            if out[k].size:
                kept[k].append(out[k])
        records = {k: _concat(kept[k], out[k].dtype) for k in _RECORDS}
        records["latency_ns"] = {k: np.concatenate([*lat.get(k, []), v]) for k, v in out["latency_ns"].items()}
    result = prep.result(out, records, int(n_events), seconds)
    if venue is not None:
        result.counters.update({f"remote_venue_{k}": int(v) for k, v in engine.remote_venue_counters().items()})
    late = result.counters.get("late_events", 0) + result.counters.get("sim_late_feed_events", 0)
    if progress and late:
        print(f"backtest: warning: {late:,} records arrived after their time had passed (the pieces are not in "
              "receive order); the result can differ from one whole run", file=sys.stderr, flush=True)
    return _done(result, progress)


def _concat(parts: list, dtype) -> np.ndarray:
    """Parts joined in the core's record dtype (np.concatenate would drop its padding). Zeroed
    first: the assignment copies field by field, so the dtype's gaps (the core's pad fields) would
    otherwise keep whatever the allocation held and two equal runs would differ byte for byte."""
    out = np.zeros(sum(p.size for p in parts), dtype)
    at = 0
    for p in parts:
        out[at:at + p.size] = p
        at += p.size
    return out


def _prepend(first: Piece, rest: Iterator) -> Iterator[Piece]:
    yield first
    for p in rest:
        if not isinstance(p, Piece):
            raise TypeError(f"pieces: expected Piece tuples throughout, got {type(p).__name__}")
        yield p


def _streams(piece: Piece, l3_ids: set):
    book = piece.book if piece.book is not None else _empty(BOOK_EVENT)
    if l3_ids and book.size:
        book = book[~np.isin(book["instrument"], list(l3_ids))]
    trades = piece.trades if piece.trades is not None else _empty(TRADE_EVENT)
    orders = piece.orders if piece.orders is not None and piece.orders.size else None
    if orders is not None and orders.dtype != ORDER_EVENT:
        raise TypeError(f"orders: expected ORDER_EVENT records, got {orders.dtype}")
    return np.ascontiguousarray(book), np.ascontiguousarray(trades), (
        np.ascontiguousarray(orders) if orders is not None else None)
