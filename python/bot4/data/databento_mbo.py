"""Databento MBO (market-by-order) files: DBN, zstd-compressed or plain, to ORDER_EVENT and
TRADE_EVENT arrays.

Decoding uses the `databento_dbn` package (DBNDecoder) over a zstd stream read frame by frame with
`zstandard`, so a truncated or corrupt file keeps every record decoded before the damage and the
damage is a counted rejection (`truncated_file`, `corrupt_file`, `corrupt_record`,
`truncated_record` for a partial last record), never a crash. A zstd content-checksum failure is
only detected at the end of a frame: records decoded from that frame are kept but may be damaged
(damage that puts a price off the grid is rejected record by record).

Mapping (Databento MBO semantics; only A, C, M and R change the book):

====== ===================================================================================
action ORDER_EVENT / TRADE_EVENT
====== ===================================================================================
A      ADD (order_id, side, price, size)
C      CANCEL, qty = size removed
M      MODIFY (new price and size; priority handled by the core)
R      CLEAR (the instrument's book)
T      TRADE_EVENT with aggressor = the record's side (N -> NO_SIDE); no book change
F      no event: the fill of a resting order. Every match on CME carries one T record (the
       aggressor's view) and one F record per resting order filled, sometimes on both sides
       (106 of the 2,899 matches in the ESH4 20231225 file), so trades are taken from T only,
       which gives exactly one trade print per match. A group of F records (same instrument,
       ts_event and sequence) with no T is turned into trades from the F records of its first
       side with aggressor = the opposite side; counted in stats["trades_from_fills"]
       (0 in the shared files).
N      ignored (counted)
====== ===================================================================================

Fields: ts_exchange = ts_event, ts_local = ts_recv, seq = sequence, instrument = instrument_id.
Prices are 1e-9 fixed point; they become integer ticks of `tick_size` and a price off that grid
is a counted rejection (`off_grid_price`). The undefined price (2**63 - 1) is rejected on A and M
and on T (`undefined_price`); on C and R it is irrelevant (the core uses the resting order's own
price) and becomes 0.

Flags: F_LAST (128) -> FLAG_LAST, F_SNAPSHOT (32) -> FLAG_SNAPSHOT, and the first emitted record of
each run of snapshot records of an instrument also gets FLAG_CLEAR. When F_LAST sits on a record
that emits no order event (T, F, N or a rejected record), it is moved to the instrument's last
emitted order event before it, so that the book is read exactly where the venue's message ends
(counted in stats["last_flag_moved"]).

Loader statistics that are not rejections (action counts, fills, flag counts) are returned in
`MarketData.stats` (an attribute set on the returned object).
"""

from __future__ import annotations

import logging
from collections import Counter
from decimal import Decimal
from pathlib import Path

import numpy as np
import zstandard
from tqdm import tqdm

from bot4.errors import DataError
from bot4.events import (
    ACTION_ADD, ACTION_CANCEL, ACTION_CLEAR, ACTION_MODIFY, ASK, BID, FLAG_CLEAR, FLAG_LAST,
    FLAG_SNAPSHOT, NO_SIDE, ORDER_EVENT, TRADE_EVENT,
)
from bot4.data.market_data import MarketData, RejectionLog
from bot4.instrument import InstrumentSpec

log = logging.getLogger("bot4.data")

__all__ = ["load_databento_mbo", "KNOWN_ROOTS"]

UNDEF_PRICE = np.iinfo(np.int64).max
PRICE_SCALE = 10**9
F_LAST = 128
F_TOB = 64
F_SNAPSHOT = 32
F_MBP = 16
F_BAD_TS_RECV = 8
F_MAYBE_BAD_BOOK = 4

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
DBN_MAGIC = b"DBN"
CHUNK = 1 << 18

# Tick size and contract multiplier of a few CME equity-index roots, used when the caller does not
# give a tick size (the MBO schema carries neither).
KNOWN_ROOTS: dict[str, tuple[str, str]] = {
    "ES": ("0.25", "50"),
    "MES": ("0.25", "5"),
    "NQ": ("0.25", "20"),
    "MNQ": ("0.25", "2"),
}

_RAW = np.dtype([
    ("ts_event", "<i8"), ("ts_recv", "<i8"), ("sequence", "<i8"), ("order_id", "<u8"),
    ("price", "<i8"), ("size", "<i8"), ("instrument_id", "<u4"), ("side", "U1"), ("action", "U1"),
    ("flags", "u1"),
])


