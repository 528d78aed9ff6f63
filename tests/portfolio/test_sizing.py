"""bot4.portfolio.sizing: the safety projection never leaves a hard limit breached (hypothesis),
is idempotent and leaves feasible actions alone; the risk-budget sizer uses the CVaR in the size,
respects lot steps and minimums (skips counted) and the 500 EUR preset."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from bot4.errors import InputError
from bot4.portfolio import sizing as sz
from bot4.portfolio.risk_measures import conservative_cvar, historical, portfolio_cvar

finite = st.floats(-1e7, 1e7, allow_nan=False, allow_infinity=False)


@st.composite
def problems(draw, with_scenarios=None):
    n = draw(st.integers(1, 8))
    equity = draw(st.floats(1.0, 1e6))
    peak = equity * draw(st.floats(1.0, 1.5))
    positions = draw(arrays(np.float64, n, elements=st.floats(-2 * equity, 2 * equity)))
    groups = draw(arrays(np.int64, n, elements=st.integers(0, 2)))
    allow_short = draw(arrays(np.bool_, n))
    scen = None
    if with_scenarios if with_scenarios is not None else draw(st.booleans()):
        scen = draw(arrays(np.float64, (20, n), elements=st.floats(-0.2, 0.2)))
    limits = sz.SizingLimits(
        max_position=draw(st.floats(0.0, 2.0)), max_group_gross=draw(st.floats(0.0, 3.0)),
        max_gross=draw(st.floats(0.0, 4.0)), max_net=draw(st.floats(0.0, 2.0)),
        max_drawdown=draw(st.floats(0.01, 0.5)), max_portfolio_cvar=draw(st.floats(0.0, 0.1)))
    state = sz.PortfolioState(equity, peak, positions, groups, allow_short, scen)
    action = draw(arrays(np.float64, n, elements=st.one_of(finite, st.sampled_from([np.inf, -np.inf, 0.0, -0.0]))))
    return action, state, limits


def _assert_within(a, state, limits):
    """Independent restatement of every hard limit (exact, no tolerance)."""
    eq = state.equity
    cap = limits.max_position * eq
    assert np.all(np.abs(a) <= cap)
    if state.allow_short is not None:
        assert np.all(a[~state.allow_short] >= 0)
    if state.stopped(limits):
        p = state.positions
        assert np.all(np.abs(a) <= np.abs(p)) and np.all(a * p >= 0)
    for g in np.unique(state.groups):
        assert np.abs(a[state.groups == g]).sum() <= limits.max_group_gross * eq
    assert np.abs(a).sum() <= limits.max_gross * eq
    assert abs(a.sum()) <= limits.max_net * eq
    if state.scenarios is not None:
        assert portfolio_cvar(state.scenarios, a, limits.cvar_level) <= limits.max_portfolio_cvar * eq


@settings(max_examples=400, deadline=None)
@given(problems())
def test_projection_never_breaches_a_hard_limit(problem):
    action, state, limits = problem
    a = sz.project(action, state, limits)
    assert np.all(np.isfinite(a))
    _assert_within(a, state, limits)
    assert sz.is_feasible(a, state, limits)
    # never flips a sign, never grows a size
    assert np.all(np.sign(a) * np.sign(action) >= 0)
    assert np.all(np.abs(a) <= np.abs(action))


@settings(max_examples=400, deadline=None)
@given(problems())
def test_the_cores_breach_check_is_the_python_one(problem):
    """sizing.violations_core (the job's breach check with the core step) against violations, on
    arbitrary finite exposures, the positions held and projected actions: which limits are exceeded
    exactly, by how much exactly except the portfolio CVaR's: numpy's scenarios @ exposure sums in
    BLAS's order with fused multiply-adds, the core left to right, so the CVaR excess agrees to
    1e-12 of the scenario P&L's scale (and a zero excess may be a rounding residue on one side)."""
    action, state, limits = problem
    action = np.clip(np.nan_to_num(action), -1e9 * state.equity, 1e9 * state.equity)
    for exposure in (action, state.positions, sz.project(action, state, limits)):
        a, b = sz.violations(exposure, state, limits), sz.violations_core(exposure, state, limits)
        assert list(a) == list(b) == list(sz.LIMIT_NAMES)
        for k in a:
            if k == "risk":
                scale = 1.0 if state.scenarios is None else float(np.abs(state.scenarios).max() * np.abs(exposure).sum())
                assert abs(a[k] - b[k]) <= 1e-12 * max(scale, abs(a[k]), abs(b[k]))
            else:
                assert a[k] == b[k], k


def test_the_cores_breach_check_refuses_bad_arguments():
    from bot4._core.portfolio import violations

    lim = [0.01, 0.5, 1.0, 2.0, 1.0, 0.1, 0.95, 0.02, 0.0005]
    ok = dict(exposure=np.zeros(2), equity=1.0, peak_equity=1.0, positions=np.zeros(2), groups=np.zeros(2, np.int64),
              allow_short=None, scenarios=None, limits=lim)
    assert violations(**ok) == dict.fromkeys(sz.LIMIT_NAMES, 0.0)
    for change, match in (({"exposure": np.zeros(3)}, "exposure"), ({"positions": np.zeros((2, 2))}, "positions"),
                          ({"scenarios": np.zeros((5, 3))}, "scenarios"), ({"limits": lim[:8]}, "limits")):
        with pytest.raises(InputError, match=match):
            violations(**{**ok, **change})


@settings(max_examples=300, deadline=None)
@given(problems())
def test_projection_is_idempotent(problem):
    action, state, limits = problem
    once = sz.project(action, state, limits)
    twice = sz.project_report(once, state, limits)
    assert np.array_equal(twice.action, once)
    assert not twice.changed


@settings(max_examples=300, deadline=None)
@given(problems(), st.floats(0.0, 1.0))
def test_feasible_action_is_unchanged(problem, shrink):
    action, state, limits = problem
    feasible = sz.project(action, state, limits) * shrink  # the feasible set is star-shaped around 0
    assume(sz.is_feasible(feasible, state, limits))
    rep = sz.project_report(feasible, state, limits)
    assert np.array_equal(rep.action, feasible)
    assert rep.binding == ()


def _state(n=3, equity=1000.0, peak=None, positions=None, groups=None, **kw):
    return sz.PortfolioState(equity, equity if peak is None else peak,
                             np.zeros(n) if positions is None else np.asarray(positions, float),
                             np.arange(n) if groups is None else np.asarray(groups), **kw)


def test_projection_hand_cases():
    lim = sz.SizingLimits(max_position=0.5, max_group_gross=0.8, max_gross=1.0, max_net=0.3, max_portfolio_cvar=1.0)
    st_ = _state(groups=[0, 0, 1])
    rep = sz.project_report([900.0, 100.0, -50.0], st_, lim)
    # box: 900 -> 500; group 0: 600 -> 800 cap fine; gross 650 fine; net 550 -> 300 (x 300/550)
    assert rep.binding == ("box", "net")
    np.testing.assert_allclose(rep.action, np.array([500.0, 100.0, -50.0]) * 300 / 550)
    # drawdown stop: reduce-only
    stopped = _state(equity=880.0, peak=1000.0, positions=[200.0, -100.0, 0.0])
    a = sz.project([400.0, 50.0, 10.0], stopped, lim)
    np.testing.assert_array_equal(a, [200.0, 0.0, 0.0])
    with pytest.raises(InputError, match="NaN"):
        sz.project([np.nan, 0.0, 0.0], st_, lim)
    with pytest.raises(InputError, match="shape"):
        sz.project([1.0, 2.0], st_, lim)


def test_limits_and_state_validation():
    with pytest.raises(InputError, match="max_gross"):
        sz.SizingLimits(max_gross=-1.0)
    with pytest.raises(InputError, match="cvar_level"):
        sz.SizingLimits(cvar_level=1.0)
    with pytest.raises(InputError, match="groups"):
        sz.PortfolioState(100.0, 100.0, np.zeros(3), np.zeros(2))
    with pytest.raises(InputError, match="scenarios"):
        sz.PortfolioState(100.0, 100.0, np.zeros(2), np.zeros(2), scenarios=np.full((5, 2), np.nan))
    with pytest.raises(Exception, match="unknown"):
        import msgspec
        msgspec.convert({"risk_per_trade": 0.01, "bogus": 1}, sz.SizingLimits)


def test_cvar_sets_the_size():
    rng = np.random.default_rng(7)
    calm = rng.normal(0, 0.002, 500)
    wild = rng.standard_t(3, 500) * 0.01
    u = np.array([conservative_cvar(calm), conservative_cvar(wild)])
    lim = sz.SizingLimits(risk_per_trade=0.01)
    n = sz.risk_budget_notional([1, -1], u, 500.0, lim)
    # the loss at CVaR_95 of each position is exactly 1% of equity
    np.testing.assert_allclose(np.abs(n) * u, 5.0)
    assert n[0] > 0 > n[1] and abs(n[0]) > abs(n[1])
    assert u[0] >= historical(calm).cvar
    # a wider stop dominates a small CVaR; conviction scales down, never up
    n2 = sz.risk_budget_notional([1, 1], u, 500.0, lim, stop_distance=[0.05, 0.0], scale=[1.0, 3.0])
    assert n2[0] == pytest.approx(5.0 / 0.05) and n2[1] == pytest.approx(5.0 / u[1])
    # a tail with no losses is floored, not sized to infinity
    assert sz.risk_budget_notional([1], [0.0], 500.0, lim)[0] == pytest.approx(5.0 / lim.min_unit_risk)


def test_preset_500_eur_rounds_to_lots_and_skips_below_minimum():
    limits, rules_by = sz.preset_500_eur()
    rules = list(rules_by.values())
    n = len(rules)
    prices = np.array([60000.0, 2500.0, 60000.0, 2500.0, 60000.0, 2500.0])
    fx = 0.92  # EUR per USD(T)
    groups = np.array([0 if r.group == "BTC" else 1 for r in rules])
    state = sz.PortfolioState(500.0, 500.0, np.zeros(n), groups, np.array([r.allow_short for r in rules]))
    direction = np.array([1, 1, 1, -1, 1, -1])
    unit_risk = np.full(n, 0.02)   # 2% CVaR per unit: 5 EUR at risk -> 250 EUR notional each
    dec = sz.size(direction, unit_risk, np.zeros(n), prices, fx, rules, state, limits)
    # spot ETH short is not allowed: projected to 0
    assert dec.targets[3] == 0.0
    # every order is on the lot grid and meets the minimums
    for i, r in enumerate(rules):
        lots = dec.orders[i] / r.lot_step
        assert lots == pytest.approx(round(lots), abs=1e-6)
        if dec.orders[i]:
            assert abs(dec.orders[i]) >= r.min_qty - 1e-12
            assert abs(dec.orders[i]) * r.unit_value(prices[i]) >= r.min_notional - 1e-9
    # rounding is toward zero: never above the projected target
    assert np.all(np.abs(dec.positions) <= np.abs(dec.targets) + 1e-9)
    assert sz.is_feasible(dec.positions, state, limits)
    # the ETH COIN-M contract is 10 USD = 9.2 EUR: whole contracts only
    assert dec.orders[5] == round(dec.orders[5])


def test_trades_below_minimum_are_skipped_and_counted():
    limits, rules_by = sz.preset_500_eur()
    btc = rules_by["BTCUSDT@binance-usdm"]
    state = sz.PortfolioState(500.0, 500.0, np.zeros(1), np.zeros(1))
    # 5 EUR at a 10% CVaR -> 50 EUR notional = 0.0009 BTC: below the 0.001 lot/min -> rounds to 0 lots
    dec = sz.size([1], [0.10], [0.0], [60000.0], 0.92, [btc], state, limits)
    assert dec.orders[0] == 0.0
    # 5 EUR at 4% -> 125 EUR = 0.00226 BTC -> 0.002 BTC = 120 USDT >= 100: traded
    dec = sz.size([1], [0.04], [0.0], [60000.0], 0.92, [btc], state, limits)
    assert dec.orders[0] == pytest.approx(0.002)
    # 0.001 BTC at 60000 is 60 USDT < 100 USDT minimum notional: skipped and counted
    dec = sz.size([1], [0.05], [0.0], [60000.0], 0.92, [btc], state, limits)
    assert dec.orders[0] == 0.0 and dec.counters["skipped_min_notional"] == 1
    small = sz.OrderRules("X", "X", lot_step=0.001, min_qty=0.01)
    dec = sz.size([1], [0.05], [0.0], [1000.0], 1.0, [small], state, limits)   # 100 EUR = 0.1 X fine
    assert dec.orders[0] == pytest.approx(0.1)
    dec = sz.size([1], [0.05], [0.0], [20000.0], 1.0, [small], state, limits)  # 0.005 X < 0.01 min
    assert dec.orders[0] == 0.0 and dec.counters["skipped_min_qty"] == 1


def test_skipped_leg_cannot_leave_a_net_breach():
    # long A and short B hedge each other inside the net limit; B's trade is below its minimum,
    # so A alone would breach net: A is vetoed and counted, the book stays feasible
    lim = sz.SizingLimits(max_position=1.0, max_group_gross=2.0, max_gross=2.0, max_net=0.1, max_portfolio_cvar=1.0)
    rules = [sz.OrderRules("A", "g", lot_step=0.01, min_qty=0.01), sz.OrderRules("B", "g", lot_step=0.01, min_qty=0.01,
                                                                                 min_notional=1e6)]
    state = sz.PortfolioState(1000.0, 1000.0, np.zeros(2), np.zeros(2))
    orders, pos, counters = sz.plan_orders([500.0, -500.0], [0.0, 0.0], [100.0, 100.0], 1.0, rules, state, lim)
    assert counters["skipped_min_notional"] == 1 and counters["vetoed_net"] == 1
    np.testing.assert_array_equal(orders, [0.0, 0.0])
    assert sz.is_feasible(pos, state, lim)


@settings(max_examples=150, deadline=None)
@given(problems(with_scenarios=False), st.data())
def test_sized_book_stays_feasible(problem, data):
    action, state, limits = problem
    n = len(action)
    assume(state.equity > 10)
    prices = data.draw(arrays(np.float64, n, elements=st.floats(0.5, 1e5)))
    rules = [sz.OrderRules(f"i{i}", "g", lot_step=data.draw(st.sampled_from([1e-5, 1e-3, 0.1, 1.0])),
                           min_qty=0.0, min_notional=data.draw(st.sampled_from([0.0, 5.0, 100.0])))
             for i in range(n)]
    unit = np.array([r.unit_value(p) for r, p in zip(rules, prices)])
    lots = np.array([r.lot_step for r in rules])
    # a feasible starting book on the lot grid: project the drawn positions with the stop not yet
    # hit, round toward zero to lots, then keep the drawn peak (which may trigger the stop)
    fresh = sz.PortfolioState(state.equity, state.equity, np.zeros(n), state.groups, state.allow_short)
    start = sz.project(state.positions, fresh, limits)
    q0 = np.trunc(start / unit / lots) * lots
    state = sz.PortfolioState(state.equity, state.peak_equity, q0 * unit, state.groups, state.allow_short)
    assume(sz.is_feasible(state.positions, state, limits))
    targets = sz.project(np.nan_to_num(action, posinf=1e7, neginf=-1e7), state, limits)
    orders, pos, counters = sz.plan_orders(targets, q0, prices, 1.0, rules, state, limits)
    _assert_within(pos, state, limits)
    np.testing.assert_allclose(pos, (q0 + orders) * unit, rtol=1e-9, atol=1e-9)


@pytest.mark.realdata
def test_500_eur_preset_on_six_recorded_binance_instruments(shared_data):
    """Walk the six instruments' 1 s mids with a momentum direction every 5 s, size with the 500
    EUR preset (1% stop, conviction from the momentum score, trailing 5 s return scenarios for the
    portfolio CVaR limit), mark to market, and check every resulting book against every limit."""
    from .binance_mids import binance_mid_bars, momentum_scores

    names, mids = binance_mid_bars(shared_data)
    r = np.diff(np.log(mids), axis=0)
    limits, rules_by = sz.preset_500_eur()
    rules = [rules_by[n] for n in names]
    groups = np.array([0 if r_.group == "BTC" else 1 for r_ in rules])
    shorts = np.array([r_.allow_short for r_ in rules])
    fx = 0.92
    window, every, horizon = 120, 5, 5
    score = momentum_scores(r, 30)
    qty = np.zeros(len(names))
    equity = peak = 500.0
    totals: dict[str, int] = {}
    decisions = 0
    price_prev: np.ndarray | None = None
    unit_prev = np.zeros(len(names))
    for t in range(window, len(r), every):
        price = mids[t]
        unit = np.array([ru.unit_value(p) for ru, p in zip(rules, price)]) * fx
        if price_prev is not None:   # mark to market: each exposure times its price return
            equity += float(np.sum(qty * unit_prev * (price / price_prev - 1.0)))
        peak = max(peak, equity)
        past = r[t - window:t]
        scen = np.lib.stride_tricks.sliding_window_view(past, horizon, axis=0).sum(axis=2)
        state = sz.PortfolioState(equity, peak, qty * unit, groups, shorts, scen)
        unit_risk = np.array([conservative_cvar(scen[:, i]) for i in range(len(names))])
        direction = np.sign(r[t - 30:t].sum(axis=0))
        dec = sz.size(direction, unit_risk, qty, price, fx, rules, state, limits, stop_distance=np.full(len(names), 0.01),
                      scale=np.minimum(1.0, score[t - 1] / 2.0))
        _assert_within(dec.positions, state, limits)
        assert sz.is_feasible(dec.positions, state, limits)
        qty = qty + dec.orders
        equity -= float(np.sum(np.abs(dec.orders) * unit)) * 4e-4     # 4 bp taker fee
        for k, v in dec.counters.items():
            totals[k] = totals.get(k, 0) + v
        decisions += 1
        price_prev, unit_prev = price, unit
    print(f"\n{decisions} decisions, equity {equity:.2f} EUR (peak {peak:.2f}), counters {totals}")
    assert decisions > 40
    assert totals["projections"] > 0 and totals["projected_group"] > 0   # the limits did bite


def test_shrinking_ends_even_where_scaling_by_ulps_changes_nothing():
    """Near subnormal caps a*f does not move when f moves by an ulp (hypothesis found such a case
    in a fresh environment and the ulp-stepping loop ran for ever); the step now doubles, so the
    loop ends at the latest at 0, which every cap admits."""
    stuck = sz._shrink(np.array([1.0, -2.0]), lambda b: 1.0 if np.any(b) else 0.0, 0.5)
    assert np.array_equal(stuck, np.zeros(2))
    a = np.array([8.266545662882853e-300, -3e-300])
    tiny = sz._shrink(a, lambda b: float(np.abs(b).sum()), 4.588857e-322)
    assert float(np.abs(tiny).sum()) <= 4.588857e-322 and np.all(np.sign(tiny) * np.sign(a) >= 0)


def test_sizing_limits_follow_the_core_declaration():
    """SizingLimits is the core's BOT4_PORTFOLIO_LIMIT_FIELDS: the same fields in the same order (the
    order every limits vector crosses the binding in), the same defaults, and each declared bound
    refused just past it and accepted at it (or just inside an exclusive one)."""
    from bot4 import _core
    from bot4.portfolio.core_step import LIMIT_FIELDS

    SizingLimits = sz.SizingLimits
    schema = _core.portfolio.limits_schema()
    assert tuple(f["name"] for f in schema) == tuple(SizingLimits.__struct_fields__) == LIMIT_FIELDS
    defaults = SizingLimits()
    for f in schema:
        name = f["name"]
        assert f["type"] == "float" and getattr(defaults, name) == f["default"], name
        for side, sign in (("min", -1.0), ("max", 1.0)):
            bound = f[side]
            if bound is None:
                continue
            eps = sign * 1e-9
            with pytest.raises(InputError):
                SizingLimits(**{name: bound + (0.0 if f[f"{side}_exclusive"] else eps)})
            inside = bound - eps if f[f"{side}_exclusive"] else bound
            assert getattr(SizingLimits(**{name: inside}), name) == inside
