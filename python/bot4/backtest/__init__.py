"""One-call backtest of the whole hot path (book -> features -> model -> strategy -> risk ->
orders -> venue simulator) in the C++ core, with no Python per event."""
from bot4.backtest.engine import BacktestResult, default_config, engine_config, run
from bot4.backtest.streaming import Piece, run_stream, time_pieces

__all__ = ["BacktestResult", "Piece", "default_config", "engine_config", "run", "run_stream", "time_pieces"]
