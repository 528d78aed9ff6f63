"""bot4.pipeline.run_pipeline: the demo pipeline as a library call (embedded stream, small model):
its folder, the Parquet records reconciled with the result, staging on error and interrupt."""

from __future__ import annotations

import importlib
import json

import numpy as np
import pytest

from bot4.errors import InputError
from bot4.pipeline import PipelineResult, default_feature_config, run_pipeline
from bot4.research.train import TrainConfig
from bot4.sim import generate

pq = pytest.importorskip("pyarrow.parquet")

SMALL = TrainConfig(n_estimators=10, max_depth=3)


@pytest.fixture(scope="module")
def stream():
    return generate(n_events=60_000)


@pytest.fixture(scope="module")
def run(stream, tmp_path_factory) -> PipelineResult:
    out = tmp_path_factory.mktemp("pipeline") / "run"
    return run_pipeline(stream, out, label="embedded test stream", train_config=SMALL, progress=False)


def test_the_run_folder_holds_every_output_and_nothing_partial(run):
    names = {p.name for p in run.out_dir.iterdir()}
    assert names == {"report.html", "perf.json", "model", "orders.parquet", "fills.parquet",
                     "decisions.parquet", "equity.parquet"}
    assert run.model == run.out_dir / "model" and (run.model / "model.onnx").is_file()
    assert not [p for p in run.out_dir.parent.iterdir() if p.name.startswith(".")]
    assert run.run["trained"] and run.run["model"] == str(run.model)
    split = run.run["split"]
    assert split["gap_ns"] > 0 and split["train_events"] > 0 and split["trade_events"] > 0
    perf = json.loads(run.perf.read_text())
    assert perf["notes"]["run"]["model"] == str(run.model)   # final paths, never the staging folder


def test_embedded_stream_trains_on_a_time_grid(stream):
    assert default_feature_config(stream).decision == "time"


def _tables(run):
    return {name: pq.read_table(path) for name, path in run.records.items()}


def test_parquet_records_are_the_result_arrays(run):
    result = run.result
    assert result.fills.size > 0 and result.orders.size > 0, "the small run should trade"
    for name, table in _tables(run).items():
        arr = getattr(result, name)
        assert table.num_rows == arr.size, name
        for field in arr.dtype.names:
            if field.startswith("pad"):
                continue
            np.testing.assert_array_equal(table.column(field).to_numpy(), arr[field], err_msg=f"{name}.{field}")
            assert table.schema.field(field).type.to_pandas_dtype() == arr.dtype[field].type, (name, field)


def test_venue_units_beside_ticks_and_lots(run):
    tables = _tables(run)
    tick, lot = run.result.tick_size, run.result.lot_size
    for name, cols in (("orders", ("price", "qty", "filled")), ("fills", ("price", "qty")),
                       ("equity", ("position",)), ("decisions", ("position",))):
        t = tables[name]
        for col in cols:
            step, suffix = (tick, "_px") if col == "price" else (lot, "_size")
            np.testing.assert_allclose(t.column(col + suffix).to_numpy(),
                                       t.column(col).to_numpy() * step, rtol=0, atol=step * 1e-6)
        meta = t.schema.metadata
        assert float(meta[b"bot4.tick_size"]) == tick and float(meta[b"bot4.lot_size"]) == lot
    sides = tables["fills"].column("side_name").to_pylist()
    assert set(sides) <= {"buy", "sell"}
    kinds = tables["orders"].column("kind_name").to_pylist()
    assert kinds.count("new") == run.result.n_orders


