"""Shared by the user-strategy tests: the pinned engine setup (tests/engine/pinned_outputs.py)
and a byte-level comparison of backtest outputs."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
sys.path.insert(0, str(ROOT / "tests" / "engine"))
import pinned_outputs  # noqa: E402
from recordings import require_recording  # noqa: E402

OUTPUTS = ("decisions", "orders", "fills", "equity")


def same_outputs(a, b) -> list[str]:
    """Names of the outputs (and 'counters') that differ in any byte of any field."""
    bad = []
    for name in OUTPUTS:
        x, y = getattr(a, name), getattr(b, name)
        if x.dtype != y.dtype or x.size != y.size or any(
                np.ascontiguousarray(x[f]).tobytes() != np.ascontiguousarray(y[f]).tobytes() for f in x.dtype.names):
            bad.append(name)
    if a.counters != b.counters:
        bad.append("counters")
    return bad


def builtin_and_user(data, spec):
    """The pinned config run with the built-in threshold_bracket, then with `spec` given the
    same [strategy] parameters."""
    from bot4 import strategies
    from bot4.backtest import run

    ref = run(data, pinned_outputs.MODEL_DIR, config=pinned_outputs.CONFIG, progress=False)
    cfg = {k: v for k, v in pinned_outputs.CONFIG.items() if k != "strategy"}
    user = strategies.make(spec, pinned_outputs.CONFIG["strategy"])
    return ref, run(data, pinned_outputs.MODEL_DIR, config=cfg, progress=False, strategy=user), user


@pytest.fixture(scope="session")
def embedded():
    from bot4.sim import generate

    e = pinned_outputs.EMBEDDED
    return generate(seed=e["seed"], n_events=e["n_events"])


@pytest.fixture(scope="session")
def btcusdt():
    require_recording(pinned_outputs.REFERENCE)
    from bot4.data import load

    return load(pinned_outputs.REFERENCE)
