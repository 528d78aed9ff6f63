"""bot4.portfolio.rl_sizer: whatever a policy emits (NaN, inf, negative, huge multipliers or
base sizes), the executed exposure satisfies every hard limit and bad values are counted; the
Lagrange multipliers rise while a constraint is violated and never go negative; on a synthetic
market whose sign is predictable from a feature the learned sizer beats the fixed one out of
sample (replay and off-policy estimate); on recorded Binance data the comparison is reported and
the safety invariants hold."""

from __future__ import annotations

import json

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from bot4.errors import InputError
from bot4.portfolio import rl_sizer as rl
from bot4.portfolio import sizing as sz

from .test_sizing import _assert_within, problems

any_float = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([np.nan, np.inf, -np.inf, -1.0, 0.0]))


@pytest.mark.parametrize("safe_exposure", [rl.safe_exposure, rl.safe_exposure_core], ids=["python", "core"])
@settings(max_examples=400, deadline=None)
@given(problems(), any_float, st.data())
def test_no_projected_action_breaches_a_hard_limit_whatever_the_policy_emits(safe_exposure, problem, multiplier,
                                                                              data):
    """The safety layer, Python reference and the core's (what the core portfolio step runs)."""
    _, state, limits = problem
    n = len(state.positions)
    base = data.draw(arrays(np.float64, n, elements=any_float))
    counters: dict[str, int] = {}
    sa = safe_exposure(multiplier, base, state, limits, counters)
    a = sa.projection.action
    assert np.all(np.isfinite(a))
    _assert_within(a, state, limits)
    assert sz.is_feasible(a, state, limits)
    assert 0.0 <= sa.multiplier <= rl.MULTIPLIERS[-1]
    # every bad value is counted, none passes through
    m = float(multiplier)
    assert counters.get("rejected_nan_multiplier", 0) == int(np.isnan(m))
    assert counters.get("clipped_multiplier", 0) == int(not np.isnan(m) and not 0.0 <= m <= rl.MULTIPLIERS[-1])
    assert counters.get("rejected_base", 0) == int((~np.isfinite(base)).sum())
    assert np.all(np.isfinite(sa.proposal))
    with np.errstate(over="ignore", invalid="ignore"):
        raw = sa.multiplier * np.where(np.isfinite(base), base, 0.0) * state.equity
    assert counters.get("clipped_proposal", 0) == int((np.abs(raw) > rl.MAX_PROPOSAL * state.equity).sum())
    if np.isnan(m):
        assert np.all(a == 0.0)
    # breaches before projection are exactly what the projection had to fix
    assert bool(sa.breached) == (not sz.is_feasible(sa.proposal, state, limits))
    if sa.breached:
        assert sa.projection.changed


@settings(max_examples=400, deadline=None)
@given(problems(), any_float, st.data())
def test_the_cores_safety_layer_is_the_python_one(problem, multiplier, data):
    """Counters, multiplier, proposal, breached and binding limits exactly; the projected action
    bit for bit unless the portfolio CVaR limit bit (then to 1e-12 relative)."""
    _, state, limits = problem
    base = data.draw(arrays(np.float64, len(state.positions), elements=any_float))
    c_py: dict[str, int] = {}
    c_core: dict[str, int] = {}
    a = rl.safe_exposure(multiplier, base, state, limits, c_py)
    b = rl.safe_exposure_core(multiplier, base, state, limits, c_core)
    assert c_py == c_core
    assert (a.multiplier, a.breached, a.projection.binding) == (b.multiplier, b.breached, b.projection.binding)
    np.testing.assert_array_equal(a.proposal, b.proposal)
    # the portfolio CVaR's scale factor comes from sums in another order: a few ulps (both feasible)
    np.testing.assert_allclose(b.projection.action, a.projection.action, rtol=1e-12, atol=0)
    if "risk" not in a.projection.binding:
        np.testing.assert_array_equal(a.projection.action, b.projection.action)


