"""Configuration loaded from TOML (frozen msgspec Structs, unknown fields rejected)."""

from bot4.config.risk import (
                              Config,
                              KillSwitchConfig,
                              PreTradeConfig,
                              RiskConfig,
                              SizingConfig,
                              StrategyConfig,
                              build_risk,
                              load_config,
)

__all__ = ["Config", "KillSwitchConfig", "PreTradeConfig", "RiskConfig", "SizingConfig",
           "StrategyConfig", "build_risk", "load_config"]
