"""Shared test set-up. Recorded market data (BOT4_DATA, default ../shared/data): tests that read
it are marked `realdata` or take the `shared_data` fixture; without it they are skipped with one
summary line, or fail when BOT4_REQUIRE_DATA=1 (CI). See tests/recordings.py."""

from recordings import (  # noqa: F401  (pytest hooks and fixture, shared with bench/conftest.py)
    pytest_collection_modifyitems,
    pytest_report_header,
    pytest_runtest_setup,
    shared_data,
)
