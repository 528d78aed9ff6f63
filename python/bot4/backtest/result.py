"""BacktestResult: what `bot4.backtest.run` returns (record arrays from the core engine, counters,
latencies and headline figures)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class BacktestResult:
    """One backtest run.

    The record arrays are numpy structured arrays with the core engine's layouts
    (ext/bind_engine.cpp); prices are int64 ticks and sizes int64 lots of the traded instrument
    (multiply by `tick_size` / `lot_size` for venue units, or read the Parquet files written by
    `write_parquet`). Timestamps are int64 ns since the Unix epoch on the recording's local
    (receive) clock.
    """

    #: Market events fed to the engine (book + L3 order + trade records).
    events: int
    #: One record per decision point: ts (int64 ns), p (float64 calibrated P(up)), target (int8: the
    #: strategy's signal, -1 short, 0 flat, 1 long), action (int8: DECISION_ACTIONS in
    #: bot4.backtest.engine: 0 none, 1 order sent, 2 cancel sent, 3 close sent, 4 rejected),
    #: instrument (uint32), position (int64 lots after the decision).
    decisions: np.ndarray
    #: One record per order event: ts (int64 ns), id (uint64), side (uint8: 0 buy, 1 sell),
    #: price (int64 ticks), qty and filled (int64 lots), type, status, kind, role, reason (uint8
    #: codes; names in bot4.backtest.engine ORDER_TYPES, ORDER_STATES, ORDER_EVENT_KINDS,
    #: ORDER_ROLES) and flags (uint16).
    orders: np.ndarray
    #: One record per fill: ts (int64 ns, local receipt), id (uint64 order id), side (uint8),
    #: price (int64 ticks), qty (int64 lots), fee (float64 quote units; base coin for an
    #: inverse instrument; negative = rebate),
    #: maker (uint8 0/1), role (uint8), accepted (uint8 0/1: the order manager took the fill).
    fills: np.ndarray
    #: Equity curve, one record per decision: ts (int64 ns), position (int64 lots), realised,
    #: unrealised, fees and equity = realised + unrealised - fees (float64 quote units) of the
    #: decision's instrument, total_equity (all instruments, each marked at its last mid) and
    #: instrument (uint32). A last record per instrument books fills received after its last decision.
    #: Inverse (coin-margined) instruments: the coin amounts times the decision's mid.
    equity: np.ndarray
    #: Stage name -> int64 array of ns, one value per decision ("timer": one per timer firing).
    latency_ns: dict[str, np.ndarray]
    #: Engine counters (name -> int).
    counters: dict[str, int]
    #: Pre-trade check reason -> count of refused orders.
    rejections: dict[str, int]
    #: Final equity, quote units (PnL after fees; the run starts at 0).
    pnl: float
    #: Largest peak-to-trough fall of equity, quote units (>= 0).
    max_drawdown: float
    #: Wall seconds of the engine's run (the GIL-released core loop only).
    seconds: float
    #: Price of one tick, quote units per base unit.
    tick_size: float = 1.0
    #: Size of one lot, base units.
    lot_size: float = 1.0
    #: Order-manager reason -> count of refused submissions or venue responses.
    order_rejections: dict[str, int] = field(default_factory=dict)
    #: Why the kill switch tripped ("none" when it did not).
    kill_reason: str = "none"
    #: The engine config the run used (sections -> fields).
    config: dict[str, Any] = field(default_factory=dict)
    #: Per instrument: instrument (id), symbol, events, decisions, orders, fills, position (lots),
    #: realised, unrealised, fees and pnl (quote units), tick_size, lot_size, inverse,
    #: contract_size, sim (venue counters). An inverse (coin-margined) instrument's figures are its
    #: base-coin amounts times the last mid; its fills' `fee` is in the base coin.
    instruments: list[dict[str, Any]] = field(default_factory=list)
    #: Shadow models' outputs, one record per decision per model slot >= 1 (challengers scored on
    #: the same rows as the champion in slot 0, never traded unless the strategy reads them): ts
    #: (int64 ns, the decision's), p (float64), instrument (uint32), slot (uint32). None when the
    #: run had no shadow model.
    scores: np.ndarray | None = None

    @property
    def events_per_second(self) -> float:
        """Market events per wall second of the engine's run (NaN when no time was measured)."""
        return self.events / self.seconds if self.seconds > 0 else float("nan")

    def latency_summary(self) -> dict[str, dict[str, float | None]]:
        """Stage -> {"p50", "p99", "p999"} in ns (None for a stage with no samples)."""
        out: dict[str, dict[str, float | None]] = {}
        for stage, arr in self.latency_ns.items():
            a = np.asarray(arr)
            if a.size:
                p50, p99, p999 = np.percentile(a, [50, 99, 99.9])
                out[stage] = {"p50": float(p50), "p99": float(p99), "p999": float(p999)}
            else:
                out[stage] = {"p50": None, "p99": None, "p999": None}
        return out

    def as_json(self) -> dict[str, Any]:
        """Headline figures as JSON-ready builtins (what `bot4 backtest --json` prints)."""
        return {"events": int(self.events), "decisions": int(self.decisions.size), "orders": int(self.n_orders),
                "fills": int(self.fills.size), "rejections": {k: int(v) for k, v in self.rejections.items()},
                "pnl": float(self.pnl), "max_drawdown": float(self.max_drawdown),
                "latency_ns": self.latency_summary(), "seconds": float(self.seconds),
                "strategy": str(self.config.get("strategy", {}).get("name", "")),
                "instruments": [
                    {"instrument": int(d["instrument"]), "symbol": str(d.get("symbol", "")),
                     "events": int(d["events"]), "orders": int(d["orders"]), "fills": int(d["fills"]),
                     "pnl": float(d["pnl"]), "position": int(d["position"]), "fees": float(d["fees"])}
                    for d in self.instruments]}

    @property
    def n_orders(self) -> int:
        """Orders created (New events)."""
        return int(np.count_nonzero(self.orders["kind"] == 0)) if self.orders.size else 0

    def write_parquet(self, out_dir: str | Path) -> dict[str, Path]:
        """Write orders, fills, decisions and equity as Parquet files into `out_dir` (one row per
        record; see bot4.backtest.outputs). Returns table name -> path."""
        from bot4.backtest.outputs import write_parquet

        return write_parquet(self, out_dir)
