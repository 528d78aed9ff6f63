"""bot4.features.compute_parts (`bot4 features --stream`): a recording given in parts yields the
rows compute() gives over it whole, piece by piece, with the engine dropping them as it goes."""

from __future__ import annotations

import numpy as np
import pytest

from bot4.cli import main
from bot4.features import RowWriter, compute, compute_parts, trading_config
from bot4.sim import generate, generate_parts

pq = pytest.importorskip("pyarrow.parquet")
GRID = trading_config(decision="time", decision_interval_ns=100_000_000)


def _joined(pieces):
    return (np.concatenate([p.timestamps for p in pieces]), np.concatenate([p.matrix for p in pieces]),
            np.concatenate([p.instruments for p in pieces]))


@pytest.mark.parametrize("part_events", [997, 3_333, 40_000])
def test_parts_give_the_rows_of_the_whole_stream(part_events):
    whole = compute(generate(n_events=40_000), GRID)
    pieces: list = []
    summary = compute_parts(generate_parts(n_events=40_000, part_events=part_events), GRID, on_rows=pieces.append)
    ts, matrix, instruments = _joined(pieces)
    assert summary["rows"] == whole.matrix.shape[0] == matrix.shape[0] > 1000
    assert len(pieces) > 1 or part_events == 40_000
    np.testing.assert_array_equal(ts, whole.timestamps)
    np.testing.assert_array_equal(matrix, whole.matrix)   # NaN where NaN
    np.testing.assert_array_equal(instruments, whole.instruments)
    assert summary["valid_fraction"] == pytest.approx(float(whole.valid.mean()))


@pytest.mark.realdata
def test_native_chunks_of_a_recording_give_the_whole_rows(shared_data):
    from bot4.data import load
    from bot4.data.binance_native import NativeBinanceLoader

    path = shared_data / "binance_hftbacktest/usdm/btcusdt_20240808.gz"
    whole = compute(load(path))
    pieces: list = []
    compute_parts(NativeBinanceLoader().iter_chunks(path, chunk_bytes=300_000), on_rows=pieces.append)
    assert len(pieces) > 5
    ts, matrix, _ = _joined(pieces)
    np.testing.assert_array_equal(ts, whole.timestamps)
    np.testing.assert_array_equal(matrix, whole.matrix)


def test_no_parts_and_wrong_parts_are_errors():
    with pytest.raises(ValueError, match="no parts"):
        compute_parts(iter(()), on_rows=lambda f: None)
    with pytest.raises(TypeError, match="MarketData"):
        compute_parts([(np.zeros(0), np.zeros(0), np.zeros(0))], on_rows=lambda f: None)


def test_row_writer_writes_what_save_writes(tmp_path):
    from bot4.features import save

    whole = compute(generate(n_events=20_000), GRID)
    save(whole, tmp_path / "whole.parquet")
    writer = RowWriter(tmp_path / "parts.parquet")
    compute_parts(generate_parts(n_events=20_000, part_events=2_500), GRID, on_rows=writer)
    writer.close()
    a, b = pq.read_table(tmp_path / "parts.parquet"), pq.read_table(tmp_path / "whole.parquet")
    assert a.schema.equals(b.schema) and a.num_rows == b.num_rows == writer.rows
    for name in a.column_names:
        np.testing.assert_array_equal(a.column(name).to_numpy(), b.column(name).to_numpy(), err_msg=name)
    empty = RowWriter(tmp_path / "empty.parquet")
    empty.close()
    assert pq.read_table(tmp_path / "empty.parquet").schema.equals(b.schema)


def test_cli_features_stream_equals_the_whole_run(tmp_path, capsys):
    args = ["--events", "20000", "-q", "--json"]
    assert main(["features", "--stream", "--out", str(tmp_path / "s.parquet"), *args]) == 0
    assert main(["features", "--out", str(tmp_path / "w.parquet"), *args]) == 0
    a, b = pq.read_table(tmp_path / "s.parquet"), pq.read_table(tmp_path / "w.parquet")
    assert a.num_rows == b.num_rows > 0
    for name in a.column_names:
        np.testing.assert_array_equal(a.column(name).to_numpy(), b.column(name).to_numpy(), err_msg=name)
