from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from bot4.perf import PerfManifest
from recordings import BTCUSDT, data_path
from recordings import pytest_collection_modifyitems as mark_realdata
from recordings import (  # noqa: F401  (recorded-data hooks and fixture, as in tests/conftest.py)
    pytest_report_header,
    pytest_runtest_setup,
    shared_data,
)

REFERENCE_FILE = data_path(*BTCUSDT)
# Modules whose benchmarks start other processes (Dask clusters, a soak run) go last: a worker still
# exiting when a timed comparison starts took a core from it on the 2-core CI machine (bot4's
# top_of_book median went from 15 ms to 28 ms right after the sweep benchmark, failing its ratio gate).
RUN_LAST = ("test_bench_sweep.py", "test_soak_stream.py")


def pytest_collection_modifyitems(config, items) -> None:
    mark_realdata(config, items)
    items.sort(key=lambda item: item.path.name in RUN_LAST)   # stable: the rest keep their order
N_TREES, DEPTH = 500, 6            # the demo's model (bot4.pipeline)
PERF_DIR = Path(os.environ.get("BOT4_PERF_DIR", Path(__file__).resolve().parents[1] / "build" / "perf"))


@pytest.fixture(scope="session")
def reference_data(shared_data):
    from bot4.data import load

    assert REFERENCE_FILE.exists(), f"reference recording missing: {REFERENCE_FILE}"
    return load(REFERENCE_FILE)


@pytest.fixture(scope="session")
def model_dir(reference_data, tmp_path_factory):
    """The full backtest's model, trained once per benchmark session as the demo pipeline trains it
    (500 trees, depth 6, on the first half by time of the reference recording)."""
    from bot4.report.split import split_by_time
    from bot4.research.train import TrainConfig, train

    out = tmp_path_factory.mktemp("model")
    split = split_by_time(reference_data, 0.5, 1)
    train(split.train, TrainConfig(n_estimators=N_TREES, max_depth=DEPTH), out, progress=False)
    return out


@pytest.fixture(scope="session")
def nautilus_reference(reference_data):
    """nautilus_trader's runs over the reference recording, shared by the benchmark modules, or
    None when nautilus_trader is not installed (the tests then skip and record why)."""
    from other_engines import NautilusReference, missing

    return None if missing("nautilus_trader") else NautilusReference(reference_data)


@contextmanager
def written_manifest(name: str, figures: dict | None = None) -> Iterator[PerfManifest]:
    """A PerfManifest that is written to PERF_DIR/<name>.json when the block ends (every module's
    `manifest` fixture is one); `figures`, a dict the module fills as it goes, joins its notes
    then and is printed."""
    manifest = PerfManifest(name=name)
    yield manifest
    if figures is not None:
        manifest.notes.update(figures)
    path = manifest.write(PERF_DIR / f"{name}.json")
    print(f"\nperf manifest written to {path}" + ("\n" + json.dumps(figures, indent=1) if figures else ""))


@pytest.fixture(scope="session")
def book_manifest():
    with written_manifest("book_replay") as m:
        yield m
