"""`bot4 ctl` against a real paper session (threads over inproc, its control endpoint over ipc):
every action, its reply, exit status 0 applied / 1 refused / 2 usage or no session, and never a
traceback."""
from __future__ import annotations

import json
import shutil
import threading
import time
from contextlib import contextmanager

import pytest
from paper_helpers import MODEL_DIR

from bot4 import contracts as c
from bot4.cli import main
from bot4.services import control
from bot4.services.session import run_paper


@contextmanager
def session(tmp_path, monkeypatch, **kw):
    """A paper session running in a thread (the simulator at 20x its clock: ~6 s); yields its
    control endpoint, then waits for the end and checks it ended cleanly."""
    pointer = tmp_path / "paper.endpoint"
    monkeypatch.setattr(control, "pointer_file", lambda: pointer)
    ready = threading.Event()
    box: dict = {}

    def run():
        try:
            box["result"] = run_paper(None, seed=5, n_events=6000, model=MODEL_DIR, speed=kw.pop("speed", 20.0),
                                      on_control=lambda e: (box.setdefault("endpoint", e), ready.set()),
                                      announce=True, **kw)
        except BaseException as exc:
            box["error"] = exc
            ready.set()

    th = threading.Thread(target=run, daemon=True)
    th.start()
    assert ready.wait(60) and "error" not in box, box.get("error")
    assert pointer.read_text().strip() == box["endpoint"]
    yield box
    th.join(120)
    assert not th.is_alive() and "error" not in box, box.get("error")
    assert not pointer.exists()  # the session took its announcement back


