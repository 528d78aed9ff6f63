"""Run every fuzz target in this folder for a bounded time (or a number of inputs) and summarise.

    python fuzz/run.py --seconds 20            # what .ci/run does: 20 s per target
    python fuzz/run.py --runs 1000000          # >= 1M inputs per target (on demand; hours)
    python fuzz/run.py --runs 1000000 binance  # one target

Writes build/fuzz/summary.json (inputs executed, seconds, crash files per target) and exits 1 if
any target found a crash, a hang or a leak of an unexpected exception. A finding's input is saved
as build/fuzz/<target>/crash-* (or timeout-*, oom-*); replay it with
`python fuzz/fuzz_<target>.py build/fuzz/<target>/crash-...`, then turn it into a regression test.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGETS = ["binance", "tardis", "lobster", "databento", "model", "config"]


def main() -> int:
    ap = argparse.ArgumentParser()
    group = ap.add_mutually_exclusive_group()
    group.add_argument("--seconds", type=int, default=20, help="time per target")
    group.add_argument("--runs", type=int, help="inputs per target (instead of a time bound)")
    # No choices= here: argparse checks a list default of a nargs="*" positional against choices
    # as one value (Python 3.11 refuses the default); the names are checked below instead.
    ap.add_argument("targets", nargs="*", help=f"targets to run (default: all of {', '.join(TARGETS)})")
    args = ap.parse_args()
    bound = f"-runs={args.runs}" if args.runs else f"-max_total_time={args.seconds}"
    summary, failed = {}, []
    unknown = [t for t in args.targets if t not in TARGETS]
    if unknown:
        ap.error(f"unknown target(s) {', '.join(unknown)}; choose from {', '.join(TARGETS)}")
    args.targets = args.targets or list(TARGETS)
    for name in args.targets:
        out = HERE.parent / "build" / "fuzz" / name
        before = set(out.glob("*-*")) if out.is_dir() else set()
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, str(HERE / f"fuzz_{name}.py"), bound],
                              cwd=HERE, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        log = proc.stdout + proc.stderr
        (out / "last.log").parent.mkdir(parents=True, exist_ok=True)
        (out / "last.log").write_text(log)
        m = re.search(r"stat::number_of_executed_units:\s*(\d+)", log)
        found = sorted(str(p) for p in set(out.glob("*-*")) - before if p.name.split("-")[0] in
                       ("crash", "timeout", "oom", "leak"))
        summary[name] = {"inputs": int(m.group(1)) if m else None, "seconds": round(seconds, 1),
                         "exit_code": proc.returncode, "findings": found}
        ok = proc.returncode == 0 and not found
        print(f"{name:<10} {summary[name]['inputs'] or 0:>10} inputs {seconds:7.1f} s  "
              f"{'ok' if ok else 'FINDING: ' + (', '.join(found) or f'exit {proc.returncode}')}")
        if not ok:
            failed.append(name)
            print("\n".join(log.splitlines()[-40:]), file=sys.stderr)
    path = HERE.parent / "build" / "fuzz" / "summary.json"
    path.write_text(json.dumps(summary, indent=1))
    print(f"summary: {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
