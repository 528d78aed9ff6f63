"""bot4: a C++ trading core with a thin Python shell."""

from bot4 import _core
from bot4 import events  # noqa: F401  (checks record layouts against the C++ core at import)

__version__ = _core.__version__

__all__ = ["__version__", "events"]
