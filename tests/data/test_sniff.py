"""bot4.data.sniff: a recording's format from its content (synthetic heads of each format; the
real files when the recordings are present)."""

from __future__ import annotations

import gzip
import zipfile

import pytest
import zstandard

from bot4.data.sniff import sniff

USDM = (b'1723161255030314667 {"stream":"btcusdt@depth@0ms","data":{"e":"depthUpdate","E":1723161256299,'
        b'"T":1723161256298,"s":"BTCUSDT","U":5,"u":7,"pu":4,"b":[["61496.50","0.010"]],"a":[]}}\n')
SPOT = (b'1723161253937085768 {"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1723161255208,'
        b'"s":"BTCUSDT","U":50093239189,"u":50093239202,"b":[["61737.63000000","0.00000000"]],"a":[]}}\n')
COINM = (b'1723161255030314667 {"stream":"btcusd_perp@depth@0ms","data":{"e":"depthUpdate","E":1,"T":1,'
         b'"s":"BTCUSD_PERP","U":5,"u":7,"pu":4,"b":[],"a":[]}}\n')
TARDIS = b"exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount\nbinance,BTCUSDT,1,2,true,bid,1.0,1\n"
LOBSTER = b"34200.004241176,1,16113575,18,5853300,1\n34200.00426064,1,16113584,18,5853200,1\n"


@pytest.mark.parametrize("name, content, venue", [
    ("a.gz", gzip.compress(USDM), "binance-usdm"),
    ("plain.txt", USDM, "binance-usdm"),
    ("b.gz", gzip.compress(SPOT), "binance-spot"),
    ("c.gz", gzip.compress(COINM), "binance-coinm"),
    ("renamed.bin", gzip.compress(TARDIS), "tardis"),          # the name does not matter
    ("t.csv", TARDIS, "tardis"),
    ("messages.csv", LOBSTER, "lobster"),
    ("x.dbn.zst", zstandard.ZstdCompressor().compress(b"DBN\x02" + bytes(60)), "databento-mbo"),
    ("x.dbn", b"DBN\x02" + bytes(60), "databento-mbo"),
])
def test_formats_are_told_from_content(tmp_path, name, content, venue):
    path = tmp_path / name
    path.write_bytes(content)
    found = sniff(path)
    assert found is not None and found.venue == venue and found.evidence


def test_simulator_npz_is_told(tmp_path):
    from bot4.sim import generate, save_npz

    path = save_npz(generate(n_events=200), tmp_path / "sim.npz")
    assert sniff(path).venue == "bot4-sim"
    other = tmp_path / "other.npz"
    with zipfile.ZipFile(other, "w") as z:
        z.writestr("matrix.npy", b"")
    assert sniff(other) is None


@pytest.mark.parametrize("content", [b"", b"garbage\n", b"\x1f\x8b\x08\x00broken gzip", b"PK\x03\x04broken zip",
                                     b"local_ts_ns,event_time_ms,kind\n1,2,update\n",
                                     b'123 {"not":"a stream"}\n'])
def test_anything_else_is_none(tmp_path, content):
    path = tmp_path / "f.gz"
    path.write_bytes(content)
    assert sniff(path) is None


@pytest.mark.realdata
def test_the_reference_recordings(shared_data):
    b = shared_data / "binance_hftbacktest"
    assert sniff(b / "usdm" / "btcusdt_20240808.gz").venue == "binance-usdm"
    assert sniff(b / "spot" / "btcusdt_20240808.gz").venue == "binance-spot"
    assert sniff(b / "coinm" / "btcusd_perp_20240808.gz").venue == "binance-coinm"
    assert sniff(shared_data / "lobster_aapl" / "AAPL_2012-06-21_34200000_57600000_message_10.csv").venue == "lobster"
    assert sniff(shared_data / "databento_cme" / "esh4-glbx-mdp3-20231224.mbo.dbn.zst").venue == "databento-mbo"
    assert sniff(b / "derived" / "binance_usdm_btcusdt_20240808_depth.csv.gz") is None
