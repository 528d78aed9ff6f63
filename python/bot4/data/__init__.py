"""Venue loaders: decode each format once into bot4's event arrays (MarketData)."""

from __future__ import annotations

from pathlib import Path

from bot4.data.market_data import MarketData, RejectionLog
from bot4.errors import DataError

VENUES = ("binance-usdm", "binance-coinm", "binance-spot", "tardis", "lobster", "databento-mbo", "bot4-sim")


def guess_venue(path: str | Path) -> str:
    """Best guess of a file's format from its name and first line."""
    name = Path(path).name.lower()
    if name.endswith(".dbn.zst") or name.endswith(".dbn"):
        return "databento-mbo"
    if name.endswith(".npz"):
        return "bot4-sim"
    text_name = name.removesuffix(".gz").removesuffix(".zst")  # CSV files may be gzip or zstd
    if "_message_" in text_name and text_name.endswith(".csv"):
        return "lobster"
    if text_name.endswith(".csv"):
        return "tardis"
    return "binance"


def _binance_stream_symbol(path: Path, max_lines: int = 200) -> str | None:
    """The symbol of a Binance raw recording, from its first combined-stream line."""
    import re

    from bot4.data.progress import _NoProgress, iter_lines

    # gzip, zstd or plain, told by content; a damaged tail just ends the scan
    lines = iter_lines(path, _NoProgress(), lambda *a: None)
    try:
        for _, (_, raw) in zip(range(max_lines), lines):
            m = re.search(r'"stream"\s*:\s*"([a-z0-9_]+)@', raw.decode("utf-8", "replace"))
            if m:
                return m.group(1)
    except OSError:
        return None
    return None


def _binance_groups(paths: list[Path], market: str | None = None) -> list[list[Path]]:
    """Paths grouped by instrument, each group in the order given (a group = one recording,
    continuation files included). An instrument is its market and symbol: BTCUSDT spot and
    BTCUSDT USD-M futures are two recordings. With `market` given, a file of another market is
    a DataError (decoded as `market` its messages would all be refused)."""
    if len(paths) < 2:
        return [paths]
    from bot4.data.binance import detect_market

    groups: dict[tuple[str, str], list[Path]] = {}
    for p in paths:
        try:
            found = detect_market(p)
        except DataError:   # too little in the file to tell: the loader decides (and counts)
            found = market or ""
        if market is not None and found != market:
            raise DataError(f"{p} is a Binance {found} recording, not {market}")
        groups.setdefault((found, _binance_stream_symbol(p) or ""), []).append(p)
    return list(groups.values())


def lobster_orderbook(message: Path) -> Path | None:
    """The orderbook file beside a LOBSTER message file (``_message_`` -> ``_orderbook_`` in its
    name), or None when there is none."""
    book = message.with_name(message.name.replace("_message_", "_orderbook_"))
    return book if book != message and book.is_file() else None


def load(paths: str | Path | list, venue: str | None = None, progress: bool = False) -> MarketData:
    """Load one recording (several paths of one instrument = one continuous recording, in the
    order given; Binance files of several instruments = their recordings side by side, each
    decoded on its own and merged by receive time), or a dataset directory written by
    `bot4 convert` (bot4.data.cache).

    venue: one of VENUES ("binance" lets the loader tell the market), or None to guess it from
    the file names (guess_venue). progress: a byte progress bar on stderr.

    Returns a MarketData: structured numpy arrays `book` (BOOK_EVENT), `orders` (ORDER_EVENT, L3
    sources), `trades` (TRADE_EVENT) and `bbo` (BBO_EVENT), each (n,) in receive order, with
    times int64 ns (ts_exchange, ts_local), prices int64 ticks and sizes int64 lots of the
    instrument (`specs[instrument]` converts; layouts in docs/data-model.md), plus the counted
    rejections and sequence gaps. Raises DataError for a missing file, a folder that is not a
    dataset, a mix of formats or an unknown venue.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    paths = [Path(p) for p in paths]
    from bot4.data.cache import is_dataset, load_dataset

    for p in paths:
        if p.is_dir() and not is_dataset(p):
            raise DataError(f"{p} is a folder, not a recording file")
        if not p.exists():
            raise DataError(f"no such file: {p}")
    if any(is_dataset(p) for p in paths):
        # A columnar dataset written by `bot4 convert` (bot4.data.cache).
        if len(paths) != 1:
            raise DataError("a converted dataset is one recording: pass its directory alone")
        data = load_dataset(paths[0])
        if venue is not None and venue != "binance" and not data.venue.startswith(venue):
            raise DataError(f"{paths[0]} holds {data.venue} data, not {venue}")
        return data
    if venue is None:
        kinds = {guess_venue(p) for p in paths}
        if len(kinds) != 1:
            raise DataError(f"cannot replay a mix of formats together: {sorted(kinds)}")
        venue = kinds.pop()
    if venue == "binance" or venue.startswith("binance-"):
        from bot4.data.binance import load_binance

        market = None if venue == "binance" else venue.split("-", 1)[1]
        groups = _binance_groups(paths, market)
        if len(groups) > 1:  # instruments recorded side by side: each its own recording, merged
            from bot4.data.market_data import merge

            return merge([load_binance(g, market=market, progress=progress) for g in groups])
        return load_binance(paths, market=market, progress=progress)
    if venue == "tardis":
        from bot4.data.tardis import load_tardis

        return load_tardis(paths, progress=progress)
    if venue == "lobster":
        from bot4.data.lobster import load_lobster

        if len(paths) != 1:
            raise DataError("lobster takes one message file (its orderbook file is found beside it)")
        return load_lobster(paths[0], lobster_orderbook(paths[0]))
    if venue == "bot4-sim":   # `bot4 sim generate` output
        from bot4.sim.generate import load_npz

        if len(paths) != 1:
            raise DataError("bot4-sim takes one .npz file")
        return load_npz(paths[0])
    if venue == "databento-mbo":
        from bot4.data.databento_mbo import load_databento_mbo

        if len(paths) != 1:
            raise DataError("databento-mbo takes one .dbn.zst file")
        return load_databento_mbo(paths[0], progress=progress)
    raise DataError(f"unknown venue {venue!r}; expected one of {', '.join(VENUES)}")


__all__ = ["MarketData", "RejectionLog", "VENUES", "guess_venue", "load"]
