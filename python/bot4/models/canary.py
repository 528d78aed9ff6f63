"""Canary: a fraction of the capital trades the challenger while the champion trades the rest,
over the same events, then a promote / keep / rollback decision with its reasons.

The engine trades one model per instrument (shadow slots are scored, never traded), so the two
traded legs are two backtests of the same data: the champion leg with (1 - fraction) of the risk
budget and the challenger leg with `fraction` of it (plus a control, below). The risk budget is every size knob of the engine config
scaled alike: the starting equity (the sizer sizes in fractions of equity, lots =
trunc(size * equity / (price * lot value))), the position cap (`pre_trade.max_position_lots`), the
same-side exposure cap (`pre_trade.max_notional`) and, when set, the strategy's fixed and maximum
entry sizes. Caps are rounded down to whole lots, so the legs' sizes are the fraction of the full
budget up to integer lots; a fraction whose cap rounds to 0 lots is refused.

Size changes how a strategy trades, not only how much: in the venue simulator a small resting
order reaches the front of its queue sooner than a large one, so a leg with a quarter of the
budget fills at other times and follows another path than the full-size leg (measured: on the
BTCUSDT 2024-08-08 recording the same model at 25% made three entries where it made one at 100%).
Comparing the challenger at `fraction` with the champion at (1 - fraction) would mix that size
effect into the model comparison. So a third backtest, the control, runs the champion at the
challenger's size; the challenger is judged against the control (same size, same fill dynamics,
only the model differs), and the two traded legs are reported as the book would see them.

Each leg is judged on capital-relative figures: after-fee P&L, per-bar Sharpe (equity change per
bar of `bar_ns` / the leg's capital, mean / sd), drawdown (fraction of the leg's peak equity),
error rate (ERROR_COUNTERS / decisions) and p99.9 tick-to-decision latency. The challenger leg
goes through the automatic rollback triggers (bot4.models.rollback, with the control's Sharpe as
the baseline) and the A/B test (bot4.models.abtest.paired_test on the control's and the
challenger's per-bar returns, the sample per arm fixed in CanaryConfig before the run, so the
verdict cannot depend on when it is looked at). The test is paired: both legs trade over the same
bars of the same events, and what the market does in a bar moves both; Welch's unpaired test would
count that shared part as noise. Per-bar returns of a strategy that holds positions across bars
are still autocorrelated, which the t-test does not model (a longer bar_ns weakens it).

Decision: rollback when a trigger fires, the challenger's kill switch trips, or the champion is better;
promote when the challenger is better and no trigger fired; keep otherwise (no difference, or the
fixed sample not reached).
"""

from __future__ import annotations

import copy
import math
import os
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from bot4.errors import ConfigError, ModelError
from bot4.models.abtest import paired_test
from bot4.models.rollback import RollbackPolicy, evaluate_rollback, latency_p999, max_drawdown

#: Engine counters that count a failure of the model or of the order path (not a risk refusal).
ERROR_COUNTERS = ("nan_predictions", "om_rejected", "om_event_rejections", "sim_rejects")
#: What run_canary can decide.
DECISIONS = ("promote", "keep", "rollback")


class CanaryConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """How a canary is run and judged (units in the field comments); fixed before the run."""

    fraction: float                         # of the risk budget traded by the challenger, in (0, 1)
    bar_ns: int = 1_000_000_000             # period of the returns fed to the Sharpe and the A/B test
    n_required: int = 200                   # bars per arm for the A/B test, fixed up front (no peeking)
    alpha: float = 0.05                     # level of the A/B test
    policy: RollbackPolicy = RollbackPolicy()  # rollback triggers; sharpe in per-bar units

    def __post_init__(self) -> None:
        if not (isinstance(self.fraction, (int, float)) and 0.0 < float(self.fraction) < 1.0):
            raise ConfigError(f"canary fraction must be in (0, 1), got {self.fraction!r}")
        if self.bar_ns <= 0:
            raise ConfigError(f"bar_ns must be > 0, got {self.bar_ns}")
        if self.n_required < 2:
            raise ConfigError(f"n_required must be >= 2, got {self.n_required}")
        if not 0.0 < self.alpha < 1.0:
            raise ConfigError(f"alpha must be in (0, 1), got {self.alpha}")


