"""Book replay of the reference BTCUSDT recording: core batch path, per-message path from
Python, and a pure-Python dict book, measured in one run. The gate is the same-run ratio of the
batch path to the pure-Python book (the 100 M/s target over a ~0.7 M/s dict book is ~140x); the
absolute figures go to the perf manifest (build/perf/book_replay.json) beside their targets."""

from __future__ import annotations

import numpy as np
import pytest

from bot4 import _core
from bot4.events import FLAG_CLEAR, FLAG_LAST
from bot4.replay import bbo_check_positions

ROUNDS = 25


def _fresh_books(data):
    books = _core.book.BookSet()
    for instrument in data.specs:
        books.add(instrument)
    return books


def _check_final_top(books, data):
    instrument = next(iter(data.specs))
    last = data.bbo[-1]
    assert books.book(instrument).top() == (last["bid_price"], last["bid_qty"], last["ask_price"],
                                             last["ask_qty"])


def _median_seconds(benchmark) -> float:
    return benchmark.stats.stats.median


def test_batch_apply(benchmark, reference_data, book_manifest):
    events = reference_data.book
    holder = {}

    def setup():
        holder["books"] = _fresh_books(reference_data)
        return (holder["books"], events), {}

    benchmark.pedantic(lambda books, ev: books.apply(ev), setup=setup, rounds=ROUNDS, iterations=1)
    _check_final_top(holder["books"], reference_data)
    rate = book_manifest.add_throughput("batch_apply", len(events), _median_seconds(benchmark),
                                        unit="level changes/s")
    benchmark.extra_info["level_changes_per_s"] = rate
    book_manifest.add_target("batch_apply_level_changes_per_s", rate, 100e6, "higher")


def test_batch_apply_with_bbo_check(benchmark, reference_data, book_manifest):
    rows, positions = bbo_check_positions(reference_data.book, reference_data.bbo)
    holder = {}

    def setup():
        holder["books"] = _fresh_books(reference_data)
        return (holder["books"],), {}

    result = {}
    benchmark.pedantic(lambda books: result.__setitem__("tops", books.apply(reference_data.book, positions)),
                       setup=setup, rounds=ROUNDS, iterations=1)
    tops = result["tops"]
    venue = reference_data.bbo[rows]
    assert len(rows) > 100
    assert (tops["bid_price"] == venue["bid_price"]).all() and (tops["ask_qty"] == venue["ask_qty"]).all()
    book_manifest.add_throughput("batch_apply_with_bbo_check", len(reference_data.book),
                                 _median_seconds(benchmark), unit="level changes/s")


def _message_bounds(events):
    ends = np.flatnonzero(events["flags"] & FLAG_LAST) + 1
    starts = np.concatenate([[0], ends[:-1]])
    return list(zip(starts.tolist(), ends.tolist()))


def test_per_message_from_python(benchmark, reference_data, book_manifest):
    events = reference_data.book
    bounds = _message_bounds(events)
    holder = {}

    def setup():
        holder["books"] = _fresh_books(reference_data)
        return (holder["books"],), {}

    def run(books):
        apply = books.apply
        for start, end in bounds:
            apply(events[start:end])

    benchmark.pedantic(run, setup=setup, rounds=5, iterations=1)
    _check_final_top(holder["books"], reference_data)
    book_manifest.add_throughput("per_message_python", len(events), _median_seconds(benchmark),
                                 unit="level changes/s")
    book_manifest.notes["messages"] = len(bounds)


def _python_dict_book(rows):
    """The pure-Python baseline: dict per side, best recomputed on demand at message ends."""
    sides = ({}, {})
    best = None
    for side, price, qty, flags in rows:
        if flags & FLAG_CLEAR:
            sides = ({}, {})
        levels = sides[side]
        if qty:
            levels[price] = qty
        else:
            levels.pop(price, None)
        if flags & FLAG_LAST:
            best = (max(sides[0]) if sides[0] else None, min(sides[1]) if sides[1] else None)
    return sides, best


def test_pure_python_dict_book(benchmark, reference_data, book_manifest):
    ev = reference_data.book
    rows = list(zip(ev["side"].tolist(), ev["price"].tolist(), ev["qty"].tolist(), ev["flags"].tolist()))
    result = benchmark.pedantic(_python_dict_book, args=(rows,), rounds=3, iterations=1)
    last = reference_data.bbo[-1]
    assert result[1] == (last["bid_price"], last["ask_price"])
    book_manifest.add_throughput("pure_python_dict_book", len(rows), _median_seconds(benchmark),
                                 unit="level changes/s")


def test_per_message_latency_in_core(reference_data, book_manifest):
    books = _fresh_books(reference_data)
    latency = books.apply_timed(reference_data.book)
    _check_final_top(books, reference_data)
    summary = book_manifest.add_latency("book_message_apply", latency)
    ends = np.flatnonzero(reference_data.book["flags"] & FLAG_LAST)
    sizes = np.diff(np.concatenate([[-1], ends]))[: len(latency)]
    per_level = latency / sizes
    book_manifest.add_latency("book_level_change_apply (message latency / levels in message)", per_level)
    small = latency[sizes <= 16]
    book_manifest.add_latency("book_message_apply_le16_levels", small)
    book_manifest.notes["message_levels_p50_p99_p999"] = np.percentile(sizes, [50, 99, 99.9]).tolist()
    book_manifest.add_target("book_message_apply_p999_ns", summary["p999"], 2_000, "lower")


def test_ratios(book_manifest):
    t = book_manifest.throughput
    needed = {"batch_apply", "per_message_python", "pure_python_dict_book"}
    if not needed <= t.keys():
        pytest.fail(f"ratio test needs the other benchmarks in the same run: missing {needed - t.keys()}")
    ratios = {
        "batch_vs_pure_python": t["batch_apply"]["rate"] / t["pure_python_dict_book"]["rate"],
        "batch_vs_per_message_python": t["batch_apply"]["rate"] / t["per_message_python"]["rate"],
    }
    book_manifest.notes["ratios"] = ratios
    assert ratios["batch_vs_pure_python"] >= 100, ratios
