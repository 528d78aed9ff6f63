"""User mistakes on the command line: exit 2 with one line naming the option and the fix, found
before any long work (no data read, no model trained, nothing written). Ctrl-C: exit 130, one
line, no output left. Run folders, --version, progress on stderr with --json."""

from __future__ import annotations

import gzip
import importlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot4.cli import main

USDM = (b'1723161255030314667 {"stream":"btcusdt@depth@0ms","data":{"e":"depthUpdate","E":1723161256299,'
        b'"T":1723161256298,"s":"BTCUSDT","U":5,"u":7,"pu":4,"b":[["61496.50","0.010"]],"a":[]}}\n')
SMALL = ["--events", "60000", "--trees", "5", "--depth", "2"]


@pytest.fixture
def files(tmp_path):
    usdm = tmp_path / "btcusdt.gz"
    usdm.write_bytes(gzip.compress(USDM))
    junk = tmp_path / "junk.gz"
    junk.write_bytes(b"\x00garbage\x01" * 10)
    afile = tmp_path / "afile"
    afile.write_text("x")
    return {"usdm": usdm, "junk": junk, "afile": afile, "dir": tmp_path, "missing": tmp_path / "no" / "such" / "dir"}


@pytest.fixture
def no_long_work(monkeypatch):
    """Fails the test if data is read or generated, a model trained or a pipeline started."""
    def refuse(what):
        def f(*a, **k):
            raise AssertionError(f"{what} started before the mistake was reported")
        return f

    monkeypatch.setattr("bot4.sources.load_stream", refuse("loading"))
    monkeypatch.setattr("bot4.pipeline.run_pipeline", refuse("the pipeline"))
    monkeypatch.setattr("bot4.sources.stream_parts", refuse("streaming"))
    monkeypatch.setattr("bot4.pipeline.run_streamed", refuse("the streamed pipeline"))
    monkeypatch.setattr(importlib.import_module("bot4.research.train"), "train", refuse("training"))
    import bot4.sim

    monkeypatch.setattr(importlib.import_module("bot4.sim.generate"), "generate", refuse("generating"))
    monkeypatch.setattr(bot4.sim, "generate", refuse("generating"))


def _one_line_error(capsys, code: int, *needles: str) -> str:
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and "market=" not in err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


