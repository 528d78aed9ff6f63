"""Columnar cache of decoded recordings: Parquet (pyarrow), partitioned by instrument and hour.

Layout of a dataset directory:

    bot4_dataset.json                       manifest: venue, sources (path, size, mtime, SHA-256),
                                            instrument specs, rejections, gaps, row counts
    <array>/instrument=<id>/hour=<YYYYMMDDHH>/part-0.parquet
                                            one column per event-record field plus `row`, the
                                            record's position in the decoded array
    <array>/instrument=<id>/hour=<YYYYMMDDHH>/records.npy
                                            the same records in bot4's own record layout

<array> is book, trades, bbo or orders (only non-empty ones are written). The hour is UTC of the
running maximum of ts_local, so every partition is a contiguous run of the decoded array even
where a recording's receive time steps back (diffs buffered before a snapshot). Each Parquet
file also carries the instrument spec and the sources' SHA-256 in its schema metadata, so a
single file is self-describing.

Reading (`load_dataset`) returns the same MarketData the decoder produced (bit-identical arrays,
tested), reading only the arrays, columns and hours asked for. The Parquet files are the
interoperable copy (any Parquet reader, column and row-group selection; zstd by default). When
whole records are wanted, bot4 maps records.npy instead: zero-copy (copy-on-write pages) for a
single partition, one concatenation otherwise, since a columnar file cannot be handed to the
core's record arrays without interleaving every field. A source file that changed since
the conversion (size, mtime, then SHA-256) makes the dataset stale: loading it is a DataError
that says to re-run `bot4 convert`, and `convert` rebuilds it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path

import msgspec
import numpy as np

from bot4.data.market_data import MarketData, RejectionLog
from bot4.errors import ConfigError, DataError
from bot4.events import BBO_EVENT, BOOK_EVENT, ORDER_EVENT, TRADE_EVENT
from bot4.instrument import InstrumentSpec

log = logging.getLogger("bot4.data")

MANIFEST = "bot4_dataset.json"
FORMAT = 1
ARRAYS = {"book": BOOK_EVENT, "trades": TRADE_EVENT, "bbo": BBO_EVENT, "orders": ORDER_EVENT}
_HOUR_NS = 3_600_000_000_000
_SHA_CHUNK = 1 << 20


def _pyarrow():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:  # pragma: no cover - pyarrow is in the parquet and test extras
        raise ConfigError("the columnar cache needs pyarrow: pip install 'bot4[parquet]'") from exc
    return pa, pq


def is_dataset(path: str | Path) -> bool:
    """True if `path` is a dataset directory written by `bot4 convert` (it holds the manifest)."""
    return (Path(path) / MANIFEST).is_file()


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_SHA_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _source_entry(path: Path) -> dict:
    st = path.stat()
    return {"path": str(path.resolve()), "name": path.name, "size": st.st_size,
            "mtime_ns": st.st_mtime_ns, "sha256": sha256_file(path)}


def stale_sources(manifest: dict) -> list[str]:
    """Sources that changed since the conversion (missing sources are not stale: a dataset may
    travel without its raw files)."""
    changed = []
    for src in manifest["sources"]:
        path = Path(src["path"])
        if not path.is_file():
            continue
        st = path.stat()
        if st.st_size == src["size"] and st.st_mtime_ns == src["mtime_ns"]:
            continue
        if st.st_size != src["size"] or sha256_file(path) != src["sha256"]:
            changed.append(str(path))
    return changed


def _hour_label(hour: int) -> str:
    return datetime.fromtimestamp(hour * 3600, tz=timezone.utc).strftime("%Y%m%d%H")


def read_manifest(path: str | Path) -> dict:
    """The dataset's manifest; DataError if it is missing, unreadable or of another format version."""
    try:
        manifest = json.loads((Path(path) / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable bot4 dataset ({exc})") from exc
    if manifest.get("format") != FORMAT:
        raise DataError(f"{path}: dataset format {manifest.get('format')!r}, this bot4 reads {FORMAT}")
    return manifest


# --- writing --------------------------------------------------------------------------------

def write_dataset(data: MarketData, sources: Sequence[str | Path], out: str | Path, *,
                  compression: str = "zstd", records: bool = True) -> dict:
    """(records: also write records.npy beside each Parquet file, for bot4's zero-copy reads.)"""
    """Write `data` (decoded from `sources`) as a dataset under `out`; returns the manifest."""
    pa, pq = _pyarrow()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name in ARRAYS:  # a rebuild replaces the dataset's own directories only
        if (out / name).is_dir():
            shutil.rmtree(out / name)
    (out / MANIFEST).unlink(missing_ok=True)
    entries = [_source_entry(Path(p)) for p in sources]
    spec_json = {iid: msgspec.json.encode(spec).decode() for iid, spec in data.specs.items()}
    source_meta = json.dumps([{"name": e["name"], "sha256": e["sha256"]} for e in entries])
    counts: dict[str, int] = {}
    partitions: dict[str, list[str]] = {}
    for name in ARRAYS:
        recs = getattr(data, name)
        counts[name] = int(len(recs))
        if not len(recs):
            continue
        key = np.maximum.accumulate(recs["ts_local"]) // _HOUR_NS
        rows = np.arange(len(recs), dtype=np.int64)
        written = []
        for iid in np.unique(recs["instrument"]):
            mine = recs["instrument"] == iid
            hours = key[mine]
            sel = np.flatnonzero(mine)
            # key is non-decreasing, so each hour is one contiguous run of `sel`
            bounds = np.flatnonzero(np.diff(hours)) + 1
            for run in np.split(np.arange(len(sel)), bounds):
                idx = sel[run]
                hour = int(key[idx[0]])
                part = out / name / f"instrument={int(iid)}" / f"hour={_hour_label(hour)}"
                part.mkdir(parents=True, exist_ok=True)
                chunk = recs[idx]
                columns = {f: np.ascontiguousarray(chunk[f]) for f in chunk.dtype.names}
                columns["row"] = rows[idx]
                table = pa.table(columns)
                table = table.replace_schema_metadata({
                    "bot4.array": name, "bot4.spec": spec_json.get(int(iid), ""),
                    "bot4.sources": source_meta, "bot4.format": str(FORMAT)})
                pq.write_table(table, part / "part-0.parquet", compression=compression,
                               write_statistics=["ts_local", "row"])
                if records:
                    np.save(part / "records.npy", np.ascontiguousarray(chunk), allow_pickle=False)
                written.append(str((part / "part-0.parquet").relative_to(out)))
        partitions[name] = written
    manifest = {
        "format": FORMAT,
        "venue": data.venue,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "sources": entries,
        "specs": [json.loads(msgspec.json.encode(s)) for s in data.specs.values()],
        "counts": counts,
        "partitions": partitions,
        "records": records,
        "sequence_gaps": int(data.sequence_gaps),
        "rejections": {"counts": dict(data.rejections.counts),
                       "samples": {k: list(v) for k, v in data.rejections.samples.items()}},
    }
    # The manifest goes last: a dataset without one was never finished.
    tmp = out / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1))
    tmp.replace(out / MANIFEST)
    return manifest


