"""What observers cost a paper session (issue 11: "a slow or stalled subscriber never stalls the
feed or the engine"), measured in the same run: run_paper over the simulator's stream (SEED,
EVENTS, the pinned model and config, threads over inproc) at speed max,

  none      no observer endpoint (the session as before)
  idle      an observer endpoint nobody subscribes to
  stalled   one subscriber that connects and never reads (its frames conflate, executions queue)
  reading   one subscriber reading every frame as it comes in a thread of this process (it
            competes for the GIL with the session's own threads: the worst case)
  view      the live view (bot4.services.live_view.watch, as `bot4 paper --live` runs it) in a
            thread of this process, drawing into a string: it reads in bursts four times a
            second and the publisher conflates the rest

Rounds alternate between the configurations so load hits them alike; the median wall time of
each is recorded with its ratio to `none`, and the stalled run's observer counters. Every run
must equal the backtest (orders, fills, pnl); gate: stalled <= STALL_GATE x none (a stalled
observer costs the collector a failed non-blocking send and a dict update per frame, not a wait).

Figures -> build/perf/observer.json. Run: python -m pytest bench/test_bench_observer.py -q -p no:cacheprovider -s
"""

from __future__ import annotations

import io
import json
import statistics
import threading
import time
from pathlib import Path

import pytest
import zmq
from engine.pinned_outputs import CONFIG, MODEL_DIR  # tests/ is on pytest's pythonpath

from rich.console import Console

from bot4.backtest import run
from bot4.services.session import run_paper
from bot4.sim import generate

SEED, EVENTS, ROUNDS = 7, 20_000, 5
STALL_GATE = 1.5
PERF = Path(__file__).resolve().parents[1] / "build" / "perf"


def _session(mode: str, folder: Path):
    endpoint = None if mode == "none" else f"ipc://{folder}/observe-{mode}"
    ctx = zmq.Context()
    sub = None
    reader = None
    if mode in ("stalled", "reading", "view"):
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.subscribe(b"")
        sub.connect(endpoint)
    if mode == "reading":
        stop = threading.Event()

        def read() -> None:
            while not stop.is_set():
                if sub.poll(50):
                    sub.recv_multipart()
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
    if mode == "view":
        from bot4.services.live_view import watch

        stop = threading.Event()
        reader = threading.Thread(target=watch, args=(sub,), daemon=True,
                                  kwargs=dict(console=Console(file=io.StringIO(), width=120), idle_timeout_s=None,
                                              stop=stop.is_set))
        reader.start()
    t0 = time.perf_counter()
    out = run_paper(None, seed=SEED, n_events=EVENTS, part_events=10_000, model=MODEL_DIR, config=CONFIG,
                    observe=endpoint, observers=1 if sub is not None else 0)
    dt = time.perf_counter() - t0
    if reader is not None:
        stop.set()
        reader.join()
    if sub is not None:
        sub.close()
    ctx.term()
    return dt, out


@pytest.mark.benchmark(group="observer")
def test_observers_do_not_slow_the_session(tmp_path):
    whole = run(generate(seed=SEED, n_events=EVENTS), MODEL_DIR, config=CONFIG, progress=False)
    modes = ("none", "idle", "stalled", "reading", "view")
    times: dict[str, list[float]] = {m: [] for m in modes}
    counters: dict[str, dict] = {}
    for _ in range(ROUNDS):
        for m in modes:
            dt, out = _session(m, tmp_path)
            assert len(out.orders) == whole.orders.size and len(out.fills) == whole.fills.size
            assert out.pnl == whole.pnl and out.decisions == whole.decisions.size
            times[m].append(dt)
            if m != "none":
                counters[m] = out.counters["observer"]
    med = {m: statistics.median(v) for m, v in times.items()}
    figures = {"events": EVENTS, "rounds": ROUNDS, "orders": int(whole.orders.size), "fills": int(whole.fills.size),
               "seconds": times, "median_s": med, "ratio_to_none": {m: med[m] / med["none"] for m in modes},
               "observer_counters": counters}
    PERF.mkdir(parents=True, exist_ok=True)
    (PERF / "observer.json").write_text(json.dumps(figures, indent=2, sort_keys=True))
    print(json.dumps({"median_s": med, "ratio_to_none": figures["ratio_to_none"]}, indent=2))
    k = counters["stalled"]
    assert k["conflated.positions"] > 0 and k["dropped.executions"] + k.get("unsent.executions", 0) \
        + k["sent.executions"] == k["published.executions"]
    assert med["stalled"] <= STALL_GATE * med["none"], figures["ratio_to_none"]
