"""bot4.data.tardis.iter_tardis (the native decoder, part by part) and the merged row order of
several Tardis files: the parts concatenated equal load_tardis's arrays exactly at any chunk size,
both engines merge files the same way, L2 messages and lines carry across chunk boundaries, and
rejections keep their file and line."""

from __future__ import annotations

import gzip
import random
from pathlib import Path

import numpy as np
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot4.data.market_data import MarketData
from bot4.data.tardis import iter_tardis, load_tardis
from bot4.errors import ConfigError
from bot4.events import FLAG_CLEAR, FLAG_LAST, FLAG_SNAPSHOT
from bot4.instrument import InstrumentSpec
from native_parity import assert_same_data

L2 = "exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount"
TRADES = "exchange,symbol,timestamp,local_timestamp,id,side,price,amount"
QUOTES = "exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_price,bid_amount"
SNAP = ("exchange,symbol,timestamp,local_timestamp,asks[0].price,asks[0].amount,bids[0].price,bids[0].amount,"
        "asks[1].price,asks[1].amount,bids[1].price,bids[1].amount")
T0 = 1_600_000_000_000_000  # µs
BAD = ["deribit,BTC,x,1,false,bid,1,1", "deribit,BTC,{t},{t},false,middle,100.5,1", "deribit,BTC,{t},{t},false,bid,100.25,1",
       "deribit,ZZZ,{t},{t},false,bid,100.5,1", "deribit,BTC,{t}", '"deribit",BTC,{t},{t},false,"ask",101,2']


def l2_rows(rng: random.Random, symbol: str, n: int, bad: float) -> list[str]:
    """Messages of 1-4 rows sharing a time; a snapshot run first and now and then; local time
    now and then a little behind (running maximum) and often equal to the last."""
    out, t = [], T0 + rng.randrange(0, 5_000)
    snap = True
    while len(out) < n:
        t += rng.choice([0, 0, 1, 7, 250, -3])
        if not snap and rng.random() < 0.03:
            snap = True
        for _ in range(rng.randint(1, 4)):
            if rng.random() < bad:
                out.append(rng.choice(BAD).format(t=t))
                continue
            side = rng.choice(["bid", "ask"])
            price = 100 + rng.randrange(0, 40) * 0.5 + (0 if side == "bid" else 20)
            out.append(f"deribit,{symbol},{t - 90},{t},{'true' if snap else 'false'},{side},{price},{rng.randrange(0, 9)}")
        snap = snap and rng.random() < 0.5
    return out


def trade_rows(rng: random.Random, symbol: str, n: int, bad: float) -> list[str]:
    out, t = [], T0 + rng.randrange(0, 5_000)
    for i in range(n):
        t += rng.choice([0, 3, 400, 1000])
        if rng.random() < bad:
            out.append(rng.choice(BAD).format(t=t))
        else:
            out.append(f"deribit,{symbol},{t - 50},{t},{1000 + i},{rng.choice(['buy', 'sell'])},"
                       f"{110 + rng.randrange(0, 10) * 0.5},{rng.randrange(1, 5)}")
    return out


def quote_rows(rng: random.Random, symbol: str, n: int) -> list[str]:
    out, t = [], T0 + rng.randrange(0, 5_000)
    for _ in range(n):
        t += rng.choice([0, 11, 600])
        out.append(f"deribit,{symbol},{t},{t},{rng.randrange(1, 9)},{121 + rng.randrange(0, 4)},"
                   f"{119 - rng.randrange(0, 4)},{rng.randrange(1, 9)}")
    return out


def snapshot_rows(rng: random.Random, symbol: str, n: int) -> list[str]:
    out, t = [], T0 + rng.randrange(0, 5_000)
    for _ in range(n):
        t += rng.choice([0, 5, 900])
        out.append(f"deribit,{symbol},{t},{t},121,{rng.randrange(1, 9)},119,{rng.randrange(1, 9)},"
                   f"122,{rng.randrange(1, 9)},118,{rng.randrange(1, 9)}")
    return out


def write(path: Path, header: str, rows: list[str], codec: str) -> Path:
    body = (header + "\n" + "\n".join(rows) + "\n").encode()
    if codec == "gz":
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(body, mtime=0))
    elif codec == "zst":
        path = path.with_name(path.name + ".zst")
        path.write_bytes(zstandard.compress(body))
    else:
        path.write_bytes(body)
    return path


def recording(tmp_path: Path, seed: int, codecs: list[str], bad: float = 0.05) -> list[Path]:
    """Five overlapping files: BTC L2 and trades, ETH L2, quotes and top-2 snapshots."""
    rng = random.Random(seed)
    return [write(tmp_path / "btc_l2.csv", L2, l2_rows(rng, "BTC", 300, bad), codecs[0]),
            write(tmp_path / "btc_trades.csv", TRADES, trade_rows(rng, "BTC", 80, bad), codecs[1]),
            write(tmp_path / "eth_l2.csv", L2, l2_rows(rng, "ETH", 150, bad), codecs[2]),
            write(tmp_path / "eth_quotes.csv", QUOTES, quote_rows(rng, "ETH", 60), codecs[3]),
            write(tmp_path / "eth_snap.csv", SNAP, snapshot_rows(rng, "ETH", 40), codecs[4])]


