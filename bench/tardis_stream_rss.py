"""Peak resident memory of reading synthetic Tardis files (issue 14): `make` writes an
incremental_book_L2 file (gzip) and a trades file (plain) of a given number of rows; `stream`
reads them with bot4.data.tardis.iter_tardis and drops each part, `whole` with load_tardis. Prints
JSON: records and their bytes, parts, VmRSS after each part, VmHWM at the end. Run in its own
process by test_soak_tardis_stream.py, so the peak is this read's own.

    python bench/tardis_stream_rss.py make DIR ROWS
    python bench/tardis_stream_rss.py stream|whole DIR [CHUNK_BYTES]
"""
from __future__ import annotations

import gzip
import json
import random
import sys
import time
from pathlib import Path

L2 = "exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount"
TRADES = "exchange,symbol,timestamp,local_timestamp,id,side,price,amount"
T0 = 1_600_000_000_000_000


def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def make(out: Path, rows: int) -> None:
    """BTCUSDT-like L2 diffs (messages of 1-6 levels every ~100 µs) and a trade per ~20 L2 rows."""
    rng = random.Random(1)
    out.mkdir(parents=True, exist_ok=True)
    t = T0
    with gzip.open(out / "l2.csv.gz", "wt", compresslevel=1) as l2, open(out / "trades.csv", "w") as tr:
        l2.write(L2 + "\n")
        tr.write(TRADES + "\n")
        done = trade_id = 0
        while done < rows:
            block = []
            trades = []
            for _ in range(20_000):
                t += rng.randrange(20, 200)
                for _ in range(rng.randint(1, 6)):
                    side = "bid" if rng.random() < 0.5 else "ask"
                    price = 60000 + rng.randrange(-400, 400) / 10
                    block.append(f"binance-futures,BTCUSDT,{t - 900},{t},false,{side},{price:.1f},{rng.randrange(0, 5000) / 1000:.3f}")
                if rng.random() < 0.3:
                    trade_id += 1
                    trades.append(f"binance-futures,BTCUSDT,{t - 800},{t + 5},{trade_id},"
                                  f"{'buy' if rng.random() < 0.5 else 'sell'},{60000 + rng.randrange(-50, 50) / 10:.1f},"
                                  f"{rng.randrange(1, 900) / 1000:.3f}")
            l2.write("\n".join(block) + "\n")
            tr.write("\n".join(trades) + "\n")
            done += len(block)


def read(mode: str, out: Path, chunk: int) -> dict:
    from bot4.data.tardis import iter_tardis, load_tardis
    from bot4.instrument import InstrumentSpec

    files = [out / "l2.csv.gz", out / "trades.csv"]
    spec = InstrumentSpec(instrument_id=1, symbol="BTCUSDT", venue="binance-futures", tick_size="0.1", lot_size="0.001")
    rss: list[int] = []
    seen = {"records": 0, "bytes": 0, "parts": 0}
    started = time.perf_counter()
    parts = iter_tardis(files, spec, chunk_bytes=chunk) if mode == "stream" else [load_tardis(files, spec)]
    for p in parts:
        seen["records"] += len(p.book) + len(p.trades) + len(p.bbo)
        seen["bytes"] += p.book.nbytes + p.trades.nbytes + p.bbo.nbytes
        seen["parts"] += 1
        rss.append(_status("VmRSS"))
        del p
    return {"mode": mode, "chunk_bytes": chunk, "file_bytes": sum(f.stat().st_size for f in files),
            "records": seen["records"], "event_bytes": seen["bytes"], "parts": seen["parts"],
            "seconds": time.perf_counter() - started, "rss_samples": rss, "peak_rss": _status("VmHWM")}


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(Path(sys.argv[2]), int(sys.argv[3]))
    else:
        print(json.dumps(read(sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 1 << 20)))