class _Records:
    """records.npy written as records come: the header is rewritten with the final count at
    close, padded to the length it was given at open (the .npy format pads headers with spaces)."""

    _WIDTH = 20  # digits reserved for the record count

    def __init__(self, path: Path, dtype: np.dtype):
        self.path, self.dtype, self.n = path, dtype, 0
        self.fh = open(path, "wb")
        self.fh.write(self._header(0))

    def _header(self, n: int) -> bytes:
        from numpy.lib import format as npy

        def text(count: int) -> str:
            return repr({"descr": npy.dtype_to_descr(self.dtype), "fortran_order": False, "shape": (count,)})

        size = len(text(0)) + self._WIDTH + 1  # room for a count of any width, and the final newline
        size += -(len(npy.MAGIC_PREFIX) + 2 + 2 + size) % 64  # magic, version, length: v1.0 aligns to 64
        header = text(n).ljust(size - 1).encode("latin1") + b"\n"
        return npy.MAGIC_PREFIX + bytes([1, 0]) + len(header).to_bytes(2, "little") + header

    def write(self, recs: np.ndarray) -> None:
        self.fh.write(np.ascontiguousarray(recs).tobytes())
        self.n += len(recs)

    def close(self) -> None:
        self.fh.seek(0)
        self.fh.write(self._header(self.n))
        self.fh.close()