def test_the_cores_safety_layer_refuses_bad_arguments():
    from bot4._core.portfolio import safe_exposure

    lim = [0.01, 0.5, 1.0, 2.0, 1.0, 0.1, 0.95, 0.02, 0.0005]
    ok = dict(multiplier=1.0, base=np.zeros(2), equity=1.0, peak_equity=1.0, positions=np.zeros(2),
              groups=np.zeros(2, np.int64), allow_short=None, scenarios=None, limits=lim, max_multiplier=1.5)
    assert safe_exposure(**ok)["binding"] == ()
    for change, match in (({"base": np.zeros(3)}, "base"), ({"groups": np.zeros(1, np.int64)}, "groups"),
                          ({"allow_short": [True]}, "allow_short"), ({"scenarios": np.zeros((5, 3))}, "scenarios"),
                          ({"limits": lim[:8]}, "limits"), ({"max_multiplier": np.nan}, "max_multiplier")):
        with pytest.raises(InputError, match=match):
            safe_exposure(**{**ok, **change})


@st.composite
def policies_and_logs(draw):
    """Small logs with arbitrary finite base sizes (up to 1e6 x equity), returns and scenarios,
    random limits, and a policy whose parameters may be anything (NaN, inf, huge)."""
    n, k = draw(st.integers(2, 12)), draw(st.integers(1, 4))
    fin = st.floats(-1e6, 1e6, allow_nan=False)
    base = draw(arrays(np.float64, (n, k), elements=fin))
    returns = draw(arrays(np.float64, (n, k), elements=st.floats(-0.5, 0.5)))
    scen = draw(st.one_of(st.none(), arrays(np.float64, (n, 20, k), elements=st.floats(-0.2, 0.2))))
    x = draw(arrays(np.float64, (n, 2), elements=fin))
    t0 = np.arange(n, dtype=np.int64)
    d = rl.LoggedDecisions(x, ("x", "y"), base, returns, np.zeros(n, np.int64), np.full(n, 0.5), np.zeros(n),
                           np.ones(n), np.ones(n), t0, t0, draw(arrays(np.int64, k, elements=st.integers(0, 2))),
                           draw(arrays(np.bool_, k)), scen, cost_rate=draw(st.floats(0.0, 0.01)))
    limits = sz.SizingLimits(
        max_position=draw(st.floats(0.0, 2.0)), max_group_gross=draw(st.floats(0.0, 3.0)),
        max_gross=draw(st.floats(0.0, 4.0)), max_net=draw(st.floats(0.0, 2.0)),
        max_drawdown=draw(st.floats(0.01, 0.5)), max_portfolio_cvar=draw(st.floats(0.0, 0.1)))
    theta = draw(arrays(np.float64, (len(rl.MULTIPLIERS), 3), elements=any_float))
    policy = rl.SoftmaxPolicy(theta, np.zeros(2), np.ones(2))
    return d, limits, policy


@settings(max_examples=150, deadline=None)
@given(policies_and_logs())
def test_every_executed_action_of_any_policy_is_within_every_hard_limit(case):
    d, limits, policy = case
    res = rl.replay(d, limits, policy)
    eq_before = np.concatenate([[1.0], res.equity[:-1]])
    peak_before = np.maximum.accumulate(eq_before)
    assert np.all(np.isfinite(res.exposures)) and np.all(np.isfinite(res.returns))
    for i in range(d.n):
        state = d.state(i, float(eq_before[i]), float(peak_before[i]))
        _assert_within(res.exposures[i], state, limits)
    bad = ~np.all(np.isfinite(policy.probs(d.features)), axis=1)
    assert res.counters["rejected_nan_multiplier"] == int(bad.sum())


def test_policy_probabilities_do_not_depend_on_the_batch():
    """CI's falsifying example (theta 3.87e302 on a feature of -464285, at the edge of overflow):
    replay, which scores one row at a time, counted a NaN the batched probs did not show; a BLAS
    matmul may sum in an order of its own per batch shape. Each row gives the same bits alone or
    batched."""
    rng = np.random.default_rng(0)
    theta = np.full((len(rl.MULTIPLIERS), 3), 3.8719604e302)
    x = np.array([[-464285.0, 0.0], [0.0, 0.0]])
    for th in (theta, rng.normal(size=(len(rl.MULTIPLIERS), 3)) * 1e3):
        pol = rl.SoftmaxPolicy(th, np.zeros(2), np.ones(2))
        batch = pol.probs(x)
        alone = np.vstack([pol.probs(row) for row in x])
        np.testing.assert_array_equal(batch, alone)
    many = rng.normal(size=(257, 2)) * 1e2
    pol = rl.SoftmaxPolicy(rng.normal(size=(len(rl.MULTIPLIERS), 3)), np.zeros(2), np.ones(2))
    np.testing.assert_array_equal(pol.probs(many), np.vstack([pol.probs(r) for r in many]))


