"""The normalised output of every loader and of the built-in market generator."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from bot4.events import BBO_EVENT, BOOK_EVENT, ORDER_EVENT, TRADE_EVENT
from bot4.instrument import InstrumentSpec

log = logging.getLogger("bot4.data")

#: Receive and venue timestamps a recording can plausibly carry (ns since the Unix epoch):
#: 2000-01-01 to 2100-01-01. Anything outside is damage, rejected by the loaders as
#: ``implausible_timestamp`` (a jumped timestamp would otherwise move the engine clock, which is
#: the running maximum of ts_local, years ahead for the rest of the file).
PLAUSIBLE_TS_NS = (946_684_800 * 10**9, 4_102_444_800 * 10**9)
#: Largest |receive time - venue time| accepted when a record carries both (recorder clock
#: offset plus latency; real files are within seconds). Beyond it: ``implausible_timestamp``.
MAX_CLOCK_SKEW_NS = 86_400 * 10**9


def plausible_ts(ts_local: int, ts_venue: int | None = None) -> bool:
    """Whether a record's receive time (and venue time, when it has one) is plausible."""
    lo, hi = PLAUSIBLE_TS_NS
    if not lo <= ts_local < hi:
        return False
    return ts_venue is None or abs(ts_local - ts_venue) <= MAX_CLOCK_SKEW_NS


@dataclass
class RejectionLog:
    """Counted rejections by reason, with the first offending line kept as a sample.

    Nothing a loader drops vanishes: every dropped row lands here with its reason.
    """

    counts: Counter = field(default_factory=Counter)
    samples: dict[str, tuple[str, int, str]] = field(default_factory=dict)  # reason -> (file, line, text)

    def reject(self, reason: str, source: str = "", line_no: int = 0, text: str = "") -> None:
        """Count one rejection under `reason`; the first one of each reason is kept as a sample (file,
        line, text) and logged."""
        self.counts[reason] += 1
        if reason not in self.samples:
            self.samples[reason] = (source, line_no, text[:200])
            log.info("rejected (%s) at %s:%d: %s", reason, source, line_no, text[:200])

    def merge(self, other: RejectionLog) -> None:
        """Add another log's counts; its samples fill in reasons not seen here."""
        self.counts.update(other.counts)
        for reason, sample in other.samples.items():
            self.samples.setdefault(reason, sample)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def as_dict(self) -> dict[str, int]:
        """{reason: count}, sorted by reason."""
        return dict(sorted(self.counts.items()))


@dataclass
class MarketData:
    """Event arrays of one or more instruments, in receive order within each array.

    book:   BOOK_EVENT  L2 level changes (absolute sizes), kLast on the last record of a message
    orders: ORDER_EVENT L3 order events (empty for L2 sources)
    trades: TRADE_EVENT public trades
    bbo:    BBO_EVENT   the venue's own top of book, kept as a check stream (may be empty)
    """

    specs: dict[int, InstrumentSpec]
    book: np.ndarray = field(default_factory=lambda: np.zeros(0, BOOK_EVENT))
    orders: np.ndarray = field(default_factory=lambda: np.zeros(0, ORDER_EVENT))
    trades: np.ndarray = field(default_factory=lambda: np.zeros(0, TRADE_EVENT))
    bbo: np.ndarray = field(default_factory=lambda: np.zeros(0, BBO_EVENT))
    rejections: RejectionLog = field(default_factory=RejectionLog)
    sequence_gaps: int = 0
    sources: list[str] = field(default_factory=list)
    venue: str = ""
    stats: dict = field(default_factory=dict)  # loader-specific counters (lines read, seeds, ...)

    @property
    def spec(self) -> InstrumentSpec:
        """The single instrument's spec (error if there are several)."""
        if len(self.specs) != 1:
            raise ValueError(f"{len(self.specs)} instruments in this data; use .specs")
        return next(iter(self.specs.values()))

    @property
    def level(self) -> str:
        return "L3" if len(self.orders) else "L2"

    @property
    def level_changes(self) -> int:
        return int(len(self.book))

    def as_instrument(self, instrument: int, symbol: str) -> MarketData:
        """A copy of this single-instrument data as instrument `instrument` named `symbol` (same
        events, same spec otherwise): with bot4.data.market_data.merge, several instruments from one
        recording or simulator stream, for multi-instrument runs and tests."""
        import msgspec

        spec = msgspec.structs.replace(self.spec, instrument_id=int(instrument), symbol=symbol)

        def tagged(a: np.ndarray) -> np.ndarray:
            a = a.copy()
            a["instrument"] = instrument
            return a

        return MarketData(specs={int(instrument): spec}, book=tagged(self.book), orders=tagged(self.orders),
                          trades=tagged(self.trades), bbo=tagged(self.bbo), sources=list(self.sources),
                          venue=self.venue)


def _merge_arrays(arrays: list[np.ndarray]) -> np.ndarray:
    """Interleave several event arrays by receive time, keeping each array's own order.

    The key is the running maximum of ts_local: a recording's ts_local can step back (diffs
    buffered before a snapshot are applied after it), and its order must survive the merge.
    """
    arrays = [a for a in arrays if len(a)]
    if not arrays:
        return np.zeros(0, BOOK_EVENT)
    if len(arrays) == 1:
        return arrays[0].copy()
    keys = np.concatenate([np.maximum.accumulate(a["ts_local"]) for a in arrays])
    order = np.argsort(keys, kind="stable")
    return np.concatenate(arrays)[order]


def merge(datasets: list[MarketData]) -> MarketData:
    """One MarketData holding several instruments' streams, interleaved by receive time."""
    specs: dict[int, InstrumentSpec] = {}
    for data in datasets:
        for instrument, spec in data.specs.items():
            if instrument in specs and specs[instrument] != spec:
                raise ValueError(f"instrument id {instrument} has two different specs")
            specs[instrument] = spec
    rejections = RejectionLog()
    for data in datasets:
        rejections.merge(data.rejections)
    merged = MarketData(
        specs=specs,
        rejections=rejections,
        sequence_gaps=sum(d.sequence_gaps for d in datasets),
        sources=[s for d in datasets for s in d.sources],
        venue=",".join(sorted({d.venue for d in datasets if d.venue})),
    )
    for name, dtype in (("book", BOOK_EVENT), ("orders", ORDER_EVENT), ("trades", TRADE_EVENT),
                        ("bbo", BBO_EVENT)):
        parts = [getattr(d, name) for d in datasets]
        merged_part = _merge_arrays(parts)
        setattr(merged, name, merged_part if len(merged_part) else np.zeros(0, dtype))
    return merged
