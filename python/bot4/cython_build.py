"""Compiling a user's Cython strategy (`.pyx`) against the installed bot4 and loading it.

The module is cythonized to C++, compiled with the interpreter's compiler settings, C++20 and the
installed headers (bot4.sdk), linked with libbot4_core.a, and cached under
$BOT4_CACHE_DIR (default ~/.cache/bot4/cython) by a hash of everything that changes the binary:
the source, bot4/strategy_api.pxd, bot4's interface fingerprint and version, Cython's and
Python's versions. Cython is needed only here (`pip install cython`).
"""
from __future__ import annotations

import hashlib
import importlib.util
import inspect
import os
import shutil
import sys
import sysconfig
import tempfile
from pathlib import Path
from types import ModuleType

from bot4 import _core, sdk


class CythonBuildError(RuntimeError):
    """The strategy did not cythonize or compile; the message holds the compiler's output."""


def cache_dir() -> Path:
    """Where compiled Cython strategies are cached: $BOT4_CACHE_DIR/cython, else
    $XDG_CACHE_HOME/bot4/cython (default ~/.cache/bot4/cython)."""
    env = os.environ.get("BOT4_CACHE_DIR")
    base = Path(env) if env else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "bot4"
    return base / "cython"


def _key(source: Path) -> str:
    import Cython

    h = hashlib.sha256()
    h.update(source.read_bytes())
    h.update((Path(sdk.get_pxd_dir()) / "bot4" / "strategy_api.pxd").read_bytes())
    for part in (str(_core.engine.PLUGIN_ABI), _core.__version__, Cython.__version__, sys.version,
                 sysconfig.get_platform()):
        h.update(part.encode())
    return h.hexdigest()[:16]


def _compile(source: Path, module_name: str, out_dir: Path) -> Path:
    try:
        from Cython.Build import cythonize
    except ImportError as exc:
        raise CythonBuildError("building a .pyx strategy needs Cython: pip install cython") from exc
    from setuptools import Distribution, Extension
    from setuptools.command.build_ext import build_ext

    work = Path(tempfile.mkdtemp(prefix="build-", dir=out_dir))
    try:
        pyx = work / f"{module_name}.pyx"
        shutil.copyfile(source, pyx)
        include = sdk.get_include()
        ext = Extension(module_name, [str(pyx)], language="c++",
                        include_dirs=[include, os.path.join(include, "bot4")],
                        extra_compile_args=["-std=c++20", "-O3"],
                        extra_objects=[os.path.join(sdk.get_library_dir(), "libbot4_core.a")],
                        libraries=["dl"] if sys.platform.startswith("linux") else [])
        try:
            exts = cythonize([ext], include_path=[sdk.get_pxd_dir(), str(source.parent)], quiet=True,
                             compiler_directives={"language_level": "3"}, build_dir=str(work))
        except Exception as exc:  # Cython reports the errors and raises CompileError
            raise CythonBuildError(f"{source}: Cython failed: {exc}") from exc
        dist = Distribution({"name": module_name, "ext_modules": exts})
        cmd = build_ext(dist)
        cmd.build_lib = str(work / "lib")
        cmd.build_temp = str(work / "tmp")
        cmd.ensure_finalized()
        try:
            cmd.run()
        except Exception as exc:
            raise CythonBuildError(f"{source}: compiling the generated C++ failed: {exc}") from exc
        built = next((work / "lib").glob(f"{module_name}*"))
        target = out_dir / built.name
        os.replace(built, target)  # atomic: a concurrent build of the same key writes the same file
        return target
    finally:
        shutil.rmtree(work, ignore_errors=True)


def build_module(path: str | os.PathLike) -> ModuleType:
    """The compiled module of a .pyx file (built on first use, then from the cache)."""
    source = Path(path).resolve()
    if not source.is_file():
        raise FileNotFoundError(f"{path}: no such .pyx file")
    key = _key(source)
    module_name = f"_bot4_cy_{source.stem}_{key}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    out_dir = cache_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
    so = out_dir / f"{module_name}{suffix}"
    if not so.exists():
        so = _compile(source, module_name, out_dir)
    spec = importlib.util.spec_from_file_location(module_name, so)
    if spec is None or spec.loader is None:
        raise CythonBuildError(f"cannot load the compiled {so}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[module_name] = module
    return module


def build_strategy(path: str | os.PathLike) -> type:
    """The strategy class of a .pyx file: its one class with __bot4_callbacks__ (see
    bot4/strategy_api.pxd); bot4.strategies.make instantiates it with the strategy's params."""
    module = build_module(path)
    classes = [c for c in vars(module).values() if inspect.isclass(c) and hasattr(c, "__bot4_callbacks__")]
    if len(classes) != 1:
        raise ValueError(f"{path}: expected one cdef class with __bot4_callbacks__ (bot4/strategy_api.pxd), "
                         f"found {len(classes)}")
    return classes[0]