def test_a_policy_with_non_finite_parameters_is_rejected_and_counted_not_traded():
    d = _synthetic(200)
    bad = rl.SoftmaxPolicy(np.full((5, d.features.shape[1] + 1), np.nan), np.zeros(d.features.shape[1]),
                           np.ones(d.features.shape[1]))
    lim = _limits()
    res = rl.replay(d, lim, bad)
    assert res.counters["rejected_nan_multiplier"] == d.n
    assert np.all(res.returns == 0.0) and res.projections == 0


def _limits(**kw) -> sz.SizingLimits:
    return sz.SizingLimits(**{"max_position": 1.0, "max_group_gross": 1.0, "max_gross": 2.0, "max_net": 1.0,
                              "max_drawdown": 0.5, **kw})


def _synthetic(n: int, seed: int = 0, epsilon: float = 0.5) -> rl.LoggedDecisions:
    """Two instruments; the fixed sizer trades a random direction at 0.4 of equity each; the
    return of that trade has the sign of feature f, so the best multiplier is 1.5 (projected by
    the net limit when both trades agree) where f > 0 and 0 where f < 0."""
    rng = np.random.default_rng(seed)
    f = rng.normal(size=n)
    direction = np.sign(rng.normal(size=(n, 2)))
    base = 0.4 * direction
    returns = direction * (0.002 * f)[:, None] + 0.002 * rng.normal(size=(n, 2))
    t0 = np.arange(n, dtype=np.int64) * 10**9
    x = np.column_stack([f, rng.normal(size=n)])
    return rl.log_decisions(x, ("f", "noise"), base, returns, t0, t0 + 10**9 - 1, np.array([0, 1]), _limits(),
                            cost_rate=1e-4, epsilon=epsilon, seed=seed)


def test_learned_sizer_beats_the_fixed_sizer_out_of_sample_on_a_market_with_a_known_optimum():
    d = _synthetic(3000)
    cfg = rl.RLSizerConfig(exposure_budget=10.0, cvar_budget=1.0, projection_budget=1.0)
    out = rl.compare(d, _limits(), cfg)
    fixed, learned = out["fixed"], out["learned"]
    # the fixed sizer has no edge (random directions); the learned one sizes by the feature
    assert learned["mean_return"] > fixed["mean_return"] + 3e-4
    assert learned["sharpe"] > fixed["sharpe"] + 0.3
    assert learned["max_drawdown"] < fixed["max_drawdown"]
    truth = out["true_value_at_logged_states"]
    assert truth["learned"] > truth["fixed"] + 3e-4
    dr = out["ope"]["dr"]
    assert dr["low"] <= truth["learned"] <= dr["high"]          # the off-policy estimate covers the truth
    assert dr["low"] > truth["fixed"]                           # and separates the two policies
    # the known optimum: size up where f > 0, stay out where f < 0
    te = d.subset(rl.chronological_split(d)[1])
    g = np.asarray(te.multipliers)[rl.train(d.subset(rl.chronological_split(d)[0]), _limits(), cfg).policy.greedy(te.features)]
    f = te.features[:, 0]
    assert np.mean(g[f > 0.5] >= 1.0) > 0.9 and np.mean(g[f < -0.5] == 0.0) > 0.9


