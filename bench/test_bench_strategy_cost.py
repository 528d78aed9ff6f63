"""What a strategy written in Python adds per decision, on the reference BTCUSDT recording.

Four strategies over the same data, each a whole bot4.backtest.run (median of ROUNDS):

  top_of_book        built-in (C++), reads the touch; book only (no feature row is computed)
  threshold_bracket  built-in (C++) without a model: the feature row is computed at every
                     decision as for a Python strategy, p is NaN so it never trades
  python_empty       a bot4.Strategy whose on_decision returns None
  python_touch       a bot4.Strategy reading ctx.bid / ctx.ask and summing them (its checksum must
                     equal top_of_book's: it really read them)

All decide at the same 6,548 book-message ends. The engine stamps each decision's strategy + risk
step (latency_ns["strategy_risk"], clock reads included), so the added cost of a variant over a
baseline is the per-decision difference of those stamps, decision by decision (p50/p99); the whole-
run difference of medians over the decisions is recorded beside it (noisier: it moves with the
machine's load). Targets (issue 10): a Python strategy's added cost per decision p50 <= 1.5 us over
the built-in (python_empty - top_of_book), reading the context p50 <= 1.5 us over the empty body
(python_touch - python_empty); both recorded in build/perf/strategy_cost.json. Gate: the same-run
ratio of whole-run medians python_empty / threshold_bracket (the same pipeline but for the Python
call) <= WHOLE_RUN_GATE.
"""

from __future__ import annotations


import numpy as np
import pytest

from conftest import written_manifest
from bot4.strategy import Strategy

ROUNDS = 7
TARGET_ADDED_P50_NS = 1_500
WHOLE_RUN_GATE = 1.6       # measured ~1.2-1.3x on this 2-core VM (loaded)


class PythonEmpty(Strategy):
    def on_decision(self, ctx):
        return None


class PythonTouch(Strategy):
    def __init__(self):
        self.reads = self.checksum = 0

    def on_decision(self, ctx):
        bid, ask = ctx.bid, ctx.ask
        self.reads += 1
        if ctx.two_sided:
            self.checksum += bid + ask
        return None


VARIANTS = ("top_of_book", "threshold_bracket", "python_empty", "python_touch")


def _make(variant: str):
    from bot4.strategies import make

    return {"python_empty": PythonEmpty, "python_touch": PythonTouch}.get(variant, lambda: make(variant))()


@pytest.fixture(scope="module")
def manifest():
    with written_manifest("strategy_cost") as m:
        m.notes["file"] = "binance_hftbacktest/usdm/btcusdt_20240808.gz"
        yield m


@pytest.fixture(scope="module")
def runs() -> dict:
    """variant -> {"seconds": median whole-run seconds, "result": last result, "strategy": its object}."""
    return {}


@pytest.mark.parametrize("variant", VARIANTS)
def test_strategy_backtest(benchmark, variant, reference_data, runs, manifest):
    import bot4.backtest
    from bot4.events import FLAG_LAST

    held = {}

    def setup():
        held["strategy"] = _make(variant)
        return (held["strategy"],), {}

    def run(strategy):
        held["result"] = bot4.backtest.run(reference_data, strategy=strategy, progress=False)

    benchmark.pedantic(run, setup=setup, rounds=ROUNDS, warmup_rounds=1, iterations=1)
    result, strategy = held["result"], held["strategy"]
    messages = int(np.count_nonzero(reference_data.book["flags"] & FLAG_LAST))
    assert result.decisions.size == messages and result.orders.size == 0, (result.decisions.size, result.orders.size)
    seconds = float(benchmark.stats.stats.median)
    runs[variant] = {"seconds": seconds, "result": result, "strategy": strategy}
    manifest.add_throughput(variant, result.events, seconds, unit="events/s")
    manifest.add_latency(f"{variant}.strategy_risk", np.asarray(result.latency_ns["strategy_risk"]))
    if variant == "python_touch":
        tob = runs.get("top_of_book")
        assert strategy.reads == messages
        if tob is not None:
            assert strategy.checksum == tob["strategy"].stats()["checksum"]
    print(f"\n{variant}: {seconds * 1e3:.1f} ms (median of {ROUNDS}), {result.decisions.size:,} decisions, "
          f"strategy_risk p50 {np.median(result.latency_ns['strategy_risk']):.0f} ns")


def _added(runs, variant: str, baseline: str, n: int) -> dict:
    """Per-decision difference of the strategy_risk stamps (same decisions, same order) and the
    whole-run difference of medians per decision, ns."""
    a = np.asarray(runs[variant]["result"].latency_ns["strategy_risk"], dtype=np.int64)
    b = np.asarray(runs[baseline]["result"].latency_ns["strategy_risk"], dtype=np.int64)
    assert a.size == b.size == n
    d = a - b
    return {"per_decision_p50_ns": float(np.percentile(d, 50)), "per_decision_p99_ns": float(np.percentile(d, 99)),
            "per_decision_mean_ns": float(d.mean()),
            "whole_run_ns_per_decision": (runs[variant]["seconds"] - runs[baseline]["seconds"]) / n * 1e9,
            "whole_run_ratio": runs[variant]["seconds"] / runs[baseline]["seconds"]}


def test_added_cost(runs, manifest):
    missing = set(VARIANTS) - runs.keys()
    if missing:
        pytest.fail(f"needs every variant measured in the same run: missing {sorted(missing)}")
    n = int(runs["top_of_book"]["result"].decisions.size)
    pairs = {"python_empty_over_top_of_book": ("python_empty", "top_of_book"),
             "python_empty_over_threshold_bracket": ("python_empty", "threshold_bracket"),
             "python_touch_over_python_empty": ("python_touch", "python_empty"),
             "threshold_bracket_over_top_of_book": ("threshold_bracket", "top_of_book")}
    added = {name: _added(runs, v, b, n) for name, (v, b) in pairs.items()}
    manifest.notes["added_cost"] = added
    manifest.notes["decisions"] = n
    manifest.notes["definition"] = (
        "per_decision_*: percentiles of (variant - baseline) strategy_risk stamps, decision by decision; "
        "whole_run_ns_per_decision: (median whole-run seconds of variant - of baseline) / decisions; "
        "threshold_bracket_over_top_of_book is mostly the feature row, which every non-book-only strategy pays")
    manifest.notes["cython"] = "not measured: Cython strategy support (bot4.cython_build) not in the tree yet"
    for name, a in added.items():
        print(f"{name}: per decision p50 {a['per_decision_p50_ns']:.0f} ns, p99 {a['per_decision_p99_ns']:.0f} ns; "
              f"whole run {a['whole_run_ns_per_decision']:.0f} ns/decision ({a['whole_run_ratio']:.2f}x)")
    manifest.add_target("python_added_per_decision_p50_ns", added["python_empty_over_top_of_book"]["per_decision_p50_ns"],
                        TARGET_ADDED_P50_NS, "lower")
    manifest.add_target("python_context_read_over_empty_p50_ns",
                        added["python_touch_over_python_empty"]["per_decision_p50_ns"], TARGET_ADDED_P50_NS, "lower")
    ratio = added["python_empty_over_threshold_bracket"]["whole_run_ratio"]
    assert ratio <= WHOLE_RUN_GATE, f"a Python strategy's whole run is {ratio:.2f}x the built-in's on the same pipeline"
