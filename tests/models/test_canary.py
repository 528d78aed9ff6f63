"""Canary (bot4.models.canary): the challenger trades a fraction of the risk budget, the champion
the rest, a control (champion at the challenger's size) is what the challenger is judged against;
the rollback triggers and the fixed-n A/B test give promote / keep / rollback."""
from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bot4.backtest import run
from bot4.backtest.engine import ORDER_ROLES
from bot4.errors import ConfigError, ModelError
from bot4.models.canary import CanaryConfig, run_canary, scaled_config
from bot4.models.rollback import RollbackPolicy
from bot4.sim import generate

F = 0.25
ENTRY_ROLES = [ORDER_ROLES.index("single"), ORDER_ROLES.index("entry")]


@pytest.fixture(scope="module")
def stream():
    return generate(seed=7, n_events=60_000)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from bot4.research import TrainConfig, train

    root = tmp_path_factory.mktemp("canary")
    train(generate(seed=99, n_events=80_000), TrainConfig(n_estimators=12, max_depth=3), root / "good", progress=False)
    return root / "good", _inverted(root / "good", root / "inverted")


def _inverted(src, dst):
    """The same model with its probabilities turned around: p -> 1 - p (calibration table)."""
    shutil.copytree(src, dst)
    side = json.loads((dst / "model.json").read_text())
    side["calibration"]["y"] = [1.0 - v for v in side["calibration"]["y"]]
    (dst / "model.json").write_text(json.dumps(side))
    return dst


def _figures(leg) -> dict:
    """A leg's figures but its name and the measured latency (wall time differs between runs)."""
    return {k: v for k, v in leg.to_dict().items() if k not in ("name", "latency_p999_ns")}


def _entries(result):
    o = result.orders
    return o[(o["kind"] == 0) & np.isin(o["role"], ENTRY_ROLES)]


def test_scaled_config_scales_every_size_knob_down_to_whole_lots():
    cfg = scaled_config({"engine": {"equity": 50_000.0}, "pre_trade": {"max_position_lots": 10, "max_open_orders": 4},
                         "strategy": {"fixed_qty_lots": 7, "max_qty_lots": 0}}, 0.3)
    assert cfg["engine"]["equity"] == pytest.approx(15_000.0)
    assert cfg["pre_trade"]["max_position_lots"] == 3          # floor(10 * 0.3)
    assert cfg["pre_trade"]["max_open_orders"] == 4            # a count, not a size
    assert cfg["strategy"]["fixed_qty_lots"] == 2              # floor(7 * 0.3)
    assert cfg["strategy"]["max_qty_lots"] == 0                # off stays off
    full = scaled_config(None, 1.0)
    assert scaled_config(None, 0.25)["pre_trade"]["max_notional"] == full["pre_trade"]["max_notional"] // 4
    with pytest.raises(ConfigError, match="max_position_lots 2 x share 0.25 rounds to 0"):
        scaled_config({"pre_trade": {"max_position_lots": 2}}, 0.25)


def test_fraction_scales_the_challenger_legs_sizes(stream, models):
    good, _ = models
    res = run_canary(stream, good, good, F)
    full = run(stream, good, config=scaled_config(None, 1.0), progress=False)
    ch, champ = res.challenger, res.champion
    assert ch.capital == pytest.approx(F * 100_000.0) and champ.capital == pytest.approx((1 - F) * 100_000.0)
    # the caps bind on this stream: the largest position of each leg is its share of 100 lots
    assert (ch.max_abs_position, champ.max_abs_position) == (25, 75)
    assert np.abs(ch.result.decisions["position"]).max() <= 25
    # at every decision where both the full-budget run and the canary leg enter, the canary's
    # entry is the fraction of the full one, by whole lots
    a, b = _entries(full), _entries(ch.result)
    _, ia, ib = np.intersect1d(a["ts"], b["ts"], return_indices=True)
    assert ia.size >= 10
    assert np.all(np.abs(b["qty"][ib] - np.floor(F * a["qty"][ia])) <= 1)
    assert np.all(b["qty"][ib] <= a["qty"][ia])
    # exposure: challenger / champion mean |position| near F / (1 - F) (measured 0.954 of it)
    assert res.exposure_ratio == pytest.approx(F / (1 - F), rel=0.15)
    # the same model as challenger is its own control: identical, kept, never rolled back
    assert _figures(ch) == _figures(res.control)
    assert res.decision == "keep" and res.ab["decision"] == "no_difference"
    assert not res.rollback["rollback"]


def test_inverted_challenger_is_rolled_back(stream, models):
    good, inverted = models
    res = run_canary(stream, good, inverted, F)
    assert res.decision == "rollback"
    assert res.ab["decision"] == "a_better" and res.ab["n_required"] == 200
    assert any(r.startswith("A/B: champion (control) better") for r in res.reasons)
    # its decisions are the good model's turned around
    p_good, p_inv = res.control.result.decisions["p"], res.challenger.result.decisions["p"]
    np.testing.assert_allclose(p_inv, 1.0 - p_good, atol=1e-12)


