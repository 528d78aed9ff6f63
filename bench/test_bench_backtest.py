"""Full backtest throughput and tick-to-decision latency on the reference BTCUSDT recording.

bot4: the session's 500-tree depth-6 model (trained once on the first half by time, bench/conftest.py),
then bot4.backtest.run over the whole recording (book -> features -> model -> strategy -> risk ->
orders -> sim, in the core), median of ROUNDS runs: events/s and the engine's tick_to_decision
samples (p50/p99/p99.9), as measured in the last round and as each decision's minimum over the
rounds (the engine's own cost without this shared machine's interruptions; the target is read on
it).

nautilus_trader (optional benchmark extra `bench`, which .ci/run installs just before the
benchmarks; skipped with a note when absent): a BacktestEngine with a strategy that reads the top
of book, over the same L2 deltas, in the same run (bench/other_engines.py, shared with the
top_of_book benchmark), delivered two ways: one callback per delta (DataEngineConfig's default,
the figure this benchmark has quoted since it was written) and one per venue message
(buffer_deltas=True: the touch read at the same 6,548 points where bot4 decides). Its final book
must equal bot4's. Figures -> build/perf/backtest.json.
Targets: >= 40x nautilus (gate: same-run ratio per delta >= SPEEDUP_GATE when nautilus is
installed), events/s >= the figure before the engine restructure (REFERENCE_BEFORE_RESTRUCTURE is
recorded beside this run's figure; with BOT4_BENCH_BASELINE_SITE set to another build of bot4,
test_against_baseline_build compares the two in this run and gates the paired ratio),
tick-to-decision p99.9 <= 10 us, an absolute figure recorded in the manifest's targets (it depends
on the machine's load).
"""

from __future__ import annotations

import importlib.util
import os
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from conftest import written_manifest
from other_engines import PINS, missing, version

ROUNDS = 7
TARGET_SPEEDUP = 40.0               # vs nautilus' BacktestEngine on the same deltas, same run
SPEEDUP_GATE = 30.0                 # 51x per delta here after the one-row walk by tree depth (36.8x in CI before it): catches a ~40% loss
# After the speed branch (non-LTO build, same run as nautilus, 2 runs alternated with 1 of the build
# before it, which gave 33.6x, 4.62 M events/s, p99.9 34.6 us): 41.0x and 39.5x per delta, 5.71 and
# 5.58 M events/s (82-84 ms median), tick-to-decision p99.9 27.3 and 33.2 us (target not met: the
# 500x6 model's predict is ~5 us at p50 and the tail is the loaded machine's).
TARGET_P999_NS = 10_000             # tick-to-decision, recorded (not gated)
# The full backtest before the engine was split into stages (commit 8256507, README "Speed",
# 2026-11-21, quiet machine; another run of the same commit gave 8.2 M): the floor.
REFERENCE_BEFORE_RESTRUCTURE = {"events_per_s": 10.5e6, "commit": "8256507",
                                "source": "README Speed table, 2026-11-21 (another run: 8.2 M events/s)"}

pytestmark = pytest.mark.skipif(importlib.util.find_spec("bot4.backtest") is None,
                                reason="bot4.backtest is not built yet")


@pytest.fixture(scope="module")
def manifest():
    with written_manifest("backtest") as m:
        yield m


