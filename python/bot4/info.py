"""What this build of bot4 is and what the CPU under it offers."""

from __future__ import annotations

import os
import platform

from bot4 import _core


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo; platform.processor() elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def build_info() -> dict:
    """Version, compiler, build type and SIMD levels. Raises ConfigError for a bad BOT4_SIMD."""
    from bot4.errors import ConfigError

    try:
        active = _core.simd.active_level()
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    return {
        "version": _core.__version__,
        "compiler": _core.compiler,
        "build_type": _core.build_type,
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "simd_available": list(_core.simd.available_levels()),
        "simd_active": active,
        "simd_overridden": bool(_core.simd.is_overridden()),
    }
