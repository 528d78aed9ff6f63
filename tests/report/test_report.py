"""The backtest report from a constructed BacktestResult-like object (no engine needed)."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field


import numpy as np
import pytest

from bot4.report import SECTIONS, format_summary, summarize, write_perf_manifest, write_report
from bot4.report.split import purge_gap_ns, split_by_time, time_at_fraction
from recordings import BTCUSDT, data_path


@dataclass
class FakeResult:
    events: int
    decisions: np.ndarray
    orders: np.ndarray
    fills: np.ndarray
    equity: np.ndarray
    latency_ns: dict
    counters: dict = field(default_factory=dict)
    rejections: dict = field(default_factory=dict)
    pnl: float = 0.0
    max_drawdown: float = 0.0
    seconds: float = 0.0


def fake_result(n: int = 2000, seed: int = 0) -> FakeResult:
    rng = np.random.default_rng(seed)
    ts = 1_700_000_000_000_000_000 + np.cumsum(rng.integers(1_000_000, 50_000_000, n))
    decisions = np.zeros(n, [("ts", "<i8"), ("p", "<f8"), ("target", "<f8")])
    decisions["ts"], decisions["p"] = ts, rng.uniform(0.3, 0.7, n)
    orders = np.zeros(40, [("ts", "<i8"), ("order_id", "<u8"), ("side", "u1"), ("price", "<i8"), ("qty", "<i8")])
    fills = np.zeros(30, [("ts", "<i8"), ("order_id", "<u8"), ("side", "u1"), ("price", "<i8"),
                          ("qty", "<i8"), ("fee", "<f8"), ("maker", "?")])
    equity = np.zeros(n, [("ts", "<i8"), ("position", "<i8"), ("realised", "<f8"), ("unrealised", "<f8"),
                          ("fees", "<f8"), ("equity", "<f8")])
    equity["ts"] = ts
    equity["position"] = np.cumsum(rng.integers(-1, 2, n))
    equity["equity"] = np.cumsum(rng.normal(0, 1, n))
    equity["fees"] = np.linspace(0, 3, n)
    dd = equity["equity"] - np.maximum.accumulate(equity["equity"]) if n else np.zeros(1)
    latency = {stage: rng.lognormal(np.log(scale), 0.5, n).astype(np.int64)
               for stage, scale in (("features", 300), ("model", 2000), ("risk", 80), ("orders", 60),
                                    ("sim", 150), ("tick_to_decision", 2600))}
    return FakeResult(events=50 * n, decisions=decisions, orders=orders, fills=fills, equity=equity,
                      latency_ns=latency, rejections={"max_position": 3, "rate_limit": 0},
                      pnl=float(equity["equity"][-1]) if n else 0.0, max_drawdown=float(-dd.min()), seconds=0.05)


SIDECAR = {"metrics": {"test": {
    "raw": {"ece": 0.03, "reliability": {"mean_p": [0.15, 0.45, 0.55, 0.85], "mean_y": [0.2, 0.4, 0.6, 0.8],
                                         "count": [10, 100, 100, 10]}},
    "calibrated": {"ece": 0.01, "reliability": {"mean_p": [0.2, 0.4, 0.6, 0.8], "mean_y": [0.2, 0.41, 0.6, 0.79],
                                                "count": [10, 100, 100, 10]}}}}}


def test_report_html_has_the_five_plots_and_the_summary(tmp_path):
    result = fake_result()
    path = write_report(result, tmp_path / "out", SIDECAR, title="fake run")
    assert path == tmp_path / "out" / "report.html" and path.exists()
    text = path.read_text()
    assert "fake run" in text and "<section id='summary'>" in text
    for sec in ("equity", "drawdown", "position", "latency", "calibration"):
        assert sec in SECTIONS
        m = re.search(rf"<section id='{sec}'>.*?src='data:image/png;base64,([A-Za-z0-9+/=]+)'", text, re.S)
        assert m, sec
        assert base64.b64decode(m.group(1))[:8] == b"\x89PNG\r\n\x1a\n"
    # self-contained: no external references
    assert "http://" not in text and "https://" not in text and "<script" not in text
    for needle in ("events/s", "decisions", "orders", "fills", "PnL", "max drawdown", "max_position",
                   "tick_to_decision", "p99.9"):
        assert needle in text, needle


def test_report_without_sidecar_or_samples_still_renders(tmp_path):
    result = fake_result(n=0)
    result.latency_ns = {}
    text = write_report(result, tmp_path, None).read_text()
    for sec in SECTIONS:
        assert f"<section id='{sec}'>" in text


def test_summary_percentiles_and_text():
    result = fake_result()
    s = summarize(result)
    assert s["events"] == result.events and s["fills"] == 30 and s["orders"] == 40
    assert s["events_per_s"] == pytest.approx(result.events / result.seconds)
    lat = s["latency_ns"]["tick_to_decision"]
    assert lat["p50"] <= lat["p99"] <= lat["p999"]
    assert lat["p50"] == pytest.approx(np.percentile(result.latency_ns["tick_to_decision"], 50))
    text = "\n".join(format_summary(s))
    assert "M events/s" in text and "max_position=3" in text and "rate_limit" not in text


def test_perf_manifest_has_stage_percentiles_and_machine(tmp_path):
    result = fake_result()
    path = write_perf_manifest(result, tmp_path / "perf" / "perf.json")
    m = json.loads(path.read_text())
    assert set(m["stages"]) == set(result.latency_ns)
    for stage in m["stages"].values():
        assert {"p50", "p95", "p99", "p999", "count"} <= set(stage)
        assert stage["p50"] <= stage["p95"] <= stage["p99"] <= stage["p999"]
    machine = m["machine"]
    for key in ("cpu", "cores", "simd_active", "build_type", "version", "compiler", "python"):
        assert key in machine, key
    assert m["throughput"]["events"]["rate"] == pytest.approx(result.events / result.seconds)
    assert "numpy" in m["notes"]["versions"]


def _replay_top(data):
    from bot4.replay import replay

    r = replay(data)
    return r.rejected, (r.final_bid, r.final_ask)


@pytest.mark.parametrize("kind", ["sim", pytest.param("binance", marks=pytest.mark.realdata)])
def test_split_by_time_snapshots_the_book_at_the_trading_start(kind):
    if kind == "sim":
        from bot4.sim import generate

        data = generate(seed=5, n_events=20_000)
    else:
        from bot4.data import load

        path = data_path(*BTCUSDT)
        data = load(str(path), progress=False)
    cut = time_at_fraction(data, 0.5)
    gap = purge_gap_ns(data, cut, 100, "events")
    split = split_by_time(data, 0.5, gap)
    assert split.gap_ns == gap > 0
    for arr in (split.train.book, split.train.orders, split.train.trades):
        assert len(arr) == 0 or np.maximum.accumulate(arr["ts_local"])[-1] < split.cut_ns
    assert split.train_events > 0 and split.trade_events > 0
    assert split.train_events + split.trade_events + split.gap_events == (
        len(data.book) + len(data.orders) + len(data.trades))
    # the trading part, snapshot first, rebuilds the same final book with nothing rejected
    rejected, top = _replay_top(split.trade)
    assert rejected == {}
    assert top == _replay_top(data)[1]


def test_summary_counts_orders_sent_not_order_events():
    result = fake_result(n=10)
    rec = np.zeros(7, [("ts", "<i8"), ("id", "<u8"), ("kind", "u1")])
    rec["kind"] = [0, 1, 2, 0, 1, 3, 2]           # two News, acks, fills, a cancel
    result.orders = rec
    s = summarize(result)
    assert s["orders"] == 2 and s["order_events"] == 7
    assert "orders        2  (7 order events)" in "\n".join(format_summary(s))
