"""`bot4 validate`: JSON on the embedded stream and on a real recording; bad options exit 2 with
one line naming the option."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from recordings import BTCUSDT, data_path

SMALL = ("--trees", "15", "--depth", "3", "--horizon", "20")


def run_cli(*args, timeout=600):
    env = dict(os.environ)
    env.pop("BOT4_SIMD", None)
    return subprocess.run([sys.executable, "-m", "bot4.cli", "validate", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=timeout)


def _check(doc, scheme, n_folds):
    for key in ("scheme", "folds", "sharpe", "deflated_sharpe", "pbo", "brier", "ece", "auc"):
        assert key in doc, key
    assert doc["scheme"] == scheme and len(doc["folds"]) == n_folds
    for f in doc["folds"]:
        assert f["train"]["samples"] > 0 and f["test"][0]["samples"] > 0
        assert f["test"][0]["start_ns"] < f["test"][0]["end_ns"]
        assert f["min_purge_ns"] > f["horizon_ns"] > 0
        assert {"auc", "brier", "ece", "pnl", "trades"} <= set(f["metrics"])


def test_embedded_stream_json_with_sentinels(tmp_path):
    out = tmp_path / "v"
    r = run_cli("--events", "100000", "--folds", "2", "--thresholds", "0.55,0.6", "--sentinels",
                "--permutations", "3", "--embargo", "500ms", "--out", out, "--json", *SMALL)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    _check(doc, "walk-forward", 2)
    assert doc["config"]["embargo_ns"] == 500_000_000
    names = [s["name"] for s in doc["sentinels"]]
    assert names == ["truncation", "permuted_labels_auc", "permuted_labels_sharpe", "planted_leak"]
    for s in doc["sentinels"]:
        assert {"statistic", "null_band", "pass"} <= set(s)
    assert json.loads((out / "validation.json").read_text())["scheme"] == "walk-forward"


@pytest.mark.parametrize("args,option", [
    (("--folds", "1"), "--folds"), (("--scheme", "shuffle"), "--scheme"), (("--embargo", "2 weeks"), "--embargo"),
    (("--scheme", "cpcv", "--folds", "2"), "--folds"), (("--thresholds", "0.4"), "--thresholds"),
    (("--folds", "3", "--scheme", "cpcv", "--test-groups", "3"), "--test-groups"),
    (("--after-train-data",), "--after-train-data")])
def test_bad_options_exit_2_with_one_line(args, option):
    r = run_cli(*args, timeout=60)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and option in lines[0], r.stderr


@pytest.mark.realdata
def test_btcusdt_walk_forward():
    r = run_cli("--data", data_path(*BTCUSDT), "--folds", "3", "--json", "-q", *SMALL)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    _check(doc, "walk-forward", 3)
    # 20 book-message rows span about a second on this recording; the purge is in time
    assert all(f["min_purge_ns"] > 500_000_000 for f in doc["folds"])
    assert doc["sharpe_detail"]["n_trials"] == 4


def test_sequence_model_needs_no_backtest():
    r = run_cli("--model", "lstm", timeout=60)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "--no-backtest" in lines[0] and "one feature row per decision" in lines[0], r.stderr


def test_attention_model_on_windows(tmp_path):
    pytest.importorskip("torch", reason="the sequence models need PyTorch: pip install 'bot4[deep]'")
    r = run_cli("--events", "40000", "--folds", "2", "--model", "attention", "--no-backtest", "--json", "--horizon", "20")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["config"]["model"] == "attention" and doc["config"]["sequence_length"] == 16
    assert len(doc["folds"]) == 2 and doc["sharpe"] is None
    for f in doc["folds"]:
        assert f["min_purge_ns"] > f["horizon_ns"] > 0 and 0 <= f["metrics"]["auc"] <= 1
