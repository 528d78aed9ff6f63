"""Shared driver of the atheris fuzz targets in this folder.

Each target module defines `seeds() -> list[bytes]` and `one_input(data: bytes) -> None`, and
calls `main(__file__, seeds, one_input)`. An exception that is not a bot4 error (bot4.errors.Bot4Error,
the documented refusal) is a finding: libFuzzer saves the input under build/fuzz/<target>/ and
exits non-zero. A hang is a finding too (-timeout, seconds per input).

Corpus: build/fuzz/<target>/corpus, seeded on every start from `seeds()` (synthetic inputs
written from the documented formats; a target may add slices of ../shared/data when it exists,
at run time only, the recordings are never copied into the repository).
"""

from __future__ import annotations

import gc
import hashlib
import os
import sys
import tempfile
import tomllib  # noqa: F401  (loaded before instrumentation, see INSTRUMENTED)
import types
from pathlib import Path

import atheris

ROOT = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    return Path(os.environ.get("BOT4_DATA", ROOT.parent / "shared" / "data"))


def scratch(name: str) -> Path:
    """A per-process scratch file name (on tmpfs when there is one); the loaders take paths."""
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())
    d = base / f"bot4-fuzz-{os.getpid()}"
    d.mkdir(exist_ok=True)
    return d / name


def assert_same_as_reference(native, reference_load, refusals: tuple) -> None:
    """Differential check of a native loader: `reference_load()` (the Python engine) gives the
    same arrays, rejection counts and samples, and stats; a refusal by the reference (one of
    `refusals`, e.g. the csv module's own errors) ends the comparison."""
    try:
        reference = reference_load()
    except refusals:
        return
    for name in ("book", "orders", "trades", "bbo"):
        a, b = getattr(native, name), getattr(reference, name)
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), f"native {name} differs from the reference"
    assert native.rejections.as_dict() == reference.rejections.as_dict(), \
        (native.rejections.as_dict(), reference.rejections.as_dict())
    assert native.rejections.samples == reference.rejections.samples
    assert native.stats == reference.stats and native.specs == reference.specs


# Module prefixes whose functions carry coverage feedback: bot4, the fuzz targets, and the
# pure-Python standard parsers the loaders and configs hand their input to (tomllib is
# imported here because msgspec.toml imports it only at the first decode, after instrumentation).
INSTRUMENTED = ("bot4", "_harness", "_features", "fuzz_", "msgspec", "tomllib", "json", "csv", "gzip", "zipfile")


def instrument_own_code(file: str) -> int:
    """Instrument every loaded function whose module starts with one of INSTRUMENTED (nested
    functions and lambdas come with their parent's code); returns how many."""
    own = [f for f in gc.get_objects() if isinstance(f, types.FunctionType)
           and (getattr(f, "__module__", None) or "").startswith(INSTRUMENTED)]
    for f in own:
        atheris.instrument_func(f)
    sys.stderr.write(f"INFO: instrumented {len(own)} functions of {', '.join(INSTRUMENTED)}\n")
    return len(own)


def main(file: str, seeds, one_input) -> None:
    name = Path(file).stem.removeprefix("fuzz_")
    out = ROOT / "build" / "fuzz" / name
    corpus = out / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    # Not instrument_imports: bot4 is often an editable install whose import hook bypasses
    # atheris' one. Not instrument_all either: it patches every function loaded (5,006 for the
    # config target, numpy and pandas included) and took 36 s per target, 25-90 s under ASan,
    # most of the CI fuzz step. Coverage feedback is wanted from bot4's own Python (and the
    # pure-Python parsers it calls), so only those are instrumented. Before seeds(), so what only
    # the seeding imports is left alone.
    instrument_own_code(file)
    for s in seeds():
        (corpus / hashlib.sha1(s).hexdigest()).write_bytes(s)
    args = list(sys.argv)
    # Positional arguments are inputs to replay (a crash file): no corpus then.
    if not any(not a.startswith("-") for a in args[1:]):
        args.append(str(corpus))
    if not any(a.startswith("-artifact_prefix=") for a in args):
        args.insert(1, f"-artifact_prefix={out}/")
    if not any(a.startswith("-timeout=") for a in args):
        args.insert(1, "-timeout=20")
    if not any(a.startswith("-rss_limit_mb=") for a in args):
        args.insert(1, "-rss_limit_mb=4096")
    args.insert(1, "-print_final_stats=1")
    atheris.Setup(args, one_input)
    atheris.Fuzz()
