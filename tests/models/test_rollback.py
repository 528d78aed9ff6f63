"""Automatic-rollback triggers on a metrics record."""

from __future__ import annotations

import numpy as np
import pytest

from bot4.models.rollback import RollbackPolicy, evaluate_rollback, latency_p999, max_drawdown

GOOD = {"latency_p999_ns": 400_000, "errors": 0, "decisions": 10_000, "max_drawdown": 0.01,
        "sharpe": 1.8, "baseline_sharpe": 2.0, "observations": 500}


def test_healthy_record_keeps_the_model():
    d = evaluate_rollback(GOOD)
    assert not d.rollback and d.reasons == [] and len(d.triggers) == 4


@pytest.mark.parametrize("key,value,trigger", [
    ("latency_p999_ns", 2_000_000, "latency_p999_ns"),
    ("errors", 11, "error_rate"),
    ("max_drawdown", -0.08, "max_drawdown"),          # a signed drawdown counts by its size
    ("sharpe", 0.5, "sharpe_drop"),
])
def test_each_trigger_fires(key, value, trigger):
    d = evaluate_rollback(GOOD | {key: value})
    assert d.rollback and [t.name for t in d.triggers if t.fired] == [trigger]
    assert trigger in d.reasons[0]


def test_limits_are_strict_and_sharpe_waits_for_a_sample():
    at_limit = GOOD | {"latency_p999_ns": 1_000_000, "errors": 10, "max_drawdown": 0.05, "sharpe": 1.0}
    assert not evaluate_rollback(at_limit).rollback
    early = evaluate_rollback(GOOD | {"sharpe": -3.0, "observations": 20})
    assert not early.rollback and "not judged" in early.triggers[-1].note
    assert evaluate_rollback(GOOD | {"sharpe": -3.0}, baseline={"sharpe": -2.5}).rollback is False


def test_missing_metrics_are_an_error_unless_the_trigger_is_disabled():
    with pytest.raises(ValueError, match="latency_p999_ns"):
        evaluate_rollback({k: v for k, v in GOOD.items() if k != "latency_p999_ns"})
    policy = RollbackPolicy(max_latency_p999_ns=None)
    assert not evaluate_rollback({k: v for k, v in GOOD.items() if k != "latency_p999_ns"}, policy).rollback
    with pytest.raises(ValueError, match="not finite"):
        evaluate_rollback(GOOD | {"sharpe": float("nan")})
    assert evaluate_rollback({**GOOD, "error_rate": 0.5}).rollback


def test_helpers():
    x = np.arange(1, 10_001, dtype=float)
    assert latency_p999(x) == pytest.approx(np.percentile(x, 99.9))
    assert max_drawdown([100, 120, 90, 130, 117]) == pytest.approx(0.25)
    with pytest.raises(ValueError):
        max_drawdown([100, -1])
