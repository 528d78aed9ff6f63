"""The installed C++ SDK (bot4.sdk): find_package(bot4) builds examples/cpp_strategy against the
installed headers and library; its program embeds the engine, its plugin is loaded by
bot4.strategies.make and trades exactly as the same rule written in Python."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bot4 import sdk, strategies
from bot4 import strategy as S
from bot4.backtest import run
from bot4.sim import generate

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "cpp_strategy"
SIM = {"entry_latency_ns": 200_000, "response_latency_ns": 200_000}


def test_sdk_paths_hold_the_package():
    cmake_dir = Path(sdk.get_cmake_dir())
    assert (cmake_dir / "bot4Config.cmake").is_file()
    assert (cmake_dir / "bot4Targets.cmake").is_file()
    inc = Path(sdk.get_include())
    assert (inc / "bot4" / "strategy" / "strategy.hpp").is_file()
    assert (inc / "bot4" / "strategy" / "plugin.hpp").is_file()
    assert (Path(sdk.get_library_dir()) / "libbot4_core.a").is_file()
    assert (Path(sdk.get_pxd_dir()) / "bot4" / "strategy_api.pxd").is_file()
    out = subprocess.run([sys.executable, "-m", "bot4.sdk", "--cmakedir"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(cmake_dir)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    cmake = shutil.which("cmake")
    if cmake is None:
        pytest.skip("cmake is not on PATH (pip install cmake)")
    build = tmp_path_factory.mktemp("cpp_strategy")
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    cfg = subprocess.run([cmake, "-S", str(EXAMPLE), "-B", str(build), *gen, f"-Dbot4_DIR={sdk.get_cmake_dir()}"],
                         capture_output=True, text=True)
    assert cfg.returncode == 0, cfg.stdout + cfg.stderr
    b = subprocess.run([cmake, "--build", str(build), "-j2"], capture_output=True, text=True)
    assert b.returncode == 0, b.stdout + b.stderr
    return build


def test_embedded_engine_program_runs(built):
    out = subprocess.run([str(built / "embed"), "5000"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert r["decisions"] == 5000  # book_only: one decision per book message
    assert r["orders"] > 0 and r["fills"] > 0
    assert r["strategy_fills"] == r["fills"]  # every fill told to the strategy


class PyImbalance(S.Strategy):
    """examples/cpp_strategy/imbalance.hpp, line for line in Python."""

    book_only = True

    def __init__(self, threshold=0.8, qty_lots=1, stop_ticks=10, target_ticks=10):
        self.threshold, self.qty, self.stop, self.target = threshold, qty_lots, stop_ticks, target_ticks

    def on_decision(self, ctx):
        ctx.signal = 0
        if not ctx.two_sided or ctx.flattening:
            return None
        imbalance = ctx.bid_qty / (ctx.bid_qty + ctx.ask_qty)
        if imbalance >= self.threshold:
            ctx.signal = 1
        elif imbalance <= 1.0 - self.threshold:
            ctx.signal = -1
        if ctx.signal != 0:
            ctx.target(ctx.signal * self.qty, "passive", True, self.stop, self.target)
        return None


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.size == b.size and all(
        np.ascontiguousarray(a[f]).tobytes() == np.ascontiguousarray(b[f]).tobytes() for f in a.dtype.names)


def test_plugin_trades_exactly_like_the_python_twin(built):
    data = generate(seed=11, n_events=30_000)
    params = {"threshold": 0.7, "qty_lots": 2, "stop_ticks": 6, "target_ticks": 9}
    plugin = strategies.make(str(built / "libimbalance.so"), params)
    assert plugin.name == "imbalance"
    a = run(data, None, config={"sim": SIM}, progress=False, strategy=plugin)
    b = run(data, None, config={"sim": SIM}, progress=False, strategy=PyImbalance(**params))
    assert a.n_orders > 0 and a.fills.size > 0
    for name in ("decisions", "orders", "fills", "equity"):
        assert _same(getattr(a, name), getattr(b, name)), name
    assert set(np.unique(a.decisions["target"]).tolist()) == {-1, 0, 1}


def test_plugin_errors_are_clear(built, tmp_path):
    lib = str(built / "libimbalance.so")
    with pytest.raises(ValueError, match="unknown parameter.*thresold"):
        strategies.make(lib, {"thresold": 0.7})
    with pytest.raises(ValueError, match=r"threshold: expected \(0.5, 1\]"):
        strategies.make(lib, {"threshold": 0.3})
    with pytest.raises(ValueError, match="expected a number"):
        strategies.make(lib, {"threshold": "high"})
    with pytest.raises(ValueError, match="does not exist"):
        strategies.make(str(tmp_path / "missing.so"))
    not_plugin = tmp_path / "libnot.so"
    not_plugin.write_bytes(b"not an ELF file")
    with pytest.raises(ValueError, match="cannot load strategy plugin"):
        strategies.make(str(not_plugin))
    from bot4 import _core

    with pytest.raises(ValueError, match="not a bot4 strategy plugin"):
        strategies.make(_core.__file__)


def test_plugin_from_the_cli_spec_runs_in_backtest(built):
    data = generate(seed=3, n_events=20_000)
    res = run(data, None, config={"sim": SIM}, progress=False, strategy=str(built / "libimbalance.so"))
    assert res.decisions.size > 0
    assert res.config["strategy"]["name"] == "imbalance"


def test_plugin_built_against_other_headers_is_refused(tmp_path):
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler on PATH")
    src = tmp_path / "stale.c"
    # the four entry points, but the fingerprint of some other interface
    src.write_text("unsigned long long bot4_plugin_abi(void) { return 12345; }\n"
                   "void* bot4_make_strategy(const char* p) { return 0; }\n"
                   "void bot4_destroy_strategy(void* s) {}\n"
                   "const char* bot4_plugin_error(void) { return \"\"; }\n")
    lib = tmp_path / "libstale.so"
    subprocess.run([cc, "-shared", "-fPIC", str(src), "-o", str(lib)], check=True)
    with pytest.raises(ValueError, match="built against other bot4 headers"):
        strategies.make(str(lib))
