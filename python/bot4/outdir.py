"""Where a run's files go: checked before any work, written under a temporary name and renamed
when complete, so an interrupted or failed run leaves nothing half-written (and no empty model
folder) and two runs never mix in one folder."""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from bot4.errors import InputError

PARTIAL = ".partial"


def check_out_root(root: str | Path, param: str = "out_dir") -> Path:
    """A folder that holds run folders: it may exist (as a folder) or be created (its parent
    must exist)."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise InputError(param, f"{root} is a file; runs are written into a folder",
                         fix="name a folder (new or existing)")
    if not root.exists() and not root.absolute().parent.is_dir():
        raise InputError(param, f"the folder {root.absolute().parent} does not exist",
                         fix="create it first or name a folder whose parent exists")
    return root


def check_new_dir(path: str | Path, param: str = "out_dir") -> Path:
    """A folder a run will create: new, or an existing empty one; its parent must exist."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(param, f"{path} is a file", fix="name a new folder")
    if path.is_dir() and any(path.iterdir()):
        raise InputError(param, f"{path} already holds files; a run writes into a folder of its own",
                         fix="name a new (or empty) folder or remove this one")
    if not path.absolute().parent.is_dir():
        raise InputError(param, f"the folder {path.absolute().parent} does not exist",
                         fix="create it first or name a folder whose parent exists")
    return path


def check_new_file(path: str | Path, suffixes: tuple[str, ...] = (), param: str = "out") -> Path:
    """A file a run will write (replacing an existing file of that name when complete)."""
    path = Path(path)
    if suffixes and path.suffix not in suffixes:
        raise InputError(param, f"{path.name} does not end in {' or '.join(suffixes)}",
                         fix=f"name a {' or '.join(suffixes)} file")
    if path.is_dir():
        raise InputError(param, f"{path} is a folder", fix=f"name a file (e.g. {path / ('out' + (suffixes or ('',))[0])})")
    if not path.absolute().parent.is_dir():
        raise InputError(param, f"the folder {path.absolute().parent} does not exist",
                         fix="create it first or name a file in an existing folder")
    return path


def new_run_dir(root: str | Path, command: str) -> Path:
    """root/<UTC date-time>-<command>, with -2, -3, ... when that name is taken (never reused)."""
    root = Path(root)
    stem = time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + f"-{command}"
    path, n = root / stem, 1
    while path.exists() or any(root.glob(f".{path.name}{PARTIAL}-*")):   # taken, or being written
        n += 1
        path = root / f"{stem}-{n}"
    return path


def _partial(final: Path) -> Path:
    return final.parent / f".{final.name}{PARTIAL}-{os.getpid()}"


@contextlib.contextmanager
def staged_dir(final: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside `final`; on success rename it to `final` (which must not
    exist, or be an empty folder); on any exception or interrupt delete it and re-raise."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    check_new_dir(final)
    tmp = _partial(final)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        if final.is_dir():
            final.rmdir()  # empty (checked above); rename cannot replace a folder on every OS
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def staged_file(final: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `final` (same suffix); on success replace `final` with it;
    on any exception or interrupt delete it and re-raise."""
    final = Path(final)
    tmp = final.parent / f".{final.stem}{PARTIAL}-{os.getpid()}{final.suffix}"
    try:
        yield tmp
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
