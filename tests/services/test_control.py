"""Control commands through the engine service: kill, flatten, pause/resume and status act
between pieces, are answered on CONTROL_REPLIES with the command's trace id, are journaled with
the market data, and a journal replay applies them at the same place."""
from __future__ import annotations

import pytest
from paper_helpers import CONFIG, MODEL_DIR

from bot4 import contracts as c
from bot4.services.engine import EngineService, replay_journal
from bot4.services.feed import Feed
from bot4.sim import generate

SEED, EVENTS = 11, 20_000
CTL = c.Codec(c.CONTROL)
# The kill switch's own triggers off, so a trip is the command's.
NO_TRIPS = {**CONFIG, "kill_switch": {"max_consecutive_rejects": 0, "max_drawdown": 1.0, "max_latency_ns": 0}}


@pytest.fixture(scope="module")
def data():
    return generate(seed=SEED, n_events=EVENTS)


def _frames(data):
    feed = Feed([data], batch_events=512)
    frames = [(f.topic, bytes(f.frame)) for f in feed.frames()]
    end = feed.end_frame()
    return frames, (end.topic, bytes(end.frame))


def _run(data, frames, **kw):
    eng = EngineService(data.specs, l3=list(data.specs), model=MODEL_DIR, config=NO_TRIPS, **kw)
    out: list[tuple[bytes, bytes]] = []
    summary = eng.run_frames(frames, lambda t, f: out.append((t, bytes(f))))
    return eng, summary, out


def _replies(out):
    dec = c.Codec(c.CONTROL_REPLIES)
    return [dec.decode(f) for t, f in out if t == c.CONTROL_REPLIES]


def test_kill_mid_session_flattens_and_stops_trading(data):
    frames, end = _frames(data)
    clean, _, _ = _run(data, [*frames, end])
    at = len(frames) // 3
    kill = (c.CONTROL, CTL.encode(c.Kill(trace=77, ts=1, reason="drill")))
    eng, summary, out = _run(data, [*frames[:at], kill, *frames[at:], end])
    r = eng.result
    assert r.kill_reason == "manual" and r.counters["commands"] == 1
    assert summary["counters"]["commands_applied"] == 1
    (reply,) = _replies(out)
    assert reply.trace == 77 and reply.ok and reply.command == "kill"
    # (the service hands the records out as messages; the result keeps the totals) the killed
    # run traded before the kill, sent far fewer orders than the clean run and ends flat
    killed, full = r.instruments[0], clean.result.instruments[0]
    assert 0 < killed["orders"] < full["orders"] // 2
    assert killed["position"] == 0 and r.counters["kill_switch_closes"] + r.counters["cancels_sent"] > 0
    assert clean.result.counters["commands"] == 0 and clean.result.kill_reason == "none"


def test_pause_resume_status_and_refusals(data):
    frames, end = _frames(data)
    at = len(frames) // 4
    cmds = [c.Pause(trace=1, ts=1), c.Status(trace=2, ts=1), c.Resume(trace=3, ts=1),
            c.Flatten(trace=4, ts=1, instrument=5), c.SetParameter(trace=5, ts=1, key="strategy.x", value=1)]
    ctl = [(c.CONTROL, CTL.encode(m)) for m in cmds]
    eng, summary, out = _run(data, [*frames[:at], *ctl[:2], *frames[at:2 * at], *ctl[2:], *frames[2 * at:], end])
    replies = {r.trace: r for r in _replies(out)}
    assert replies[1].ok and replies[2].ok and replies[3].ok
    assert replies[2].data["paused"] is True
    assert not replies[4].ok and "instrument" in replies[4].error
    assert not replies[5].ok and replies[5].error.startswith("unknown key strategy.x of threshold_bracket")
    assert summary["counters"]["commands_applied"] == 3 and summary["counters"]["commands_refused"] == 2
    # a garbage control frame is a counted rejection, not a crash
    eng2, summary2, _ = _run(data, [*frames[:at], (c.CONTROL, b"\x93\x01"), *frames[at:], end])
    assert sum(v for k, v in summary2["counters"].items() if k.startswith("ctl.rejected.")) == 1


