"""One side of the before/after comparison of the full backtest (bench/test_bench_backtest.py,
test_against_baseline_build): run in a subprocess, prints one JSON line.

    python bench/backtest_once.py DATA_FILE MODEL_DIR ROUNDS [SITE]

SITE: a directory holding another build of bot4 (`pip install --no-deps --target SITE <checkout>`);
it is imported instead of the installed bot4 (an editable install's import hook is removed first).
"""

from __future__ import annotations

import json
import sys
import time


def main(argv: list[str]) -> None:
    data_file, model_dir, rounds = argv[0], argv[1], int(argv[2])
    if len(argv) > 3:
        sys.meta_path[:] = [f for f in sys.meta_path if "ScikitBuildRedirectingFinder" not in type(f).__name__]
        sys.path.insert(0, argv[3])
    import numpy as np

    import bot4
    import bot4.backtest
    import bot4.models
    from bot4.data import load

    data = load(data_file)
    model = bot4.models.load(model_dir)
    bot4.backtest.run(data, model, progress=False)         # warm-up
    walls = []
    for _ in range(rounds):
        t = time.perf_counter()
        result = bot4.backtest.run(data, model, progress=False)
        walls.append(time.perf_counter() - t)
    t2d = np.asarray(result.latency_ns["tick_to_decision"], dtype=np.float64)
    print(json.dumps({"bot4": bot4.__file__, "events": int(result.events), "decisions": int(len(result.decisions)),
                      "orders": int(len(result.orders)), "fills": int(len(result.fills)), "pnl": float(result.pnl),
                      "walls": walls, "tick_to_decision_p50": float(np.percentile(t2d, 50)),
                      "tick_to_decision_p999": float(np.percentile(t2d, 99.9))}))


if __name__ == "__main__":
    main(sys.argv[1:])
