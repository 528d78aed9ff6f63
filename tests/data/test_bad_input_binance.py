"""Bad input for the Binance loader: small gzip files built in tmp_path from the first lines of the
real reference recording (read in place), each with one fault injected.

Every fault must be counted under its reason with a sample (file, line number), must not raise,
and must leave what was accepted before and after it as in the clean load.
"""

from __future__ import annotations

import gzip
import itertools
import json
import zlib

import numpy as np
import pytest

from bot4 import _core
from bot4.data.binance import BinanceLoader as PythonLoader
from bot4.data.binance import load_binance as _load_binance
from bot4.data.binance_native import NativeBinanceLoader
from bot4.events import BID, FLAG_CLEAR, FLAG_LAST, FLAG_RESYNC, FLAG_SNAPSHOT

# tests reading recordings take the shared_data fixture (directly or through theirs), which marks them realdata

N_LINES = 3000
_ENGINE = "native"


@pytest.fixture(scope="module", autouse=True, params=["native", "python"])
def engine(request):
    """Every test runs on the native decoder and on the Python reference."""
    global _ENGINE
    _ENGINE = request.param
    yield request.param
    _ENGINE = "native"


def load_binance(*args, **kwargs):
    return _load_binance(*args, engine=_ENGINE, **kwargs)


def BinanceLoader(*args, **kwargs):  # noqa: N802 (stands in for the class of the engine under test)
    return (NativeBinanceLoader if _ENGINE == "native" else PythonLoader)(*args, **kwargs)


@pytest.fixture(scope="module")
def base_lines(shared_data) -> list[bytes]:
    path = shared_data / "binance_hftbacktest" / "usdm" / "btcusdt_20240808.gz"
    with gzip.open(path, "rb") as fh:
        return [line.rstrip(b"\n") for line in itertools.islice(fh, N_LINES)]


def write(tmp_path, lines: list[bytes], name: str = "rec.gz") -> str:
    path = tmp_path / name
    path.write_bytes(gzip.compress(b"\n".join(lines) + b"\n", mtime=0))
    return str(path)


@pytest.fixture(scope="module")
def clean(base_lines, tmp_path_factory, engine):
    path = write(tmp_path_factory.mktemp("clean"), base_lines)
    data = load_binance(path)
    assert data.sequence_gaps == 0
    assert set(data.rejections.counts) == {"covered_by_snapshot"}
    assert len(data.book) > 10_000 and len(data.trades) > 100 and len(data.bbo) > 1000
    return data


def kind(line: bytes) -> str:
    if b"@depth" in line:
        return "depth"
    if b"@trade" in line:
        return "trade"
    if b"@bookTicker" in line:
        return "bbo"
    return "snapshot"


def split(line: bytes) -> tuple[bytes, dict]:
    ts, _, payload = line.partition(b" ")
    return ts, json.loads(payload)


def join(ts: bytes, obj: dict) -> bytes:
    return ts + b" " + json.dumps(obj, separators=(",", ":")).encode()


def depth_lines_after_snapshot(lines: list[bytes], start: int = 200) -> list[int]:
    """0-based indices of depth diffs well after the snapshot (line 55)."""
    return [i for i, line in enumerate(lines) if i >= start and kind(line) == "depth"]


def same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.all(a == b))


def assert_sample(data, reason: str, path: str, line_no: int) -> None:
    source, line, _ = data.rejections.samples[reason]
    assert (source, line) == (path, line_no)


def records_of(book: np.ndarray, u: int) -> np.ndarray:
    return np.flatnonzero(book["seq"] == u)


# --- file-level damage ----------------------------------------------------------------------

@pytest.mark.parametrize("cut", [1, 2_000, 20_000])
def test_truncated_gzip_keeps_everything_before(base_lines, clean, tmp_path, cut):
    full = gzip.compress(b"\n".join(base_lines) + b"\n", mtime=0)
    path = tmp_path / "cut.gz"
    path.write_bytes(full[:-cut])
    loader = BinanceLoader()
    data = loader.load(path)
    assert data.rejections.counts["truncated_file"] == 1
    complete = loader.stats["lines"]
    assert_sample(data, "truncated_file", str(path), complete + 1)
    assert complete <= N_LINES
    if cut > 8:  # past the 8-byte CRC/size trailer some lines are lost
        assert complete < N_LINES
    # What was read is exactly a prefix of the clean load.
    for name in ("book", "trades", "bbo"):
        got, ref = getattr(data, name), getattr(clean, name)
        assert same(got, ref[:len(got)]), name
    assert data.sequence_gaps == 0


