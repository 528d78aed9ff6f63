"""Signal agents in the core (bot4._core.portfolio.SignalAgent; core/portfolio/signal_agent.hpp):
parity with the Python reference `predict` of each built-in agent on simulator features (NaN rows
and regimes included), the per-row path equal to the matrix loop bit for bit, hypothesis rows with
undefined inputs, and refused parameters.

Tolerance of the parity: the quantiles are x . w + b; numpy evaluates `X @ W.T` with BLAS (its
own summation order and fused multiply-adds), the core sums left to right, so the two agree to a
few ulps, not bit for bit; the normal CDF of the confidence (std::erf against scipy's cephes erf)
likewise. Everything else (the NaN pattern, the regimes, the mapping order) is exact. The direction
agent's logistic classifier runs in the core too: its raw P(up) equals agents.logistic_proba bit
for bit, and sklearn's float32 predict_proba to float32 precision (2e-6 here)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot4.errors import InputError
from portfolio.same_json import TIMING_KEYS, same_json
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
    (the direction agent's classifier imputes a NaN feature with its median; an infinite one
    saturates P(up) at 0 or 1, in both paths)."""
    fs = sim_features
    names = list(fs.names)
    for a in fitted:
        m = np.array(fs.matrix, dtype=np.float64, copy=True)
        rng = np.random.default_rng(5)
        bad = [np.nan, np.inf, -np.inf]
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