SPECS = {s: InstrumentSpec(instrument_id=i, symbol=s, venue="deribit", tick_size="0.5", lot_size="1")
         for i, s in ((1, "BTC"), (2, "ETH"))}


def joined(parts: list[MarketData]) -> MarketData:
    """The parts' arrays concatenated, with the last part's instruments and counters."""
    last = parts[-1]
    return MarketData(specs=last.specs, book=np.concatenate([p.book for p in parts]),
                      trades=np.concatenate([p.trades for p in parts]), bbo=np.concatenate([p.bbo for p in parts]),
                      rejections=last.rejections, sequence_gaps=last.sequence_gaps, sources=last.sources,
                      venue=last.venue)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10**6), chunk=st.integers(1, 3000),
       codecs=st.lists(st.sampled_from(["plain", "gz", "zst"]), min_size=5, max_size=5),
       n_files=st.integers(1, 5), infer=st.booleans())
def test_parts_concatenated_equal_the_whole_load_at_any_chunk_size(tmp_path, seed, chunk, codecs, n_files, infer):
    files = recording(tmp_path, seed, codecs)[:n_files]
    spec = None if infer else SPECS
    whole = load_tardis(files, spec)
    assert_same_data(whole, load_tardis(files, spec, engine="python"))
    parts = list(iter_tardis(files, spec, chunk_bytes=chunk))
    assert_same_data(joined(parts), whole)
    assert len(whole.book) + len(whole.trades) + len(whole.bbo) > 0
    for p in parts[:-1]:  # every part but the last holds records, and its messages whole
        assert len(p.book) + len(p.trades) + len(p.bbo) > 0
        assert len(p.book) == 0 or p.book["flags"][-1] & FLAG_LAST


def test_merged_order_is_receive_order_across_files(tmp_path):
    """Files that overlap in time come out interleaved by local time (ties to the file given
    first), each book message whole, seq increasing per instrument as the L2 book requires."""
    rng = random.Random(3)
    files = [write(tmp_path / "btc_l2.csv", L2, l2_rows(rng, "BTC", 400, 0.0), "plain"),
             write(tmp_path / "eth_l2.csv", L2, l2_rows(rng, "ETH", 400, 0.0), "gz"),
             write(tmp_path / "eth_snap.csv", SNAP, snapshot_rows(rng, "ETH", 50), "plain"),
             write(tmp_path / "btc_trades.csv", TRADES, trade_rows(rng, "BTC", 100, 0.0), "zst")]
    data = load_tardis(files, SPECS)
    assert data.rejections.total == 0
    for name in ("book", "trades"):
        ts = getattr(data, name)["ts_local"]
        assert len(ts) and np.all(np.diff(np.maximum.accumulate(ts)) >= 0)
    book = data.book
    # both instruments are in the book, interleaved (not one file after the other)
    first_eth, last_btc = np.flatnonzero(book["instrument"] == 2)[0], np.flatnonzero(book["instrument"] == 1)[-1]
    assert first_eth < last_btc
    for iid in (1, 2):
        mine = book[book["instrument"] == iid]
        assert np.all(np.diff(mine["seq"]) >= 0)
    # a message is contiguous: FLAG_LAST closes each, and the next record opens a new seq
    lasts = np.flatnonzero(book["flags"] & FLAG_LAST)
    assert lasts[-1] == len(book) - 1
    assert np.all(book["seq"][lasts[:-1] + 1] != book["seq"][lasts[:-1]])
    # the keys the reference merges by: each file's running maximum of local time, ties to the earlier file
    assert_same_data(data, load_tardis(files, SPECS, engine="python"))


def test_a_message_of_one_file_ends_where_another_file_opens_one(tmp_path):
    """Rows of one L2 message with a snapshot row of another file at the same local time between
    them in the merged order: two messages, both engines."""
    t = T0
    l2 = write(tmp_path / "l2.csv", L2, [f"deribit,BTC,{t},{t},false,bid,100,1",
                                         f"deribit,BTC,{t + 1},{t + 1},false,bid,100.5,1",
                                         f"deribit,BTC,{t + 1},{t + 1},false,ask,120,1"], "plain")
    snap = write(tmp_path / "snap.csv", SNAP, [f"deribit,BTC,{t},{t},121,1,119,1,122,1,118,1"], "plain")
    for files in ([l2, snap], [snap, l2]):
        data = load_tardis(files, SPECS)
        assert_same_data(data, load_tardis(files, SPECS, engine="python"))
        assert_same_data(joined(list(iter_tardis(files, SPECS, chunk_bytes=5))), data)
        flags = data.book["flags"]
        assert int(np.count_nonzero(flags & FLAG_LAST)) == 3  # row 1, the snapshot, rows 2-3
        assert np.count_nonzero(flags & FLAG_CLEAR) == 1 and np.count_nonzero(flags & FLAG_SNAPSHOT) == 4
    first = load_tardis([l2, snap], SPECS).book
    # l2 row 1 ties with the snapshot and goes first (the earlier file), then bids and asks of the
    # snapshot from the touch out, then l2 rows 2-3
    assert first["price"].tolist() == [200, 238, 236, 242, 244, 201, 240]


