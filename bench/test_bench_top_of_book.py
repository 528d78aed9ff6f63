"""The engine's cost on equal work with other engines: the `top_of_book` strategy (reads the touch at
the end of every book message, never trades, no features, no model) over the reference BTCUSDT
recording, against

  hftbacktest      its numba loop over `wait_next_feed` on a ROIVector market depth, reading
                   best bid/ask ticks at the same book messages (the recording converted by
                   hftbacktest's own Binance USD-M converter, once per session)
  nautilus_trader  a BacktestEngine (L2_MBP book) with a strategy reading best bid/ask from the
                   cached book in on_order_book_deltas, deltas buffered per venue message
                   (DataEngineConfig.buffer_deltas) so it reads at the same book messages

in the same run. Equal work is checked, not assumed: every engine reads the touch at the same
number of book messages and its checksum (bid + ask ticks summed over the reads) equals the one of
bot4's book replayed message by message. hftbacktest and nautilus_trader come from the optional
`bench` extra; when one cannot be imported its test skips and the manifest records why.
Figures (medians) -> build/perf/top_of_book.json. Gates: same-run ratios of whole-recording
seconds (the other engine's median over bot4's), set below today's measurements to catch a
regression; the issue's targets (>= 3x hftbacktest, >= 100x nautilus) are recorded beside them.
"""

from __future__ import annotations


import numpy as np
import pytest

from conftest import written_manifest
from other_engines import (PINS, hftbacktest_backtest, hftbacktest_end_ts, hftbacktest_feed, hftbacktest_read_points, hftbacktest_roi,
                           hftbacktest_touch, missing, version)

ROUNDS = 15
TARGETS = {"hftbacktest": 3.0, "nautilus_trader": 100.0}
# Measured on this 2-core VM (loaded, 3 runs): 1.10-1.21x hftbacktest, 46-50x nautilus; after the
# idle venue's deferred replay (load ~4, 3 runs alternated with 2 of the build before it, which gave
# 1.03-1.25x / 42-52x): 1.26-1.32x hftbacktest, 51-59x nautilus (bot4 26.3-28.1 ms median). After
# the speed branch (a venue never sent a request never builds its book, idle-venue polls merged
# within a book message, inline book apply, ladder windows reused zeroed; non-LTO build, load ~3,
# 3 runs alternated with 2 of the build before it, which gave 1.32-1.58x / 59-79x, bot4 25.5-27.7
# ms): 3.26-3.50x hftbacktest, 146-163x nautilus (bot4 10.0-11.2 ms median). Both targets met in
# those runs; a heavily loaded moment gave 1.9x once in development, so the hftbacktest gate sits
# at 1.6x (a ~50% loss; hftbacktest's numba loop and ours react to load differently) and the
# nautilus one at 85x (~40%).
GATES = {"hftbacktest": 1.6, "nautilus_trader": 85.0}


@pytest.fixture(scope="module")
def manifest():
    with written_manifest("top_of_book") as m:
        yield m


@pytest.fixture(scope="module")
def expected(reference_data):
    """What reading the touch at every book message end gives: bot4's book replayed with a top read
    at each message end (BookSet.apply at positions), independent of the engine under test."""
    from bot4 import _core
    from bot4.events import FLAG_LAST

    book = reference_data.book
    ends = np.flatnonzero(book["flags"] & FLAG_LAST).astype(np.int64)
    books = _core.book.BookSet()
    for instrument in reference_data.specs:
        books.add(instrument)
    tops = books.apply(book, ends)
    bid, ask = tops["bid_price"].astype(np.int64), tops["ask_price"].astype(np.int64)
    two = (tops["bid_qty"] > 0) & (tops["ask_qty"] > 0)
    return {"reads": int(ends.size), "checksum": int((bid + ask)[two].sum()),
            "spread_sum": int((ask - bid)[two].sum()), "one_sided": int((~two).sum())}


def _median(benchmark) -> float:
    return float(benchmark.stats.stats.median)


