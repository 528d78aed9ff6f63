"""The control endpoint of a paper session, and its client.

A session binds a ROUTER socket at its control endpoint (ipc in its run folder by default) and an
XPUB socket the engine subscribes to (topic CONTROL). A client (a DEALER; `send_command`) sends
one Command frame; the server forwards it to the engine, which applies it between pieces and
answers on CONTROL_REPLIES with the command's trace id; the server routes that reply back to the
client that sent the trace id. A frame that is not a Command, a trace id already waiting for its
reply and a command still unanswered when the session ends are answered at once with ok=False and
the reason, so a client never waits for a reply that cannot come.

The latest session started with ``announce=True`` writes its endpoint to `pointer_file()`, so
`bot4 ctl` finds it without --endpoint.

A tcp control endpoint is served with CURVE only (bot4.services.security; `bot4 keys generate
DIR`): the ROUTER is a CURVE server whose clients a CurveGuard admits by key, so a peer without
CURVE or with a key the directory does not authorise is never answered (its handshake fails; the
guard counts the refusals). ipc and inproc endpoints are protected by the file system and the
process.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Any

import zmq

from bot4 import contracts as c
from bot4.errors import Bot4Error

DEFAULT_TIMEOUT_S = 10.0
_SUBSCRIBED = b"\x01" + c.CONTROL


class ControlError(Bot4Error):
    """A command that could not be delivered or got no reply (no session at the endpoint, a
    session that ended, a reply that is not a CommandReply)."""


def pointer_file() -> Path:
    """Where the latest announced session's control endpoint is written (per user)."""
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"bot4-{uid}" / "paper.endpoint"


def announced_endpoint() -> str | None:
    """The control endpoint of the latest announced session (None when there is none)."""
    try:
        text = pointer_file().read_text().strip()
    except OSError:
        return None
    return text or None


def check_endpoint(endpoint: str, *, curve: bool = False) -> None:
    """ValueError unless `endpoint` is an ipc:// or inproc:// address, or a tcp:// one with CURVE
    keys (curve=True): without them any peer could kill the session."""
    schemes = ("ipc://", "inproc://", "tcp://") if curve else ("ipc://", "inproc://")
    if not endpoint.startswith(schemes) or len(endpoint.split("://", 1)[1]) == 0:
        if endpoint.startswith("tcp://"):
            raise ValueError(f"control endpoint {endpoint!r}: tcp needs CURVE keys (keys=DIR, `--keys DIR`; create "
                             "them with `bot4 keys generate DIR`): commands from an unauthenticated peer could kill "
                             "the session")
        raise ValueError(f"control endpoint {endpoint!r}: expected ipc://PATH or inproc://NAME "
                         "(or tcp://HOST:PORT with CURVE keys)")