def test_the_logistic_classifier_runs_in_the_core_bit_for_bit(sim_features, fitted):
    """The direction agent's logistic classifier in the core (SignalAgent.classifier_p) is
    agents.logistic_proba bit for bit; that is sklearn's float32 predict_proba to float32
    precision; the core then takes no model output for the agent."""
    from bot4.research import zoo

    fs = sim_features
    d = fitted[0]
    assert d.kind == "logistic"
    core = ag.core_agent(d, fs.names)
    assert core.has_classifier and not core.needs_model_output and d.model_output(fs) is None
    x = np.ascontiguousarray(fs.matrix, np.float64)
    ref = d.raw_probability(fs)
    got = np.array([core.classifier_p(x[i]) for i in range(x.shape[0])])
    np.testing.assert_array_equal(got, ref)
    sk = zoo.proba(d.model, d._x(fs))
    assert np.unique(sk).size > 1000 and float(np.max(np.abs(ref - sk))) < 2e-6
    with pytest.raises(InputError, match="no classifier"):
        ag.core_agent(fitted[1], fs.names).classifier_p(x[0])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_hypothesis_classifier_rows_match_the_reference_bit_for_bit(sim_features, fitted, data):
    """Any values (undefined, infinite, huge: beyond float32 they round to infinity in both paths)
    in any of the classifier's columns."""
    fs = sim_features
    d = fitted[0]
    core = ag.core_agent(d, fs.names)
    row = np.array(fs.matrix[data.draw(st.integers(0, len(fs.timestamps) - 1))], dtype=np.float64)
    cols = data.draw(st.lists(st.sampled_from(d.column_names), min_size=1, max_size=6))
    for c in cols:
        row[list(fs.names).index(c)] = data.draw(st.one_of(
            st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([np.nan, np.inf, -np.inf, 0.0, 1e39])))
    want = d.raw_probability(FeatureSet(timestamps=fs.timestamps[:1], matrix=row[None, :], names=fs.names,
                                        valid=fs.valid[:1], instruments=fs.instruments[:1]))[0]
    got = core.classifier_p(row)
    assert (np.isnan(got) and np.isnan(want)) or got == want


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_another_classifier_kind_gives_its_p_up_from_python(sim_features):
    """A non-logistic direction classifier (here an MLP) stays in its framework: the spec has no
    classifier, the core needs the P(up) per row (model_output) and still equals predict."""
    fs = sim_features
    train = np.arange(len(fs.timestamps) // 2 - 20)
    d = ag.DirectionAgent(20, kind="mlp", params={"hidden_layer_sizes": (4,), "max_iter": 300, "random_state": 0},
                          max_rows=2000).fit(fs, train)
    assert "model_columns" not in d.core_spec()
    core = ag.core_agent(d, fs.names)
    assert core.needs_model_output and not core.has_classifier
    mo = d.model_output(fs)
    assert mo is not None and mo.shape == (len(fs.timestamps),)
    _assert_same(ag.predict_core(d, fs), d.predict(fs))
    with pytest.raises(InputError, match="model's output"):
        core.evaluate_rows(np.ascontiguousarray(fs.matrix[:2], np.float64))


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
    with pytest.raises(InputError, match="model's output"):    # without its classifier: P(up) is an input
        SignalAgent(**{k: v for k, v in direction.items() if not k.startswith("model_") or k == "model_version"},
                    feature_names=names).evaluate_rows(np.zeros((2, len(names))))
    m = len(direction["model_columns"])
    for change, match in (({"model_scale": [0.0] * m}, "model_scale"), ({"model_coef": [0.1] * m}, "float32"),
                          ({"model_mean": [np.inf] * m}, "finite"), ({"model_median": [0.0]}, "one value per"),
                          ({"model_columns": ["nope"] * m}, "no column 'nope'")):
        with pytest.raises(InputError, match=match):
            SignalAgent(**{**direction, **change}, feature_names=names)
    with pytest.raises(InputError, match="without the columns"):
        SignalAgent(**{**direction, "model_columns": []}, feature_names=names)
    with pytest.raises(InputError, match="only the direction agent"):
        build(model_columns=["rsi"])
    with pytest.raises(InputError, match="not fitted"):
        ag.core_agent(ag.VolBreakoutAgent(), names)

    class Momentum(ag.MicropriceOFIAgent):
        name = "momentum"

    own = Momentum(20, max_rows=2000).fit(sim_features, np.arange(2000))
    with pytest.raises(InputError, match="no core twin"):
        ag.predict_core(own, sim_features)


# -- the job: core agents by default, the Python reference selectable, user agents beside them ---

JOB = dict(epsilon=0.3, seed=3, horizon=10, corr_window=40, grid_s=1.0, checks_per_step=4, top_k=2)


@pytest.fixture(scope="module")
def market():
    from bot4.data.market_data import merge
    from bot4.sim import generate

    return merge([generate(seed=1, n_events=40_000).as_instrument(1, "AAAUSDT"),
                  generate(seed=2, n_events=40_000).as_instrument(2, "BBBUSDT")])


def _results(r) -> str:
    """A job's --json figures (the wall-clock ones aside) as canonical text, for exact equality."""
    import json

    from portfolio.same_json import TIMING_KEYS

    return json.dumps({k: v for k, v in r.as_json().items() if k not in TIMING_KEYS}, sort_keys=True)


def test_job_results_are_the_same_with_core_and_python_agents(market):
    """agent_eval "core" (the default: the agents run inside the core step on each decision's
    feature rows) gives exactly the figures of "upfront" (the core's agents on every row before the
    run, the step reading those outputs) and, to 1e-9, those of "python" (predict, the reference)."""
    import msgspec

    from bot4.portfolio.job import PortfolioConfig, portfolio_backtest

    cfg = PortfolioConfig(**JOB)
    assert cfg.agent_eval == "core"
    core = portfolio_backtest(market, cfg)
    upfront = portfolio_backtest(market, msgspec.structs.replace(cfg, agent_eval="upfront"))
    py = portfolio_backtest(market, msgspec.structs.replace(cfg, agent_eval="python"))
    assert core.main.coordinator.per_decision and not upfront.main.coordinator.per_decision
    rows = len(core.signals.features.timestamps)
    evaluated = core.signals.outputs[0].mu.size    # the rows before the trading slice only
    assert 0 < evaluated < rows and upfront.signals.outputs[0].mu.size == rows
    for a, b in zip(upfront.signals.outputs, py.signals.outputs):
        _assert_same(a, b)
    a = core.as_json()
    assert a["steps"] > 100 and sum(i["fills"] for i in a["instruments"]) > 0
    assert _results(core) == _results(upfront)
    same_json(a, py.as_json())


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_a_non_logistic_direction_classifier_in_the_per_decision_job(market, monkeypatch):
    """The documented fallback: a direction agent whose classifier the core does not evaluate (an
    MLP) has its P(up) computed in Python on every row before the run and read per decision; the
    figures equal the up-front path's exactly."""
    import msgspec

    from bot4.portfolio.job import PortfolioConfig, portfolio_backtest

    real = ag.default_agents

    def agents(horizon):
        out = real(horizon)
        out[0] = ag.DirectionAgent(horizon, kind="mlp", params={"hidden_layer_sizes": (4,), "max_iter": 300,
                                                                 "random_state": 0})
        return out

    monkeypatch.setattr(ag, "default_agents", agents)
    cfg = PortfolioConfig(run_alternative=False, **JOB)
    core = portfolio_backtest(market, cfg)
    upfront = portfolio_backtest(market, msgspec.structs.replace(cfg, agent_eval="upfront"))
    mo = core.signals.model_output
    assert core.main.coordinator.per_decision and mo is not None
    assert np.isfinite(mo[:, 0]).mean() > 0.9 and np.isnan(mo[:, 1:]).all()
    assert _results(core) == _results(upfront)


def _contrarian(row, names):
    """A user rule: fade the micro-price offset (bp-scaled), a fixed 5 bp uncertainty."""
    off = row[names.index("microprice_offset")]
    if not np.isfinite(off):
        return (np.nan, np.nan, np.nan, np.nan, np.nan, 0.0, -1)
    mu = -0.5 * off
    return (mu, 5.0, mu - 6.4, mu, mu + 6.4, min(1.0, abs(mu) / 10.0), 0)


def test_a_python_user_agent_is_fitted_and_blended_beside_the_built_ins(market):
    from bot4.portfolio.job import PortfolioConfig, portfolio_backtest
    from bot4.portfolio.user_agents import RowAgent, UserAgent

    fits = []
    user = RowAgent("contrarian", _contrarian, horizon=10, fit_fn=lambda fs, rows: fits.append(len(rows)) or 1)
    assert isinstance(user, UserAgent)
    r = portfolio_backtest(market, PortfolioConfig(run_alternative=False, **JOB), user_agents=[user])
    names = [o.agent for o in r.signals.outputs]
    assert names == ["direction", "microprice_ofi", "vol_breakout", "mean_reversion", "contrarian"]
    assert fits == [r.signals.rows["agents"]]             # fitted once, on the agents' training rows
    out = r.signals.outputs[-1]
    off = r.signals.features.matrix[:, list(r.signals.features.names).index("microprice_offset")]
    ok = np.isfinite(off)
    np.testing.assert_array_equal(out.mu[ok], -0.5 * off[ok])
    assert np.isnan(out.mu[~ok]).all() and (out.confidence[~ok] == 0).all()
    # the meta-weighter blends 5 agents: 3 inputs each, in the core step as well
    assert r.main.coordinator.core is not None and r.signals.meta.models[None].coef.shape[1] == 15
    assert r.as_json()["steps"] > 100


def test_bad_user_agents_and_outputs_are_refused(sim_features):
    from bot4.portfolio.job import PortfolioConfig, evaluate_agents, fit_signals
    from bot4.portfolio.user_agents import RowAgent, check_user_agent, checked_output

    fs = sim_features
    with pytest.raises(InputError, match="lacks fit, predict"):
        check_user_agent(type("Half", (), {"name": "half", "horizon": 3})())
    with pytest.raises(InputError, match="already used"):
        fit_signals(fs, PortfolioConfig(horizon=10), [RowAgent("direction", _contrarian)])
    with pytest.raises(InputError, match="horizon"):
        RowAgent("x", _contrarian, horizon=0)
    with pytest.raises(InputError, match="row 0"):
        RowAgent("short", lambda row, names: (1.0, 2.0)).predict(fs)
    good = RowAgent("contrarian", _contrarian)
    out = good.predict(fs)
    assert checked_output(good, out, fs) is out

    def broken(**change):
        import dataclasses

        return checked_output(good, dataclasses.replace(out, **change), fs)

    with pytest.raises(InputError, match="NaN in the same rows"):
        broken(sigma=np.where(np.arange(out.mu.size) == 3, np.nan, out.sigma))
    with pytest.raises(InputError, match="sigma must be >= 0"):
        broken(sigma=-out.sigma)
    with pytest.raises(InputError, match="confidence"):
        broken(confidence=out.confidence + 2.0)
    with pytest.raises(InputError, match="one value per row"):
        broken(mu=out.mu[:-1])
    with pytest.raises(InputError, match="ascending"):
        broken(quantiles=out.quantiles[:, ::-1])
    with pytest.raises(InputError, match="not infinite"):
        broken(mu=np.where(np.isfinite(out.mu), np.inf, np.nan))
    with pytest.raises(InputError, match="must return an AgentOutput"):
        checked_output(good, {"mu": out.mu}, fs)
    with pytest.raises(InputError, match="agent_eval"):
        evaluate_agents([good], fs, "gpu")


LINEAR = ["usdm/btcusdt_20240808.gz", "usdm/ethusdt_20240808.gz", "spot/btcusdt_20240808.gz",
          "spot/btcusdt_20240809.gz", "spot/ethusdt_20240808.gz", "spot/ethusdt_20240809.gz"]


@pytest.mark.realdata
def test_cli_json_is_the_same_with_core_or_python_agents_on_recorded_instruments(tmp_path, capsys):
    """`bot4 portfolio backtest --json` with the core agents (the default) prints the figures that
    `--agent-eval python` prints, on Binance USD-M and spot BTC/ETH recorded together."""
    import json

    from bot4.cli import main
    from recordings import data_path, require_recording

    files = [str(require_recording(data_path("binance_hftbacktest", f))) for f in LINEAR]
    cfg = tmp_path / "c.toml"
    cfg.write_text("horizon = 10\ncalibration_fraction = 0.15\ncorr_window = 60\npenalty = 10.0\n"
                   "run_alternative = false\n")
    out = {}
    for how in ("core", "upfront", "python"):
        argv = ["portfolio", "backtest", "--data", *files, "--config", str(cfg), "--out", str(tmp_path / how),
                "--json", "-q", "--agent-eval", how]
        assert main(argv) == 0
        out[how] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["core"]["steps"] > 100 and all(v == 0 for v in out["core"]["limit_breaches"].values())
    assert [out[s].pop("out") for s in out] == [str(tmp_path / s) for s in out]
    for s in out:
        for k in TIMING_KEYS:
            out[s].pop(k)
    # per decision in the core step = evaluated up front, exactly
    assert json.dumps(out["core"], sort_keys=True) == json.dumps(out["upfront"], sort_keys=True)
    same_json(out["core"], out["python"])


# -- a C++ user agent from a plugin library --------------------------------------------------------

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]


