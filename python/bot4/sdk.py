"""Where the installed C++ SDK is: the core's headers, the static library and the CMake package
(`find_package(bot4 CONFIG)`), as pybind11 exposes its own (`get_cmake_dir()`, `get_include()`).

    cmake -S . -B build -Dbot4_DIR="$(python -m bot4.sdk --cmakedir)"
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bot4 import _core


def _root() -> Path:
    # The compiled files sit beside the extension (in an editable install too, where the Python
    # sources live elsewhere): the SDK is installed with them.
    return Path(_core.__file__).resolve().parent


def _existing(path: Path, what: str) -> str:
    if not path.exists():
        raise FileNotFoundError(f"bot4's {what} is not installed at {path} (built with -DBOT4_SDK=OFF, or an old "
                                "install: reinstall bot4 with pip)")
    return str(path)


def get_include() -> str:
    """Folder to put on the include path: `#include <bot4/strategy/strategy.hpp>` (the headers'
    own includes also need `get_include() + "/bot4"`, which the CMake target adds)."""
    return _existing(_root() / "include", "C++ headers")


def get_library_dir() -> str:
    """Folder holding libbot4_core.a."""
    return _existing(_root() / "lib", "core library")


def get_cmake_dir() -> str:
    """Folder holding bot4Config.cmake (pass as bot4_DIR, or append to CMAKE_PREFIX_PATH)."""
    return _existing(_root() / "share" / "cmake" / "bot4", "CMake package")


def get_pxd_dir() -> str:
    """Folder to put on Cython's include path for `cimport bot4.strategy_api`."""
    return str(Path(__file__).resolve().parent.parent)


def main(argv: list[str] | None = None) -> int:
    """`python -m bot4.sdk --cmakedir|--includes|--libdir`: print one path of the installed C++ SDK;
    returns the exit code."""
    p = argparse.ArgumentParser(prog="python -m bot4.sdk", description="paths of bot4's installed C++ SDK")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--cmakedir", action="store_true", help="the CMake package folder (bot4_DIR)")
    g.add_argument("--includes", action="store_true", help="compiler flags for the headers (-I...)")
    g.add_argument("--libdir", action="store_true", help="the folder holding libbot4_core.a")
    args = p.parse_args(argv)
    if args.cmakedir:
        print(get_cmake_dir())
    elif args.includes:
        inc = get_include()
        print(f"-I{inc} -I{inc}/bot4")
    else:
        print(get_library_dir())
    return 0


if __name__ == "__main__":
    sys.exit(main())
