"""Per-row signal agent evaluation (issue 13: agents run in the core): the core's SignalAgent
(core/portfolio/signal_agent.hpp, bot4.portfolio.agents.core_agent) against the Python reference
`predict` of the same fitted agents, same run, same rows.

Fitted once on simulator features (seed 11, 25k events, the four built-in agents at horizon 20).
Timed per decision row, as the per-event path pays it:
  rules_core     the three rule agents (micro-price/OFI, volatility breakout, mean reversion):
                 SignalAgent.evaluate(row) each, from Python
  rules_python   the same three through `predict` on a one-row FeatureSet
  all_core       the four agents, the direction agent's logistic classifier evaluated in the core
                 too (SignalAgent.evaluate(row) each)
  all_python     the four through `predict` (the classifier inside the direction agent's)
  direction_*    the direction agent alone: core (classifier in the core), framework (sklearn's
                 predict_proba for the row, passed to a SignalAgent without the classifier: what
                 the core did before it evaluated the classifier), python (`predict`)
and over the whole feature matrix (ns per row): SignalAgent.evaluate_rows against `predict`.
Gate: p50(rules_python) / p50(rules_core) >= RULES_GATE in the same run (both sides are checked
to give the same outputs first, or the timing means nothing).

Per decision of the core portfolio step (4 and 16 instruments, 4 agents each; the synthetic market
of bench/test_bench_portfolio): step_features (each lane's feature row -> the four fitted agents in
the core -> blend -> selection and sizing) beside step (the same step reading agents' outputs
loaded beforehand, a second PortfolioStep in the same state). The two blend different inputs (the
real agents' views on simulator rows against the synthetic outputs), so selection and sizing do
different work: the difference bounds the agents' share, it is not it. Gate: p50 ratio <=
STEP_GATE. Measured (2-core machine, load ~2.5): rule agents per row 12.4 us core vs 495 us
predict (40x); per decision 4 instruments p50 41 us (table 32 us), 16 instruments p50 226 us (table
200 us). Figures -> build/perf/signal_agents.json.

test_job_decision_latency_per_decision_vs_upfront: the portfolio job on a two-instrument simulator
market with agent_eval "core" (the agents inside the core step at every decision, step_features)
and "upfront" (every row evaluated before the run, the step reading the outputs): the job's own
per-decision latency (Coordinator.step_ns, decision -> targets, the call from Python) and the
job's wall time; the figures must be identical (checked). Gate: p50 ratio <= JOB_GATE."""

from __future__ import annotations

import time

import numpy as np
import pytest

from conftest import written_manifest

ROWS = 400
RULES_GATE = 20.0     # python / core per row, the three rule agents (measured: see the module's manifest)


