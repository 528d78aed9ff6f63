"""bot4: a C++ trading core with a thin Python shell."""

from bot4 import _core
from bot4 import events  # noqa: F401  (checks record layouts against the C++ core at import)
from bot4.strategy import Strategy

__version__ = _core.__version__

__all__ = ["Strategy", "__version__", "events"]