def test_backtest_throughput_and_tick_to_decision(benchmark, reference_data, model_dir, manifest):
    import bot4.backtest
    import bot4.models

    model = bot4.models.load(model_dir)
    results = []

    def run():
        results.append(bot4.backtest.run(reference_data, model, progress=False))

    benchmark.pedantic(run, rounds=ROUNDS, warmup_rounds=1, iterations=1)
    timed = results[1:]                      # the warm-up round is not timed
    assert len(timed) == ROUNDS
    result = timed[-1]
    wall = float(benchmark.stats.stats.median)
    rate = manifest.add_throughput("bot4_backtest", result.events, wall, unit="events/s")
    manifest.add_throughput("bot4_backtest_engine_seconds", result.events, float(result.seconds),
                            unit="events/s")
    for stage, samples in result.latency_ns.items():
        manifest.add_latency(stage, np.asarray(samples))
    t2d = manifest.stages.get("tick_to_decision", {})
    # The engine's own tick-to-decision, with the machine's interruptions taken out: every round
    # makes the same decisions on the same events, so each decision's smallest time over the
    # rounds is its cost without the preemptions, interrupts and cache thefts of this shared VM,
    # which land on different decisions in each round (seen here: the slowest 1% of one round
    # were mostly not among the slowest 1% of the next).
    for r in timed[:-1]:
        assert np.array_equal(r.decisions["ts"], result.decisions["ts"]), "rounds decided at different times"
        assert np.array_equal(r.decisions["action"], result.decisions["action"]), "rounds decided differently"
    per_round = np.stack([np.asarray(r.latency_ns["tick_to_decision"], dtype=np.int64) for r in timed])
    intrinsic = per_round.min(axis=0)
    manifest.add_latency("tick_to_decision_min_over_rounds", intrinsic)
    own = manifest.stages["tick_to_decision_min_over_rounds"]
    round_p999 = np.percentile(per_round, 99.9, axis=1)
    manifest.notes.update({"tick_to_decision_p999_ns_per_round": [float(x) for x in round_p999],
                           "tick_to_decision_min_over_rounds": (
                               f"per decision, the smallest of its {ROUNDS} rounds' times; the target is read on it "
                               "(the engine's cost), tick_to_decision is the last round as measured (the machine's "
                               "load included)"),
                           "file": "binance_hftbacktest/usdm/btcusdt_20240808.gz",
                           "model": "500 trees, depth 6 (bench/conftest.py model_dir)",
                           "timed": f"bot4.backtest.run whole call, median of {ROUNDS}",
                           "decisions": int(len(result.decisions)),
                           "orders": int(len(result.orders)), "fills": int(len(result.fills)),
                           "book_deltas": int(len(reference_data.book)),
                           "reference_before_restructure": REFERENCE_BEFORE_RESTRUCTURE})
    benchmark.extra_info["events_per_s"] = rate
    print(f"\nbot4 backtest: {result.events:,} events in {wall:.3f} s (median) = {rate / 1e6:.2f} M events/s "
          f"(before the restructure: {REFERENCE_BEFORE_RESTRUCTURE['events_per_s'] / 1e6:.1f} M, another run); "
          f"tick_to_decision p50 {t2d.get('p50')} p99 {t2d.get('p99')} p99.9 {t2d.get('p999')} ns as measured "
          f"(p99.9 per round {[int(x) for x in round_p999]}); per-decision minimum over the {ROUNDS} rounds: "
          f"p50 {own['p50']} p99 {own['p99']} p99.9 {own['p999']} ns (target {TARGET_P999_NS})")
    assert result.events >= len(reference_data.book)
    assert t2d.get("count", 0) == len(result.decisions) > 0, t2d
    assert own["count"] == len(result.decisions)
    manifest.add_target("tick_to_decision_p999_ns", own["p999"], TARGET_P999_NS, "lower")
    manifest.add_target("tick_to_decision_p999_ns_as_measured", t2d["p999"], TARGET_P999_NS, "lower")
    manifest.add_target("events_per_s_vs_before_restructure", rate, REFERENCE_BEFORE_RESTRUCTURE["events_per_s"],
                        "higher")


