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
from recordings import data_path, require_recording

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


@pytest.fixture(scope="module")
def job_rl(market):
    return portfolio_backtest(market, PortfolioConfig(epsilon=0.3, seed=3, sizer="rl", **CONFIG))


def test_rl_sizer_is_trained_on_the_first_part_and_compared_on_the_rest(job_rl, tmp_path):
    j = job_rl.as_json()
    s = j["sizer"]
    c = job_rl.main.coordinator
    assert s["kind"] == "rl" and s["train_error"] is None and job_rl.fixed is not None
    # every step before the split was logged with a propensity of the epsilon-greedy multiplier
    logged = [d for d in c.rl_decisions if d.step < c.split_step]
    assert s["logged_decisions"] == len(logged) == c.split_step
    pi_greedy, pi_other = 1 - 0.3 + 0.3 / 5, 0.3 / 5
    assert {round(d.propensity, 12) for d in logged} == {round(pi_greedy, 12), round(pi_other, 12)}
    assert all(np.isfinite(d.reward) for d in logged)
    assert all(v >= 0 for v in s["lambdas"].values())
    steps = np.asarray(c.log.step)
    mult = np.asarray(c.log.multiplier)
    assert set(np.unique(mult)) <= set(c.multipliers)
    # after the split the policy's greedy multiplier sizes every step
    after = steps >= c.split_step
    x = np.array([d.features for d in c.rl_decisions if d.step >= c.split_step])
    assert x.size == 0 or np.array_equal(mult[after][:len(x)], [c.rl_policy.multiplier(r) for r in x])
    ho = s["held_out"]
    assert ho["rl"]["steps"] == ho["fixed"]["steps"] == int(after.sum()) > 20
    assert ho["fixed"]["mean_multiplier"] == 1.0
    for run in (job_rl.main, job_rl.fixed, job_rl.alternative):
        assert all(v == 0 for v in run.coordinator.breaches.values())
    for name in ("rl", "fixed"):
        assert all(v == 0 for v in ho[name]["limit_breaches"].values())
        assert ho[name]["pnl"] <= ho[name]["max_drawdown"] or ho[name]["pnl"] > 0
        assert ho[name]["cvar95_step_pnl"] is not None
    # the fixed run drew the same per-lane actions (the multiplier has its own random stream)
    assert [(r.step, r.lane, r.action) for r in job_rl.main.coordinator.rounds] == \
        [(r.step, r.lane, r.action) for r in job_rl.fixed.coordinator.rounds]
    # the alternative run used the main run's trained policy, never one of its own
    assert job_rl.alternative.coordinator.rl_policy is c.rl_policy and job_rl.alternative.coordinator.rl_train is None
    from bot4.portfolio.report import write_report

    text = write_report(job_rl, tmp_path / "r")["report"].read_text()
    assert "<section id='sizer'><h2>sizer</h2><img" in text


def test_ope_weights_carry_over_the_lanes_last_step(job):
    j = job.as_json()
    assert j["ope_memory"] == 1 and set(j["ope_bandit"]) == {"ips", "snips", "dr"}
    # products of two weights: fewer effective rounds than the bandit weights
    assert j["ope"]["ips"]["ess"] <= j["ope_bandit"]["ips"]["ess"]
    from bot4.portfolio.job import evaluate_alternative

    same = evaluate_alternative(job.main.coordinator.rounds, job.config, job.config.seed, memory=0)
    assert same["dr"].value == j["ope_bandit"]["dr"]["value"]


def test_common_span_is_where_every_instrument_has_book_data():
    from bot4.portfolio.job import common_span

    book = np.zeros(6, dtype=[("ts_local", "i8"), ("instrument", "u4")])
    book["ts_local"] = [10, 20, 30, 40, 50, 60]
    book["instrument"] = [1, 2, 1, 2, 1, 1]       # instrument 2 starts later and ends earlier
    assert common_span(SimpleNamespace(book=book)) == (20, 40)
    assert common_span(SimpleNamespace(book=book[:0])) is None


