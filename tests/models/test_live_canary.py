"""Live canary from a paper session: the shadow's scores judged against the champion's on the
session's own decisions, from the PaperResult or from the journal alone, with a fixed-n paired
test on per-decision losses."""
from __future__ import annotations

import dataclasses
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from bot4 import contracts as c
from bot4.models.live_canary import journal_market_data, live_canary, session_scores
from bot4.research.shadow import direction_labels, mid_path
from bot4.services.session import run_paper
from bot4.sim import generate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from engine.pinned_outputs import CONFIG, MODEL_DIR  # noqa: E402

H = 2_000_000_000


@pytest.fixture(scope="module")
def data():
    return generate(seed=11, n_events=40_000)


@pytest.fixture(scope="module")
def session(data, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("live")
    alt = tmp / "alt"
    shutil.copytree(MODEL_DIR, alt)
    side = json.loads((alt / "model.json").read_text())
    side.pop("calibration")
    (alt / "model.json").write_text(json.dumps(side))
    return run_paper(data, model=MODEL_DIR, config=CONFIG, shadow=[alt, MODEL_DIR], journal=tmp / "j")


def test_journal_and_result_give_the_same_scores_and_verdict(session, data):
    d1, s1 = session_scores(session)
    d2, s2 = session_scores(session.journal)
    assert np.array_equal(d1, d2) and np.array_equal(s1, s2) and s1.size == 2 * d1.size > 1000
    rebuilt = journal_market_data(session.journal)
    assert np.array_equal(rebuilt.book, data.book)
    a = live_canary(session, data, horizon_ns=H, n_required=30)
    b = live_canary(session.journal, horizon_ns=H, n_required=30)
    assert a.as_json() == b.as_json()
    # slot 2 is the champion itself: identical losses, nothing to test, kept
    assert a.shadows[2] == a.champion and a.tests[2]["decision"] == "no_difference" and a.decisions[2] == "keep"
    assert a.tests[2]["statistic"] is None and "identical" in a.reasons[2]
    assert a.tests[1]["test"] == "paired" and a.tests[1]["df"] == 29.0 and a.n_spaced >= 30


def _with_shadow(session, data, p_of_label):
    """The session's decisions with a made-up shadow whose p is a function of the label."""
    dec, _ = session_scores(session)
    ts, mid = mid_path(data, 1)
    y, mask = direction_labels(np.asarray(dec["ts"], np.int64), ts, mid, H)
    p = np.where(mask, p_of_label(y), 0.5)
    scores = [c.ShadowScore(ts=int(d["ts"]), instrument=int(d["instrument"]), slot=1, p=float(q))
              for d, q in zip(dec, p)]
    return dataclasses.replace(session, scores=scores)


@pytest.mark.parametrize(("p_of_label", "verdict"), [(lambda y: np.where(y == 1, 0.8, 0.2), "promote"),
                                                     (lambda y: np.where(y == 1, 0.02, 0.98), "rollback")])
def test_a_shadow_that_knows_the_label_is_promoted_its_mirror_rolled_back(session, data, p_of_label, verdict):
    for loss in ("log_loss", "brier"):
        r = live_canary(_with_shadow(session, data, p_of_label), data, horizon_ns=H, n_required=30, loss=loss)
        assert r.decisions[1] == verdict and r.tests[1]["pvalue"] < 0.05, r.reasons


def test_fixed_sample_not_reached_keeps(session, data):
    r = live_canary(session, data, horizon_ns=H, n_required=10_000)
    assert r.decisions[1] == "keep" and r.tests[1]["decision"] == "insufficient_sample"
    assert r.tests[1]["pvalue"] is None


def test_refusals(session, data, tmp_path):
    with pytest.raises(ValueError, match="no shadow scores"):
        live_canary(dataclasses.replace(session, scores=[]), data)
    with pytest.raises(ValueError, match="loss must be"):
        live_canary(session, data, loss="hinge")
    with pytest.raises(ValueError, match="market data"):
        live_canary(dataclasses.replace(session, journal=None))
    with pytest.raises(ValueError, match="do not pair"):
        live_canary(dataclasses.replace(session, scores=session.scores[:-4]), data)
    with pytest.raises(FileNotFoundError):
        live_canary(tmp_path / "nothing")


def test_cli_paper_with_shadow_then_canary_on_its_journal(tmp_path, capsys, session):
    from bot4.cli import main

    alt = session.journal.parent / "alt"
    j = tmp_path / "j"
    assert main(["paper", "--events", "30000", "--seed", "11", "--model", str(MODEL_DIR), "--shadow", str(alt),
                 "--journal", str(j), "--fsync", "never", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["scores"] == got["decisions"] > 1000
    assert main(["models", "canary", "--session", str(j), "--horizon-ms", "2000", "--n", "20", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    lib = live_canary(j, horizon_ns=H, n_required=20)
    assert out == lib.as_json() | {"session": str(j)}
    assert out["decisions"]["1"] in ("promote", "keep", "rollback") and out["tests"]["1"]["test"] == "paired"
    assert main(["models", "canary", "--session", str(j), "--horizon-ms", "2000", "--n", "20"]) == 0
    text = capsys.readouterr().out
    assert "shadow 1" in text and "paired log_loss" in text
    assert main(["models", "canary", "--session", str(tmp_path / "none")]) == 2
    assert "no session journal" in capsys.readouterr().err
    assert main(["models", "canary"]) == 2
    assert "--fraction" in capsys.readouterr().err
