"""Fuzz bot4.data.load_databento_mbo (DBN MBO, plain or zstd) and the feature engine on its output.

Seeds are cut at run time from ../shared/data/databento_cme (metadata plus the first records;
BOT4_DATA overrides the folder), never stored in the repository; without the data the fuzzer
starts from an empty DBN header.

    python fuzz/fuzz_databento.py -max_total_time=30      # bounded (CI)
    python fuzz/fuzz_databento.py -runs=1000000           # >= 1M inputs
"""

import struct

import zstandard

from bot4.data.databento_mbo import load_databento_mbo
from bot4.errors import Bot4Error

import _harness
from _features import run_features

_ZSTD = zstandard.ZstdCompressor(level=1)


def seeds() -> list[bytes]:
    out = [b"\x00DBN\x01" + struct.pack("<I", 0)]
    src = _harness.data_dir() / "databento_cme" / "esh4-glbx-mdp3-20231225.mbo.dbn.zst"
    if src.is_file():
        raw = zstandard.ZstdDecompressor().stream_reader(src.read_bytes(), read_across_frames=True).read()
        meta_end = 8 + struct.unpack_from("<I", raw, 4)[0]
        pos = meta_end
        for n_records in (1, 8, 40):  # records carry their length (in 4-byte words) first
            while pos < len(raw) and n_records:
                pos += raw[pos] * 4
                n_records -= 1
            out.append(b"\x00" + raw[:pos])
            out.append(b"\x01" + raw[:pos])
    return out


def one_input(data: bytes) -> None:
    if not data:
        return
    mode, body = data[0], data[1:]
    path = _harness.scratch("fuzz.mbo.dbn.zst" if mode & 1 else "fuzz.mbo.dbn")
    path.write_bytes(_ZSTD.compress(body) if mode & 1 else body)
    try:
        md = load_databento_mbo(path, tick_size="0.25")
    except Bot4Error:
        return
    run_features(md)


if __name__ == "__main__":
    _harness.main(__file__, seeds, one_input)
