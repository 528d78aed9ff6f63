"""`bot4 paper`: a thin wrapper of run_paper (same summary), arguments checked up front."""

from __future__ import annotations

import json

from paper_helpers import MODEL_DIR

from bot4.cli import main
from bot4.services.session import run_paper


def test_paper_json_is_run_papers_summary(capsys, tmp_path):
    cfg = tmp_path / "risk.toml"
    cfg.write_text("")  # an empty config: every default
    assert main(["paper", "--events", "6000", "--seed", "5", "--model", str(MODEL_DIR), "--config", str(cfg),
                 "--journal", str(tmp_path / "j"), "--fsync", "never", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    lib = run_paper(None, seed=5, n_events=6000, model=MODEL_DIR)
    assert (got["orders"], got["fills"], got["decisions"], got["pnl"]) == \
        (len(lib.orders), len(lib.fills), lib.decisions, lib.pnl)
    assert got["decisions"] > 1000 and got["journal"] == str(tmp_path / "j")
    assert got["counters"]["engine"]["journal.records"] > got["decisions"]


def test_paper_text_and_bad_arguments(capsys, tmp_path):
    assert main(["paper", "--events", "3000", "--speed", "max"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("paper: ") and "frames in" in out
    assert main(["paper", "--speed", "0"]) == 2
    assert "speed must be a positive number" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text("[pre_trade]\nmax_position_lots = -3\n")
    assert main(["paper", "--events", "3000", "--config", str(bad)]) == 2
    assert "unknown field `pre_trade`" in capsys.readouterr().err


def test_paper_venue_service_restarts_shards_and_perf_from_the_command_line(capsys, tmp_path):
    perf = tmp_path / "perf.json"
    assert main(["paper", "--events", "6000", "--seed", "5", "--model", str(MODEL_DIR), "--processes",
                 "--venue-service", "--restarts", "1", "--journal", str(tmp_path / "j"), "--perf", str(perf),
                 "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    lib = run_paper(None, seed=5, n_events=6000, model=MODEL_DIR, control=None)
    assert (got["orders"], got["fills"], got["pnl"]) == (len(lib.orders), len(lib.fills), lib.pnl)
    assert got["counters"]["venue"]["exchanges"] > 0 and got["counters"]["supervisor"]["engine_restarts"] == 0
    assert got["perf"] == str(perf) and "engine:tick_to_decision" in json.loads(perf.read_text())["stages"]
    # one-line refusals, before anything starts
    assert main(["paper", "--events", "3000", "--restarts", "1"]) == 2
    assert "--restarts: needs --processes, --venue-service and --journal" in capsys.readouterr().err
    assert main(["paper", "--events", "3000", "--shards", "1;2"]) == 2
    assert "--shards: shards run as engine processes" in capsys.readouterr().err
    for bad in ("1,x", "1;;2"):
        assert main(["paper", "--events", "3000", "--processes", "--shards", bad]) == 2
        capsys.readouterr()
    assert main(["paper", "--events", "3000", "--restarts", "-1"]) == 2
