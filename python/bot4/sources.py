"""The market stream a run works on: recordings (checked, their format told from their content)
or the embedded simulator stream. What every `bot4` command that reads market data calls first."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from bot4.data.market_data import MarketData
from bot4.errors import InputError
from bot4.sim.generate import DEFAULT_EVENTS, DEFAULT_SEED

EMBEDDED_LABEL = "embedded default market stream (simulator calibrated on Binance USD-M BTCUSDT"


@dataclass(frozen=True)
class Source:
    """A checked recording: its path and the venue format it will be read as."""
    path: Path
    venue: str        # one of bot4.data.VENUES (or "binance": market told while loading)
    evidence: str     # what in the file told the format ("" when only the caller's venue said it)


@dataclass(frozen=True)
class Stream:
    """Market data ready for a run."""
    data: MarketData
    label: str            # for people: the files, or the embedded stream with its seed and size
    load_seconds: float   # wall seconds to read or generate it
    venue: str            # format read ("bot4-sim" for the embedded stream)
    venue_inferred: bool  # True when the venue was told from the file content, not given


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_sources(paths: Sequence[str | Path], venue: str | None = None) -> list[Source]:
    """Check recordings before any long work: each exists, is a file, is given once, and its
    content is a format bot4 reads that agrees with `venue` (when given). Raises InputError
    naming the problem and the fix."""
    from bot4.data import VENUES
    from bot4.data.sniff import sniff

    files = [Path(p) for p in paths]
    if not files:
        raise InputError("paths", "no recording given", fix="name at least one file")
    if venue is not None and venue not in VENUES:
        raise InputError("venue", f"unknown venue {venue!r}", fix=f"use one of {', '.join(VENUES)}")
    from bot4.data.cache import is_dataset, read_manifest

    datasets = [p for p in files if is_dataset(p)]
    if datasets:  # a dataset written by `bot4 convert` is a whole recording on its own
        if len(files) != 1:
            raise InputError("paths", f"{datasets[0]} is a converted dataset, a whole recording; "
                             "it cannot be read together with other paths", fix="name it alone")
        found_venue = read_manifest(files[0])["venue"]
        if venue is not None and venue != found_venue and not (
                venue == "binance" and found_venue.startswith("binance-")):
            raise InputError("venue", f"{venue} does not match {files[0]}, a dataset of {found_venue}",
                             suggest={"venue": found_venue})
        return [Source(files[0], found_venue, "a bot4 dataset written by `bot4 convert`")]
    for i, p in enumerate(files):
        if p.is_dir():
            raise InputError("paths", f"{p} is a folder, not a recording file", fix="name a file inside it")
        if not p.exists():
            where = "" if p.parent.is_dir() else f" (folder {p.parent} does not exist either)"
            raise InputError("paths", f"no such file: {p}{where}", fix="check the path")
        for q in files[:i]:
            if _same_file(p, q):
                also = "" if str(p) == str(q) else f" (also as {q})"
                raise InputError("paths", f"{p} is given twice{also}; a run would read it twice",
                                 fix="name each file once")
    sources = []
    for p in files:
        found = sniff(p)
        if found is None:
            raise InputError("paths", f"{p} is not a recording bot4 reads (not Binance raw lines, a "
                             "Tardis CSV, a LOBSTER message file, Databento DBN or a `bot4 sim generate` .npz)",
                             fix="check the file")
        if venue is None and found.venue == "binance":
            raise InputError("venue", f"{p} holds Binance lines whose market the first messages do not tell",
                             fix="name it: binance-usdm, binance-coinm or binance-spot")
        if venue is not None:
            agrees = venue == found.venue or (found.venue == "binance" and venue.startswith("binance-"))
            if not agrees:
                raise InputError("venue", f"{venue} does not match {p}, which holds {found.evidence}",
                                 suggest={"venue": None} if found.venue == "binance" else
                                 {"venue": found.venue})
        sources.append(Source(p, venue or found.venue, found.evidence))
    kinds = {s.venue for s in sources}
    if len(kinds) > 1 and not all(k.startswith("binance-") for k in kinds):   # Binance markets side by side are fine
        raise InputError("paths", "the files are of different formats (" +
                         ", ".join(f"{s.path.name}: {s.venue}" for s in sources) + ") and one run reads one recording",
                         fix="name files of one recording")
    return sources


def _venue_of(sources: list[Source]) -> str:
    """The venue a run reads its checked sources as: theirs, or "binance" for Binance files of
    several markets (the loader tells each file's market)."""
    kinds = {s.venue for s in sources}
    return kinds.pop() if len(kinds) == 1 else "binance"


def check_events(n_events: int) -> None:
    """The embedded stream's size: a positive number of events."""
    if n_events <= 0:
        raise InputError("n_events", f"must be a positive number of events, got {n_events:,}",
                         fix=f"pass a count such as {DEFAULT_EVENTS:,}")


def load_stream(paths: Sequence[str | Path] | None = None, venue: str | None = None, *,
                seed: int = DEFAULT_SEED, n_events: int = DEFAULT_EVENTS, progress: bool = False) -> Stream:
    """Read the recordings `paths` (one recording, in the order given; format told from the
    content unless `venue` is given, and then checked against it), or generate the embedded
    default stream (`seed`, `n_events`) when `paths` is empty or None.

    progress: a line per phase and the loaders' byte bars on stderr.
    Raises InputError (bad argument, with the fix) or DataError (unreadable data)."""
    from bot4.data import load

    check_events(n_events)
    start = time.perf_counter()
    if paths:
        sources = check_sources(paths, venue)
        chosen = _venue_of(sources)
        if progress:
            told = "" if venue else f" (told from the file: {sources[0].evidence})"
            print(f"reading       {', '.join(str(s.path) for s in sources)} as {chosen}{told}",
                  file=sys.stderr, flush=True)
        data = load([s.path for s in sources], venue=None if chosen == "binance" else chosen,
                    progress=progress)
        label = ", ".join(str(p) for p in paths)
        inferred = venue is None
    else:
        from bot4.sim import generate

        if progress:
            print(f"generating    {n_events:,} events of the embedded market stream (seed {seed})",
                  file=sys.stderr, flush=True)
        data = generate(seed=seed, n_events=n_events)
        label = f"{EMBEDDED_LABEL}, seed {seed}, {n_events:,} events)"
        chosen, inferred = "bot4-sim", False
    n = int(len(data.book) + len(data.orders) + len(data.trades))
    if n == 0:
        rejected = ", ".join(f"{k}={v:,}" for k, v in data.rejections.as_dict().items())
        raise InputError("paths", f"no events could be read from {label}" +
                         (f" (rejected: {rejected})" if rejected else ""),
                         fix="check that the file is a complete recording")
    return Stream(data=data, label=label, load_seconds=time.perf_counter() - start, venue=chosen,
                  venue_inferred=inferred)


#: Simulator events per part of a streamed run (bot4.sim.generate_parts).
STREAM_PART_EVENTS = 200_000
#: Bytes of a recording file (as stored) read per part of a streamed run.
STREAM_CHUNK_BYTES = 8 << 20


@dataclass(frozen=True)
class PartStream:
    """Market data for a streamed run: consecutive MarketData parts of one recording, in receive
    order, made as they are consumed (memory: one part)."""
    parts: Iterator[MarketData]
    label: str
    venue: str


def stream_parts(paths: Sequence[str | Path] | None = None, venue: str | None = None, *,
                 seed: int = DEFAULT_SEED, n_events: int = DEFAULT_EVENTS,
                 part_events: int = STREAM_PART_EVENTS, chunk_bytes: int = STREAM_CHUNK_BYTES,
                 progress: bool = False) -> PartStream:
    """The stream load_stream would read, as parts that are read or generated only when asked
    for: a Binance recording of one instrument (the native decoder, `chunk_bytes` of file a
    part), Tardis CSV files (the native decoder, `chunk_bytes` of each file a part, several files
    merged by receive time as bot4.data.tardis.iter_tardis does), a LOBSTER message file with
    the orderbook file beside it (bot4.data.lobster.iter_lobster), a dataset written by
    `bot4 convert` (an hour partition a part; any venue it was converted from) or the embedded
    simulator (`part_events` a part). Other formats are refused with the fix (convert them
    first); so are Binance files of several instruments.

    Raises InputError (with the fix) before anything is read."""
    check_events(n_events)
    if not paths:
        from bot4.sim import generate_parts

        if progress:
            print(f"streaming     {n_events:,} events of the embedded market stream (seed {seed}), "
                  f"{part_events:,} a part", file=sys.stderr, flush=True)
        return PartStream(generate_parts(seed=seed, n_events=n_events, part_events=part_events),
                          f"{EMBEDDED_LABEL}, seed {seed}, {n_events:,} events)", "bot4-sim")
    sources = check_sources(paths, venue)
    chosen = _venue_of(sources)
    label = ", ".join(str(p) for p in paths)
    files = [s.path for s in sources]
    from bot4.data.cache import is_dataset, iter_hours

    if is_dataset(files[0]):
        parts: Iterator[MarketData] = iter_hours(files[0])
    elif chosen == "binance" or chosen.startswith("binance-"):
        from bot4.data import _binance_groups
        from bot4.data.binance_native import NativeBinanceLoader

        if len(_binance_groups(files)) > 1:
            raise InputError("paths", "a streamed run reads one instrument's Binance recording; these files are of "
                             "several instruments", fix="convert them into one dataset with `bot4 convert` and "
                             "stream that, or run without --stream")
        market = None if chosen == "binance" else chosen.split("-", 1)[1]
        parts = NativeBinanceLoader(market, progress=progress).iter_chunks(files, chunk_bytes=chunk_bytes)
    elif chosen == "tardis":
        from bot4.data.tardis import iter_tardis

        parts = iter_tardis(files, chunk_bytes=chunk_bytes, progress=progress)
    elif chosen == "lobster" and len(files) == 1:
        from bot4.data import lobster_orderbook
        from bot4.data.lobster import iter_lobster

        parts = iter_lobster(files[0], lobster_orderbook(files[0]), chunk_bytes=chunk_bytes, progress=progress)
    else:
        raise InputError("paths", f"a streamed run reads Binance, Tardis and LOBSTER recordings, `bot4 convert` "
                         f"datasets and the embedded stream; {label} is {chosen}",
                         fix=f"convert it first (`bot4 convert --data {label} --out DIR`) and stream DIR, "
                             "or run without --stream")
    if progress:
        print(f"streaming     {label} as {chosen}, part by part", file=sys.stderr, flush=True)
    return PartStream(parts, label, chosen)
