"""Signal agents (bot4.portfolio.agents): quantile parity with statsmodels' QuantReg, the stated
(mu, sigma) mappings, forward returns per instrument, no look-ahead (fitting and predicting on data
truncated after any cut leaves every earlier output unchanged), bus signals and refused input."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot4 import contracts as c
from bot4.errors import InputError
from bot4.features import FeatureSet, compute, trading_config
from bot4.portfolio import agents as ag


@pytest.fixture(scope="module")
def sim_features() -> FeatureSet:
    from bot4.sim import generate

    return compute(generate(seed=11, n_events=25_000), trading_config(decision="time"))


def _truncate(fs: FeatureSet, n: int) -> FeatureSet:
    return FeatureSet(timestamps=fs.timestamps[:n], matrix=fs.matrix[:n], names=fs.names, valid=fs.valid[:n],
                      instruments=fs.instruments[:n])


def _hetero(n: int, seed: int = 3):
    rng = np.random.default_rng(seed)
    X = np.column_stack([rng.normal(size=n), rng.uniform(0.5, 2.0, size=n)])
    y = 0.8 * X[:, 0] - 0.3 + X[:, 1] * rng.standard_t(5, size=n)
    return X, y


def test_linear_quantiles_match_statsmodels_quantreg():
    import statsmodels.api as sm

    X, y = _hetero(600)
    lq = ag.LinearQuantiles().fit(X, y)
    for j, tau in enumerate(ag.TAUS):
        ref = sm.QuantReg(y, sm.add_constant(X)).fit(q=tau, max_iter=5000, p_tol=1e-10)
        np.testing.assert_allclose(lq.intercept[j], ref.params[0], atol=2e-3)
        np.testing.assert_allclose(lq.coef[j], ref.params[1:], atol=2e-3)
    q = lq.predict(X)
    assert np.all(np.diff(q, axis=1) >= 0)
    # the empirical coverage of each fitted quantile is its level (an LP solution's property)
    for j, tau in enumerate(ag.TAUS):
        assert abs(np.mean(y <= q[:, j]) - tau) < 0.02


def test_crossing_quantiles_are_rearranged_and_undefined_rows_are_nan():
    lq = ag.LinearQuantiles(coef=np.array([[1.0], [0.0], [-1.0]]), intercept=np.zeros(3))
    q = lq.predict(np.array([[2.0], [-2.0], [np.nan]]))
    np.testing.assert_array_equal(q[0], [-2.0, 0.0, 2.0])
    np.testing.assert_array_equal(q[1], [-2.0, 0.0, 2.0])
    assert np.isnan(q[2]).all()


def test_forward_returns_follow_each_instrument():
    names = ["mid_price", "ewma_vol"]
    mid = np.array([100.0, 50.0, 101.0, 51.0, 102.0, np.nan, 103.0])
    inst = np.array([1, 2, 1, 2, 1, 2, 1], np.uint32)
    fs = FeatureSet(timestamps=np.arange(7, dtype=np.int64) * 10, matrix=np.column_stack([mid, np.ones(7)]),
                    names=names, valid=np.ones((7, 2), bool), instruments=inst)
    r, end = ag.forward_returns(fs, 2)
    np.testing.assert_allclose(r[[0, 2]], [(102 / 100 - 1) * 1e4, (103 / 101 - 1) * 1e4])
    np.testing.assert_array_equal(end, [4, 5, 6, 7, 7, 7, 7])
    assert np.isnan(r[1])          # its end mid is NaN
    assert np.isnan(r[3:]).all()   # windows past the data
    np.testing.assert_array_equal(ag.label_end_times(fs, end), [40, 50, 60, 60, 60, 60, 60])
    with pytest.raises(InputError):
        ag.forward_returns(fs, 0)


def _agents(h: int = 20):
    return [ag.DirectionAgent(h, max_rows=2000), ag.MicropriceOFIAgent(h, max_rows=2000),
            ag.VolBreakoutAgent(h, max_rows=2000), ag.MeanReversionAgent(h, max_rows=2000)]


def test_stated_mappings(sim_features):
    fs = sim_features
    train = np.arange(len(fs.timestamps) // 2 - 20)
    for a in _agents():
        out = a.fit(fs, train).predict(fs)
        v = out.valid
        assert v.mean() > 0.9
        np.testing.assert_allclose(out.sigma[v], (out.quantiles[v, 2] - out.quantiles[v, 0]) / 2.5631031, rtol=1e-6)
        assert np.all(np.diff(out.quantiles[v], axis=1) >= 0)
        assert np.all((out.confidence >= 0) & (out.confidence <= 1)) and np.all(out.confidence[~v] == 0)
        assert set(np.unique(out.regime)) <= {-1, 0, 1, 2}
        assert len(out.model_version) == 16 and out.horizon == 20
        if isinstance(a, ag.DirectionAgent):
            p = a.probability(fs)
            m = a.abs_return[np.where(out.regime >= 0, out.regime, a.abs_return.size - 1)]
            np.testing.assert_allclose(out.mu[v], ((2 * p - 1) * m)[v])
            np.testing.assert_allclose(out.confidence[v], np.abs(2 * p - 1)[v])
        else:
            np.testing.assert_array_equal(out.mu[v], out.quantiles[v, 1])


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frac=st.floats(0.0, 1.0), which=st.integers(0, 3))
def test_no_look_ahead_truncation_leaves_earlier_outputs_unchanged(sim_features, frac, which):
    fs = sim_features
    n = len(fs.timestamps)
    h = 20
    _, end = ag.forward_returns(fs, h)
    train_end = n // 3
    train = np.flatnonzero(end[:train_end] < train_end)     # purged: labels end inside the training span
    cut = int(train_end + frac * (n - train_end))            # anything at or after the training span's end
    full = _agents(h)[which].fit(fs, train)
    short = _agents(h)[which].fit(_truncate(fs, cut), train)
    assert full.model_version == short.model_version
    a, b = full.predict(fs), short.predict(_truncate(fs, cut))
    for name in ("mu", "sigma", "quantiles", "confidence", "regime"):
        np.testing.assert_array_equal(getattr(a, name)[:cut], getattr(b, name))


def test_signals_round_trip_on_the_bus(sim_features):
    fs = sim_features
    out = ag.MeanReversionAgent(20, max_rows=2000).fit(fs, np.arange(1500)).predict(fs)
    rows = np.arange(1500, 1510)
    out.mu[1503] = np.nan            # no view: skipped, not sent as NaN
    msgs = out.signals(rows, trace=c.new_trace_id())
    assert len(msgs) == 9 and all(isinstance(m, c.Signal) for m in msgs)
    codec = c.Codec(c.SIGNALS)
    back = [codec.decode(codec.encode(m)) for m in msgs]
    assert back == msgs and codec.decoded == 9
    assert msgs[0].ts == int(fs.timestamps[1500]) and msgs[0].agent == "mean_reversion"


def test_bad_input_is_refused(sim_features):
    fs = sim_features
    with pytest.raises(InputError, match="not fitted"):
        ag.VolBreakoutAgent().predict(fs)
    with pytest.raises(InputError, match="horizon"):
        ag.MeanReversionAgent(horizon=0)
    with pytest.raises(InputError, match="band"):
        ag.VolBreakoutAgent(band=-1)
    no_vol = FeatureSet(timestamps=fs.timestamps, matrix=fs.matrix[:, :2], names=fs.names[:2],
                        valid=fs.valid[:, :2], instruments=fs.instruments)
    with pytest.raises(InputError, match="ewma_vol|mid_price"):
        ag.MicropriceOFIAgent().fit(no_vol, np.arange(100))
    with pytest.raises(InputError, match="rows"):
        ag.MicropriceOFIAgent().fit(fs, np.array([len(fs.timestamps) + 5]))
    with pytest.raises(InputError, match="too few"):
        ag.MicropriceOFIAgent(20).fit(fs, np.arange(5))


def test_direction_version_knows_the_classifier(sim_features):
    """model_version hashes the classifier too: the same fit gives the same version, a classifier
    with other parameters or of another kind a different one."""
    fs = sim_features
    train = np.arange(len(fs.timestamps) // 2 - 20)
    a = ag.DirectionAgent(20, max_rows=2000).fit(fs, train)
    b = ag.DirectionAgent(20, max_rows=2000).fit(fs, train)
    c = ag.DirectionAgent(20, params={"max_iter": 500, "C": 1e-4}, max_rows=2000).fit(fs, train)
    d = ag.DirectionAgent(20, kind="mlp", max_rows=2000).fit(fs, train)
    assert a.model_version == b.model_version == a._version()
    assert len({a.model_version, c.model_version, d.model_version}) == 3
    swapped = copy.deepcopy(a)                       # everything else equal, another classifier
    swapped.model, swapped._logistic = c.model, c._logistic
    assert swapped._version() != a.model_version
