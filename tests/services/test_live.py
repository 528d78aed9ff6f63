"""bot4.services.live on a bare core StreamingBacktest: a refused change leaves the running
config exactly as it was (the core applies the sections as a whole), the built-in strategy's
fields change only through their declared bounds, and a model the core cannot run is refused."""
from __future__ import annotations

import pytest
from paper_helpers import CONFIG, MODEL_DIR

from bot4 import _core
from bot4.backtest.engine import _Prepared
from bot4.config import Config
from bot4.errors import ConfigError
from bot4.services import live
from bot4.sim import generate


@pytest.fixture()
def engine():
    data = generate(seed=3, n_events=2000)
    prep = _Prepared(data.specs, set(data.specs), MODEL_DIR, CONFIG, None)
    return _core.engine.StreamingBacktest(prep.cfg, prep.instruments)


def test_core_applies_sections_as_a_whole(engine):
    before = engine.config()
    with pytest.raises(ConfigError, match="kelly_fraction"):  # the second section is bad: neither changes
        engine.set_config({"pre_trade": {"max_position_lots": 1}, "sizing": {"kelly_fraction": 5.0}})
    with pytest.raises(ConfigError, match="unknown key"):
        engine.set_config({"kill_switch": {"nope": 1}})
    with pytest.raises(ConfigError, match="section"):
        engine.set_config({"sim": {"entry_latency_ns": 1}})
    with pytest.raises(ConfigError, match="stp cannot change"):
        engine.set_config({"engine": {"stp": 1}})
    assert engine.config() == before
    engine.set_config({"pre_trade": {"max_position_lots": 1}, "sizing": {"kelly_fraction": 0.5}})
    after = engine.config()
    assert after["pre_trade"] == {**before["pre_trade"], "max_position_lots": 1}
    assert after["sizing"] == {**before["sizing"], "kelly_fraction": 0.5}
    assert after["engine"] == before["engine"] and after["kill_switch"] == before["kill_switch"]


def test_strategy_fields_change_within_their_bounds(engine):
    before = engine.strategy_config()
    assert before["name"] == "threshold_bracket" and before["stop_ticks"] == 5
    with pytest.raises(live.ChangeRefused, match="Expected `int` >= 0"):
        live.set_parameter(engine, "strategy.stop_ticks", -1)
    with pytest.raises(ConfigError, match="unknown key"):  # the core's own check, below the Python one
        engine.set_strategy_config({"nope": 1})
    assert engine.strategy_config() == before
    assert live.set_parameter(engine, "strategy.long_threshold", 0.7) == {
        "key": "strategy.long_threshold", "old": 0.505, "new": 0.7}
    assert engine.strategy_config() == {**before, "long_threshold": 0.7}


def test_update_risk_reports_exactly_the_changed_keys(engine):
    same = Config.from_dict({"risk": {"pre_trade": CONFIG["pre_trade"]}}).risk
    assert live.update_risk(engine, same) == {"changed": {}}
    new = Config.from_dict({"risk": {"pre_trade": {**CONFIG["pre_trade"], "collar_ticks": 50}}}).risk
    assert live.update_risk(engine, new) == {"changed": {"risk.pre_trade.collar_ticks": [0, 50]}}
    assert engine.config()["pre_trade"]["collar_ticks"] == 50


def test_swap_model_slots(engine):
    from bot4.models import load

    model = load(MODEL_DIR)
    with pytest.raises(ValueError, match="beyond the next free slot"):
        engine.swap_model(model, 5)
    other = _core.inference.Model.from_bytes((MODEL_DIR / "model.onnx").read_bytes(), model.n_features,
                                             ort_library="", calibration_x=None, calibration_y=None,
                                             force_ort=False, force_tree=True, intra_op_threads=1)
    engine.swap_model(other, 0)  # the same width: accepted
    engine.swap_model(model, 1)  # the next free slot: a shadow appended
