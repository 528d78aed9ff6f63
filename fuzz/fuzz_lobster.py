"""Fuzz bot4.data.load (venue "lobster": message file + the orderbook file beside it) and the
feature engine on its output. The input is the message file, a NUL byte, then the orderbook file
(no NUL: no orderbook file). The native decoder is checked against the Python reference
(load_lobster(engine="python")): same arrays, stats and rejections.

    python fuzz/fuzz_lobster.py -max_total_time=30      # bounded (CI)
    python fuzz/fuzz_lobster.py -runs=1000000           # >= 1M inputs
"""

import bot4.data
from bot4.data.lobster import load_lobster
from bot4.errors import Bot4Error

import _harness
from _features import run_features

_STEM = "AAPL_2012-06-21_34200000_57600000_{}_2.csv"


def seeds() -> list[bytes]:
    msgs = ["34200.004241176,1,16113575,18,5853300,1",
            "34200.00426064,1,16113584,18,5853200,1",
            "34200.004447484,1,16113594,18,5853100,1",
            "34200.005,1,16113600,100,5859400,-1",
            "34200.006,3,16113584,18,5853200,1",
            "34200.007,4,16113600,50,5859400,-1",
            "34200.008,2,16113575,8,5853300,1",
            "34200.009,5,0,10,5859500,-1"]
    book = ["5859400,100,5853300,18,9999999999,0,5853200,18",
            "5859400,100,5853300,18,9999999999,0,5853200,18",
            "5859400,100,5853300,18,9999999999,0,5853200,18",
            "5859400,100,5853300,18,9999999999,0,5853200,18",
            "5859400,100,5853300,18,9999999999,0,5853100,18",
            "5859400,50,5853300,18,9999999999,0,5853100,18",
            "5859400,50,5853300,10,9999999999,0,5853100,18",
            "5859400,50,5853300,10,9999999999,0,5853100,18"]
    m = ("\n".join(msgs) + "\n").encode()
    return [m + b"\x00" + ("\n".join(book) + "\n").encode(), m]


def one_input(data: bytes) -> None:
    message, sep, book = data.partition(b"\x00")
    mpath = _harness.scratch(_STEM.format("message"))
    bpath = _harness.scratch(_STEM.format("orderbook"))
    mpath.write_bytes(message)
    if sep:
        bpath.write_bytes(book)
    else:
        bpath.unlink(missing_ok=True)
    try:
        md = bot4.data.load(mpath, venue="lobster")
    except Bot4Error as exc:
        try:
            load_lobster(mpath, bpath if sep else None, engine="python")
        except Bot4Error:
            return
        raise AssertionError(f"native refused what the reference read: {exc}") from None
    _harness.assert_same_as_reference(md, lambda: load_lobster(mpath, bpath if sep else None, engine="python"),
                                      refusals=(Bot4Error,))
    run_features(md)


if __name__ == "__main__":
    _harness.main(__file__, seeds, one_input)
