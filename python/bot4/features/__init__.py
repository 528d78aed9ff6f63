"""Streaming microstructure and windowed time-series features computed in the core."""

from bot4.features.config import TRADING_SAMPLE_INTERVAL_NS, FeatureConfig, MicropriceTable, trading_config
from bot4.features.engine import (FeatureSet, RowWriter, catalog, catalog_markdown, compute, compute_parts,
                                  feature_names, make_engine, save)
from bot4.features.microprice import default_microprice, fit_microprice

__all__ = ["FeatureConfig", "FeatureSet", "MicropriceTable", "catalog", "catalog_markdown", "compute", "compute_parts",
           "feature_names", "make_engine", "RowWriter", "save", "default_microprice", "fit_microprice", "trading_config",
           "TRADING_SAMPLE_INTERVAL_NS"]