def test_bot4_top_of_book(benchmark, reference_data, expected, manifest):
    import bot4
    import bot4.backtest
    from bot4.strategies import make

    held = {}

    def setup():
        held["strategy"] = make("top_of_book")
        return (held["strategy"],), {}

    def run(strategy):
        held["result"] = bot4.backtest.run(reference_data, strategy=strategy, progress=False)

    benchmark.pedantic(run, setup=setup, rounds=ROUNDS, warmup_rounds=1, iterations=1)
    result, stats = held["result"], held["strategy"].stats()
    assert stats["reads"] == expected["reads"] == result.decisions.size, (stats, expected)
    assert (stats["checksum"], stats["spread_sum"]) == (expected["checksum"], expected["spread_sum"]), (stats, expected)
    assert result.orders.size == 0 and result.fills.size == 0
    seconds = _median(benchmark)
    rate = manifest.add_throughput("bot4_top_of_book", result.events, seconds, unit="events/s")
    manifest.add_throughput("bot4_top_of_book_book_deltas", len(reference_data.book), seconds, unit="book deltas/s")
    manifest.notes["bot4"] = {"version": bot4.__version__, "events": int(result.events),
                              "book_deltas": int(len(reference_data.book)), "trades": int(len(reference_data.trades)),
                              "reads": stats["reads"], "checksum": stats["checksum"], "spread_sum": stats["spread_sum"],
                              "timed": f"bot4.backtest.run(data, strategy=top_of_book) whole call, median of {ROUNDS}"}
    manifest.notes["file"] = "binance_hftbacktest/usdm/btcusdt_20240808.gz"
    manifest.notes["reads_expected"] = expected
    benchmark.extra_info["events_per_s"] = rate
    print(f"\nbot4 top_of_book: {result.events:,} events in {seconds * 1e3:.1f} ms (median) = {rate / 1e6:.2f} M events/s; "
          f"{stats['reads']:,} reads, checksum {stats['checksum']}")


@pytest.fixture(scope="module")
def hbt_setup(reference_data):
    """hftbacktest's conversion of the reference file (once per session) and the read points."""
    if missing("hftbacktest"):
        return None
    from conftest import REFERENCE_FILE

    feed = hftbacktest_feed(REFERENCE_FILE)
    tick, lot = float(reference_data.spec.tick_size), float(reference_data.spec.lot_size)
    return {"feed": feed, "points": hftbacktest_read_points(feed, reference_data.book), "end_ts": hftbacktest_end_ts(feed),
            "tick": tick, "lot": lot,
            "roi": hftbacktest_roi(feed, tick)}


def _skip(manifest, dist: str) -> None:
    why = missing(dist)
    manifest.notes[dist] = f"skipped: {why}"
    pytest.skip(f"{dist}: {why}")


def test_hftbacktest_wait_next_feed(benchmark, hbt_setup, expected, manifest):
    if hbt_setup is None:
        _skip(manifest, "hftbacktest")
    from hftbacktest import LOCAL_EVENT

    s = hbt_setup
    held: dict = {}

    def setup():            # a fresh backtest per round, built (feed copied into Rust) untimed
        if "hbt" in held:
            held.pop("hbt").close()
        held["hbt"] = hftbacktest_backtest(s["feed"], s["tick"], s["lot"], s["roi"])
        return (held["hbt"],), {}

    def run(hbt):
        held["result"] = hftbacktest_touch(hbt, s["points"], s["end_ts"])

    try:
        benchmark.pedantic(run, setup=setup, rounds=ROUNDS, warmup_rounds=1, iterations=1)   # numba compiles in warm-up
    finally:
        if "hbt" in held:
            held.pop("hbt").close()
    r = held["result"]
    assert r["rc"] == 1 and r["missed"] == 0, r          # ran to the end, every read point came back
    assert (r["reads"], r["checksum"], r["spread_sum"]) == (expected["reads"], expected["checksum"],
                                                             expected["spread_sum"]), (r, expected)
    feed = s["feed"]
    seconds = _median(benchmark)
    rate = manifest.add_throughput("hftbacktest_wait_next_feed", len(feed), seconds, unit="feed rows/s")
    manifest.notes["hftbacktest"] = {
        "measured": "in this run", "version": version("hftbacktest"), "pin": PINS["hftbacktest"],
        "market_depth": "ROIVectorMarketDepthBacktest", "roi": list(s["roi"]),
        "feed_rows": int(len(feed)), "local_feed_rows": int(np.count_nonzero(feed["ev"] & LOCAL_EVENT)),
        "wait_next_feed_returns": r["feeds"], "reads": r["reads"], "checksum": r["checksum"],
        "spread_sum": r["spread_sum"],
        "conversion": "hftbacktest.data.utils.binancefutures.convert of the same .gz (its REST snapshot included)",
        "loop": "@njit: while wait_next_feed(False, timeout) returns 2 (feed) or 1 (end): at bot4's book "
                "message ends read depth(0).best_bid_tick / best_ask_tick and sum them",
        "timed": f"the njit loop over a fresh backtest, median of {ROUNDS} (building the backtest untimed)"}
    print(f"\nhftbacktest {version('hftbacktest')} ROIVector: {len(feed):,} feed rows in {seconds * 1e3:.1f} ms (median) = "
          f"{rate / 1e6:.2f} M rows/s; {r['feeds']:,} wait_next_feed returns, {r['reads']:,} reads, "
          f"checksum {r['checksum']} (= bot4's)")