def test_paused_engine_sends_no_new_orders(data):
    frames, end = _frames(data)
    pause = (c.CONTROL, CTL.encode(c.Pause(trace=1, ts=1)))
    eng, _, out = _run(data, [pause, *frames, end])
    assert eng.result.instruments[0]["orders"] == 0  # the strategy was never called
    assert eng.result.counters["decisions"] > 1000  # decisions still made and recorded (action none)
    dec = c.Codec(c.DECISIONS)
    actions = {dec.decode(f).action for t, f in out if t == c.DECISIONS}
    assert actions == {0}


def test_journal_replay_applies_commands_at_the_same_place(data, tmp_path):
    frames, end = _frames(data)
    at = len(frames) // 2
    flat = (c.CONTROL, CTL.encode(c.Flatten(trace=9, ts=1)))
    _, _, out = _run(data, [*frames[:at], flat, *frames[at:], end], journal=tmp_path / "j", fsync="never")
    fresh = EngineService(data.specs, l3=list(data.specs), model=MODEL_DIR, config=NO_TRIPS)
    replayed = replay_journal(tmp_path / "j", fresh)
    keep = (c.EXECUTIONS, c.CONTROL_REPLIES)
    assert [x for x in replayed if x[0] in keep] == [x for x in out if x[0] in keep]
    assert fresh.result.counters["commands"] == 1


# -- live changes: parameters, risk config, model swap ----------------------------------------
def _outputs(out, topics=(c.EXECUTIONS, c.POSITIONS)):
    return [x for x in out if x[0] in topics]


def _decisions(out):
    dec = c.Codec(c.DECISIONS)
    return [dec.decode(f) for t, f in out if t == c.DECISIONS]


def _cmd(msg):
    return (c.CONTROL, CTL.encode(msg))


def test_parameters_set_before_the_data_equal_a_run_with_that_config(data):
    frames, end = _frames(data)
    cmds = [c.SetParameter(trace=1, ts=1, key="risk.pre_trade.max_position_lots", value=3),
            c.SetParameter(trace=2, ts=1, key="strategy.stop_ticks", value=7),
            c.SetParameter(trace=3, ts=1, key="engine.crisis_vpin", value=0.9)]
    eng, summary, out = _run(data, [*(_cmd(m) for m in cmds), *frames, end])
    replies = {r.trace: r for r in _replies(out)}
    assert all(r.ok for r in replies.values()), replies
    assert replies[1].data == {"key": "risk.pre_trade.max_position_lots", "old": 10, "new": 3}
    assert replies[2].data == {"key": "strategy.stop_ticks", "old": 5, "new": 7}
    assert summary["counters"]["commands_applied"] == 3 and eng.result.counters["commands"] == 2  # strategy: not the engine's
    changed = {**NO_TRIPS, "pre_trade": {**NO_TRIPS["pre_trade"], "max_position_lots": 3},
               "strategy": {**NO_TRIPS["strategy"], "stop_ticks": 7}, "engine": {"crisis_vpin": 0.9}}
    ref = EngineService(data.specs, l3=list(data.specs), model=MODEL_DIR, config=changed)
    ref_out: list = []
    ref.run_frames([*frames, end], lambda t, f: ref_out.append((t, bytes(f))))
    _, _, clean = _run(data, [*frames, end])
    assert _outputs(out) == _outputs(ref_out) != _outputs(clean)


def test_a_lower_position_limit_mid_session_caps_positions_from_then_on(data):
    frames, end = _frames(data)
    at = len(frames) // 3
    _, _, out = _run(data, [*frames[:at], _cmd(c.SetParameter(trace=4, ts=1, key="risk.pre_trade.max_position_lots",
                                                              value=1)), *frames[at:], end])
    pos = c.Codec(c.POSITIONS)
    at_reply = next(i for i, (t, _) in enumerate(out) if t == c.CONTROL_REPLIES)
    before = [abs(pos.decode(f).position) for t, f in out[:at_reply] if t == c.POSITIONS]
    # orders already working when the limit fell may still fill (an accepted order is never
    # revoked); once the position is back at or below the new limit, it stays there
    after = [abs(pos.decode(f).position) for t, f in out[at_reply:] if t == c.POSITIONS]
    assert max(before) > 1
    back = next(i for i, p in enumerate(after) if p <= 1)
    assert max(after[back:]) <= 1 and len(after) - back > 100


