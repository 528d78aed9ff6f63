"""A paper session across hosts: every link (feed -> engine and venue market data, engine <->
venue orders and fills, the replay ring, engine -> collector outputs, the control plane) over tcp
on 127.0.0.1 with CURVE keys, each service a process of its own (run_paper transport="tcp";
bot4.services.deploy started one by one from a plan, through the library and through `bot4
serve`). The session's orders, fills and P&L are the backtest's; a peer without CURVE and a peer
with a key the keys directory does not authorise are refused on every link kind and counted, and
get nothing."""

from __future__ import annotations

import json
import multiprocessing as mp
import subprocess
import sys
import time

import msgspec
import pytest
import zmq
from paper_helpers import CONFIG, MODEL_DIR, assert_same_as_backtest

from bot4 import contracts as c
from bot4.backtest import run
from bot4.errors import ConfigError
from bot4.services.deploy import Plan, load_plan, serve_collector, start_service
from bot4.services.security import KeyDir, free_tcp_endpoint, generate_keys
from bot4.services.session import Links, run_paper
from bot4.sim import generate

SEED, EVENTS = 7, 30_000


@pytest.fixture(scope="module")
def whole():
    return run(generate(seed=SEED, n_events=EVENTS), MODEL_DIR, config=CONFIG, progress=False)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys") / "keys"
    generate_keys(d)
    return d


def _tcp_links() -> Links:
    return Links(md=free_tcp_endpoint(), out=free_tcp_endpoint(), venue=free_tcp_endpoint(),
                 replay=free_tcp_endpoint(), control_pub=free_tcp_endpoint())


def test_processes_over_tcp_equal_the_backtest(whole, keys):
    paper = run_paper(None, seed=SEED, n_events=EVENTS, part_events=9_000, model=MODEL_DIR, config=CONFIG,
                      processes=True, transport="tcp", keys=keys, venue_service=True)
    assert whole.orders.size > 100 and whole.fills.size > 10
    assert_same_as_backtest(paper, whole)
    feed, ven, eng = paper.counters["feed"], paper.counters["venue"], paper.counters["engine"]
    assert eng["end_acknowledged"] == 1 and feed["end_acknowledged"] == 1 and eng["missed_batches"] == 0
    # Every link was a CURVE handshake the binding side's guard admitted, none refused.
    assert feed["security.md.handshake.succeeded"] == 2 and feed["security.zap.denied"] == 0  # engine, venue
    assert ven["security.venue.handshake.succeeded"] == 1 and ven["security.zap.denied"] == 0
    sec = paper.counters["security"]
    assert sec["out.handshake.succeeded"] == 1 and sec["zap.denied"] == 0
    assert paper.counters["control"]["publish.handshake.succeeded"] == 1


def test_tcp_needs_keys():
    with pytest.raises(ValueError, match="keys"):
        run_paper(None, n_events=1_000, processes=True, transport="tcp", control=None)
    with pytest.raises(ValueError, match="transport"):
        run_paper(None, n_events=1_000, processes=True, transport="udp", control=None)
    ctx = zmq.Context()
    try:
        from bot4.services.feed import bind_publisher

        with pytest.raises(ValueError, match="CURVE keys"):
            bind_publisher(ctx, "tcp://127.0.0.1:0")
    finally:
        ctx.term()


# -- rogue peers -----------------------------------------------------------------------------------


class _Rogues:
    """Per link, a peer without CURVE and a peer with a well-formed key the directory never
    authorised, each of the socket type that link's real peer uses, sending what it would."""

    KINDS = {"md": zmq.SUB, "replay": zmq.DEALER, "venue": zmq.DEALER, "out": zmq.PUB, "control_pub": zmq.SUB}

    def __init__(self, links: Links, server_public: bytes):
        self.ctx = zmq.Context()
        self.socks: list[tuple[str, zmq.Socket]] = []
        for link, kind in self.KINDS.items():
            for keyed in (False, True):
                s = self.ctx.socket(kind)
                s.setsockopt(zmq.LINGER, 0)
                if kind == zmq.SUB:
                    s.subscribe(b"")
                if keyed:
                    public, secret = zmq.curve_keypair()
                    s.curve_serverkey, s.curve_publickey, s.curve_secretkey = server_public, public, secret
                s.connect(getattr(links, link))
                self.socks.append((link, s))

    def poke(self) -> None:
        """Send what each link's real client sends (a replay request, a venue frame, a fake fill)."""
        for link, s in self.socks:
            try:
                if link == "replay":
                    s.send(c.Codec(c.REPLAY).encode(c.ReplayRequest(ts=1, from_seq=0, max_frames=10)), zmq.NOBLOCK)
                elif link == "venue":
                    s.send_multipart((c.VENUE, b"\x00" * 16), zmq.NOBLOCK)
                elif link == "out":
                    s.send_multipart((c.TELEMETRY, c.Codec(c.TELEMETRY).encode(
                        c.Heartbeat(ts=1, service="engine", instance=1, seq=0, state="stopping"))), zmq.NOBLOCK)
            except zmq.Again:
                pass

    def received(self) -> int:
        n = 0
        for _, s in self.socks:
            while s.poll(0):
                s.recv_multipart()
                n += 1
        return n

    def close(self) -> None:
        for _, s in self.socks:
            s.close()
        self.ctx.term()