class ControlServer:
    """The session side: `endpoint` (ROUTER, clients) and `publish` (XPUB, the engine connects
    its SUB there). Drive it from one thread: poll `sockets`, then call `on_client` / `on_engine_join`
    for the ready ones, and `on_reply` with every CONTROL_REPLIES frame the engine published.
    keys, guard: the CURVE keys directory and the context's CurveGuard (required when `endpoint`
    or `publish` is tcp: the engines on other hosts then connect to `publish` as CURVE clients).

    engines: how many engines subscribe (shards). A command naming an instrument is answered by
    the engine trading it; any other command goes to every engine, and its client gets one reply
    once all of them answered (merge_replies: Status aggregated over the shards)."""

    def __init__(self, ctx: zmq.Context, endpoint: str, publish: str, *, announce: bool = False,
                 keys: Any = None, guard: Any = None, engines: int = 1):
        check_endpoint(endpoint, curve=keys is not None)
        if endpoint.startswith("tcp://") and guard is None:
            raise ValueError("a tcp control endpoint needs the context's CurveGuard (guard=)")
        self.endpoint = endpoint
        self.router = ctx.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 1_000)
        self.router.setsockopt(zmq.ROUTER_MANDATORY, 1)  # a reply to a client gone raises, counted below
        self._monitor = None
        if endpoint.startswith("tcp://"):
            from bot4.services.security import HandshakeMonitor, secure_server

            secure_server(self.router, keys, guard)
            # Counts the refused peers ZAP never sees (no CURVE at all: a protocol failure).
            self._monitor = HandshakeMonitor(self.router)
        self.xpub = ctx.socket(zmq.XPUB)
        self.xpub.setsockopt(zmq.LINGER, 1_000)
        self._pub_monitor = None
        if publish.startswith("tcp://"):
            from bot4.services.security import HandshakeMonitor, secure_server

            if guard is None or keys is None:
                self.router.close()
                raise ValueError(f"command publisher {publish}: tcp needs CURVE keys and the context's CurveGuard")
            secure_server(self.xpub, keys, guard)
            self._pub_monitor = HandshakeMonitor(self.xpub)
        self.engines = max(1, int(engines))
        self._joins = 0
        self.xpub.setsockopt(zmq.XPUB_VERBOSE, 1)  # every engine's subscription comes up, so all are counted
        self.sockets = (self.router, self.xpub)
        self.codec = c.Codec(c.CONTROL)
        self.replies = c.Codec(c.CONTROL_REPLIES)
        self.pending: dict[int, bytes] = {}
        # trace -> the replies still expected, and those in (source, CommandReply) so far
        self._expect: dict[int, int] = {}
        self._got: dict[int, list[tuple[str, c.CommandReply]]] = {}
        self.waiting: deque[bytes] = deque()  # commands held until the engine has subscribed
        self.joined = False
        #: commands, replies, refused, client_gone; on tcp also handshake.<outcome> (after close,
        #: bot4.services.security.HANDSHAKE_EVENTS)
        self.counters = dict.fromkeys(("commands", "replies", "refused", "client_gone"), 0)
        try:
            self.router.bind(endpoint)
            self.xpub.bind(publish)
        except zmq.ZMQError as exc:
            self.close()
            raise ValueError(f"control endpoint {endpoint}: cannot bind ({exc})") from None
        if endpoint.startswith("tcp://") and endpoint.endswith((":0", ":*")):
            self.endpoint = self.router.getsockopt_string(zmq.LAST_ENDPOINT)  # the port the system chose
        self._pointer = pointer_file() if announce else None
        if self._pointer is not None:
            self._pointer.parent.mkdir(mode=0o700, exist_ok=True)
            self._pointer.write_text(endpoint + "\n")

    def on_client(self) -> None:
        """One client frame off the ROUTER: forwarded to the engine, or answered with a refusal."""
        parts = self.router.recv_multipart()
        ident, frame = parts[0], parts[-1]
        self.counters["commands"] += 1
        cmd = self.codec.decode(frame)
        if isinstance(cmd, c.Rejection):
            self._refuse(ident, 0, "?", f"not a command frame ({cmd.reason}: {cmd.detail})")
            return
        tag = str(type(cmd).__struct_config__.tag)
        if cmd.trace == 0 or cmd.trace in self.pending:
            self._refuse(ident, cmd.trace, tag, "the trace id is 0 or already waiting for its reply; use a fresh one")
            return
        self.pending[cmd.trace] = ident
        self._expect[cmd.trace] = 1 if getattr(cmd, "instrument", None) is not None else self.engines
        if self.joined:
            self.xpub.send_multipart((c.CONTROL, frame))
        else:
            self.waiting.append(frame)

    def on_engine_join(self) -> None:
        """A subscription message on the XPUB: once every engine has subscribed to CONTROL, the
        commands held so far go out in order."""
        msg = self.xpub.recv()
        if msg == _SUBSCRIBED:
            self._joins += 1
        if msg == _SUBSCRIBED and self._joins >= self.engines and not self.joined:
            self.joined = True
            while self.waiting:
                self.xpub.send_multipart((c.CONTROL, self.waiting.popleft()))

    def on_reply(self, frame: bytes, source: str = "engine") -> None:
        """A CONTROL_REPLIES frame from engine `source`: routed to the client that sent its trace
        id (with several engines, once every engine the command went to answered, merged)."""
        reply = self.replies.decode(frame)
        if not isinstance(reply, c.CommandReply) or reply.trace not in self.pending:
            return
        expect = self._expect.get(reply.trace, 1)
        if expect <= 1 and reply.trace not in self._got:
            self._expect.pop(reply.trace, None)
            self._send(self.pending.pop(reply.trace), frame)
            return
        got = self._got.setdefault(reply.trace, [])
        got.append((source, reply))
        if len(got) < expect:
            return
        del self._got[reply.trace]
        self._expect.pop(reply.trace, None)
        self._send(self.pending.pop(reply.trace), self.replies.encode(merge_replies(got)))

    def close(self, reason: str = "the session ended before the engine applied the command") -> None:
        """Every command still waiting is answered with ok=False and `reason`; the sockets close."""
        for trace, ident in list(self.pending.items()):
            self._refuse(ident, trace, "?", reason)
        self.pending.clear()
        self._got.clear()
        self._expect.clear()
        if self._pub_monitor is not None:
            self.counters.update({f"publish.{k}": v for k, v in self._pub_monitor.counters().items()})
            self._pub_monitor.stop()
            self._pub_monitor = None
        if self._monitor is not None:
            self.counters.update(self._monitor.counters())
            self._monitor.stop()
            self._monitor = None
        if self._pointer is not None:
            try:
                if self._pointer.read_text().strip() == self.endpoint:
                    self._pointer.unlink()
            except OSError:
                pass
        self.router.close()
        self.xpub.close()

    def _refuse(self, ident: bytes, trace: int, command: str, error: str) -> None:
        self.counters["refused"] += 1
        reply = c.CommandReply(trace=trace, ts=time.time_ns(), command=command, ok=False, error=error)
        self._send(ident, self.replies.encode(reply))

    def _send(self, ident: bytes, frame: Any) -> None:
        try:
            self.router.send_multipart((ident, frame))
            self.counters["replies"] += 1
        except zmq.ZMQError:  # the client hung up before its reply: nothing else to do
            self.counters["client_gone"] += 1