@pytest.mark.parametrize("key,value,why", [
    ("risk.pre_trade.no_such_limit", 1, "unknown key risk.pre_trade.no_such_limit"),
    ("risk.pre_trade.max_position_lots", -2, "Expected `int` >= 0"),
    ("risk.sizing.kelly_fraction", float("nan"), "is not a finite number"),
    ("risk.sizing.kelly_fraction", float("inf"), "is not a finite number"),
    ("risk.pre_trade.max_open_orders", "many", "Expected `int`, got `str`"),
    ("engine.vol_from_features", 1, "Expected `bool`, got `int`"),
    ("engine.stp", 2, "engine.stp cannot change"),
    ("sim.entry_latency_ns", 5, "fixed for a session"),
    ("strategy.name", "market_maker", "strategy cannot change"),
    ("nonsense", 1, "expected a dotted TOML path"),
    ("portfolio.x", 1, "unknown section"),
])
def test_bad_parameters_are_refused_and_change_nothing(data, key, value, why):
    frames, end = _frames(data)
    at = len(frames) // 2
    _, _, clean = _run(data, [*frames, end])
    eng, summary, out = _run(data, [*frames[:at], _cmd(c.SetParameter(trace=6, ts=1, key=key, value=value)),
                                    *frames[at:], end])
    (reply,) = _replies(out)
    assert not reply.ok and why in reply.error and "\n" not in reply.error
    assert summary["counters"]["commands_refused"] == 1 and eng.result.counters["commands"] == 0
    assert _outputs(out) == _outputs(clean)


def test_config_update_applies_the_changed_risk_keys_as_a_whole(data):
    from bot4.config import Config

    frames, end = _frames(data)
    base = Config.from_dict({"risk": {"pre_trade": NO_TRIPS["pre_trade"], "kill_switch": NO_TRIPS["kill_switch"]}})
    new = Config.from_dict({"risk": {"pre_trade": {**NO_TRIPS["pre_trade"], "max_position_lots": 2},
                                     "kill_switch": NO_TRIPS["kill_switch"], "sizing": {"kelly_fraction": 0.1}}})
    same = c.ConfigUpdate(trace=1, ts=1, risk=base.risk)
    upd = c.ConfigUpdate(trace=2, ts=1, risk=new.risk)
    _, _, out = _run(data, [_cmd(same), _cmd(upd), *frames, end])
    r1, r2 = _replies(out)
    assert r1.ok and r1.data == {"changed": {}}
    assert r2.ok and r2.data == {"changed": {"risk.pre_trade.max_position_lots": [10, 2],
                                             "risk.sizing.kelly_fraction": [0.25, 0.1]}}
    changed = {**NO_TRIPS, "pre_trade": {**NO_TRIPS["pre_trade"], "max_position_lots": 2},
               "sizing": {"kelly_fraction": 0.1}}
    ref = EngineService(data.specs, l3=list(data.specs), model=MODEL_DIR, config=changed)
    ref_out: list = []
    ref.run_frames([*frames, end], lambda t, f: ref_out.append((t, bytes(f))))
    assert _outputs(out) == _outputs(ref_out)
    # a risk config outside the declared bounds never decodes: a counted rejection, no change
    bad = CTL.encode(upd).replace(b"max_position_lots\x02", b"max_position_lots\xff")
    eng, summary, out2 = _run(data, [(c.CONTROL, bad), *frames, end])
    assert not _replies(out2) and sum(v for k, v in summary["counters"].items() if k.startswith("ctl.rejected.")) == 1


# -- model swap ---------------------------------------------------------------------------------
def _model_copy(tmp_path, name, edit=None, edit_bytes=None):
    import json
    import shutil

    d = tmp_path / name
    shutil.copytree(MODEL_DIR, d)
    if edit is not None:
        side = json.loads((d / "model.json").read_text())
        edit(side)
        (d / "model.json").write_text(json.dumps(side))
    if edit_bytes is not None:
        f = d / "model.onnx"
        f.write_bytes(edit_bytes(f.read_bytes()))
    return d


def _sha(d):
    import json

    return json.loads((d / "model.json").read_text())["sha256"]


def _uncalibrated(side):
    side.pop("calibration")  # the same trees, raw scores: every p differs


