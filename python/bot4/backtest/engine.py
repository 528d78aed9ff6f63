"""bot4.backtest.run: the one-call backtest and its result (see BacktestResult)."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

from bot4 import _core

#: Stages of the per-decision latency record (ns), in pipeline order.
STAGES = ("features", "model", "ensemble", "strategy_risk", "orders", "sim", "tick_to_decision")
#: ("ensemble" is 0 ns at every decision without an [ensemble] section.)
#: latency_ns also holds "timer": one value per timer firing (grid samples + window kernels, done
#: before the next event arrives, as a live timer would), not one per decision.

_NAMES = _core.engine.schema()["names"]
#: Names of the record codes, from the core (index = code).
ORDER_TYPES = tuple(_NAMES["order_types"])
ORDER_STATES = tuple(_NAMES["order_states"])
ORDER_EVENT_KINDS = tuple(_NAMES["order_event_kinds"])
ORDER_ROLES = tuple(_NAMES["order_roles"])
DECISION_ACTIONS = tuple(_NAMES["decision_actions"])
#: Engine config sections the core reads (strategy: {"name", fields}; features: a FeatureConfig).
SECTIONS = ("engine", "sizing", "pre_trade", "kill_switch", "sim", "ensemble", "strategy", "features")


def default_config() -> dict:
    """Every engine config section with its defaults, from the core's declarations (units:
    `bot4 config schema`)."""
    schema = _core.engine.schema()
    out = {sec: {f["name"]: f["default"] for f in schema[sec]}
           for sec in ("engine", "sizing", "pre_trade", "kill_switch", "sim", "ensemble")}
    out["strategy"] = {"name": "threshold_bracket",
                       **{f["name"]: f["default"] for f in schema["strategies"]["threshold_bracket"]["fields"]}}
    return out


def engine_config(config=None) -> dict:
    """Engine config sections from None (defaults), a dict of sections, or a bot4.config.Config."""
    if config is None:
        return {}
    if isinstance(config, dict):
        unknown = set(config) - set(SECTIONS)
        if unknown:
            raise ValueError(f"unknown engine config section(s): {', '.join(sorted(unknown))} "
                             f"(sections: {', '.join(SECTIONS)})")
        return {k: (v if k == "features" and not isinstance(v, dict) else dict(v))
                for k, v in config.items() if v is not None}
    return dict(config.to_core_dict())


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


def _merged(data):
    """One MarketData from a MarketData, a path, or a list of either (several instruments)."""
    if isinstance(data, (list, tuple)):
        from bot4.data.market_data import merge

        parts = [_load_data(d) for d in data]
        return parts[0] if len(parts) == 1 else merge(parts)
    return _load_data(data)


def _models_for(model, instruments) -> dict:
    """instrument id -> loaded model (or None): one model for all, or a dict by instrument id."""
    if isinstance(model, (list, tuple)):
        raise ValueError("a list of models is one model per slot: give it as model=[...] (slots 0, 1, ...)")
    if isinstance(model, dict):
        return {i: (_load_model(model[i]) if model.get(i) is not None else None) for i in instruments}
    loaded = _load_model(model) if model is not None else None
    return {i: loaded for i in instruments}


class _Prepared:
    """What the core needs for a run, made once from the instruments, model, config and strategy."""

    def __init__(self, specs: dict, l3_ids: set, model, config, strategy, shadow=None) -> None:
        from bot4 import strategies

        if not specs:
            raise ValueError("the data names no instrument")
        cfg = engine_config(config)
        strat_section = dict(cfg.pop("strategy", {}) or {})
        name = strat_section.pop("name", None)
        spec = strategy if strategy is not None else name
        if strategy is not None and name is not None and strategy != name:
            raise ValueError(f"strategy {strategy!r} given, but the config's [strategy] names {name!r}")
        if spec is not None and not strategies.is_builtin(spec) and strat_section:
            raise ValueError("[strategy] fields are for built-ins; configure a user strategy in its own code")
        ids = sorted(specs)
        # model=[a, b, ...]: several slots (0, 1, ...), combined by the [ensemble] section; the
        # slots after the first are placed like shadows (before any shadow given apart).
        slots = list(model) if isinstance(model, (list, tuple)) else [model]
        if not slots:
            raise ValueError("model=[]: give at least one model (or None)")
        if len(slots) > 1 and any(m is None for m in slots):
            raise ValueError("model=[...]: every slot needs a model")
        models = _models_for(slots[0], ids)
        shadows = [_models_for(s, ids) for s in slots[1:]]
        shadows += [_models_for(s, ids) for s in (shadow if isinstance(shadow, (list, tuple)) else
                                                  ([shadow] if shadow is not None else []))]
        ens = (cfg.get("ensemble") or {}).get("mode", "none")
        if ens != "none" and not shadows:
            raise ValueError(f"[ensemble] mode {ens!r} combines several models: give model=[dir, dir, ...]")
        if shadows and any(m is None for m in models.values()):
            raise ValueError("shadow models are scored beside a champion model: give model= too")
        trained = [getattr(m, "feature_config", None)
                   for ms in (models, *shadows) for m in ms.values() if m is not None]
        if len({repr(t) for t in trained}) > 1:
            raise ValueError("the instruments' models were trained with different feature configs; "
                             "one engine computes one feature config")
        cfg["features"] = features_section(cfg.get("features"), trained[0] if trained else None)
        sim = cfg.pop("sim", None)
        instruments = []
        for i in ids:
            s = specs[i]
            if spec is not None and not isinstance(spec, str) and len(ids) > 1 and not isinstance(spec, type):
                raise ValueError("one strategy instance cannot trade several instruments: pass its class")
            made = strategies.make(spec, strat_section if (spec is None or strategies.is_builtin(spec)) else None)
            m = models[i]
            slots = [m, *(sh[i] for sh in shadows)] if m is not None else []
            # contract_size: an inverse (coin-margined) contract's face value, a linear contract's
            # multiplier (CME ES: 50); the core's ledger, sizing and fees use it either way
            inverse = bool(getattr(s, "inverse", False))
            instruments.append({"id": int(i), "tick_size": float(s.tick_size), "lot_size": float(s.lot_size),
                                "inverse": inverse, "contract_size": float(getattr(s, "contract_size", 1)),
                                "l3": i in l3_ids, "strategy": made, "sim": sim,
                                "models": [getattr(x, "core", x) for x in slots]})
        self.n_shadows = len(shadows)
        self.ensemble = ens != "none"
        self.cfg, self.instruments, self.ids, self.l3_ids = cfg, instruments, ids, l3_ids
        self.specs = {int(i): specs[i] for i in ids}
        self.strat_section, self.sim = strat_section, sim

    def streams(self, data):
        """The arrays the core reads: L3 instruments (order events) run their venue in L3 mode
        with exact queue positions; an L2 book derived alongside them is not replayed again."""
        orders = np.ascontiguousarray(data.orders) if data.orders.size else None
        book = data.book
        if self.l3_ids:
            book = book[~np.isin(book["instrument"], list(self.l3_ids))]
        return np.ascontiguousarray(book), np.ascontiguousarray(data.trades), orders

    def result(self, out: dict, records: dict, n_events: int, seconds: float) -> BacktestResult:
        equity = records["equity"]
        pnl = float(equity["total_equity"][-1]) if equity.size else 0.0
        per = []
        for d in out["instruments"]:
            s = self.specs[int(d["instrument"])]
            per.append(dict(d, symbol=getattr(s, "symbol", str(d["instrument"])), tick_size=float(s.tick_size),
                            lot_size=float(s.lot_size), inverse=bool(getattr(s, "inverse", False)),
                            contract_size=float(getattr(s, "contract_size", 1))))
        first = self.specs[self.ids[0]]
        cfg = dict(self.cfg)
        strat = self.instruments[0]["strategy"]
        cfg["strategy"] = {"name": strat.name if hasattr(strat, "name") else type(strat).__name__,
                           **self.strat_section}
        cfg["sim"] = self.sim
        return BacktestResult(
            events=n_events, decisions=records["decisions"], orders=records["orders"], fills=records["fills"],
            equity=equity, latency_ns=dict(records["latency_ns"]), counters=dict(out["counters"]),
            rejections=dict(out["rejections"]), pnl=pnl, max_drawdown=float(out["max_drawdown"]), seconds=seconds,
            tick_size=float(first.tick_size), lot_size=float(first.lot_size),
            order_rejections=dict(out["order_rejections"]), kill_reason=str(out["kill_reason"]), config=cfg,
            instruments=per, scores=records.get("scores") if (self.n_shadows or self.ensemble) else None)


def _l3_ids(data) -> set:
    return set(np.unique(data.orders["instrument"]).tolist()) if data.orders.size else set()


def _done(result: BacktestResult, progress: bool) -> BacktestResult:
    if progress:
        print(f"backtest: done in {result.seconds:.2f} s ({result.events_per_second:,.0f} events/s), "
              f"{result.decisions.size:,} decisions, {result.n_orders:,} orders, {result.fills.size:,} fills, "
              f"pnl {result.pnl:,.2f}", file=sys.stderr, flush=True)
    return result


def run(data, model=None, config=None, progress: bool = True, *, strategy=None, shadow=None) -> BacktestResult:
    """Backtest `data` through the engine: book -> features -> model -> strategy -> risk ->
    orders -> venue simulator, in the core with the GIL released (a Python strategy takes it for
    its own calls only).

    data: MarketData, a recording path, or a list of either (several instruments, e.g. BTCUSDT
    and ETHUSDT recorded together: one book, feature state, model slot, strategy and simulated
    venue per instrument, one ledger and kill switch across them). model: a model directory,
    LoadedModel or _core.inference.Model for every instrument, a dict {instrument id: model},
    None (strategies that need none), or a list of those: several model slots (0, 1, ...) that
    the config's [ensemble] section combines into the probability the strategy trades on
    (bot4.config.EnsembleConfig; modes, breaker and adaptive weights in
    core/inference/ensemble.hpp; result.decisions["p"] is then the ensemble's and result.scores
    holds every slot's output). config: None, a dict of sections (see SECTIONS) or a
    bot4.config.Config. strategy: a built-in name, "module:Class", a .py/.pyx path, a bot4.Strategy
    class (one instance per instrument) or instance (one instrument), or None (the config's
    [strategy] name, default threshold_bracket). shadow: a model (or a list of them, same forms as
    model) scored at every decision beside the champion, on the same feature row, in model slots
    1, 2, ...: logged in result.scores, never traded by the built-in strategies (see
    bot4.research.shadow.compare). For recordings larger than memory see bot4.backtest.run_stream."""
    data = _merged(data)
    prep = _Prepared(data.specs, _l3_ids(data), model, config, strategy, shadow)
    book, trades, orders = prep.streams(data)
    n_events = int(book.size + trades.size + (orders.size if orders is not None else 0))
    if progress:
        what = f"{orders.size:,} L3 order" if orders is not None else f"{book.size:,} book"
        n = len(prep.ids)
        print(f"backtest: {n_events:,} events ({what}, {trades.size:,} trades, {n} instrument"
              f"{'s' if n > 1 else ''})...", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    out = _core.engine.backtest(prep.cfg, prep.instruments, book, trades, orders)
    return _done(prep.result(out, out, n_events, time.perf_counter() - t0), progress)