@pytest.mark.parametrize("codec", ["plain", "gz", "zst"])
@pytest.mark.parametrize("chunk", [7, 333, 65536])
def test_rejections_name_the_file_and_line_across_chunk_boundaries(tmp_path, codec, chunk):
    rng = random.Random(5)
    rows = l2_rows(rng, "BTC", 4000, 0.0)
    rows[3210] = "deribit,BTC,1,1,false,middle,100.5,1"
    trades = trade_rows(rng, "BTC", 2000, 0.0)
    trades[1500] = f"deribit,BTC,{T0},{T0},{10**20},buy,110,1"
    files = [write(tmp_path / "l2.csv", L2, rows, codec), write(tmp_path / "trades.csv", TRADES, trades, codec)]
    parts = list(iter_tardis(files, SPECS, chunk_bytes=chunk))
    samples = parts[-1].rejections.samples
    assert samples["bad_side"] == (str(files[0]), 3212, rows[3210])  # line 1 is the header
    assert samples["bad_id"] == (str(files[1]), 1502, trades[1500])
    assert parts[-1].rejections.as_dict() == {"bad_id": 1, "bad_side": 1}
    assert_same_data(joined(parts), load_tardis(files, SPECS))
    if chunk < 1000 and codec != "zst":  # zstd is read in whole 4 KiB pieces
        assert len(parts) > 10


def test_a_truncated_file_keeps_its_rows_and_is_counted_at_its_line(tmp_path):
    rng = random.Random(9)
    rows = l2_rows(rng, "BTC", 3000, 0.0)
    whole = write(tmp_path / "l2.csv", L2, rows, "gz")
    cut = tmp_path / "cut.csv.gz"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 2 // 3])
    trades = write(tmp_path / "trades.csv", TRADES, trade_rows(rng, "BTC", 500, 0.0), "plain")
    data = load_tardis([cut, trades], SPECS)
    assert data.rejections.counts["truncated_file"] == 1
    assert_same_data(data, load_tardis([cut, trades], SPECS, engine="python"))
    for chunk in (10, 4096):
        assert_same_data(joined(list(iter_tardis([cut, trades], SPECS, chunk_bytes=chunk))), data)
    file, line, _ = data.rejections.samples["truncated_file"]
    # every complete line before the damage is one level (the header is line 1)
    assert file == str(cut) and line == len(data.book) + 2 and 0 < len(data.book) < len(rows)


def test_chunk_bytes_must_be_positive(tmp_path):
    path = write(tmp_path / "t.csv", TRADES, trade_rows(random.Random(1), "BTC", 3, 0.0), "plain")
    with pytest.raises(ConfigError, match="chunk_bytes"):
        list(iter_tardis(path, chunk_bytes=0))


@pytest.mark.parametrize("chunk", [64, 2048, 8 << 20])
def test_stream_parts_replays_tardis_files_as_the_whole_load(tmp_path, chunk):
    """bot4.sources.stream_parts reads Tardis files part by part (`--stream`); replayed, the parts
    give the whole load's replay."""
    from bot4.replay import replay, replay_parts
    from bot4.sources import stream_parts

    files = recording(tmp_path, 11, ["gz", "plain", "zst", "plain", "gz"])
    stream = stream_parts(files, chunk_bytes=chunk)
    assert stream.venue == "tardis"
    streamed = replay_parts(stream.parts)
    whole = replay(load_tardis(files))
    timings = {"seconds", "load_seconds", "book_events_per_second"}
    a, b = streamed.as_json(), whole.as_json()
    assert {k: v for k, v in a.items() if k not in timings} == {k: v for k, v in b.items() if k not in timings}
    assert a["level_changes"] == len(load_tardis(files).book) > 0


def test_cli_replay_stream_reads_tardis_files(tmp_path, capsys):
    import json

    from bot4.cli import main

    files = [str(p) for p in recording(tmp_path, 12, ["gz", "plain", "plain", "zst", "plain"])]
    assert main(["replay", "--stream", "--data", *files, "--json", "-q"]) == 0
    streamed = json.loads(capsys.readouterr().out)
    assert main(["replay", "--data", *files, "--json", "-q"]) == 0
    whole = json.loads(capsys.readouterr().out)
    timings = {"seconds", "load_seconds", "book_events_per_second"}
    assert {k: v for k, v in streamed.items() if k not in timings} == {k: v for k, v in whole.items()
                                                                        if k not in timings}