def test_parquet_records_reconcile_with_the_result(run):
    t = _tables(run)
    fills = t["fills"].to_pandas()
    equity = t["equity"].to_pandas()
    acc = fills[fills["accepted"] == 1]
    sign = np.where(acc["side_name"] == "buy", 1, -1)
    # position: accepted fills, net, equal the equity curve's final position
    assert int((sign * acc["qty"]).sum()) == int(equity["position"].iloc[-1])
    # fees: the accepted fills' fees are the curve's fees
    assert acc["fee"].sum() == pytest.approx(equity["fees"].iloc[-1], abs=1e-9)
    # PnL: final equity is the result's pnl; when flat, realised = the fills' signed cash
    assert equity["equity"].iloc[-1] == pytest.approx(run.result.pnl, abs=1e-9)
    if equity["position"].iloc[-1] == 0:
        cash = (-sign * acc["price_px"] * acc["qty_size"]).sum()
        assert cash == pytest.approx(equity["realised"].iloc[-1], abs=1e-6)
    assert t["decisions"].num_rows == run.result.decisions.size == run.result.counters["decisions"]


def test_reusing_the_model_trades_the_whole_stream(stream, run, tmp_path):
    again = run_pipeline(stream, tmp_path / "again", model=run.model, progress=False)
    assert again.run["trained"] is False and again.model == run.model
    assert again.result.events > run.result.events
    assert not (again.out_dir / "model").exists()


def test_a_folder_with_files_is_refused_before_any_work(stream, tmp_path, monkeypatch):
    train_mod = importlib.import_module("bot4.research.train")   # bot4.research.train is also a function

    def boom(*a, **k):
        raise AssertionError("training started")

    monkeypatch.setattr(train_mod, "train", boom)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "old.txt").write_text("x")
    with pytest.raises(InputError) as exc:
        run_pipeline(stream, busy, train_config=SMALL, progress=False)
    assert exc.value.param == "out_dir" and "already holds files" in str(exc.value)
    assert [p.name for p in busy.iterdir()] == ["old.txt"]


@pytest.mark.parametrize("error", [KeyboardInterrupt, RuntimeError])
def test_an_interrupt_during_training_leaves_nothing(stream, tmp_path, monkeypatch, error):
    train_mod = importlib.import_module("bot4.research.train")   # bot4.research.train is also a function

    def interrupted(data, config, out_dir, **kw):
        out_dir.mkdir(parents=True)
        (out_dir / "model.onnx").write_bytes(b"half")   # partly written, then Ctrl-C
        raise error()

    monkeypatch.setattr(train_mod, "train", interrupted)
    with pytest.raises(error):
        run_pipeline(stream, tmp_path / "run", train_config=SMALL, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_an_interrupt_during_the_backtest_leaves_nothing(stream, run, tmp_path, monkeypatch):
    import bot4.backtest as backtest

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(backtest, "run", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(stream, tmp_path / "run", model=run.model, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_a_streamed_run_equals_the_whole_run(stream, run, tmp_path):
    """bot4.pipeline.run_streamed (`bot4 backtest --stream`) over the same stream made in parts:
    the same orders, fills and pnl as run_pipeline over it whole, and the same files."""
    from bot4.pipeline import run_streamed
    from bot4.sim import generate_parts

    whole = run_pipeline(stream, tmp_path / "whole", model=run.model, progress=False)
    streamed = run_streamed(generate_parts(n_events=60_000, part_events=7_000), tmp_path / "streamed",
                            label="parts", model=run.model, progress=False)
    a, b = whole.result, streamed.result
    assert b.counters["late_events"] == 0 and b.counters["sim_late_feed_events"] == 0
    assert a.fills.size > 0 and a.orders.size > 0
    for table in ("orders", "fills", "decisions", "equity"):
        x, y = getattr(a, table), getattr(b, table)
        assert x.size == y.size, table
        for field in x.dtype.names:
            np.testing.assert_array_equal(x[field], y[field], err_msg=f"{table}.{field}")
    assert b.pnl == a.pnl
    assert sorted(p.name for p in streamed.out_dir.iterdir()) == sorted(
        p.name for p in whole.out_dir.iterdir())
    assert streamed.run["streamed"] and streamed.model == run.model