def test_nautilus_trader_same_deltas(reference_data, nautilus_reference, manifest):
    if nautilus_reference is None:
        why = missing("nautilus_trader")
        manifest.notes["nautilus_trader"] = (f"{why}: no same-run comparison (the issue quotes ~234k "
                                             "deltas/s for its BacktestEngine on this file)")
        pytest.skip(f"nautilus_trader: {why}")
    # From here on any error (API change, bad book) fails the test: nautilus is installed.
    from bot4.events import FLAG_LAST
    from bot4.replay import replay

    n = len(nautilus_reference.deltas)
    per_delta = nautilus_reference.runs(buffer_deltas=False)
    per_message = nautilus_reference.runs(buffer_deltas=True)
    # Same engine with nautilus' out-of-the-box logging (INFO to stdout), one run, for reference.
    default_log = nautilus_reference.runs(buffer_deltas=False, bypass_logging=False, n=1)
    rate = manifest.add_throughput("nautilus_backtest_engine", n, nautilus_reference.median_seconds(False),
                                   unit="deltas/s")
    rate_msg = manifest.add_throughput("nautilus_backtest_engine_per_message", n,
                                       nautilus_reference.median_seconds(True), unit="deltas/s")
    rate_default_log = manifest.add_throughput("nautilus_backtest_engine_default_logging", n,
                                               default_log[0]["seconds"], unit="deltas/s")

    # It really processed the deltas: one callback per delta (or message), a sane book equal to bot4's.
    bot4_final = replay(reference_data)
    bot4_top = (bot4_final.final_bid, bot4_final.final_bid_qty, bot4_final.final_ask, bot4_final.final_ask_qty)
    for r in per_delta + default_log + per_message:
        assert r["update_count"] == n, r
        assert r["last_read"] == (r["top"][0], r["top"][2]), r
        assert r["top"] == bot4_top, (r["top"], bot4_top)
        assert Decimal(r["top"][0]) < Decimal(r["top"][2]), r           # not crossed at the end
    messages = int(np.count_nonzero(reference_data.book["flags"] & FLAG_LAST))
    assert all(r["callbacks"] == n for r in per_delta + default_log)
    assert all(r["callbacks"] == messages for r in per_message)
    bid, bid_qty, ask, ask_qty = per_delta[0]["top"]
    manifest.notes["nautilus_trader"] = {
        "measured": "in this run", "version": version("nautilus_trader"), "pin": PINS["nautilus_trader"],
        "deltas": n, "callbacks_per_delta_run": per_delta[0]["callbacks"],
        "callbacks_per_message_run": per_message[0]["callbacks"],
        "delivery": "nautilus_backtest_engine: one on_order_book_deltas callback per delta (DataEngineConfig."
                    "buffer_deltas=False, the default); _per_message: buffer_deltas=True, one callback per venue "
                    "message; the strategy reads best bid and best ask from the cached L2_MBP book",
        "logging": "bypass_logging=True for the headline figures (fastest; a benchmark run would turn "
                   "logging off); nautilus_backtest_engine_default_logging is its default INFO logging",
        "timed": f"engine.run() only, median of {len(per_delta)} fresh engines; deltas built beforehand",
        "final_top": {"bid": bid, "bid_qty": bid_qty, "ask": ask, "ask_qty": ask_qty,
                      "levels_bid_ask": list(per_delta[0]["levels"]), "equals_bot4_replay": True},
        "run_seconds": [r["seconds"] for r in per_delta], "run_seconds_per_message": [r["seconds"] for r in per_message],
    }
    print(f"\nnautilus_trader {version('nautilus_trader')}: {n:,} deltas, median {rate / 1e3:.0f} k deltas/s with a "
          f"callback per delta, {rate_msg / 1e3:.0f} k per message (logging bypassed); "
          f"{rate_default_log / 1e3:.0f} k deltas/s with default logging; final top {bid} x {bid_qty} / {ask} x "
          f"{ask_qty} (= bot4's)")
    ours = manifest.throughput.get("bot4_backtest")
    if not ours:
        manifest.notes["speedup_vs_nautilus"] = "bot4_backtest not measured in this run"
        print("bot4_backtest not measured in this run: no ratio")
        return
    # bot4's backtest also processes the file's trades and runs features + model + strategy + risk +
    # orders + sim; counting only its book deltas over its whole wall time gives a like-for-like unit.
    ours_deltas = len(reference_data.book) / ours["seconds"]
    speedup = ours_deltas / rate
    speedup_msg = ours_deltas / rate_msg
    manifest.notes["speedup_vs_nautilus"] = speedup
    manifest.notes["speedup_vs_nautilus_per_message"] = speedup_msg
    manifest.notes["speedup_vs_nautilus_definition"] = (
        "bot4_backtest book deltas / its median wall seconds, over nautilus' median deltas/s with a callback per "
        f"delta (per message: {speedup_msg:.1f}x; bot4 events/s incl. trades over it: {ours['rate'] / rate:.1f}x); "
        "issue target >= 40x")
    print(f"bot4 backtest: {ours_deltas / 1e6:.2f} M book deltas/s ({ours['rate'] / 1e6:.2f} M events/s) "
          f"vs nautilus {rate / 1e3:.0f} k deltas/s: bot4 is {speedup:.1f}x per delta, {speedup_msg:.1f}x against "
          f"nautilus per message (target >= 40x)")
    manifest.add_target("speedup_vs_nautilus_deltas_per_s", speedup, TARGET_SPEEDUP, "higher")
    manifest.add_target("speedup_vs_nautilus_per_message", speedup_msg, TARGET_SPEEDUP, "higher")
    assert speedup >= SPEEDUP_GATE, f"bot4 only {speedup:.1f}x nautilus_trader in the same run"


