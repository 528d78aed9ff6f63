"""bot4.cython_build: a user's Cython strategy (examples/cython_strategy/threshold.pyx, the
threshold_bracket rule through bot4/strategy_api.pxd) compiles against the installed bot4, is
called by the core without the GIL, and trades bit-identically to the built-in."""
from __future__ import annotations

import pytest
from conftest import EXAMPLES, builtin_and_user, same_outputs

pytest.importorskip("Cython", reason="building .pyx strategies needs Cython (pip install cython)")

from bot4 import strategies  # noqa: E402
from bot4.cython_build import CythonBuildError, build_module, build_strategy, cache_dir  # noqa: E402

PYX = EXAMPLES / "cython_strategy" / "threshold.pyx"


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("BOT4_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "bot4-cache"))


def test_cython_threshold_equals_the_builtin_on_the_embedded_stream(embedded):
    ref, user, s = builtin_and_user(embedded, str(PYX))
    assert ref.n_orders > 0 and ref.fills.size > 0
    assert same_outputs(ref, user) == []
    assert s.stats()["decisions"] == ref.decisions.size  # every decision reached the Cython method
    assert type(s.object).__name__ == "Threshold"


@pytest.mark.realdata
def test_cython_threshold_equals_the_builtin_on_btcusdt(btcusdt):
    ref, user, _ = builtin_and_user(btcusdt, str(PYX))
    assert ref.n_orders > 0
    assert same_outputs(ref, user) == []


def test_build_is_cached_by_content(tmp_path):
    cls = build_strategy(PYX)
    built = sorted(cache_dir().glob("_bot4_cy_threshold_*"))
    assert len(built) == 1
    assert build_strategy(PYX) is cls  # same source: the loaded module
    changed = tmp_path / "threshold.pyx"
    changed.write_text(PYX.read_text() + "\n# changed\n")
    other = build_strategy(changed)
    assert other is not cls
    assert len(sorted(cache_dir().glob("_bot4_cy_threshold_*"))) == 2


def test_parameters_are_checked():
    with pytest.raises(TypeError):
        strategies.make(str(PYX), {"long_treshold": 0.6})
    with pytest.raises(ValueError, match="long_threshold"):
        strategies.make(str(PYX), {"long_threshold": 1.5})


def test_errors_are_clear(tmp_path):
    bad = tmp_path / "bad.pyx"
    bad.write_text("cdef class X:\n    cdef int f(self) nogil:\n        return undefined_name\n")
    with pytest.raises(CythonBuildError, match="Cython failed"):
        build_module(bad)
    none = tmp_path / "nostrategy.pyx"
    none.write_text("def f():\n    return 1\n")
    with pytest.raises(ValueError, match="expected one cdef class with __bot4_callbacks__"):
        build_strategy(none)
    with pytest.raises(ValueError, match="does not exist"):
        strategies.make(str(tmp_path / "missing.pyx"))
