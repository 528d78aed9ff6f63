"""`bot4 ctl`: commands to a running paper session (bot4.services.control.send_command) from the
command line, and `bot4 ctl watch`, the live view (bot4.services.live_view) of a session's
observer endpoint. Exit status: 0 applied (watch: the session was seen), 1 refused by the session
(the reason printed), 2 a usage error or no session to talk to (one line, no traceback)."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import msgspec

from bot4.errors import InputError

EXIT_REFUSED = 1


def parse_value(text: str) -> bool | int | float | str:
    """A SetParameter value from its text: true/false, an integer, a number, else the text."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def build_command(args: argparse.Namespace) -> Any:
    """The Command a parsed `bot4 ctl` line sends (a fresh trace id, the wall clock)."""
    from bot4 import contracts as c

    base = {"trace": c.new_trace_id(), "ts": time.time_ns()}
    action = args.action
    if action == "status":
        return c.Status(**base)
    if action == "kill":
        return c.Kill(**base, reason=args.reason, instrument=args.instrument)
    if action == "flatten":
        return c.Flatten(**base, instrument=args.instrument)
    if action == "pause":
        return c.Pause(**base, instrument=args.instrument)
    if action == "resume":
        return c.Resume(**base, instrument=args.instrument)
    if action == "refresh-weights":
        return c.RefreshWeights(**base)
    if action == "set":
        return c.SetParameter(**base, key=args.key, value=parse_value(args.value))
    if action == "swap-model":
        return c.SwapModel(**base, path=args.dir, sha256=_model_digest(args.dir, args.sha256))
    assert action == "push"
    return c.ConfigUpdate(**base, risk=_risk_of(args.config))


def _model_digest(directory: str, given: str | None) -> str:
    """The digest the session must find: --sha256, else the one the directory's sidecar records
    now (the session re-reads the directory and checks the file against both)."""
    import re
    from pathlib import Path

    if given is not None:
        if not re.fullmatch("[0-9a-fA-F]{64}", given):
            raise InputError("--sha256", f"{given!r} is not a SHA-256 hex digest (64 hex digits)")
        return given.lower()
    sidecar = Path(directory) / "model.json"
    try:
        digest = json.loads(sidecar.read_text()).get("sha256")
    except (OSError, ValueError, AttributeError) as exc:
        raise InputError("DIR", f"cannot read the model's sidecar {sidecar} ({exc})",
                         fix="give a model directory (model.json + model.onnx)") from None
    if not isinstance(digest, str) or not re.fullmatch("[0-9a-fA-F]{64}", digest):
        raise InputError("DIR", f"{sidecar} has no valid sha256", fix="pass --sha256 HEX")
    return digest.lower()


def _risk_of(path: str) -> Any:
    """The [risk] tables of a TOML config, validated as `bot4 config check` does; a file with
    other tables is refused (a ConfigUpdate carries the risk configuration only)."""
    from bot4.config import load_config

    cfg = load_config(path)  # ConfigError names the file and the field
    with open(path, "rb") as f:
        doc = msgspec.toml.decode(f.read())
    other = sorted(set(doc) - {"risk"})
    if other:
        raise InputError("CONFIG", f"{path} has [{'], ['.join(other)}] besides [risk]; push sends the risk "
                         "configuration only", fix="change other keys one by one with `bot4 ctl set KEY VALUE`")
    return cfg.risk


def _print_reply(reply: Any, as_json: bool) -> None:
    if as_json:
        fields = {f: getattr(reply, f) for f in reply.__struct_fields__}  # the wire form is an array
        print(json.dumps(msgspec.to_builtins(fields), indent=2, sort_keys=True))
        return
    if not reply.ok:
        print(f"{reply.command}: refused: {reply.error}")
        return
    print(f"{reply.command}: ok")
    for k, v in reply.data.items():
        print(f"  {k}: {json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v}")


def _cmd_watch(args: argparse.Namespace) -> int:
    import zmq
    from rich.console import Console

    from bot4.services.control import ControlError
    from bot4.services.live_view import subscribe, watch
    from bot4.services.observer import announced_observer, check_observe_endpoint, observer_pointer_file

    endpoint = args.endpoint or announced_observer()
    if endpoint is None:
        raise InputError("--endpoint", f"no running paper session with observers announced (no "
                         f"{observer_pointer_file()})", fix="pass --endpoint ADDR as `bot4 paper --observe` printed it")
    try:
        check_observe_endpoint(endpoint, curve=args.keys is not None)
    except ValueError as exc:
        raise InputError("--endpoint", str(exc)) from None
    if not args.timeout > 0:
        raise InputError("--timeout", f"must be a positive number of seconds, got {args.timeout}")
    ctx = zmq.Context()
    sock = subscribe(ctx, endpoint, keys=args.keys, name=args.name)
    try:
        view = watch(sock, console=Console(stderr=args.json), idle_timeout_s=args.timeout)
    finally:
        sock.close()
        ctx.term()
    if args.json:
        print(json.dumps(view.as_json(), indent=2, sort_keys=True))
    if not view.frames:
        raise ControlError(f"nothing from {endpoint} within {args.timeout:g} s: is the session running with "
                           "--observe (or --live)?" + (" Does it accept this client's CURVE key?"
                                                       if endpoint.startswith("tcp://") else ""))
    return 0


