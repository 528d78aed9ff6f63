"""A paper session's control and observer endpoints on tcp (127.0.0.1) with CURVE keys
(run_paper keys=DIR): the authorised client gets replies and frames; a peer without CURVE and a
peer with a key the directory does not authorise get no reply and no frame, and the session's
guard counts the refused key. The session's result is the backtest's all the same."""

from __future__ import annotations

import socket
import threading
import time

import pytest
import zmq
from paper_helpers import MODEL_DIR

from bot4 import contracts as c
from bot4.backtest import run
from bot4.cli import main
from bot4.services.control import ControlError, send_command
from bot4.services.security import KeyDir, generate_keys, secure_client
from bot4.services.session import run_paper
from bot4.sim import generate


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _status() -> c.Status:
    return c.Status(trace=c.new_trace_id(), ts=time.time_ns())


def _sub(ctx: zmq.Context, endpoint: str, secure=None) -> zmq.Socket:
    s = ctx.socket(zmq.SUB)
    s.setsockopt(zmq.LINGER, 0)
    s.subscribe(b"")
    if secure is not None:
        secure(s)
    s.connect(endpoint)
    return s


def _unknown_key(server_public: bytes):
    def secure(s: zmq.Socket) -> None:  # a well-formed key pair the session never authorised
        public, secret = zmq.curve_keypair()
        s.curve_serverkey, s.curve_publickey, s.curve_secretkey = server_public, public, secret
    return secure


def _frames(s: zmq.Socket) -> int:
    n = 0
    while s.poll(0):
        s.recv_multipart()
        n += 1
    return n


def test_tcp_endpoints_answer_only_the_authorised_key(tmp_path):
    keys = tmp_path / "keys"
    generate_keys(keys)
    ctl, obs = f"tcp://127.0.0.1:{_free_port()}", f"tcp://127.0.0.1:{_free_port()}"
    ready = threading.Event()
    box: dict = {}

    def session() -> None:
        try:
            # The simulator at 10x its clock: long enough (~12 s) for every check below.
            box["out"] = run_paper(None, seed=5, n_events=6000, model=MODEL_DIR, speed=10.0, control=ctl,
                                   observe=obs, keys=keys, on_control=lambda e: ready.set())
        except BaseException as exc:
            box["error"] = exc
            ready.set()
    th = threading.Thread(target=session, daemon=True)
    th.start()
    assert ready.wait(60) and "error" not in box, box.get("error")
    server_public = KeyDir(keys).server_public()
    ctx = zmq.Context()
    try:
        subs = {"authorised": _sub(ctx, obs, lambda s: secure_client(s, keys)),
                "unknown_key": _sub(ctx, obs, _unknown_key(server_public)),
                "plain": _sub(ctx, obs)}
        # The authorised client is answered (the engine replies between pieces) ...
        reply = send_command(_status(), ctl, keys=keys, timeout_s=20)
        assert reply.ok and reply.command == "status"
        # ... a peer without CURVE and a peer with an unknown key are not.
        plain = ctx.socket(zmq.DEALER)
        plain.setsockopt(zmq.LINGER, 0)
        plain.connect(ctl)
        plain.send(c.Codec(c.CONTROL).encode(_status()))
        stranger = ctx.socket(zmq.DEALER)
        stranger.setsockopt(zmq.LINGER, 0)
        _unknown_key(server_public)(stranger)
        stranger.connect(ctl)
        stranger.send(c.Codec(c.CONTROL).encode(_status()))
        # The authorised client is answered again meanwhile, so the others had their chance.
        assert send_command(_status(), ctl, keys=keys, timeout_s=20).ok
        assert plain.poll(1000) == 0 and stranger.poll(0) == 0
        got = {k: 0 for k in subs}
        for _ in range(200):
            for k, s in subs.items():
                got[k] += _frames(s)
            if got["authorised"] >= 20:
                break
            time.sleep(0.02)
        assert got["authorised"] >= 20 and got["unknown_key"] == 0 and got["plain"] == 0
        # send_command with an unauthorised client name fails after the timeout, saying why.
        generate_keys(tmp_path / "other")
        with pytest.raises(ControlError, match="CURVE key"):
            send_command(_status(), ctl, keys=tmp_path / "other", timeout_s=1)
        plain.close()
        stranger.close()
        for s in subs.values():
            s.close()
    finally:
        ctx.term()
    th.join(120)
    assert not th.is_alive() and "error" not in box, box.get("error")
    paper = box["out"]
    sec = paper.counters["security"]
    assert sec["zap.allowed"] >= 3 and sec["zap.denied"] >= 2  # the unknown keys (control, observer)
    ctl_k, obs_k = paper.counters["control"], paper.counters["observer"]
    assert ctl_k["commands"] == 2  # only the authorised client's reached the session
    # Each endpoint's handshakes: the authorised ones, the unknown key (refused by ZAP) and the peer
    # without CURVE (a protocol failure; libzmq reports it without detail now and then).
    assert ctl_k["handshake.succeeded"] == 2 and obs_k["handshake.succeeded"] == 1
    for k in (ctl_k, obs_k):
        assert k["handshake.failed_auth"] >= 1 and k["handshake.failed_protocol"] + k["handshake.failed_other"] >= 1
    whole = run(generate(seed=5, n_events=6000), MODEL_DIR, progress=False)
    assert len(paper.orders) == whole.orders.size and len(paper.fills) == whole.fills.size
    assert paper.pnl == whole.pnl


