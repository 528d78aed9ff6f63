"""Configuration loaded from TOML (frozen msgspec Structs made from the core's declarations,
unknown fields rejected)."""

from bot4.config.risk import (
    STRATEGIES,
    Config,
    EngineConfig,
    EnsembleConfig,
    KillSwitchConfig,
    PreTradeConfig,
    RiskConfig,
    SimConfig,
    SizingConfig,
    StrategyConfig,
    build_risk,
    load_config,
    parse_strategy,
)

__all__ = ["STRATEGIES", "Config", "EngineConfig", "EnsembleConfig", "KillSwitchConfig", "PreTradeConfig", "RiskConfig",
           "SimConfig", "SizingConfig", "StrategyConfig", "build_risk", "load_config", "parse_strategy"]
