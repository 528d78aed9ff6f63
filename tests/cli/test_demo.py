"""`bot4 demo` and `bot4 backtest`: train on the first part, purge gap, backtest the rest, report."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from recordings import BTCUSDT, data_path

REFERENCE = data_path(*BTCUSDT)
REQUIRED = ("events", "decisions", "orders", "fills", "rejections", "pnl", "max_drawdown", "latency_ns",
            "seconds")
SMALL_MODEL = ("--trees", "30", "--depth", "3")

pytestmark = pytest.mark.skipif(importlib.util.find_spec("bot4.backtest") is None,
                                reason="bot4.backtest (the engine's Python API) is not built yet")


def run_cli(*args, timeout=120):
    env = dict(os.environ)
    env.pop("BOT4_SIMD", None)
    return subprocess.run([sys.executable, "-m", "bot4.cli", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=timeout)


def _check(doc: dict, out_dir) -> None:
    for key in REQUIRED:
        assert key in doc, key
    assert doc["events"] > 0 and isinstance(doc["rejections"], dict)
    for stage, s in doc["latency_ns"].items():
        assert {"p50", "p99", "p999"} <= set(s), stage
    run_dir = Path(doc["out"])   # each run writes its own folder under --out
    assert run_dir.parent == out_dir and run_dir.is_dir()
    assert os.path.samefile(doc["report"], run_dir / "report.html")
    assert os.path.samefile(doc["perf"], run_dir / "perf.json")
    html = (run_dir / "report.html").read_text()
    for sec in ("equity", "drawdown", "position", "latency", "calibration"):
        assert f"<section id='{sec}'>" in html
    perf = json.loads((run_dir / "perf.json").read_text())
    assert perf["machine"]["cpu"] and perf["stages"]


def test_demo_embedded_stream_json(tmp_path):
    out = run_cli("demo", "--events", "200000", "--out", tmp_path, "--json", *SMALL_MODEL, timeout=60)
    assert out.returncode == 0, out.stderr[-3000:]
    doc = json.loads(out.stdout)
    _check(doc, tmp_path)
    assert doc["run"]["trained"] is True
    split = doc["run"]["split"]
    assert split["gap_ns"] > 0 and split["start_ns"] > split["cut_ns"]
    assert doc["source"].startswith("embedded default market stream")
    assert (Path(doc["out"]) / "model" / "model.onnx").exists()


def test_demo_text_summary(tmp_path):
    out = run_cli("demo", "--events", "100000", "--out", tmp_path, *SMALL_MODEL, timeout=60)
    assert out.returncode == 0, out.stderr[-3000:]
    for needle in ("embedded default market stream", "events/s", "decisions", "orders", "fills", "pnl",
                   "max drawdown", "p99.9", "report", "perf manifest"):
        assert needle in out.stdout, needle


@pytest.mark.realdata
def test_backtest_reference_file_json_then_reuse_the_model(tmp_path):
    first = tmp_path / "first"
    out = run_cli("backtest", "--data", REFERENCE, "--json", "--out", first, *SMALL_MODEL)
    assert out.returncode == 0, out.stderr[-3000:]
    doc = json.loads(out.stdout)
    _check(doc, first)
    second = tmp_path / "second"
    out = run_cli("backtest", "--data", REFERENCE, "--model", doc["model"], "--json", "--out", second)
    assert out.returncode == 0, out.stderr[-3000:]
    doc2 = json.loads(out.stdout)
    _check(doc2, second)
    assert doc2["run"]["trained"] is False and doc2["events"] > doc["events"]