def test_corrupt_gzip_keeps_everything_before(base_lines, clean, tmp_path):
    full = bytearray(gzip.compress(b"\n".join(base_lines) + b"\n", mtime=0))
    middle = len(full) // 2
    full[middle:middle + 64] = bytes(64)
    path = tmp_path / "corrupt.gz"
    path.write_bytes(bytes(full))
    loader = BinanceLoader()
    data = loader.load(path)
    assert data.rejections.counts["corrupt_file"] == 1
    assert 0 < loader.stats["lines"] < N_LINES
    assert_sample(data, "corrupt_file", str(path), loader.stats["lines"] + 1)
    assert len(data.book) > 0
    for name in ("book", "trades", "bbo"):
        got, ref = getattr(data, name), getattr(clean, name)
        assert same(got, ref[:len(got)]), name


def test_plain_text_and_trailing_partial_line(base_lines, clean, tmp_path):
    path = tmp_path / "plain.txt"
    path.write_bytes(b"\n".join(base_lines))  # no final newline
    data = load_binance(path)
    for name in ("book", "trades", "bbo"):
        assert same(getattr(data, name), getattr(clean, name)), name


def test_multi_member_gzip(base_lines, clean, tmp_path):
    half = len(base_lines) // 2
    path = tmp_path / "members.gz"
    path.write_bytes(gzip.compress(b"\n".join(base_lines[:half]) + b"\n", mtime=0)
                     + gzip.compress(b"\n".join(base_lines[half:]) + b"\n", mtime=0))
    data = load_binance(path)
    assert not set(data.rejections.counts) - {"covered_by_snapshot"}
    for name in ("book", "trades", "bbo"):
        assert same(getattr(data, name), getattr(clean, name)), name


# --- line-level damage (inserted lines: nothing else may change) ---------------------------

@pytest.mark.parametrize("bad, reason", [
    (b'1723161255088176367 {"stream":"btcusdt@trade","data":{"e":"trade","E":17231', "malformed_json"),
    (b"1723161255088176367 not json at all", "malformed_json"),
    (b"no-space-and-no-timestamp", "malformed_line"),
    (b'17231612550x8176367 {"stream":"btcusdt@trade"}', "malformed_line"),
    (b'1723161255088176367 {"stream":"btcusdt@aggTrade","data":{"e":"aggTrade"}}', "unknown_message"),
    (b'1723161255088176367 {"result":null,"id":1}', "unknown_message"),
    (b'1723161255088176367 {"stream":"btcusdt@trade","data":{"e":"trade","p":"1"}}', "bad_schema"),
])
def test_inserted_bad_line_is_counted_and_nothing_else_changes(base_lines, clean, tmp_path, bad, reason):
    at = 1000
    lines = base_lines[:at] + [bad] + base_lines[at:]
    path = write(tmp_path, lines)
    data = load_binance(path)
    assert data.rejections.counts[reason] == 1
    assert_sample(data, reason, path, at + 1)
    for name in ("book", "trades", "bbo"):
        assert same(getattr(data, name), getattr(clean, name)), name
    assert data.sequence_gaps == 0


# --- bad price levels: only the level is dropped, the message keeps its place in the chain ----

@pytest.mark.parametrize("field, value, reason", [
    ("price", "abc", "bad_number"),
    ("price", "NaN", "bad_number"),
    ("price", "1e999", "bad_number"),
    ("price", "1e999999999", "bad_number"),
    ("price", "", "bad_number"),
    ("price", "61800.25", "off_grid"),
    ("price", "-61800.20", "nonpositive_price"),
    ("qty", "-0.010", "negative_qty"),
    ("qty", "0.0005", "off_grid"),
    ("qty", "inf", "bad_number"),
])
def test_bad_level_drops_that_level_only(base_lines, clean, tmp_path, field, value, reason):
    idx = next(i for i in depth_lines_after_snapshot(base_lines) if len(split(base_lines[i])[1]["data"]["b"]) >= 3)
    ts, obj = split(base_lines[idx])
    level = obj["data"]["b"][1]
    original_price = clean.spec.price_ticks(level[0])
    level[0 if field == "price" else 1] = value
    lines = list(base_lines)
    lines[idx] = join(ts, obj)
    path = write(tmp_path, lines)
    data = load_binance(path)
    assert data.rejections.counts[reason] == 1
    assert_sample(data, reason, path, idx + 1)
    assert value in data.rejections.samples[reason][2]
    # The clean book minus exactly that record.
    u = obj["data"]["u"]
    rec = records_of(clean.book, u)
    dropped = rec[(clean.book["side"][rec] == BID) & (clean.book["price"][rec] == original_price)]
    assert len(dropped) == 1
    assert same(data.book, np.delete(clean.book, dropped))
    assert data.sequence_gaps == 0
    assert same(data.trades, clean.trades) and same(data.bbo, clean.bbo)