def test_inverse_lanes_count_face_value_notional():
    """A COIN-M lane's notional is contracts x face value (quote), whatever the price; a linear
    lane's is lots x lot x price."""
    specs = {1: SimpleNamespace(symbol="BTCUSDT", venue="binance-usdm", lot_size="0.001", tick_size="0.1",
                                inverse=False),
             201: SimpleNamespace(symbol="BTCUSD_PERP", venue="binance-coinm", lot_size="1", tick_size="0.1",
                                  inverse=True, contract_size="100")}
    lanes = lanes_for(specs, PortfolioConfig())
    assert lanes.inverse.tolist() == [False, True] and lanes.contract_size.tolist() == [1.0, 100.0]
    assert lanes.rules[1].inverse and lanes.rules[1].contract_size == 100.0 and lanes.rules[1].group == "BTC"
    assert lanes.group_names == ["BTC"]
    np.testing.assert_allclose(lanes.unit_value(np.array([60_000.0, 60_000.0])), [60_000.0, 100.0])
    np.testing.assert_allclose(lanes.unit_value(np.array([30_000.0, 90_000.0])), [30_000.0, 100.0])
    # the 500 EUR preset's COIN-M rules agree with the recording's spec; a different face value is refused
    lanes_for(specs, PortfolioConfig(preset="500eur"))
    bad = dict(specs)
    bad[201] = SimpleNamespace(**{**vars(specs[201]), "contract_size": "10"})
    with pytest.raises(InputError, match="contract_size"):
        lanes_for(bad, PortfolioConfig(preset="500eur"))
    # a linear contract with a multiplier (CME ES, 50 USD per point) is refused, not sized as 1
    es = {7: SimpleNamespace(symbol="ESH4", venue="glbx", lot_size="1", tick_size="0.25", inverse=False,
                             contract_size="50")}
    with pytest.raises(InputError, match="multiplier"):
        lanes_for(es, PortfolioConfig())


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


# -- real data: Binance USD-M and spot BTCUSDT and ETHUSDT recorded together ----------------------

LINEAR = ["usdm/btcusdt_20240808.gz", "usdm/ethusdt_20240808.gz", "spot/btcusdt_20240808.gz",
          "spot/btcusdt_20240809.gz", "spot/ethusdt_20240808.gz", "spot/ethusdt_20240809.gz"]
#: the four instruments overlap for ~345 s (USD-M ends first): a 10 s horizon keeps >= 100
#: labelled rows in every training slice
REAL = dict(horizon=10, calibration_fraction=0.15, corr_window=60, penalty=10.0, sizer="rl")


@pytest.mark.realdata
def test_job_on_four_recorded_binance_instruments():
    from bot4.portfolio.job import load_recordings

    from bot4.portfolio.job import common_span

    files = [require_recording(data_path("binance_hftbacktest", f)) for f in LINEAR]
    data = load_recordings(files)
    span = common_span(data)
    ends = {int(i): int(data.book["ts_local"][data.book["instrument"] == i].max()) for i in (1, 2, 101, 102)}
    assert span[1] == min(ends[1], ends[2]) < min(ends[101], ends[102]) - 200 * 10**9   # USD-M ends ~5 min first
    r = portfolio_backtest(data, PortfolioConfig(**REAL))
    j = r.as_json()
    print(f"\n{ {k: j[k] for k in ('pnl', 'max_drawdown', 'correlation_before', 'correlation_after', 'steps')} }")
    print(j["sizer"]["held_out"])
    assert [d["symbol"] for d in j["instruments"]] == ["BTCUSDT@binance-usdm", "ETHUSDT@binance-usdm",
                                                         "BTCUSDT@binance-spot", "ETHUSDT@binance-spot"]
    assert j["kill_reason"] == "none" and j["position_mismatch"] == 0
    assert j["steps"] > 100 and j["breach_checks"] > 1000
    for run in (r.main, r.fixed, r.alternative):
        assert all(v == 0 for v in run.coordinator.breaches.values())
    assert all(v == 0 for v in j["limit_breaches"].values())
    # both venues traded within the common span (no lane filled on a book whose data had ended)
    assert all(d["fills"] > 0 for d in j["instruments"])
    assert int(r.main.result.fills["ts"].max()) <= span[1]
    assert j["correlation_steps"] > 50
    assert j["correlation_after"] <= j["correlation_before"]
    s = j["sizer"]
    assert s["train_error"] is None and s["logged_decisions"] > 30
    for name in ("rl", "fixed"):
        h = s["held_out"][name]
        assert h["steps"] > 30 and all(v == 0 for v in h["limit_breaches"].values())
    assert j["alternative"]["rounds"] > 0 and set(j["ope"]) == {"ips", "snips", "dr"}


