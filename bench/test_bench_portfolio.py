"""Decision-to-intent latency of the portfolio step (issue 13, "Measured"): 4 and 16 instruments
with 4 agents each.

Synthetic inputs (a seeded market of grid mids, four agents' outputs per instrument and row, a
linear MetaWeighter fitted and calibrated on them); the timed call is one lane's decision at a new
grid step, `Coordinator.on_lane(ctx)` with a stand-in DecisionContext: state update, breach check,
the portfolio step (blend the 4 agents' latest rows per instrument, trailing correlations and
CVaR, diversified selection, epsilon-greedy action draws, risk-budget sizing, projection, lot
rounding and venue minimums, the no-trade band) and the lane's ctx.target intent. Python, on one
core: the figures are what the job pays per grid step, not the core engine's per-message path.
Figures -> build/perf/portfolio_step.json; the same-run ratio 16 / 4 instruments is gated at
quadratic growth (measured 2.6x for 4x the instruments on a quiet machine, up to 8x with both
cores busy: the per-instrument CVaR and blend are linear, sizing.plan_orders checks every limit of
every group per candidate trade); a cubic slip would break it. Measured (quiet 2-core machine):
4 instruments p50 1.29 ms, p99 2.26 ms, p99.9 2.47 ms; 16 instruments p50 3.41 ms, p99 6.42 ms,
p99.9 6.73 ms (about half of it the Cornish-Fisher CVaR through scipy.stats).

test_core_step_latency: the same step in the core (bot4._core.portfolio.PortfolioStep,
Coordinator(step="core")) beside the Python reference (step="python") on the same market, same
run: per decision the core's own clock around the step (decision -> target lots, inside C++), the
PortfolioStep.step call from Python (numpy in, the result out), and the Python reference's
plan() (Coordinator.step_ns: decision -> targets). Gate: the Python step's p50 over the core
call's p50 >= CORE_GATE for 4 and for 16 instruments.

test_breach_check_core_vs_python: the breach check of the positions held (Coordinator.check, at
every lane decision and fill) in Python (sizing.violations) and in the core
(sizing.violations_core), 4 and 16 instruments with 120 CVaR scenarios; gate CHECK_GATE. Measured
(load ~5 on the 2 cores): p50 80 us against 21 us (4 instruments), 81 against 22 us (16)."""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np
import pytest

from conftest import written_manifest
from portfolio.fake_context import FakeContext

STEPS = 400
ROWS = 600
RATIO_GATE = 16.0    # p50(16) / p50(4): 4x the instruments; quadratic would be 16 (measured 2.6-8)
CORE_GATE = 10.0     # p50(python step) / p50(core step call), same run


