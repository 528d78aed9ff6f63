"""A stand-in for the engine's DecisionContext with the fields the portfolio lanes read, recording
the targets they set (shared by tests/portfolio/test_job.py and bench/test_bench_portfolio.py)."""

from __future__ import annotations


class FakeContext:
    def __init__(self, instrument: int, ts: int, position: int = 0, mid_ticks: int = 10_000):
        self.instrument, self.ts, self.position, self.two_sided = instrument, ts, position, True
        self.mid, self.realised, self.unrealised, self.fees = mid_ticks, 0.0, 0.0, 0.0
        self.intents: list = []

    def open_orders(self):
        return []

    def target(self, lots, policy):
        self.intents.append((lots, policy))
        return {"ok": True}