def test_drawdown_trigger_rolls_back_what_the_ab_test_keeps(stream, models):
    good, _ = models
    base = run_canary(stream, good, good, F)
    dd = base.challenger.max_drawdown
    assert dd > 0
    policy = RollbackPolicy(max_drawdown=dd / 2)
    res = run_canary(stream, good, good, canary=CanaryConfig(fraction=F, policy=policy))
    assert res.ab["decision"] == "no_difference"
    assert res.decision == "rollback"
    assert res.reasons == [f"max_drawdown {dd:.6g} beyond {dd / 2:.6g}"]


def test_fixed_sample_not_reached_keeps(stream, models):
    good, inverted = models
    res = run_canary(stream, good, inverted, canary=CanaryConfig(fraction=F, n_required=5_000))
    assert res.ab["decision"] == "insufficient_sample" and res.ab["pvalue"] is None
    # only a trigger or the challenger's kill switch can roll back now
    killed = res.challenger.kill_reason != "none"
    assert res.decision == ("rollback" if res.rollback["rollback"] or killed else "keep")
    assert not any(r.startswith("A/B: champion") for r in res.reasons)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5, math.nan])
def test_fraction_outside_the_open_interval_is_refused(stream, models, fraction):
    good, _ = models
    with pytest.raises(ConfigError, match=r"fraction must be in \(0, 1\)"):
        run_canary(stream, good, good, fraction)


def test_missing_references_are_refused(stream, models, tmp_path, monkeypatch):
    good, _ = models
    monkeypatch.delenv("BOT4_REGISTRY", raising=False)
    with pytest.raises(ModelError, match="not found: no such model directory, and no registry"):
        run_canary(stream, good, tmp_path / "nope", F)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="is not a model directory"):
        run_canary(stream, tmp_path / "empty", good, F)
    from bot4.models.registry import Registry

    reg = Registry(tmp_path / "reg")
    entry = reg.register(good)
    reg.promote(entry.id, "champion")
    with pytest.raises(ModelError, match="alias 'challenger' is not set"):
        run_canary(stream, "champion", "challenger", F, registry=reg.root)
    with pytest.raises(ModelError, match="no model matches 'abcdef'"):
        run_canary(stream, "champion", "abcdef", F, registry=reg.root)
    # registry references resolve (verified checkout) and run like the directory
    by_ref = run_canary(stream, "champion", entry.id[:8], F, registry=reg.root)
    by_dir = run_canary(stream, good, good, F)
    assert _figures(by_ref.challenger) == _figures(by_dir.challenger)


def _cli(*args, registry=None):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    env.pop("BOT4_REGISTRY", None)
    if registry:
        env["BOT4_REGISTRY"] = str(registry)
    return subprocess.run([sys.executable, "-m", "bot4.cli", "models", "canary", *args], capture_output=True,
                          text=True, timeout=300, env=env)


def test_cli(models):
    good, inverted = models
    r = _cli("--champion", str(good), "--challenger", str(inverted), "--fraction", "0.25", "--seed", "7",
             "--events", "60000", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["decision"] == "rollback" and out["challenger"]["share"] == 0.25
    assert out["control"]["max_position_lots"] == 25 and out["champion"]["max_position_lots"] == 75
    r = _cli("--champion", str(good), "--challenger", "nope", "--fraction", "0.25")
    assert r.returncode == 2 and "model 'nope' not found" in r.stderr and "generating" not in r.stderr
    r = _cli("--champion", str(good), "--challenger", str(good), "--fraction", "1")
    assert r.returncode == 2 and "fraction must be in (0, 1)" in r.stderr


@pytest.mark.realdata
def test_canary_on_a_real_recording(shared_data, tmp_path):
    from bot4.data import load

    pinned = Path(__file__).resolve().parents[1] / "engine" / "pinned" / "model"
    data = load(shared_data / "binance_hftbacktest" / "usdm" / "ethusdt_20240808.gz", progress=False)
    same = run_canary(data, pinned, pinned, F)
    assert same.decision == "keep" and same.ab["decision"] == "no_difference"
    assert same.challenger.max_position_lots == 25 and same.challenger.max_abs_position <= 25
    assert same.champion.max_abs_position <= 75
    full = run(data, pinned, config=scaled_config(None, 1.0), progress=False)
    a, b = _entries(full), _entries(same.challenger.result)
    _, ia, ib = np.intersect1d(a["ts"], b["ts"], return_indices=True)
    assert ia.size >= 1
    assert np.all(np.abs(b["qty"][ib] - np.floor(F * a["qty"][ia])) <= 1)
    inv = run_canary(data, pinned, _inverted(pinned, tmp_path / "inverted"), F)
    assert inv.ab["n_required"] == 200 and inv.ab["n_a"] == inv.ab["n_b"] > 200
    assert not inv.rollback["rollback"] and inv.challenger.kill_reason == "none"
    assert inv.decision == {"b_better": "promote", "a_better": "rollback", "no_difference": "keep"}[inv.ab["decision"]]
    np.testing.assert_allclose(inv.challenger.result.decisions["p"], 1.0 - inv.control.result.decisions["p"],
                               atol=1e-12)
    assert _figures(inv.control) == _figures(same.challenger)
