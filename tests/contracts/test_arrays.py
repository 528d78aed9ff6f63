"""Array payloads: the simulator's event arrays go into batches as raw bytes and come back as
zero-copy, read-only views of the received frame; a wrong dtype or shape is refused at pack."""

from __future__ import annotations

import numpy as np
import pytest

from bot4 import contracts as c
from bot4 import events
from bot4.sim.generate import generate


@pytest.fixture(scope="module")
def market():
    return generate(seed=7, n_events=300)


@pytest.mark.parametrize(("cls", "attr"), [(c.BookBatch, "book"), (c.TradeBatch, "trades"), (c.L3Batch, "orders")])
def test_simulator_arrays_round_trip_zero_copy(market, cls, attr):
    records = getattr(market, attr)
    assert records.size > 0
    codec = c.Codec(c.MARKET)
    frame = codec.encode(c.pack(cls, records, seq=3, ts=1))
    msg = codec.decode(frame)
    assert isinstance(msg, cls) and msg.count == records.size and msg.dtype == cls.DTYPE
    out = c.unpack(msg)
    assert out.dtype == c.ARRAY_DTYPES[cls.DTYPE]
    np.testing.assert_array_equal(out, records)
    assert np.shares_memory(out, np.frombuffer(frame, np.uint8))  # a view into the frame itself
    assert not out.flags.writeable
    # bytes, not a list of numbers: the frame is the records plus a small header
    assert len(frame) - records.nbytes < 64


def test_pack_copies_so_the_caller_may_reuse_its_array():
    a = np.zeros(2, events.TRADE_EVENT)
    a["price"] = [5, 6]
    msg = c.pack(c.TradeBatch, a, seq=0, ts=0)
    a["price"] = [7, 8]
    assert list(c.unpack(msg)["price"]) == [5, 6]


def test_pack_takes_a_strided_slice_and_an_empty_array():
    a = np.zeros(6, events.BOOK_EVENT)
    a["qty"] = np.arange(6)
    msg = c.pack(c.BookBatch, a[::2], seq=0, ts=0)
    assert list(c.unpack(msg)["qty"]) == [0, 2, 4]
    empty = c.pack(c.BookBatch, a[:0], seq=0, ts=0)
    assert empty.count == 0 and c.unpack(empty).size == 0


def test_pack_refuses_a_wrong_dtype_naming_the_expected_one():
    with pytest.raises(TypeError, match="expected dtype BookEvent"):
        c.pack(c.BookBatch, np.zeros(2, events.TRADE_EVENT), seq=0, ts=0)
    # same names, one field narrower (a record of another layout)
    narrow = np.dtype([(n, "<i4" if n == "qty" else events.BOOK_EVENT.fields[n][0]) for n in events.BOOK_EVENT.names],
                      align=True)
    with pytest.raises(TypeError, match="BookEvent"):
        c.pack(c.BookBatch, np.zeros(2, narrow), seq=0, ts=0)
    with pytest.raises(TypeError, match="numpy array"):
        c.pack(c.BookBatch, [1.0, 2.0], seq=0, ts=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="1-D"):
        c.pack(c.BookBatch, np.zeros((2, 2), events.BOOK_EVENT), seq=0, ts=0)


def test_unpack_refuses_a_batch_that_disagrees_with_itself():
    good = c.pack(c.BookBatch, np.zeros(3, events.BOOK_EVENT), seq=0, ts=0)
    short = c.BookBatch(seq=0, ts=0, dtype="BookEvent", count=3, data=memoryview(bytes(good.data)[:-8]))
    with pytest.raises(c.PayloadError, match=r"is 144 B, got 136 B") as err:
        c.unpack(short)
    assert err.value.reason == "payload_size"
    wrong = c.BookBatch(seq=0, ts=0, dtype="TradeEvent", count=3, data=good.data)
    with pytest.raises(c.PayloadError) as err:
        c.unpack(wrong)
    assert err.value.reason == "payload_dtype"


def test_perf_samples_travel_as_int64_bytes():
    lat = np.array([1, 2, 3, 2**40], "<i8")
    codec = c.Codec(c.TELEMETRY)
    msg = codec.decode(codec.encode(c.pack(c.PerfSample, lat, seq=0, ts=0, service="venue", stage="bus:engine->venue")))
    assert isinstance(msg, c.PerfSample) and msg.stage == "bus:engine->venue"
    np.testing.assert_array_equal(c.unpack(msg), lat)