MISTAKES = [
    # negative or zero --events on every command that takes it
    (["replay", "--events", "-5"], ["--events", "at least 1"]),
    (["demo", "--events", "-1"], ["--events", "at least 1"]),
    (["backtest", "--events", "0"], ["--events", "at least 1"]),
    (["train", "--out", "{dir}/m", "--events", "-3"], ["--events", "at least 1"]),
    (["features", "--out", "{dir}/f.npz", "--events", "-3"], ["--events", "at least 1"]),
    (["sim", "generate", "--out", "{dir}/g.npz", "--events", "-3"], ["--events", "at least 1"]),
    (["sim", "compare", "--data", "{usdm}", "--events", "-3"], ["--events", "at least 1"]),
    # --out: an existing file, a missing parent folder, a folder that holds another run
    (["demo", "--out", "{afile}"], ["--out", "is a file", "name a folder"]),
    (["backtest", "--out", "{missing}"], ["--out", "does not exist", "create it"]),
    (["train", "--out", "{missing}"], ["--out", "does not exist", "create it"]),
    (["train", "--out", "{dir}"], ["--out", "already holds files", "new"]),
    (["features", "--out", "{missing}/f.npz"], ["--out", "does not exist"]),
    (["features", "--out", "{dir}"], ["--out", "does not end in .npz or .parquet"]),
    (["sim", "generate", "--out", "{missing}/g.npz"], ["--out", "does not exist"]),
    # --data: a folder, a missing file, the same file twice, garbage
    (["replay", "--data", "{dir}"], ["--data", "is a folder", "name a file inside it"]),
    (["demo", "--data", "{dir}/nope.gz"], ["--data", "no such file"]),
    (["replay", "--data", "{usdm}", "{usdm}"], ["--data", "given twice", "name each file once"]),
    (["backtest", "--data", "{usdm}", "{dir}/./btcusdt.gz"], ["--data", "given twice"]),
    (["replay", "--data", "{junk}"], ["--data", "not a recording bot4 reads"]),
    (["sim", "calibrate", "--data", "{dir}"], ["--data", "is a folder"]),
    # --venue that does not match the file
    (["replay", "--data", "{usdm}", "--venue", "binance-spot"], ["--venue", "pass --venue binance-usdm"]),
    (["demo", "--data", "{usdm}", "--venue", "tardis"], ["--venue", "pass --venue binance-usdm"]),
    (["features", "--out", "{dir}/f.npz", "--data", "{usdm}", "--venue", "lobster"], ["--venue", "binance-usdm"]),
    # model options that cannot train
    (["demo", "--trees", "0"], ["--trees", "from 1 to"]),
    (["train", "--out", "{dir}/m", "--trees", "-4"], ["--trees", "from 1 to"]),
    (["demo", "--trees", "1000000000000"], ["--trees", "from 1 to 100,000"]),
    (["demo", "--depth", "0"], ["--depth", "from 1 to 12"]),
    (["backtest", "--horizon", "0"], ["--horizon", "at least 1"]),
    (["train", "--out", "{dir}/m", "--dead-zone-bp", "-1"], ["--dead-zone-bp", ">= 0"]),
    (["train", "--out", "{dir}/m", "--model-seed", "-1"], ["--model-seed", "at least 0"]),
    (["demo", "--trees", "many"], ["--trees", "expected a whole number"]),
    (["sim", "calibrate", "--data", "{usdm}", "--levels", "0"], ["--levels"]),
    (["sim", "generate", "--out", "{dir}/g.npz", "--duration", "0"], ["--duration", "> 0"]),
    # --config was split: refused with a pointer
    (["demo", "--config", "risk.toml"], ["--config", "--risk-config FILE"]),
    (["backtest", "--config", "risk.toml"], ["--config", "--risk-config FILE"]),
    (["train", "--out", "{dir}/m", "--config", "f.toml"], ["--config", "--feature-config FILE"]),
    (["features", "--out", "{dir}/f.npz", "--config", "f.toml"], ["--config", "--feature-config FILE"]),
    # config and model files that are not there
    (["demo", "--risk-config", "{dir}/nope.toml"], ["--risk-config", "bot4 config check"]),
    (["train", "--out", "{dir}/m", "--feature-config", "{dir}/nope.toml"], ["--feature-config", "no such file"]),
    (["backtest", "--model", "{dir}"], ["--model", "not a model folder"]),
    # a streamed run trains nothing
    (["backtest", "--stream"], ["--stream", "pass --model DIR", "top_of_book"]),
    (["backtest", "--stream", "--strategy", "top_of_book", "--trees", "5"], ["--stream", "--trees", "--model DIR"]),
    (["features", "--stream", "--out", "{dir}/f.npz"], ["--out", ".npz cannot", ".parquet"]),
    (["sim", "generate", "--out", "{dir}/g.npz", "--params", "{dir}/nope.json"], ["--params", "no such file"]),
]


@pytest.mark.parametrize("argv, needles", MISTAKES, ids=[" ".join(a[:4]) for a, _ in MISTAKES])
def test_mistake_exits_2_with_one_line_before_any_work(files, no_long_work, capsys, argv, needles):
    argv = [a.format(**files) for a in argv]
    before = sorted(p.name for p in files["dir"].iterdir())
    code = main(argv)
    _one_line_error(capsys, code, *needles)
    assert sorted(p.name for p in files["dir"].iterdir()) == before, "a mistake wrote something"


def test_bad_toml_is_named_with_its_option(tmp_path, no_long_work, capsys):
    bad = tmp_path / "risk.toml"
    bad.write_text("[risk.sizing]\nno_such_field = 1\n")
    _one_line_error(capsys, main(["demo", "--risk-config", str(bad)]), "--risk-config", "bot4 config check")
    feat = tmp_path / "f.toml"
    feat.write_text("no_such_field = 1\n")
    _one_line_error(capsys, main(["train", "--out", str(tmp_path / "m"), "--feature-config", str(feat)]),
                    "--feature-config")