def merge_replies(replies: list[tuple[str, c.CommandReply]]) -> c.CommandReply:
    """One reply for a command every engine (shard) answered, from (engine name, reply) pairs:
    ok when all are, the refusals' errors each prefixed with its engine; data holds every
    engine's own under "engines", and for Status also the aggregate: "instruments" (each
    engine's per-instrument entries, with the engine that trades it), "paused" (any engine),
    "buffered" and every integer counter summed over the engines ("totals"), and config,
    strategy and model when all engines agree (else see "engines")."""
    replies = sorted(replies, key=lambda r: r[0])
    first = replies[0][1]
    ok = all(r.ok for _, r in replies)
    error = "; ".join(f"{src}: {r.error}" for src, r in replies if not r.ok)
    data: dict[str, Any] = {"engines": {src: r.data for src, r in replies}}
    if first.command == "status":
        instruments: dict[str, Any] = {}
        totals: dict[str, int] = {}
        for src, r in replies:
            for i, entry in (r.data.get("instruments") or {}).items():
                instruments[i] = {**entry, "engine": src}
            for k, v in r.data.items():
                if isinstance(v, int) and not isinstance(v, bool):
                    totals[k] = totals.get(k, 0) + v
        data.update({"instruments": dict(sorted(instruments.items(), key=lambda kv: int(kv[0]))),
                     "paused": any(bool(r.data.get("paused")) for _, r in replies),
                     "buffered": totals.get("buffered", 0), "totals": totals, "shards": len(replies)})
        for k in ("config", "strategy", "model"):
            values = [r.data.get(k) for _, r in replies]
            if all(v == values[0] for v in values):
                data[k] = values[0]
    return c.CommandReply(trace=first.trace, ts=first.ts, command=first.command, ok=ok, error=error, data=data)


def send_command(cmd: c.Message, endpoint: str, *, timeout_s: float = DEFAULT_TIMEOUT_S,
                 ctx: zmq.Context | None = None, keys: Any = None, name: str | None = None) -> c.CommandReply:
    """Send `cmd` (a Command with a non-zero trace id) to the session at `endpoint` and return
    its CommandReply. ControlError when nothing listens there or no reply comes in `timeout_s`
    (as for a tcp session that refused this client's key). keys, name: the CURVE keys directory
    and this client's name in it (tcp only; default name "client")."""
    check_endpoint(endpoint, curve=keys is not None)
    if endpoint.startswith("ipc://") and not os.path.exists(endpoint[len("ipc://"):]):
        raise ControlError(f"no paper session at {endpoint} (the socket does not exist); "
                           "start one with `bot4 paper` or pass the --endpoint it printed")
    own = ctx is None
    ctx = ctx or zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        if endpoint.startswith("tcp://"):
            from bot4.services.security import DEFAULT_CLIENT, secure_client

            secure_client(sock, keys, name or DEFAULT_CLIENT)
        sock.connect(endpoint)
        sock.send(c.Codec(c.CONTROL).encode(cmd))
        if not sock.poll(int(timeout_s * 1000)):
            refused = " (or it refused this client's CURVE key)" if endpoint.startswith("tcp://") else ""
            raise ControlError(f"no reply from {endpoint} within {timeout_s:g} s: is the paper session still "
                               f"running?{refused}")
        frame = sock.recv_multipart()[-1]
    finally:
        sock.close()
        if own:
            ctx.term()
    reply = c.Codec(c.CONTROL_REPLIES).decode(frame)
    if not isinstance(reply, c.CommandReply):
        why = reply.reason if isinstance(reply, c.Rejection) else type(reply).__name__
        raise ControlError(f"the reply from {endpoint} is not a CommandReply ({why})")
    return reply
