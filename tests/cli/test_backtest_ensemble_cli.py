"""`bot4 backtest --model A --model B` with an [ensemble] section: several model slots combined in
the core, the ensemble stage in the run's perf manifest; one --model with an ensemble is a mistake
reported before any work."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bot4.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
from pinned_outputs import MODEL_DIR  # noqa: E402

ENSEMBLE = '[ensemble]\nmode = "mean"\nscale_dispersion = 0.0\nsize_scale = 0.5\n'


def test_one_model_with_an_ensemble_is_refused_up_front(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("bot4.pipeline.run_pipeline", lambda *a, **k: (_ for _ in ()).throw(AssertionError("ran")))
    cfg = tmp_path / "ens.toml"
    cfg.write_text(ENSEMBLE)
    code = main(["backtest", "--model", str(MODEL_DIR), "--risk-config", str(cfg), "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "--model" in err and "combines several models" in err and "once per model slot" in err


def test_several_models_backtest_with_the_ensemble_stage_in_perf(tmp_path, capsys):
    cfg = tmp_path / "ens.toml"
    cfg.write_text(ENSEMBLE)
    out = tmp_path / "runs"
    out.mkdir()
    code = main(["backtest", "--model", str(MODEL_DIR), "--model", str(MODEL_DIR), "--risk-config", str(cfg),
                 "--events", "30000", "--out", str(out), "--json", "--quiet"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    doc = json.loads(captured.out)
    assert doc["decisions"] > 0 and "ensemble" in doc["latency_ns"]
    perf = json.loads(Path(doc["perf"]).read_text())
    stage = next(v for k, v in perf["stages"].items() if k.endswith("ensemble"))
    assert stage["count"] == doc["decisions"] and {"p50", "p95", "p99", "p999"} <= set(stage)
    assert stage["mean"] > 0  # the stage did work (it is 0 ns at every decision without an ensemble)
