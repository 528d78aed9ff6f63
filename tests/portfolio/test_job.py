"""The portfolio job (bot4.portfolio.job): end to end on two simulated instruments, the breach
counter, the propensities, venue minimums, and a hypothesis property: whatever the signals
(NaN and inf included), the targets handed to the engine are feasible and every partly filled
combination of the legs released together stays within the limits."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import msgspec
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from bot4.errors import InputError
from bot4.portfolio.agents import AgentOutput
from bot4.portfolio.job import (Coordinator, PortfolioConfig, Signals, lanes_for, portfolio_backtest)
from bot4.portfolio.meta import MetaWeighter
from bot4.portfolio.sizing import LIMIT_NAMES, PortfolioState, SizingLimits, violations
from portfolio.fake_context import FakeContext

CONFIG = dict(horizon=10, corr_window=40, grid_s=1.0, checks_per_step=4, top_k=2)




@pytest.fixture(scope="module")
def market():
    from bot4.data.market_data import merge
    from bot4.sim import generate

    return merge([generate(seed=1, n_events=40_000).as_instrument(1, "AAAUSDT"),
                  generate(seed=2, n_events=40_000).as_instrument(2, "BBBUSDT")])


@pytest.fixture(scope="module")
def job(market):
    return portfolio_backtest(market, PortfolioConfig(epsilon=0.3, seed=3, **CONFIG))


def test_job_runs_within_limits_and_reports_consistent_figures(job):
    j = job.as_json()
    for key in ("instruments", "pnl", "max_drawdown", "limit_breaches", "projections", "risk_budget_used",
                "correlation_before", "correlation_after", "ope", "alternative"):
        assert key in j
    assert set(j["limit_breaches"]) == set(LIMIT_NAMES)
    assert all(v == 0 for v in j["limit_breaches"].values()), j["limit_breaches"]
    assert j["breach_checks"] > 1000
    res = job.main.result
    assert res.fills.size > 0 and j["steps"] > 100
    for d in j["instruments"]:
        assert d["fills"] == int(np.count_nonzero(res.fills["instrument"] == d["instrument"]))
        assert d["max_exposure"] > 0
    assert j["pnl"] == pytest.approx(sum(d["pnl"] for d in j["instruments"]), abs=1e-6)
    # the positions the breach counter saw (fills between decisions) always agreed with the engine's
    assert j["position_mismatch"] == 0
    per = {int(d["instrument"]): int(d["position"]) for d in res.instruments}
    assert [per[i] for i in job.lanes.ids] == job.main.coordinator.pos.tolist()
    assert j["pnl"] == pytest.approx(float(res.equity["total_equity"][-1]))
    # the risk budget wants more than max_position allows on this market: the box projection bites
    assert j["projections"]["steps"] > 0 and j["projections"]["by_limit"]["box"] > 0
    assert set(j["ope"]) == {"ips", "snips", "dr"}
    for e in j["ope"].values():
        assert e["low"] <= e["value"] <= e["high"]
    alt = j["alternative"]
    assert alt["rounds"] > 0 and all(v == 0 for v in alt["limit_breaches"].values())
    assert job.alternative is not None
    assert all(r.propensity == 1.0 and r.action == 2 for r in job.alternative.coordinator.rounds)
    # epsilon = 0.3 over 3 actions: some rounds explored, propensities 0.8 (greedy) or 0.1
    props = {round(r.propensity, 12) for r in job.main.coordinator.rounds}
    assert props <= {0.8, 0.1} and props == {0.8, 0.1}
    assert j["correlation_steps"] == 0 or j["correlation_before"] is not None


def test_report_is_written(job, tmp_path):
    from bot4.portfolio.report import SECTIONS, fill_tca, write_report

    paths = write_report(job, tmp_path / "r")
    text = paths["report"].read_text()
    for sec in SECTIONS:
        assert f"id='{sec}'" in text
    t = fill_tca(job)
    assert len(t["cost_bp"]) + t["unmatched"] == job.main.result.fills.size
    assert t["unmatched"] == 0
    # aggressive fills pay the taker fee: 5 bp in the simulator's default
    assert np.allclose(t["fee_bp"], 5.0, atol=1e-6)


def _coordinator(job, **overrides) -> Coordinator:
    cfg = msgspec.structs.replace(job.config, **overrides)
    c0 = job.main.coordinator
    return Coordinator(job.lanes, cfg, job.signals, np.exp(np.vstack([np.zeros((1, job.lanes.n)),
                                                                        np.cumsum(c0.rets, axis=0)])),
                       c0.bar_ends, job.signals.split_ns[2])


def test_epsilon_zero_logs_propensity_one(job):
    c = _coordinator(job, epsilon=0.0)
    c.mid[:] = 100.0
    t0 = job.signals.split_ns[2]
    for s in range(60):
        c.plan(t0 + s * c.grid)
        c._close_rounds()
    assert c.rounds and all(r.propensity == 1.0 for r in c.rounds)
    assert all(r.action == r.greedy for r in c.rounds)


def test_breach_counter_counts_held_positions_beyond_the_limits(job):
    c = _coordinator(job)
    c.mid[:] = 100.0
    c.check()
    assert all(v == 0 for v in c.breaches.values())
    lots = c.cfg.equity * 0.6 / (100.0 * job.lanes.lot_size[0])     # 60% of equity > max_position 50%
    c.pos[0] = int(lots) + 1
    c.check()
    assert c.breaches["box"] == 1
    c.pos[1] = c.pos[0]                                             # gross 120%, net 120% > 100%
    c.check()
    assert c.breaches["net"] == 1 and c.breaches["box"] == 2


def test_too_small_equity_skips_trades_and_counts_them(market):
    r = portfolio_backtest(market, PortfolioConfig(equity=500.0, min_notional=1000.0, run_alternative=False,
                                                   **CONFIG))
    j = r.as_json()
    assert j["skipped"]["skipped_min_notional"] > 0
    assert r.main.result.fills.size == 0 and j["pnl"] == 0.0
    assert all(v == 0 for v in j["limit_breaches"].values())


def test_config_is_validated():
    with pytest.raises(InputError, match="epsilon"):
        PortfolioConfig(epsilon=1.5)
    with pytest.raises(InputError, match="fractions|agents_fraction"):
        PortfolioConfig(agents_fraction=0.5, meta_fraction=0.3, calibration_fraction=0.2)
    with pytest.raises(InputError, match="unknown field"):
        PortfolioConfig.from_toml("bogus = 1\n")
    with pytest.raises(InputError, match="max_gross"):
        PortfolioConfig.from_toml("[limits]\nmax_gross = -1.0\n")
    c = PortfolioConfig.from_toml("epsilon = 0.1\n[limits]\nmax_net = 0.5\n")
    assert c.epsilon == 0.1 and c.limits.max_net == 0.5 and c.buffered_limits().max_net == pytest.approx(0.45)


def test_inverse_contracts_are_refused():
    spec = SimpleNamespace(symbol="BTCUSD_PERP", venue="binance-coinm", lot_size="1", tick_size="0.1", inverse=True)
    with pytest.raises(InputError, match="inverse"):
        lanes_for({1: spec}, PortfolioConfig())


# -- property: feasible targets whatever the signals ----------------------------------------------

N = 3


def _synthetic(limits: SizingLimits, buffer: float, rows: int = 400):
    rng = np.random.default_rng(0)
    ts = np.repeat(np.arange(rows, dtype=np.int64) * 10**9, N)
    inst = np.tile(np.arange(1, N + 1, dtype=np.uint32), rows)
    outs = []
    for a in range(4):
        mu = rng.normal(0, 2, ts.size)
        sig = np.abs(rng.normal(3, 1, ts.size)) + 0.1
        outs.append(AgentOutput(f"a{a}", "v", 5, ts, inst, mu, sig, np.column_stack([mu - sig, mu, mu + sig]),
                                np.full(ts.size, 0.5), np.zeros(ts.size, np.int64)))
    y = outs[0].mu + rng.normal(0, 3, ts.size)
    meta = MetaWeighter(backend="linear").fit(outs, y, np.arange(ts.size // 2))
    meta.calibrate(outs, y, np.arange(ts.size // 2, ts.size))
    feats = SimpleNamespace(timestamps=ts, instruments=inst)
    sig = Signals(feats, [], outs, meta, (0, 0, 0), {})
    specs = {i: SimpleNamespace(symbol=f"X{i}USDT", venue="binance-usdm", lot_size="0.01", tick_size="0.01",
                                inverse=False) for i in range(1, N + 1)}
    cfg = PortfolioConfig(limits=limits, buffer=buffer, top_k=2, corr_window=30, epsilon=0.2)
    lanes = lanes_for(specs, cfg)
    bars = np.exp(np.cumsum(rng.normal(0, 1e-3, (rows, N)), axis=0)) * 100
    ends = np.arange(1, rows + 1, dtype=np.int64) * 10**9
    return Coordinator(lanes, cfg, sig, bars, ends, 0)


LIMITS = SizingLimits(max_position=0.4, max_group_gross=0.6, max_gross=1.0, max_net=0.5)
COORD = _synthetic(LIMITS, 0.1)
anyfloat = st.floats(allow_nan=True, allow_infinity=True, width=64)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mu=st.lists(anyfloat, min_size=N, max_size=N), sigma=st.lists(anyfloat, min_size=N, max_size=N),
       p=st.lists(anyfloat, min_size=N, max_size=N), pos=st.lists(st.integers(-300, 300), min_size=N, max_size=N),
       mids=st.lists(st.floats(1.0, 1000.0), min_size=N, max_size=N), pnl=st.floats(-500, 500),
       step=st.integers(40, 390))
def test_targets_are_feasible_whatever_the_signals(mu, sigma, p, pos, mids, pnl, step):
    c = COORD
    c.mid[:] = mids
    c.pos[:] = pos
    c.pnl[:] = [pnl, 0.0, 0.0]
    c.peak = c.cfg.equity
    held = c.state()
    assume(all(v == 0 for v in violations(held.positions, held, c.buffered).values()))
    c.blended = lambda ts: (np.array(mu), np.array(sigma), np.array(p))  # type: ignore[method-assign]
    target = c.plan(step * 10**9)
    st_ = PortfolioState(held.equity, held.peak_equity, held.positions, c.lanes.groups, c.lanes.allow_short, c._scen)
    tgt = c.notional(target)
    assert all(v == 0 for v in violations(tgt, st_, c.buffered).values())
    assert all(v == 0 for v in violations(tgt, st_, c.full).values())
    # every partly filled combination of legs released together stays within the buffered limits
    c.released = {}
    legs = {k: c._leg(k) for k in range(N) if c._leg(k) != c.pos[k]}
    if legs and c.transit_ok(legs):
        for corner in itertools.product(*[(int(c.pos[k]), legs.get(k, int(c.pos[k]))) for k in range(N)]):
            x = c.notional(np.array(corner))
            v = violations(x, st_, c.buffered)
            assert all(val <= 1e-9 * held.equity for val in v.values()), (corner, v)




def test_increases_wait_until_the_steps_reductions_have_filled():
    c = _synthetic(LIMITS, 0.1)
    ts = 200 * 10**9
    c.mid[:] = 100.0
    c.pos[:] = [-500, 0, 0]                 # lane 0 short 500 lots = 500 (5% of equity)
    c.step = (ts - c.trade_start) // c.grid  # this step's plan is set by hand below
    c.has_plan = True
    c.target = np.array([-100, 0, 800], np.int64)     # lane 0 reduces, lane 2 increases
    c.released = {}
    late = FakeContext(3, ts, 0)
    c.on_lane(late)
    assert late.intents == [] and c.held_back == 1       # lane 2 waits: lane 0 has not reduced
    first = FakeContext(1, ts + 1, -500)
    c.on_lane(first)
    assert first.intents == [(-100, "aggressive")]
    again = FakeContext(3, ts + 2, 0)
    c.on_lane(again)
    assert again.intents == []                           # still waiting: the reduction has not filled
    c.on_fill(SimpleNamespace(instrument=1, side="buy", qty=400))
    now = FakeContext(3, ts + 3, 0)
    c.on_lane(now)
    assert now.intents == [(800, "aggressive")]


def test_a_sign_flip_goes_through_zero_first():
    c = _synthetic(LIMITS, 0.1)
    ts = 200 * 10**9
    c.mid[:] = 100.0
    c.pos[:] = [300, 0, 0]
    c.step = (ts - c.trade_start) // c.grid
    c.has_plan = True
    c.target = np.array([-300, 0, 0], np.int64)
    c.released = {}
    ctx = FakeContext(1, ts, 300)
    c.on_lane(ctx)
    assert ctx.intents == [(0, "aggressive")]
    c.on_fill(SimpleNamespace(instrument=1, side="sell", qty=300))
    ctx = FakeContext(1, ts + 1, 0)
    c.on_lane(ctx)
    assert ctx.intents == [(-300, "aggressive")]


def test_cli_mistakes_exit_2_with_one_line(tmp_path, capsys, monkeypatch):
    from bot4.cli import main

    def refuse(*a, **k):
        raise AssertionError("data read before the arguments were checked")

    monkeypatch.setattr("bot4.portfolio.job.load_recordings", refuse)
    rec = tmp_path / "btcusdt.gz"
    import gzip

    rec.write_bytes(gzip.compress(b'1723161255030314667 {"stream":"btcusdt@depth@0ms","data":{"e":"depthUpdate",'
                                  b'"E":1723161256299,"T":1723161256298,"s":"BTCUSDT","U":5,"u":7,"pu":4,'
                                  b'"b":[["61496.50","0.010"]],"a":[]}}\n'))
    bad = tmp_path / "bad.toml"
    cases = [(["--data", str(tmp_path / "missing.gz")], "--data"),
             (["--data", str(rec), "--config", str(tmp_path / "none.toml")], "config"),
             (["--data", str(rec), "--config", str(bad)], "epsilon")]
    bad.write_text("epsilon = 2.0\n")
    for argv, word in cases:
        assert main(["portfolio", "backtest", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and word in err, err
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x").write_text("taken")
    assert main(["portfolio", "backtest", "--data", str(rec), "--out", str(tmp_path / "out")]) == 2
    assert "--out" in capsys.readouterr().err