def test_multipliers_rise_while_a_constraint_is_violated_and_never_go_negative():
    d = _synthetic(1500)
    tight = rl.train(d, _limits(), rl.RLSizerConfig(exposure_budget=0.1, cvar_budget=1.0, projection_budget=1.0))
    lam, c = tight.lambdas, tight.constraint_values
    assert np.all(lam >= 0)
    viol = c[:, 0] > 0.1
    assert viol[0]                                                   # the logger's exposure is ~0.8
    rises = np.diff(lam[:, 0])[viol]
    assert np.all(rises > 0)                                         # rises at every violated step
    assert np.all(np.diff(lam[:, 0])[~viol] <= 0)                   # and falls (to 0 at most) while met
    assert lam[-1, 0] > 0                                            # active at the end: the budget binds
    assert abs(c[-1, 0] - 0.1) < 0.02                                # the exposure settles at the budget
    # slack constraints keep a zero multiplier
    assert np.all(lam[:, 1] == 0) and np.all(lam[:, 2] == 0)
    # the tail budget: CVaR_95 of the per-decision loss <= 5 bp of equity (the logger's is ~34 bp)
    tail = rl.train(d, _limits(), rl.RLSizerConfig(exposure_budget=10.0, cvar_budget=5e-4, projection_budget=1.0,
                                                   epochs=40))
    lam, c = tail.lambdas[:, 1], tail.constraint_values[:, 1]
    assert np.all(lam >= 0) and c[0] > 5e-4
    assert np.all(np.diff(lam)[c > 5e-4] > 0) and np.all(np.diff(lam)[c <= 5e-4] <= 0)
    assert c[-1] <= 5e-4
    slack = rl.train(d, _limits(), rl.RLSizerConfig(exposure_budget=100.0, cvar_budget=1.0, projection_budget=1.0,
                                                    epochs=10))
    assert np.all(slack.lambdas == 0)


def test_the_projection_constraint_makes_the_policy_lean_less_on_the_safety_layer():
    d = _synthetic(1500)
    free = rl.train(d, _limits(), rl.RLSizerConfig(exposure_budget=10.0, cvar_budget=1.0, projection_budget=1.0))
    held = rl.train(d, _limits(), rl.RLSizerConfig(exposure_budget=10.0, cvar_budget=1.0, projection_budget=0.02))
    assert free.constraint_values[0, 2] > 0.02 and held.lambdas[1, 2] > 0     # violated at first: the multiplier rose
    assert np.all(free.lambdas[:, 2] == 0)
    assert held.constraint_values[-1, 2] <= 0.02 < free.constraint_values[-1, 2]
    big = len(rl.MULTIPLIERS) - 1                                              # 1.5: projected by net when trades agree
    assert np.sum(held.policy.greedy(d.features) == big) < np.sum(free.policy.greedy(d.features) == big)


def test_ridge_selection_is_off_policy_and_inside_the_training_rows():
    d = _synthetic(2000)
    cfg = rl.RLSizerConfig(exposure_budget=10.0, cvar_budget=1.0, projection_budget=1.0)
    l2, scores = rl.select_l2(d, _limits(), cfg, (1e-2, 3.0))
    # a ridge of 3 flattens the scores and the intercepts pick one action everywhere: worse here
    assert [s["l2"] for s in scores] == [1e-2, 3.0] and l2 == 1e-2
    assert scores[0]["score"] > scores[1]["score"]
    # a budget no candidate meets (one dual step leaves the policy near uniform): the least excess wins
    short = msgspec.structs.replace(cfg, exposure_budget=1e-6, epochs=1)
    l2, scores = rl.select_l2(d, _limits(), short, (1e-2, 3.0))
    assert all(s["budget_excess"] > 0 for s in scores)
    assert l2 == min(scores, key=lambda s: s["budget_excess"])["l2"]
    with pytest.raises(InputError, match="grid"):
        rl.select_l2(d, _limits(), cfg, ())


def test_bad_logs_are_refused_with_the_argument_named():
    d = _synthetic(50)
    with pytest.raises(InputError, match="pscore"):
        rl.LoggedDecisions(**{**d.__dict__, "pscore": np.zeros(d.n)})
    feats = d.features.copy()
    feats[3, 0] = np.nan
    with pytest.raises(InputError, match="features"):
        rl.LoggedDecisions(**{**d.__dict__, "features": feats})
    with pytest.raises(InputError, match="action"):
        rl.LoggedDecisions(**{**d.__dict__, "action": np.full(d.n, 7)})
    with pytest.raises(InputError, match="epsilon"):
        rl.log_decisions(d.features, ("a", "b", "c", "d"), d.base, d.returns, d.t0, d.t1, d.groups, _limits(),
                         epsilon=0.0)


