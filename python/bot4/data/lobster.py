"""LOBSTER (NASDAQ TotalView-ITCH reconstructions, lobsterdata.com) message files to ORDER_EVENT and
TRADE_EVENT arrays, optionally reconciled with the matching orderbook file.

Files may be plain, gzip or zstd. `load_lobster` reads them with the native decoder
(bot4.data.lobster_native) by default; this module's Python reader (``engine="python"``) is the
reference it is tested against. A truncated or corrupt compressed file is counted as
``truncated_file`` / ``corrupt_file`` after the rows read before the damage, which are kept.

Message file (CSV, no header): ``time, type, order_id, size, price, direction``

* time: seconds after midnight (exchange local time, US Eastern) with up to 9 decimals; parsed
  exactly to int ns. With a trading ``date`` (taken from the usual file name
  ``SYMBOL_YYYY-MM-DD_start_end_message_N.csv`` when not given) timestamps are ns since the Unix
  epoch (UTC, daylight saving handled by zoneinfo); without one they stay ns after midnight.
* type: 1 add, 2 partial cancel, 3 delete, 4 execution of a visible order, 5 execution of a
  hidden order (trade only, no book change), 6 cross trade (trade only, aggressor unknown),
  7 trading halt (no event; counted in stats["halt_messages"]).
* price: USD x 10000 as an integer; direction 1 = buy order, -1 = sell order. An execution of a
  sell order is a buyer-initiated trade (aggressor BID), and vice versa.

Events: order events ADD (type 1), CANCEL (types 2 and 3, qty = size; a delete whose size is not
the resting size removes the whole order and is counted in stats["delete_size_mismatch"]) and
EXECUTE (type 4); trades for types 4, 5 and 6. ``seq`` is the 0-based row index of the message
and every row is one message: FLAG_LAST on the last event of the row (on every event when the
row produces one).

Reconciliation with the orderbook file (``orderbook_csv``; row i = the visible N-level book after
message i; empty levels are padded with dummy prices such as -9999999999 / 9999999999 and size 0).
LOBSTER writes only the messages that touch the N visible levels, so the book beyond level N is
unobserved: orders rest there from before 09:30, and orders are added and cancelled there
without a message. The loader keeps a model of the book and after each message compares its top
N levels with the row; every difference is corrected with synthetic events appended to the row's
message, so that the book after each message equals the published row:

* a missing quantity becomes a seed order (an ADD with an id that has the high bit set, so it
  cannot collide with a LOBSTER id), an excess quantity is cancelled (seed orders first, then the
  most recent orders at the level);
* row 0 seeds the book: the seed orders are the first row minus the effect of message 0 and come
  before it (FLAG_SNAPSHOT, FLAG_CLEAR on the first); later corrections carry FLAG_RESYNC;
* a cancel, delete or execution of an unknown id (an order that rested before the file starts or
  was added beyond the visible levels) is applied to the seed orders at its side and price,
  counted in stats["unknown_id_mapped_to_seed"]; if they do not hold enough, a seed is added for
  the missing part first (stats["unknown_id_new_seed"]).

Each correction is classified by whether its price was inside the previous row's visible range
(stats["resync_inside_window"]: the published book changed where every change should come with a
message, i.e. the data are inconsistent) or outside it (stats["resync_surfaced"]: a level that
was unobserved came into view). Without an orderbook file no reconciliation is done and
unknown ids go to the core as they are (the L3 book rejects them as unknown_order).

Malformed message rows (wrong column count, non-numeric field, unknown type, negative or zero
size, bad direction, price off the tick grid, a time outside the day (``implausible_timestamp``),
an id, size or price beyond 2**62 (``out_of_range``)) are counted rejections with the first line
as a sample; the row is skipped. Malformed orderbook rows (any value beyond 2**62 included) are counted and that row is not used for
reconciliation.
"""

from __future__ import annotations

import bisect
import datetime as _dt
import logging
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from tqdm import tqdm

from bot4.data.market_data import MarketData, RejectionLog
from bot4.data.progress import _NoProgress, iter_lines
from bot4.errors import ConfigError, DataError
from bot4.events import (
    ACTION_ADD, ACTION_CANCEL, ACTION_EXECUTE, ASK, BID, FLAG_CLEAR, FLAG_LAST, FLAG_RESYNC,
    FLAG_SNAPSHOT, NO_SIDE, ORDER_EVENT, TRADE_EVENT,
)
from bot4.instrument import InstrumentSpec