def _include_dir():
    """The core's headers: the source tree's, else the installed SDK's."""
    inc = ROOT / "core"
    if not (inc / "portfolio" / "agent_plugin.hpp").is_file():
        from bot4 import sdk

        inc = __import__("pathlib").Path(sdk.get_include()) / "bot4"
    return inc


@pytest.fixture(scope="module")
def contrarian_plugin(tmp_path_factory):
    """examples/cpp_agent built as a plugin module against the core's headers (the source tree's,
    else the installed SDK's)."""
    import shutil
    import subprocess

    cxx = shutil.which("c++") or shutil.which("g++")
    if cxx is None:
        pytest.skip("no C++ compiler on PATH")
    out = tmp_path_factory.mktemp("agent") / "libcontrarian_agent.so"
    r = subprocess.run([cxx, "-std=c++20", "-O1", "-shared", "-fPIC", "-fvisibility=hidden", f"-I{_include_dir()}",
                        str(ROOT / "examples" / "cpp_agent" / "contrarian_agent.cpp"), "-o", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return out


FAULTY = r"""
#include <limits>
#include "portfolio/agent_plugin.hpp"
// Returns the view its "fault" parameter names, to check the core refuses each.
class Faulty : public bot4::portfolio::UserSignalAgent {
 public:
  explicit Faulty(const bot4::strategy::PluginParams& p) : fault_(p.integer("fault", 0)) {}
  void bind(const std::vector<std::string>&) override {}
  bot4::portfolio::AgentView evaluate(const double*, size_t) const override {
    constexpr double nan = std::numeric_limits<double>::quiet_NaN();
    switch (fault_) {
      case 1: return {1.0, -2.0, {0.0, 1.0, 2.0}, 0.5, 0};     // negative sigma
      case 2: return {1.0, nan, {0.0, 1.0, 2.0}, 0.5, 0};      // only sigma NaN
      case 3: return {1.0, 2.0, {0.0, 1.0, 2.0}, 1.5, 0};      // confidence > 1
      case 4: return {1.0, 2.0, {2.0, 1.0, 0.0}, 0.5, 0};      // quantiles descending
      case 5: return {1.0, 2.0, {0.0, 1.0, 2.0}, 0.5, -2};     // regime < -1
      default: return {1.0, 2.0, {0.0, 1.0, 2.0}, 0.5, 0};
    }
  }
 private:
  int64_t fault_;
};
BOT4_AGENT_PLUGIN(Faulty)
"""


@pytest.fixture(scope="module")
def faulty_plugin(contrarian_plugin):
    import shutil
    import subprocess

    src = contrarian_plugin.parent / "faulty.cpp"
    src.write_text(FAULTY)
    out = contrarian_plugin.parent / "libfaulty.so"
    r = subprocess.run([shutil.which("c++") or "g++", "-std=c++20", "-O1", "-shared", "-fPIC", "-fvisibility=hidden",
                        f"-I{_include_dir()}", str(src), "-o", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return out


def test_the_core_refuses_invalid_views_from_a_cpp_agent(faulty_plugin, sim_features):
    from bot4._core.portfolio import PluginAgent

    names = list(sim_features.names)
    row = np.zeros(len(names))
    assert PluginAgent(str(faulty_plugin), "{}", names).evaluate(row) == (1.0, 2.0, 0.0, 1.0, 2.0, 0.5, 0)
    for fault, what in ((1, "negative sigma"), (2, "NaN together"), (3, "confidence outside"),
                        (4, "ascending"), (5, "regime below -1")):
        with pytest.raises(InputError, match=what):
            PluginAgent(str(faulty_plugin), f'{{"fault": {fault}}}', names).evaluate(row)


def _contrarian_ref(row, names):
    """examples/cpp_agent's rule in Python (sigma 5, quantiles mu -+ 1.28 sigma)."""
    off = row[names.index("microprice_offset")]
    if not np.isfinite(off):
        return (np.nan, np.nan, np.nan, np.nan, np.nan, 0.0, -1)
    mu = -0.5 * off
    return (mu, 5.0, mu - 6.4, mu, mu + 6.4, min(1.0, abs(mu) / 10.0), 0)


def test_a_cpp_user_agent_equals_its_python_twin_and_runs_in_the_job(contrarian_plugin, sim_features, market):
    import dataclasses

    from bot4.portfolio.job import PortfolioConfig, portfolio_backtest
    from bot4.portfolio.user_agents import CppAgent, RowAgent, UserAgent

    fs = sim_features
    cpp = CppAgent("contrarian", contrarian_plugin, {"scale": 0.5, "sigma": 5.0})
    assert isinstance(cpp, UserAgent)
    a = cpp.fit(fs, np.arange(10)).predict(fs)
    b = RowAgent("contrarian", _contrarian_ref).predict(fs)
    assert (~a.valid).any() and a.valid.any()
    for name in ("mu", "sigma", "quantiles", "confidence", "regime"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    r = portfolio_backtest(market, PortfolioConfig(run_alternative=False, **JOB), user_agents=[cpp])
    assert [o.agent for o in r.signals.outputs][-1] == "contrarian"
    assert r.signals.meta.models[None].coef.shape[1] == 15 and r.as_json()["steps"] > 100
    assert dataclasses.is_dataclass(r.signals.outputs[-1])


def test_bad_cpp_user_agents_are_refused(contrarian_plugin, sim_features, tmp_path):
    from bot4._core.portfolio import PluginAgent
    from bot4.portfolio.user_agents import CppAgent

    names = list(sim_features.names)
    with pytest.raises(InputError, match="not a file"):
        CppAgent("x", tmp_path / "missing.so")
    with pytest.raises(InputError, match="unknown parameter"):
        CppAgent("x", contrarian_plugin, {"scael": 0.5}).predict(sim_features)
    with pytest.raises(InputError, match="sigma must be > 0"):
        CppAgent("x", contrarian_plugin, {"sigma": -1.0}).predict(sim_features)
    with pytest.raises(InputError, match="no column 'nope'"):
        CppAgent("x", contrarian_plugin, {"column": "nope"}).predict(sim_features)
    not_plugin = tmp_path / "lib.so"
    not_plugin.write_bytes(b"not an ELF file")
    with pytest.raises(InputError, match="cannot load agent plugin"):
        PluginAgent(str(not_plugin), "{}", names)
    with pytest.raises(InputError, match="row"):
        PluginAgent(str(contrarian_plugin), "{}", names).evaluate(np.zeros(3))


# -- user agents named as strategies are: module:Class, .py, .pyx, C++ plugin --------------------

class Fading:
    """A user agent class (module:Class): the contrarian rule through RowAgent."""

    def __init__(self, scale: float = 0.5):
        from bot4.portfolio.user_agents import RowAgent

        self._row = RowAgent("fading", lambda row, names: _scaled(row, names, scale))
        self.name, self.horizon, self.model_version = "fading", 1, f"scale={scale}"

    def fit(self, features, rows):
        return self

    def predict(self, features):
        return self._row.predict(features)


def _scaled(row, names, scale):
    v = _contrarian_ref(row, names)
    return v if not np.isfinite(v[0]) else tuple(x * scale / 0.5 if i < 5 and i != 1 else x
                                                    for i, x in enumerate(v))


AGENT_PY = '''
import numpy as np
from bot4.portfolio.agents import AgentOutput


class FileAgent:
    name, horizon, model_version = "file_agent", 1, "v1"

    def fit(self, features, rows):
        return self

    def predict(self, features):
        n = len(features.timestamps)
        mu = np.full(n, 1.0)
        return AgentOutput("file_agent", "v1", 1, np.asarray(features.timestamps, np.int64),
                           np.asarray(features.instruments), mu, np.full(n, 2.0),
                           np.column_stack([mu - 2, mu, mu + 2]), np.full(n, 0.3), np.zeros(n, np.int64))
'''


def test_make_agent_from_specs(sim_features, contrarian_plugin, tmp_path):
    from bot4.portfolio.user_agents import CppAgent, make_agent

    fs = sim_features
    a = make_agent("portfolio.test_signal_agent:Fading", {"scale": 0.5})
    assert a.name == "fading" and a.model_version == "scale=0.5"
    np.testing.assert_array_equal(a.predict(fs).mu, make_agent(Fading()).predict(fs).mu)
    f = tmp_path / "my_agent.py"
    f.write_text(AGENT_PY)
    b = make_agent(str(f))
    assert b.name == "file_agent" and (b.predict(fs).mu == 1.0).all()
    c = make_agent(str(contrarian_plugin), {"scale": 0.5})
    assert isinstance(c, CppAgent) and c.name == "contrarian_agent"
    assert make_agent(str(contrarian_plugin), name="fade").name == "fade"
    with pytest.raises(InputError, match="unknown agent"):
        make_agent("fading")
    with pytest.raises(InputError, match="does not exist"):
        make_agent(str(tmp_path / "none.py"))
    with pytest.raises(InputError, match="no attribute|No module"):
        make_agent("portfolio.test_signal_agent:Nope")
    two = tmp_path / "two.py"
    two.write_text(AGENT_PY + "\n\nclass Other(FileAgent):\n    pass\n")
    with pytest.raises(InputError, match="expected one agent class"):
        make_agent(str(two))
    with pytest.raises(InputError, match="parameters given for an agent instance"):
        make_agent(Fading(), {"scale": 1.0})


def test_a_cython_user_agent(sim_features, tmp_path):
    """A .pyx agent built with bot4.cython_build (the engine's Cython strategies' build)."""
    pytest.importorskip("Cython")
    from bot4.portfolio.user_agents import make_agent

    f = tmp_path / "cy_agent.pyx"
    f.write_text(AGENT_PY.replace("FileAgent", "CyAgent").replace('"file_agent"', '"cy_agent"'))
    a = make_agent(str(f))
    assert a.name == "cy_agent" and (a.predict(sim_features).mu == 1.0).all()


@pytest.mark.realdata
def test_cli_refuses_a_bad_agent_before_reading_data(tmp_path, capsys):
    from bot4.cli import main
    from recordings import data_path, require_recording

    files = [str(require_recording(data_path("binance_hftbacktest", f))) for f in LINEAR[:2]]
    rc = main(["portfolio", "backtest", "--data", *files, "--out", str(tmp_path / "o"), "-q", "--agent", "nope"])
    assert rc != 0 and "unknown agent 'nope'" in capsys.readouterr().err


@pytest.mark.realdata
def test_cli_runs_a_cpp_user_agent_beside_the_built_ins(tmp_path, capsys, contrarian_plugin):
    import json

    from bot4.cli import main
    from recordings import data_path, require_recording

    files = [str(require_recording(data_path("binance_hftbacktest", f))) for f in LINEAR]
    cfg = tmp_path / "c.toml"
    cfg.write_text("horizon = 10\ncalibration_fraction = 0.15\ncorr_window = 60\nrun_alternative = false\n")
    argv = ["portfolio", "backtest", "--data", *files, "--config", str(cfg), "--out", str(tmp_path / "o"), "--json",
            "-q", "--agent", str(contrarian_plugin)]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [a["agent"] for a in out["agents"]] == ["direction", "microprice_ofi", "vol_breakout", "mean_reversion",
                                                   "contrarian_agent"]
    assert out["steps"] > 100 and all(v == 0 for v in out["limit_breaches"].values())


# -- the portfolio step evaluating the agents per decision in the core ----------------------------

def test_the_core_step_runs_the_agents_on_each_decisions_feature_rows(market):
    """step_features (each lane's latest feature row; the agents evaluated inside the step) takes
    the decisions step_agents takes from the agents' outputs computed beforehand, bit for bit."""
    from bot4.portfolio.core_step import build_core_step
    from bot4.portfolio.job import PortfolioConfig, grid_bars, portfolio_backtest
    from bot4.portfolio.meta import agent_matrix

    cfg = PortfolioConfig(run_alternative=False, agent_eval="upfront", **JOB)
    r = portfolio_backtest(market, cfg)
    sig, coord = r.signals, r.main.coordinator
    fs = sig.features
    ends, bars = grid_bars(fs, r.lanes, cfg.grid_ns)
    by_outputs = build_core_step(r.lanes, cfg, sig, bars, ends, coord.latest, np.random.default_rng(7))
    by_rows = build_core_step(r.lanes, cfg, sig, bars, ends, coord.latest, np.random.default_rng(7))
    by_rows.set_agents([ag.core_agent(a, fs.names) for a in sig.agents])
    x_all, _ = agent_matrix(sig.outputs)
    reg_all = np.asarray(sig.outputs[0].regime, np.int64)
    matrix = np.ascontiguousarray(fs.matrix, np.float64)
    mo_all = np.column_stack([np.full(matrix.shape[0], np.nan) if (m := a.model_output(fs)) is None else m
                              for a in sig.agents])
    n = r.lanes.n
    steps = traded = 0
    for ts in range(sig.split_ns[2], int(fs.timestamps.max()), cfg.grid_ns):
        idx = np.full(n, -1)
        for k, (rts, rows) in enumerate(coord.latest):
            j = int(np.searchsorted(rts, ts, side="right")) - 1
            if j >= 0 and ts - rts[j] <= 2 * cfg.grid_ns:
                idx[k] = rows[j]
        have = (idx >= 0).astype(np.uint8)
        safe = np.maximum(idx, 0)
        state = (np.zeros(n, np.int64), bars[min(np.searchsorted(ends, ts), len(ends) - 1)], np.zeros(n), cfg.equity)
        a = by_outputs.step_agents(ts, np.ascontiguousarray(x_all[safe]), reg_all[safe], have, *state)
        a_out = (a.target.copy(), a.mu.copy(), a.sigma.copy(), a.p.copy(), tuple(a.chosen))
        b = by_rows.step_features(ts, np.ascontiguousarray(matrix[safe]), np.ascontiguousarray(mo_all[safe]), have,
                                  *state)
        for u, v in zip(a_out, (b.target, b.mu, b.sigma, b.p, tuple(b.chosen))):
            np.testing.assert_array_equal(u, v)
        steps += bool(have.any())
        traded += bool((a_out[0] != 0).any())
    assert steps > 100 and traded > 10      # decisions with views and non-zero targets, not an idle book
    with pytest.raises(InputError, match="blends 4 agents"):
        by_rows.set_agents([ag.core_agent(a, fs.names) for a in sig.agents[:3]])
    with pytest.raises(InputError, match="feature columns"):
        by_rows.step_features(0, np.zeros((n, 3)), np.zeros((n, 4)), np.ones(n, np.uint8), *state)