def _cmd_ctl(args: argparse.Namespace) -> int:
    from bot4.services.control import announced_endpoint, check_endpoint, pointer_file, send_command

    if args.action == "watch":
        return _cmd_watch(args)
    endpoint = args.endpoint or announced_endpoint()
    if endpoint is None:
        raise InputError("--endpoint", f"no running paper session announced (no {pointer_file()})",
                         fix="pass --endpoint ADDR as `bot4 paper` printed it")
    try:
        check_endpoint(endpoint, curve=args.keys is not None)
    except ValueError as exc:
        raise InputError("--endpoint", str(exc)) from None
    if not args.timeout > 0:
        raise InputError("--timeout", f"must be a positive number of seconds, got {args.timeout}")
    reply = send_command(build_command(args), endpoint, timeout_s=args.timeout, keys=args.keys, name=args.name)
    _print_reply(reply, args.json)
    return 0 if reply.ok else EXIT_REFUSED


def add_ctl_command(sub) -> None:
    """Registers `bot4 ctl ACTION ...`."""
    from bot4.services.control import DEFAULT_TIMEOUT_S

    secure = argparse.ArgumentParser(add_help=False)
    secure.add_argument("--keys", metavar="DIR", help="CURVE keys directory (`bot4 keys generate DIR`): needed for a "
                        "tcp endpoint")
    secure.add_argument("--name", metavar="NAME", help="this client's name in --keys (default: client)")
    common = argparse.ArgumentParser(add_help=False, parents=[secure])
    common.add_argument("--endpoint", metavar="ADDR",
                        help="the session's control endpoint (default: the latest session `bot4 paper` started)")
    common.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="S",
                        help=f"seconds to wait for the reply (default {DEFAULT_TIMEOUT_S:g})")
    common.add_argument("--json", action="store_true", help="print the reply as one JSON object")
    p = sub.add_parser("ctl", help="control a running paper session: status, set, kill, flatten, pause, resume, "
                                   "swap-model, push; watch it live")
    acts = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    w = acts.add_parser("watch", parents=[secure], help="the live view of a running session (its observer endpoint: "
                                                        "`bot4 paper --observe ADDR` or --live)")
    w.add_argument("--endpoint", metavar="ADDR", help="the session's observer endpoint (default: the latest session "
                                                      "`bot4 paper` started with observers)")
    w.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="S",
                   help=f"stop when nothing arrives for S seconds (default {DEFAULT_TIMEOUT_S:g})")
    w.add_argument("--json", action="store_true", help="draw on stderr; print the final figures as one JSON object")
    acts.add_parser("status", parents=[common], help="the session's state, config and model")
    k = acts.add_parser("kill", parents=[common], help="trip the kill switch: cancel, close, stay flat (with "
                                                       "--instrument: halt that one only, the others trade on)")
    k.add_argument("--reason", default="bot4 ctl kill", help="recorded with the command")
    one = [k, acts.add_parser("flatten", parents=[common], help="cancel and close every position, then trade on"),
           acts.add_parser("pause", parents=[common], help="stop sending new orders (working orders stay)"),
           acts.add_parser("resume", parents=[common], help="undo pause")]
    for q in one:
        q.add_argument("--instrument", type=int, metavar="ID", help="act on this instrument only (its id)")
    acts.add_parser("refresh-weights", parents=[common],
                    help="recompute the adaptive ensemble weights now (the [ensemble] mode adaptive)")
    s = acts.add_parser("set", parents=[common], help="change one parameter live, e.g. risk.pre_trade.max_position_lots 5")
    s.add_argument("key", help="dotted TOML path: engine.F, risk.sizing.F, risk.pre_trade.F, risk.kill_switch.F, "
                               "strategy.F")
    s.add_argument("value", help="true/false, a number or text; checked against the config schema by the session")
    m = acts.add_parser("swap-model", parents=[common], help="trade with another model directory from the next decision")
    m.add_argument("dir", help="model directory (model.json + model.onnx)")
    m.add_argument("--sha256", metavar="HEX", help="the digest the model must have (default: its sidecar's)")
    u = acts.add_parser("push", parents=[common], help="replace the risk configuration with a TOML file's [risk] tables")
    u.add_argument("config", help="TOML file with [risk.sizing], [risk.pre_trade], [risk.kill_switch] tables")
    p.set_defaults(func=_cmd_ctl)