log = logging.getLogger("bot4.data")

__all__ = ["load_lobster", "SEED_ID_BASE"]

SEED_ID_BASE = 1 << 63  # synthetic seed order ids: high bit set
PRICE_SCALE = 10_000  # LOBSTER prices are USD x 10000
DUMMY_BID = -9999999999
DUMMY_ASK = 9999999999

_NAME = re.compile(r"(?P<symbol>[A-Za-z.]+)_(?P<date>\d{4}-\d{2}-\d{2})_\d+_\d+_(?:message|orderbook)_(?P<levels>\d+)")


# Message times are seconds after midnight of the trading day; ids, sizes and prices must fit
# the int64 event fields (with room for the loader's sums): beyond, ``out_of_range``.
_DAY_NS = 86_400 * 1_000_000_000
_INT64_LIMIT = 1 << 62


def _parse_time_ns(text: str) -> int:
    whole, dot, frac = text.strip().partition(".")
    if not whole.isdigit() or (frac and not frac.isdigit()) or len(frac) > 9:
        raise ValueError(f"bad time {text!r}")
    return int(whole) * 1_000_000_000 + int(frac.ljust(9, "0") if frac else 0)


def _midnight_ns(date: str) -> int:
    from zoneinfo import ZoneInfo

    d = _dt.date.fromisoformat(date)
    midnight = _dt.datetime(d.year, d.month, d.day, tzinfo=ZoneInfo("America/New_York"))
    return int(midnight.timestamp()) * 1_000_000_000


class _Model:
    """The loader's own view of the book: orders by id, FIFO per level, sorted prices per side."""

    def __init__(self) -> None:
        self.orders: dict[int, list] = {}  # id -> [side, price, qty]
        self.levels: tuple[dict, dict] = ({}, {})  # side -> price -> {id: None} (FIFO)
        self.qty: tuple[dict, dict] = ({}, {})  # side -> price -> total
        self.prices: tuple[list, list] = ([], [])  # ascending
        self.seeds: tuple[dict, dict] = ({}, {})  # side -> price -> [seed ids]

    def add(self, oid: int, side: int, price: int, qty: int) -> None:
        self.orders[oid] = [side, price, qty]
        level = self.levels[side].get(price)
        if level is None:
            level = self.levels[side][price] = {}
            self.qty[side][price] = 0
            bisect.insort(self.prices[side], price)
        level[oid] = None
        self.qty[side][price] += qty

    def reduce(self, oid: int, qty: int) -> None:
        order = self.orders[oid]
        side, price, rest = order
        take = min(qty, rest)
        self.qty[side][price] -= take
        if take >= rest:
            del self.orders[oid]
            level = self.levels[side][price]
            del level[oid]
            if oid >= SEED_ID_BASE:
                self.seeds[side][price].remove(oid)
            if not level:
                del self.levels[side][price]
                del self.qty[side][price]
                prices = self.prices[side]
                del prices[bisect.bisect_left(prices, price)]
        else:
            order[2] = rest - take

    def top(self, side: int, n: int) -> list[tuple[int, int]]:
        prices = self.prices[side]
        chosen = prices[::-1][:n] if side == BID else prices[:n]
        q = self.qty[side]
        return [(p, q[p]) for p in chosen]


def _book_row(values: list[int], levels: int) -> tuple[dict, dict]:
    bids: dict[int, int] = {}
    asks: dict[int, int] = {}
    for k in range(levels):
        ap, asz, bp, bsz = values[4 * k: 4 * k + 4]
        if asz > 0 and ap not in (DUMMY_ASK, DUMMY_BID):
            asks[ap] = asz
        if bsz > 0 and bp not in (DUMMY_ASK, DUMMY_BID):
            bids[bp] = bsz
    return bids, asks


