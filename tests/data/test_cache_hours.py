"""A dataset read an hour partition at a time (bot4.data.cache.iter_hours, what a streamed run
reads): the parts in order are the whole dataset, and a streamed backtest over them equals one
run over the whole recording. Simulator data spread over three hours; no recording needed."""

from __future__ import annotations

import numpy as np
import pytest

from bot4.data.cache import dataset_hours, iter_hours, load_dataset, write_dataset
from bot4.data.market_data import MarketData
from bot4.sim import generate

pytest.importorskip("pyarrow")
HOUR_NS = 3_600_000_000_000


def _spread_over_hours(data: MarketData, hours: int) -> MarketData:
    """The same stream with a gap of an hour inserted at each of `hours - 1` receive times, so
    the records fall into `hours` hour partitions (receive order and every stream's order kept)."""
    ts = np.concatenate([data.book["ts_local"], data.orders["ts_local"], data.trades["ts_local"]])
    cuts = np.quantile(ts, np.linspace(0, 1, hours + 1)[1:-1]).astype(np.int64)
    start = (int(ts.min()) // HOUR_NS) * HOUR_NS

    def shifted(arr: np.ndarray) -> np.ndarray:
        out = arr.copy()
        # running maximum: a record later in its stream never moves before an earlier one
        shift = np.searchsorted(cuts, np.maximum.accumulate(arr["ts_local"]), side="right") * HOUR_NS
        out["ts_local"] += shift - start
        out["ts_exchange"] += shift - start
        return out

    return MarketData(specs=data.specs, book=shifted(data.book), orders=shifted(data.orders),
                      trades=shifted(data.trades), sources=data.sources, venue=data.venue)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    data = _spread_over_hours(generate(n_events=30_000), 3)
    out = tmp_path_factory.mktemp("hours")
    source = out / "source.bin"
    source.write_bytes(b"stand-in source file")
    write_dataset(data, [source], out / "ds")
    return data, out / "ds"


def test_hour_parts_concatenate_to_the_whole_dataset(dataset):
    data, path = dataset
    hours = dataset_hours(path)
    assert len(hours) >= 3 and hours == sorted(hours)
    parts = list(iter_hours(path))
    assert len(parts) == len(hours) and sum(len(p.book) for p in parts) == len(data.book)
    whole = load_dataset(path)
    for name in ("book", "orders", "trades"):
        joined = np.concatenate([getattr(p, name) for p in parts])
        assert joined.tobytes() == getattr(whole, name).tobytes() == getattr(data, name).tobytes(), name


def test_streamed_backtest_over_hours_equals_the_whole_run(dataset):
    import bot4.backtest

    data, path = dataset
    whole = bot4.backtest.run(load_dataset(path), strategy="top_of_book", progress=False)
    streamed = bot4.backtest.run_stream(iter_hours(path), strategy="top_of_book", progress=False)
    assert streamed.counters["late_events"] == 0 and streamed.counters["sim_late_feed_events"] == 0
    assert streamed.decisions.size == whole.decisions.size > 0
    for field in whole.decisions.dtype.names:   # field by field: the records have padding bytes
        np.testing.assert_array_equal(streamed.decisions[field], whole.decisions[field], err_msg=field)
