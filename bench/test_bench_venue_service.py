"""What moving the venue simulators into a service of their own costs a paper session (issue 11):
the same session (the embedded simulator's stream, threads over inproc, speed max) with the venue
inside the core and as a service (ROUTER/DEALER), rounds alternating so load hits both alike; the
results must be identical (orders, fills, P&L).

The core asks the remote venue at every poll while it is live (orders in flight or working,
responses due) and never while it is idle, so the price follows how long the strategy keeps
orders at the venue:
  threshold  the demo's model and threshold_bracket strategy (orders now and then): gated,
             median ratio service / in-core <= RATIO_GATE.
  always     the market_maker strategy (quotes always working: a round trip at nearly every
             event, ~200-300 us each over inproc with four threads sharing the GIL): recorded,
             not gated. A venue that told the engine the earliest time anything could be due
             would cut these round trips; that needs a bound that holds when the feed's exchange
             stamps arrive out of order, and is not done.
Figures -> build/perf/venue_service.json (median seconds per session, round trips, polls answered
locally)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from bot4.services.session import run_paper
from bot4.sim import generate
from conftest import written_manifest
from engine.pinned_outputs import CONFIG as MODEL_CONFIG
from engine.pinned_outputs import MODEL_DIR

ROUNDS = 3
MM_CONFIG = {"sim": {"entry_latency_ns": 200_000, "response_latency_ns": 200_000},
             "kill_switch": {"max_consecutive_rejects": 0, "max_drawdown": 1.0, "max_latency_ns": 0}}
CASES = {"threshold": dict(events=30_000, model=MODEL_DIR, config=MODEL_CONFIG),
         "always": dict(events=3_000, config=MM_CONFIG, strategy="market_maker")}
#: measured on the 2-core VM under other load: threshold 3.1x (2.4 s in the core, 6.6 s with the
#: service: 20k round trips at ~200 us, four Python threads sharing the GIL), always 25x (8k events:
#: 0.7 s vs 16.4 s, 55k round trips; now 3k events, recorded only, to keep CI short: 33x, 0.28 s vs
#: 6.4 s, 23k round trips, while two builds ran). The gate catches a regression (e.g. polls of an
#: idle venue).
RATIO_GATE = {"threshold": 4.5}


@pytest.fixture(scope="module")
def manifest():
    with written_manifest("venue_service") as m:
        yield m


@pytest.mark.parametrize("case", list(CASES))
def test_venue_service_against_the_venue_in_the_core(case, manifest):
    kw = dict(CASES[case])
    data = generate(seed=7, n_events=kw.pop("events"))
    times: dict[bool, list[float]] = {False: [], True: []}
    last = {}
    for _ in range(ROUNDS):
        for service in (False, True):
            t0 = time.perf_counter()
            last[service] = run_paper(data, venue_service=service, control=None, **kw)
            times[service].append(time.perf_counter() - t0)
    a, b = last[False], last[True]
    assert len(a.fills) > 10 and a.orders == b.orders and a.fills == b.fills and a.pnl == b.pnl
    eng = b.counters["engine"]
    ratio = float(np.median(np.array(times[True]) / np.array(times[False])))
    manifest.notes[case] = {"in_core_s": float(np.median(times[False])), "service_s": float(np.median(times[True])),
                            "ratio": ratio, "round_trips": eng["core.remote_venue_exchanges"],
                            "polls_answered_locally": eng["core.remote_venue_skipped"],
                            "requests": eng["core.remote_venue_requests"], "fills": len(b.fills)}
    print(case, manifest.notes[case])
    if case in RATIO_GATE:
        manifest.add_target(f"venue_service_over_in_core_{case}", ratio, RATIO_GATE[case], "lower")
        assert ratio <= RATIO_GATE[case], manifest.notes[case]
