"""Shared test set-up. Recorded market data (BOT4_DATA, default ../shared/data): tests that read
it are marked `realdata` or take the `shared_data` fixture; without it they are skipped with one
summary line, or fail when BOT4_REQUIRE_DATA=1 (CI). See tests/recordings.py."""

import os

from recordings import (  # noqa: F401  (pytest hooks and fixture, shared with bench/conftest.py)
    pytest_collection_modifyitems,
    pytest_report_header,
    pytest_runtest_setup,
    shared_data,
)


#: Thread pools sized to every core by default (OpenMP in torch, XGBoost and LightGBM; BLAS).
THREAD_POOL_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def pytest_configure(config):
    # Under pytest-xdist (pyproject's addopts) there is already one worker per CPU: pools of one
    # thread per core in each worker oversubscribe the machine and OpenMP's spinning threads then
    # crawl (the torch sequence tests took 4x longer). Set here, in the controller, before the
    # workers start, so they and the processes they spawn inherit it; a value already set wins.
    if getattr(config.option, "numprocesses", None):
        for var in THREAD_POOL_VARS:
            os.environ.setdefault(var, "1")