def test_swap_mid_session_scores_with_the_new_model_from_then_on(data, tmp_path):
    import numpy as np

    frames, end = _frames(data)
    new = _model_copy(tmp_path, "new", _uncalibrated)
    at = len(frames) // 2
    _, _, out = _run(data, [*frames[:at], _cmd(c.SwapModel(trace=8, ts=1, path=str(new), sha256=_sha(new))),
                            *frames[at:], end])
    (reply,) = _replies(out)
    assert reply.ok and reply.data["sha256"] == _sha(new)
    _, _, old_run = _run(data, [*frames, end])
    new_svc = EngineService(data.specs, l3=list(data.specs), model=new, config=NO_TRIPS)
    new_run: list = []
    new_svc.run_frames([*frames, end], lambda t, f: new_run.append((t, bytes(f))))
    at_reply = next(i for i, (t, _) in enumerate(out) if t == c.CONTROL_REPLIES)
    swapped = {d.ts: d.p for d in _decisions(out[at_reply:])}
    before = {d.ts: d.p for d in _decisions(out[:at_reply])}
    old = {d.ts: d.p for d in _decisions(old_run)}
    newp = {d.ts: d.p for d in _decisions(new_run)}
    assert len(before) > 500 and len(swapped) > 500
    # decision times do not depend on the model: each decision's score is the model in its slot
    assert all(old[t] == p for t, p in before.items())
    assert all(newp[t] == p for t, p in swapped.items())
    assert np.mean([old[t] != p for t, p in swapped.items()]) > 0.9


def test_swap_before_the_data_equals_a_run_with_the_new_model(data, tmp_path):
    frames, end = _frames(data)
    new = _model_copy(tmp_path, "new", _uncalibrated)
    _, _, out = _run(data, [_cmd(c.SwapModel(trace=1, ts=1, path=str(new), sha256=_sha(new))), *frames, end])
    new_svc = EngineService(data.specs, l3=list(data.specs), model=new, config=NO_TRIPS)
    new_run: list = []
    new_svc.run_frames([*frames, end], lambda t, f: new_run.append((t, bytes(f))))
    keep = (c.DECISIONS, c.EXECUTIONS, c.POSITIONS)
    assert _outputs(out, keep) == _outputs(new_run, keep)


def _tampered(b):
    i = len(b) // 2
    return b[:i] + bytes([b[i] ^ 0xFF]) + b[i + 1:]


def _other_features(side):
    side["features"]["window"] = 64


def _fewer_names(side):
    side["feature_names"] = side["feature_names"][:-1]
    side["n_features"] -= 1


@pytest.mark.parametrize("case,why", [
    ("missing", "does not exist"),
    ("tampered", "SHA-256 mismatch"),
    ("corrupt_sidecar", "not valid JSON"),
    ("wrong_sha", "the command expects"),
    ("other_features", "another feature config (window differ"),
    ("fewer_features", "feature-count mismatch"),
])
def test_bad_models_are_refused_and_the_old_one_keeps_trading(data, tmp_path, case, why):
    frames, end = _frames(data)
    sha = "0" * 64
    if case == "missing":
        path = tmp_path / "nowhere"
    elif case == "tampered":
        path = _model_copy(tmp_path, case, edit_bytes=_tampered)
        sha = _sha(path)
    elif case == "corrupt_sidecar":
        path = _model_copy(tmp_path, case)
        (path / "model.json").write_text('{"sha256": "ab", truncated')
    elif case == "wrong_sha":
        path = _model_copy(tmp_path, case, _uncalibrated)
    elif case == "other_features":
        path = _model_copy(tmp_path, case, _other_features)
        sha = _sha(path)
    else:
        path = _model_copy(tmp_path, case, _fewer_names)
        sha = _sha(path)
    at = len(frames) // 2
    _, _, clean = _run(data, [*frames, end])
    eng, summary, out = _run(data, [*frames[:at], _cmd(c.SwapModel(trace=3, ts=1, path=str(path), sha256=sha)),
                                    *frames[at:], end])
    (reply,) = _replies(out)
    assert not reply.ok and why in reply.error, reply.error
    assert summary["counters"]["commands_refused"] == 1
    keep = (c.DECISIONS, c.EXECUTIONS, c.POSITIONS)
    assert _outputs(out, keep) == _outputs(clean, keep)


