"""Instruments sharded over several engine processes behind the same contracts: each engine
trades its group exactly as a backtest of that group alone would (its own ledger and limits),
with the venue inside each engine or as one service for all; commands naming an instrument reach
its engine only."""

from __future__ import annotations

import pytest

from bot4.backtest import run
from bot4.data.market_data import merge
from bot4.services.session import run_paper
from bot4.sim import generate

CONFIG = {"sim": {"entry_latency_ns": 200_000, "response_latency_ns": 200_000},
          "kill_switch": {"max_consecutive_rejects": 0, "max_drawdown": 1.0, "max_latency_ns": 0}}


@pytest.fixture(scope="module")
def parts():
    return [generate(seed=11, n_events=6_000).as_instrument(1, "AAA"),
            generate(seed=12, n_events=6_000).as_instrument(2, "BBB")]


@pytest.fixture(scope="module")
def alone(parts):
    return {p.specs and next(iter(p.specs)): run(p, None, CONFIG, progress=False, strategy="market_maker")
            for p in parts}


@pytest.mark.parametrize("venue_service", [False, True], ids=["venue-in-core", "venue-service"])
def test_two_shards_equal_two_backtests(parts, alone, venue_service, tmp_path):
    both = merge(parts)
    paper = run_paper(both, config=CONFIG, strategy="market_maker", processes=True, shards=[[1], [2]],
                      venue_service=venue_service, control=None, journal=tmp_path / "j")
    for i, whole in alone.items():
        orders = [m for m in paper.orders if m.instrument == i]
        fills = [m for m in paper.fills if m.instrument == i]
        assert whole.fills.size > 10 and len(orders) == whole.orders.size and len(fills) == whole.fills.size
        assert [m.price for m in fills] == whole.fills["price"].tolist()
        assert [m.qty for m in fills] == whole.fills["qty"].tolist()
        assert [m.ts for m in orders] == whole.orders["ts"].tolist()
        assert [m.status for m in orders] == whole.orders["status"].tolist()
    assert paper.pnl == pytest.approx(sum(r.pnl for r in alone.values()), abs=1e-9)
    engines = paper.counters["engines"]
    assert engines["engine-0"]["other_shard_records"] > 0 and engines["engine-1"]["other_shard_records"] > 0
    assert sorted(p.name for p in (tmp_path / "j").iterdir()) == ["shard-0", "shard-1"]
    if venue_service:
        assert paper.counters["venue"]["refused"] == 0
        assert paper.counters["venue"]["sim.1.fills"] + paper.counters["venue"]["sim.2.fills"] == len(paper.fills)


def test_bad_shards_are_refused(parts):
    both = merge(parts)
    for shards, why in (([[1]], "in no group"), ([[1, 2], [2]], "more than one"), ([[1], [2, 7]], "not in the data"),
                        ([[1, 2], []], "without instruments")):
        with pytest.raises(ValueError, match=why):
            run_paper(both, processes=True, shards=shards, control=None)
    with pytest.raises(ValueError, match="processes"):
        run_paper(both, shards=[[1], [2]], control=None)
