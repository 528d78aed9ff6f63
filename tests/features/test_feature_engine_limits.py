"""Time jumps and extreme timestamps in the feature engine: a jump costs O(1) (the grids skip the
inside of a long gap and count it), and int64 timestamps anywhere in the range neither hang nor
overflow (the sanitizer build in .ci/run turns an overflow into a failure)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot4 import _core
from bot4.features import FeatureConfig, compute, trading_config
from bot4.sim import generate

MAX_GAP_STEPS = 1 << 16  # core/features/feature_engine.hpp kMaxGapSteps
INT64_MAX = np.iinfo(np.int64).max


@pytest.fixture(scope="module")
def stream():
    return generate(seed=7, n_events=4000)


def _jumped(md, at_fraction: float, jump: int):
    """A copy of `md` whose events from the given point of its time span on arrive `jump` ns later."""
    lo = int(md.book["ts_local"].min())
    hi = int(md.book["ts_local"].max())
    cut = lo + int((hi - lo) * at_fraction)
    out = dataclasses.replace(md)
    for name in ("book", "orders", "trades"):
        a = getattr(md, name).copy()
        late = a["ts_local"] > cut
        a["ts_local"][late] = np.minimum(a["ts_local"][late].astype(np.int64) + jump, INT64_MAX)
        setattr(out, name, a)
    return out, cut


@pytest.mark.parametrize("jump", [10**16, 10**17, INT64_MAX // 2])
def test_a_time_jump_is_skipped_and_counted_on_the_sample_grid(stream, jump):
    config = trading_config()  # 100 ms sample grid
    base = compute(stream, config)
    jumped, cut = _jumped(stream, 0.5, jump)
    fs = compute(jumped, config)
    c = fs.counters
    assert c["time_gaps"] == 1
    step = config.sample_interval_ns
    # every grid point of the gap is either taken (the first kMaxGapSteps and the last one
    # before the event) or counted as skipped
    assert MAX_GAP_STEPS < c["sample_steps_skipped"] + MAX_GAP_STEPS + 1 <= jump // step + 2
    assert c["sample_steps_skipped"] >= jump // step - MAX_GAP_STEPS - 2
    # rows before the jump are untouched by it
    n = int(np.searchsorted(base.timestamps, cut, side="right"))
    assert n > 0
    np.testing.assert_array_equal(fs.timestamps[:n], base.timestamps[:n])
    np.testing.assert_array_equal(fs.matrix[:n], base.matrix[:n])
    assert len(fs.timestamps) == len(base.timestamps)  # message-driven rows: one per message end


def test_a_time_jump_on_the_decision_grid_writes_a_bounded_number_of_rows(stream):
    config = FeatureConfig(decision="time", decision_interval_ns=10_000_000, sample_interval_ns=1_000_000)
    jumped, _ = _jumped(stream, 0.3, 10**17)
    fs = compute(jumped, config)
    c = fs.counters
    assert c["time_gaps"] == 2  # the sample grid and the decision grid each skip the gap once
    assert c["grid_rows_skipped"] >= 10**17 // 10_000_000 - MAX_GAP_STEPS - 2
    hi = int(max(jumped.book["ts_local"].max(), jumped.trades["ts_local"].max()))
    lo = int(min(jumped.book["ts_local"].min(), jumped.trades["ts_local"].min()))
    assert c["rows"] + c["grid_rows_skipped"] <= (hi - lo) // 10_000_000 + 2
    assert c["rows"] <= 3 * MAX_GAP_STEPS  # outside the gap the stream spans far fewer steps
    assert np.all(np.diff(fs.timestamps) > 0)


def test_gaps_shorter_than_the_limit_are_stepped_in_full(stream):
    config = trading_config()
    jump = (MAX_GAP_STEPS // 2) * config.sample_interval_ns
    fs = compute(_jumped(stream, 0.5, jump)[0], config)
    assert fs.counters["time_gaps"] == 0 and fs.counters["sample_steps_skipped"] == 0
    assert fs.counters["samples"] >= MAX_GAP_STEPS // 2


_ts = st.integers(min_value=np.iinfo(np.int64).min, max_value=INT64_MAX)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_arbitrary_int64_timestamps_finish_with_consistent_counters(stream, data):
    md = dataclasses.replace(stream)
    n = 300
    book, trades = stream.book[:n].copy(), stream.trades[:40].copy()
    book["ts_local"] = np.array(data.draw(st.lists(_ts, min_size=n, max_size=n)), dtype=np.int64)
    trades["ts_local"] = np.array(data.draw(st.lists(_ts, min_size=len(trades), max_size=len(trades))),
                                  dtype=np.int64)
    md.book, md.trades, md.orders = book, trades, stream.orders[:0]  # an L2 instrument
    for config in (trading_config(), FeatureConfig(decision="time", decision_interval_ns=1_000_000_000,
                                                   sample_interval_ns=7)):
        fs = compute(md, config, chunks=1)
        c = fs.counters
        assert c["book_events"] == n and c["trade_events"] == len(trades)
        assert c["rows"] == len(fs.timestamps)
        assert np.all(np.diff(fs.timestamps) >= 0)
        assert c["time_gaps"] <= 2 * (n + len(trades))


@pytest.mark.parametrize("toml, field", [
    (b"window = 4294967296", "window"),
    (b"flow_window_ns = 99999999999999999999", "flow_window_ns"),
    (b"vpin_buckets = -9223372036854775809", "vpin_buckets"),
])
def test_feature_config_integers_beyond_the_core_types_are_refused_naming_the_field(toml, field):
    import msgspec

    with pytest.raises(msgspec.ValidationError, match=field):
        FeatureConfig.from_toml(toml)


def test_l2book_window_beyond_2_pow_24_is_refused_before_allocating():
    for w in (2**31, 2**25):
        with pytest.raises(ValueError, match=r"window_ticks must be a power of two in \[64, 2\*\*24\]"):
            _core.book.L2Book(window_ticks=w)
    assert _core.book.L2Book(window_ticks=2**24) is not None