@dataclass(frozen=True)
class Leg:
    """One leg of a canary: its share of the budget and its capital-relative figures."""

    name: str                 # "champion" or "challenger"
    share: float              # fraction of the risk budget
    capital: float            # starting equity of the leg, quote units
    max_position_lots: int    # the leg's position cap
    pnl: float                # after fees, quote units
    fees: float
    return_: float            # pnl / capital
    sharpe: float | None      # per bar (None: fewer than 2 bars or no spread)
    bars: int
    max_drawdown: float       # fraction of the leg's peak equity
    decisions: int
    errors: int
    error_rate: float
    latency_p999_ns: float    # tick-to-decision
    fills: int
    max_abs_position: int     # lots
    mean_abs_position: float  # lots, over decisions
    kill_reason: str
    bar_returns: np.ndarray = field(repr=False, compare=False, default_factory=lambda: np.zeros(0))
    result: Any = field(repr=False, compare=False, default=None)  # the BacktestResult

    def record(self) -> dict:
        """The metrics record bot4.models.rollback.evaluate_rollback reads."""
        return {"latency_p999_ns": self.latency_p999_ns, "error_rate": self.error_rate,
                "max_drawdown": self.max_drawdown, "sharpe": self.sharpe, "observations": self.bars}

    def to_dict(self) -> dict:
        """JSON-able figures (no arrays)."""
        return {"name": self.name, "share": self.share, "capital": self.capital,
                "max_position_lots": self.max_position_lots, "pnl": self.pnl, "fees": self.fees,
                "return": self.return_, "sharpe": self.sharpe, "bars": self.bars, "max_drawdown": self.max_drawdown,
                "decisions": self.decisions, "errors": self.errors, "error_rate": self.error_rate,
                "latency_p999_ns": self.latency_p999_ns, "fills": self.fills,
                "max_abs_position": self.max_abs_position, "mean_abs_position": self.mean_abs_position,
                "kill_reason": self.kill_reason}


@dataclass(frozen=True)
class CanaryResult:
    """Both traded legs, the control, the challenger's rollback triggers, the A/B test and the
    decision."""

    decision: str             # one of DECISIONS
    reasons: list[str]
    champion: Leg             # champion at (1 - fraction): the book's main leg
    challenger: Leg           # challenger at fraction: the canary
    control: Leg | None       # champion at fraction: what the challenger is judged against
    rollback: dict            # bot4.models.rollback.RollbackDecision.to_dict() of the challenger leg
    ab: dict                  # bot4.models.abtest.ABResult.to_dict() (b = challenger)
    config: CanaryConfig
    # challenger / champion mean |position| in lots: fraction / (1 - fraction) when both legs trade
    # the same signals (up to integer lots); None when the champion never held a position
    exposure_ratio: float | None

    def to_dict(self) -> dict:
        """JSON-able dict (what `bot4 models canary --json` prints)."""
        return {"decision": self.decision, "reasons": list(self.reasons),
                "champion": self.champion.to_dict(), "challenger": self.challenger.to_dict(),
                "control": self.control.to_dict() if self.control is not None else None,
                "rollback": self.rollback, "ab": self.ab, "config": msgspec.to_builtins(self.config),
                "exposure_ratio": self.exposure_ratio}


# -- sizing ---------------------------------------------------------------------------------------

