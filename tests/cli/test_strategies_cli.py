"""`bot4 strategies [--json]` and `bot4 backtest --strategy SPEC`: the built-ins listed from the
core's declarations; a user strategy (a .py or .pyx file) picked on the command line trades
exactly as the built-in it re-implements; a bad spec stops the run before any data is read."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bot4 import strategies

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "tests" / "engine" / "pinned" / "model"
EXAMPLES = ROOT / "examples"
PARAMS = {"long_threshold": 0.505, "stop_ticks": 5, "target_ticks": 8, "order_ttl_ns": 1_000_000_000,
          "max_qty_lots": 7}


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "bot4.cli", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=600)


def test_strategies_json_is_the_core_declaration():
    out = run_cli("strategies", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == json.loads(json.dumps(strategies.builtins()))


def test_strategies_text_lists_every_field():
    out = run_cli("strategies")
    assert out.returncode == 0, out.stderr
    for name, spec in strategies.builtins().items():
        assert f"{name}: {spec['doc']}" in out.stdout
        for f in spec["fields"]:
            assert f"    {f['name']} " in out.stdout
            assert f["doc"] in out.stdout


def _toml(path: Path, table: dict) -> Path:
    lines = ["[risk.pre_trade]", "max_position_lots = 10", "max_open_orders = 4", "", "[strategy]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in table.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def _backtest(tmp_path, name, *extra):
    out = run_cli("backtest", "--model", MODEL, "--events", 120_000, "--seed", 7, "--json", "-q",
                  "--out", tmp_path / name, *extra)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.mark.parametrize("spec", ["python_strategy.py", "cython_strategy/threshold.pyx"])
def test_backtest_with_a_user_strategy_matches_the_builtin(tmp_path, spec, monkeypatch):
    if spec.endswith(".pyx"):
        pytest.importorskip("Cython")
        monkeypatch.setenv("BOT4_CACHE_DIR", str(tmp_path / "cache"))
    builtin = _backtest(tmp_path, "builtin", "--risk-config", _toml(tmp_path / "b.toml", PARAMS))
    # the user strategy takes the same parameters as its constructor defaults
    user_file = tmp_path / Path(spec).name
    user_file.write_text(_with_defaults((EXAMPLES / spec).read_text(), PARAMS))
    user = _backtest(tmp_path, "user", "--strategy", user_file, "--risk-config",
                     _toml(tmp_path / "u.toml", {}))
    assert builtin["orders"] > 0 and builtin["fills"] > 0
    for key in ("events", "decisions", "orders", "fills", "pnl", "max_drawdown", "rejections"):
        assert user[key] == builtin[key], key


def _with_defaults(src: str, params: dict) -> str:
    """The example with its constructor defaults set to `params` (a user strategy's parameters
    live in its own code)."""
    import re

    for k, v in params.items():
        src, n = re.subn(rf"\b{k}=[0-9_.]+", f"{k}={v}", src, count=1)
        assert n == 1, k
    return src


def test_bad_strategy_spec_exits_2_before_reading_data(tmp_path):
    out = run_cli("backtest", "--data", tmp_path / "missing.gz", "--strategy", "no_such_strategy")
    assert out.returncode == 2
    # the strategy is checked with the other arguments; the missing data file is reported first
    # or the strategy: either way one line, no traceback
    assert "Traceback" not in out.stderr and out.stderr.count("\n") == 1
    out = run_cli("backtest", "--strategy", "no_such_strategy", "--events", 1000)
    assert out.returncode == 2 and "--strategy: unknown strategy 'no_such_strategy'" in out.stderr
    bad = _toml(tmp_path / "other.toml", {"long_threshold": 0.6})
    out = run_cli("backtest", "--strategy", "market_maker", "--risk-config", bad, "--events", 1000)
    assert out.returncode == 2
    assert "[strategy] configures threshold_bracket (long_threshold)" in out.stderr
