"""Run what the loaders produced through the feature engine (the C++ hot path), so fuzzed
timestamps, prices and sizes reach the core. Two configs: the trading default (100 ms sample
grid) and a 10 ms time grid of decisions, where a time jump used to be stepped across."""

from __future__ import annotations

from bot4.features import FeatureConfig, compute, trading_config

_CONFIGS = None


def run_features(md) -> None:
    global _CONFIGS
    if _CONFIGS is None:
        _CONFIGS = (trading_config(), FeatureConfig(decision="time", decision_interval_ns=10_000_000,
                                                    sample_interval_ns=1_000_000))
    if not (len(md.book) or len(md.orders) or len(md.trades)):
        return
    for config in _CONFIGS:
        compute(md, config, chunks=2)
