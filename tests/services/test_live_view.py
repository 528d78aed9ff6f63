"""bot4.services.live_view: the view's figures from a sequence of bus messages, rendered through
rich without a terminal (Console(record=True)); bad frames counted; `bot4 paper --live` and
`bot4 ctl watch` against real sessions show the session's own figures."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from paper_helpers import MODEL_DIR
from rich.console import Console

from bot4 import contracts as c
from bot4.cli import main
from bot4.contracts.codes import DECISION_ACTIONS, ORDER_EVENT_KINDS, ORDER_STATES
from bot4.services import control
from bot4.services.live_view import LiveView
from bot4.services.session import run_paper


def _text(view: LiveView, width: int = 200) -> str:
    console = Console(record=True, width=width, color_system=None)
    console.print(view.render())
    return console.export_text()


def _order(oid: int, inst: int, status: str) -> c.OrderEvent:
    return c.OrderEvent(ts=oid, id=oid, instrument=inst, side=0, price=100, qty=2, filled=0, type=0,
                        status=ORDER_STATES.index(status), kind=ORDER_EVENT_KINDS.index("ack"), role=0)


def _row(text: str, label: str) -> list[str]:
    line = next(ln for ln in text.splitlines() if ln.split() and ln.split()[0] == label)
    return line.split()


def test_rendered_table_shows_the_figures_of_the_messages():
    view = LiveView(names={7: "BTCUSDT"}, clock=lambda: 3_000_000)
    msgs = [
        _order(1, 7, "new"), _order(1, 7, "acknowledged"), _order(2, 7, "acknowledged"), _order(3, 9, "new"),
        c.Fill(ts=5, id=1, exec_id=1, instrument=7, side=0, price=100, qty=2, fee=0.25, maker=True),
        _order(1, 7, "filled"), _order(3, 9, "rejected"),
        c.Position(ts=5, instrument=7, position=2, realised=0.0, unrealised=1.5, fees=0.25, equity=1.25,
                   total_equity=1.25),
        c.Position(ts=6, instrument=7, position=0, realised=12.5, unrealised=0.0, fees=0.75, equity=11.75,
                   total_equity=11.75),
        c.Position(ts=6, instrument=9, position=-3, realised=-1.0, unrealised=-0.5, fees=0.125, equity=-1.625,
                   total_equity=10.125),
        c.Decision(ts=6, instrument=7, p=0.25, target=-1, action=DECISION_ACTIONS.index("order_sent"), position=0),
        c.Decision(ts=7, instrument=7, p=0.625, target=1, action=DECISION_ACTIONS.index("none"), position=0),
        c.Heartbeat(ts=1_000_000, service="observer", instance=1, seq=3, state="running",
                    counters={"conflated.positions": 40, "conflated.decisions": 2, "dropped.executions": 5,
                              "queue.depth": 7, "queue.max": 11}),
    ]
    for m in msgs:
        view.update(m)
    text = _text(view)
    btc = _row(text, "BTCUSDT")
    #        pos  realised  unrealised fees   equity  orders open fills lots decisions last decision
    assert btc[1:12] == ["0", "12.5000", "0.0000", "0.7500", "11.7500", "4", "1", "1", "2", "2", "none"]
    assert btc[12:] == ["+1", "0.625"]  # the last decision, not the first
    other = _row(text, "9")
    assert other[1:11] == ["-3", "-1.0000", "-0.5000", "0.1250", "-1.6250", "2", "0", "0", "0", "0"]
    assert other[11] == "-"  # no decision yet
    assert "total equity 10.1250" in text
    assert "conflated 42, dropped executions 5, queue 7 (max 11)" in text
    assert "lag 2.0 ms" in text  # the heartbeat's age when the view received it
    assert "engine running" in text and "no per-stage samples" in text
    figures = view.as_json()
    assert figures["instruments"]["7"]["open_orders"] == 1 and figures["total_equity"] == 10.125
    assert not figures["ended"]


def test_latency_samples_and_the_end_are_shown_and_bad_frames_counted():
    view = LiveView(clock=lambda: 1)
    samples = np.arange(1, 1001, dtype=np.int64) * 1_000  # 1..1000 µs
    perf = c.pack(c.PerfSample, samples, seq=0, ts=1, service="engine", stage="tick_to_decision")
    view.feed(c.TELEMETRY, c.Codec(c.TELEMETRY).encode(perf))
    view.feed(c.POSITIONS, b"\xc1 not a message")
    view.feed(b"zzz/", b"\x90")
    view.feed(c.TELEMETRY, c.Codec(c.TELEMETRY).encode(
        c.Heartbeat(ts=1, service="engine", instance=1, seq=0, state="stopping")))
    assert not view.ended
    view.feed(c.TELEMETRY, c.Codec(c.TELEMETRY).encode(
        c.Heartbeat(ts=1, service="observer", instance=1, seq=9, state="stopping")))
    assert view.ended and view.frames == 3 and view.rejected == 2
    text = _text(view)
    row = _row(text, "engine")
    assert row[1:] == ["tick_to_decision", "1,000", f"{np.percentile(samples, 50) / 1e3:,.1f}",
                       f"{np.percentile(samples, 99) / 1e3:,.1f}", "1,000.0"]
    assert "engine finished" in text and "rejected 2" in text and "no per-stage samples" not in text


def test_paper_live_draws_the_sessions_figures(capsys):
    code = main(["paper", "--events", "6000", "--seed", "5", "--model", str(MODEL_DIR), "--live", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    summary = json.loads(out)  # the view went to stderr
    assert summary["observe"] is not None and summary["counters"]["observer"]["observers"] >= 1
    assert summary["fills"] > 0
    k = summary["counters"]["observer"]
    assert k["sent.executions"] == summary["orders"] + summary["fills"]  # the view kept up with every execution
    assert "positions and P&L" in err and "engine finished" in err
    assert f"total equity {summary['pnl']:,.4f}" in err


def test_ctl_watch_attaches_to_an_announced_session(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(control, "pointer_file", lambda: tmp_path / "paper.endpoint")
    box: dict = {}

    def session() -> None:
        try:
            box["out"] = run_paper(None, seed=5, n_events=6000, model=MODEL_DIR, observe=f"ipc://{tmp_path}/obs",
                                   observers=1, announce=True)
        except BaseException as exc:
            box["error"] = exc
    th = threading.Thread(target=session, daemon=True)
    th.start()
    # The session waits for this observer; it finds the endpoint the session announced.
    for _ in range(200):
        if (tmp_path / "paper.observe").exists():
            break
        th.join(0.05)
    code = main(["ctl", "watch", "--json", "--timeout", "30"])
    out, err = capsys.readouterr()
    th.join(120)
    assert not th.is_alive() and "error" not in box, box.get("error")
    assert code == 0, err
    figures = json.loads(out)
    paper = box["out"]
    assert figures["ended"] and figures["total_equity"] == paper.pnl
    (inst,) = figures["instruments"].values()
    assert inst["order_events"] == len(paper.orders) and inst["fills"] == len(paper.fills)
    assert inst["filled_lots"] == sum(f.qty for f in paper.fills)
    assert not (tmp_path / "paper.observe").exists()  # taken back at the end


def test_ctl_watch_without_a_session_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(control, "pointer_file", lambda: tmp_path / "paper.endpoint")
    assert main(["ctl", "watch"]) == 2
    assert "no running paper session with observers" in capsys.readouterr().err
    assert main(["ctl", "watch", "--endpoint", "tcp://127.0.0.1:1"]) == 2
    assert "CURVE" in capsys.readouterr().err
    assert main(["ctl", "watch", "--endpoint", f"ipc://{tmp_path}/none", "--timeout", "0.3"]) == 2
    err = capsys.readouterr().err
    assert "nothing from" in err and "Traceback" not in err


@pytest.mark.parametrize("argv,why", [(["--observe", "tcp://127.0.0.1:5"], "CURVE"),
                                      (["--control", "tcp://127.0.0.1:5"], "CURVE"),
                                      (["--keys", "/nonexistent/keys"], "keys directory")])
def test_paper_refuses_tcp_without_keys_before_anything_starts(argv, why, capsys):
    assert main(["paper", "--events", "100", *argv]) == 2
    err = capsys.readouterr().err
    assert why in err and "Traceback" not in err
