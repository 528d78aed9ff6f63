"""Regression net for the engine: digests of a backtest's full outputs (decisions, orders, fills,
equity, counters) on the reference BTCUSDT recording and on the embedded stream, with a model
and configs fixed in tests/engine/pinned/. `python tests/engine/pinned_outputs.py --write` re-pins
(only when a change of outputs is intended, in a commit of its own that says why)."""
from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
PINNED = HERE / "pinned"
MODEL_DIR = PINNED / "model"
GOLDEN = PINNED / "golden.json"
REFERENCE = Path(os.environ.get("BOT4_DATA", HERE.parents[1].parent / "shared" / "data")) / \
    "binance_hftbacktest" / "usdm" / "btcusdt_20240808.gz"

CONFIG = {"strategy": {"long_threshold": 0.505, "stop_ticks": 5, "target_ticks": 8, "order_ttl_ns": 1_000_000_000,
                       "fixed_qty_lots": 0, "max_qty_lots": 7},
          "pre_trade": {"max_position_lots": 10, "max_open_orders": 4, "rate_capacity": 5, "rate_per_second": 2},
          "sim": {"entry_latency_ns": 200_000, "response_latency_ns": 200_000}}
EMBEDDED = {"seed": 7, "n_events": 150_000}
OUTPUTS = ("decisions", "orders", "fills", "equity")


# Fields digested when the golden file does not list them (the layouts it was first pinned with);
# fields added to a record later are additions, the pinned ones must stay bit-identical.
LEGACY_FIELDS = {
    "decisions": ("ts", "p", "target", "action", "position"),
    "orders": ("ts", "id", "side", "price", "qty", "filled", "type", "status", "kind", "role", "reason", "flags"),
    "fills": ("ts", "id", "side", "price", "qty", "fee", "maker", "role", "accepted"),
    "equity": ("ts", "position", "realised", "unrealised", "fees", "equity"),
}


def _digest(a: np.ndarray, fields=None) -> dict:
    a = np.ascontiguousarray(a)
    fields = tuple(fields or a.dtype.names)
    # field by field, so padding bytes never enter the digest
    h = hashlib.sha256()
    for name in fields:
        h.update(name.encode())
        h.update(np.ascontiguousarray(a[name]).tobytes())
    return {"rows": int(a.size), "sha256": h.hexdigest(), "fields": list(fields)}


def run_source(source: str):
    from bot4.backtest import run

    if source == "btcusdt":
        from bot4.data import load

        data = load(REFERENCE)
    else:
        from bot4.sim import generate

        data = generate(seed=EMBEDDED["seed"], n_events=EMBEDDED["n_events"])
    return run(data, MODEL_DIR, config=CONFIG, progress=False)


def digests(result, golden: dict | None = None) -> dict:
    """Digests of a result's outputs; with `golden`, of the fields it pinned."""
    def fields(name):
        if golden is None:
            return None
        return golden[name].get("fields", LEGACY_FIELDS[name])

    out = {name: _digest(getattr(result, name), fields(name)) for name in OUTPUTS}
    out["pnl"] = float(result.pnl)
    out["counters"] = {k: int(v) for k, v in sorted(result.counters.items())}
    if golden is not None:  # counters added since the pin are compared only when they are not 0
        out["counters"] = {k: v for k, v in out["counters"].items() if k in golden["counters"] or v != 0}
    return out


def _train_model() -> None:
    from bot4.data import load
    from bot4.research import TrainConfig, train

    d = load(REFERENCE)
    train(d, TrainConfig(n_estimators=30, max_depth=4), MODEL_DIR, progress=False)


if __name__ == "__main__":
    if "--train" in sys.argv:
        _train_model()
    if "--write" in sys.argv:
        golden = {src: digests(run_source(src)) for src in ("btcusdt", "embedded")}
        GOLDEN.write_text(json.dumps(golden, indent=1, sort_keys=True) + "\n")
        print(json.dumps({k: {n: v[n] for n in OUTPUTS} for k, v in golden.items()}, indent=1))
