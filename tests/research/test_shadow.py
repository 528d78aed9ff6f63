"""Shadow models: scored by the engine beside the champion on the same rows, never traded, and
compared afterwards (bot4.research.shadow)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from bot4.backtest import run
from bot4.research.shadow import compare, direction_labels
from bot4.sim import generate

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
from pinned_outputs import CONFIG, EMBEDDED, MODEL_DIR  # noqa: E402


@pytest.fixture(scope="module")
def stream():
    return generate(seed=EMBEDDED["seed"], n_events=60_000)


@pytest.fixture(scope="module")
def challenger(tmp_path_factory, stream):
    from bot4.models import load
    from bot4.research import TrainConfig, train

    out = tmp_path_factory.mktemp("challenger")
    train(generate(seed=99, n_events=80_000), TrainConfig(n_estimators=12, max_depth=3), out, progress=False)
    return load(out)


def test_shadow_scores_equal_the_model_run_as_champion_and_never_trade(stream, challenger):
    plain = run(stream, MODEL_DIR, config=CONFIG, progress=False)
    both = run(stream, MODEL_DIR, config=CONFIG, progress=False, shadow=challenger)
    alone = run(stream, challenger, config=CONFIG, progress=False)
    assert plain.scores is None and both.scores.size == both.decisions.size
    assert set(np.unique(both.scores["slot"])) == {1}
    np.testing.assert_array_equal(both.scores["ts"], both.decisions["ts"])
    # the challenger's score at each decision is what it gives as the champion on the same row
    np.testing.assert_array_equal(both.scores["p"], alone.decisions["p"])
    assert not np.array_equal(both.scores["p"], both.decisions["p"])
    # trading follows the champion only
    for k in ("decisions", "orders", "fills", "equity"):
        a, b = getattr(plain, k), getattr(both, k)
        for f in a.dtype.names:
            np.testing.assert_array_equal(a[f], b[f], err_msg=f"{k}.{f}")


def test_compare_reports_both_models_on_the_same_labels(stream, challenger):
    res = run(stream, MODEL_DIR, config=CONFIG, progress=False, shadow=[challenger, MODEL_DIR])
    rep = compare(res, stream, horizon_ns=2_000_000_000, n_required=30)
    assert set(rep.shadows) == {1, 2} and rep.n_labelled > 100
    # slot 2 is the champion again: same metrics, and the A/B test finds no difference
    assert rep.shadows[2] == rep.champion
    assert rep.ab[2]["decision"] == "no_difference"
    assert rep.shadows[1] != rep.champion
    for m in (rep.champion, rep.shadows[1]):
        assert 0.0 <= m["brier"] <= 1.0 and m["log_loss"] > 0 and 0.0 <= m["auc"] <= 1.0
    assert rep.ab[1]["n_a"] == rep.ab[1]["n_b"] == rep.n_spaced >= 30
    # scored at the same decisions: a paired test (df = n - 1), not Welch's
    assert rep.ab[1]["test"] == "paired" and rep.ab[1]["df"] == 29.0 and rep.ab[2]["statistic"] is None
    assert rep.as_json()["ab"]["1"]["decision"] in {"a_better", "b_better", "no_difference"}


def test_direction_labels():
    ts = np.array([0, 10, 20, 30, 40], np.int64)
    mid = np.array([100.0, 101.0, 101.0, 99.0, np.nan])
    y, ok = direction_labels(np.array([0, 5, 10, 15, 35]), ts, mid, 10)
    # 0 -> 10: up; 5 -> 15 (mid at 0 then 10): up; 10 -> 20: flat (dropped); 15 -> 25: flat; 35: past the data
    assert ok.tolist() == [True, True, False, False, False]
    assert y[ok].tolist() == [1, 1]
    with pytest.raises(ValueError, match="horizon"):
        direction_labels(np.array([0]), ts, mid, 0)


def test_errors(stream, challenger):
    with pytest.raises(ValueError, match="champion"):
        run(stream, None, config=CONFIG, progress=False, shadow=challenger, strategy="top_of_book")
    res = run(stream, MODEL_DIR, config=CONFIG, progress=False)
    with pytest.raises(ValueError, match="no shadow"):
        compare(res, stream)
