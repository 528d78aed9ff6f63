"""Write tests/contracts/golden/<tag>.msgpack: the encoding of each sample in contract_samples.

Run `python tests/contracts/make_golden.py` only for an intended schema change (and bump
bot4.contracts.SCHEMA_VERSION when a layout changed); test_golden.py compares byte for byte.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
GOLDEN = HERE / "golden"


def main() -> int:
    sys.path.insert(0, str(HERE))
    from contract_samples import samples, topic_of_type

    from bot4.contracts import Codec

    GOLDEN.mkdir(exist_ok=True)
    wanted = set()
    for tag, msg in samples().items():
        path = GOLDEN / f"{tag}.msgpack"
        path.write_bytes(Codec(topic_of_type(type(msg))).encode(msg))
        wanted.add(path.name)
        print(f"{path.relative_to(HERE.parent.parent)}: {path.stat().st_size} B")
    for stale in GOLDEN.glob("*.msgpack"):
        if stale.name not in wanted:
            stale.unlink()
            print(f"removed {stale.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
