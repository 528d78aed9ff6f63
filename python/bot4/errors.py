"""One exception tree for everything bot4 raises on purpose."""


class Bot4Error(Exception):
    """Base of every bot4 error."""


class LayoutMismatchError(Bot4Error):
    """A numpy record dtype declared in Python differs from the C++ layout."""


class DataError(Bot4Error):
    """Input data that cannot be used at all (missing file, unknown format)."""


class OffGridError(Bot4Error, ValueError):
    """A decimal price or size that is not a whole number of ticks or lots."""


class DecimalParseError(Bot4Error, ValueError):
    """A price or size string that is not a finite decimal number."""


class ConfigError(Bot4Error, ValueError):
    """Invalid configuration or command-line choice."""


class ModelError(Bot4Error):
    """A model that cannot be loaded or run: corrupt or tampered file, feature mismatch,
    unsupported operator, runtime failure."""