def write_dataset_parts(parts: Iterable[MarketData], sources: Sequence[str | Path], out: str | Path, *,
                        compression: str = "zstd", records: bool = True) -> dict:
    """write_dataset for a recording given as consecutive MarketData parts (bot4.sources.stream_parts,
    bot4.data.tardis.iter_tardis, NativeBinanceLoader.iter_chunks): memory holds one part and a
    Parquet writer per open partition; the dataset reads back as write_dataset's of the parts
    concatenated (the instruments, rejections and gaps are the last part's). Returns the manifest."""
    pa, pq = _pyarrow()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name in ARRAYS:
        if (out / name).is_dir():
            shutil.rmtree(out / name)
    (out / MANIFEST).unlink(missing_ok=True)
    entries = [_source_entry(Path(p)) for p in sources]
    source_meta = json.dumps([{"name": e["name"], "sha256": e["sha256"]} for e in entries])
    counts = dict.fromkeys(ARRAYS, 0)
    running = dict.fromkeys(ARRAYS, np.iinfo(np.int64).min)
    written: dict[str, list[tuple[int, int]]] = {name: [] for name in ARRAYS}
    open_parts: dict[tuple[str, int, int], tuple] = {}  # (array, instrument, hour) -> (parquet, records)
    last = None

    def close(key) -> None:
        writer, recs = open_parts.pop(key)
        writer.close()
        if recs is not None:
            recs.close()

    try:
        for data in parts:
            last = data
            spec_json = {iid: msgspec.json.encode(spec).decode() for iid, spec in data.specs.items()}
            for name in ARRAYS:
                recs = getattr(data, name)
                if not len(recs):
                    continue
                key = np.maximum.accumulate(np.maximum(recs["ts_local"], running[name])) // _HOUR_NS
                running[name] = int(max(running[name], recs["ts_local"].max()))
                rows = np.arange(counts[name], counts[name] + len(recs), dtype=np.int64)
                counts[name] += len(recs)
                for iid in np.unique(recs["instrument"]):
                    sel = np.flatnonzero(recs["instrument"] == iid)
                    hours = key[sel]
                    bounds = np.flatnonzero(np.diff(hours)) + 1
                    for run in np.split(np.arange(len(sel)), bounds):
                        idx = sel[run]
                        hour = int(key[idx[0]])
                        slot = (name, int(iid), hour)
                        chunk = recs[idx]
                        columns = {f: np.ascontiguousarray(chunk[f]) for f in chunk.dtype.names}
                        columns["row"] = rows[idx]
                        table = pa.table(columns).replace_schema_metadata({
                            "bot4.array": name, "bot4.spec": spec_json.get(int(iid), ""),
                            "bot4.sources": source_meta, "bot4.format": str(FORMAT)})
                        if slot not in open_parts:
                            part = out / name / f"instrument={int(iid)}" / f"hour={_hour_label(hour)}"
                            part.mkdir(parents=True, exist_ok=True)
                            writer = pq.ParquetWriter(part / "part-0.parquet", table.schema, compression=compression,
                                                      write_statistics=["ts_local", "row"])
                            open_parts[slot] = (writer, _Records(part / "records.npy", chunk.dtype) if records
                                                else None)
                            written[name].append((int(iid), hour))
                        writer, rec_file = open_parts[slot]
                        writer.write_table(table)
                        if rec_file is not None:
                            rec_file.write(chunk)
                # the array's keys never go back: its partitions of earlier hours are complete
                for slot in [k for k in open_parts if k[0] == name and k[2] < int(key[-1])]:
                    close(slot)
    finally:
        for slot in list(open_parts):
            close(slot)
    if last is None:
        raise DataError("no parts to write")
    partitions = {name: [f"{name}/instrument={iid}/hour={_hour_label(hour)}/part-0.parquet"
                         for iid, hour in sorted(written[name])] for name in ARRAYS if written[name]}
    manifest = {
        "format": FORMAT,
        "venue": last.venue,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "sources": entries,
        "specs": [json.loads(msgspec.json.encode(s)) for s in last.specs.values()],
        "counts": counts,
        "partitions": partitions,
        "records": records,
        "sequence_gaps": int(last.sequence_gaps),
        "rejections": {"counts": dict(last.rejections.counts),
                       "samples": {k: list(v) for k, v in last.rejections.samples.items()}},
    }
    tmp = out / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1))
    tmp.replace(out / MANIFEST)
    return manifest


