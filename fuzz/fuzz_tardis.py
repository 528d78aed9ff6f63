"""Fuzz bot4.data.load_tardis (Tardis CSV: incremental_book_L2, trades, quotes, book_snapshot_N;
the native decoder, plain, gzip or zstd) and the feature engine on its output. Differential: on
ASCII input the Python reference (engine="python") must give the same arrays and rejections (on
non-ASCII bytes the reference's int() also reads Unicode digits, a documented difference).

    python fuzz/fuzz_tardis.py -max_total_time=30      # bounded (CI)
    python fuzz/fuzz_tardis.py -runs=1000000           # >= 1M inputs
"""

import csv
import gzip

import zstandard

from bot4.data.tardis import load_tardis
from bot4.errors import Bot4Error

import _harness
from _features import run_features


def seeds() -> list[bytes]:
    t = 1585699200245000
    book = ["exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount",
            f"deribit,BTC-PERPETUAL,{t},{t + 110},true,ask,6421.5,18640",
            f"deribit,BTC-PERPETUAL,{t},{t + 110},true,bid,6421.0,1000",
            f"deribit,BTC-PERPETUAL,{t + 900},{t + 1000},false,bid,6421.0,0",
            f"deribit,BTC-PERPETUAL,{t + 950},{t + 1050},false,bid,6420.5,250"]
    trades = ["exchange,symbol,timestamp,local_timestamp,id,side,price,amount",
              f"bitmex,XBTUSD,{t},{t + 160},ccc3c1fa-212c-e8b0-1706-9b9c4f3d5ecf,sell,8531.5,2152",
              f"bitmex,XBTUSD,{t + 5},{t + 170},7,buy,8532,10"]
    quotes = ["exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_price,bid_amount",
              f"huobi-dm-swap,BTC-USD,{t},{t + 135},5494,8629.3,8629.2,806"]
    snap = ["exchange,symbol,timestamp,local_timestamp,asks[0].price,asks[0].amount,bids[0].price,"
            "bids[0].amount,asks[1].price,asks[1].amount,bids[1].price,bids[1].amount",
            f"binance-futures,BTCUSDT,{t},{t + 115},11657.08,1.714,11657.07,10.896,11657.54,5.4,11656.97,0.2",
            f"binance-futures,BTCUSDT,{t + 99},{t + 215},11657.10,1.0,11657.07,10.0,11657.54,5.4,11656.97,,"]
    return [b"\x00" + ("\n".join(x) + "\n").encode() for x in (book, trades, quotes, snap)] + \
           [b"\x01" + ("\n".join(book) + "\n").encode(), b"\x02" + ("\n".join(trades) + "\n").encode()]


def one_input(data: bytes) -> None:
    if not data:
        return
    mode, body = data[0], data[1:]
    if mode & 2:
        path = _harness.scratch("fuzz.csv.zst")
        path.write_bytes(zstandard.compress(body, level=1))
    else:
        path = _harness.scratch("fuzz.csv.gz" if mode & 1 else "fuzz.csv")
        path.write_bytes(gzip.compress(body, compresslevel=1) if mode & 1 else body)
    try:
        md = load_tardis([path])
    except Bot4Error as exc:
        if body.isascii():
            try:
                load_tardis([path], engine="python")
            except (Bot4Error, csv.Error):
                return
            raise AssertionError(f"native refused what the reference read: {exc}") from None
        return
    if body.isascii():
        _harness.assert_same_as_reference(md, lambda: load_tardis([path], engine="python"),
                                          refusals=(Bot4Error, csv.Error))
    run_features(md)


if __name__ == "__main__":
    _harness.main(__file__, seeds, one_input)