def test_bad_level_at_message_end_moves_the_last_flag(base_lines, clean, tmp_path):
    idx = next(i for i in depth_lines_after_snapshot(base_lines) if len(split(base_lines[i])[1]["data"]["a"]) >= 2)
    ts, obj = split(base_lines[idx])
    obj["data"]["a"][-1][0] = "NaN"
    lines = list(base_lines)
    lines[idx] = join(ts, obj)
    data = load_binance(write(tmp_path, lines))
    rec = records_of(clean.book, obj["data"]["u"])
    expect = np.delete(clean.book, rec[-1])
    expect["flags"][rec[-2]] |= FLAG_LAST
    assert same(data.book, expect)


def test_bad_number_in_trade_and_book_ticker_drops_the_record(base_lines, clean, tmp_path):
    lines = list(base_lines)
    t_idx = next(i for i in range(200, N_LINES) if kind(lines[i]) == "trade")
    b_idx = next(i for i in range(200, N_LINES) if kind(lines[i]) == "bbo")
    ts, obj = split(lines[t_idx])
    obj["data"]["p"] = "NaN"
    lines[t_idx] = join(ts, obj)
    trade_id = obj["data"]["t"]
    ts, obj = split(lines[b_idx])
    obj["data"]["A"] = "-1.000"
    lines[b_idx] = join(ts, obj)
    bbo_u = obj["data"]["u"]
    path = write(tmp_path, lines)
    data = load_binance(path)
    assert data.rejections.counts["bad_number"] == 1 and data.rejections.counts["negative_qty"] == 1
    assert_sample(data, "bad_number", path, t_idx + 1)
    assert_sample(data, "negative_qty", path, b_idx + 1)
    assert same(data.trades, clean.trades[clean.trades["seq"] != trade_id])
    assert same(data.bbo, clean.bbo[clean.bbo["seq"] != bbo_u])
    assert same(data.book, clean.book)


# --- sequence faults --------------------------------------------------------------------------

def test_duplicated_diff_and_trade_are_dropped(base_lines, clean, tmp_path):
    d_idx = depth_lines_after_snapshot(base_lines)[5]
    t_idx = next(i for i in range(200, N_LINES) if kind(base_lines[i]) == "trade")
    lines = list(base_lines)
    lines.insert(max(d_idx, t_idx) + 1, base_lines[max(d_idx, t_idx)])
    lines.insert(min(d_idx, t_idx) + 1, base_lines[min(d_idx, t_idx)])
    path = write(tmp_path, lines)
    data = load_binance(path)
    assert data.rejections.counts["duplicate_diff"] == 1
    assert data.rejections.counts["duplicate_trade"] == 1
    assert_sample(data, "duplicate_diff", path, d_idx + 2 + (d_idx > t_idx))
    assert data.sequence_gaps == 0
    for name in ("book", "trades", "bbo"):
        assert same(getattr(data, name), getattr(clean, name)), name


def diff_u(line: bytes) -> int:
    return split(line)[1]["data"]["u"]


def test_dropped_diff_is_a_gap_and_the_book_waits_for_a_snapshot(base_lines, clean, tmp_path):
    depth = depth_lines_after_snapshot(base_lines)
    gone = depth[10]
    lines = base_lines[:gone] + base_lines[gone + 1:]
    path = write(tmp_path, lines)
    data = load_binance(path)
    assert data.sequence_gaps == 1
    assert data.rejections.counts["sequence_gap"] == 1
    assert_sample(data, "sequence_gap", path, depth[11])  # the next diff, one line up
    # Everything before the gap is intact; no book record after it (no snapshot follows).
    first_lost = records_of(clean.book, diff_u(base_lines[gone]))[0]
    assert same(data.book, clean.book[:first_lost])
    assert data.rejections.counts["awaiting_snapshot"] == len(depth) - 11
    assert same(data.trades, clean.trades) and same(data.bbo, clean.bbo)


def test_dropped_diff_with_on_gap_continue_flags_resync(base_lines, clean, tmp_path):
    depth = depth_lines_after_snapshot(base_lines)
    gone = depth[10]
    lines = base_lines[:gone] + base_lines[gone + 1:]
    data = load_binance(write(tmp_path, lines), on_gap="continue")
    assert data.sequence_gaps == 1 and data.rejections.counts["sequence_gap"] == 1
    lost = records_of(clean.book, diff_u(base_lines[gone]))
    expect = np.delete(clean.book, lost)
    resync = records_of(expect, diff_u(base_lines[depth[11]]))
    expect["flags"][resync] |= FLAG_RESYNC
    assert same(data.book, expect)
    assert "awaiting_snapshot" not in data.rejections.counts