def scaled_config(config, share: float) -> dict:
    """The engine config sections (None, dict of sections or bot4.config.Config) with the risk
    budget scaled by `share`: starting equity, position and exposure caps and any fixed or maximum
    entry size, caps rounded down to whole lots. ConfigError when a cap rounds to 0."""
    from bot4.backtest.engine import default_config, engine_config

    if not 0.0 < share <= 1.0:
        raise ConfigError(f"a leg's share must be in (0, 1], got {share!r}")
    try:
        cfg = copy.deepcopy(engine_config(config))
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    defaults = default_config()
    for sec in ("engine", "pre_trade"):
        cfg[sec] = {**defaults[sec], **cfg.get(sec, {})}
    cfg["engine"]["equity"] = float(cfg["engine"]["equity"]) * share
    for sec, key in (("pre_trade", "max_position_lots"), ("pre_trade", "max_notional")):
        cap = int(cfg[sec][key])
        cfg[sec][key] = _scaled_lots(cap, share, f"{sec}.{key}")
    strat = cfg.get("strategy")
    if strat:
        for key in ("fixed_qty_lots", "max_qty_lots"):
            if int(strat.get(key, 0) or 0) > 0:
                strat[key] = _scaled_lots(int(strat[key]), share, f"strategy.{key}")
    return cfg


def _scaled_lots(value: int, share: float, name: str) -> int:
    if value <= 0:
        return value   # 0 = no cap / off: stays off
    out = int(math.floor(value * share + 1e-9))
    if out < 1:
        raise ConfigError(f"{name} {value} x share {share:g} rounds to 0: this leg could never trade "
                          "(raise the cap or the fraction)")
    return out


# -- models -----------------------------------------------------------------------------------------

def resolve_model(ref, registry=None, workdir: str | os.PathLike | None = None):
    """A model to trade from `ref`: a LoadedModel / core model (as is), a model directory
    (model.json inside), or a registry reference (alias, id or id prefix; checked out verified
    into `workdir`). ModelError when it is none of these."""
    if not isinstance(ref, (str, os.PathLike)):
        return ref
    path = Path(ref)
    if (path / "model.json").is_file():
        return path
    if path.exists():
        raise ModelError(f"{path} is not a model directory (no model.json)")
    from bot4.models.registry import ENV_ROOT, Registry, RegistryError

    if registry is None and not os.environ.get(ENV_ROOT):
        raise ModelError(f"model {str(ref)!r} not found: no such model directory, and no registry "
                         f"(--registry or ${ENV_ROOT}) to look the reference up in")
    reg = registry if isinstance(registry, Registry) else Registry(registry)
    if workdir is None:
        raise ModelError("a registry reference needs a work directory to check the model out into")
    try:
        entry = reg.resolve(str(ref))
        return reg.checkout(entry.id, Path(workdir) / entry.id)
    except RegistryError as exc:
        raise ModelError(f"model {str(ref)!r}: {exc}") from exc


# -- legs ---------------------------------------------------------------------------------------

def _leg(name: str, share: float, result, cfg: dict, conf: CanaryConfig, start_ns: int, end_ns: int) -> Leg:
    from bot4.research.metrics import bar_pnls, sharpe

    capital = float(cfg["engine"]["equity"])
    eq = result.equity
    # the ledger's equity is per instrument; total_equity is the whole leg's (several instruments)
    total = np.asarray(eq["total_equity"], np.float64) if eq.size else np.zeros(0)
    curve = np.concatenate([[capital], capital + total])
    series = np.zeros(eq.size, dtype=[("ts", np.int64), ("equity", np.float64)])
    if eq.size:
        series["ts"], series["equity"] = eq["ts"], total
    bars = bar_pnls(series, start_ns, end_ns, conf.bar_ns) / capital
    sr = sharpe(bars)
    decisions = int(result.decisions.size)
    errors = int(sum(int(result.counters.get(k, 0)) for k in ERROR_COUNTERS))
    tick = np.asarray(result.latency_ns.get("tick_to_decision", np.zeros(0)))
    pos = np.abs(np.asarray(result.decisions["position"], np.int64)) if decisions else np.zeros(0, np.int64)
    fees = float(sum(float(d.get("fees", 0.0)) for d in result.instruments))
    return Leg(name=name, share=share, capital=capital, max_position_lots=int(cfg["pre_trade"]["max_position_lots"]),
               pnl=float(result.pnl), fees=fees, return_=float(result.pnl) / capital,
               sharpe=None if not np.isfinite(sr) else float(sr), bars=int(bars.size),
               max_drawdown=max_drawdown(curve), decisions=decisions, errors=errors,
               error_rate=errors / decisions if decisions else 0.0,
               latency_p999_ns=latency_p999(tick) if tick.size else 0.0, fills=int(result.fills.size),
               max_abs_position=int(pos.max()) if pos.size else 0,
               mean_abs_position=float(pos.mean()) if pos.size else 0.0,
               kill_reason=str(result.kill_reason), bar_returns=bars, result=result)