def _text_lines(path: Path, rejections: RejectionLog) -> Iterator[str]:
    """The lines of a plain, gzip or zstd file as ASCII text (other bytes replaced), trailing CRs
    stripped; a truncated or corrupt compressed stream is counted after the lines before it."""
    source = str(path)
    for _, line in iter_lines(path, _NoProgress(), lambda kind, n, text: rejections.reject(kind, source, n, text)):
        yield line.decode("ascii", "replace").rstrip("\r")


def _tick_unit(tick_size: str) -> int:
    """LOBSTER price units (USD x 10000) per tick of `tick_size` USD."""
    from decimal import Decimal, InvalidOperation

    try:
        unit_dec = Decimal(tick_size) * PRICE_SCALE
    except InvalidOperation:
        raise DataError(f"tick_size {tick_size!r} is not a decimal number") from None
    if not unit_dec.is_finite() or unit_dec <= 0 or unit_dec != unit_dec.to_integral_value():
        raise DataError(f"tick_size {tick_size!r} is not a multiple of 0.0001 USD")
    return int(unit_dec)


def load_lobster(
    message_csv: str | Path,
    orderbook_csv: str | Path | None = None,
    *,
    tick_size: str | None = None,
    instrument_id: int = 1,
    symbol: str | None = None,
    date: str | None = None,
    progress: bool = False,
    engine: str = "native",
) -> MarketData:
    """Load a LOBSTER message file (and reconcile with its orderbook file when given); plain,
    gzip or zstd.

    tick_size: price units per tick in USD ("0.01" or "0.0001"). None picks "0.01" when every
    price in the files (messages and orderbook) is a whole cent, else "0.0001".
    symbol, date: default from the file name; date ("YYYY-MM-DD") makes timestamps UTC epoch ns.
    engine: "native" (default: the C++ decoder, bot4.data.lobster_native) or "python" (this
    module's reader, the reference the native one is tested against).
    Returns MarketData with orders (ORDER_EVENT), trades (TRADE_EVENT), rejections and, as the
    attribute `stats`, the loader's counters (see the module docstring).
    """
    if engine not in ("native", "python"):
        raise ConfigError(f"engine must be 'native' or 'python', got {engine!r}")
    mpath = Path(message_csv)
    if not mpath.is_file():
        raise DataError(f"{mpath}: no such file")
    bpath = Path(orderbook_csv) if orderbook_csv is not None else None
    if bpath is not None and not bpath.is_file():
        raise DataError(f"{bpath}: no such file")
    m = _NAME.search(mpath.name)
    symbol = symbol or (m.group("symbol") if m else mpath.stem)
    date = date or (m.group("date") if m else None)
    base_ns = _midnight_ns(date) if date else 0
    if not date:
        log.warning("%s: no trading date; timestamps are ns after midnight", mpath.name)

    if engine == "native":
        from bot4.data.lobster_native import load_lobster_native

        return load_lobster_native(mpath, bpath, tick_size=tick_size, instrument_id=instrument_id,
                                   symbol=symbol, base_ns=base_ns, progress=progress)

    rejections = RejectionLog()
    stats: Counter = Counter()
    msrc = str(mpath)

    # ---- parse messages -------------------------------------------------------------------------
    lines: list[str] = []
    rows: list[tuple | None] = []  # per line: (ts, type, oid, size, price, direction) or None
    for line_no, line in enumerate(_text_lines(mpath, rejections), 1):
        lines.append(line)
        parts = line.split(",")
        if len(parts) < 6 or len(parts) > 7 or (len(parts) == 7 and parts[6].strip()):
            rejections.reject("bad_column_count", msrc, line_no, line)
            rows.append(None)
            continue
        try:
            ts = _parse_time_ns(parts[0])
            typ, oid, size, price, direction = (int(p) for p in parts[1:6])
        except ValueError:
            rejections.reject("non_numeric", msrc, line_no, line)
            rows.append(None)
            continue
        if not 0 <= ts <= _DAY_NS:
            rejections.reject("implausible_timestamp", msrc, line_no, line)
            rows.append(None)
        elif not (0 <= oid < _INT64_LIMIT and abs(size) < _INT64_LIMIT and abs(price) < _INT64_LIMIT):
            rejections.reject("out_of_range", msrc, line_no, line)
            rows.append(None)
        elif typ not in (1, 2, 3, 4, 5, 6, 7):
            rejections.reject("unknown_type", msrc, line_no, line)
            rows.append(None)
        elif typ == 7:
            stats["halt_messages"] += 1
            rows.append(None)
        elif size < 0:
            rejections.reject("negative_size", msrc, line_no, line)
            rows.append(None)
        elif size == 0 and typ != 6:
            rejections.reject("zero_size", msrc, line_no, line)
            rows.append(None)
        elif direction not in (1, -1) and typ != 6:
            rejections.reject("bad_direction", msrc, line_no, line)
            rows.append(None)
        elif price <= 0:
            rejections.reject("nonpositive_price", msrc, line_no, line)
            rows.append(None)
        else:
            rows.append((ts, typ, oid, size, price, direction))

    # ---- parse the orderbook file ---------------------------------------------------------------
    book_rows: list[tuple[dict, dict] | None] = []
    levels = 0
    if bpath is not None:
        bsrc = str(bpath)
        for line_no, line in enumerate(_text_lines(bpath, rejections), 1):
            parts = line.split(",")
            if len(parts) % 4 or not parts or (levels and len(parts) != 4 * levels):
                rejections.reject("orderbook_bad_row", bsrc, line_no, line)
                book_rows.append(None)
                continue
            try:
                values = [int(p) for p in parts]
                if any(abs(v) >= _INT64_LIMIT for v in values):
                    raise ValueError("beyond int64")
            except ValueError:
                rejections.reject("orderbook_bad_row", bsrc, line_no, line)
                book_rows.append(None)
                continue
            levels = levels or len(values) // 4
            book_rows.append(_book_row(values, levels))
        if len(book_rows) != len(rows):
            rejections.reject("orderbook_row_count_mismatch", bsrc, len(book_rows),
                              f"{len(book_rows)} orderbook rows for {len(rows)} messages")

    # ---- tick grid ------------------------------------------------------------------------------
    all_prices = [r[4] for r in rows if r is not None]
    for br in book_rows:
        if br is not None:
            all_prices.extend(br[0])
            all_prices.extend(br[1])
    if tick_size is None:
        tick_size = "0.01" if all(p % 100 == 0 for p in all_prices) else "0.0001"
    spec = InstrumentSpec(instrument_id=instrument_id, symbol=symbol, venue="NASDAQ",
                          tick_size=tick_size, lot_size="1")
    unit = _tick_unit(tick_size)
    for i, r in enumerate(rows):
        if r is not None and r[4] % unit:
            rejections.reject("off_grid_price", msrc, i + 1, lines[i])
            rows[i] = None
    for i, br in enumerate(book_rows):
        if br is not None and any(p % unit for side in br for p in side):
            rejections.reject("orderbook_off_grid_price", str(bpath), i + 1, "")
            book_rows[i] = None

    # ---- build events ---------------------------------------------------------------------------
    reconcile = bpath is not None
    model = _Model()
    orders: list[tuple] = []  # (ts, seq, oid, price_ticks, qty, side, action, flags)
    trades: list[tuple] = []  # (ts, seq, price_ticks, qty, aggressor)
    next_seed = [SEED_ID_BASE]
    n_levels = levels or 10

    def new_seed(ts: int, seq: int, side: int, price: int, qty: int, flags: int) -> int:
        oid = next_seed[0]
        next_seed[0] += 1
        model.add(oid, side, price, qty)
        model.seeds[side].setdefault(price, []).append(oid)
        orders.append((ts, seq, oid, price // unit, qty, side, ACTION_ADD, flags))
        return oid

    def reduce(ts: int, seq: int, oid: int, qty: int, action: int, flags: int) -> None:
        side, price, _ = model.orders[oid]
        model.reduce(oid, qty)
        orders.append((ts, seq, oid, price // unit, qty, side, action, flags))

    def reduce_unknown(ts, seq, oid, side, price, qty, action) -> None:
        seeds = model.seeds[side].get(price, [])
        available = sum(model.orders[s][2] for s in seeds)
        if available < qty:
            if not reconcile:
                # Left to the core, which counts it as unknown_order.
                orders.append((ts, seq, oid, price // unit, qty, side, action, 0))
                return
            new_seed(ts, seq, side, price, qty - available, FLAG_RESYNC)
            stats["unknown_id_new_seed"] += 1
        stats["unknown_id_mapped_to_seed"] += 1
        left = qty
        while left > 0:
            sid = model.seeds[side][price][0]
            take = min(left, model.orders[sid][2])
            reduce(ts, seq, sid, take, action, 0)
            left -= take

    def correct(ts: int, seq: int, truth: tuple[dict, dict], prev: tuple[dict, dict] | None,
                flags: int) -> None:
        for side in (BID, ASK):
            want = truth[side]
            prices = model.prices[side]
            if len(want) >= n_levels:
                # Levels better than the published N-th one must be exactly the published ones.
                if side == BID:
                    visible = prices[bisect.bisect_right(prices, min(want)):]
                else:
                    visible = prices[:bisect.bisect_left(prices, max(want))]
            else:
                visible = list(prices)  # fewer than N levels: the whole side is visible
            for p in visible:
                if p not in want:
                    _fix(ts, seq, side, p, 0, prev, flags)
            for p, q in want.items():
                if model.qty[side].get(p, 0) != q:
                    _fix(ts, seq, side, p, q, prev, flags)

    def _fix(ts, seq, side, price, target, prev, flags) -> None:
        have = model.qty[side].get(price, 0)
        delta = target - have
        if delta == 0:
            return
        inside = False
        if prev is not None:
            pv = prev[side]
            if len(pv) < n_levels:
                inside = True
            else:
                inside = price >= min(pv) if side == BID else price <= max(pv)
        stats["resync_inside_window" if inside else "resync_surfaced"] += 1
        if inside:
            rejections.reject("book_row_unexplained_change", str(bpath), seq + 1,
                              f"side {side} price {price}: {have} -> {target}")
        if delta > 0:
            new_seed(ts, seq, side, price, delta, flags)
            stats["resync_seed_orders"] += 1
            return
        stats["resync_cancel_qty"] += -delta
        left = -delta
        level = model.levels[side][price]
        seeds = list(model.seeds[side].get(price, []))
        known = [o for o in reversed(level) if o < SEED_ID_BASE]
        for oid in seeds + known:
            if left == 0:
                break
            take = min(left, model.orders[oid][2])
            if oid < SEED_ID_BASE and take >= model.orders[oid][2]:
                resync_removed.add(oid)
            reduce(ts, seq, oid, take, ACTION_CANCEL, flags)
            stats["resync_cancels"] += 1
            left -= take

    resync_removed: set[int] = set()
    bar = tqdm(total=len(rows), desc=f"lobster {mpath.name}", disable=not progress, leave=False)
    prev_truth: tuple[dict, dict] | None = None
    for t, r in enumerate(rows):
        bar.update(1)
        truth = book_rows[t] if t < len(book_rows) else None
        start = len(orders)
        if r is None:
            prev_truth = None
            continue
        ts, typ, oid, size, price, direction = r
        ts += base_ns
        side = BID if direction == 1 else ASK
        if t == 0 and reconcile and truth is not None:
            # Seed: row 0 minus the effect of message 0 (on the aggregate level).
            effect: Counter = Counter()
            if typ == 1:
                effect[(side, price)] += size
            elif typ in (2, 3, 4):
                effect[(side, price)] -= size
            first = True
            for s in (BID, ASK):
                for p, q in truth[s].items():
                    seed = q - effect[(s, p)]
                    if seed > 0:
                        new_seed(ts, t, s, p, seed, FLAG_SNAPSHOT | (FLAG_CLEAR if first else 0))
                        first = False
                        stats["initial_seed_orders"] += 1
        if typ == 1:
            if oid in model.orders:
                rejections.reject("duplicate_add", msrc, t + 1, lines[t])
            else:
                model.add(oid, side, price, size)
                orders.append((ts, t, oid, price // unit, size, side, ACTION_ADD, 0))
        elif typ in (2, 3, 4):
            action = ACTION_EXECUTE if typ == 4 else ACTION_CANCEL
            order = model.orders.get(oid) if oid < SEED_ID_BASE else None
            if order is not None:
                if order[0] != side or order[1] != price:
                    stats["price_or_side_mismatch"] += 1
                qty = size
                if typ == 3 and size != order[2]:
                    stats["delete_size_mismatch"] += 1
                    qty = order[2]
                elif size > order[2]:
                    stats["reduce_exceeds_order"] += 1
                reduce(ts, t, oid, qty, action, 0)
            else:
                if oid in resync_removed:
                    stats["message_for_resync_cancelled_order"] += 1
                stats["unknown_id_events"] += 1
                reduce_unknown(ts, t, oid, side, price, size, action)
        if typ in (4, 5):
            aggressor = ASK if direction == 1 else BID
            trades.append((ts, t, price // unit, size, aggressor))
        elif typ == 6:
            trades.append((ts, t, price // unit, size, NO_SIDE))
        if reconcile and truth is not None:
            correct(ts, t, truth, prev_truth, FLAG_RESYNC if t else FLAG_SNAPSHOT)
        if len(orders) > start:
            last = orders[-1]
            orders[-1] = last[:7] + (last[7] | FLAG_LAST,)
        prev_truth = truth
    bar.close()

    out = np.zeros(len(orders), ORDER_EVENT)
    if orders:
        cols = list(zip(*orders))
        out["ts_exchange"] = cols[0]
        out["ts_local"] = cols[0]
        out["seq"] = cols[1]
        oids = np.array([o if o >= 0 else 0 for o in cols[2]], dtype=np.uint64)
        out["order_id"] = oids
        out["price"] = cols[3]
        out["qty"] = cols[4]
        out["side"] = cols[5]
        out["action"] = cols[6]
        out["flags"] = cols[7]
        out["instrument"] = instrument_id
    tr = np.zeros(len(trades), TRADE_EVENT)
    if trades:
        cols = list(zip(*trades))
        tr["ts_exchange"] = cols[0]
        tr["ts_local"] = cols[0]
        tr["seq"] = cols[1]
        tr["price"] = cols[2]
        tr["qty"] = cols[3]
        tr["aggressor"] = cols[4]
        tr["flags"] = FLAG_LAST
        tr["instrument"] = instrument_id
    stats["messages"] = sum(1 for r in rows if r is not None)
    stats["book_levels"] = n_levels
    sources = [msrc] + ([str(bpath)] if bpath is not None else [])
    md = MarketData(specs={instrument_id: spec}, orders=out, trades=tr, rejections=rejections,
                    sources=sources, venue="NASDAQ")
    md.stats = dict(stats)
    return md


def iter_lobster(message_csv: str | Path, orderbook_csv: str | Path | None = None, *, tick_size: str | None = None,
                 instrument_id: int = 1, symbol: str | None = None, date: str | None = None,
                 chunk_bytes: int = 8 << 20, progress: bool = False) -> Iterator[MarketData]:
    """The events load_lobster would return, as consecutive MarketData parts built `chunk_bytes`
    of each file (as stored) at a time by the native decoder: the message and orderbook files are
    read side by side, so memory holds about a chunk of rows whatever the files' sizes (the model
    book carries over). Concatenating the parts' arrays gives exactly load_lobster's; each part
    carries the rejections so far, the last one all of them (in load_lobster's order) and the
    stats. tick_size=None picks the tick in a pass over the files of its own (see load_lobster).
    """
    from bot4.data.lobster_native import iter_lobster_native

    if chunk_bytes <= 0:
        raise ConfigError(f"chunk_bytes must be positive, got {chunk_bytes}")
    mpath = Path(message_csv)
    if not mpath.is_file():
        raise DataError(f"{mpath}: no such file")
    bpath = Path(orderbook_csv) if orderbook_csv is not None else None
    if bpath is not None and not bpath.is_file():
        raise DataError(f"{bpath}: no such file")
    m = _NAME.search(mpath.name)
    symbol = symbol or (m.group("symbol") if m else mpath.stem)
    date = date or (m.group("date") if m else None)
    base_ns = _midnight_ns(date) if date else 0
    if not date:
        log.warning("%s: no trading date; timestamps are ns after midnight", mpath.name)
    return iter_lobster_native(mpath, bpath, tick_size=tick_size, instrument_id=instrument_id, symbol=symbol,
                               base_ns=base_ns, chunk_bytes=chunk_bytes, progress=progress)
