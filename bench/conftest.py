from __future__ import annotations

import os
from pathlib import Path

import pytest

from bot4.perf import PerfManifest
from recordings import BTCUSDT, data_path
from recordings import (  # noqa: F401  (recorded-data hooks and fixture, as in tests/conftest.py)
    pytest_collection_modifyitems,
    pytest_report_header,
    pytest_runtest_setup,
    shared_data,
)

REFERENCE_FILE = data_path(*BTCUSDT)
PERF_DIR = Path(os.environ.get("BOT4_PERF_DIR", Path(__file__).resolve().parents[1] / "build" / "perf"))


@pytest.fixture(scope="session")
def reference_data(shared_data):
    from bot4.data import load

    assert REFERENCE_FILE.exists(), f"reference recording missing: {REFERENCE_FILE}"
    return load(REFERENCE_FILE)


@pytest.fixture(scope="session")
def book_manifest():
    manifest = PerfManifest(name="book_replay")
    yield manifest
    path = manifest.write(PERF_DIR / "book_replay.json")
    print(f"\nperf manifest written to {path}")