@pytest.mark.realdata
def test_spot_venue_on_the_usdm_recording(shared_data, no_long_work, capsys):
    usdm = shared_data / "binance_hftbacktest" / "usdm" / "btcusdt_20240808.gz"
    line = _one_line_error(capsys, main(["replay", "--data", str(usdm), "--venue", "binance-spot"]),
                           "--venue", "binance-usdm")
    assert "usdm" in line
    lobster = shared_data / "lobster_aapl" / "AAPL_2012-06-21_34200000_57600000_message_10.csv"
    _one_line_error(capsys, main(["replay", "--data", str(lobster), "--venue", "binance-usdm"]),
                    "--venue", "pass --venue lobster")


def test_version(capsys):
    from bot4 import __version__

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"bot4 {__version__}"


def test_generated_stream_is_accepted_by_replay(tmp_path, capsys):
    out = tmp_path / "g.npz"
    assert main(["sim", "generate", "--events", "2000", "--out", str(out), "--json"]) == 0
    gen = json.loads(capsys.readouterr().out)
    assert main(["replay", "--data", str(out), "--json"]) == 0
    captured = capsys.readouterr()
    rep = json.loads(captured.out)
    assert rep["events"] == gen["book_events"] + gen["order_events"] + gen["trade_events"]
    assert "as bot4-sim (told from the file" in captured.err   # the inferred venue is said
    assert [p.name for p in tmp_path.iterdir()] == ["g.npz"]   # written under a temporary name


def test_interrupt_during_training_exits_130_and_leaves_no_model_folder(tmp_path, monkeypatch, capsys):
    def interrupted(data, config, out_dir, **kw):
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        Path(out_dir, "model.onnx").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(importlib.import_module("bot4.research.train"), "train", interrupted)
    code = main(["train", "--events", "20000", "--out", str(tmp_path / "m"), "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 130 and err == ["bot4 train: interrupted; no output was written"]
    assert list(tmp_path.iterdir()) == []
    code = main(["demo", *SMALL, "--out", str(tmp_path / "runs"), "-q"])
    assert code == 130 and capsys.readouterr().err.strip() == "bot4 demo: interrupted; no output was written"
    assert list((tmp_path / "runs").iterdir()) == []


def test_sigint_during_the_xgboost_fit(tmp_path):
    """A real Ctrl-C (SIGINT) while XGBoost fits: exit 130, one line, no model folder."""
    env = dict(os.environ)
    env.pop("BOT4_SIMD", None)
    proc = subprocess.Popen([sys.executable, "-m", "bot4.cli", "train", "--events", "100000", "--trees", "100000",
                             "--depth", "6", "--out", str(tmp_path / "m")], stderr=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=env,
                            # as from a terminal: an ignored SIGINT would be inherited (a library in an
                            # earlier test can leave pytest ignoring it), and Python keeps it ignored
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    seen = []
    deadline = time.monotonic() + 120
    for line in proc.stderr:   # progress on stderr, about a line a second while fitting
        seen.append(line)
        if "fitting xgboost:" in line or time.monotonic() > deadline:
            break
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=60)
    assert any("fitting xgboost:" in s for s in seen), "".join(seen)[-2000:]
    assert proc.returncode == 130, rest[-2000:]
    assert rest.strip().splitlines()[-1] == "bot4 train: interrupted; no output was written"
    assert list(tmp_path.iterdir()) == []


def test_each_run_gets_its_own_folder_and_json_runs_show_progress(tmp_path):
    env = dict(os.environ)
    env.pop("BOT4_SIMD", None)
    cmd = [sys.executable, "-m", "bot4.cli", "demo", *SMALL, "--out", str(tmp_path)]
    first = subprocess.run([*cmd, "--json"], capture_output=True, text=True, env=env, timeout=300)
    assert first.returncode == 0, first.stderr[-3000:]
    doc = json.loads(first.stdout)   # stdout is the JSON object only
    for phase in ("generating", "split", "fitting xgboost", "backtesting", "writing"):
        assert phase in first.stderr, phase
    second = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]
    folder = [ln.split(None, 2)[2] for ln in second.stdout.splitlines() if ln.startswith("run folder")]
    runs = sorted(p for p in tmp_path.iterdir())
    assert len(runs) == 2 and Path(doc["out"]) in runs and Path(folder[0]) in runs
    for run in runs:
        assert {"report.html", "perf.json", "model", "fills.parquet"} <= {p.name for p in run.iterdir()}
