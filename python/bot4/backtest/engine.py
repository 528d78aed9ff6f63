"""bot4.backtest.run: the one-call backtest and its result (see BacktestResult)."""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bot4 import _core

#: Stages of the per-decision latency record (ns), in pipeline order.
STAGES = ("features", "model", "strategy_risk", "orders", "sim", "tick_to_decision")
#: latency_ns also holds "timer": one value per timer firing (grid samples + window kernels, done
#: before the next event arrives, as a live timer would), not one per decision.

ORDER_TYPES = ("limit", "market", "stop")
ORDER_STATES = ("new", "acknowledged", "partially_filled", "filled", "cancelled", "rejected", "expired",
                "pending_cancel")
ORDER_EVENT_KINDS = ("new", "ack", "fill", "cancel", "reject", "replace", "expire")
ORDER_ROLES = ("single", "entry", "stop", "target")


def default_config() -> dict:
    """Engine config sections with their defaults (units in core/engine/trading_engine.hpp)."""
    return {
        "strategy": {"long_threshold": 0.55, "market_entry": False, "stop_ticks": 20, "target_ticks": 30,
                     "order_ttl_ns": 5_000_000_000, "equity": 100_000.0, "vol_from_features": True,
                     "current_vol": 0.02, "crisis_vpin": 0.0,
                     "fixed_qty_lots": 0, "max_qty_lots": 0, "min_gap_ns": 0, "exit_on_flip": True,
                     "exit_threshold": 0.0},
        "sim": {"entry_latency_ns": 100_000, "response_latency_ns": 100_000, "align_clocks": True, "maker_bps": 2.0,
                "taker_bps": 5.0, "queue_model": "risk_averse", "queue_power": 2.0},
    }


def engine_config(config=None) -> dict:
    """Engine config dict from None, a dict of sections, or a bot4.config.risk.Config."""
    if config is None:
        return default_config()
    if isinstance(config, dict):
        return {k: (v if k == "features" and not isinstance(v, dict) else dict(v))
                for k, v in config.items() if v is not None}
    # bot4.config.risk.Config (TOML): risk sections as is, strategy mapped onto the engine's rule.
    out = dict(config.to_core_dict())
    s = config.strategy
    out["strategy"] = {"long_threshold": float(s.entry_probability), "exit_threshold": float(s.exit_probability),
                       "stop_ticks": int(s.stop_ticks),
                       "target_ticks": int(s.target_ticks), "order_ttl_ns": int(s.order_ttl_ns),
                       "equity": float(s.equity), "market_entry": bool(s.market_entry),
                       "exit_on_flip": bool(s.exit_on_flip), "vol_from_features": bool(s.vol_from_features),
                       "crisis_vpin": float(s.crisis_vpin)}
    return out


from bot4.backtest.result import BacktestResult  # noqa: E402  (re-exported; the type lives there)


def _load_model(model):
    if isinstance(model, (str, os.PathLike)):
        from bot4.models import load
        model = load(Path(model))
    return model


def _load_data(data):
    if isinstance(data, (str, os.PathLike)):
        from bot4.data import load
        data = load(data)
    return data


#: FeatureConfig fields that choose *when* rows are written, not what a feature means: a backtest
#: may decide at other points than the training rows (e.g. every book message vs a time grid).
DECISION_FIELDS = ("decision", "decision_every_n", "decision_interval_ns")


def features_section(given, trained) -> dict:
    """The engine's feature config: the one the model was trained with (`trained`, from its
    sidecar), deciding at every book message unless `given` (FeatureConfig or dict) says
    otherwise. `given` may change only the decision fields: any other difference is a train/serve
    skew and raises ValueError naming the fields."""
    import msgspec

    from bot4.features import FeatureConfig

    if isinstance(given, dict):
        try:
            given = msgspec.convert(given, FeatureConfig)
        except msgspec.ValidationError as exc:
            raise ValueError(f"features: {exc}") from exc
    if given is not None and trained is not None:
        diff = [f for f in FeatureConfig.__struct_fields__
                if f not in DECISION_FIELDS and getattr(given, f) != getattr(trained, f)]
        if diff:
            raise ValueError("the feature config differs from the one the model was trained with in "
                             f"{', '.join(diff)} (model: {[getattr(trained, f) for f in diff]}, given: "
                             f"{[getattr(given, f) for f in diff]}); only {', '.join(DECISION_FIELDS)} may change")
    if given is None:
        # Models without a recorded config were trained with FeatureConfig()'s feature definitions.
        given = msgspec.structs.replace(trained or FeatureConfig(), decision="message")
    return given.to_core()


def run(data, model, config=None, progress: bool = True) -> BacktestResult:
    """Backtest `data` (MarketData or a path) with `model` (model directory, LoadedModel or
    _core.inference.Model) under `config` (None, dict of sections, or bot4.config.risk.Config)."""
    data = _load_data(data)
    loaded = _load_model(model)
    core_model = getattr(loaded, "core", loaded)
    spec = data.spec if len(data.specs) == 1 else None
    if spec is None:
        raise ValueError(f"{len(data.specs)} instruments in this data: the backtest trades one")
    cfg = engine_config(config)
    cfg["features"] = features_section(cfg.get("features"), getattr(loaded, "feature_config", None))
    cfg.setdefault("sim", {})
    cfg["sim"] = dict(cfg["sim"], instrument=int(spec.instrument_id))
    tick, lot = float(spec.tick_size), float(spec.lot_size)
    trades = np.ascontiguousarray(data.trades)
    orders = np.ascontiguousarray(data.orders) if data.orders.size else None
    # L3 data (order events) runs the venue in L3 mode with exact queue positions; an L2 book
    # derived alongside it is not replayed a second time.
    book = np.ascontiguousarray(data.book) if orders is None else np.ascontiguousarray(data.book[:0])
    n_events = int(book.size + trades.size + (orders.size if orders is not None else 0))
    if progress:
        what = f"{orders.size:,} L3 order" if orders is not None else f"{book.size:,} book"
        print(f"backtest: {n_events:,} events ({what}, {trades.size:,} trades)...", file=sys.stderr, flush=True)
    eng = _core.engine.TradingEngine(cfg, core_model, tick, lot)
    t0 = time.perf_counter()
    out = eng.run(book, trades, orders)
    seconds = time.perf_counter() - t0
    equity = out["equity"]
    pnl = float(equity["equity"][-1]) if equity.size else 0.0
    result = BacktestResult(
        events=n_events, decisions=out["decisions"], orders=out["orders"], fills=out["fills"], equity=equity,
        latency_ns=dict(out["latency_ns"]), counters=dict(out["counters"]), rejections=dict(out["rejections"]),
        pnl=pnl, max_drawdown=float(out["max_drawdown"]), seconds=seconds, tick_size=tick, lot_size=lot,
        order_rejections=dict(out["order_rejections"]), kill_reason=str(out["kill_reason"]), config=cfg)
    if progress:
        print(f"backtest: done in {seconds:.2f} s ({result.events_per_second:,.0f} events/s), "
              f"{result.decisions.size:,} decisions, {result.n_orders:,} orders, {result.fills.size:,} fills, "
              f"pnl {pnl:,.2f}", file=sys.stderr, flush=True)
    return result
