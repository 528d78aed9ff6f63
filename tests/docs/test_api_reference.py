"""The API reference in docs/api/ matches the docstrings, and every public name has one.

docs/build_api.py makes the pages (pdoc's documentation model, Markdown written there); this test
rebuilds them into a temporary folder and compares page by page, so a docstring or signature edited
without `python docs/build_api.py` fails here with the diff.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "docs" / "api"

# Public names without a docstring in modules other sessions own right now (python/bot4/portfolio,
# python/bot4/services: issue 15 work in progress). Listed, not hidden: the test fails as soon as
# one of them is documented, so the list can only shrink.
UNDOCUMENTED_ELSEWHERE: set[str] = set()


def _load_builder():
    spec = importlib.util.spec_from_file_location("bot4_build_api", ROOT / "docs" / "build_api.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build_api = _load_builder()


@pytest.fixture(scope="module")
def fresh(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("api")
    build_api.build(out)
    return out


def test_every_public_module_has_a_page(fresh):
    pages = {p.stem for p in fresh.glob("*.md")} - {"README"}
    modules = set(build_api.public_modules())
    assert pages == modules
    for must in ("bot4.data", "bot4.features", "bot4.research.train", "bot4.backtest", "bot4.models"):
        assert must in modules
    assert not any(build_api.is_cli_module(m) for m in modules)
    index = (fresh / "README.md").read_text()
    assert all(f"({m}.md)" in index for m in modules)


def test_committed_reference_is_current(fresh):
    problems = build_api.compare(COMMITTED, fresh)
    assert not problems, (f"docs/api is stale in {len(problems)} pages; run `python docs/build_api.py` and "
                          "commit docs/api/. First differences:\n" + "\n\n".join(problems[:3]))


def test_every_public_name_has_a_docstring():
    missing = set(build_api.undocumented())
    new = sorted(missing - UNDOCUMENTED_ELSEWHERE)
    assert not new, "public names without a docstring: " + ", ".join(new)
    fixed = sorted(UNDOCUMENTED_ELSEWHERE - missing)
    assert not fixed, "documented now, remove from UNDOCUMENTED_ELSEWHERE: " + ", ".join(fixed)


def test_key_pages_name_units_shapes_and_dtypes(fresh):
    features = (fresh / "bot4.features.engine.md").read_text()
    assert "## `compute` *function*" in features and "float64 (rows, features)" in features
    assert "FeatureSet.timestamps" in features and "int64 ns" in features
    train = (fresh / "bot4.research.train.md").read_text()
    assert "## `TrainConfig` *class*" in train and "## `train` *function*" in train
    assert "horizon_unit" in train and "basis points" in train
    data = (fresh / "bot4.data.md").read_text()
    assert "## `load` *function*" in data and "MarketData" in data
    backtest = (fresh / "bot4.backtest.md").read_text()
    assert "`run`" in backtest and "`run_stream`" in backtest


def test_stale_missing_and_extra_pages_are_reported(fresh, tmp_path):
    committed = tmp_path / "committed"
    shutil.copytree(fresh, committed)
    assert build_api.compare(committed, fresh) == []
    page = committed / "bot4.data.md"
    page.write_text(page.read_text().replace("Load one recording", "Load a recording"))
    (committed / "bot4.features.md").unlink()
    (committed / "bot4.gone.md").write_text("# gone\n")
    problems = build_api.compare(committed, fresh)
    assert len(problems) == 3
    assert any("bot4.data.md" in p and "-Load a recording" in p and "+Load one recording" in p for p in problems)
    assert any(p.startswith("bot4.features.md: missing") for p in problems)
    assert any(p.startswith("bot4.gone.md: no such public module") for p in problems)


def test_undocumented_names_are_found(tmp_path, monkeypatch):
    pkg = tmp_path / "fakepkg_api"
    pkg.mkdir()
    (pkg / "__init__.py").write_text('"""A package."""\n')
    (pkg / "mod.py").write_text(textwrap.dedent('''
        """A module."""
        from dataclasses import dataclass


        def documented():
            """Yes."""


        def bare():
            pass


        def _private():
            pass


        @dataclass
        class Auto:
            x: int

            def method(self):
                pass

            def fine(self):
                """Fine."""
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        missing = build_api.undocumented(["fakepkg_api.mod"])
    finally:
        for name in ("fakepkg_api", "fakepkg_api.mod"):
            sys.modules.pop(name, None)
    # the dataclass's generated "Auto(x: int)" is not documentation
    assert sorted(missing) == ["fakepkg_api.mod.Auto", "fakepkg_api.mod.Auto.method", "fakepkg_api.mod.bare"]