def test_swapped_diffs_out_of_order(base_lines, clean, tmp_path):
    depth = depth_lines_after_snapshot(base_lines)
    a, b = depth[20], depth[21]
    lines = list(base_lines)
    lines[a], lines[b] = lines[b], lines[a]
    path = write(tmp_path, lines)
    # Default: the later diff arrives first -> gap -> wait for a snapshot.
    data = load_binance(path)
    assert data.sequence_gaps == 1
    assert_sample(data, "sequence_gap", path, a + 1)
    first_lost = records_of(clean.book, diff_u(base_lines[a]))[0]
    assert same(data.book, clean.book[:first_lost])
    assert data.rejections.counts["awaiting_snapshot"] == len(depth) - 20
    # Continue: the later diff is applied (flagged), the earlier one is then stale.
    data = load_binance(path, on_gap="continue")
    assert data.sequence_gaps == 1
    assert data.rejections.counts["stale_diff"] == 1
    assert_sample(data, "stale_diff", path, b + 1)
    expect = np.delete(clean.book, records_of(clean.book, diff_u(base_lines[a])))
    expect["flags"][records_of(expect, diff_u(base_lines[b]))] |= FLAG_RESYNC
    assert same(data.book, expect)


def snapshot_line(clean, upto_u: int, ts: bytes, e: int, t: int) -> bytes:
    """A REST snapshot line of the clean book as it stands after the diff whose u is `upto_u`."""
    books = _core.book.BookSet()
    iid = clean.spec.instrument_id
    books.add(iid)
    books.apply(clean.book[:records_of(clean.book, upto_u)[-1] + 1])
    book = books.book(iid)
    spec = clean.spec
    side = {s: [[spec.price_str(int(p)), spec.qty_str(int(q))] for p, q in book.depth(s, 100_000)]
            for s in ("bid", "ask")}
    obj = {"lastUpdateId": upto_u, "E": e, "T": t, "bids": side["bid"], "asks": side["ask"]}
    return ts + b" " + json.dumps(obj, separators=(",", ":")).encode()


def test_new_snapshot_after_gap_resyncs_the_book(base_lines, clean, tmp_path):
    """Gap, then a fresh REST snapshot: buffered diffs older than it are dropped, the one that
    bridges it is applied, the chain resumes, and the book is right again."""
    depth = depth_lines_after_snapshot(base_lines)
    gone = depth[10]
    ts, d13 = split(base_lines[depth[13]])
    snap = snapshot_line(clean, d13["data"]["u"], ts, d13["data"]["E"], d13["data"]["T"])
    lines = base_lines[:gone] + base_lines[gone + 1:depth[15] + 1] + [snap] + base_lines[depth[15] + 1:]
    data = load_binance(write(tmp_path, lines))
    assert data.sequence_gaps == 1
    assert data.rejections.counts["covered_by_snapshot"] == clean.rejections.counts["covered_by_snapshot"] + 2
    assert "awaiting_snapshot" not in data.rejections.counts
    snaps = np.flatnonzero(data.book["flags"] & FLAG_SNAPSHOT)
    second = snaps[snaps > 2000]
    assert np.all(data.book["flags"][second] & FLAG_RESYNC)
    assert data.book["flags"][second[0]] & FLAG_CLEAR
    assert not np.any(data.book["flags"][snaps[:2000]] & FLAG_RESYNC)
    # After the resync snapshot and the re-applied bridging diff, the stream equals the clean one.
    u13 = d13["data"]["u"]
    tail = data.book[data.book["seq"] > u13]
    assert same(tail, clean.book[clean.book["seq"] > u13])
    tops = []
    for d in (data, clean):
        books = _core.book.BookSet()
        books.add(d.spec.instrument_id)
        books.apply(d.book)
        tops.append(books.book(d.spec.instrument_id).top())
        assert books.counters()["by_status"]["crossed"] == 0
    assert tops[0] == tops[1]


def test_zlib_error_types_are_not_leaked(tmp_path):
    """Garbage that only looks like gzip (magic bytes then junk) is counted, not raised."""
    path = tmp_path / "junk.gz"
    path.write_bytes(b"\x1f\x8b" + bytes(range(256)) * 4)
    data = BinanceLoader(market="usdm").load(path)
    assert data.rejections.counts["corrupt_file"] == 1
    assert len(data.book) == len(data.trades) == len(data.bbo) == 0
    with pytest.raises(zlib.error):  # (sanity: the bytes really are not inflatable)
        zlib.decompress(path.read_bytes(), wbits=31)
