"""`bot4 models ...` end to end: register a trained model, promote, roll back on a trigger, refuse
a tampered store with exit status 2 and the cause on stderr, A/B at a fixed n."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from bot4.research import TrainConfig, train

REF = ("binance_hftbacktest", "usdm", "btcusdt_20240808.gz")
ETH = ("binance_hftbacktest", "usdm", "ethusdt_20240808.gz")


def _run(*args, registry):
    env = dict(os.environ, BOT4_REGISTRY=str(registry), PYTHONPATH=os.pathsep.join(sys.path))
    return subprocess.run([sys.executable, "-m", "bot4.cli", "models", *args], capture_output=True, text=True,
                          timeout=300, env=env)


@pytest.fixture(scope="module")
def two_models(shared_data, tmp_path_factory):
    from bot4.data import load

    data = load(shared_data.joinpath(*REF), progress=False)
    root = tmp_path_factory.mktemp("models")
    train(data, TrainConfig(n_estimators=20, max_depth=3), root / "a", progress=False)
    train(data, TrainConfig(n_estimators=30, max_depth=3), root / "b", progress=False)
    return root / "a", root / "b"


def test_lifecycle(two_models, shared_data, tmp_path):
    a, b = two_models
    reg = tmp_path / "reg"
    data = str(shared_data.joinpath(*REF))
    r = _run("register", str(a), "--data", data, "--promote", "champion", "--json", registry=reg)
    assert r.returncode == 0, r.stderr
    id_a = json.loads(r.stdout)["id"]
    r = _run("register", str(b), "--parent", "champion", "--json", registry=reg)
    id_b = json.loads(r.stdout)["id"]
    assert _run("promote", id_b[:8], registry=reg).returncode == 0
    rows = json.loads(_run("list", "--json", registry=reg).stdout)
    assert [(x["id"], x["aliases"]) for x in rows] == [(id_a, []), (id_b, ["champion"])]
    diff = json.loads(_run("diff", id_a, id_b, "--json", registry=reg).stdout)
    assert "model.onnx" in diff["files"] and diff["lineage"]["parent"] == {"a": None, "b": id_a}
    shown = json.loads(_run("show", "champion", "--json", registry=reg).stdout)
    assert shown["lineage"]["parent"] == id_a

    record = tmp_path / "metrics.json"
    record.write_text(json.dumps({"latency_p999_ns": 3e5, "errors": 0, "decisions": 100, "max_drawdown": 0.01,
                                  "sharpe": 2.0, "baseline_sharpe": 2.1, "observations": 1000}))
    r = _run("rollback", "--metrics", str(record), "--json", registry=reg)
    assert r.returncode == 0 and json.loads(r.stdout)["rolled_back"] is None
    record.write_text(json.dumps({"latency_p999_ns": 3e5, "errors": 5, "decisions": 100, "max_drawdown": 0.01,
                                  "sharpe": 2.0, "baseline_sharpe": 2.1, "observations": 1000}))
    r = _run("rollback", "--metrics", str(record), "--json", registry=reg)
    out = json.loads(r.stdout)
    assert out["rolled_back"]["id"] == id_a and out["reasons"][0].startswith("error_rate")

    # flip one bit of b's stored model file (champion is a again): every command reading b refuses
    meta = shown["files"]["model.onnx"]
    obj = reg / "objects" / "sha256" / meta["sha256"][:2] / meta["sha256"]
    os.chmod(obj, 0o644)
    blob = bytearray(obj.read_bytes())
    blob[100] ^= 1
    obj.write_bytes(bytes(blob))
    r = _run("promote", id_b, registry=reg)
    assert r.returncode == 2 and "model.onnx is corrupt or tampered" in r.stderr
    r = _run("checkout", id_b, str(tmp_path / "out"), registry=reg)
    assert r.returncode == 2 and "tampered" in r.stderr


def test_evaluate_on_another_instrument(two_models, shared_data):
    a, _ = two_models
    r = _run("evaluate", str(a), "--data", str(shared_data.joinpath(*ETH)), "--json", registry="unused")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["rows"] > 1000
    for part in ("raw", "calibrated", "regime_calibrated"):
        assert 0 < out[part]["brier"] < 1 and 0 <= out[part]["ece"] <= 1
    regimes = out["by_regime"]["regime_calibrated"]
    assert sum(m["rows"] for k, m in regimes.items() if k != "all") == out["rows"]


def test_ab_command(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.txt"
    a.write_text(json.dumps([.1, .3, .2, .5, .4]))
    b.write_text("0\n.1\n-.1\n.2\n.05\n.15\n")
    r = _run("ab", "--a", str(b), "--b", str(a), "--n", "5", "--json", registry="unused")
    out = json.loads(r.stdout)
    assert out["decision"] == "b_better" and out["n_required"] == 5
    r = _run("ab", "--a", str(a), "--b", str(b), "--n", "6", registry="unused")
    assert r.returncode == 0 and "insufficient sample" in r.stdout
    # --paired: b[i] - a[i] on the first 5 pairs (scipy.stats.ttest_rel)
    from scipy import stats

    b5 = tmp_path / "b5.txt"
    b5.write_text("0\n.1\n-.1\n.2\n.05\n")
    r = _run("ab", "--a", str(b5), "--b", str(a), "--n", "5", "--paired", "--json", registry="unused")
    out = json.loads(r.stdout)
    ref = stats.ttest_rel([.1, .3, .2, .5, .4], [0, .1, -.1, .2, .05])
    assert out["test"] == "paired" and out["df"] == 4.0
    assert out["statistic"] == pytest.approx(ref.statistic) and out["pvalue"] == pytest.approx(ref.pvalue)
    r = _run("ab", "--a", str(a), "--b", str(b), "--n", "5", "--paired", registry="unused")
    assert r.returncode == 2 and "same length" in r.stderr
