"""Values beyond int64 and implausible timestamps in every loader: counted rejections or a clear
DataError, never a raw OverflowError / PanicException, and the rest of the file is kept.
Inputs are written from each format's documented layout (no recordings needed); several are
minimised crashes found by the fuzz targets in fuzz/."""

from __future__ import annotations

import gzip

import pytest

from bot4.data.binance import load_binance
from bot4.data.market_data import MAX_CLOCK_SKEW_NS

T0 = 1723161255030314667
E0 = 1723161256299


def _binance_lines(trade_id=5266583935, ts_jump=0, E=E0, u_ticker=102):
    return [
        f'{T0} {{"lastUpdateId":100,"E":{E0},"T":{E0},"bids":[["61800.10","1.000"]],"asks":[["61800.20","0.5"]]}}',
        f'{T0 + 1000} {{"stream":"btcusdt@depth@0ms","data":{{"e":"depthUpdate","E":{E0 + 1},"T":{E0 + 1},'
        f'"s":"BTCUSDT","U":99,"u":101,"pu":98,"b":[["61800.10","0.900"]],"a":[]}}}}',
        f'{T0 + 2000 + ts_jump} {{"stream":"btcusdt@trade","data":{{"e":"trade","E":{E},"T":{E},"s":"BTCUSDT",'
        f'"t":{trade_id},"p":"61800.20","q":"0.006","X":"MARKET","m":false}}}}',
        f'{T0 + 3000} {{"stream":"btcusdt@bookTicker","data":{{"e":"bookTicker","u":{u_ticker},"s":"BTCUSDT",'
        f'"b":"61800.10","B":"0.900","a":"61800.20","A":"0.500","T":{E0 + 3},"E":{E0 + 3}}}}}',
        f'{T0 + 4000} {{"stream":"btcusdt@trade","data":{{"e":"trade","E":{E0 + 4},"T":{E0 + 4},"s":"BTCUSDT",'
        f'"t":{5266583936 if trade_id < 2**62 else 7},"p":"61800.20","q":"0.001","X":"MARKET","m":true}}}}',
    ]


def _write(tmp_path, lines, name="b.gz"):
    path = tmp_path / name
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    return path


def test_binance_clean_fixture_loads(tmp_path):
    md = load_binance(_write(tmp_path, _binance_lines()), market="usdm")
    assert len(md.trades) == 2 and len(md.bbo) == 1 and md.rejections.total == 0


@pytest.mark.parametrize("field", ["trade_id", "E", "u_ticker"])
@pytest.mark.parametrize("value", [2**63, 2**64 + 5, 10**30])
def test_binance_integers_beyond_int64_are_bad_schema(tmp_path, field, value):
    md = load_binance(_write(tmp_path, _binance_lines(**{field: value})), market="usdm")
    assert md.rejections.counts["bad_schema"] == 1
    assert len(md.trades) + len(md.bbo) == 2  # the other trade and the ticker or trade are kept


@pytest.mark.parametrize("jump", [10**16, 10**17, 2**63 - T0 - 2000 + 1, MAX_CLOCK_SKEW_NS + 2 * 10**9])
def test_binance_jumped_receive_time_is_an_implausible_timestamp(tmp_path, jump):
    md = load_binance(_write(tmp_path, _binance_lines(ts_jump=jump)), market="usdm")
    assert md.rejections.counts["implausible_timestamp"] == 1
    assert len(md.trades) == 1 and int(md.trades["ts_local"].max()) < T0 + 10**9


def test_binance_receive_time_before_2000_is_rejected(tmp_path):
    lines = _binance_lines()
    lines[2] = "5" + lines[2][lines[2].index(" "):]
    md = load_binance(_write(tmp_path, lines), market="usdm")
    assert md.rejections.counts["implausible_timestamp"] == 1 and len(md.trades) == 1


# --- Databento MBO ------------------------------------------------------------------------------

def _dbn_plain(n_records: int) -> tuple[bytes, int]:
    """Metadata plus the first n MBO records of the ESH4 recording, decompressed; and where the
    records start."""
    import struct

    import zstandard
    from recordings import data_path

    src = data_path("databento_cme", "esh4-glbx-mdp3-20231225.mbo.dbn.zst").read_bytes()
    raw = zstandard.ZstdDecompressor().stream_reader(src, read_across_frames=True).read()
    start = 8 + struct.unpack_from("<I", raw, 4)[0]
    pos = start
    for _ in range(n_records):
        pos += raw[pos] * 4
    return raw[:pos], start


@pytest.mark.realdata
def test_databento_lost_framing_keeps_every_record_before_it(tmp_path):
    from bot4.data.databento_mbo import load_databento_mbo

    clean, start = _dbn_plain(60)
    buf = bytearray(clean)
    buf[start + 20 * 56] = 0  # a record that cannot hold its own header: where it ends is unknown
    (tmp_path / "bad.dbn").write_bytes(bytes(buf))
    md = load_databento_mbo(tmp_path / "bad.dbn", tick_size="0.25")
    assert md.rejections.counts["corrupt_record"] == 1
    assert md.stats["records"] == 20