BASELINE_ENV = "BOT4_BENCH_BASELINE_SITE"
BASELINE_ALTERNATIONS, BASELINE_ROUNDS = 6, 7
BASELINE_GATE = 0.9      # this build's speed over the baseline's (paired medians): catches a 10% loss


def test_against_baseline_build(model_dir, manifest):
    """The full backtest of this build against another build of bot4 (e.g. the commit before the
    engine restructure: `git worktree add --detach ../wt-bench-old 8256507`, then `pip install
    --no-build-isolation --no-deps --target ../bench-old-site ../wt-bench-old`) given by
    BOT4_BENCH_BASELINE_SITE, the same model and data, each side in its own subprocess, alternated
    BASELINE_ALTERNATIONS times (BASELINE_ROUNDS runs each). Both must see the same events and make
    the same number of decisions (the same work for features, model and strategy). Orders, fills
    and pnl must be equal too unless BOT4_BENCH_BASELINE_VENUE_DIFFERS is set: a build from before
    the venue simulator's corrections (8256507 is one; the issue changed fills on purpose) places
    200 orders with 52 fills on this recording where this build places 198 with 51; both sides'
    figures are recorded. The gate is the median of the paired speed ratios."""
    import json
    import subprocess
    import sys

    from conftest import REFERENCE_FILE

    site = os.environ.get(BASELINE_ENV)
    if not site:
        manifest.notes["baseline_build"] = f"not compared: {BASELINE_ENV} not set"
        pytest.skip(f"no baseline build ({BASELINE_ENV} names a directory with another build of bot4)")
    script = Path(__file__).with_name("backtest_once.py")

    def once(*extra):
        out = subprocess.run([sys.executable, str(script), str(REFERENCE_FILE), str(model_dir), str(BASELINE_ROUNDS),
                              *extra], check=True, capture_output=True, text=True).stdout
        return json.loads(out.strip().splitlines()[-1])

    pairs = [(once(site), once()) for _ in range(BASELINE_ALTERNATIONS)]
    base, ours = pairs[0]
    assert Path(base["bot4"]).resolve().is_relative_to(Path(site).resolve()), base["bot4"]
    assert not Path(ours["bot4"]).resolve().is_relative_to(Path(site).resolve()), ours["bot4"]
    keys = ("events", "decisions", "orders", "fills", "pnl")
    same = keys[:2] if os.environ.get("BOT4_BENCH_BASELINE_VENUE_DIFFERS") else keys
    for b, o in pairs:
        assert {k: b[k] for k in same} == {k: o[k] for k in same}, (b, o)
    ratios = [float(np.median(b["walls"]) / np.median(o["walls"])) for b, o in pairs]
    speed = float(np.median(ratios))
    walls = {side: np.concatenate([p[i]["walls"] for p in pairs]) for i, side in enumerate(("baseline", "this"))}
    n = ours["events"]
    manifest.add_throughput("bot4_backtest_this_build_vs_baseline", n, float(np.median(walls["this"])), unit="events/s")
    manifest.add_throughput("bot4_backtest_baseline_build", n, float(np.median(walls["baseline"])), unit="events/s")
    manifest.notes["baseline_build"] = {
        "site": site, "paired_speed_ratios": ratios, "median_speed_ratio": speed,
        "outputs": {"this": {k: ours[k] for k in keys}, "baseline": {k: base[k] for k in keys},
                    "required_equal": list(same)},
        "tick_to_decision_p50_ns": {"baseline": [b["tick_to_decision_p50"] for b, _ in pairs],
                                    "this": [o["tick_to_decision_p50"] for _, o in pairs]},
        "timed": f"bot4.backtest.run whole call; {BASELINE_ALTERNATIONS} alternations of a subprocess per side, "
                 f"median of {BASELINE_ROUNDS} runs each"}
    manifest.add_target("speed_vs_baseline_build", speed, 1.0, "higher")
    print(f"\nthis build vs {site}: {n / np.median(walls['this']) / 1e6:.2f} vs "
          f"{n / np.median(walls['baseline']) / 1e6:.2f} M events/s (medians); paired ratios "
          f"{[round(r, 2) for r in ratios]}, median {speed:.3f}; equal {', '.join(same)}")
    assert speed >= BASELINE_GATE, f"this build is {speed:.2f}x the baseline's speed"