def _parts(files: list[Path], venue: str | None, progress: bool, chunk_bytes: int) -> Iterator[MarketData] | None:
    """The recording as parts when its format is decoded part by part (Tardis files, a LOBSTER
    message file with its orderbook file, a Binance recording of one instrument), else None (read
    whole)."""
    from bot4.data import _binance_groups, guess_venue

    if not all(p.is_file() for p in files):
        return None  # load() says what is wrong, or reads the dataset given
    if venue is None:
        kinds = {guess_venue(p) for p in files}
        if len(kinds) != 1:
            return None  # load() says what is wrong
        venue = kinds.pop()
    if venue == "tardis":
        from bot4.data.tardis import iter_tardis

        return iter_tardis(files, chunk_bytes=chunk_bytes, progress=progress)
    if venue == "lobster" and len(files) == 1:
        from bot4.data import lobster_orderbook
        from bot4.data.lobster import iter_lobster

        return iter_lobster(files[0], lobster_orderbook(files[0]), chunk_bytes=chunk_bytes, progress=progress)
    if venue == "binance" or venue.startswith("binance-"):
        from bot4.data.binance_native import NativeBinanceLoader

        market = None if venue == "binance" else venue.split("-", 1)[1]
        if len(_binance_groups(files, market)) > 1:
            return None
        return NativeBinanceLoader(market, progress=progress).iter_chunks(files, chunk_bytes=chunk_bytes)
    return None


def convert(paths: str | Path | Sequence[str | Path], out: str | Path, venue: str | None = None, *,
            progress: bool = False, compression: str = "zstd", records: bool = True,
            force: bool = False, chunk_bytes: int = 8 << 20) -> dict:
    """Decode a recording and write it as a dataset; a no-op when `out` already holds this
    recording converted from unchanged sources (unless force). Returns the manifest.

    Tardis files, a LOBSTER message file (with its orderbook file) and a Binance recording of one
    instrument are decoded and written `chunk_bytes` of file at a time (write_dataset_parts:
    bounded memory); other formats are read whole."""
    from bot4.data import load

    files = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
    out = Path(out)
    if is_dataset(out) and not force:
        manifest = read_manifest(out)
        same_files = [s["path"] for s in manifest["sources"]] == [str(p.resolve()) for p in files]
        if same_files and not stale_sources(manifest):
            log.info("dataset %s is up to date", out)
            return manifest
    parts = _parts(files, venue, progress, chunk_bytes)
    if parts is not None:  # memory: one part, whatever the recording's size
        return write_dataset_parts(parts, files, out, compression=compression, records=records)
    data = load(files, venue=venue, progress=progress)
    return write_dataset(data, files, out, compression=compression, records=records)


# --- reading --------------------------------------------------------------------------------

def _hour_value(label: str) -> int:
    return int(datetime.strptime(label, "%Y%m%d%H").replace(tzinfo=timezone.utc).timestamp()) // 3600


def dataset_hours(path: str | Path) -> list[int]:
    """The hour partitions of a dataset (hours since the epoch, increasing): each record is in the
    hour of its stream's running maximum of ts_local, so the partitions in this order are the
    recording in receive order."""
    manifest = read_manifest(path)
    return sorted({_hour_value(rel.split("hour=")[1].split("/")[0])
                   for files in manifest["partitions"].values() for rel in files})


def iter_hours(path: str | Path, *, check_sources: bool = True) -> Iterator[MarketData]:
    """The dataset one hour partition at a time (see dataset_hours), every instrument's records of
    that hour in their original order: memory bounded by one hour of records, and the parts'
    arrays concatenated equal load_dataset(path)'s."""
    for i, hour in enumerate(dataset_hours(path)):
        yield load_dataset(path, hours=[hour], check_sources=check_sources and i == 0)