@pytest.mark.realdata
def test_databento_one_foreign_or_oversized_record_does_not_end_the_file(tmp_path):
    from bot4.data.databento_mbo import load_databento_mbo

    clean, start = _dbn_plain(60)
    buf = bytearray(clean)
    buf[start + 5 * 56 + 1] = 0x01  # one MBP-1 record among the MBO ones
    r8 = start + 8 * 56
    buf[r8 + 8:r8 + 16] = (2**64 - 1).to_bytes(8, "little")  # ts_event beyond int64
    r9 = start + 9 * 56
    buf[r9] = 16  # an MBO rtype record of 64 bytes: counted, skipped by its own length
    buf[r9 + 56:r9 + 56] = bytes(8)
    (tmp_path / "bad.dbn").write_bytes(bytes(buf))
    md = load_databento_mbo(tmp_path / "bad.dbn", tick_size="0.25")
    counts = md.rejections.counts
    assert counts["unsupported_record:MBP1Msg"] == 1
    assert counts["bad_timestamp"] == 1
    assert counts["corrupt_record"] == 1
    assert md.stats["records"] == 60 - 3  # all but the MBP-1, the bad ts and the oversized one


# --- LOBSTER ------------------------------------------------------------------------------------

_LOB = "AAPL_2012-06-21_34200000_57600000_{}_2.csv"
_MSGS = ["34200.004241176,1,16113575,18,5853300,1",
         "34200.00426064,1,16113584,18,5853200,1",
         "34200.005,1,16113600,100,5859400,-1",
         "34200.006,3,16113584,18,5853200,1"]
_BOOK = ["5859400,0,5853300,18,9999999999,0,5853200,0",
         "5859400,0,5853300,18,9999999999,0,5853200,18",
         "5859400,100,5853300,18,9999999999,0,5853200,18",
         "5859400,100,5853300,18,9999999999,0,-9999999999,0"]


def _lobster(tmp_path, msgs, book=None):
    m = tmp_path / _LOB.format("message")
    m.write_text("\n".join(msgs) + "\n")
    if book is not None:
        (tmp_path / _LOB.format("orderbook")).write_text("\n".join(book) + "\n")
    return m


@pytest.mark.parametrize("row, reason", [
    ("34200.007,1,99999999999999999999999,5,5853100,1", "out_of_range"),
    ("34200.007,1,7,18446744073709551616,5853100,1", "out_of_range"),
    ("34200.007,1,7,5,-9223372036854775809,1", "out_of_range"),
    ("99999999999.0,1,7,5,5853100,1", "implausible_timestamp"),
])
def test_lobster_values_beyond_int64_and_times_beyond_the_day_are_counted(tmp_path, row, reason):
    from bot4.data.lobster import load_lobster

    md = load_lobster(_lobster(tmp_path, _MSGS + [row]))
    assert md.rejections.counts[reason] == 1
    assert len(md.orders) >= 4


def test_lobster_orderbook_value_beyond_int64_is_a_bad_row(tmp_path):
    from bot4.data.lobster import load_lobster

    book = _BOOK[:3] + ["5859400,100,5853300,99999999999999999999999,9999999999,0,5853200,0"]
    m = _lobster(tmp_path, _MSGS, book)
    md = load_lobster(m, tmp_path / _LOB.format("orderbook"))
    assert md.rejections.counts["orderbook_bad_row"] == 1


def test_bot4_data_load_passes_the_orderbook_file_beside_the_messages(tmp_path):
    import bot4.data
    from bot4.data.lobster import load_lobster

    m = _lobster(tmp_path, _MSGS, _BOOK)
    direct = load_lobster(m, tmp_path / _LOB.format("orderbook"))
    via = bot4.data.load(m, venue="lobster")
    alone = load_lobster(m)
    assert via.stats == direct.stats and via.rejections.as_dict() == direct.rejections.as_dict()
    assert via.stats != alone.stats  # the orderbook file is used: reconciliation counters differ
    assert (via.orders == direct.orders).all() and len(via.orders) == len(direct.orders)


# --- Tardis -------------------------------------------------------------------------------------

@pytest.mark.parametrize("row, reason", [
    ("bitmex,XBTUSD,1583020803145000,99999999999999999999,7,buy,8532,10", "implausible_timestamp"),
    ("bitmex,XBTUSD,1583020803145000,1683020803145000,7,buy,8532,10", "implausible_timestamp"),
    ("bitmex,XBTUSD,1583020803145000,1583020803307160,99999999999999999999,buy,8532,10", "bad_id"),
])
def test_tardis_timestamps_and_ids_beyond_range_are_counted(tmp_path, row, reason):
    from bot4.data.tardis import load_tardis

    path = tmp_path / "trades.csv"
    path.write_text("exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n"
                    "bitmex,XBTUSD,1583020803145000,1583020803307160,5,sell,8531.5,2152\n" + row + "\n")
    md = load_tardis(path)
    assert md.rejections.counts[reason] == 1 and len(md.trades) == 1
