"""Shared test fixtures.

Real market data lives in ../shared/data beside the checkout (see its README.md). It is read in
place, never copied. CI always has it, so a missing directory is an error, not a skip.
"""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of ../shared/data; fails loudly when it is missing."""
    if not (SHARED_DATA / "README.md").is_file():
        pytest.fail(f"real market data not found at {SHARED_DATA} (expected ../shared/data beside "
                    f"the checkout); the data tests need it", pytrace=False)
    return SHARED_DATA
