"""One-call backtest of the whole hot path (book -> features -> model -> strategy -> risk ->
orders -> venue simulator) in the C++ core, with no Python per event."""
from bot4.backtest.engine import BacktestResult, default_config, engine_config, run

__all__ = ["BacktestResult", "default_config", "engine_config", "run"]
