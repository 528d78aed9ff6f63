"""The feature engine's contract: catalogue, config validation, decision modes, views, counters,
the L3 path and the `bot4 features` command. Numerical parity of each family lives in
test_streaming_features.py and test_window_kernels.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import msgspec
import numpy as np
import pytest
from bot4 import _core
from bot4.data import load
from bot4.events import FLAG_LAST, ORDER_EVENT, TRADE_EVENT
from bot4.features import FeatureConfig, catalog, catalog_markdown, compute, make_engine
from bot4.sim import generate

from recordings import BTCUSDT, data_path

REFERENCE = data_path(*BTCUSDT)
DOCS = Path(__file__).resolve().parents[2] / "docs" / "features.md"


@pytest.fixture(scope="module")
def reference(shared_data):
    return load(REFERENCE, progress=False)


def test_catalogue_has_80_documented_unique_features():
    entries = catalog()
    assert len(entries) >= 80
    names = [e["name"] for e in entries]
    assert len(set(names)) == len(names)
    for e in entries:
        assert e["unit"] and e["window"] and e["definition"] and e["family"]
    families = {e["family"] for e in entries}
    assert families == {"book", "flow", "liquidity", "volatility", "window", "technical"}


def test_docs_catalogue_is_current():
    assert DOCS.read_text() == catalog_markdown(), "regenerate docs/features.md from catalog_markdown()"


def test_config_rejects_unknown_and_bad_values():
    with pytest.raises(ValueError, match="unknown feature config key 'windw'"):
        _core.features.FeatureEngine({"windw": 64})
    with pytest.raises(ValueError, match="power of two"):
        _core.features.FeatureEngine({"window": 100})
    with pytest.raises(ValueError, match="GARCH"):
        _core.features.FeatureEngine({"garch_alpha": 0.5, "garch_beta": 0.6})
    with pytest.raises(msgspec.ValidationError):
        FeatureConfig.from_toml(b"windw = 3")


def test_batch_dtype_errors_name_the_dtype():
    engine = _core.features.FeatureEngine()
    engine.add_instrument(1)
    with pytest.raises(TypeError, match="BOOK_EVENT"):
        engine.run(np.zeros(3, TRADE_EVENT), np.zeros(0, ORDER_EVENT), np.zeros(0, TRADE_EVENT))
    with pytest.raises(ValueError, match="already registered"):
        engine.add_instrument(1)


def test_rows_on_reference_data(reference):
    fs = compute(reference)
    n_messages = int(np.count_nonzero(reference.book["flags"] & FLAG_LAST))
    assert fs.matrix.shape == (n_messages, len(fs.names))
    assert np.all(np.diff(fs.timestamps) >= 0)
    assert not np.isinf(fs.matrix).any()
    assert np.array_equal(fs.valid, np.isfinite(fs.matrix))
    # After warm-up every feature is defined somewhere (none is dead).
    assert fs.valid[len(fs.valid) // 2:].any(axis=0).all(), [
        n for n, ok in zip(fs.names, fs.valid[len(fs.valid) // 2:].any(axis=0)) if not ok]
    assert fs.counters["book_rejected"] == 0 and fs.counters["unknown_instrument"] == 0


def test_matrix_view_is_read_only_and_owned(reference):
    engine = make_engine(reference)
    engine.run(reference.book[:20000], reference.orders, reference.trades[:0])
    view = engine.matrix
    assert view.shape == (engine.rows, _core.features.feature_count)
    assert not view.flags.writeable
    with pytest.raises(ValueError):
        view[0, 0] = 1.0
    del engine
    assert view.shape[0] > 0 and np.isfinite(view[:, 0]).any()  # the view keeps its engine alive


def test_time_grid_and_every_n_decisions(reference):
    step = 250_000_000
    fs = compute(reference, FeatureConfig(decision="time", decision_interval_ns=step))
    assert len(fs.timestamps) > 100
    assert np.all(fs.timestamps % step == 0)
    assert np.all(np.diff(fs.timestamps) == step)
    first_key = min(reference.book["ts_local"][0], reference.trades["ts_local"][0])
    assert fs.timestamps[0] > first_key
    fs_n = compute(reference, FeatureConfig(decision="events", decision_every_n=500))
    events = len(reference.book) + len(reference.trades)
    assert 0.5 * events / 500 < len(fs_n.timestamps) <= events / 500 + 1


def test_unknown_instrument_and_bad_trades_are_counted(reference):
    engine = make_engine(reference)
    book = reference.book[:5000].copy()
    trades = reference.trades[:200].copy()
    stray = trades[:3].copy()
    stray["instrument"] = 999
    bad = trades[3:5].copy()
    bad["qty"] = -1
    mixed = np.sort(np.concatenate([trades, stray, bad]), order="ts_local", kind="stable")
    engine.run(book, np.zeros(0, ORDER_EVENT), mixed)
    c = engine.counters
    assert c["unknown_instrument"] == 3
    assert c["trades_rejected"] == 2
    # The same accepted events without the bad ones give the same rows.
    clean = make_engine(reference)
    clean.run(book, np.zeros(0, ORDER_EVENT), np.sort(trades, order="ts_local", kind="stable"))
    assert np.array_equal(np.array(engine.matrix), np.array(clean.matrix), equal_nan=True)


def test_l3_simulator_stream_queue_ahead_is_exact():
    data = generate(n_events=60_000)
    fs = compute(data)
    assert fs.counters["order_events"] == len(data.orders)
    assert fs.counters["book_ignored_l3"] == len(data.book)
    ahead = fs.column("queue_ahead_bid")
    assert np.isfinite(ahead).mean() > 0.9
    # Exact queue position can never exceed the level size at the touch.
    books = _core.book.L3BookSet()
    for iid in data.specs:
        books.add(iid)
    last = np.flatnonzero(data.orders["flags"] & FLAG_LAST)
    tops = books.apply(data.orders, record_at=last.astype(np.int64))
    assert len(tops) == len(fs.timestamps)
    bid_qty = tops["bid_qty"] if tops.dtype.names else tops[:, 1]
    ok = np.isfinite(ahead)
    assert np.all(ahead[ok] <= bid_qty[ok])


@pytest.mark.realdata
def test_features_cli_writes_npz_and_parquet(tmp_path):
    env = dict(os.environ)
    env.pop("BOT4_SIMD", None)
    out = tmp_path / "f.npz"
    run = subprocess.run([sys.executable, "-m", "bot4.cli", "features", "--data", str(REFERENCE),
                          "--out", str(out), "--json"], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["features"] >= 80 and summary["rows"] > 1000
    saved = np.load(out)
    assert saved["matrix"].shape == (summary["rows"], summary["features"])
    assert list(saved["names"]) == [e["name"] for e in catalog()]
    pq = pytest.importorskip("pyarrow.parquet")
    out_pq = tmp_path / "f.parquet"
    run = subprocess.run([sys.executable, "-m", "bot4.cli", "features", "--events", "30000",
                          "--out", str(out_pq)], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr
    assert "embedded default market stream" in run.stdout
    table = pq.read_table(out_pq)
    assert table.num_columns == 2 + len(catalog())
    bad = subprocess.run([sys.executable, "-m", "bot4.cli", "features", "--events", "1000",
                          "--out", str(tmp_path / "f.csv")], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and ".npz or .parquet" in bad.stderr
