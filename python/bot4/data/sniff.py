"""Tell a recording's format from its first bytes (not its name), so a file given with the wrong
venue is refused before loading instead of producing an empty run, and the venue can be inferred.

`sniff(path)` reads at most HEAD_BYTES decompressed bytes (plus, for Binance, the first lines the
market detector needs) and returns a Sniffed(venue, evidence) or None when it is no format bot4
reads. Venues are the names of bot4.data.VENUES.
"""

from __future__ import annotations

import gzip
import re
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import zstandard

HEAD_BYTES = 1 << 16
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
ZIP_MAGIC = b"PK\x03\x04"
DBN_MAGIC = b"DBN"
# a Binance raw line: receive time in ns, a space, the combined-stream JSON message
_BINANCE_LINE = re.compile(rb"^\d{15,20} \{\"stream\":")
_TARDIS_BASE = b"exchange,symbol,timestamp,local_timestamp"
# LOBSTER message rows: time (s after midnight), type 1-7, order id, size, price, direction
_LOBSTER_ROW = re.compile(rb"^\d+(\.\d+)?,[1-7],-?\d+,\d+,-?\d+,-?1\s*$")
#: Arrays `bot4 sim generate` (bot4.sim.save_npz) writes.
SIM_NPZ_MEMBERS = {"book.npy", "orders.npy", "trades.npy", "specs.npy"}


@dataclass(frozen=True)
class Sniffed:
    """The format a file's content showed (`venue`, one of bot4.data.VENUES) and what showed it
    (`evidence`, for messages)."""

    venue: str        # one of bot4.data.VENUES
    evidence: str     # what in the file told it, for messages


def _head(path: Path) -> bytes:
    with open(path, "rb") as fh:
        magic = fh.read(4)
        fh.seek(0)
        try:
            if magic[:2] == GZIP_MAGIC:
                with gzip.GzipFile(fileobj=fh) as gz:
                    return gz.read(HEAD_BYTES)
            if magic == ZSTD_MAGIC:
                with zstandard.ZstdDecompressor().stream_reader(fh) as z:
                    return z.read(HEAD_BYTES)
        except (OSError, EOFError, zlib.error, zstandard.ZstdError):
            return b""   # damaged compression: nothing recognisable
        return fh.read(HEAD_BYTES)


def sniff(path: str | Path) -> Sniffed | None:
    """The venue format of the file at `path` from its content, or None if bot4 reads no such
    format. Raises OSError only if the file cannot be opened."""
    path = Path(path)
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic == ZIP_MAGIC:
        try:
            with zipfile.ZipFile(path) as z:
                members = set(z.namelist())
        except zipfile.BadZipFile:
            return None
        if SIM_NPZ_MEMBERS <= members:
            return Sniffed("bot4-sim", "an .npz with book, orders, trades and specs (bot4 sim generate)")
        return None
    head = _head(path)
    if head.startswith(DBN_MAGIC):
        return Sniffed("databento-mbo", "a Databento DBN stream")
    first = head.lstrip(b"\xef\xbb\xbf").split(b"\n", 1)[0].rstrip(b"\r")
    if _BINANCE_LINE.match(first):
        from bot4.data.binance import VENUE_NAMES, detect_market
        from bot4.errors import DataError

        try:
            market = detect_market(path)
        except DataError:
            return Sniffed("binance", "Binance combined-stream lines (market not told by the first messages)")
        return Sniffed(VENUE_NAMES[market], f"Binance {market} combined-stream messages")
    if first.startswith(_TARDIS_BASE):
        return Sniffed("tardis", "a Tardis CSV header")
    if _LOBSTER_ROW.match(first):
        return Sniffed("lobster", "LOBSTER message rows")
    return None