MIXED = ["usdm/btcusdt_20240808.gz", "spot/btcusdt_20240808.gz", "spot/btcusdt_20240809.gz",
         "coinm/btcusd_perp_20240808.gz", "coinm/ethusd_perp_20240808.gz"]


@pytest.mark.realdata
def test_job_on_coin_margined_usd_margined_and_spot_recordings():
    """COIN-M lanes trade beside USD-M and spot: zero breaches, notionals in contracts x face value,
    and each COIN-M lane's P&L is the inverse formula over its fills converted at one mid."""
    from fractions import Fraction

    from bot4.portfolio.job import load_recordings

    data = load_recordings([require_recording(data_path("binance_hftbacktest", f)) for f in MIXED])
    r = portfolio_backtest(data, PortfolioConfig(**{**REAL, "sizer": "fixed"}))
    j = r.as_json()
    print(f"\n{ {k: j[k] for k in ('pnl', 'max_drawdown', 'correlation_before', 'correlation_after', 'steps')} }")
    for d in j["instruments"]:
        print(d)
    assert [d["symbol"] for d in j["instruments"]] == ["BTCUSDT@binance-usdm", "BTCUSDT@binance-spot",
                                                         "BTCUSD_PERP@binance-coinm", "ETHUSD_PERP@binance-coinm"]
    assert j["kill_reason"] == "none" and j["position_mismatch"] == 0 and j["steps"] > 100
    for run in (r.main, r.alternative):
        assert all(v == 0 for v in run.coordinator.breaches.values())
    assert all(v == 0 for v in j["limit_breaches"].values())
    assert j["pnl"] == pytest.approx(sum(d["pnl"] for d in j["instruments"]), rel=1e-9, abs=1e-9)
    res = r.main.result
    for d in j["instruments"][2:]:
        spec = data.specs[d["instrument"]]
        face, tick = float(spec.contract_size), float(spec.tick_size)
        assert d["fills"] > 0 and 0 < d["max_exposure"] <= r.config.limits.max_position * r.config.equity
        assert d["max_exposure"] / face == pytest.approx(round(d["max_exposure"] / face))  # whole contracts
        f = res.fills[(res.fills["instrument"] == d["instrument"]) & (res.fills["accepted"] == 1)]
        signed = np.where(f["side"] == 0, 1, -1) * f["qty"]
        np.testing.assert_allclose(f["fee"], f["qty"] * face / (f["price"] * tick)
                                   * np.where(f["maker"] == 1, 2.0, 5.0) * 1e-4, rtol=1e-12)
        s = next(x for x in res.instruments if x["instrument"] == d["instrument"])
        assert s["position"] == int(signed.sum())
        # the mid the coin amounts were converted at, from the fees; then the whole P&L at that mid
        fees = float(f["fee"].sum())
        mid = s["fees"] / fees / tick
        assert f["price"].min() * 0.99 < mid < f["price"].max() * 1.01
        coin = Fraction(face) / Fraction(tick) * (sum(Fraction(int(q), int(p)) for q, p in zip(signed, f["price"]))
                                                  - (Fraction(s["position"]) / Fraction(mid) if s["position"] else 0))
        assert s["pnl"] == pytest.approx((float(coin) - fees) * mid * tick, rel=1e-9, abs=1e-9)