def _ctl(capsys, *argv):
    code = main(["ctl", *argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def test_every_action_against_a_running_session(tmp_path, monkeypatch, capsys):
    with session(tmp_path, monkeypatch) as box:
        ep = box["endpoint"]
        code, out, _ = _ctl(capsys, "status", "--json")  # the announced session, no --endpoint
        reply = json.loads(out)
        assert code == 0 and reply["ok"] and reply["command"] == "status" and reply["trace"] > 0
        assert reply["data"]["model"] == json.loads((MODEL_DIR / "model.json").read_text())["sha256"]
        assert _ctl(capsys, "pause", "--endpoint", ep)[:2] == (0, "pause: ok\n")
        code, out, _ = _ctl(capsys, "status", "--endpoint", ep)
        assert code == 0 and "  paused: True" in out
        assert _ctl(capsys, "resume", "--endpoint", ep)[0] == 0
        code, out, _ = _ctl(capsys, "set", "risk.pre_trade.max_position_lots", "4", "--endpoint", ep, "--json")
        assert code == 0 and json.loads(out)["data"] == {"key": "risk.pre_trade.max_position_lots", "old": 100,
                                                         "new": 4}
        code, out, _ = _ctl(capsys, "set", "strategy.market_entry", "true", "--endpoint", ep)
        assert code == 0 and "new: True" in out
        # the kill must come after the strategy has traded: wait for its first fill (commands reach the
        # engine far faster than the feed, so without this the kill could land before any order)
        polls = 0
        while True:
            code, out, _ = _ctl(capsys, "status", "--endpoint", ep, "--json")
            polls += 1
            assert code == 0, out
            if json.loads(out)["data"].get("fills_published", 0) > 0:
                break
            assert polls < 600, "no fill within 60 s of the session"
            time.sleep(0.1)
        assert _ctl(capsys, "flatten", "--endpoint", ep)[0] == 0
        assert _ctl(capsys, "kill", "--reason", "drill", "--endpoint", ep)[:2] == (0, "kill: ok\n")
    r = box["result"]
    sent = 8 + polls
    assert r.counters["engine"]["commands_applied"] == sent and r.counters["control"]["replies"] == sent
    assert r.fills and r.fills[-1].ts >= r.orders[0].ts  # it traded, then the kill closed it
    assert r.control == ep and r.as_json()["control"] == ep


def test_refusals_and_bad_inputs(tmp_path, monkeypatch, capsys):
    tampered = tmp_path / "tampered"
    shutil.copytree(MODEL_DIR, tampered)
    raw = bytearray((tampered / "model.onnx").read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    (tampered / "model.onnx").write_bytes(bytes(raw))
    corrupt = tmp_path / "corrupt"
    shutil.copytree(MODEL_DIR, corrupt)
    (corrupt / "model.json").write_text("{not json")
    good_toml = tmp_path / "risk.toml"
    good_toml.write_text("[risk.pre_trade]\nmax_position_lots = 3\n[risk.kill_switch]\nmax_drawdown = 0.5\n")
    other_toml = tmp_path / "full.toml"
    other_toml.write_text("[engine]\nequity = 5.0\n[risk.pre_trade]\nmax_position_lots = 3\n")
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text("[risk.pre_trade]\nmax_position_lots = -3\n")
    with session(tmp_path, monkeypatch) as box:
        ep = ["--endpoint", box["endpoint"]]
        # refused by the session: exit 1, the reason on one line
        for argv, why in [(("set", "risk.pre_trade.no_such", "1"), "unknown key risk.pre_trade.no_such"),
                          (("set", "risk.sizing.kelly_fraction", "nan"), "nan is not a finite number"),
                          (("set", "risk.pre_trade.max_position_lots", "-5"), "Expected `int` >= 0"),
                          (("set", "risk.pre_trade.max_open_orders", "1.5"), "Expected `int`, got `float`"),
                          (("swap-model", str(tampered)), "SHA-256 mismatch"),
                          (("swap-model", str(tmp_path / "gone"), "--sha256", "ab" * 32), "does not exist")]:
            code, out, _ = _ctl(capsys, *argv, *ep)
            assert code == 1 and out.count("\n") == 1 and "refused: " in out and why in out, (argv, out)
        # refused before anything is sent: exit 2, one line on stderr
        for argv, why in [(("swap-model", str(corrupt)), "cannot read the model's sidecar"),
                          (("swap-model", str(tmp_path / "gone")), "cannot read the model's sidecar"),
                          (("swap-model", str(MODEL_DIR), "--sha256", "xyz"), "is not a SHA-256"),
                          (("push", str(other_toml)), "has [engine] besides [risk]"),
                          (("push", str(bad_toml)), "max_position_lots"),
                          (("status", "--timeout", "0"), "--timeout: must be a positive number")]:
            code, out, err = _ctl(capsys, *argv, *ep)
            assert code == 2 and out == "" and err.count("\n") == 1 and why in err, (argv, err)
        code, out, _ = _ctl(capsys, "push", str(good_toml), *ep, "--json")
        reply = json.loads(out)
        assert code == 0 and reply["data"]["changed"] == {"risk.pre_trade.max_position_lots": [100, 3],
                                                          "risk.kill_switch.max_drawdown": [0.1, 0.5]}
        code, out, _ = _ctl(capsys, "status", *ep, "--json")
        assert json.loads(out)["data"]["config"]["pre_trade"]["max_position_lots"] == 3
    eng = box["result"].counters["engine"]
    assert eng["commands_refused"] == 6 and eng["commands_applied"] == 2


def test_no_session_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(control, "pointer_file", lambda: tmp_path / "none")
    code, out, err = _ctl(capsys, "status")
    assert code == 2 and "no running paper session announced" in err and err.count("\n") == 1
    code, _, err = _ctl(capsys, "kill", "--endpoint", f"ipc://{tmp_path}/nothing")
    assert code == 2 and "no paper session at" in err and err.count("\n") == 1
    code, _, err = _ctl(capsys, "status", "--endpoint", "tcp://127.0.0.1:5555")
    assert code == 2 and "tcp needs CURVE keys" in err
    # a socket file nobody answers on (a session that died): the reply times out
    import zmq

    ctx = zmq.Context()
    stale = ctx.socket(zmq.ROUTER)
    stale.bind(f"ipc://{tmp_path}/stale")
    try:
        code, _, err = _ctl(capsys, "status", "--endpoint", f"ipc://{tmp_path}/stale", "--timeout", "0.3")
    finally:
        stale.close(0)
        ctx.term()
    assert code == 2 and "no reply from" in err and err.count("\n") == 1


def test_paper_prints_its_control_endpoint_and_refuses_tcp(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(control, "pointer_file", lambda: tmp_path / "p")
    assert main(["paper", "--events", "3000", "--control", f"ipc://{tmp_path}/ctl", "--json"]) == 0
    out, err = capsys.readouterr()
    assert f"paper: control endpoint ipc://{tmp_path}/ctl" in err and json.loads(out)["control"] == f"ipc://{tmp_path}/ctl"
    assert main(["paper", "--events", "3000", "--control", "tcp://0.0.0.0:7000"]) == 2
    assert "tcp needs CURVE keys" in capsys.readouterr().err


def test_the_server_answers_what_it_cannot_forward(tmp_path, monkeypatch):
    """A frame that is not a command, a trace id 0 or one already waiting, and commands the
    session ends before applying are answered with ok=False at once, never left hanging."""
    import zmq

    with session(tmp_path, monkeypatch) as box:
        ep = box["endpoint"]
        ctx = zmq.Context()
        s = ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(ep)
        try:
            s.send(b"\x93garbage")
            assert s.poll(10_000)
            bad = c.Codec(c.CONTROL_REPLIES).decode(s.recv())
            assert not bad.ok and "not a command frame" in bad.error
            reply = control.send_command(c.Status(trace=0, ts=1), ep)
            assert not reply.ok and "trace id is 0" in reply.error
        finally:
            s.close()
            ctx.term()
    # after the session: nothing listens any more (its run folder is gone)
    with pytest.raises(control.ControlError, match="no paper session at"):
        control.send_command(c.Status(trace=5, ts=1), ep)
    assert box["result"].counters["control"]["refused"] == 2


def test_processes_mode_answers_commands(tmp_path, monkeypatch):
    with session(tmp_path, monkeypatch, processes=True) as box:
        reply = control.send_command(c.SetParameter(trace=c.new_trace_id(), ts=1, key="strategy.stop_ticks", value=9),
                                     box["endpoint"], timeout_s=30)
        assert reply.ok and reply.data == {"key": "strategy.stop_ticks", "old": 20, "new": 9}
    assert box["result"].counters["engine"]["commands_applied"] == 1


def test_instrument_commands_are_built_from_the_command_line():
    from bot4 import contracts as c
    from bot4.cli import build_parser
    from bot4.services.ctl_cli import build_command

    parser = build_parser()
    for action, tp in (("kill", c.Kill), ("flatten", c.Flatten), ("pause", c.Pause), ("resume", c.Resume)):
        cmd = build_command(parser.parse_args(["ctl", action, "--instrument", "2"]))
        assert isinstance(cmd, tp) and cmd.instrument == 2
        assert build_command(parser.parse_args(["ctl", action])).instrument is None


def test_refresh_weights_is_built_from_the_command_line():
    from bot4 import contracts as c
    from bot4.cli import build_parser
    from bot4.services.ctl_cli import build_command

    cmd = build_command(build_parser().parse_args(["ctl", "refresh-weights"]))
    assert isinstance(cmd, c.RefreshWeights) and cmd.trace > 0
