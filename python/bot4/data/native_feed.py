"""Feeding a recording file to a native decoder (core/ingest) chunk by chunk.

gzip files go in as stored and the core inflates them (zlib, on a second thread); zstd files
(and gzip when the extension was built without zlib, or when asked) are decompressed here by
`iter_decompressed` (the pip `zstandard` package, Python's zlib) and fed as plain bytes, damage
included. Every decoder has begin_file / feed / feed_plain / damage / end_file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from bot4 import _core
from bot4.data.progress import _PIECE, CHUNK, GZIP_MAGIC, ZSTD_MAGIC, iter_decompressed


def compression(path: Path) -> str:
    """"gzip", "zstd" or "plain", from the file's first bytes."""
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head[:2] == GZIP_MAGIC:
        return "gzip"
    return "zstd" if head == ZSTD_MAGIC else "plain"


def feed_file(decoder, path: Path, bar, begin: Callable[[bool], None], chunk_bytes: int,
              python_inflate: bool = False) -> Iterator[None]:
    """Feeds `path` to `decoder`, yielding after each chunk of `chunk_bytes` bytes as stored
    (zstd: rounded up to whole 4 KiB pieces; gzip inflated in Python: 1 MiB); `begin(gzip)` starts
    the file in the decoder (gzip=True: the bytes fed are the gzip stream). end_file() is called at
    the end."""
    kind = compression(path)
    with open(path, "rb") as raw:
        if kind == "gzip" and not python_inflate and _core.ingest.has_zlib:
            begin(True)
            while chunk := raw.read(chunk_bytes):
                bar.update(len(chunk))
                decoder.feed(chunk)
                yield
        elif kind == "plain":
            begin(False)
            while chunk := raw.read(chunk_bytes):
                bar.update(len(chunk))
                decoder.feed_plain(chunk)
                yield
        else:
            begin(False)
            # whole 4 KiB pieces a chunk: the pieces (what damage drops) stay aligned to the file
            # offset whatever chunk_bytes is
            piece = -(-chunk_bytes // _PIECE) * _PIECE
            for out in iter_decompressed(raw, bar, piece if kind == "zstd" else CHUNK):
                if isinstance(out, tuple):
                    decoder.damage(out[0])
                    break
                decoder.feed_plain(out)
                yield
    decoder.end_file()
