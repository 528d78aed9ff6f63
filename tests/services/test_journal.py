"""Journal: records come back in order across rotated segments; a crash's torn tail is reported,
then cut off (and kept aside) when the journal is reopened, losing no accepted record; CRC damage
is found; fsync policies behave as specified and bad ones are refused."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from bot4 import contracts as c
from bot4.errors import ConfigError, JournalCorruptError, JournalLockedError
from bot4.services import journal as jn
from bot4.services.journal import FsyncPolicy, JournalReader, JournalWriter


def _payloads(n: int, size: int = 20) -> list[bytes]:
    return [f"{i:06d}".encode() * (1 + (i * 7) % size) for i in range(n)]


def _write(path: Path, payloads: list[bytes], **kw) -> JournalWriter:
    with JournalWriter(path, **kw) as w:
        for p in payloads:
            w.append(p)
    return w


def _segments(path: Path) -> list[Path]:
    return [p for _, p in jn.list_segments(path)]


def test_round_trip_across_rotation(tmp_path):
    payloads = _payloads(500)
    w = _write(tmp_path, payloads, max_segment_bytes=4096, fsync="never")
    segs = _segments(tmp_path)
    assert len(segs) > 5 and w.counters["rotations"] == len(segs) - 1
    assert all(p.stat().st_size <= 4096 for p in segs)
    r = JournalReader(tmp_path)
    entries = list(r.entries())
    assert [e.payload for e in entries] == payloads
    assert [e.segment for e in entries] == sorted(e.segment for e in entries)
    assert r.damage is None and r.counters["records"] == 500 and r.counters["segments"] == len(segs)
    assert r.counters["bytes"] == w.counters["bytes"]
    # reopening appends after the last record, in the last segment
    _write(tmp_path, [b"more"], max_segment_bytes=4096)
    assert list(JournalReader(tmp_path)) == payloads + [b"more"]


def test_append_many_matches_append(tmp_path):
    payloads = _payloads(300)
    _write(tmp_path / "a", payloads, max_segment_bytes=2048)
    with JournalWriter(tmp_path / "b", max_segment_bytes=2048) as w:
        w.append_many(payloads[:100])
        w.append_many(iter(payloads[100:]))
    assert list(JournalReader(tmp_path / "b")) == payloads
    a, b = _segments(tmp_path / "a"), _segments(tmp_path / "b")
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]


def test_a_record_larger_than_a_segment_gets_its_own(tmp_path):
    big = b"x" * 5000
    _write(tmp_path, [b"a", big, b"b"], max_segment_bytes=1024)
    assert list(JournalReader(tmp_path)) == [b"a", big, b"b"]
    assert len(_segments(tmp_path)) == 3


def test_contract_frames_journal_and_replay_byte_for_byte(tmp_path):
    orders, journal = c.Codec(c.ORDER_REQUESTS), c.Codec(c.JOURNAL)
    sent = [orders.encode(c.OrderIntent(ts=i, id=i, instrument=1, side=i % 2, type=0, price=100 + i, qty=1,
                                        trace=c.new_trace_id())) for i in range(50)]
    with JournalWriter(tmp_path, max_segment_bytes=1024) as w:
        for i, frame in enumerate(sent):
            w.append(journal.encode(c.JournalEntry(ts=i, seq=i, service="engine", direction="out",
                                                   topic=c.ORDER_REQUESTS, frame=memoryview(frame))))
    entries = [journal.decode_strict(p) for p in JournalReader(tmp_path)]
    assert [bytes(e.frame) for e in entries] == sent  # type: ignore[attr-defined]
    assert [orders.decode_strict(e.frame).id for e in entries] == list(range(50))  # type: ignore[attr-defined]


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 40), segment=st.integers(64, 600), data=st.data())
def test_torn_tail_at_any_cut_point_is_reported_then_recovered(n, segment, data):
    payloads = _payloads(n, size=9)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d)
        _write(path, payloads, max_segment_bytes=segment, fsync="never")
        segs = _segments(path)
        last = segs[-1]
        raw = last.read_bytes()
        in_last = list(jn._scan(raw, jn.SEGMENT_HEADER.size, 1 << 20))
        ends = [jn.SEGMENT_HEADER.size] + [off + 8 + len(p) for off, p in in_last]
        cut = data.draw(st.one_of(st.integers(0, len(raw) - 1), st.sampled_from([e for e in ends if e < len(raw)] or [0])),
                        label="cut")
        last.write_bytes(raw[:cut])  # what a crash in the middle of a write leaves

        # records whose frames lie wholly before the cut survive, in order, and nothing else
        before = sum(len(list(jn._scan(p.read_bytes(), jn.SEGMENT_HEADER.size, 1 << 20))) for p in segs[:-1])
        kept = before + sum(1 for off, p in in_last if off + 8 + len(p) <= cut)
        boundary = cut == jn.SEGMENT_HEADER.size or any(off + 8 + len(p) == cut for off, p in in_last)

        event("cut on a frame boundary" if boundary else "cut inside a frame")
        r = JournalReader(path)
        assert list(r) == payloads[:kept]
        if boundary:
            assert r.damage is None
        else:
            assert r.damage is not None and r.damage.kind == "torn_tail" and r.counters["torn_tail"] == 1
            assert r.damage.offset + r.damage.trailing_bytes == cut

        w = JournalWriter(path, max_segment_bytes=segment)
        assert (w.recovered is None) == boundary
        if not boundary:
            assert w.counters["torn_tail"] == 1 and w.counters["truncated_bytes"] == w.recovered.trailing_bytes
            kept_aside = last.with_name(f"{last.name}.damaged-{w.recovered.offset}")
            assert kept_aside.read_bytes() == raw[w.recovered.offset:cut]
        w.append(b"after the crash")
        w.close()
        r = JournalReader(path)
        assert list(r) == payloads[:kept] + [b"after the crash"] and r.damage is None


def _corrupt(path: Path, offset: int) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0xFF
    path.write_bytes(bytes(raw))


def test_crc_mismatch_in_the_last_segment_stops_there_and_is_counted(tmp_path, caplog):
    payloads = _payloads(10)
    _write(tmp_path, payloads)
    seg = _segments(tmp_path)[0]
    offsets = [off for off, _ in jn._scan(seg.read_bytes(), jn.SEGMENT_HEADER.size, 1 << 20)]
    _corrupt(seg, offsets[6] + 8 + 2)  # a payload byte of record 6
    r = JournalReader(tmp_path)
    assert list(r) == payloads[:6]
    assert r.counters["crc_mismatch"] == 1 and r.damage is not None
    assert (r.damage.kind, r.damage.offset) == ("crc_mismatch", offsets[6])
    assert "crc_mismatch" in caplog.text
    w = JournalWriter(tmp_path)
    assert w.recovered is not None and w.recovered.kind == "crc_mismatch" and w.counters["crc_mismatch"] == 1
    w.close()
    assert list(JournalReader(tmp_path)) == payloads[:6]
    # the bytes from the bad record on are kept beside the segment, not destroyed
    assert len(list(tmp_path.glob("*.damaged-*"))) == 1


def test_a_corrupt_length_or_crc_field_is_caught(tmp_path):
    payloads = _payloads(5)
    _write(tmp_path, payloads)
    seg = _segments(tmp_path)[0]
    offsets = [off for off, _ in jn._scan(seg.read_bytes(), jn.SEGMENT_HEADER.size, 1 << 20)]
    _corrupt(seg, offsets[3] + 5)  # the CRC field of record 3
    r = JournalReader(tmp_path)
    assert list(r) == payloads[:3] and r.damage.kind == "crc_mismatch"
    raw = bytearray(seg.read_bytes())
    raw[offsets[2] + 3] = 0x7F  # record 2's length: far beyond max_record_bytes
    seg.write_bytes(bytes(raw))
    r = JournalReader(tmp_path)
    assert list(r) == payloads[:2] and r.damage.kind == "bad_length" and r.counters["bad_length"] == 1


def test_a_zero_filled_tail_is_damage_not_records(tmp_path):
    _write(tmp_path, [b"one", b"two"])
    seg = _segments(tmp_path)[0]
    with open(seg, "ab") as f:
        f.write(bytes(64))  # what a crash after the size grew but before the data landed can leave
    r = JournalReader(tmp_path)
    assert list(r) == [b"one", b"two"] and r.damage.kind == "bad_length"


def test_damage_before_the_last_segment_is_an_error(tmp_path):
    payloads = _payloads(200)
    _write(tmp_path, payloads, max_segment_bytes=1024)
    segs = _segments(tmp_path)
    _corrupt(segs[1], jn.SEGMENT_HEADER.size + 8 + 1)
    with pytest.raises(JournalCorruptError, match=r"00000002\.b4j: crc_mismatch at offset 16 in a segment that is not the last"):
        list(JournalReader(tmp_path))
    # a reader that stops at the error has yielded exactly the first segment's records
    got = []
    with pytest.raises(JournalCorruptError):
        for p in JournalReader(tmp_path):
            got.append(p)
    assert got == payloads[:len(got)] and len(got) > 0


def test_a_torn_earlier_segment_is_an_error(tmp_path):
    _write(tmp_path, _payloads(200), max_segment_bytes=1024)
    seg = _segments(tmp_path)[0]
    seg.write_bytes(seg.read_bytes()[:-5])
    with pytest.raises(JournalCorruptError, match="torn_tail"):
        list(JournalReader(tmp_path))


def test_a_missing_segment_or_a_foreign_file_is_an_error(tmp_path):
    _write(tmp_path, _payloads(200), max_segment_bytes=1024)
    segs = _segments(tmp_path)
    segs[2].unlink()
    with pytest.raises(JournalCorruptError, match="00000003.b4j is missing"):
        list(JournalReader(tmp_path))
    with pytest.raises(JournalCorruptError, match="missing"):
        JournalWriter(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    (other / "00000001.b4j").write_bytes(b"PK\x03\x04 not a journal at all")
    with pytest.raises(JournalCorruptError, match="not a bot4 journal segment"):
        list(JournalReader(other))
    with pytest.raises(JournalCorruptError, match="not a bot4 journal segment"):
        JournalWriter(other)


def test_a_segment_torn_at_creation_is_rewritten(tmp_path):
    _write(tmp_path, _payloads(100), max_segment_bytes=512)
    n = len(_segments(tmp_path))
    nxt = jn.segment_path(tmp_path, n + 1)
    nxt.write_bytes(jn.MAGIC[:5])  # crash while writing the new segment's header
    r = JournalReader(tmp_path)
    assert list(r) == _payloads(100) and r.damage.kind == "torn_tail"
    with JournalWriter(tmp_path, max_segment_bytes=512) as w:
        assert w.segment == n + 1 and w.recovered is not None
        w.append(b"x")
    assert list(JournalReader(tmp_path)) == _payloads(100) + [b"x"]


def test_a_failed_write_leaves_the_accepted_records(tmp_path, monkeypatch):
    w = JournalWriter(tmp_path)
    w.append(b"kept")
    real = os.write

    def half_then_fail(fd, data):
        real(fd, bytes(data)[: len(data) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(jn.os, "write", half_then_fail)
    with pytest.raises(OSError, match="No space"):
        w.append(b"lost: never accepted")
    monkeypatch.setattr(jn.os, "write", real)
    w.append(b"also kept")
    w.close()
    r = JournalReader(tmp_path)
    assert list(r) == [b"kept", b"also kept"] and r.damage is None
    assert w.counters["records"] == 2


def test_bad_records_are_refused_before_anything_is_written(tmp_path):
    with JournalWriter(tmp_path, max_record_bytes=100) as w:
        with pytest.raises(ValueError, match="empty"):
            w.append(b"")
        with pytest.raises(ValueError, match="max_record_bytes"):
            w.append(b"x" * 101)
        with pytest.raises(ValueError, match="max_record_bytes"):
            w.append_many([b"ok", b"x" * 101])
        w.append(b"x" * 100)
    assert list(JournalReader(tmp_path)) == [b"x" * 100]


def test_one_writer_at_a_time(tmp_path):
    w = JournalWriter(tmp_path)
    with pytest.raises(JournalLockedError):
        JournalWriter(tmp_path)
    w.close()
    JournalWriter(tmp_path).close()
    with pytest.raises(ValueError, match="closed"):
        w.append(b"late")


@pytest.mark.parametrize(("spec", "policy"), [
    ("always", FsyncPolicy("always")), ("never", FsyncPolicy("never")), ("every:100", FsyncPolicy("every", every=100)),
    (" every:1 ", FsyncPolicy("every", every=1)), ("interval:0.5", FsyncPolicy("interval", interval_s=0.5)),
])
def test_fsync_policies_parse(spec, policy):
    assert FsyncPolicy.parse(spec) == policy
    assert FsyncPolicy.parse(policy) is policy


@pytest.mark.parametrize("spec", ["sometimes", "every:0", "every:-3", "every:x", "every", "interval:0", "interval:-1",
                                  "interval:inf", "interval:nan", "always:3", "never:1", "", 5, None])
def test_invalid_fsync_policies_are_refused(tmp_path, spec):
    with pytest.raises(ConfigError, match="fsync policy"):
        JournalWriter(tmp_path, fsync=spec)
    assert not list(tmp_path.glob("*.b4j"))


def _fsyncs_for(tmp_path, spec: str, n: int) -> int:
    w = JournalWriter(tmp_path / spec.replace(":", "_"), fsync=spec)
    created = w.counters["fsyncs"]
    for i in range(n):
        w.append(b"r%d" % i)
    during = w.counters["fsyncs"] - created
    w.close()
    return during


def test_fsync_policies_sync_when_they_say(tmp_path):
    assert _fsyncs_for(tmp_path, "always", 10) == 10
    assert _fsyncs_for(tmp_path, "every:4", 10) == 2
    assert _fsyncs_for(tmp_path, "never", 10) == 0
    assert _fsyncs_for(tmp_path, "interval:1e-9", 10) == 10
    assert _fsyncs_for(tmp_path, "interval:3600", 10) == 0
    # creating a segment syncs it and the directory unless the policy is "never"
    assert JournalWriter(tmp_path / "n", fsync="never").counters["fsyncs"] == 0


def test_close_syncs_what_the_policy_left(tmp_path, monkeypatch):
    calls = []
    real = os.fsync
    monkeypatch.setattr(jn.os, "fsync", lambda fd: (calls.append(fd), real(fd))[1])
    w = JournalWriter(tmp_path, fsync="every:100")
    calls.clear()
    w.append(b"a")
    assert calls == []
    w.close()
    assert len(calls) == 1


def test_segment_size_limits_are_checked(tmp_path):
    with pytest.raises(ConfigError, match="max_segment_bytes"):
        JournalWriter(tmp_path, max_segment_bytes=20)
    with pytest.raises(ConfigError, match="max_record_bytes"):
        JournalWriter(tmp_path, max_record_bytes=0)