def _coordinator(n: int, seed: int = 0, step: str = "python"):
    from bot4.portfolio.agents import AgentOutput
    from bot4.portfolio.job import Coordinator, PortfolioConfig, Signals, lanes_for
    from bot4.portfolio.meta import MetaWeighter

    rng = np.random.default_rng(seed)
    ts = np.repeat(np.arange(ROWS, dtype=np.int64) * 10**9, n)
    inst = np.tile(np.arange(1, n + 1, dtype=np.uint32), ROWS)
    outs = []
    for a in range(4):
        mu = rng.normal(0, 2, ts.size)
        sig = np.abs(rng.normal(3, 1, ts.size)) + 0.1
        outs.append(AgentOutput(f"a{a}", "v", 5, ts, inst, mu, sig, np.column_stack([mu - sig, mu, mu + sig]),
                                np.full(ts.size, 0.5), rng.integers(0, 3, ts.size)))
    y = outs[0].mu + rng.normal(0, 3, ts.size)
    meta = MetaWeighter(backend="linear").fit(outs, y, np.arange(ts.size // 2))
    meta.calibrate(outs, y, np.arange(ts.size // 2, ts.size))
    sig = Signals(SimpleNamespace(timestamps=ts, instruments=inst), [], outs, meta, (0, 0, 0), {})
    specs = {i: SimpleNamespace(symbol=f"X{i}USDT", venue="binance-usdm", lot_size="0.001", tick_size="0.01",
                                inverse=False) for i in range(1, n + 1)}
    cfg = PortfolioConfig(top_k=max(2, n // 4), corr_window=120, epsilon=0.05, step=step)
    bars = np.exp(np.cumsum(rng.normal(0, 1e-3, (ROWS, n)), axis=0)) * 100
    c = Coordinator(lanes_for(specs, cfg), cfg, sig, bars, np.arange(1, ROWS + 1, dtype=np.int64) * 10**9, 0)
    c.mid[:] = bars[0]
    return c




def _step_latency(n: int) -> tuple[np.ndarray, int]:
    c = _coordinator(n)
    out, intents = [], 0
    for s in range(150, 150 + STEPS):
        ctx = FakeContext(1, s * 10**9)
        t0 = time.perf_counter_ns()
        c.on_lane(ctx)
        out.append(time.perf_counter_ns() - t0)
        intents += len(ctx.intents)
    assert c.steps == STEPS
    return np.array(out, dtype=np.int64), intents


@pytest.fixture(scope="module")
def manifest():
    with written_manifest("portfolio_step") as m:
        yield m


def test_portfolio_step_latency(manifest):
    _step_latency(4)                       # warm-up (imports, first calls)
    figures = {}
    for n in (4, 16):
        lat, intents = _step_latency(n)
        figures[n] = manifest.add_latency(f"decision_to_intent.{n}_instruments_4_agents", lat)
        print(f"\n{n} instruments x 4 agents: p50 {np.percentile(lat, 50) / 1e3:.0f} us, "
              f"p99 {np.percentile(lat, 99) / 1e3:.0f} us, p99.9 {np.percentile(lat, 99.9) / 1e3:.0f} us "
              f"({intents} intents over {STEPS} steps)")
    ratio = float(np.percentile(_step_latency(16)[0], 50) / np.percentile(_step_latency(4)[0], 50))
    manifest.add_target("p50_16_over_4_instruments", ratio, RATIO_GATE, "lower")
    assert ratio <= RATIO_GATE, f"the step's p50 grew {ratio:.1f}x from 4 to 16 instruments"


def _core_vs_python(n: int) -> dict[str, np.ndarray]:
    """Per decision: the core's clock, the PortfolioStep.step call, the Python reference's step."""
    core, py = _coordinator(n, step="core"), _coordinator(n, step="python")
    rng = np.random.default_rng(n)
    inner, call, ref = [], [], []
    for s in range(150, 150 + STEPS):
        pos = rng.integers(-50, 50, n)
        ts = s * 10**9
        for c in (core, py):
            c.pos[:] = pos
        t0 = time.perf_counter_ns()
        r = core.core.step(ts, core.pos, core.mid, core.pnl, core.peak)
        call.append(time.perf_counter_ns() - t0)
        inner.append(r.step_ns)
        py.plan(ts)
        np.testing.assert_array_equal(r.target, py.target)    # the same decision, or the timing means nothing
    ref = py.step_ns
    assert len(ref) == STEPS
    return {"core": np.array(inner, np.int64), "core_call": np.array(call, np.int64),
            "python": np.array(ref, np.int64)}


def test_core_step_latency(manifest):
    _core_vs_python(4)                     # warm-up
    for n in (4, 16):
        lat = _core_vs_python(n)
        for k, v in lat.items():
            manifest.add_latency(f"portfolio_step.{k}.{n}_instruments_4_agents", v)
        p50 = {k: float(np.percentile(v, 50)) for k, v in lat.items()}
        ratio = p50["python"] / p50["core_call"]
        print(f"\n{n} instruments x 4 agents (us): " + "; ".join(
            f"{k} p50 {np.percentile(v, 50) / 1e3:.1f} p99 {np.percentile(v, 99) / 1e3:.1f} "
            f"p99.9 {np.percentile(v, 99.9) / 1e3:.1f}" for k, v in lat.items()) + f"; python / core call {ratio:.0f}x")
        manifest.add_target(f"python_over_core_p50.{n}_instruments", ratio, CORE_GATE, "higher")
        assert ratio >= CORE_GATE, f"{n} instruments: the core step is only {ratio:.1f}x faster than Python at p50"


CHECK_GATE = 2.0     # p50(sizing.violations) / p50(sizing.violations_core), same run


def test_breach_check_core_vs_python(manifest):
    """The breach check the job runs at every lane decision and fill (Coordinator.check): the
    positions held against the full limits with the portfolio CVaR over corr_window scenarios,
    sizing.violations (the Python step) against sizing.violations_core (the core step's), same
    states, same run; the two agree on which limits are exceeded (checked)."""
    from bot4.portfolio.sizing import PortfolioState, SizingLimits, violations, violations_core

    lim = SizingLimits(max_position=0.2, max_group_gross=0.3, max_gross=0.6, max_net=0.3, max_portfolio_cvar=0.01)
    rng = np.random.default_rng(0)
    for n in (4, 16):
        lat: dict[str, list[int]] = {"python": [], "core": []}
        for i in range(2 * STEPS):
            st = PortfolioState(10_000.0, 10_500.0, rng.normal(0, 2_000, n), rng.integers(0, 3, n),
                                np.ones(n, bool), rng.normal(0, 0.01, (120, n)))
            t0 = time.perf_counter_ns()
            a = violations(st.positions, st, lim)
            t1 = time.perf_counter_ns()
            b = violations_core(st.positions, st, lim)
            t2 = time.perf_counter_ns()
            assert {k for k, v in a.items() if v > 0} == {k for k, v in b.items() if v > 0}
            if i >= STEPS // 4:                # the first quarter warms up
                lat["python"].append(t1 - t0)
                lat["core"].append(t2 - t1)
        p50 = {k: float(np.percentile(v, 50)) for k, v in lat.items()}
        for k, v in lat.items():
            manifest.add_latency(f"breach_check.{k}.{n}_instruments", np.array(v, np.int64))
        ratio = p50["python"] / p50["core"]
        manifest.add_target(f"breach_check_python_over_core_p50.{n}_instruments", ratio, CHECK_GATE, "higher")
        print(f"\nbreach check, {n} instruments (us): python p50 {p50['python'] / 1e3:.1f}, "
              f"core p50 {p50['core'] / 1e3:.1f}; {ratio:.1f}x")
        assert ratio >= CHECK_GATE, f"{n} instruments: the core's breach check is only {ratio:.1f}x faster"