def _root(symbol: str) -> str:
    # ESH4 -> ES, MESZ23 -> MES: strip the month code and year digits.
    s = symbol.rstrip("0123456789")
    return s[:-1] if len(s) > 1 else s


def _iter_decompressed(path: Path, bar, rejections: RejectionLog):
    """Yield decompressed chunks of a zstd (multi-frame) or plain DBN file. Damage is counted in
    `rejections` ("corrupt_file", "truncated_file") after yielding everything before it."""
    source = str(path)
    with open(path, "rb") as fh:
        head = fh.read(4)
        fh.seek(0)
        if head[:3] == DBN_MAGIC:
            while chunk := fh.read(CHUNK):
                bar.update(len(chunk))
                yield chunk
            return
        if head != ZSTD_MAGIC:
            raise DataError(f"{path}: neither a zstd stream nor a DBN file (magic {head!r})")
        dctx = zstandard.ZstdDecompressor()
        dobj = dctx.decompressobj()
        frame_open = False
        while chunk := fh.read(CHUNK):
            bar.update(len(chunk))
            data = chunk
            while data:
                try:
                    out = dobj.decompress(data)
                except zstandard.ZstdError as exc:
                    rejections.reject("corrupt_file", source, 0, f"zstd: {exc}")
                    return
                if out:
                    yield out
                if dobj.eof:
                    data = dobj.unused_data
                    dobj = dctx.decompressobj()
                    frame_open = False
                else:
                    data = b""
                    frame_open = True
        if frame_open:
            rejections.reject("truncated_file", source, 0, "zstd frame ends before its end mark")


# An MBO record as DBN lays it out (v1, v2 and v3 alike): the 16-byte record header (length in
# 4-byte words, rtype, publisher, instrument, ts_event), then the body. Read with numpy rather
# than databento_dbn's record decoder, which panics (pyo3 PanicException, not an Exception) on a
# damaged record and stops the whole stream at it; here each record is framed by its own length,
# so one bad record is counted and the next one is read.
_MBO_RTYPE = 0xA0
_MBO_WIRE = np.dtype([
    ("length", "u1"), ("rtype", "u1"), ("publisher_id", "<u2"), ("instrument_id", "<u4"),
    ("ts_event", "<u8"), ("order_id", "<u8"), ("price", "<i8"), ("size", "<u4"), ("flags", "u1"),
    ("channel_id", "u1"), ("action", "S1"), ("side", "S1"), ("ts_recv", "<u8"),
    ("ts_in_delta", "<i4"), ("sequence", "<u4"),
])
assert _MBO_WIRE.itemsize == 56
_RTYPE_NAMES = {0x00: "TradeMsg", 0x01: "MBP1Msg", 0x0A: "MBP10Msg", 0x11: "OHLCVMsg",
                0x13: "InstrumentDefMsg", 0x14: "ImbalanceMsg", 0x15: "ErrorMsg",
                0x16: "SymbolMappingMsg", 0x17: "SystemMsg", 0x18: "StatMsg", 0x1A: "StatusMsg",
                0x20: "OHLCVMsg", 0x21: "OHLCVMsg", 0x22: "OHLCVMsg", 0x23: "OHLCVMsg",
                0x24: "OHLCVMsg", 0xB1: "CMBP1Msg", 0xC0: "BBOMsg", 0xC1: "BBOMsg",
                0xC2: "CBBOMsg", 0xC3: "CBBOMsg"}


def _read_metadata(buf: bytes, path: Path):
    """(metadata, offset of the first record); DataError when the header cannot be read."""
    import databento_dbn
    import struct

    if len(buf) < 8 or buf[:3] != DBN_MAGIC:
        raise DataError(f"{path}: not a readable DBN stream (no DBN header)")
    end = 8 + struct.unpack_from("<I", buf, 4)[0]
    if end > len(buf):
        raise DataError(f"{path}: not a readable DBN stream (metadata cut short)")
    decoder = databento_dbn.DBNDecoder()
    decoder.write(bytes(buf[:end]))
    try:
        items = decoder.decode()
    except BaseException as exc:  # DBNError, or pyo3's PanicException (a BaseException)
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        raise DataError(f"{path}: not a readable DBN stream: {exc}") from None
    for item in items:
        if isinstance(item, databento_dbn.Metadata):
            return item, end
    raise DataError(f"{path}: no DBN metadata could be decoded")