def test_status_reports_the_running_config_and_model(data, tmp_path):
    frames, end = _frames(data)
    new = _model_copy(tmp_path, "new", _uncalibrated)
    cmds = [c.Status(trace=1, ts=1), c.SetParameter(trace=2, ts=1, key="risk.kill_switch.max_drawdown", value=0.5),
            c.SwapModel(trace=3, ts=1, path=str(new), sha256=_sha(new)), c.Status(trace=4, ts=1)]
    _, _, out = _run(data, [*frames[:5], *(_cmd(m) for m in cmds), *frames[5:], end])
    r = {x.trace: x for x in _replies(out)}
    assert r[1].data["model"] == _sha(MODEL_DIR) and r[4].data["model"] == _sha(new)
    assert r[1].data["config"]["kill_switch"]["max_drawdown"] == 1.0
    assert r[4].data["config"]["kill_switch"]["max_drawdown"] == 0.5
    assert r[4].data["strategy"]["name"] == "threshold_bracket" and r[4].data["strategy"]["stop_ticks"] == 5


def test_journal_replay_repeats_live_changes(data, tmp_path):
    frames, end = _frames(data)
    new = _model_copy(tmp_path, "new", _uncalibrated)
    third = len(frames) // 3
    cmds = [_cmd(c.SetParameter(trace=1, ts=1, key="strategy.target_ticks", value=12)),
            _cmd(c.SwapModel(trace=2, ts=1, path=str(new), sha256=_sha(new))),
            _cmd(c.SetParameter(trace=3, ts=1, key="risk.pre_trade.max_position_lots", value=-1))]
    _, _, out = _run(data, [*frames[:third], *cmds[:2], *frames[third:2 * third], cmds[2], *frames[2 * third:], end],
                     journal=tmp_path / "j", fsync="never")
    fresh = EngineService(data.specs, l3=list(data.specs), model=MODEL_DIR, config=NO_TRIPS)
    replayed = replay_journal(tmp_path / "j", fresh)
    keep = (c.DECISIONS, c.EXECUTIONS, c.POSITIONS, c.CONTROL_REPLIES)
    assert [x for x in replayed if x[0] in keep] == [x for x in out if x[0] in keep]
    assert [r.ok for r in _replies(out)] == [True, True, False]


def test_control_server_answers_commands_left_at_the_end(tmp_path):
    """A command the engine never took (it had not subscribed, or the session ended first) is
    answered with ok=False when the server closes, so its client does not wait out its timeout."""
    import threading

    import zmq

    from bot4.services.control import ControlServer, send_command

    ctx = zmq.Context()
    server = ControlServer(ctx, f"ipc://{tmp_path}/ctl", "inproc://ctl-pub")
    box = {}
    client = threading.Thread(target=lambda: box.update(r=send_command(c.Flatten(trace=42, ts=1),
                                                                       f"ipc://{tmp_path}/ctl", timeout_s=30)))
    client.start()
    assert server.router.poll(10_000)
    server.on_client()
    assert server.pending and list(server.waiting)  # held: no engine subscribed yet
    server.close("the session ended")
    client.join(30)
    ctx.term()
    assert not box["r"].ok and box["r"].trace == 42 and box["r"].error == "the session ended"


@pytest.fixture(scope="module")
def two():
    from bot4.data.market_data import merge

    return merge([generate(seed=11, n_events=20_000).as_instrument(1, "AAA"),
                  generate(seed=12, n_events=20_000).as_instrument(2, "BBB")])


def _run_two(data, frames):
    eng = EngineService(data.specs, l3=[1, 2], config={"sim": {"entry_latency_ns": 200_000},
                                                      "kill_switch": NO_TRIPS["kill_switch"]}, strategy="market_maker")
    out: list[tuple[bytes, bytes]] = []
    summary = eng.run_frames(frames, lambda t, f: out.append((t, bytes(f))))
    return eng, summary, out


def _orders_by_instrument(out):
    ex = c.Codec(c.EXECUTIONS)
    msgs = [ex.decode(f) for t, f in out if t == c.EXECUTIONS]
    return {i: [m for m in msgs if isinstance(m, c.OrderEvent) and m.instrument == i] for i in (1, 2)}