def test_nautilus_top_of_book(reference_data, nautilus_reference, expected, manifest):
    if nautilus_reference is None:
        _skip(manifest, "nautilus_trader")
    runs = nautilus_reference.runs(buffer_deltas=True)
    for r in runs:
        assert r["callbacks"] == expected["reads"], (r, expected)
        assert (r["checksum"], r["spread_sum"]) == (expected["checksum"], expected["spread_sum"]), (r, expected)
    n = len(nautilus_reference.deltas)
    seconds = nautilus_reference.median_seconds(buffer_deltas=True)
    rate = manifest.add_throughput("nautilus_top_of_book", n, seconds, unit="deltas/s")
    manifest.notes["nautilus_trader"] = {
        "measured": "in this run", "version": version("nautilus_trader"), "pin": PINS["nautilus_trader"],
        "deltas": n, "callbacks": runs[0]["callbacks"], "checksum": runs[0]["checksum"],
        "delivery": "DataEngineConfig(buffer_deltas=True): one on_order_book_deltas callback per venue message "
                    "(F_LAST); the strategy reads best bid and ask from the cached L2_MBP book and sums them",
        "logging": "bypass_logging=True",
        "timed": f"engine.run() only, median of {len(runs)} fresh engines; deltas built beforehand",
        "run_seconds": [r["seconds"] for r in runs]}
    print(f"\nnautilus_trader {version('nautilus_trader')}: {n:,} deltas in {seconds:.3f} s (median) = "
          f"{rate / 1e3:.0f} k deltas/s; {runs[0]['callbacks']:,} callbacks, checksum {runs[0]['checksum']} (= bot4's)")


def test_ratios(manifest):
    t = manifest.throughput
    if "bot4_top_of_book" not in t:
        pytest.fail("the ratio test needs bot4_top_of_book measured in the same run")
    ours = t["bot4_top_of_book"]["seconds"]
    others = {"hftbacktest": t.get("hftbacktest_wait_next_feed"), "nautilus_trader": t.get("nautilus_top_of_book")}
    ratios, failed = {}, []
    for name, theirs in others.items():
        if theirs is None:
            ratios[name] = f"not measured in this run: {manifest.notes.get(name, 'see its test')}"
            continue
        ratio = theirs["seconds"] / ours
        ratios[name] = ratio
        manifest.add_target(f"speedup_vs_{name}", ratio, TARGETS[name], "higher")
        print(f"bot4 top_of_book vs {name}: {ratio:.2f}x (median whole-recording seconds; target >= "
              f"{TARGETS[name]:g}x, gate {GATES[name]:g}x)")
        if ratio < GATES[name]:
            failed.append(f"{name}: {ratio:.2f}x < gate {GATES[name]}x")
    manifest.notes["speedup"] = ratios
    manifest.notes["speedup_definition"] = ("the other engine's median seconds over the whole recording divided by "
                                            "bot4's, both reading the touch at the same book messages (checksums equal)")
    assert not failed, failed