@pytest.fixture(scope="module")
def fitted():
    from bot4.features import compute, trading_config
    from bot4.portfolio import agents as ag
    from bot4.sim import generate

    fs = compute(generate(seed=11, n_events=25_000), trading_config(decision="time"))
    train = np.arange(len(fs.timestamps) // 2 - 20)
    agents = [a.fit(fs, train) for a in (ag.DirectionAgent(20, max_rows=2000), ag.MicropriceOFIAgent(20, max_rows=2000),
                                         ag.VolBreakoutAgent(20, max_rows=2000),
                                         ag.MeanReversionAgent(20, max_rows=2000))]
    return fs, agents, [ag.core_agent(a, fs.names) for a in agents]


@pytest.fixture(scope="module")
def manifest():
    with written_manifest("signal_agents") as m:
        yield m


def _row(fs, i):
    from bot4.features import FeatureSet

    return FeatureSet(timestamps=fs.timestamps[i:i + 1], matrix=fs.matrix[i:i + 1], names=fs.names,
                      valid=fs.valid[i:i + 1], instruments=fs.instruments[i:i + 1])


def _per_row(fs, agents, cores, which: slice) -> dict[str, np.ndarray]:
    from bot4.research import zoo

    x = np.ascontiguousarray(fs.matrix, np.float64)
    n = x.shape[0]
    rows = np.linspace(n // 2, n - 1, ROWS).astype(np.int64)
    out: dict[str, list[int]] = {"core": [], "python": []}
    for i in rows:
        one = _row(fs, int(i))
        t0 = time.perf_counter_ns()
        got = []
        for a, c in zip(agents[which], cores[which]):
            mo = float(zoo.proba(a.model, a._x(one))[0]) if c.needs_model_output else float("nan")
            got.append(c.evaluate(x[i], mo))
        t1 = time.perf_counter_ns()
        ref = [a.predict(one) for a in agents[which]]
        t2 = time.perf_counter_ns()
        out["core"].append(t1 - t0)
        out["python"].append(t2 - t1)
        for g, r in zip(got, ref):      # the same outputs (to BLAS's ulps), or the timing means nothing
            np.testing.assert_allclose(g[:2], [r.mu[0], r.sigma[0]], rtol=1e-12, atol=1e-12)
            assert g[6] == r.regime[0]
    return {k: np.array(v, np.int64) for k, v in out.items()}


def test_per_row_agent_evaluation_core_vs_python(fitted, manifest):
    fs, agents, cores = fitted
    _per_row(fs, agents, cores, slice(1, 4))        # warm-up
    p50 = {}
    for label, which in (("rules", slice(1, 4)), ("all", slice(0, 4))):
        lat = _per_row(fs, agents, cores, which)
        for k, v in lat.items():
            manifest.add_latency(f"per_row.{label}_{k}", v)
            p50[f"{label}_{k}"] = float(np.percentile(v, 50))
        print(f"\n{label} agents per row (us): " + "; ".join(
            f"{k} p50 {np.percentile(v, 50) / 1e3:.1f} p99 {np.percentile(v, 99) / 1e3:.1f}" for k, v in lat.items()))
    ratio = p50["rules_python"] / p50["rules_core"]
    manifest.add_target("rules_python_over_core_p50", ratio, RULES_GATE, "higher")
    manifest.add_target("all_python_over_core_p50", p50["all_python"] / p50["all_core"], 1.0, "higher")
    print(f"python / core p50: rules {ratio:.0f}x, all four {p50['all_python'] / p50['all_core']:.1f}x")
    assert ratio >= RULES_GATE, f"the core's per-row rule agents are only {ratio:.1f}x faster than predict"


def test_direction_classifier_per_row_core_vs_framework(fitted, manifest):
    """The direction agent per row: its logistic classifier in the core against sklearn's
    predict_proba for the row passed to the core (the path before) and `predict`."""
    from bot4._core.portfolio import SignalAgent
    from bot4.research import zoo

    fs, agents, cores = fitted
    d, core = agents[0], cores[0]
    assert core.has_classifier
    spec = {k: v for k, v in d.core_spec().items() if not k.startswith("model_") or k == "model_version"}
    framework = SignalAgent(**spec, feature_names=list(fs.names))
    x = np.ascontiguousarray(fs.matrix, np.float64)
    rows = np.linspace(x.shape[0] // 2, x.shape[0] - 1, ROWS).astype(np.int64)
    lat: dict[str, list[int]] = {"core": [], "framework": [], "python": []}
    for rep in range(2):                      # the first pass warms up
        for i in rows:
            one = _row(fs, int(i))
            t0 = time.perf_counter_ns()
            a = core.evaluate(x[i])
            t1 = time.perf_counter_ns()
            b = framework.evaluate(x[i], float(zoo.proba(d.model, d._x(one))[0]))
            t2 = time.perf_counter_ns()
            r = d.predict(one)
            t3 = time.perf_counter_ns()
            if rep:
                for k, v in zip(lat, (t1 - t0, t2 - t1, t3 - t2)):
                    lat[k].append(v)
            np.testing.assert_allclose(a[0], r.mu[0], rtol=1e-12, atol=1e-12)
            assert np.isnan(a[0]) == np.isnan(b[0])   # float32 vs double sums: p within 2e-6, not equal
    p50 = {k: float(np.percentile(v, 50)) for k, v in lat.items()}
    for k, v in lat.items():
        manifest.add_latency(f"per_row.direction_{k}", np.array(v, np.int64))
    manifest.add_target("direction_framework_over_core_p50", p50["framework"] / p50["core"], 1.0, "higher")
    print("\ndirection agent per row (us): " + "; ".join(f"{k} p50 {v / 1e3:.1f}" for k, v in p50.items()))
    assert p50["framework"] > p50["core"], "the classifier in the core is slower than sklearn's per row"


def test_matrix_agent_evaluation_core_vs_python(fitted, manifest):
    fs, agents, cores = fitted
    x = np.ascontiguousarray(fs.matrix, np.float64)
    n = x.shape[0]
    for a, c in zip(agents, cores):
        mo = a.model_output(fs)
        best_core, best_py = np.inf, np.inf
        for _ in range(5):
            t0 = time.perf_counter()
            c.evaluate_rows(x, mo)
            t1 = time.perf_counter()
            a.predict(fs)
            t2 = time.perf_counter()
            best_core, best_py = min(best_core, t1 - t0), min(best_py, t2 - t1)
        manifest.add_throughput(f"matrix.{a.name}.core_rows_per_s", n, best_core, "rows/s")
        manifest.add_throughput(f"matrix.{a.name}.python_rows_per_s", n, best_py, "rows/s")
        print(f"\n{a.name}: {n} rows, core {best_core / n * 1e9:.0f} ns/row, "
              f"python predict {best_py / n * 1e9:.0f} ns/row" + (" (core: classifier P(up) given)" if c.needs_model_output else ""))


STEP_GATE = 3.0      # p50(step_features) / p50(step from loaded outputs), same run: the agents' share


def _decision_latency(n: int, fitted) -> dict[str, np.ndarray]:
    """Per decision of an n-lane core step (bench/test_bench_portfolio's market, 4 agents):
    step_features (each lane's feature row -> the 4 fitted agents in the core -> blend -> sizing)
    beside step (the same step from the agents' outputs loaded beforehand); core clock and the
    call from Python."""
    from test_bench_portfolio import _coordinator

    fs, agents, cores = fitted
    c = _coordinator(n, step="core")
    step, table = c.core, _coordinator(n, step="core").core     # two steps: the same state at every decision
    step.set_agents(cores)
    x = np.ascontiguousarray(fs.matrix, np.float64)
    mo = np.column_stack([np.full(x.shape[0], np.nan) if (m := a.model_output(fs)) is None else m for a in agents])
    rng = np.random.default_rng(n)
    have = np.ones(n, np.uint8)
    out: dict[str, list[int]] = {"features_core": [], "features_call": [], "table_core": []}
    for s in range(150, 150 + 400):
        rows = rng.integers(0, x.shape[0], n)
        pos = rng.integers(-50, 50, n)
        rx, rmo = np.ascontiguousarray(x[rows]), np.ascontiguousarray(mo[rows])
        t0 = time.perf_counter_ns()
        r = step.step_features(s * 10**9, rx, rmo, have, pos, c.mid, c.pnl, c.peak)
        out["features_call"].append(time.perf_counter_ns() - t0)
        out["features_core"].append(r.step_ns)
        out["table_core"].append(table.step(s * 10**9, pos, c.mid, c.pnl, c.peak).step_ns)
    return {k: np.array(v, np.int64) for k, v in out.items()}


def test_decision_latency_with_the_agents_in_the_core_step(fitted, manifest):
    _decision_latency(4, fitted)             # warm-up
    for n in (4, 16):
        lat = _decision_latency(n, fitted)
        for k, v in lat.items():
            manifest.add_latency(f"decision.{k}.{n}_instruments_4_agents", v)
        ratio = float(np.percentile(lat["features_core"], 50) / np.percentile(lat["table_core"], 50))
        manifest.add_target(f"features_over_table_p50.{n}_instruments", ratio, STEP_GATE, "lower")
        print(f"\n{n} instruments x 4 agents (us): " + "; ".join(
            f"{k} p50 {np.percentile(v, 50) / 1e3:.1f} p99 {np.percentile(v, 99) / 1e3:.1f} "
            f"p99.9 {np.percentile(v, 99.9) / 1e3:.1f}" for k, v in lat.items()) + f"; features / table {ratio:.2f}x")
        assert ratio <= STEP_GATE, f"{n} instruments: evaluating the agents made the step {ratio:.1f}x slower"


JOB_GATE = 3.0       # p50(per-decision step) / p50(step from loaded outputs) in the job, same run


def test_job_decision_latency_per_decision_vs_upfront(manifest):
    import json

    import msgspec

    from bot4.data.market_data import merge
    from bot4.portfolio.job import PortfolioConfig, portfolio_backtest
    from bot4.sim import generate

    market = merge([generate(seed=1, n_events=40_000).as_instrument(1, "AAAUSDT"),
                    generate(seed=2, n_events=40_000).as_instrument(2, "BBBUSDT")])
    cfg = PortfolioConfig(epsilon=0.3, seed=3, horizon=10, corr_window=40, grid_s=1.0, checks_per_step=4, top_k=2,
                          run_alternative=False)
    runs = {how: portfolio_backtest(market, msgspec.structs.replace(cfg, agent_eval=how)) for how in ("core", "upfront")}
    figures = {how: json.dumps({k: v for k, v in r.as_json().items() if k not in ("seconds", "step_latency_ns")},
                               sort_keys=True) for how, r in runs.items()}
    assert figures["core"] == figures["upfront"]
    p50 = {}
    for how, r in runs.items():
        lat = np.array(r.main.coordinator.step_ns, np.int64)
        manifest.add_latency(f"job.step_{how}", lat)
        manifest.add_throughput(f"job.{how}_seconds", 1, r.seconds, "runs/s")
        p50[how] = float(np.percentile(lat, 50))
        print(f"\njob agent_eval={how}: {lat.size} decisions, p50 {p50[how] / 1e3:.1f} us, "
              f"p99 {np.percentile(lat, 99) / 1e3:.1f} us; job {r.seconds:.1f} s")
    ratio = p50["core"] / p50["upfront"]
    manifest.add_target("job_per_decision_over_upfront_p50", ratio, JOB_GATE, "lower")
    assert ratio <= JOB_GATE, f"the agents per decision made the job's step {ratio:.1f}x slower"