def load_dataset(path: str | Path, *, arrays: Iterable[str] | None = None,
                 columns: Iterable[str] | None = None, start_ns: int | None = None,
                 end_ns: int | None = None, check_sources: bool = True,
                 hours: Iterable[int] | None = None) -> MarketData:
    """The MarketData stored in a dataset directory.

    arrays: which event arrays to read (default all); the others come back empty.
    columns: record fields to read (default all); the others are zero.
    start_ns, end_ns: keep records with start_ns <= ts_local < end_ns; whole hours outside the
    range are not read at all.
    hours: read only these hour partitions (dataset_hours), whole.
    check_sources: refuse a dataset whose source files changed since conversion (DataError).
    """
    pa, pq = _pyarrow()
    path = Path(path)
    manifest = read_manifest(path)
    if check_sources:
        changed = stale_sources(manifest)
        if changed:
            raise DataError(f"dataset {path} is stale: {', '.join(changed)} changed since it was "
                            f"converted; run `bot4 convert` again")
    wanted = set(ARRAYS if arrays is None else arrays)
    unknown = wanted - set(ARRAYS)
    if unknown:
        raise ConfigError(f"unknown arrays {sorted(unknown)}; expected some of {list(ARRAYS)}")
    only_hours = None if hours is None else {int(h) for h in hours}
    first_hour = None if start_ns is None else start_ns // _HOUR_NS
    last_hour = None if end_ns is None else (end_ns - 1) // _HOUR_NS
    out: dict[str, np.ndarray] = {}
    for name, dtype in ARRAYS.items():
        files = manifest["partitions"].get(name, []) if name in wanted else []
        names = dtype.names or ()
        fields = list(names) if columns is None else [f for f in names if f in set(columns)]
        selected = []
        for rel in files:
            hour = _hour_value(rel.split("hour=")[1].split("/")[0])
            if (first_hour is not None and hour < first_hour) or (last_hour is not None and hour > last_hour):
                continue
            if only_hours is not None and hour not in only_hours:
                continue
            selected.append(rel)
        if columns is None and manifest.get("records") and selected:
            out[name] = _mapped_records(path, selected, dtype, start_ns, end_ns)
            continue
        parts = []
        for rel in selected:
            need = list(fields) + ["row"]
            if (start_ns is not None or end_ns is not None) and "ts_local" not in need:
                need.append("ts_local")
            table = pq.read_table(path / rel, columns=need, memory_map=True, use_threads=False)
            parts.append(table)
        if not parts:
            out[name] = np.zeros(0, dtype)
            continue
        table = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
        n = table.num_rows
        rec = np.zeros(n, dtype) if len(fields) < len(names) else np.empty(n, dtype)
        for f in fields:
            rec[f] = table.column(f).to_numpy()
        row = table.column("row").to_numpy()
        keep = None
        if start_ns is not None or end_ns is not None:
            ts = table.column("ts_local").to_numpy()
            keep = np.ones(n, bool)
            if start_ns is not None:
                keep &= ts >= start_ns
            if end_ns is not None:
                keep &= ts < end_ns
        if len(parts) > 1 and np.any(np.diff(row) < 0):  # several instruments: original order
            order = np.argsort(row, kind="stable")
            rec = rec[order]
            keep = keep[order] if keep is not None else None
        out[name] = rec[keep] if keep is not None else rec
    rejections = RejectionLog()
    rejections.counts.update(manifest["rejections"]["counts"])
    rejections.samples.update({k: tuple(v) for k, v in manifest["rejections"]["samples"].items()})
    specs = {}
    for s in manifest["specs"]:
        spec = msgspec.convert(s, InstrumentSpec)
        specs[spec.instrument_id] = spec
    return MarketData(specs=specs, book=out["book"], orders=out["orders"], trades=out["trades"],
                      bbo=out["bbo"], rejections=rejections,
                      sequence_gaps=manifest["sequence_gaps"],
                      sources=[s["path"] for s in manifest["sources"]], venue=manifest["venue"])


def _mapped_records(path: Path, files: list[str], dtype: np.dtype, start_ns: int | None,
                    end_ns: int | None) -> np.ndarray:
    """Records of the selected partitions from records.npy, memory-mapped copy-on-write."""
    maps = []
    for rel in files:
        arr = np.load(path / Path(rel).parent / "records.npy", mmap_mode="c", allow_pickle=False)
        if arr.dtype.itemsize != dtype.itemsize or arr.dtype.names != dtype.names:
            raise DataError(f"{path / rel}: records.npy has dtype {arr.dtype}, expected {dtype}")
        maps.append(arr.view(dtype))
    if len(maps) == 1:
        rec = maps[0]
    else:
        rec = np.concatenate(maps)
        order = _row_order(path, files)
        if order is not None:
            rec = rec[order]
    if start_ns is not None or end_ns is not None:
        ts = rec["ts_local"]
        keep = np.ones(len(rec), bool)
        if start_ns is not None:
            keep &= ts >= start_ns
        if end_ns is not None:
            keep &= ts < end_ns
        rec = rec[keep]
    return rec


def _row_order(path: Path, files: list[str]) -> np.ndarray | None:
    """Order restoring the decoded array across partitions (None when already in order)."""
    _, pq = _pyarrow()
    rows = np.concatenate([pq.read_table(path / rel, columns=["row"]).column("row").to_numpy()
                           for rel in files])
    if np.all(np.diff(rows) > 0):
        return None
    return np.argsort(rows, kind="stable")
