"""Fuzz bot4.data.load_binance (raw hftbacktest-collector lines) and the feature engine on its output.

    python fuzz/fuzz_binance.py -max_total_time=30      # bounded (CI)
    python fuzz/fuzz_binance.py -runs=1000000           # >= 1M inputs
"""

import gzip
import sys

import atheris

from bot4.data.binance import load_binance
from bot4.errors import Bot4Error

import _harness
from _features import run_features

_MARKETS = (None, "usdm", "spot", "coinm")


def seeds() -> list[bytes]:
    t, e = 1723161255030314667, 1723161256299
    lines = [
        f'{t} {{"lastUpdateId":100,"E":{e},"T":{e},"bids":[["61800.10","1.000"],["61800.00","2.5"]],'
        f'"asks":[["61800.20","0.5"],["61800.30","0.75"]]}}',
        f'{t + 1000} {{"stream":"btcusdt@depth@0ms","data":{{"e":"depthUpdate","E":{e + 1},"T":{e + 1},'
        f'"s":"BTCUSDT","U":99,"u":101,"pu":98,"b":[["61800.10","0.900"]],"a":[["61800.40","0.010"]]}}}}',
        f'{t + 2000} {{"stream":"btcusdt@bookTicker","data":{{"e":"bookTicker","u":102,"s":"BTCUSDT",'
        f'"b":"61800.10","B":"0.900","a":"61800.20","A":"0.500","T":{e + 2},"E":{e + 2}}}}}',
        f'{t + 3000} {{"stream":"btcusdt@trade","data":{{"e":"trade","E":{e + 3},"T":{e + 3},"s":"BTCUSDT",'
        f'"t":5266583935,"p":"61800.20","q":"0.006","X":"MARKET","m":false}}}}',
        f'{t + 4000} {{"stream":"btcusdt@depth@0ms","data":{{"e":"depthUpdate","E":{e + 4},"T":{e + 4},'
        f'"s":"BTCUSDT","U":102,"u":103,"pu":101,"b":[["61800.10","0.000"]],"a":[]}}}}',
    ]
    usdm = "\n".join(lines).encode() + b"\n"
    spot = usdm.replace(b"@depth@0ms", b"@depth@100ms").replace(b',"pu":98', b"").replace(
        b',"pu":101', b"")
    return [b"\x01" + usdm, b"\x00" + usdm, b"\x02" + spot, b"\x05" + usdm]


def one_input(data: bytes) -> None:
    if not data:
        return
    mode, body = data[0], data[1:]
    path = _harness.scratch("fuzz.gz" if mode & 4 else "fuzz.txt")
    path.write_bytes(gzip.compress(body, compresslevel=1) if mode & 4 else body)
    try:
        md = load_binance([path], market=_MARKETS[mode & 3])
    except Bot4Error:
        return
    run_features(md)


if __name__ == "__main__":
    _harness.main(__file__, seeds, one_input)
