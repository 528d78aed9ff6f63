"""What the native decoders' tests share: equality of two MarketData as the native decoder and
its Python reference produce them, and a hypothesis strategy that damages the lines of a file."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

OPS = ("cut", "splice", "drop", "dup", "swap")


def assert_same_data(native, reference, *, stats: bool = False) -> None:
    """Bit-identical arrays, rejection counts and samples (in first-seen order), specs (in order),
    venue, sources and sequence gaps; with `stats`, the loaders' stats too."""
    for name in ("book", "trades", "bbo", "orders"):
        a, b = getattr(native, name), getattr(reference, name)
        assert a.dtype == b.dtype, name
        assert a.shape == b.shape, f"{name}: {a.shape} != {b.shape}"
        assert a.tobytes() == b.tobytes(), f"{name} differs at {np.flatnonzero(a != b)[:5]}"
    assert native.rejections.as_dict() == reference.rejections.as_dict()
    assert native.rejections.samples == reference.rejections.samples
    assert list(native.rejections.samples) == list(reference.rejections.samples)  # first-seen order
    assert native.specs == reference.specs and list(native.specs) == list(reference.specs)
    assert (native.venue, native.sources, native.sequence_gaps) == \
        (reference.venue, reference.sources, reference.sequence_gaps)
    if stats:
        assert native.stats == reference.stats


@st.composite
def damaged(draw, lines: list[bytes], junk: list[bytes], *, min_ops: int = 1, max_ops: int = 6, first: int = 0,
            keep: int = 1, ops: tuple[str, ...] = OPS) -> list[bytes]:
    """`lines` after min_ops..max_ops random edits at lines `first` onwards: cut a line short, splice
    a `junk` token in, drop a line (while more than `keep` remain), duplicate one, swap two, or
    ("flip" in `ops`) flip one bit."""
    out = list(lines)
    for _ in range(draw(st.integers(min_ops, max_ops))):
        i = draw(st.integers(first, len(out) - 1))
        op = draw(st.sampled_from(ops))
        line = out[i]
        if op == "cut":
            out[i] = line[:draw(st.integers(0, len(line)))]
        elif op == "splice":
            at = draw(st.integers(0, len(line)))
            width = draw(st.integers(0, 4))
            out[i] = line[:at] + draw(st.sampled_from(junk)) + line[at + width:]
        elif op == "drop" and len(out) > keep:
            del out[i]
        elif op == "dup":
            out.insert(i, line)
        elif op == "swap" and i + 1 < len(out):
            out[i], out[i + 1] = out[i + 1], out[i]
        elif op == "flip" and line:
            at = draw(st.integers(0, len(line) - 1))
            out[i] = line[:at] + bytes([line[at] ^ (1 << draw(st.integers(0, 7)))]) + line[at + 1:]
    return out
