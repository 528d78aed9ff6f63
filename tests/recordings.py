"""Where the tests find recorded market data, and whether they must.

The recordings (Binance, Databento, LOBSTER, Tardis files; see that directory's README.md) are
never part of the repository. Tests that read them are marked `realdata` (or take the
`shared_data` fixture, which marks them); without the data they are skipped, with one summary
line, and the rest of the suite runs on bot4's embedded simulator stream.

- `BOT4_DATA`: the data directory; default `../shared/data` beside the checkout.
- `BOT4_REQUIRE_DATA=1` (set by .ci/run): a missing data directory fails those tests instead.

The pytest hooks and the `shared_data` fixture below are re-exported by tests/conftest.py and
bench/conftest.py. The skip is raised from one line here, so pytest's `-ra` summary folds every
such skip into a single "SKIPPED [N] tests/recordings.py:..." line.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("BOT4_DATA") or CHECKOUT.parent / "shared" / "data").resolve()
REQUIRE_DATA = os.environ.get("BOT4_REQUIRE_DATA", "") not in ("", "0")

HOW_TO = ("set BOT4_DATA to the recorded-data directory (default ../shared/data beside the checkout; "
          "see README, Set-up)")


def data_available() -> bool:
    return DATA_DIR.is_dir()


def data_path(*parts: str) -> Path:
    """A path inside the data directory (not checked here: tests needing it are marked realdata)."""
    return DATA_DIR.joinpath(*parts)


def require_recording(path: Path) -> Path:
    """`path` if that recording exists; otherwise a skip naming it, or a failure under
    BOT4_REQUIRE_DATA (CI must not pass a data directory that lacks a file its tests read)."""
    if not path.exists():
        if REQUIRE_DATA:
            pytest.fail(f"BOT4_REQUIRE_DATA is set and the recording {path} is missing", pytrace=False)
        pytest.skip(f"reference recording missing: {path}")
    return path


def missing_reason() -> str:
    return f"needs recorded market data, not found at {DATA_DIR}: {HOW_TO}"


# The reference recording most end-to-end tests replay (Binance USD-M BTCUSDT, 2024-08-08).
BTCUSDT = ("binance_hftbacktest", "usdm", "btcusdt_20240808.gz")


def pytest_report_header(config) -> str:
    state = "found" if data_available() else "MISSING: tests marked realdata are skipped"
    return f"bot4 recorded data (BOT4_DATA): {DATA_DIR} ({state})"


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        if "shared_data" in getattr(item, "fixturenames", ()) and item.get_closest_marker("realdata") is None:
            item.add_marker(pytest.mark.realdata)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item) -> None:
    # before any fixture runs: a session fixture loading a recording never starts without it
    if item.get_closest_marker("realdata") is None or data_available():
        return
    if REQUIRE_DATA:
        pytest.fail(f"BOT4_REQUIRE_DATA is set and this test {missing_reason()}", pytrace=False)
    pytest.skip(missing_reason())


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The recorded-data directory (BOT4_DATA, default ../shared/data); a test taking it is realdata."""
    return DATA_DIR
