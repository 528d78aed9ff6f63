"""One streamed backtest of the embedded simulator's stream, made and run piece by piece; prints
JSON with the bytes of event records it went through and the process's resident memory
(VmRSS after each piece, VmHWM at the end). Run in its own process by test_soak_stream.py.

    python bench/soak_stream.py N_EVENTS [PART_EVENTS]
"""
from __future__ import annotations

import json
import sys
import time


def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def main() -> None:
    from bot4.backtest import run_stream
    from bot4.backtest.streaming import watermarked
    from bot4.sim import default_params, generate_parts

    n_events = int(sys.argv[1])
    part = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
    seen = {"bytes": 0, "records": 0, "orders": 0, "fills": 0}
    rss: list[int] = []

    def parts():
        for p in generate_parts(seed=7, n_events=n_events, part_events=part):
            seen["bytes"] += p.book.nbytes + p.orders.nbytes + p.trades.nbytes
            seen["records"] += p.book.size + p.orders.size + p.trades.size
            rss.append(_status("VmRSS"))
            yield p

    def sink(rec):
        seen["orders"] += int(rec["orders"].size)
        seen["fills"] += int(rec["fills"].size)

    params = default_params()
    t0 = time.perf_counter()
    res = run_stream(watermarked(parts()), {params.instrument.instrument_id: params.instrument}, None,
                     {"sim": {"entry_latency_ns": 200_000, "response_latency_ns": 200_000}}, progress=False,
                     strategy="market_maker", l3=[params.instrument.instrument_id], on_records=sink)
    print(json.dumps({"n_events": n_events, "event_bytes": seen["bytes"], "records": seen["records"],
                      "orders": seen["orders"], "fills": seen["fills"], "pnl": res.pnl,
                      "seconds": time.perf_counter() - t0, "rss_samples": rss, "parts": len(rss),
                      "rss_last": rss[-1] if rss else 0, "peak_rss": _status("VmHWM"),
                      "late": res.counters["late_events"] + res.counters["sim_late_feed_events"]}))


if __name__ == "__main__":
    main()