def _span(data) -> tuple[int, int]:
    ts = [np.asarray(a["ts_local"], np.int64) for a in (data.book, data.orders, data.trades) if a.size]
    if not ts:
        raise ValueError("the data holds no events")
    return int(min(t[0] for t in ts)), int(max(t[-1] for t in ts)) + 1


def run_canary(data, champion, challenger, fraction: float | None = None, *, config=None,
               canary: CanaryConfig | None = None, strategy=None, registry=None,
               progress: bool = False) -> CanaryResult:
    """Trade `champion` on (1 - fraction) and `challenger` on `fraction` of the risk budget over the
    same events of `data` (MarketData or a recording path), run the control (champion at
    `fraction`), and decide promote / keep / rollback (module docstring).

    champion, challenger: model directories, registry references (alias, id or id prefix; with
    `registry` or $BOT4_REGISTRY) or loaded models. config: the engine config of the full budget
    (None, dict of sections or bot4.config.Config). canary: how the legs are judged (its fraction
    is used when `fraction` is None). ConfigError for a fraction outside (0, 1) or a cap that
    rounds to 0 lots; ModelError for a reference that names no model."""
    from bot4.backtest import run

    if canary is None:
        if fraction is None:
            raise ConfigError("give the canary fraction (or a CanaryConfig)")
        canary = CanaryConfig(fraction=fraction)
    elif fraction is not None and fraction != canary.fraction:
        canary = CanaryConfig(**{**msgspec.structs.asdict(canary), "fraction": fraction})
    f = float(canary.fraction)
    cfg_champion = scaled_config(config, 1.0 - f)
    cfg_challenger = scaled_config(config, f)
    if isinstance(data, (str, os.PathLike)):
        from bot4.data import load

        data = load(Path(data), progress=progress)
    start_ns, end_ns = _span(data)
    with ExitStack() as stack:
        work = None
        if any(isinstance(r, (str, os.PathLike)) and not (Path(r) / "model.json").is_file()
               for r in (champion, challenger)):
            work = stack.enter_context(tempfile.TemporaryDirectory(prefix="bot4-canary-"))
        m_champion = resolve_model(champion, registry, work)
        m_challenger = resolve_model(challenger, registry, work)
        r_champion = run(data, m_champion, config=cfg_champion, progress=progress, strategy=strategy)
        r_challenger = run(data, m_challenger, config=cfg_challenger, progress=progress, strategy=strategy)
        r_control = run(data, m_champion, config=cfg_challenger, progress=progress, strategy=strategy)
    a = _leg("champion", 1.0 - f, r_champion, cfg_champion, canary, start_ns, end_ns)
    b = _leg("challenger", f, r_challenger, cfg_challenger, canary, start_ns, end_ns)
    c = _leg("control", f, r_control, cfg_challenger, canary, start_ns, end_ns)
    if not (a.decisions and b.decisions and c.decisions):
        raise ValueError("a leg made no decision on this data (no book events, e.g. a trades-only recording): "
                         "there is nothing to compare")
    return decide(a, b, canary, control=c)


