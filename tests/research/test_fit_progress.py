"""XGBoost fitting reports progress (trees fitted so far) on stderr through its callback."""

from __future__ import annotations

import importlib

import numpy as np
from xgboost import XGBClassifier

train_mod = importlib.import_module("bot4.research.train")   # bot4.research.train is also a function


def test_fit_progress_prints_trees_so_far(capsys):
    stage = train_mod._Stages(True)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    y = (X[:, 0] > 0).astype(int)
    clf = XGBClassifier(n_estimators=7, max_depth=2, n_jobs=1,
                        callbacks=[train_mod._fit_progress(stage, 7, every_s=0.0)])
    clf.fit(X, y)
    lines = capsys.readouterr().err.strip().splitlines()
    assert [ln.split("] ", 1)[1] for ln in lines] == [f"fitting xgboost: {i}/7 trees" for i in range(1, 8)]
    assert clf.get_booster().num_boosted_rounds() == 7   # the callback never stops the fit


def test_no_progress_means_no_callback(capsys):
    stage = train_mod._Stages(False)
    stage("silent")
    assert capsys.readouterr().err == ""
