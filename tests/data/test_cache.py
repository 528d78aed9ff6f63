"""The columnar cache (bot4.data.cache, `bot4 convert`): identical arrays back, selective reads,
self-describing Parquet files, and invalidation when a source file changes."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest

from bot4.cli import main
from bot4.data import load
from bot4.data.cache import MANIFEST, convert, load_dataset, read_manifest, sha256_file
from bot4.data.market_data import merge
from bot4.errors import DataError
from bot4.events import BBO_EVENT, BOOK_EVENT, ORDER_EVENT, TRADE_EVENT

ALL_FIELDS = sorted({n for d in (BOOK_EVENT, TRADE_EVENT, BBO_EVENT, ORDER_EVENT) for n in d.names})

pytestmark = pytest.mark.realdata

BTC = "binance_hftbacktest/usdm/btcusdt_20240808.gz"
ETH_SPOT = ["binance_hftbacktest/spot/ethusdt_20240808.gz", "binance_hftbacktest/spot/ethusdt_20240809.gz"]


def same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.fixture(scope="module")
def btc(shared_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("cache") / "btc"
    convert(shared_data / BTC, out)
    return load(shared_data / BTC), out


def test_round_trip_is_bit_identical(btc):
    ref, out = btc
    for data in (load_dataset(out), load(out)):  # the records.npy path, and through bot4.data.load
        for name in ("book", "trades", "bbo", "orders"):
            assert same(getattr(data, name), getattr(ref, name)), name
        assert data.specs == ref.specs and data.venue == ref.venue
        assert data.rejections.as_dict() == ref.rejections.as_dict()
        assert data.rejections.samples == ref.rejections.samples
        assert data.sequence_gaps == ref.sequence_gaps
    data = load_dataset(out)
    data.book["qty"][0] += 1  # copy-on-write: the dataset on disk is untouched
    assert same(load_dataset(out).book, ref.book)


def test_parquet_columns_alone_give_the_same_records(btc):
    ref, out = btc
    data = load_dataset(out, columns=ALL_FIELDS)  # every field named: read from Parquet
    assert same(data.book, ref.book) and same(data.trades, ref.trades) and same(data.bbo, ref.bbo)


def test_selective_reads(btc):
    ref, out = btc
    data = load_dataset(out, arrays=["book"], columns=["price", "qty", "side", "flags"])
    assert len(data.trades) == len(data.bbo) == 0
    assert np.array_equal(data.book["price"], ref.book["price"])
    assert np.array_equal(data.book["flags"], ref.book["flags"])
    assert not data.book["ts_local"].any() and not data.book["seq"].any()
    ts = ref.book["ts_local"]
    start, end = int(np.quantile(ts, 0.25)), int(np.quantile(ts, 0.5))
    for columns in (None, BOOK_EVENT.names):
        part = load_dataset(out, arrays=["book"], columns=columns, start_ns=start, end_ns=end)
        assert same(part.book, ref.book[(ts >= start) & (ts < end)])
    # a range outside the recording's hours reads nothing
    empty = load_dataset(out, start_ns=0, end_ns=3_600_000_000_000)
    assert len(empty.book) == len(empty.trades) == 0


def test_parquet_files_describe_themselves(btc, shared_data):
    ref, out = btc
    manifest = read_manifest(out)
    sha = sha256_file(shared_data / BTC)
    assert [s["sha256"] for s in manifest["sources"]] == [sha]
    rel = manifest["partitions"]["book"][0]
    assert "instrument=1/hour=2024080823" in rel
    meta = pq.read_schema(out / rel).metadata
    assert json.loads(meta[b"bot4.spec"])["symbol"] == "BTCUSDT"
    assert json.loads(meta[b"bot4.sources"])[0]["sha256"] == sha
    table = pq.read_table(out / rel)  # any Parquet reader sees typed columns
    assert table.column("price").to_pylist()[:3] == ref.book["price"][:3].tolist()


def test_several_instruments_keep_the_receive_order(shared_data, tmp_path):
    """Two instruments in one dataset (partitioned apart) come back interleaved as decoded."""
    merged = merge([load(shared_data / BTC), load(shared_data / "binance_hftbacktest/usdm/ethusdt_20240808.gz")])
    from bot4.data.cache import write_dataset

    out = tmp_path / "two"
    write_dataset(merged, [shared_data / BTC], out)
    assert len({p.split("/")[1] for p in read_manifest(out)["partitions"]["book"]}) == 2
    for columns in (None, ALL_FIELDS):
        data = load_dataset(out, columns=columns)
        assert same(data.book, merged.book) and same(data.trades, merged.trades)


def test_changed_source_invalidates_the_cache(shared_data, tmp_path):
    srcs = []
    for name in ETH_SPOT:
        dst = tmp_path / name.split("/")[-1]
        shutil.copyfile(shared_data / name, dst)
        srcs.append(dst)
    out = tmp_path / "eth"
    first = convert(srcs, out)
    assert convert(srcs, out)["created"] == first["created"]  # unchanged sources: up to date
    manifest_before = (out / MANIFEST).read_text()
    # Same size, different bytes, new mtime: the SHA-256 tells.
    blob = bytearray(srcs[1].read_bytes())
    blob[-9] ^= 0xFF
    srcs[1].write_bytes(bytes(blob))
    with pytest.raises(DataError, match="stale"):
        load_dataset(out)
    with pytest.raises(DataError, match="stale"):
        load(out)
    # Touching a file without changing it is not staleness.
    srcs[0].touch()
    with pytest.raises(DataError, match=srcs[1].name):
        load_dataset(out)
    rebuilt = convert(srcs, out)
    assert (out / MANIFEST).read_text() != manifest_before
    assert rebuilt["sources"][1]["sha256"] == sha256_file(srcs[1])
    data = load_dataset(out)
    assert data.rejections.counts["corrupt_file"] + data.rejections.counts["truncated_file"] >= 1


def test_cli_convert_then_replay(shared_data, tmp_path, capsys):
    out = tmp_path / "ds"
    assert main(["convert", "--data", str(shared_data / BTC), "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["counts"]["book"] == 445262 and summary["partitions"] == 3
    assert main(["replay", "--data", str(out), "--check-bbo", "--json"]) == 0
    from_cache = json.loads(capsys.readouterr().out)
    assert main(["replay", "--data", str(shared_data / BTC), "--check-bbo", "--json"]) == 0
    from_raw = json.loads(capsys.readouterr().out)
    for key in ("source", "events", "level_changes", "trades", "final_bid", "final_ask", "rejected",
                "bbo_checked", "bbo_matched"):
        assert from_cache[key] == from_raw[key], key
    assert from_cache["bbo_matched"] == from_cache["bbo_checked"] == 629
