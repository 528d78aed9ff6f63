"""Type stubs for the native extension (ext/ bindings over core/): one stub module per native
submodule, so mypy's stubtest checks their members against the built extension (.ci/run)."""

import numpy as np

from bot4._core import book as book
from bot4._core import engine as engine
from bot4._core import features as features
from bot4._core import inference as inference
from bot4._core import ingest as ingest
from bot4._core import orders as orders
from bot4._core import portfolio as portfolio
from bot4._core import risk as risk
from bot4._core import sim as sim
from bot4._core import simd as simd

__version__: str
build_type: str
compiler: str
record_dtypes: dict[str, np.dtype]
event_flags: dict[str, int]
NO_BID_PRICE: int
NO_ASK_PRICE: int
