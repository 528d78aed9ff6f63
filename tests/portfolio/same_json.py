"""One comparison of two portfolio jobs' --json outputs, shared by the core/python parity tests."""

from __future__ import annotations

import math

#: Top-level keys that are wall-clock measurements, not results.
TIMING_KEYS = ("seconds", "step_latency_ns")


def same_json(a, b, path: str = "") -> None:
    """a equals b key by key and item by item (floats to 1e-9), the timing keys aside."""
    if isinstance(a, dict):
        assert set(a) == set(b), path
        for k in a:
            if path == "" and k in TIMING_KEYS:
                continue
            same_json(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            same_json(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert a == b or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9), (path, a, b)
    else:
        assert a == b, (path, a, b)
