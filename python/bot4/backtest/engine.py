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

ORDER_TYPES = ("limit", "market", "stop")
ORDER_STATES = ("new", "acknowledged", "partially_filled", "filled", "cancelled", "rejected", "expired")
ORDER_EVENT_KINDS = ("new", "ack", "fill", "cancel", "reject", "replace", "expire")
ORDER_ROLES = ("single", "entry", "stop", "target")


def default_config() -> dict:
    """Engine config sections with their defaults (units in core/engine/trading_engine.hpp)."""
    return {
        "strategy": {"long_threshold": 0.55, "market_entry": False, "stop_ticks": 20, "target_ticks": 30,
                     "order_ttl_ns": 5_000_000_000, "equity": 100_000.0, "current_vol": 0.02,
                     "fixed_qty_lots": 0, "max_qty_lots": 0, "min_gap_ns": 0},
        "sim": {"entry_latency_ns": 100_000, "response_latency_ns": 100_000, "maker_bps": 2.0,
                "taker_bps": 5.0, "queue_model": "risk_averse", "queue_power": 2.0},
    }


def engine_config(config=None) -> dict:
    """Engine config dict from None, a dict of sections, or a bot4.config.risk.Config."""
    if config is None:
        return default_config()
    if isinstance(config, dict):
        return {k: dict(v) for k, v in config.items() if v is not None}
    # bot4.config.risk.Config (TOML): risk sections as is, strategy mapped onto the engine's rule.
    out = dict(config.to_core_dict())
    s = config.strategy
    out["strategy"] = {"long_threshold": float(s.entry_probability), "stop_ticks": int(s.stop_ticks),
                       "target_ticks": int(s.target_ticks), "order_ttl_ns": int(s.order_ttl_ns),
                       "equity": float(s.equity)}
    return out


@dataclass
class BacktestResult:
    events: int
    decisions: np.ndarray          # ts, p, target, action, position
    orders: np.ndarray             # ts, id, side, price, qty, filled, type, status, kind, role, reason
    fills: np.ndarray              # ts, id, side, price (ticks), qty (lots), fee, maker, role, accepted
    equity: np.ndarray             # ts, position, realised, unrealised, fees, equity (quote units)
    latency_ns: dict               # stage -> int64 array (one value per decision)
    counters: dict
    rejections: dict               # pre-trade reason -> count
    pnl: float
    max_drawdown: float
    seconds: float
    tick_size: float = 1.0
    lot_size: float = 1.0
    order_rejections: dict = field(default_factory=dict)  # order-manager reason -> count
    kill_reason: str = "none"
    config: dict = field(default_factory=dict)

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else float("nan")

    def latency_summary(self) -> dict:
        out = {}
        for stage, arr in self.latency_ns.items():
            a = np.asarray(arr)
            if a.size:
                p50, p99, p999 = np.percentile(a, [50, 99, 99.9])
                out[stage] = {"p50": float(p50), "p99": float(p99), "p999": float(p999)}
            else:
                out[stage] = {"p50": None, "p99": None, "p999": None}
        return out

    def as_json(self) -> dict:
        return {"events": int(self.events), "decisions": int(self.decisions.size), "orders": int(self.n_orders),
                "fills": int(self.fills.size), "rejections": {k: int(v) for k, v in self.rejections.items()},
                "pnl": float(self.pnl), "max_drawdown": float(self.max_drawdown),
                "latency_ns": self.latency_summary(), "seconds": float(self.seconds)}

    @property
    def n_orders(self) -> int:
        """Orders created (New events)."""
        return int(np.count_nonzero(self.orders["kind"] == 0)) if self.orders.size else 0


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
    cfg.setdefault("sim", {})
    cfg["sim"] = dict(cfg["sim"], instrument=int(spec.instrument_id))
    tick, lot = float(spec.tick_size), float(spec.lot_size)
    book = np.ascontiguousarray(data.book)
    trades = np.ascontiguousarray(data.trades)
    n_events = int(book.size + trades.size)
    if progress:
        print(f"backtest: {n_events:,} events ({book.size:,} book, {trades.size:,} trades)...",
              file=sys.stderr, flush=True)
    eng = _core.engine.TradingEngine(cfg, core_model, tick, lot)
    t0 = time.perf_counter()
    out = eng.run(book, trades)
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
