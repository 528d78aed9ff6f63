"""Instruments sharded over several engine processes behind the same contracts: each engine
trades its group exactly as a backtest of that group alone would (its own ledger and limits),
with the venue inside each engine or as one service for all; commands naming an instrument reach
its engine only."""

from __future__ import annotations

import numpy as np
import pytest

from bot4.backtest import run
from bot4.data.market_data import merge
from bot4.services.session import run_paper
from bot4.sim import generate

CONFIG = {"sim": {"entry_latency_ns": 200_000, "response_latency_ns": 200_000},
          "kill_switch": {"max_consecutive_rejects": 0, "max_drawdown": 1.0, "max_latency_ns": 0}}


@pytest.fixture(scope="module")
def parts():
    return [generate(seed=11, n_events=6_000).as_instrument(1, "AAA"),
            generate(seed=12, n_events=6_000).as_instrument(2, "BBB")]


@pytest.fixture(scope="module")
def alone(parts):
    return {p.specs and next(iter(p.specs)): run(p, None, CONFIG, progress=False, strategy="market_maker")
            for p in parts}


@pytest.mark.parametrize("venue_service", [False, True], ids=["venue-in-core", "venue-service"])
def test_two_shards_equal_two_backtests(parts, alone, venue_service, tmp_path):
    both = merge(parts)
    paper = run_paper(both, config=CONFIG, strategy="market_maker", processes=True, shards=[[1], [2]],
                      venue_service=venue_service, control=None, journal=tmp_path / "j")
    for i, whole in alone.items():
        orders = [m for m in paper.orders if m.instrument == i]
        fills = [m for m in paper.fills if m.instrument == i]
        assert whole.fills.size > 10 and len(orders) == whole.orders.size and len(fills) == whole.fills.size
        assert [m.price for m in fills] == whole.fills["price"].tolist()
        assert [m.qty for m in fills] == whole.fills["qty"].tolist()
        assert [m.ts for m in orders] == whole.orders["ts"].tolist()
        assert [m.status for m in orders] == whole.orders["status"].tolist()
    assert paper.pnl == pytest.approx(sum(r.pnl for r in alone.values()), abs=1e-9)
    engines = paper.counters["engines"]
    assert engines["engine-0"]["other_shard_records"] > 0 and engines["engine-1"]["other_shard_records"] > 0
    assert sorted(p.name for p in (tmp_path / "j").iterdir()) == ["shard-0", "shard-1"]
    if venue_service:
        assert paper.counters["venue"]["refused"] == 0
        assert paper.counters["venue"]["sim.1.fills"] + paper.counters["venue"]["sim.2.fills"] == len(paper.fills)


def test_bad_shards_are_refused(parts):
    both = merge(parts)
    for shards, why in (([[1]], "in no group"), ([[1, 2], [2]], "more than one"), ([[1], [2, 7]], "not in the data"),
                        ([[1, 2], []], "without instruments")):
        with pytest.raises(ValueError, match=why):
            run_paper(both, processes=True, shards=shards, control=None)
    with pytest.raises(ValueError, match="processes"):
        run_paper(both, shards=[[1], [2]], control=None)


