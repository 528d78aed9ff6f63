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
    assert cfg.strategy_name == "threshold_bracket"
    assert cfg.strategy.long_threshold == 0.55
    assert cfg.engine.equity == 100_000.0
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
    ("[strategy]\nentry_probability = 0.55\n", "moved to strategy.long_threshold"),
    ("[strategy]\nequity = 5.0\n", "moved to engine.equity"),
    ("[strategy]\nname = 'nope'\n", "unknown strategy 'nope'"),
    ("[strategy]\nname = 'market_maker'\nlong_threshold = 0.6\n", "long_threshold"),
    ("[engine]\nequity = 0\n", "equity"),
    ("[sim]\nqueue_model = 3\n", "queue_model"),
    ("[risk.pre_trade]\nmax_position_lots = 9_223_372_036_854_775_807\n[risk.kill_switch]\nmax_latency_ns = -1\n",
     "max_latency_ns"),
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


def _non_default(f):
    """A value inside the field's bounds that differs from its default."""
    d = f["default"]
    if f["type"] == "bool":
        return not d
    if f["type"] == "str":
        return {"risk_averse": "power"}.get(d, d)
    lo = f["min"] if f["min"] is not None else -1e9
    hi = f["max"] if f["max"] is not None else 1e18
    cand = [d + 1, d - 1, (lo + hi) / 2] if f["type"] == "int" else [d * 0.5 + (hi if hi < 1e17 else d + 1) * 0.5, d * 0.5]
    for c in cand:
        c = int(c) if f["type"] == "int" else float(c)
        ok_lo = f["min"] is None or (c > lo if f["min_exclusive"] else c >= lo)
        ok_hi = f["max"] is None or (c < hi if f["max_exclusive"] else c <= hi)
        if ok_lo and ok_hi and c != d:
            return c
    raise AssertionError(f"no non-default value for {f}")


def _toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    return repr(v)


@pytest.mark.parametrize("strategy", sorted(__import__("bot4.config", fromlist=["STRATEGIES"]).STRATEGIES))
def test_every_toml_field_reaches_the_core_and_back(tmp_path, strategy):
    """Each field of every section (declared once in the core) set to a non-default value in TOML
    arrives in the core unchanged, and the TOML sections hold exactly the core's fields."""
    from bot4 import _core
    from bot4.config.risk import schema

    sch = schema()
    where = {"engine": "engine", "sizing": "risk.sizing", "pre_trade": "risk.pre_trade",
             "kill_switch": "risk.kill_switch", "sim": "sim"}
    lines, want = [], {}
    for sec, table in where.items():
        lines.append(f"[{table}]")
        want[sec] = {}
        for f in sch[sec]:
            v = _non_default(f)
            want[sec][f["name"]] = v
            lines.append(f"{f['name']} = {_toml_value(v)}")
    lines += ["[strategy]", f'name = "{strategy}"']
    want["strategy"] = {}
    for f in sch["strategies"][strategy]["fields"]:
        v = _non_default(f)
        want["strategy"][f["name"]] = v
        lines.append(f"{f['name']} = {_toml_value(v)}")
    p = tmp_path / "all.toml"
    p.write_text("\n".join(lines) + "\n")
    cfg = load_config(p)
    core = _core.engine.echo_config(cfg.to_core_dict())
    for sec, fields in want.items():
        assert set(core[sec]) == set(fields), sec  # every core field is reachable from TOML
        for k, v in fields.items():
            assert core[sec][k] == pytest.approx(v), f"{sec}.{k}"
