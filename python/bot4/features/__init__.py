"""Streaming microstructure and windowed time-series features computed in the core."""

from bot4.features.config import FeatureConfig, MicropriceTable
from bot4.features.engine import (FeatureSet, catalog, catalog_markdown, compute, feature_names, make_engine,
                                  save)
from bot4.features.microprice import default_microprice, fit_microprice

__all__ = ["FeatureConfig", "FeatureSet", "MicropriceTable", "catalog", "catalog_markdown", "compute", "feature_names",
           "make_engine", "save", "default_microprice", "fit_microprice"]
