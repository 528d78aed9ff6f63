"""Generate the built-in market stream as MarketData (the same arrays the loaders produce)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from bot4.data.market_data import MarketData
from bot4.events import BOOK_EVENT, ORDER_EVENT, TRADE_EVENT
from bot4.sim.params import MarketModelParams, default_params

DEFAULT_SEED = 20240808
DEFAULT_EVENTS = 1_000_000
VENUE = "bot4-sim"


def generate(params: MarketModelParams | str | Path | None = None, seed: int = DEFAULT_SEED,
             n_events: int = DEFAULT_EVENTS, duration_s: float | None = None) -> MarketData:
    """Run the market generator.

    params: a MarketModelParams, a path to a params JSON file, or None for the shipped default.
    seed: PRNG seed (same params + seed -> bit-identical arrays).
    n_events: atomic events after the initial snapshot (an add, a cancel, an inside add or a
        market order, each with all its records); fewer if `duration_s` ends the run first.
    duration_s: optional horizon in simulated seconds from params.epoch_ns.

    Returns MarketData with book (BOOK_EVENT, starting with a FLAG_SNAPSHOT|FLAG_CLEAR snapshot),
    orders (ORDER_EVENT: Add/Cancel/Execute by order id) and trades (TRADE_EVENT), the instrument
    spec in `specs`, and the generator's counters in `sim_counters` (an extra attribute).
    """
    from bot4 import _core

    if params is None:
        params = default_params()
    elif isinstance(params, (str, Path)):
        params = MarketModelParams.load(params)
    if n_events < 0:
        raise ValueError("n_events must be >= 0")
    until_ns = 0 if duration_s is None else params.epoch_ns + int(round(duration_s * 1e9))
    book, orders, trades, counters = _core.sim.generate(params.core_config(), int(seed) & (2**64 - 1),
                                                        int(n_events), until_ns)
    data = MarketData(
        specs={params.instrument.instrument_id: params.instrument},
        book=book.view(BOOK_EVENT),
        orders=orders.view(ORDER_EVENT),
        trades=trades.view(TRADE_EVENT),
        sources=[_source_label(seed, params)],
        venue=VENUE,
    )
    data.sim_counters = counters  # type: ignore[attr-defined]
    return data


def _source_label(seed: int, params: MarketModelParams) -> str:
    return f"bot4-sim seed={seed}" + (f" params={params.source.file}" if params.source else "")


def generate_parts(params: MarketModelParams | str | Path | None = None, seed: int = DEFAULT_SEED,
                   n_events: int = DEFAULT_EVENTS, part_events: int = 100_000) -> Iterator[MarketData]:
    """The same stream as generate(params, seed, n_events), made and handed out `part_events`
    atomic events at a time (the generator carries its state across parts), so a stream of any
    length needs the memory of one part. Concatenating the parts' arrays gives generate()'s."""
    from bot4 import _core

    if params is None:
        params = default_params()
    elif isinstance(params, (str, Path)):
        params = MarketModelParams.load(params)
    if n_events < 0 or part_events <= 0:
        raise ValueError("n_events must be >= 0 and part_events > 0")
    gen = _core.sim.MarketGenerator(params.core_config(), int(seed) & (2**64 - 1))
    left = int(n_events)
    first = True
    while left > 0 or first:
        take = min(left, int(part_events))
        book, orders, trades = gen.generate(take, 0)
        left -= take
        first = False
        yield MarketData(specs={params.instrument.instrument_id: params.instrument}, book=book.view(BOOK_EVENT),
                         orders=orders.view(ORDER_EVENT), trades=trades.view(TRADE_EVENT),
                         sources=[_source_label(seed, params)], venue=VENUE)


def save_npz(data: MarketData, path: str | Path) -> Path:
    """Write the event arrays (book, orders, trades) and the instrument spec to one .npz."""
    import msgspec

    path = Path(path)
    specs = msgspec.json.encode(list(data.specs.values())).decode()
    with open(path, "wb") as f:
        np.savez(f, book=data.book, orders=data.orders, trades=data.trades, specs=np.array(specs))
    return path


def load_npz(path: str | Path) -> MarketData:
    """Read a file written by save_npz back into MarketData."""
    import msgspec

    from bot4.instrument import InstrumentSpec

    with np.load(path, allow_pickle=False) as z:
        specs = msgspec.json.decode(str(z["specs"]), type=list[InstrumentSpec])
        return MarketData(
            specs={s.instrument_id: s for s in specs},
            book=z["book"].view(BOOK_EVENT), orders=z["orders"].view(ORDER_EVENT),
            trades=z["trades"].view(TRADE_EVENT), sources=[str(path)], venue=VENUE,
        )