def test_one_instrument_halted_the_other_trades_on(two):
    frames, end = _frames(two)
    _, _, clean = _run_two(two, [*frames, end])
    at = len(frames) // 3
    cmds = [(c.CONTROL, CTL.encode(c.Kill(trace=1, ts=1, instrument=2))),
            (c.CONTROL, CTL.encode(c.Status(trace=2, ts=1)))]
    eng, summary, out = _run_two(two, [*frames[:at], *cmds, *frames[at:], end])
    r = eng.result
    replies = {x.trace: x for x in _replies(out)}
    assert replies[1].ok and replies[2].data["instruments"] == {"1": {"paused": False, "halted": False},
                                                               "2": {"paused": False, "halted": True}}
    assert r.kill_reason == "none"  # the kill switch itself was not tripped
    by = {d["instrument"]: d for d in r.instruments}
    full = {d["instrument"]: d for d in _run_two(two, [*frames, end])[0].result.instruments}
    assert by[2]["position"] == 0 and 0 < by[2]["orders"] < full[2]["orders"] // 2
    clean_by, got_by = _orders_by_instrument(clean), _orders_by_instrument(out)
    assert len(got_by[1]) > 100 and len(got_by[2]) < len(clean_by[2]) // 2  # 1 trades on, 2 stopped


def test_one_instrument_paused_the_other_trades(two):
    frames, end = _frames(two)
    pause = [(c.CONTROL, CTL.encode(c.Pause(trace=1, ts=1, instrument=1))),
             (c.CONTROL, CTL.encode(c.Status(trace=2, ts=1)))]
    eng, summary, out = _run_two(two, [*pause, *frames, end])
    replies = {x.trace: x for x in _replies(out)}
    assert replies[2].data["instruments"]["1"] == {"paused": True, "halted": False}
    assert replies[2].data["instruments"]["2"] == {"paused": False, "halted": False} and not replies[2].data["paused"]
    by = _orders_by_instrument(out)
    assert by[1] == [] and len(by[2]) > 100


def test_resume_flatten_one_and_an_unknown_instrument_refused(two):
    frames, end = _frames(two)
    q = len(frames) // 4
    pause = [(c.CONTROL, CTL.encode(c.Pause(trace=1, ts=1, instrument=1)))]
    later = [(c.CONTROL, CTL.encode(c.Resume(trace=2, ts=1, instrument=1))),
             (c.CONTROL, CTL.encode(c.Flatten(trace=3, ts=1, instrument=2))),
             (c.CONTROL, CTL.encode(c.Kill(trace=4, ts=1, instrument=9)))]
    eng, summary, out = _run_two(two, [*pause, *frames[:q], *later, *frames[q:], end])
    replies = {x.trace: x for x in _replies(out)}
    assert replies[1].ok and replies[2].ok and replies[3].ok
    assert not replies[4].ok and "instrument 9 is not traded by this engine" in replies[4].error
    assert summary["counters"]["commands_applied"] == 3 and summary["counters"]["commands_refused"] == 1
    assert eng.result.counters["commands"] == 3 and eng.result.kill_reason == "none"
    by = _orders_by_instrument(out)
    assert len(by[1]) > 50  # resumed: instrument 1 trades after the pause


def test_refresh_weights_recomputes_the_adaptive_ensemble_at_once(data):
    frames, end = _frames(data)
    at = len(frames) // 2
    cfg = {**NO_TRIPS, "ensemble": {"mode": "adaptive", "horizon_ns": 200_000_000}}
    eng = EngineService(data.specs, l3=list(data.specs), model=MODEL_DIR, shadow=[MODEL_DIR], config=cfg)
    out: list[tuple[bytes, bytes]] = []
    eng.run_frames([*frames[:at], _cmd(c.RefreshWeights(trace=5, ts=1)), *frames[at:], end],
                   lambda t, f: out.append((t, bytes(f))))
    (reply,) = _replies(out)
    assert (reply.trace, reply.command, reply.ok, reply.data) == (5, "refresh_weights", True, {"refreshed": 1})
    assert eng.result.counters["ensemble_flag_refreshes"] == 1
    # without an ensemble the command is answered and changes nothing
    eng, _, out = _run(data, [_cmd(c.RefreshWeights(trace=6, ts=1)), *frames, end])
    (reply,) = _replies(out)
    assert reply.ok and reply.data == {"refreshed": 0} and eng.result.counters["ensemble_flag_refreshes"] == 0
