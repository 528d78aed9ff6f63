from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from bot4 import _core, events
from bot4.errors import LayoutMismatchError


def test_python_dtypes_match_cpp_records():
    events.check_layouts()
    for name, dtype in events.DTYPES.items():
        assert dtype == _core.record_dtypes[name]


def test_layout_mismatch_is_detected(monkeypatch):
    wrong = np.dtype([("ts_exchange", "<i8"), ("price", "<i8")], align=True)
    monkeypatch.setitem(events.DTYPES, "BookEvent", wrong)
    with pytest.raises(LayoutMismatchError, match="BookEvent"):
        events.check_layouts()


def _bot4(*args, env_extra=None):
    env = dict(os.environ)
    env.pop("BOT4_SIMD", None)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "bot4.cli", *args], capture_output=True,
                          text=True, env=env)


def test_info_reports_build_and_simd():
    out = _bot4("info", "--json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["build_type"] == "Release"
    assert info["simd_available"][0] == "scalar"
    assert info["simd_active"] == info["simd_available"][-1]
    assert not info["simd_overridden"]


def test_info_honours_simd_override():
    out = _bot4("info", "--json", env_extra={"BOT4_SIMD": "scalar"})
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["simd_active"] == "scalar" and info["simd_overridden"]


def test_unknown_simd_override_is_an_error():
    out = _bot4("info", env_extra={"BOT4_SIMD": "sse9"})
    assert out.returncode == 2
    assert "unknown SIMD level 'sse9'" in out.stderr
