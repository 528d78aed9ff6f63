"""The native Tardis decoder (bot4.data.tardis_native, core/ingest/tardis_decoder) against the
Python reference (load_tardis(engine="python")): identical arrays, specs, venue, rejection counts
and samples on every Tardis file in ../shared/data, on damaged rows and compressed streams and on
random rows (differential fuzzing); every bad row is a counted rejection."""

from __future__ import annotations

import csv
import gzip

import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot4.data import tardis_native
from bot4.data.tardis import load_tardis
from bot4.errors import DataError
from bot4.instrument import InstrumentSpec
from native_parity import assert_same_data, damaged

FIXTURES = ["binance-futures_book_snapshot_25_BTCUSDT.csv", "binance-futures_book_snapshot_5_BTCUSDT.csv",
            "binance-futures_quotes_BTCUSDT_2020-02-22.csv.gz", "binance-futures_trades_BTCUSDT_2020-02-22.csv.gz",
            "bitmex_trades_XBTUSD.csv", "deribit_incremental_book_L2_BTC-PERPETUAL.csv",
            "huobi-dm-swap_quotes_BTC-USD.csv"]


@pytest.fixture(scope="module")
def tardis_dir(shared_data):
    return shared_data / "nautilus_fixtures" / "tardis"


def assert_same(native, reference) -> None:
    assert_same_data(native, reference)


def assert_same_outcome(paths, spec=None):
    """Both engines raise the same DataError or return the same result. Where the reference's csv
    module raises on a line (a NUL, a CR in an unquoted field), the native engine counts the row
    as malformed instead."""
    try:
        reference = load_tardis(paths, spec, engine="python")
    except DataError as exc:
        with pytest.raises(DataError) as caught:
            load_tardis(paths, spec)
        assert str(caught.value) == str(exc)
        return None
    except csv.Error:
        native = load_tardis(paths, spec)
        assert native.rejections.counts["malformed_row"] >= 1
        return None
    native = load_tardis(paths, spec)
    assert_same(native, reference)
    return native


@pytest.mark.parametrize("name", FIXTURES)
def test_identical_to_the_reference_on_every_fixture(tardis_dir, name):
    reference = load_tardis(tardis_dir / name, engine="python")
    assert len(reference.book) + len(reference.trades) + len(reference.bbo) > 0
    assert_same(load_tardis(tardis_dir / name), reference)


def test_identical_on_all_fixtures_in_one_load(tardis_dir):
    files = [tardis_dir / n for n in FIXTURES]
    reference = load_tardis(files, engine="python")
    assert len(reference.specs) == 4  # BTCUSDT, XBTUSD, BTC-PERPETUAL, BTC-USD
    assert_same(load_tardis(files), reference)


def test_explicit_specs_and_rejections(tardis_dir):
    """The venue's real tick (0.5 on Deribit) against rows written finer: same off_grid counts."""
    path = tardis_dir / "deribit_incremental_book_L2_BTC-PERPETUAL.csv"
    for tick in ("0.5", "1", "0.1"):
        spec = InstrumentSpec(instrument_id=7, symbol="BTC-PERPETUAL", venue="deribit", tick_size=tick,
                              lot_size="10")
        native = assert_same_outcome(path, spec)
        assert native is not None
    other = {"XBTUSD": InstrumentSpec(instrument_id=3, symbol="XBTUSD", venue="bitmex", tick_size="0.5",
                                      lot_size="1")}
    native = assert_same_outcome([tardis_dir / "bitmex_trades_XBTUSD.csv", path], other)
    assert native.rejections.counts["unknown_symbol"] == 15


def test_gzip_zstd_and_plain_are_identical(tardis_dir, tmp_path):
    body = (tardis_dir / "deribit_incremental_book_L2_BTC-PERPETUAL.csv").read_bytes()
    plain = tmp_path / "l2.csv"
    plain.write_bytes(body)
    (tmp_path / "l2.csv.gz").write_bytes(gzip.compress(body, mtime=0))
    (tmp_path / "l2.csv.zst").write_bytes(zstandard.compress(body))
    whole = load_tardis(plain)
    for suffix in (".gz", ".zst"):
        data = load_tardis(tmp_path / f"l2.csv{suffix}")
        assert data.book.tobytes() == whole.book.tobytes()
        assert_same(data, load_tardis(tmp_path / f"l2.csv{suffix}", engine="python"))