def test_rows_after_the_loggers_drawdown_stop_are_counted_and_left_out():
    rng = np.random.default_rng(3)
    n = 400
    base = np.full((n, 1), 0.5)
    returns = 0.002 * rng.normal(size=(n, 1))
    t0 = np.arange(n, dtype=np.int64)
    lim = _limits(max_drawdown=0.1)
    d = rl.log_decisions(rng.normal(size=(n, 1)), ("x",), base, returns, t0, t0, np.array([0]), lim,
                         cost_rate=1e-3, epsilon=0.3)      # 10 bp per round trip at half equity: the stop comes
    assert 0 < d.dropped_stopped < n and d.n == n - d.dropped_stopped
    assert np.all(d.features[:, d.names.index("drawdown")] < 0.1)
    np.testing.assert_allclose(d.features[:, d.names.index("drawdown")], 1.0 - d.equity / d.peak, atol=1e-15)
    with pytest.raises(InputError, match="names"):
        rl.log_decisions(np.zeros((n, 1)), ("drawdown",), base, returns, t0, t0, np.array([0]), lim)


def test_chronological_split_purges_training_labels_that_reach_the_test_span():
    d = _synthetic(100)
    d = rl.LoggedDecisions(**{**d.__dict__, "t1": d.t0 + 3 * 10**9})       # labels span 3 decisions
    train, test = rl.chronological_split(d, 0.3)
    assert test[0] == 70 and len(test) == 30
    assert train.max() == 66                                               # 67..69 reach row 70's time
    assert np.all(d.t1[train] < d.t0[test[0]])


# ----------------------------------------------------------------------------------------------
# recorded data

GRID = (1e-3, 1e-2, 0.1, 1.0)
FILES = {
    "BTCUSDT@binance-usdm": "usdm/btcusdt_20240808.gz",
    "ETHUSDT@binance-usdm": "usdm/ethusdt_20240808.gz",
    "BTCUSDT@binance-spot": "spot/btcusdt_20240808.gz",
    "ETHUSDT@binance-spot": "spot/ethusdt_20240808.gz",
}


def binance_decisions(root, step_ns: int = 500_000_000, cost_rate: float = 1e-4, epsilon: float = 0.3,
                      seed: int = 0) -> tuple[rl.LoggedDecisions, sz.SizingLimits]:
    """Logged decisions on four recorded Binance instruments: feature rows every `step_ns` from
    bot4.features.compute, a micro-price direction with OFI conviction, risk-budget base sizes
    (500 EUR preset limits, CVaR_95 of trailing horizon returns, 1% stop), trailing return scenarios
    for the portfolio CVaR limit, held for one step (forward mid return to the next row)."""
    from bot4.data import load
    from bot4.features import compute, trading_config
    from bot4.portfolio.risk_measures import conservative_cvar

    cfg = trading_config(decision="time", decision_interval_ns=step_ns)
    sets = [compute(load([root / "binance_hftbacktest" / f], progress=False), cfg, progress=False)
            for f in FILES.values()]
    common = sets[0].timestamps
    for fs in sets[1:]:
        common = np.intersect1d(common, fs.timestamps)

    def col(name: str) -> np.ndarray:
        return np.column_stack([fs.column(name)[np.searchsorted(fs.timestamps, common)] for fs in sets])

    mid, micro, ofi, vol, spread = (col(c) for c in ("mid_price", "microprice_offset", "ofi_l1_norm", "ewma_vol",
                                                       "spread_ticks"))
    fwd = mid[1:] / mid[:-1] - 1.0
    limits, rules = sz.preset_500_eur()
    groups = np.array([0 if rules[s].group == "BTC" else 1 for s in FILES])
    shorts = np.array([rules[s].allow_short for s in FILES])
    warm, scen_len = 120, 60
    rows = []
    for t in range(warm, len(common) - 1):
        past = fwd[t - warm:t]
        if not (np.all(np.isfinite(past)) and np.all(np.isfinite(micro[t])) and np.all(np.isfinite(ofi[t]))
                and np.all(np.isfinite(vol[t])) and np.all(np.isfinite(fwd[t]))):
            continue
        direction = np.sign(micro[t])
        unit_risk = np.array([conservative_cvar(past[:, j]) for j in range(len(FILES))])
        base = sz.risk_budget_notional(direction, unit_risk, 1.0, limits, stop_distance=np.full(len(FILES), 0.01),
                                       scale=np.minimum(1.0, np.abs(ofi[t]) / 2.0))
        state = [np.mean(np.abs(ofi[t])), np.mean(vol[t]), np.mean(spread[t]), abs(np.mean(direction))]
        rows.append((t, state, base, fwd[t], past[-scen_len:]))
    idx = np.array([r[0] for r in rows])
    decisions = rl.log_decisions(
        np.array([r[1] for r in rows]), ("abs_ofi", "ewma_vol", "spread_ticks", "agreement"),
        np.array([r[2] for r in rows]), np.array([r[3] for r in rows]), common[idx], common[idx + 1] - 1, groups,
        limits, allow_short=shorts, scenarios=np.array([r[4] for r in rows]), cost_rate=cost_rate, epsilon=epsilon,
        seed=seed)
    return decisions, limits