def _frame(buf: bytes, pos: int, rejections: RejectionLog, source: str, other: Counter) -> tuple[list, int]:
    """Offsets of the MBO records in buf[pos:], counting the others; returns (offsets, end) where
    end is where an incomplete last record starts."""
    n = (len(buf) - pos) // _MBO_WIRE.itemsize
    if n:  # fast path: a run of MBO records only
        head = np.frombuffer(buf, np.uint8, count=n * _MBO_WIRE.itemsize, offset=pos).reshape(n, -1)[:, :2]
        if np.all(head[:, 0] == _MBO_WIRE.itemsize // 4) and np.all(head[:, 1] == _MBO_RTYPE):
            return list(range(pos, pos + n * _MBO_WIRE.itemsize, _MBO_WIRE.itemsize)), pos + n * _MBO_WIRE.itemsize
    offsets: list[int] = []
    while pos < len(buf):
        size = buf[pos] * 4
        if size < 16:  # cannot even hold a record header: the framing is lost from here on
            rejections.reject("corrupt_record", source, len(offsets), f"record length {size} bytes at byte {pos}")
            return offsets, len(buf)
        if pos + size > len(buf):
            break
        rtype = buf[pos + 1]
        if rtype == _MBO_RTYPE:
            if size == _MBO_WIRE.itemsize:
                offsets.append(pos)
            else:
                rejections.reject("corrupt_record", source, len(offsets),
                                  f"MBO record of {size} bytes (expected {_MBO_WIRE.itemsize}) at byte {pos}")
        else:
            other[_RTYPE_NAMES.get(rtype, f"rtype_0x{rtype:02x}")] += 1
        pos += size
    return offsets, pos


def _decode(path: Path, progress: bool, rejections: RejectionLog):
    """Returns (metadata, raw structured array of the MBO records, Counter of other rtypes)."""
    source = str(path)
    other: Counter = Counter()
    bar = tqdm(total=path.stat().st_size, unit="B", unit_scale=True, unit_divisor=1024,
               desc=f"decode {path.name}", disable=not progress, leave=False)
    parts: list[np.ndarray] = []
    metadata = None
    buf = b""
    pos = 0
    try:
        for chunk in _iter_decompressed(path, bar, rejections):
            buf = buf[pos:] + chunk
            pos = 0
            if metadata is None:
                if len(buf) < 8 or len(buf) < 8 + int.from_bytes(buf[4:8], "little"):
                    continue
                metadata, pos = _read_metadata(buf, path)
            offsets, pos = _frame(buf, pos, rejections, source, other)
            if offsets:
                whole = np.frombuffer(buf, np.uint8)
                idx = np.asarray(offsets)[:, None] + np.arange(_MBO_WIRE.itemsize)
                parts.append(whole[idx].copy().view(_MBO_WIRE).reshape(-1))
        if metadata is None:
            if buf[:3] == DBN_MAGIC or not buf:
                raise DataError(f"{path}: no DBN metadata could be decoded")
            raise DataError(f"{path}: not a readable DBN stream")
        if pos < len(buf):
            rejections.reject("truncated_record", source, sum(len(p) for p in parts),
                              f"{len(buf) - pos} bytes after the last complete record")
    finally:
        bar.close()
    wire = np.concatenate(parts) if parts else np.zeros(0, _MBO_WIRE)
    # Timestamps and sequence numbers beyond int64 cannot be stored: counted, not an OverflowError.
    too_big = (wire["ts_event"] > UNDEF_PRICE) | (wire["ts_recv"] > UNDEF_PRICE)
    for i in np.flatnonzero(too_big)[:1].tolist():
        rejections.reject("bad_timestamp", source, i, repr(wire[i]))
    if too_big.sum() > 1:
        rejections.counts["bad_timestamp"] += int(too_big.sum() - 1)
    wire = wire[~too_big]
    raw = np.zeros(len(wire), _RAW)
    for name in ("ts_event", "ts_recv", "sequence", "order_id", "price", "size", "instrument_id", "flags"):
        raw[name] = wire[name]
    raw["side"] = np.char.decode(wire["side"], "latin-1")
    raw["action"] = np.char.decode(wire["action"], "latin-1")
    return metadata, raw, other


def _symbols(metadata) -> dict[int, str]:
    out: dict[int, str] = {}
    mappings = getattr(metadata, "mappings", None) or {}
    for raw_symbol, intervals in mappings.items():
        for interval in intervals:
            try:
                out[int(interval["symbol"])] = raw_symbol
            except (KeyError, TypeError, ValueError):
                continue
    return out


def _price_unit(tick_size: str) -> int:
    unit = Decimal(tick_size) * PRICE_SCALE
    if unit <= 0 or unit != unit.to_integral_value():
        raise DataError(f"tick_size {tick_size!r} is not a positive multiple of 1e-9")
    return int(unit)


def _infer_tick(prices: np.ndarray) -> str:
    valid = prices[(prices != UNDEF_PRICE) & (prices != 0)]
    if valid.size == 0:
        raise DataError("cannot infer a tick size: no defined prices; pass tick_size")
    g = int(np.gcd.reduce(np.abs(valid)))
    return format((Decimal(g) / PRICE_SCALE).normalize(), "f")


def load_databento_mbo(
    path: str | Path,
    *,
    tick_size: str | None = None,
    lot_size: str = "1",
    contract_size: str | None = None,
    progress: bool = False,
) -> MarketData:
    """Load a Databento MBO DBN file (v1+, zstd or plain) into ORDER_EVENT and TRADE_EVENT arrays.

    tick_size: price units per tick (decimal string). If None, taken from KNOWN_ROOTS for the
    file's symbol root, else inferred as the gcd of the prices (logged).
    contract_size: contract multiplier for the spec (KNOWN_ROOTS or "1" when None).
    progress: show a tqdm bar over the compressed bytes.
    See the module docstring for the mapping and the rejection policy.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    rejections = RejectionLog()
    source = str(path)
    metadata, raw, other = _decode(path, progress, rejections)
    for name, count in other.items():
        rejections.counts[f"unsupported_record:{name}"] += count
        rejections.samples.setdefault(f"unsupported_record:{name}", (source, 0, name))
    stats: Counter = Counter()
    stats["records"] = int(len(raw))
    symbols = _symbols(metadata)

    act = raw["action"]
    for a, c in zip(*np.unique(act, return_counts=True)):
        stats[f"action_{a}"] = int(c)
    flags_in = raw["flags"].astype(np.int64)
    stats["snapshot_records"] = int(np.count_nonzero(flags_in & F_SNAPSHOT))
    stats["bad_ts_recv_flag"] = int(np.count_nonzero(flags_in & F_BAD_TS_RECV))
    stats["maybe_bad_book_flag"] = int(np.count_nonzero(flags_in & F_MAYBE_BAD_BOOK))

    # --- instruments and tick sizes -------------------------------------------------------------
    specs: dict[int, InstrumentSpec] = {}
    units: dict[int, int] = {}
    for iid in np.unique(raw["instrument_id"]).tolist():
        symbol = symbols.get(iid, str(iid))
        known = KNOWN_ROOTS.get(_root(symbol))
        tick = tick_size
        if tick is None and known is not None:
            tick = known[0]
        if tick is None:
            sel = raw["instrument_id"] == iid
            tick = _infer_tick(raw["price"][sel & np.isin(act, ["A", "M", "C", "T", "F"])])
            log.info("%s: tick size of %s inferred from the prices as %s", path.name, symbol, tick)
        csize = contract_size if contract_size is not None else (known[1] if known else "1")
        specs[iid] = InstrumentSpec(instrument_id=iid, symbol=symbol, venue=str(metadata.dataset),
                                    tick_size=tick, lot_size=lot_size, contract_size=csize)
        units[iid] = _price_unit(tick)

    n = len(raw)
    unit = np.ones(n, np.int64)
    for iid, u in units.items():
        unit[raw["instrument_id"] == iid] = u
    price = raw["price"]
    undefined = price == UNDEF_PRICE
    off_grid = ~undefined & (price % unit != 0)
    ticks = np.where(undefined | off_grid, 0, price // unit)

    def reject(mask: np.ndarray, reason: str) -> None:
        idx = np.flatnonzero(mask)
        for i in idx[:1].tolist():
            rejections.reject(reason, source, i, repr(raw[i]))
        if idx.size > 1:
            rejections.counts[reason] += int(idx.size - 1)

    is_a, is_c, is_m, is_r = act == "A", act == "C", act == "M", act == "R"
    is_t, is_f, is_n = act == "T", act == "F", act == "N"
    unknown_action = ~(is_a | is_c | is_m | is_r | is_t | is_f | is_n)
    reject(unknown_action, "unknown_action")
    bad_undef = (is_a | is_m | is_t) & undefined
    reject(bad_undef, "undefined_price")
    bad_grid = (is_a | is_m | is_c | is_t | is_f) & off_grid
    reject(bad_grid, "off_grid_price")
    bad = bad_undef | bad_grid | unknown_action

    side = np.full(n, NO_SIDE, np.uint8)
    side[raw["side"] == "B"] = BID
    side[raw["side"] == "A"] = ASK

    # --- order events ---------------------------------------------------------------------------
    book_rec = (is_a | is_c | is_m | is_r) & ~bad
    oi = np.flatnonzero(book_rec)
    orders = np.zeros(len(oi), ORDER_EVENT)
    orders["ts_exchange"] = raw["ts_event"][oi]
    orders["ts_local"] = raw["ts_recv"][oi]
    orders["seq"] = raw["sequence"][oi]
    orders["order_id"] = raw["order_id"][oi]
    orders["price"] = ticks[oi]
    orders["qty"] = raw["size"][oi]
    orders["instrument"] = raw["instrument_id"][oi]
    orders["side"] = side[oi]
    action = np.zeros(len(oi), np.uint8)
    action[is_a[oi]] = ACTION_ADD
    action[is_c[oi]] = ACTION_CANCEL
    action[is_m[oi]] = ACTION_MODIFY
    action[is_r[oi]] = ACTION_CLEAR
    orders["action"] = action
    of = flags_in[oi]
    out_flags = np.where(of & F_LAST, FLAG_LAST, 0) | np.where(of & F_SNAPSHOT, FLAG_SNAPSHOT, 0)
    # FLAG_CLEAR on the first emitted record of each run of snapshot records, per instrument; and
    # F_LAST of records that emit no order event moves to the instrument's previous order event.
    moved = 0
    not_emitted_last = np.flatnonzero(~book_rec & ((flags_in & F_LAST) != 0))
    for iid in units:
        mine = np.flatnonzero(orders["instrument"] == iid)
        if mine.size:
            snap = (out_flags[mine] & FLAG_SNAPSHOT) != 0
            starts = snap & ~np.concatenate(([False], snap[:-1]))
            out_flags[mine[starts]] |= FLAG_CLEAR
        lasts = not_emitted_last[raw["instrument_id"][not_emitted_last] == iid]
        if lasts.size and mine.size:
            pos = np.searchsorted(oi[mine], lasts) - 1
            targets = mine[pos[pos >= 0]]
            need = targets[(out_flags[targets] & FLAG_LAST) == 0]
            need = np.unique(need)
            out_flags[need] |= FLAG_LAST
            moved += int(need.size)
    stats["last_flag_moved"] = moved
    orders["flags"] = out_flags.astype(np.uint8)

    # --- trades ---------------------------------------------------------------------------------
    ti = np.flatnonzero(is_t & ~bad)
    stats["fills"] = int(np.count_nonzero(is_f))
    fi = np.flatnonzero(is_f & ~bad)
    from_fills: list[int] = []
    fill_aggressor: dict[int, int] = {}
    if fi.size:
        key_t = {(int(raw["instrument_id"][i]), int(raw["ts_event"][i]), int(raw["sequence"][i]))
                 for i in ti.tolist()}
        first_side: dict[tuple, int] = {}
        for i in fi.tolist():
            key = (int(raw["instrument_id"][i]), int(raw["ts_event"][i]), int(raw["sequence"][i]))
            if key in key_t:
                continue
            s = int(side[i])
            if first_side.setdefault(key, s) != s:
                continue
            from_fills.append(i)
            fill_aggressor[i] = {BID: ASK, ASK: BID}.get(s, NO_SIDE)
    stats["trades_from_fills"] = len(from_fills)
    all_ti = np.sort(np.concatenate([ti, np.array(from_fills, np.int64)])).astype(np.int64)
    trades = np.zeros(len(all_ti), TRADE_EVENT)
    trades["ts_exchange"] = raw["ts_event"][all_ti]
    trades["ts_local"] = raw["ts_recv"][all_ti]
    trades["seq"] = raw["sequence"][all_ti]
    trades["price"] = ticks[all_ti]
    trades["qty"] = raw["size"][all_ti]
    trades["instrument"] = raw["instrument_id"][all_ti]
    aggr = side[all_ti].copy()
    for k, i in enumerate(all_ti.tolist()):
        if i in fill_aggressor:
            aggr[k] = fill_aggressor[i]
    trades["aggressor"] = aggr
    trades["flags"] = np.where(flags_in[all_ti] & F_LAST, FLAG_LAST, 0).astype(np.uint8)
    stats["trades"] = int(len(trades))
    stats["ignored_none_action"] = int(np.count_nonzero(is_n))

    md = MarketData(specs=specs, orders=orders, trades=trades, rejections=rejections,
                    sources=[source], venue=str(metadata.dataset))
    md.stats = dict(stats)
    return md
