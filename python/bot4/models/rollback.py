"""Automatic-rollback triggers evaluated on a metrics record of the running (champion) model.

A trigger fires when its metric crosses its limit: p99.9 decision latency above a bound, an error
rate above a bound, a drawdown deeper than a bound, or a Sharpe ratio that fell more than a bound
below the baseline's (the Sharpe the model was promoted with). Sharpe degradation is judged only
once the record covers `min_observations`, so a few early trades cannot roll a model back. A limit
set to None disables its trigger; a limit that is set but whose metric is absent from the record is
an error (a silent pass would hide a broken metrics feed).
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec
import numpy as np


class RollbackPolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Limits that trigger a rollback to the previous champion (None disables a limit; units in the field
    comments)."""

    max_latency_p999_ns: float | None = 1_000_000.0   # p99.9 tick-to-decision latency
    max_error_rate: float | None = 0.001              # errors / decisions
    max_drawdown: float | None = 0.05                 # peak-to-trough, fraction of equity (positive)
    max_sharpe_drop: float | None = 1.0               # baseline Sharpe - current Sharpe, same units
    min_observations: int = 100                       # periods/trades before Sharpe is judged


@dataclass(frozen=True)
class Trigger:
    """One checked limit: the observed value, the limit, whether it fired, and a note (e.g. too few
    observations)."""

    name: str
    value: float | None
    limit: float | None
    fired: bool
    note: str = ""


@dataclass(frozen=True)
class RollbackDecision:
    """Whether to roll back, and every trigger checked (`reasons` lists the ones that fired)."""

    rollback: bool
    triggers: tuple

    @property
    def reasons(self) -> list[str]:
        return [f"{t.name} {t.value:.6g} beyond {t.limit:.6g}" for t in self.triggers if t.fired]

    def to_dict(self) -> dict:
        """rollback, reasons and triggers as a JSON-able dict."""
        return {"rollback": self.rollback, "reasons": self.reasons,
                "triggers": [t.__dict__ for t in self.triggers]}


def _need(record: dict, key: str, trigger: str) -> float:
    if key not in record or record[key] is None:
        raise ValueError(f"metrics record lacks {key!r}, needed by the {trigger} trigger "
                         "(set that limit to None to disable it)")
    v = float(record[key])
    if not np.isfinite(v):
        raise ValueError(f"metrics record {key!r} is not finite: {record[key]!r}")
    return v


def latency_p999(latencies_ns) -> float:
    """The 99.9th percentile (linear interpolation, numpy's default) of latency samples."""
    x = np.asarray(latencies_ns, dtype=np.float64)
    if x.size == 0 or not np.all(np.isfinite(x)):
        raise ValueError("latency samples must be a non-empty array of finite values")
    return float(np.percentile(x, 99.9))


def max_drawdown(equity) -> float:
    """Largest peak-to-trough fall of an equity curve, as a fraction of the peak (>= 0)."""
    e = np.asarray(equity, dtype=np.float64)
    if e.size == 0 or not np.all(np.isfinite(e)) or np.any(e <= 0):
        raise ValueError("equity must be a non-empty array of finite positive values")
    peak = np.maximum.accumulate(e)
    return float(np.max(1.0 - e / peak))


def evaluate_rollback(record: dict, policy: RollbackPolicy | None = None,
                      baseline: dict | None = None) -> RollbackDecision:
    """Evaluate every enabled trigger on `record`, a dict with (as the policy needs):
    latency_p999_ns, errors and decisions (or error_rate), max_drawdown, sharpe and observations;
    `baseline` holds the reference sharpe (else record['baseline_sharpe'])."""
    policy = policy if policy is not None else RollbackPolicy()
    triggers = []
    if policy.max_latency_p999_ns is not None:
        v = _need(record, "latency_p999_ns", "latency")
        triggers.append(Trigger("latency_p999_ns", v, policy.max_latency_p999_ns, v > policy.max_latency_p999_ns))
    if policy.max_error_rate is not None:
        if "error_rate" in record:
            v = _need(record, "error_rate", "error-rate")
        else:
            errors = _need(record, "errors", "error-rate")
            decisions = _need(record, "decisions", "error-rate")
            if decisions <= 0 or errors < 0:
                raise ValueError(f"need decisions > 0 and errors >= 0, got {decisions!r}, {errors!r}")
            v = errors / decisions
        triggers.append(Trigger("error_rate", v, policy.max_error_rate, v > policy.max_error_rate))
    if policy.max_drawdown is not None:
        v = abs(_need(record, "max_drawdown", "drawdown"))
        triggers.append(Trigger("max_drawdown", v, policy.max_drawdown, v > policy.max_drawdown))
    if policy.max_sharpe_drop is not None:
        current = _need(record, "sharpe", "Sharpe-degradation")
        base_src = baseline if baseline is not None else {"sharpe": record.get("baseline_sharpe")}
        base = _need(base_src, "sharpe", "Sharpe-degradation (baseline)")
        n = _need(record, "observations", "Sharpe-degradation")
        drop = base - current
        if n < policy.min_observations:
            triggers.append(Trigger("sharpe_drop", drop, policy.max_sharpe_drop, False,
                                    f"not judged: {int(n)} < {policy.min_observations} observations"))
        else:
            triggers.append(Trigger("sharpe_drop", drop, policy.max_sharpe_drop, drop > policy.max_sharpe_drop))
    return RollbackDecision(any(t.fired for t in triggers), tuple(triggers))