@pytest.mark.realdata
def test_rl_sizer_on_four_recorded_binance_instruments(shared_data):
    """Held-out comparison on recorded data (printed), with the safety invariants checked on every
    executed action of both policies."""
    d, limits = binance_decisions(shared_data)
    assert d.n > 400
    out = rl.compare(d, limits, rl.RLSizerConfig(), test_fraction=0.3, l2_grid=GRID)
    print("\n" + json.dumps(out, indent=1))
    assert out["l2"] in GRID and len(out["l2_selection"]) == len(GRID)
    tr_idx, te_idx = rl.chronological_split(d, 0.3)
    te = d.subset(te_idx)
    res = rl.train(d.subset(tr_idx), limits, rl.RLSizerConfig(l2=out["l2"]))
    assert np.all(res.lambdas >= 0)
    counters: dict[str, int] = {}
    for policy in (res.policy, 1.0):
        equity = peak = 1.0
        for i in range(te.n):
            state = te.state(i, equity, peak)
            m = policy.multiplier(te.features[i]) if isinstance(policy, rl.SoftmaxPolicy) else policy
            sa = rl.safe_exposure(m, te.base[i], state, limits, counters)
            _assert_within(sa.projection.action, state, limits)
            equity *= 1.0 + rl.reward_of(sa.projection.action / equity, te.returns[i], te.cost_rate)
            peak = max(peak, equity)
    assert not counters.get("rejected_nan_multiplier") and not counters.get("rejected_base")
    for name in ("fixed", "learned"):
        m = out[name]
        assert m["decisions"] == out["test_rows"] and np.isfinite(m["mean_return"]) and 0 <= m["max_drawdown"] < 1
    # the 500 EUR preset's limits bite on the fixed sizer's proposals (per-instrument caps, net)
    assert out["fixed"]["projections"] > 0


def test_cancelling_exposures_at_a_zero_cvar_limit_breach_alike():
    """Found by the property above in CI: exposures that cancel to a few ulps of P&L against a
    portfolio CVaR limit of 0. The Python reference summed each scenario's P&L with BLAS (its own
    order) and saw a breach the core, summing in instrument order, did not; both now sum alike."""
    n = 4
    state = sz.PortfolioState(equity=1.0, peak_equity=1.0, positions=np.zeros(n), groups=np.zeros(n, dtype=np.int64),
                               allow_short=np.zeros(n, dtype=bool), scenarios=np.full((20, n), 0.125))
    limits = sz.SizingLimits(risk_per_trade=0.01, max_position=0.0, max_group_gross=0.0, max_gross=0.0, max_net=0.0,
                              max_drawdown=0.5, cvar_level=0.95, max_portfolio_cvar=0.0, min_unit_risk=0.0005)
    for base in ([1.000000675767442, -4294970199.399064, 2147485099.1995316, 2147485099.1995316],
                 [-4294970132.866168, 1.000000660276545, 2147485065.9330835, 2147485065.9330835]):
        a = rl.safe_exposure(1.0, np.array(base), state, limits, {})
        b = rl.safe_exposure_core(1.0, np.array(base), state, limits, {})
        assert (a.breached, a.projection.binding) == (b.breached, b.projection.binding)
        assert "risk" not in a.breached