def decide(champion: Leg, challenger: Leg, canary: CanaryConfig, control: Leg | None = None) -> CanaryResult:
    """The decision: rollback triggers on the challenger leg (baseline Sharpe: the control's, or
    the champion leg's without a control), its kill switch, and the fixed-n A/B test of its per-bar
    returns against the control's (else the champion leg's)."""
    ref = control if control is not None else champion
    policy = canary.policy
    record = challenger.record()
    baseline = {"sharpe": ref.sharpe}
    # a Sharpe that does not exist (no spread, < 2 bars) cannot be compared: that trigger is off
    if policy.max_sharpe_drop is not None and (challenger.sharpe is None or ref.sharpe is None):
        policy = msgspec.structs.replace(policy, max_sharpe_drop=None)
    rb = evaluate_rollback(record, policy, baseline)
    rb_dict = rb.to_dict()
    if policy is not canary.policy:
        rb_dict["notes"] = ["sharpe_drop not judged: a leg's per-bar Sharpe is undefined (no spread)"]
    ab = _ab(ref.bar_returns, challenger.bar_returns, canary)
    reasons = list(rb.reasons)
    if challenger.kill_reason != "none":
        reasons.append(f"challenger's kill switch tripped ({challenger.kill_reason})")
    if ab["decision"] == "a_better":
        reasons.append(f"A/B: champion ({ref.name}) better (p {ab['pvalue']:.4g} < {canary.alpha:g} on the first "
                       f"{canary.n_required} bars)")
    if reasons:
        decision = "rollback"
    elif ab["decision"] == "b_better":
        decision = "promote"
        reasons.append(f"A/B: challenger better (p {ab['pvalue']:.4g} < {canary.alpha:g} on the first "
                       f"{canary.n_required} bars); no rollback trigger fired")
    else:
        decision = "keep"
        if ab["decision"] == "insufficient_sample":
            reasons.append(f"A/B: fixed sample not reached ({min(ab['n_a'], ab['n_b'])} of "
                           f"{canary.n_required} bars); no rollback trigger fired")
        elif ab["decision"] == "undefined":
            reasons.append(f"A/B: {ab['note']}; no rollback trigger fired")
        elif ab["pvalue"] is None:
            reasons.append(f"A/B: no difference (the same returns in each of the first {canary.n_required} bars); "
                           "no rollback trigger fired")
        else:
            reasons.append(f"A/B: no difference (p {ab['pvalue']:.4g} >= {canary.alpha:g}); "
                           "no rollback trigger fired")
    ratio = challenger.mean_abs_position / champion.mean_abs_position if champion.mean_abs_position > 0 else None
    return CanaryResult(decision, reasons, champion, challenger, control, rb_dict, ab, canary, ratio)


def _ab(a: np.ndarray, b: np.ndarray, canary: CanaryConfig) -> dict:
    n = canary.n_required
    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if x.size >= n and y.size >= n and not (x[:n].std() > 0 or y[:n].std() > 0):
        # neither leg's P&L moved over the fixed sample (e.g. no trades): there is nothing to test
        return {"decision": "undefined", "n_required": n, "n_a": int(x.size), "n_b": int(y.size),
                "statistic": None, "df": None, "pvalue": None, "mean_diff": None, "ci": None,
                "alpha": canary.alpha, "note": f"neither leg's equity moved over the first {n} bars"}
    if x.size >= n and y.size >= n and np.array_equal(x[:n], y[:n]):
        # the same returns in every bar (e.g. the champion as its own challenger): no difference,
        # and no t statistic (the differences have no spread)
        return {"decision": "no_difference", "n_required": n, "n_a": int(x.size), "n_b": int(y.size),
                "statistic": None, "df": None, "pvalue": None, "mean_diff": 0.0, "ci": None, "alpha": canary.alpha,
                "test": "paired"}
    return paired_test(x, y, n, canary.alpha).to_dict()
