"""The portfolio step in the core (bot4._core.portfolio.PortfolioStep via Coordinator(step="core"))
against the Python reference (step="python"): the same inputs give the same selections, action
draws, targets (engine lots, exact) and counters (exact), and the same sizes, correlations and
logs to 1e-9 relative; over hypothesis-generated markets and a real four-instrument run. The hard
limits hold on the core path whatever the views (hypothesis), and bad inputs raise InputError."""

from __future__ import annotations

from types import SimpleNamespace

import msgspec
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from bot4.errors import InputError
from portfolio.same_json import same_json
from bot4.portfolio.agents import AgentOutput
from bot4.portfolio.job import Coordinator, PortfolioConfig, Signals, lanes_for, portfolio_backtest
from bot4.portfolio.meta import MetaWeighter
from bot4.portfolio.sizing import PortfolioState, SizingLimits, violations
from recordings import data_path, require_recording

REL = 1e-9


def _close(a, b, rel=REL, what=""):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, what
    both_nan = np.isnan(a) & np.isnan(b)
    ok = both_nan | (a == b) | (np.abs(a - b) <= rel * np.maximum(np.abs(a), np.abs(b)) + 1e-300)
    assert ok.all(), f"{what}: {a[~ok]} vs {b[~ok]}"


def _market(n: int, seed: int, rows: int, agents: int = 4, regimes: int = 3, bars_nan: bool = False):
    """Agents' outputs on `rows` signal rows per lane, a linear meta-weighter fitted and calibrated
    on them (regime models where a regime has enough rows), grid bars of mids."""
    rng = np.random.default_rng(seed)
    ts = np.repeat(np.arange(rows, dtype=np.int64) * 10**9, n)
    inst = np.tile(np.arange(1, n + 1, dtype=np.uint32), rows)
    outs = []
    for a in range(agents):
        mu = rng.normal(0, 2, ts.size)
        sig = np.abs(rng.normal(3, 1, ts.size)) + 0.1
        gone = rng.random(ts.size) < 0.03            # rows where this agent has no view
        mu[gone], sig[gone] = np.nan, np.nan
        outs.append(AgentOutput(f"a{a}", "v", 5, ts, inst, mu, sig, np.column_stack([mu - sig, mu, mu + sig]),
                                rng.random(ts.size), rng.integers(-1, regimes, ts.size)))
    y = np.nan_to_num(outs[0].mu) + rng.normal(0, 3, ts.size)
    meta = MetaWeighter(backend="linear", min_regime_rows=max(50, ts.size // 8))
    meta.fit(outs, y, np.arange(ts.size // 2)).calibrate(outs, y, np.arange(ts.size // 2, ts.size))
    sig = Signals(SimpleNamespace(timestamps=ts, instruments=inst), [], outs, meta, (0, 0, 0), {})
    bars = np.exp(np.cumsum(rng.normal(0, 1e-3, (rows, n)) * rng.uniform(0.5, 3, n), axis=0)) * rng.uniform(5, 5e4, n)
    if bars_nan:
        bars[rng.random((rows, n)) < 0.01] = np.nan   # gaps in the grid mids
    return sig, bars, np.arange(1, rows + 1, dtype=np.int64) * 10**9


def _specs(n: int, inverse_every: int = 0, spot_every: int = 0):
    out = {}
    for i in range(1, n + 1):
        inv = bool(inverse_every) and i % inverse_every == 0
        spot = bool(spot_every) and i % spot_every == 0 and not inv
        out[i] = SimpleNamespace(symbol=f"X{i % 3}USD" + ("_PERP" if inv else "T"),
                                 venue="binance-coinm" if inv else ("binance-spot" if spot else "binance-usdm"),
                                 lot_size="1" if inv else "0.001", tick_size="0.01", inverse=inv,
                                 contract_size=10 if inv else 1)
    return out


def _pair(n, seed, rows=300, cfg_kw=None, fixed_action=None, split_step=None, **mk):
    sig, bars, ends = _market(n, seed, rows, **mk)
    kw = dict(top_k=2, corr_window=40, epsilon=0.3, seed=seed, horizon=10) | (cfg_kw or {})
    out = []
    for step in ("python", "core"):
        cfg = PortfolioConfig(step=step, **kw)
        out.append(Coordinator(lanes_for(_specs(n), cfg), cfg, sig, bars, ends, 0, fixed_action=fixed_action,
                               split_step=split_step))
    return out, bars


def _drive(pair, steps, rng, mids, lot_jitter=300):
    """Run both coordinators through the same decisions: positions, mids and P&L drawn per step."""
    n = pair[0].lanes.n
    for s in steps:
        pos = rng.integers(-lot_jitter, lot_jitter, n)
        mid = mids[min(s, len(mids) - 1)] * rng.uniform(0.99, 1.01, n)
        mid[rng.random(n) < 0.05] = np.nan              # a lane without a two-sided book
        pnl = rng.normal(0, 50, n)
        targets = []
        for c in pair:
            c.pos[:] = pos
            c.mid[:] = mid
            c.pnl[:] = pnl
            c.step = s
            targets.append(c.plan(int(s) * 10**9).copy())
        np.testing.assert_array_equal(targets[0], targets[1])


def _compare(py: Coordinator, co: Coordinator):
    assert py.steps == co.steps > 0
    assert py.counters == co.counters
    assert (py.projections, py.projected) == (co.projections, co.projected)
    assert (py.no_risk_estimate, py.within_band, py.not_probability) == (co.no_risk_estimate, co.within_band,
                                                                          co.not_probability)
    assert len(py.open_rounds) == len(co.open_rounds)
    for a, b in zip(py.open_rounds, co.open_rounds):
        assert (a.step, a.lane, a.action, a.greedy) == (b.step, b.lane, b.action, b.greedy)
        assert a.propensity == b.propensity
        _close(a.context, b.context, what="round context")
    for name in ("equity", "gross", "net", "max_group", "risk_used", "corr_topk", "corr_div"):
        _close(getattr(py.log, name), getattr(co.log, name), what=name)
    _close(np.array(py.log.exposure), np.array(co.log.exposure), what="exposure")
    assert py.log.binding == co.log.binding
    assert py.log.step == co.log.step
    assert (py._scen is None) == (co._scen is None)
    if py._scen is not None:
        _close(py._scen, co._scen, what="scenarios")
    _close(py.peak, co.peak, what="peak")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(2, 7), seed=st.integers(0, 10**6), top_k=st.integers(1, 4), eps=st.sampled_from([0.0, 0.05, 0.5]),
       penalty=st.sampled_from([0.0, 1.0, 10.0]), buffer=st.sampled_from([0.0, 0.1, 0.3]),
       max_pos=st.sampled_from([0.05, 0.2, 0.5]), max_net=st.sampled_from([0.05, 0.3, 1.0]),
       cvar=st.sampled_from([0.001, 0.02]), band=st.sampled_from([0.0, 0.2]), min_notional=st.sampled_from([0.0, 20.0]),
       fixed=st.sampled_from([None, 1]), bars_nan=st.booleans(), equity=st.sampled_from([500.0, 10_000.0]))
def test_core_step_equals_the_python_step_on_generated_markets(n, seed, top_k, eps, penalty, buffer, max_pos,
                                                                max_net, cvar, band, min_notional, fixed, bars_nan,
                                                                equity):
    limits = SizingLimits(max_position=max_pos, max_group_gross=1.5 * max_pos, max_gross=3 * max_pos, max_net=max_net,
                          max_portfolio_cvar=cvar)
    kw = dict(top_k=top_k, epsilon=eps, penalty=penalty, buffer=buffer, limits=limits, rebalance_band=band,
              min_notional=min_notional, equity=equity)
    pair, bars = _pair(n, seed, cfg_kw=kw, fixed_action=fixed, bars_nan=bars_nan)
    rng = np.random.default_rng(seed + 1)
    steps = list(range(5, 300, 7)) + [120, 60, 250]      # back in time too: the core's ring refills
    _drive(pair, steps, rng, np.nan_to_num(bars, nan=100.0), lot_jitter=200)
    _compare(*pair)


def test_core_step_equals_the_python_step_with_inverse_and_spot_lanes():
    sig, bars, ends = _market(6, 11, 300)
    out = []
    for step in ("python", "core"):
        cfg = PortfolioConfig(step=step, top_k=3, corr_window=40, epsilon=0.2, seed=4, horizon=10)
        out.append(Coordinator(lanes_for(_specs(6, inverse_every=3, spot_every=2), cfg), cfg, sig, bars, ends, 0))
    assert out[0].lanes.inverse.any() and not out[0].lanes.allow_short.all()
    _drive(out, range(3, 300, 3), np.random.default_rng(5), bars, lot_jitter=40)
    _compare(*out)


def test_core_step_with_the_rl_sizer_projection_from_python():
    """sizer="rl": the core proposes, the RL sizer's policy (Python) emits a multiplier, the core's
    safety layer projects it and the core finishes (finish_safe) - as the Python step does with
    rl_sizer.safe_exposure."""
    # every step before the split explores a multiplier (rl_rng) and sizes through safe_exposure
    pair, bars = _pair(4, 3, cfg_kw=dict(sizer="rl"), split_step=10**6)
    _drive(pair, range(5, 300, 4), np.random.default_rng(9), bars)
    _compare(*pair)
    assert pair[0].log.multiplier == pair[1].log.multiplier
    assert len(set(pair[1].log.multiplier)) > 1


# -- hard limits on the core path, whatever the views ---------------------------------------------

N = 4
LIMITS = SizingLimits(max_position=0.4, max_group_gross=0.6, max_gross=1.0, max_net=0.5, max_portfolio_cvar=0.01)
_SIG, _BARS, _ENDS = _market(N, 0, 400)
CORE = Coordinator(lanes_for(_specs(N, spot_every=4), PortfolioConfig(limits=LIMITS, buffer=0.1, top_k=3,
                                                                      corr_window=30, epsilon=0.2)),
                   PortfolioConfig(limits=LIMITS, buffer=0.1, top_k=3, corr_window=30, epsilon=0.2),
                   _SIG, _BARS, _ENDS, 0)
anyfloat = st.floats(allow_nan=True, allow_infinity=True, width=64)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mu=st.lists(anyfloat, min_size=N, max_size=N), sigma=st.lists(anyfloat, min_size=N, max_size=N),
       p=st.lists(anyfloat, min_size=N, max_size=N), pos=st.lists(st.integers(-300, 300), min_size=N, max_size=N),
       mids=st.lists(st.floats(1.0, 1000.0), min_size=N, max_size=N), pnl=st.floats(-500, 500),
       peak=st.floats(0, 2000), step=st.integers(1, 399))
def test_core_targets_never_breach_the_limits(mu, sigma, p, pos, mids, pnl, peak, step):
    c = CORE
    assert c.core is not None
    c.mid[:] = mids
    c.pos[:] = pos
    c.pnl[:] = [pnl] + [0.0] * (N - 1)
    c.peak = c.cfg.equity + peak
    held = c.state()
    assume(all(v == 0 for v in violations(held.positions, held, c.buffered).values()))
    views = (np.array(mu), np.array(sigma), np.array(p))
    r = c.core.step_views(step * 10**9, *views, c.pos, c.mid, c.pnl, c.peak)
    tgt = c.notional(r.target)
    # the core's own (exact) comparisons: within every buffered and full limit
    assert all(v == 0 for v in c.core.violations(tgt, False).values()), c.core.violations(tgt, False)
    assert all(v == 0 for v in c.core.violations(tgt, True).values())
    # numpy's evaluation of the same limits (BLAS sums the CVaR scenarios in its own order): within ulps
    st_ = PortfolioState(r.equity, r.peak, r.positions, c.lanes.groups, c.lanes.allow_short, r.scenarios)
    v = violations(tgt, st_, c.buffered)
    assert all(x <= 1e-12 * max(1.0, abs(r.equity)) for x in v.values()), v
    assert all(x == 0 for k, x in v.items() if k != "risk"), v
    # the projection itself, before rounding
    pv = violations(r.projected, st_, c.buffered)
    assert all(x <= 1e-12 * max(1.0, abs(r.equity)) for x in pv.values()), pv


# -- bad input -------------------------------------------------------------------------------------

def _core():
    return CORE.core


def test_bad_agent_outputs_are_refused_with_input_error():
    s = _core()
    pos, mid, pnl = np.zeros(N, np.int64), np.full(N, 100.0), np.zeros(N)
    x = np.ones((N, 12))
    regime = np.zeros(N, np.int64)
    have = np.ones(N, np.uint8)
    r = s.step_agents(50 * 10**9, x, regime, have, pos, mid, pnl, 10_000.0)
    assert len(r.target) == N
    bad = x.copy()
    bad[1, 1] = -1.0                                     # negative sigma
    with pytest.raises(InputError, match="negative sigma"):
        s.step_agents(50 * 10**9, bad, regime, have, pos, mid, pnl, 10_000.0)
    bad = x.copy()
    bad[2, 0] = np.nan                                   # NaN mu beside a finite sigma
    with pytest.raises(InputError, match="both NaN"):
        s.step_agents(50 * 10**9, bad, regime, have, pos, mid, pnl, 10_000.0)
    bad = x.copy()
    bad[0, 4] = np.inf
    with pytest.raises(InputError, match="mu and sigma"):
        s.step_agents(50 * 10**9, bad, regime, have, pos, mid, pnl, 10_000.0)
    with pytest.raises(InputError, match="columns"):
        s.step_agents(50 * 10**9, np.ones((N, 9)), regime, have, pos, mid, pnl, 10_000.0)
    with pytest.raises(InputError, match="lanes x"):
        s.step_agents(50 * 10**9, np.ones(N * 12), regime, have, pos, mid, pnl, 10_000.0)
    with pytest.raises(InputError, match="pos"):
        s.step(50 * 10**9, np.zeros(N + 1, np.int64), mid, pnl, 10_000.0)
    with pytest.raises(InputError, match="mu"):
        s.step_views(50 * 10**9, np.zeros(N - 1), np.ones(N), np.ones(N), pos, mid, pnl, 10_000.0)
    with pytest.raises(InputError, match="pnl"):
        s.step(50 * 10**9, pos, mid, np.array([np.nan] + [0.0] * (N - 1)), 10_000.0)
    with pytest.raises(InputError, match="mid"):
        s.step(50 * 10**9, pos, np.array([-1.0] + [100.0] * (N - 1)), pnl, 10_000.0)
    with pytest.raises(InputError, match="unknown limit"):
        s.finish(np.zeros(N), ["gros"])


def test_bad_signal_rows_are_refused_when_loaded():
    sig, bars, ends = _market(3, 2, 200)
    o = sig.outputs[1]
    o.sigma[7] = -0.5
    cfg = PortfolioConfig(corr_window=30)
    with pytest.raises(InputError, match="negative sigma"):
        Coordinator(lanes_for(_specs(3), cfg), cfg, sig, bars, ends, 0)
    o.sigma[7] = 1.0
    o.mu[9] = np.inf
    with pytest.raises(InputError, match="infinite"):
        Coordinator(lanes_for(_specs(3), cfg), cfg, sig, bars, ends, 0)
    o.mu[9] = 1.0
    with pytest.raises(InputError, match="bars"):
        Coordinator(lanes_for(_specs(3), cfg), cfg, sig, bars[:, :2], ends, 0)


def test_lightgbm_meta_weighter_has_no_core_twin():
    sig, bars, ends = _market(3, 2, 200)
    sig.meta.models[None] = object()
    with pytest.raises(InputError, match="linear"):
        Coordinator(lanes_for(_specs(3), PortfolioConfig(corr_window=30)), PortfolioConfig(corr_window=30), sig, bars,
                    ends, 0)


# -- the job's outputs -----------------------------------------------------------------------------

def test_job_json_is_the_same_with_the_core_step():
    from bot4.data.market_data import merge
    from bot4.sim import generate

    market = merge([generate(seed=1, n_events=40_000).as_instrument(1, "AAAUSDT"),
                    generate(seed=2, n_events=40_000).as_instrument(2, "BBBUSDT")])
    cfg = PortfolioConfig(epsilon=0.3, seed=3, horizon=10, corr_window=40, grid_s=1.0, checks_per_step=4, top_k=2)
    core = portfolio_backtest(market, cfg)
    py = portfolio_backtest(market, msgspec.structs.replace(cfg, step="python"))
    assert core.main.coordinator.core is not None and py.main.coordinator.core is None
    a, b = core.as_json(), py.as_json()
    assert a["steps"] > 100
    same_json(a, b)


LINEAR = ["usdm/btcusdt_20240808.gz", "usdm/ethusdt_20240808.gz", "spot/btcusdt_20240808.gz",
          "spot/btcusdt_20240809.gz", "spot/ethusdt_20240808.gz", "spot/ethusdt_20240809.gz"]
REAL = dict(horizon=10, calibration_fraction=0.15, corr_window=60, penalty=10.0, sizer="rl")


@pytest.mark.realdata
def test_job_json_is_the_same_with_the_core_step_on_four_recorded_instruments():
    """The real multi-instrument run of test_job (Binance USD-M and spot BTC/ETH, RL sizer, the
    alternative policy's run): --json figures equal with either step, zero breaches."""
    from bot4.portfolio.job import load_recordings

    data = load_recordings([require_recording(data_path("binance_hftbacktest", f)) for f in LINEAR])
    core = portfolio_backtest(data, PortfolioConfig(**REAL))
    py = portfolio_backtest(data, PortfolioConfig(step="python", **REAL))
    a, b = core.as_json(), py.as_json()
    assert a["steps"] > 100 and all(v == 0 for v in a["limit_breaches"].values())
    print(f"\nprojections {a['projections']}, skipped {a['skipped']}, steps {a['steps']}; step latency "
          f"core {a['step_latency_ns']}, python {b['step_latency_ns']}")
    same_json(a, b)


def test_a_p_outside_0_1_is_no_view_and_counted_on_both_paths():
    """|2p - 1| overflowed (RuntimeWarning) in the Python step on p ~ 1e308: such a p is no
    probability, so the lane has no view and is counted (not_probability), on either path."""
    import warnings

    pair, bars = _pair(3, 1)
    for c in pair:
        c.mid[:] = bars[200]
        c.blended = lambda ts: (np.array([5.0, -3.0, 2.0]), np.array([1.0, 1.0, 1.0]),  # type: ignore[method-assign]
                                np.array([1e308, -1e308, 0.9]))
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            c.plan(200 * 10**9)
        assert c.not_probability == 2
        assert all(r.lane == 2 for r in c.open_rounds)
    np.testing.assert_array_equal(pair[0].target, pair[1].target)


@pytest.mark.realdata
def test_cli_json_is_the_same_with_either_step(tmp_path, capsys):
    """`bot4 portfolio backtest --json` (core step, the default) prints the figures that
    `--step python` prints, on the four recorded instruments."""
    import json

    from bot4.cli import main

    files = [str(require_recording(data_path("binance_hftbacktest", f))) for f in LINEAR]
    cfg = tmp_path / "c.toml"
    cfg.write_text("horizon = 10\ncalibration_fraction = 0.15\ncorr_window = 60\npenalty = 10.0\n"
                   "run_alternative = false\n")
    out = {}
    for step in ("core", "python"):
        argv = ["portfolio", "backtest", "--data", *files, "--config", str(cfg), "--out", str(tmp_path / step),
                "--json", "-q", "--step", step]
        assert main(argv) == 0
        out[step] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["core"]["steps"] > 100
    assert [out[s].pop("out") for s in ("core", "python")] == [str(tmp_path / "core"), str(tmp_path / "python")]
    same_json(out["core"], out["python"])


def test_agent_outputs_per_decision_and_bars_pushed_live_give_the_loaded_steps_result():
    """step_agents (this decision's agents' outputs passed in) equals step (rows loaded once), and
    bars pushed one at a time as they end equal bars loaded at once."""
    from bot4.portfolio.meta import agent_matrix

    (_, loaded), bars = _pair(4, 8)
    live = Coordinator(loaded.lanes, loaded.cfg, loaded.signals, bars[:1], np.array([10**9]), 0)
    x_all, _ = agent_matrix(loaded.signals.outputs)
    regime_all = np.asarray(loaded.signals.outputs[0].regime, np.int64)
    pushed = 1
    rng = np.random.default_rng(2)
    for s in range(30, 290, 3):
        while pushed < s:                                 # bars ending at or before the decision
            live.core.push_bar((pushed + 1) * 10**9, bars[pushed])
            pushed += 1
        pos, mid, pnl = rng.integers(-100, 100, 4), bars[s] * 1.001, rng.normal(0, 10, 4)
        a = loaded.core.step(s * 10**9, pos, mid, pnl, 10_000.0)
        ta, unit_a, chosen_a = a.target, a.unit, a.chosen
        rows = np.array([r[np.searchsorted(t, s * 10**9, side="right") - 1] for t, r in loaded.latest])
        b = live.core.step_agents(s * 10**9, x_all[rows], regime_all[rows], np.ones(4, np.uint8), pos, mid, pnl,
                                  10_000.0)
        np.testing.assert_array_equal(ta, b.target)
        np.testing.assert_array_equal(unit_a, b.unit)
        assert chosen_a == b.chosen
    with pytest.raises(InputError, match="increasing"):
        live.core.push_bar(10**9, bars[0])
