"""bot4's built-in market stream: a seeded, deterministic queue-reactive Hawkes simulator.

    from bot4.sim import generate
    data = generate(seed=1, n_events=1_000_000)   # MarketData, like any loader's output

The generator runs in the C++ core (core/sim/market_generator.hpp); its parameters
(`MarketModelParams`) are calibrated on a real recording by `calibrate`; the shipped default
comes from the Binance USD-M BTCUSDT recording of 2024-08-08.
"""

from bot4.sim.generate import DEFAULT_EVENTS, DEFAULT_SEED, generate, generate_parts, load_npz, save_npz
from bot4.sim.params import HawkesClockParams, MarketModelParams, SourceInfo, default_params


def calibrate(data, **kwargs):
    """See bot4.sim.calibration.calibrate (imported lazily: it needs scipy)."""
    from bot4.sim.calibration import calibrate as _calibrate

    return _calibrate(data, **kwargs)


__all__ = [
    "DEFAULT_EVENTS", "DEFAULT_SEED", "HawkesClockParams", "MarketModelParams", "SourceInfo",
    "calibrate", "default_params", "generate", "generate_parts", "load_npz", "save_npz",
]
