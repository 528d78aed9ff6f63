"""Reading recorded files for the loaders: progress over compressed bytes, gzip-or-plain line
iteration that survives a truncated or corrupt tail.

`iter_lines` decompresses with zlib directly (not gzip.GzipFile), or zstd through the pip
`zstandard` package, so that a file cut off mid-stream still yields every complete line decoded
before the damage; the damage itself is reported once through the `on_damage` callback with the
number of the first line that could not be read.
"""

from __future__ import annotations

import sys
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from tqdm import tqdm

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
CHUNK = 1 << 20
_PIECE = 4096  # zstd input per decompress call: a corrupt frame loses at most this piece's output


class _NoProgress:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass

    def set_postfix_str(self, s: str) -> None:
        pass


def byte_progress(paths: Sequence[Path], enabled: bool, desc: str):
    """A tqdm bar over the on-disk (compressed) bytes of `paths`, on stderr; a no-op when disabled."""
    if not enabled:
        return _NoProgress()
    total = sum(p.stat().st_size for p in paths)
    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc,
                file=sys.stderr, leave=False, dynamic_ncols=True)


def iter_decompressed(raw, bar, chunk_bytes: int = CHUNK) -> Iterator[bytes | tuple[str]]:
    """The bytes of an open binary file, decompressed when it is gzip (multi-member) or zstd
    (multi-frame), in chunks of `chunk_bytes` bytes as stored (a multiple of 4 KiB keeps the
    damage contract below the same whatever the size).

    Yields bytes chunks; if the compressed stream is corrupt or ends early, yields everything
    decoded before the damage (for a corrupt chunk, up to its last good 4 KiB input piece) and then
    one final 1-tuple ("corrupt_file",) or ("truncated_file",).
    """
    head = raw.read(4)
    raw.seek(0)
    if head == ZSTD_MAGIC:
        yield from _iter_zstd(raw, bar, chunk_bytes)
        return
    head = head[:2]
    dec = zlib.decompressobj(wbits=31) if head == GZIP_MAGIC else None
    damage: str | None = None
    while True:
        chunk = raw.read(chunk_bytes)
        if not chunk:
            break
        bar.update(len(chunk))
        if dec is None:
            yield chunk
            continue
        backup = dec.copy()
        parts: list[bytes] = []
        try:
            dec = _inflate(dec, chunk, parts)
        except zlib.error:
            # Redo this chunk in small pieces to keep what precedes the damage.
            parts = []
            try:
                for i in range(0, len(chunk), 4096):
                    backup = _inflate(backup, chunk[i:i + 4096], parts)
            except zlib.error:
                pass
            damage = "corrupt_file"
        yield b"".join(parts)
        if damage is not None:
            break
    if damage is None and dec is not None and not dec.eof:
        damage = "truncated_file"
    if damage is not None:
        yield (damage,)


def iter_lines(path: Path, bar,
               on_damage: Callable[[str, int, str], None]) -> Iterator[tuple[int, bytes]]:
    """Yield (1-based line number, line bytes without the newline) of a gzip or plain text file.

    Multi-member gzip files are read through. If the gzip stream ends early (truncated) or is
    corrupt, every complete line before the damage is yielded, the incomplete tail is dropped and
    `on_damage(kind, line_no, text)` is called once with kind "truncated_file" or "corrupt_file".
    A trailing CR is stripped.
    """
    with open(path, "rb") as raw:
        tail = b""
        line_no = 0
        damage: str | None = None
        for out in iter_decompressed(raw, bar):
            if isinstance(out, tuple):
                damage = out[0]
                break
            data = tail + out if tail else out
            lines = data.split(b"\n")
            tail = lines.pop()
            for line in lines:
                line_no += 1
                yield line_no, line[:-1] if line.endswith(b"\r") else line
        if damage is not None:
            on_damage(damage, line_no + 1, tail[:200].decode("utf-8", "replace"))
        elif tail:
            line_no += 1
            yield line_no, tail[:-1] if tail.endswith(b"\r") else tail


def _inflate(dec, data: bytes, parts: list[bytes]):
    """Feed `data` to a gzip decompressor, starting new members as they come; output appended to
    `parts` as it is produced. Returns the decompressor of the current member."""
    parts.append(dec.decompress(data))
    while dec.eof and dec.unused_data:
        rest = dec.unused_data
        if not rest.startswith(GZIP_MAGIC):
            if rest.strip(b"\x00"):
                raise zlib.error("trailing garbage after gzip member")
            break  # zero padding after the last member
        dec = zlib.decompressobj(wbits=31)
        parts.append(dec.decompress(rest))
    return dec


def _iter_zstd(raw, bar, chunk_bytes: int = CHUNK) -> Iterator[bytes | tuple[str]]:
    """iter_decompressed for zstd: 4 KiB input pieces, so a corrupt frame drops only the output of
    the piece zstd refused; a new frame may follow the end of one (concatenated .zst files)."""
    import zstandard

    dec = zstandard.ZstdDecompressor().decompressobj()
    damage: str | None = None
    while True:
        chunk = raw.read(chunk_bytes)
        if not chunk:
            break
        bar.update(len(chunk))
        parts: list[bytes] = []
        try:
            for i in range(0, len(chunk), _PIECE):
                data = chunk[i:i + _PIECE]
                while data:
                    if dec.eof:
                        dec = zstandard.ZstdDecompressor().decompressobj()
                    parts.append(dec.decompress(data))
                    data = dec.unused_data if dec.eof else b""
        except zstandard.ZstdError:
            damage = "corrupt_file"
        yield b"".join(parts)
        if damage is not None:
            break
    if damage is None and not dec.eof:
        damage = "truncated_file"
    if damage is not None:
        yield (damage,)
