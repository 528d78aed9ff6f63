"""Hypothesis strategies for every bus message, built from the messages' own msgspec schema
(msgspec.inspect), so a field added to a message is generated without touching the tests."""

from __future__ import annotations

from typing import Any

import msgspec
import msgspec.inspect as mi
import numpy as np
from hypothesis import strategies as st

from bot4 import contracts as c

_INT_MIN, _UINT_MAX = -(2**63), 2**64 - 1
_any = st.one_of(st.none(), st.booleans(), st.integers(_INT_MIN, 2**63 - 1),
                 st.floats(allow_nan=False), st.text(max_size=12))


def _int(t: mi.IntType) -> st.SearchStrategy[int]:
    lo = t.ge if t.ge is not None else (t.gt + 1 if t.gt is not None else _INT_MIN)
    hi = t.le if t.le is not None else (t.lt - 1 if t.lt is not None else _UINT_MAX)
    if lo >= 0 and t.le is None and t.lt is None:
        hi = _UINT_MAX
    elif t.le is None and t.lt is None:
        hi = 2**63 - 1
    return st.integers(lo, hi)


def _float(t: mi.FloatType) -> st.SearchStrategy[float]:
    lo = t.ge if t.ge is not None else t.gt
    hi = t.le if t.le is not None else t.lt
    return st.floats(min_value=lo, max_value=hi, exclude_min=t.gt is not None, exclude_max=t.lt is not None,
                     allow_nan=False)


def for_type(t: mi.Type) -> st.SearchStrategy[Any]:
    if isinstance(t, mi.Metadata):  # a description on top of the type
        return for_type(t.type)
    if isinstance(t, mi.IntType):
        return _int(t)
    if isinstance(t, mi.FloatType):
        return _float(t)
    if isinstance(t, mi.BoolType):
        return st.booleans()
    if isinstance(t, mi.NoneType):
        return st.none()
    if isinstance(t, mi.StrType):
        if t.pattern is not None:
            return st.from_regex(t.pattern, fullmatch=True)
        return st.text(min_size=t.min_length or 0, max_size=max(t.min_length or 0, 24))
    if isinstance(t, mi.BytesType):
        return st.binary(max_size=64)
    if isinstance(t, mi.MemoryViewType):
        return st.binary(max_size=64).map(memoryview)
    if isinstance(t, mi.LiteralType):
        return st.sampled_from(t.values)
    if isinstance(t, mi.UnionType):
        return st.one_of(*(for_type(x) for x in t.types))
    if isinstance(t, mi.DictType):
        return st.dictionaries(for_type(t.key_type), for_type(t.value_type), max_size=4)
    if isinstance(t, mi.AnyType):
        return _any
    if isinstance(t, mi.StructType):
        return for_struct(t.cls)
    raise NotImplementedError(f"no strategy for {t!r}")


def for_struct(cls: type[msgspec.Struct]) -> st.SearchStrategy[Any]:
    if issubclass(cls, c.ArrayBatch):
        return _batch(cls)
    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)
    fields = {f.name: for_type(f.type) for f in info.fields}
    return st.builds(cls, **fields)


def _batch(cls: type[c.ArrayBatch]) -> st.SearchStrategy[Any]:
    """Batches hold records of their dtype: any bytes of a whole number of records is a valid
    record array at the byte level, so draw the bytes and pack them."""
    dtype = c.ARRAY_DTYPES[cls.DTYPE]
    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)
    own = {f.name: for_type(f.type) for f in info.fields
           if f.name not in ("dtype", "count", "data", "seq", "ts", "trace", "v")}

    @st.composite
    def build(draw: st.DrawFn) -> c.ArrayBatch:
        n = draw(st.integers(0, 8))
        raw = draw(st.binary(min_size=n * dtype.itemsize, max_size=n * dtype.itemsize))
        records = np.frombuffer(raw, dtype=dtype, count=n)
        return c.pack(cls, records, seq=draw(st.integers(0, 2**64 - 1)), ts=draw(st.integers(_INT_MIN, 2**63 - 1)),
                      trace=draw(st.integers(0, 2**64 - 1)), **{k: draw(v) for k, v in own.items()})

    return build()
