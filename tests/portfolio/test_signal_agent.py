"""Signal agents in the core (bot4._core.portfolio.SignalAgent; core/portfolio/signal_agent.hpp):
parity with the Python reference `predict` of each built-in agent on simulator features (NaN rows
and regimes included), the per-row path equal to the matrix loop bit for bit, hypothesis rows with
undefined inputs, and refused parameters.

Tolerance of the parity: the quantiles are x . w + b; numpy evaluates `X @ W.T` with BLAS (its
own summation order and fused multiply-adds), the core sums left to right, so the two agree to a
few ulps, not bit for bit; the normal CDF of the confidence (std::erf against scipy's cephes erf)
likewise. Everything else (the NaN pattern, the regimes, the mapping order) is exact."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot4.errors import InputError
from bot4.features import FeatureSet, compute, trading_config
from bot4.portfolio import agents as ag

RTOL = 1e-12     # relative, on values of order 1-100 bp: a few ulps of BLAS reordering
ATOL = 1e-12     # near-zero quantiles (a sum of terms that cancel)
FIELDS = ("mu", "sigma", "quantiles", "confidence")


@pytest.fixture(scope="module")
def sim_features() -> FeatureSet:
    from bot4.sim import generate

    return compute(generate(seed=11, n_events=25_000), trading_config(decision="time"))


@pytest.fixture(scope="module")
def fitted(sim_features):
    fs = sim_features
    train = np.arange(len(fs.timestamps) // 2 - 20)
    return [a.fit(fs, train) for a in (ag.DirectionAgent(20, max_rows=2000), ag.MicropriceOFIAgent(20, max_rows=2000),
                                       ag.VolBreakoutAgent(20, max_rows=2000), ag.MeanReversionAgent(20, max_rows=2000))]


def _assert_same(core: ag.AgentOutput, ref: ag.AgentOutput) -> None:
    assert (core.agent, core.model_version, core.horizon) == (ref.agent, ref.model_version, ref.horizon)
    np.testing.assert_array_equal(core.regime, ref.regime)
    for name in FIELDS:
        a, b = getattr(core, name), getattr(ref, name)
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=name)
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL, err_msg=name)


def test_core_equals_the_python_reference_on_simulator_features(sim_features, fitted):
    fs = sim_features
    for a in fitted:
        ref = a.predict(fs)
        core = ag.predict_core(a, fs)
        _assert_same(core, ref)
        # the data exercise what the parity claims: rows without a view and every regime
        assert (~ref.valid).any() and ref.valid.mean() > 0.9, a.name
        assert set(np.unique(ref.regime)) == {-1, 0, 1, 2}, a.name


def test_nan_and_neutral_inputs_match_the_reference(sim_features, fitted):
    """Undefined inputs planted in the rows: neutral columns count as 0, the others end the view
    (NaN only for the direction agent: its classifier refuses infinite features, in both paths)."""
    fs = sim_features
    names = list(fs.names)
    for a in fitted:
        m = np.array(fs.matrix, dtype=np.float64, copy=True)
        rng = np.random.default_rng(5)
        bad = [np.nan] if isinstance(a, ag.DirectionAgent) else [np.nan, np.inf, -np.inf]
        for col in ("bollinger_z", "ofi_l1_norm", "trade_imbalance", "vwap_deviation", "rsi", "ewma_vol",
                    "microprice_offset", "ema_cross_5_20", "queue_imbalance_l1"):
            rows = rng.choice(m.shape[0], 200, replace=False)
            m[rows, names.index(col)] = rng.choice(bad, 200)
        planted = FeatureSet(timestamps=fs.timestamps, matrix=m, names=fs.names, valid=fs.valid,
                             instruments=fs.instruments)
        ref = a.predict(planted)
        assert (~ref.valid).sum() > (~a.predict(fs).valid).sum(), a.name   # the planted NaNs end views
        _assert_same(ag.predict_core(a, planted), ref)


def test_one_row_path_is_the_matrix_loop_bit_for_bit(sim_features, fitted):
    fs = sim_features
    x = np.ascontiguousarray(fs.matrix, np.float64)
    for a in fitted:
        core = ag.core_agent(a, fs.names)
        mo = a.model_output(fs)
        rows = core.evaluate_rows(x, mo)
        for i in range(0, x.shape[0], 97):
            one = core.evaluate(x[i], np.nan if mo is None else float(mo[i]))
            got = np.array(one[:6], dtype=np.float64)
            want = np.array([rows["mu"][i], rows["sigma"][i], *rows["quantiles"][i], rows["confidence"][i]])
            np.testing.assert_array_equal(got, want)
            assert one[6] == rows["regime"][i]


_value = st.one_of(st.floats(-5.0, 5.0), st.sampled_from([np.nan, np.inf, -np.inf, 0.0, 50.0, 2.0, -2.0]))
_finite_or_nan = st.one_of(st.floats(-5.0, 5.0), st.sampled_from([np.nan, 0.0, 50.0, 2.0, -2.0]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), which=st.integers(0, 3))
def test_hypothesis_rows_match_the_reference(sim_features, fitted, data, which):
    """Arbitrary rows (values around the bands, undefined entries) through both paths."""
    fs = sim_features
    a = fitted[which]
    base = np.array(fs.matrix[data.draw(st.integers(0, len(fs.timestamps) - 1))], dtype=np.float64)
    for col in a.core_spec()["columns"]:
        base[list(fs.names).index(col)] = data.draw(_finite_or_nan if isinstance(a, ag.DirectionAgent) else _value)
    one = FeatureSet(timestamps=fs.timestamps[:1], matrix=base[None, :], names=fs.names, valid=fs.valid[:1],
                     instruments=fs.instruments[:1])
    _assert_same(ag.predict_core(a, one), a.predict(one))


def _spec(fitted, which: int = 2) -> dict:
    return fitted[which].core_spec()


def test_bad_parameters_and_rows_are_refused(sim_features, fitted):
    from bot4._core.portfolio import SignalAgent

    names = list(sim_features.names)

    def build(**change):
        return SignalAgent(**{**_spec(fitted), **change}, feature_names=names)

    core = build()
    with pytest.raises(InputError, match="row"):
        core.evaluate(np.zeros(len(names) - 1))
    with pytest.raises(InputError, match="feature columns"):
        core.evaluate_rows(np.zeros((3, len(names) + 1)))
    with pytest.raises(InputError, match="unknown agent kind 'momentum'"):
        build(kind="momentum")
    coef = _spec(fitted)["coef"].copy()
    coef[1, 0] = np.nan
    with pytest.raises(InputError, match="non-finite quantile coefficient"):
        build(coef=coef)
    with pytest.raises(InputError, match="taus x inputs"):
        build(coef=coef[:, :2])
    with pytest.raises(InputError, match="strictly ascending"):
        build(taus=[0.1, 0.9, 0.5])
    with pytest.raises(InputError, match="strictly ascending"):
        build(taus=[0.1, 0.5, 0.5])
    with pytest.raises(InputError, match="ascending"):
        build(regime_edges=[2.0, 1.0])
    with pytest.raises(InputError, match="reads the columns"):
        build(columns=["bollinger_z", "ewma_vol"], neutral=[True, False])
    with pytest.raises(InputError, match="no column 'ema_cross_5_20'"):
        SignalAgent(**_spec(fitted), feature_names=[n for n in names if n != "ema_cross_5_20"])
    with pytest.raises(InputError, match="band"):
        build(band=float("nan"))
    direction = _spec(fitted, 0)
    with pytest.raises(InputError, match="isotonic"):
        SignalAgent(**{**direction, "iso_x": [0.2, 0.1], "iso_y": [0.3, 0.4]}, feature_names=names)
    with pytest.raises(InputError, match="abs_return"):
        SignalAgent(**{**direction, "abs_return": [1.0]}, feature_names=names)
    with pytest.raises(InputError, match="model's output"):
        SignalAgent(**direction, feature_names=names).evaluate_rows(np.zeros((2, len(names))))
    with pytest.raises(InputError, match="not fitted"):
        ag.core_agent(ag.VolBreakoutAgent(), names)

    class Momentum(ag.MicropriceOFIAgent):
        name = "momentum"

    own = Momentum(20, max_rows=2000).fit(sim_features, np.arange(2000))
    with pytest.raises(InputError, match="no core twin"):
        ag.predict_core(own, sim_features)
