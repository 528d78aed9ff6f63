"""Risk/strategy config: frozen msgspec Structs from TOML, unknown fields rejected, and the
`bot4 config check FILE` command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest
from bot4.config import (
    Config,
    KillSwitchConfig,
    PreTradeConfig,
    SizingConfig,
    StrategyConfig,
    build_risk,
    load_config,
)
from bot4.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "risk.toml"


def bot4(*args):
    return subprocess.run([sys.executable, "-m", "bot4.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=120)


def test_example_file_passes():
    cfg = load_config(EXAMPLE)
    assert cfg.risk.kill_switch.max_drawdown == 0.05
    assert cfg.strategy.instrument == "BTCUSDT"
    sizer, kill, checks = build_risk(cfg)
    assert checks.config == msgspec.structs.asdict(cfg.risk.pre_trade)
    assert sizer.config == pytest.approx(msgspec.structs.asdict(cfg.risk.sizing))
    assert kill.config == msgspec.structs.asdict(cfg.risk.kill_switch)


def test_defaults_match_core_defaults():
    from bot4._core import risk

    assert risk.PreTradeChecks().config == msgspec.structs.asdict(PreTradeConfig())
    assert risk.PositionSizer().config == pytest.approx(msgspec.structs.asdict(SizingConfig()))


def test_every_core_field_is_in_python_and_back():
    # the same field names on both sides: to_core_dict() is accepted by the strict core parser
    d = Config().to_core_dict()
    from bot4._core import risk

    risk.PositionSizer(d["sizing"]), risk.KillSwitch(d["kill_switch"]), risk.PreTradeChecks(d["pre_trade"])


def test_unknown_field_rejected_with_its_name(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text("[risk.pre_trade]\nmax_postion_lots = 10\n")
    with pytest.raises(ConfigError, match="max_postion_lots") as e:
        load_config(p)
    assert "risk.pre_trade" in str(e.value) and str(p) in str(e.value)
    p.write_text("[strategy]\ncolour = 'red'\n")
    with pytest.raises(ConfigError, match="colour"):
        load_config(p)
    p.write_text("[riskk]\n")
    with pytest.raises(ConfigError, match="riskk"):
        load_config(p)


@pytest.mark.parametrize("toml,where", [
    ("[risk.sizing]\nkelly_fraction = 1.5\n", "kelly_fraction"),
    ("[risk.sizing]\nvar_confidence = 1.0\n", "var_confidence"),
    ("[risk.pre_trade]\nmax_open_orders = -1\n", "max_open_orders"),
    ("[risk.pre_trade]\nmax_position_lots = 1.5\n", "max_position_lots"),
    ("[risk.kill_switch]\nmax_latency_ns = 'fast'\n", "max_latency_ns"),
    ("[strategy]\nentry_probability = 0.55\nexit_probability = 0.6\n", "exit_probability"),
])
def test_invalid_values_name_the_field(tmp_path, toml, where):
    p = tmp_path / "bad.toml"
    p.write_text(toml)
    with pytest.raises(ConfigError, match=where):
        load_config(p)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.toml")
    p = tmp_path / "broken.toml"
    p.write_text("[risk.sizing\n")
    with pytest.raises(ConfigError, match="broken.toml"):
        load_config(p)


def test_structs_are_frozen():
    cfg = Config()
    with pytest.raises(AttributeError):
        cfg.risk.sizing.kelly_fraction = 1.0  # type: ignore[misc]


def test_every_field_documents_its_unit():
    for cls in (SizingConfig, PreTradeConfig, KillSwitchConfig, StrategyConfig):
        schema = msgspec.json.schema(cls)
        props = schema["$defs"][cls.__name__]["properties"]
        assert props and all(p.get("description") for p in props.values())


def test_cli_config_check_ok():
    r = bot4("config", "check", EXAMPLE)
    assert r.returncode == 0, r.stderr
    assert "config ok" in r.stdout and "max_position_lots" in r.stdout and "[strategy]" in r.stdout
    r = bot4("config", "check", EXAMPLE, "--json")
    assert r.returncode == 0
    out = json.loads(r.stdout)
    assert out["ok"] and out["config"]["risk"]["pre_trade"]["max_open_orders"] == 20


def test_cli_config_check_bad_file(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text("[risk.kill_switch]\nmax_drawdwon = 0.1\n")
    r = bot4("config", "check", p)
    assert r.returncode == 2
    assert "max_drawdwon" in r.stderr and r.stdout == ""