def _refused(counters: dict, link: str, prefix: str = "") -> None:
    no_curve = counters[f"{prefix}{link}.handshake.failed_protocol"] + counters[f"{prefix}{link}.handshake.failed_other"]
    assert no_curve >= 1, (link, counters)  # the peer without CURVE (a mechanism mismatch)
    assert counters[f"{prefix}{link}.handshake.failed_auth"] >= 1, (link, counters)      # unknown key


def test_services_started_one_by_one_over_tcp_equal_the_backtest_and_refuse_rogues(whole, keys, tmp_path):
    """Feed, venue and engine each a process started through the library (start_service), the
    collector here; rogue peers on every link all the while."""
    plan = Plan(links=_tcp_links(), keys=str(keys), seed=SEED, n_events=EVENTS, part_events=9_000,
                model=str(MODEL_DIR), journal=str(tmp_path / "journal"), replay_linger_s=0.5,
                control=free_tcp_endpoint())
    plan = msgspec.structs.replace(plan, config=CONFIG)  # (inline, as bot4.backtest.run takes it)
    rogues = _Rogues(plan.links, KeyDir(keys).server_public())
    q = mp.get_context("spawn").Queue()
    procs = [start_service(plan, s, q) for s in ("feed", "venue", "engine")]
    stop = False

    def poke() -> None:
        while not stop:
            rogues.poke()
            time.sleep(0.2)
    import threading

    th = threading.Thread(target=poke, daemon=True)
    th.start()
    try:
        paper = serve_collector(plan)
    finally:
        stop = True
        th.join()
        got = rogues.received()
        rogues.close()
    results = {}
    for p in procs:
        p.join(120)
    while not q.empty():
        k, v = q.get(timeout=5)
        results[k] = v
    assert all(p.exitcode == 0 for p in procs), results
    assert_same_as_backtest(paper, whole)
    assert got == 0  # no rogue got a frame, a replay or a venue answer
    feed, ven = results["feed"], results["venue"]
    assert feed["end_acknowledged"] == 1 and results["engine-0"]["missed_batches"] == 0
    _refused(feed, "md", "security.")
    _refused(feed, "replay", "security.")
    _refused(ven, "venue", "security.")
    _refused(paper.counters["security"], "out")
    _refused(paper.counters["control"], "publish")  # the command publisher (control_pub)
    assert feed["security.zap.denied"] >= 2 and ven["security.zap.denied"] >= 1
    assert paper.counters["security"]["zap.denied"] >= 2  # out and control_pub share the collector's guard
    assert ven["refused"] == 0 and ven["sim.1.fills"] == whole.fills.size


def _config_tables(config: dict) -> str:
    """The config as the plan's [config.SECTION] tables (inline config)."""
    return "".join(f"[config.{name}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in section.items())
                   for name, section in config.items())


def test_bot4_serve_over_tcp_equals_the_backtest(whole, keys, tmp_path):
    """The four services as `bot4 serve ... --plan FILE` processes, over tcp with CURVE."""
    links = _tcp_links()
    control = free_tcp_endpoint()
    plan = tmp_path / "session.toml"
    plan.write_text(f"""
keys = "{keys}"
seed = {SEED}
n_events = {EVENTS}
part_events = 9000
model = "{MODEL_DIR}"
control = "{control}"
replay_linger_s = 0.5
{_config_tables(CONFIG)}
[links]
md = "{links.md}"
out = "{links.out}"
venue = "{links.venue}"
replay = "{links.replay}"
control_pub = "{links.control_pub}"
""")
    assert load_plan(plan).config == CONFIG and load_plan(plan).keys == str(keys)
    cmd = [sys.executable, "-c", "import sys; from bot4.cli import main; sys.exit(main())", "serve"]
    procs = [subprocess.Popen([*cmd, s, "--plan", str(plan), "--json"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for s in ("collector", "feed", "venue", "engine")]
    try:
        outs = [p.communicate(timeout=600) for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [0, 0, 0, 0], [o[1][-2000:] for o in outs]
    result = json.loads(outs[0][0])
    assert result["orders"] == whole.orders.size and result["fills"] == whole.fills.size
    assert result["decisions"] == whole.decisions.size and result["pnl"] == whole.pnl
    assert result["control"] == control and result["counters"]["security"]["zap.denied"] == 0
    assert json.loads(outs[1][0])["end_acknowledged"] == 1  # the feed's counters


def test_a_bad_plan_is_a_config_error(tmp_path):
    p = tmp_path / "plan.toml"
    p.write_text('[links]\nmd = "tcp://127.0.0.1:5000"\nout = "tcp://127.0.0.1:5001"\n')
    with pytest.raises(ConfigError, match="keys"):
        load_plan(p)
    p.write_text('[links]\nmd = "ipc:///tmp/x"\n')
    with pytest.raises(ConfigError, match="out"):
        load_plan(p)
    p.write_text('speed = "fast"\n[links]\nmd = "ipc:///tmp/x"\nout = "ipc:///tmp/y"\n')
    with pytest.raises(ConfigError, match="speed"):
        load_plan(p)
    with pytest.raises(ConfigError, match="cannot read"):
        load_plan(tmp_path / "missing.toml")
