"""bot4.data.cache.write_dataset_parts and `convert` part by part: a recording given as parts
(Tardis files through iter_tardis, a Binance recording through the native chunks) is written with
one part in memory and reads back exactly as the whole load (records.npy and Parquet alike)."""

from __future__ import annotations

import random

import numpy as np
import pyarrow.parquet as pq
import pytest

from bot4.data import load
from bot4.data.cache import convert, load_dataset, read_manifest, write_dataset, write_dataset_parts
from bot4.data.tardis import iter_tardis, load_tardis
from bot4.errors import DataError
from bot4.events import BBO_EVENT, BOOK_EVENT, TRADE_EVENT
from test_tardis_stream import L2, TRADES, l2_rows, recording, trade_rows, write

FIELDS = sorted({n for d in (BOOK_EVENT, TRADE_EVENT, BBO_EVENT) for n in d.names})
HOUR_US = 3_600_000_000


def assert_same(a, b) -> None:
    for name in ("book", "trades", "bbo", "orders"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and x.tobytes() == y.tobytes(), name
    assert a.specs == b.specs and a.venue == b.venue and a.sequence_gaps == b.sequence_gaps
    assert a.rejections.as_dict() == b.rejections.as_dict() and a.rejections.samples == b.rejections.samples


def hours_apart(tmp_path):
    """BTC L2 and trades over ~5 hours (several hour partitions) and an ETH L2 file."""
    rng = random.Random(2)
    l2 = l2_rows(rng, "BTC", 3000, 0.02)
    trades = trade_rows(rng, "BTC", 600, 0.02)

    def spread(rows, step):  # move row i forward by i * step µs: hours pass in the file
        out = []
        for i, row in enumerate(rows):
            f = row.split(",")
            if len(f) == 8 and f[2].isdigit() and f[3].isdigit():
                f[2], f[3] = str(int(f[2]) + i * step), str(int(f[3]) + i * step)
            out.append(",".join(f))
        return out

    return [write(tmp_path / "btc_l2.csv", L2, spread(l2, 6 * HOUR_US // 1000), "gz"),
            write(tmp_path / "btc_trades.csv", TRADES, spread(trades, 5 * HOUR_US // 200), "plain"),
            write(tmp_path / "eth_l2.csv", L2, spread(l2_rows(rng, "ETH", 500, 0.0), 5 * HOUR_US // 500), "zst")]


@pytest.mark.parametrize("chunk", [100, 5000, 1 << 22])
@pytest.mark.parametrize("records", [True, False])
def test_parts_written_read_back_as_the_whole_load(tmp_path, chunk, records):
    files = hours_apart(tmp_path)
    whole = load_tardis(files)
    manifest = write_dataset_parts(iter_tardis(files, chunk_bytes=chunk), files, tmp_path / "ds", records=records)
    assert len(manifest["partitions"]["book"]) > 5  # instruments x hours
    assert_same(load_dataset(tmp_path / "ds"), whole)
    assert_same(load_dataset(tmp_path / "ds", columns=FIELDS), whole)  # from the Parquet files
    # the same manifest and partitions as writing the whole load at once
    reference = write_dataset(whole, files, tmp_path / "ref", records=records)
    for key in ("counts", "partitions", "specs", "rejections", "venue", "sequence_gaps"):
        assert manifest[key] == reference[key], key
    if records:
        for rel in manifest["partitions"]["book"]:
            a = np.load(tmp_path / "ds" / rel.replace("part-0.parquet", "records.npy"))
            b = np.load(tmp_path / "ref" / rel.replace("part-0.parquet", "records.npy"))
            assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
    table = pq.read_table(tmp_path / "ds" / manifest["partitions"]["book"][0])
    assert table.schema.metadata[b"bot4.array"] == b"book"


def test_convert_reads_tardis_files_part_by_part(tmp_path, monkeypatch):
    files = recording(tmp_path, 4, ["gz", "plain", "zst", "plain", "gz"])
    whole = load_tardis(files)

    def refuse(*a, **k):
        raise AssertionError("convert read the whole recording")

    monkeypatch.setattr("bot4.data.load", refuse)
    manifest = convert(files, tmp_path / "ds", chunk_bytes=300)
    assert manifest["venue"] == "deribit"
    assert_same(load_dataset(tmp_path / "ds"), whole)
    assert read_manifest(tmp_path / "ds")["counts"]["book"] == len(whole.book)


def test_no_parts_is_an_error(tmp_path):
    with pytest.raises(DataError, match="no parts"):
        write_dataset_parts(iter(()), [], tmp_path / "ds")


@pytest.mark.realdata
def test_convert_a_binance_recording_part_by_part(shared_data, tmp_path):
    path = shared_data / "binance_hftbacktest/usdm/btcusdt_20240808.gz"
    convert(path, tmp_path / "ds", chunk_bytes=200_000)
    assert_same(load_dataset(tmp_path / "ds"), load(path))