def test_load_tardis_defaults_to_native(tardis_dir, monkeypatch):
    calls = []
    original = tardis_native.load_tardis_native

    def spy(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(tardis_native, "load_tardis_native", spy)
    path = tardis_dir / "bitmex_trades_XBTUSD.csv"
    load_tardis(path)
    assert len(calls) == 1
    load_tardis(path, engine="python")
    assert len(calls) == 1
    with pytest.raises(Exception, match="engine"):
        load_tardis(path, engine="rust")


HEADERS = {
    "book": "exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount",
    "trades": "exchange,symbol,timestamp,local_timestamp,id,side,price,amount",
    "quotes": "exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_price,bid_amount",
    "snapshot": "exchange,symbol,timestamp,local_timestamp,asks[0].price,asks[0].amount,bids[0].price,"
                "bids[0].amount,asks[1].price,asks[1].amount,bids[1].price,bids[1].amount",
}


def test_quoted_fields_and_edge_rows(tmp_path):
    t = 1585699200245000
    rows = [
        f'deribit,"BTC-PERPETUAL",{t},{t + 1},true,ask,"6421.5",10',
        f'deribit,"BTC,PERP",{t},{t + 1},true,ask,6421.5,10',          # a quoted comma: one field
        f'deribit,BTC-PERPETUAL,{t},{t + 1},"tr""ue",bid,6421,1',       # doubled quote
        f'deribit,BTC-PERPETUAL,{t},{t + 1},true,bid,"6420,5',          # unterminated quote
        f'deribit,BTC-PERPETUAL, {t} ,{t + 1},true,bid,6419,1',         # int() strips spaces
        f'deribit,BTC-PERPETUAL,{t}_0,{t + 1}0,false,bid,6419,1',       # underscore; skew
        f'deribit,BTC-PERPETUAL,{t},{t + 1},false,bid,6419,-1',
        f'deribit,BTC-PERPETUAL,{t},{t + 1},false,bid,0,1',
        f'deribit,BTC-PERPETUAL,{t},{t + 1},false,bid,1e3,1',
        f'deribit,BTC-PERPETUAL,{t},{t + 1},false,middle,6419,1',
        f'deribit,BTC-PERPETUAL,{t},{t + 1},maybe,bid,6419,1',
        f'deribit,BTC-PERPETUAL,{10**30},{10**30},false,bid,6419,1',
        f'deribit,BTC-PERPETUAL,x{t},{t},false,bid,6419,1',
        'deribit,BTC-PERPETUAL,1,2',
    ]
    path = tmp_path / "book.csv"
    path.write_text(HEADERS["book"] + "\n" + "\n".join(rows) + "\n")
    native = assert_same_outcome(path)
    assert native.rejections.total + len(native.book) == len(rows)
    assert set(native.rejections.counts) >= {"malformed_row", "bad_side", "bad_timestamp",
                                             "implausible_timestamp", "negative_qty", "nonpositive_price"}


# --- differential fuzzing -------------------------------------------------------------------

JUNK = [b"", b" ", b",", b'"', b'""', b"-", b".", b"e", b"1e3", b"0", b"true", b"false", b"bid", b"ask",
        b"buy", b"sell", b"unknown", b"\xff", b"\xc3\xa9", b"\t", b"NaN", b"_", b"99999999999999999999",
        b"BTC-PERPETUAL", b"XBTUSD"]


@pytest.fixture(scope="module")
def base_files(tardis_dir) -> dict[str, list[bytes]]:
    out = {}
    for name in ("deribit_incremental_book_L2_BTC-PERPETUAL.csv", "bitmex_trades_XBTUSD.csv",
                 "huobi-dm-swap_quotes_BTC-USD.csv", "binance-futures_book_snapshot_5_BTCUSDT.csv"):
        out[name] = (tardis_dir / name).read_bytes().splitlines()[:40]
    with gzip.open(tardis_dir / "binance-futures_trades_BTCUSDT_2020-02-22.csv.gz", "rb") as fh:
        out["numeric_trades.csv"] = fh.read().splitlines()[:40]
    return out


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_damaged_rows_give_identical_results(base_files, tmp_path, data):
    name = data.draw(st.sampled_from(sorted(base_files)))
    lines = data.draw(damaged(base_files[name], JUNK, first=1, keep=2))  # the header stays: Python reads it in both
    path = tmp_path / "fuzz.csv"
    path.write_bytes(b"\n".join(lines) + b"\n")
    native = assert_same_outcome(path)
    if native is not None and "book" not in name:
        # one record or one counted rejection per data row (a snapshot row may hold several levels)
        records = len(native.trades) + len(native.bbo)
        assert records + native.rejections.total == len(lines) - 1


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_damaged_compressed_streams_give_identical_results(base_files, tmp_path, data):
    """Truncated / overwritten gzip and zstd: the rows before the damage kept, the damage counted."""
    body = b"\n".join(base_files["deribit_incremental_book_L2_BTC-PERPETUAL.csv"]) + b"\n"
    codec = data.draw(st.sampled_from(["gz", "zst"]))
    blob = bytearray(gzip.compress(body, mtime=0) if codec == "gz" else zstandard.compress(body))
    op = data.draw(st.sampled_from(["truncate", "overwrite"]))
    if op == "truncate":
        blob = blob[:data.draw(st.integers(4, len(blob) - 1))]
    else:
        at = data.draw(st.integers(12, len(blob) - 1))
        blob[at:at + 8] = data.draw(st.binary(min_size=8, max_size=8))
    path = tmp_path / f"damaged.csv.{codec}"
    path.write_bytes(bytes(blob))
    native = assert_same_outcome(path)
    if native is not None and op == "truncate":
        assert native.rejections.counts["truncated_file"] + native.rejections.counts["corrupt_file"] == 1


FIELD = st.sampled_from(["", "0", "1", "-1", "6421.5", "6422", "0.5", "1e2", "x", "true", "false", "bid",
                         "ask", "buy", "sell", "unknown", "BTC", "ETH", "1585699200245000",
                         "1585699200355684", "99999999999999999999", " 7 ", '"q"', "1_0"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(sorted(HEADERS)), rows=st.lists(st.lists(FIELD, min_size=6, max_size=13),
                                                           min_size=1, max_size=30))
def test_random_rows_are_identical_and_counted(tmp_path, kind, rows):
    path = tmp_path / "random.csv"
    text = HEADERS[kind] + "\n" + "\n".join(",".join(["ex"] + r) for r in rows) + "\n"
    path.write_text(text)
    spec = {"BTC": InstrumentSpec(instrument_id=1, symbol="BTC", venue="ex", tick_size="0.5", lot_size="1")}
    for s in (None, spec):
        native = assert_same_outcome(path, s)
        if native is not None and kind in ("trades", "quotes"):
            assert len(native.trades) + len(native.bbo) + native.rejections.total == len(rows)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(blob=st.binary(max_size=2000), kind=st.sampled_from(sorted(HEADERS)), gz=st.booleans())
def test_garbage_bytes_never_crash_and_agree(tmp_path, blob, kind, gz):
    body = HEADERS[kind].encode() + b"\n" + blob
    path = tmp_path / "garbage.csv"
    path.write_bytes(gzip.compress(body, mtime=0) if gz else body)
    assert_same_outcome(path)


@pytest.mark.parametrize("row", [
    b'derbiit,BTC-PERPETUAL,15\x01\x00699200"46050,fa,se,bid,6420.5,250',   # NUL: a character since 3.11
    b"deribit,BTC-PERPETUAL,\x1c1585699200245000,1585699200355684,true,bid,6420.5,250",  # int() keeps \x1c
    b"deribit,BTC-PERPETUAL,\x0b1585699200245000 ,1585699200355684\t,true,bid, 6420.5\x1c,250",
])
def test_fuzz_findings(tmp_path, row):
    """Rows on which the differential fuzzer (fuzz/fuzz_tardis.py) once found the engines apart."""
    path = tmp_path / "finding.csv"
    path.write_bytes(HEADERS["book"].encode() + b"\n" + row + b"\n")
    native = assert_same_outcome(path)
    assert native is not None and native.rejections.total + len(native.book) == 1


def test_rows_the_csv_module_refuses_are_malformed_in_both_engines(tmp_path):
    t = 1585699200245000
    path = tmp_path / "cr.csv"
    path.write_bytes(HEADERS["book"].encode() + b"\n" + f'deribit,BTC-PERPETUAL,{t},{t},true,"bid",6420.5\r1,2'.encode()
                     + b"\n" + f"deribit,BTC-PERPETUAL,{t},{t},true,bid,6420.5,2".encode() + b"\n")
    native = assert_same_outcome(path)
    assert native.rejections.as_dict() == {"malformed_row": 1} and len(native.book) == 1
    bad_header = tmp_path / "header.csv"
    bad_header.write_bytes(b'\xff\r\xff200"4,false\n')
    with pytest.raises(DataError, match="not a Tardis CSV kind"):
        load_tardis(bad_header)


def test_snapshot_header_with_a_huge_level_index_is_read_by_its_columns(tmp_path):
    """A damaged book_snapshot header claiming level 10^50 (a fuzz finding: range(10^50) hung)."""
    path = tmp_path / "snap.csv"
    header = HEADERS["snapshot"].replace("asks[1].amount", "asks[" + "5" * 50 + "].amount")
    path.write_text(header + "\nbinance-futures,BTCUSDT,1585699200245000,1585699200245115,11657.08,1.7,"
                    "11657.07,10.8,11657.54,5.4,11656.97,0.2\n")
    native = assert_same_outcome(path)
    assert len(native.book) == 3  # bids[0], bids[1], asks[0]; asks[1] has no amount column
