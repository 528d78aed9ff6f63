"""Append-only journal of every input and output of a service, in numbered segment files.

A segment is ``<index:08d>.b4j``: a 16-byte header (magic ``B4JRNL01`` + the segment's index,
u64 little-endian) and then frames ``[length u32][crc u32][payload]`` (little-endian; the CRC is
zlib.crc32 of the payload seeded with the CRC of the 4 length bytes, so a zero-filled or shifted
region never checks out). Payloads are MessagePack (bot4.contracts.JournalEntry frames); the
journal itself treats them as opaque, non-empty bytes.

Durability: each append is one write(2) of whole frames, so a record is in the OS page cache (and
survives the process being killed) once append returns; the fsync policy decides when it also
survives the machine going down: "always" (every append), "every:N" (every N records),
"interval:S" (when an append finds S seconds passed since the last fsync; call sync() from an idle
timer to bound the window when appends stop), "never" (the OS decides). Rotation and close always
fsync unless the policy is "never".

Crash recovery: only the tail of the last segment can be torn. JournalReader stops at the first
damaged frame of the last segment and reports it (TailDamage, counted); damage in an earlier
segment, a missing segment or a foreign file is a JournalCorruptError, because records after it
were accepted and must not be skipped silently. JournalWriter on an existing journal moves a
damaged tail into a ``<segment>.damaged-<offset>`` file beside it (logged, counted), truncates the
segment there and appends after the last good record.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import struct
import time
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

import msgspec

from bot4.errors import ConfigError, JournalCorruptError, JournalLockedError

log = logging.getLogger("bot4.journal")

MAGIC = b"B4JRNL01"
SEGMENT_HEADER = struct.Struct("<8sQ")
FRAME_HEADER = struct.Struct("<II")
SUFFIX = ".b4j"
_SEGMENT_NAME = re.compile(r"^(\d{8})\.b4j$")
LOCK_NAME = ".lock"

DEFAULT_SEGMENT_BYTES = 64 << 20
DEFAULT_MAX_RECORD_BYTES = 16 << 20

#: Every counter of a writer or reader (the one declaration; each instance starts them at 0).
COUNTERS: tuple[str, ...] = (
    "records",          # records appended (writer) or read (reader)
    "bytes",            # frame bytes appended or read, headers included
    "segments",         # segments opened
    "rotations",        # segments closed because the next frame would not fit
    "fsyncs",           # fsync calls
    "torn_tail",        # last segment ends inside a frame (crash during a write)
    "crc_mismatch",     # a frame whose CRC does not match its payload
    "bad_length",       # a frame length of 0 or above max_record_bytes
    "truncated_bytes",  # bytes moved out of a damaged tail by recovery
)

DamageKind = Literal["torn_tail", "crc_mismatch", "bad_length"]


class TailDamage(msgspec.Struct, frozen=True):
    """Where the last segment stops being readable: kind (a COUNTERS name), the segment file,
    the offset of the first bad frame and how many bytes follow from there to the end."""

    kind: str
    segment: str
    offset: int
    trailing_bytes: int


class Record(msgspec.Struct, frozen=True):
    """One record and where it is: segment index and the offset of its frame."""

    segment: int
    offset: int
    payload: bytes


class FsyncPolicy(msgspec.Struct, frozen=True):
    """When appended records are fsynced (see the module docstring). Build with parse()."""

    mode: Literal["always", "every", "interval", "never"]
    every: int = 1
    interval_s: float = 0.0

    @classmethod
    def parse(cls, spec: str | FsyncPolicy) -> FsyncPolicy:
        """'always', 'never', 'every:N' (N >= 1 records) or 'interval:S' (S > 0 seconds)."""
        if isinstance(spec, FsyncPolicy):
            return spec
        if not isinstance(spec, str):
            raise ConfigError(f"fsync policy: expected a string, got {type(spec).__name__}")
        head, _, arg = spec.strip().partition(":")
        try:
            if head in ("always", "never") and not arg:
                return cls(head)  # type: ignore[arg-type]
            if head == "every" and arg:
                n = int(arg)
                if n >= 1:
                    return cls("every", every=n)
            if head == "interval" and arg:
                s = float(arg)
                if s > 0 and s != float("inf"):
                    return cls("interval", interval_s=s)
        except ValueError:
            pass
        raise ConfigError(f"fsync policy {spec!r}: expected 'always', 'never', 'every:N' (N >= 1) "
                          f"or 'interval:SECONDS' (> 0)")


def segment_path(directory: Path, index: int) -> Path:
    """The file of segment `index` in `directory` (zero-padded, so names sort in segment order)."""
    return directory / f"{index:08d}{SUFFIX}"


def list_segments(directory: Path) -> list[tuple[int, Path]]:
    """(index, path) of the segment files in `directory`, in order; a gap is a JournalCorruptError."""
    found = sorted((int(m.group(1)), directory / name) for name in os.listdir(directory)
                   if (m := _SEGMENT_NAME.match(name)))
    for (a, _), (b, path) in zip(found, found[1:]):
        if b != a + 1:
            raise JournalCorruptError(f"{directory}: segment {a + 1:08d}{SUFFIX} is missing "
                                      f"(found {a:08d} then {path.name})")
    return found


def _frame_crc(length_bytes: bytes | memoryview, payload: bytes | memoryview) -> int:
    return zlib.crc32(payload, zlib.crc32(length_bytes))


def encode_frame(payload: bytes | memoryview) -> bytes:
    """One journal frame holding `payload`."""
    data = payload if isinstance(payload, bytes) else bytes(payload)
    length = len(data)
    head = length.to_bytes(4, "little")
    return FRAME_HEADER.pack(length, _frame_crc(head, data)) + data


def _scan(data: bytes, start: int, max_record: int) -> Iterator[tuple[int, bytes] | tuple[str, int]]:
    """Yield (offset, payload) per good frame from `start`, then ("<damage kind>", offset) at the
    first bad frame, if any."""
    pos, end = start, len(data)
    view = memoryview(data)
    while pos < end:
        if end - pos < FRAME_HEADER.size:
            yield ("torn_tail", pos)
            return
        length, crc = FRAME_HEADER.unpack_from(data, pos)
        if length == 0 or length > max_record:
            yield ("bad_length", pos)
            return
        stop = pos + FRAME_HEADER.size + length
        if stop > end:
            yield ("torn_tail", pos)
            return
        payload = view[pos + FRAME_HEADER.size:stop]
        if _frame_crc(view[pos:pos + 4], payload) != crc:
            yield ("crc_mismatch", pos)
            return
        yield (pos, bytes(payload))
        pos = stop


def _check_header(path: Path, data: bytes, index: int) -> bool:
    """True if the header is whole and right; False if the file is shorter than a header (a
    segment torn at creation); JournalCorruptError if it is some other file."""
    if len(data) < SEGMENT_HEADER.size:
        if MAGIC.startswith(data[:len(MAGIC)]):
            return False
        raise JournalCorruptError(f"{path}: not a bot4 journal segment (bad magic)")
    magic, stored = SEGMENT_HEADER.unpack_from(data, 0)
    if magic != MAGIC:
        raise JournalCorruptError(f"{path}: not a bot4 journal segment (magic {magic!r}, expected {MAGIC!r})")
    if stored != index:
        raise JournalCorruptError(f"{path}: header says segment {stored}, the file name says {index}")
    return True


class JournalReader:
    """Iterate a journal's records in order across segments (payload bytes; entries() adds where
    each is). After iteration, `damage` is the last segment's TailDamage or None, and `counters`
    (COUNTERS) say what was read and what was found."""

    def __init__(self, directory: str | os.PathLike[str], *, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES):
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise JournalCorruptError(f"{self.directory}: no journal directory")
        self.max_record_bytes = max_record_bytes
        self.counters: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self.damage: TailDamage | None = None

    def __iter__(self) -> Iterator[bytes]:
        for rec in self.entries():
            yield rec.payload

    def entries(self) -> Iterator[Record]:
        """Every record in segment order with its segment index and offset. A damaged tail of the
        last segment (torn write, bad checksum) ends the read there, counted in `counters` and
        described by `damage`; damage in any earlier segment raises JournalCorruptError."""
        self.counters = dict.fromkeys(COUNTERS, 0)
        self.damage = None
        segments = list_segments(self.directory)
        for i, (index, path) in enumerate(segments):
            last = i == len(segments) - 1
            data = path.read_bytes()
            self.counters["segments"] += 1
            if not _check_header(path, data, index):
                if not last:
                    raise JournalCorruptError(f"{path}: segment header cut short ({len(data)} B) before the "
                                              f"last segment")
                self._damaged("torn_tail", path, 0, len(data))
                return
            for item in _scan(data, SEGMENT_HEADER.size, self.max_record_bytes):
                if isinstance(item[0], str):
                    kind, offset = item
                    assert isinstance(kind, str) and isinstance(offset, int)
                    if not last:
                        raise JournalCorruptError(
                            f"{path}: {kind} at offset {offset} in a segment that is not the last "
                            f"({len(data) - offset} B after it, {len(segments) - 1 - i} segment(s) after this one); "
                            f"records after it were accepted, so the journal is not read past it")
                    self._damaged(kind, path, offset, len(data) - offset)
                    return
                offset, payload = item
                assert isinstance(offset, int) and isinstance(payload, bytes)
                self.counters["records"] += 1
                self.counters["bytes"] += FRAME_HEADER.size + len(payload)
                yield Record(index, offset, payload)

    def _damaged(self, kind: str, path: Path, offset: int, trailing: int) -> None:
        self.counters[kind] += 1
        self.damage = TailDamage(kind, str(path), offset, trailing)
        log.warning("journal %s: %s at offset %d of the last segment %s (%d B to the end); read stops there",
                    self.directory, kind, offset, path.name, trailing)


class JournalWriter:
    """Append records to the journal in `directory` (created if missing). One writer per
    directory (an flock on `.lock`; a second one gets JournalLockedError).

    fsync: an FsyncPolicy or its spec string. max_segment_bytes: a frame that would take the
    current segment past it starts a new segment (a frame bigger than that gets a segment of its
    own). max_record_bytes: the largest payload accepted (readers refuse longer lengths as damage).
    """

    def __init__(self, directory: str | os.PathLike[str], *, fsync: str | FsyncPolicy = "every:64",
                 max_segment_bytes: int = DEFAULT_SEGMENT_BYTES, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES):
        self.policy = FsyncPolicy.parse(fsync)
        if max_segment_bytes < SEGMENT_HEADER.size + FRAME_HEADER.size + 1:
            raise ConfigError(f"max_segment_bytes {max_segment_bytes}: must hold a header and one frame "
                              f"(>= {SEGMENT_HEADER.size + FRAME_HEADER.size + 1})")
        if not 1 <= max_record_bytes < 2**32:
            raise ConfigError(f"max_record_bytes {max_record_bytes}: must be in [1, 2**32)")
        self.directory = Path(directory)
        self.max_segment_bytes = max_segment_bytes
        self.max_record_bytes = max_record_bytes
        self.counters: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        #: The tail recovery removed on open (None if the journal was intact).
        self.recovered: TailDamage | None = None
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = os.open(self.directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock)
            raise JournalLockedError(f"{self.directory}: another writer has this journal open") from None
        self._fd = -1
        self._index = 0
        self._size = 0
        try:
            self._open_last()
        except BaseException:
            self._release()
            raise
        self._unsynced = 0
        self._last_sync = time.monotonic()

    # -- public API ------------------------------------------------------------------------
    @property
    def segment(self) -> int:
        """Index of the segment being appended to."""
        return self._index

    def append(self, payload: bytes | memoryview) -> None:
        """Append one record; it is accepted when this returns (see the module docstring)."""
        self._write(self._frame(payload), 1)

    def append_many(self, payloads: Iterable[bytes | memoryview]) -> None:
        """Append several records with as few writes as the segment size allows."""
        batch: list[bytes] = []
        size = 0
        for p in payloads:
            frame = self._frame(p)
            if batch and self._size + size + len(frame) > self.max_segment_bytes:
                self._write(b"".join(batch), len(batch))
                batch, size = [], 0
            batch.append(frame)
            size += len(frame)
        if batch:
            self._write(b"".join(batch), len(batch))

    def sync(self) -> None:
        """fsync now (whatever the policy)."""
        if self._fd >= 0 and self._unsynced:
            self._fsync(self._fd)
            self._unsynced = 0
        self._last_sync = time.monotonic()

    def close(self) -> None:
        """Sync (unless the policy is "never"), close the open segment and release the writer's
        lock; a second call does nothing."""
        if self._fd < 0:
            return
        try:
            if self.policy.mode != "never":
                self.sync()
            os.close(self._fd)
        finally:
            self._fd = -1
            self._release()

    def __enter__(self) -> JournalWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals -------------------------------------------------------------------------
    def _frame(self, payload: bytes | memoryview) -> bytes:
        n = memoryview(payload).nbytes
        if n == 0:
            raise ValueError("journal: an empty record cannot be appended (payloads are MessagePack values)")
        if n > self.max_record_bytes:
            raise ValueError(f"journal: a {n} B record is above max_record_bytes ({self.max_record_bytes})")
        return encode_frame(payload)

    def _write(self, frames: bytes, records: int) -> None:
        if self._fd < 0:
            raise ValueError("journal: writer is closed")
        if self._size > SEGMENT_HEADER.size and self._size + len(frames) > self.max_segment_bytes:
            self._rotate()
        start = self._size
        view = memoryview(frames)
        done = 0
        try:
            while done < len(frames):
                done += os.write(self._fd, view[done:])
        except BaseException:
            # Nothing of this call is accepted: cut the partial frames off so the journal stays
            # well-formed for the records before it.
            os.ftruncate(self._fd, start)
            raise
        self._size = start + len(frames)
        self.counters["records"] += records
        self.counters["bytes"] += len(frames)
        self._unsynced += records
        mode = self.policy.mode
        if mode == "always" or (mode == "every" and self._unsynced >= self.policy.every) or (
                mode == "interval" and time.monotonic() - self._last_sync >= self.policy.interval_s):
            self.sync()

    def _fsync(self, fd: int) -> None:
        os.fsync(fd)
        self.counters["fsyncs"] += 1

    def _rotate(self) -> None:
        if self.policy.mode != "never":
            self.sync()
        os.close(self._fd)
        self._fd = -1
        self.counters["rotations"] += 1
        self._create(self._index + 1)

    def _create(self, index: int) -> None:
        path = segment_path(self.directory, index)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
        os.write(self._fd, SEGMENT_HEADER.pack(MAGIC, index))
        if self.policy.mode != "never":
            self._fsync(self._fd)
            self._fsync_dir()
        self._index, self._size = index, SEGMENT_HEADER.size
        self.counters["segments"] += 1

    def _fsync_dir(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            self._fsync(fd)
        finally:
            os.close(fd)

    def _open_last(self) -> None:
        segments = list_segments(self.directory)
        if not segments:
            self._create(1)
            return
        index, path = segments[-1]
        data = path.read_bytes()
        if not _check_header(path, data, index):
            self._quarantine("torn_tail", path, data, 0)
            self._create(index)
            return
        good = len(data)
        for item in _scan(data, SEGMENT_HEADER.size, self.max_record_bytes):
            if isinstance(item[0], str):
                kind, good = item
                assert isinstance(kind, str) and isinstance(good, int)
                self._quarantine(kind, path, data, good)
                break
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        if good < len(data):
            os.ftruncate(self._fd, good)
            self._fsync(self._fd)
        self._index, self._size = index, good
        self.counters["segments"] += 1

    def _quarantine(self, kind: str, path: Path, data: bytes, offset: int) -> None:
        """Keep a damaged tail's bytes beside the segment (nothing is destroyed), then count it."""
        tail = data[offset:]
        keep = path.with_name(f"{path.name}.damaged-{offset}")
        n = 1
        while keep.exists():  # a second crash at the same offset keeps both tails
            keep = path.with_name(f"{path.name}.damaged-{offset}.{n}")
            n += 1
        with open(keep, "wb") as f:
            f.write(tail)
            f.flush()
            os.fsync(f.fileno())
        self.counters[kind] += 1
        self.counters["truncated_bytes"] += len(tail)
        self.recovered = TailDamage(kind, str(path), offset, len(tail))
        log.warning("journal %s: %s at offset %d of %s; %d B moved to %s, appending after the last good record",
                    self.directory, kind, offset, path.name, len(tail), keep.name)

    def _release(self) -> None:
        try:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
        finally:
            os.close(self._lock)