def test_a_command_for_all_is_answered_once_by_every_shard_merged(tmp_path):
    """The control server of a sharded session forwards Status to every engine and answers its
    client once, with the shards' per-instrument entries and summed counters."""
    import threading
    import time

    import zmq

    from bot4 import contracts as c
    from bot4.services.control import ControlServer, send_command

    ctx = zmq.Context()
    server = ControlServer(ctx, f"ipc://{tmp_path}/ctl", "inproc://ctl-shards", engines=2)
    engines = []
    for _ in range(2):
        s = ctx.socket(zmq.SUB)
        s.setsockopt(zmq.SUBSCRIBE, c.CONTROL)
        s.connect("inproc://ctl-shards")
        engines.append(s)
    box: dict = {}
    client = threading.Thread(target=lambda: box.update(
        status=send_command(c.Status(trace=9, ts=1), server.endpoint, timeout_s=30),
        pause=send_command(c.Pause(trace=10, ts=1, instrument=2), server.endpoint, timeout_s=30)))
    client.start()
    codec, replies = c.Codec(c.CONTROL), c.Codec(c.CONTROL_REPLIES)
    deadline = time.monotonic() + 30
    try:
        while client.is_alive() and time.monotonic() < deadline:
            if server.router.poll(10):
                server.on_client()
            if server.xpub.poll(0):
                server.on_engine_join()
            for k, s in enumerate(engines):
                if not s.poll(0):
                    continue
                cmd = codec.decode(s.recv_multipart()[1])
                inst = str(k + 1)
                if isinstance(cmd, c.Status):
                    data = {"paused": k == 1, "buffered": 3, "commands_applied": k + 1,
                            "instruments": {inst: {"paused": k == 1, "halted": False}}, "model": None}
                    server.on_reply(replies.encode(c.CommandReply(trace=cmd.trace, ts=1, command="status", ok=True,
                                                                  data=data)), f"engine-{k}")
                elif cmd.instrument == k + 1:  # (a command naming an instrument: its engine answers alone)
                    server.on_reply(replies.encode(c.CommandReply(trace=cmd.trace, ts=1, command="pause", ok=True)),
                                    f"engine-{k}")
        client.join(5)
    finally:
        server.close()
        for s in engines:
            s.close()
        ctx.term()
    status, pause = box["status"], box["pause"]
    assert status.ok and status.trace == 9 and status.data["shards"] == 2
    assert status.data["instruments"] == {"1": {"paused": False, "halted": False, "engine": "engine-0"},
                                          "2": {"paused": True, "halted": False, "engine": "engine-1"}}
    assert status.data["paused"] is True and status.data["buffered"] == 6
    assert status.data["totals"]["commands_applied"] == 3 and status.data["model"] is None
    assert set(status.data["engines"]) == {"engine-0", "engine-1"}
    assert pause.ok and pause.trace == 10 and pause.data == {}


def test_status_of_a_running_sharded_session_covers_every_shard(parts):
    """`bot4 ctl status` against a live sharded session (through the library's send_command):
    one reply with both shards' instruments, the paused one paused, counters summed."""
    import threading
    import time

    from bot4 import contracts as c
    from bot4.services.control import send_command

    box: dict = {}

    def drive(endpoint: str) -> None:
        def run() -> None:
            try:
                box["pause"] = send_command(c.Pause(trace=c.new_trace_id(), ts=time.time_ns(), instrument=2), endpoint,
                                            timeout_s=60)
                box["status"] = send_command(c.Status(trace=c.new_trace_id(), ts=time.time_ns()), endpoint,
                                             timeout_s=60)
            except Exception as exc:  # (reported by the asserts below)
                box["error"] = exc
        threading.Thread(target=run, daemon=True).start()
    both = merge(parts)
    # Paced (not max) so the session still runs while the commands go and come back.
    paper = run_paper(both, config=CONFIG, strategy="market_maker", processes=True, shards=[[1], [2]],
                      on_control=drive, speed=_pace(both, 15.0))
    assert "error" not in box, box.get("error")
    status = box["status"]
    assert box["pause"].ok and status.ok and status.data["shards"] == 2
    inst = status.data["instruments"]
    assert inst["1"]["engine"] == "engine-0" and inst["2"]["engine"] == "engine-1"
    assert inst["2"]["paused"] is True and inst["1"]["paused"] is False
    engines = status.data["engines"]
    for k in ("frames_in", "batches", "commands_applied", "other_shard_commands"):
        assert status.data["totals"][k] == engines["engine-0"][k] + engines["engine-1"][k], k
    assert engines["engine-0"]["other_shard_commands"] == 1  # the pause named engine-1's instrument
    assert status.data["totals"]["commands_applied"] == 1  # the pause, applied by engine-1 only
    assert paper.counters["control"]["replies"] == 2


def _pace(data, seconds: float) -> float:
    """The speed factor that replays `data` in about `seconds`."""
    ts = np.sort(data.book["ts_local"])
    return max(1.0, float(ts[-1] - ts[0]) / 1e9 / seconds)