def test_keys_are_required_and_checked_for_tcp(tmp_path):
    with pytest.raises(ValueError, match="CURVE"):
        run_paper(None, n_events=100, control=f"tcp://127.0.0.1:{_free_port()}")
    with pytest.raises(ValueError, match="CURVE"):
        send_command(_status(), "tcp://127.0.0.1:1")
    assert main(["ctl", "status", "--endpoint", "tcp://127.0.0.1:1", "--keys", str(tmp_path / "none"),
                 "--timeout", "0.2"]) == 2


def test_paper_live_over_tcp_is_a_curve_client(tmp_path, capsys, monkeypatch):
    import json

    from bot4.services import control

    monkeypatch.setattr(control, "pointer_file", lambda: tmp_path / "paper.endpoint")
    keys = tmp_path / "keys"
    generate_keys(keys, name="desk")
    obs = f"tcp://127.0.0.1:{_free_port()}"
    code = main(["paper", "--events", "6000", "--seed", "5", "--model", str(MODEL_DIR), "--live", "--json",
                 "--observe", obs, "--keys", str(keys), "--name", "desk"])
    out, err = capsys.readouterr()
    assert code == 0, err
    summary = json.loads(out)
    k = summary["counters"]["observer"]
    assert summary["observe"] == obs and k["handshake.succeeded"] == 1 and k["handshake.failed_auth"] == 0
    assert k["sent.executions"] == summary["orders"] + summary["fills"] > 0
    assert f"total equity {summary['pnl']:,.4f}" in err
    # The live view's client name must be one the directory authorises.
    assert main(["paper", "--events", "100", "--live", "--observe", obs, "--keys", str(keys), "--name", "nobody"]) == 2
    assert "nobody.key_secret" in capsys.readouterr().err


def test_a_tcp_control_endpoint_on_port_0_announces_the_port_chosen(tmp_path):
    keys = tmp_path / "keys"
    generate_keys(keys)
    ready, box = threading.Event(), {}

    def session() -> None:
        try:
            box["out"] = run_paper(None, seed=5, n_events=6000, speed=10.0, control="tcp://127.0.0.1:0", keys=keys,
                                   on_control=lambda e: (box.update(ep=e), ready.set()))
        except BaseException as exc:
            box["error"] = exc
            ready.set()
    th = threading.Thread(target=session, daemon=True)
    th.start()
    assert ready.wait(60) and "error" not in box, box.get("error")
    assert box["ep"].startswith("tcp://127.0.0.1:") and not box["ep"].endswith(":0")
    assert send_command(_status(), box["ep"], keys=keys, timeout_s=20).ok
    th.join(120)
    assert box["out"].control == box["ep"]
