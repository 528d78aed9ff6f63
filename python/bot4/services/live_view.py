"""A live terminal view of a paper session (rich): per instrument the position, P&L (realised,
unrealised, fees, equity from the Position messages), order events, open orders and fills, the
last decision; the session's latency samples when it publishes any; and what the observer
publisher conflated or dropped on the way (bot4.services.observer).

LiveView is a plain state fed decoded messages (or raw frames) and rendered on demand, so it is
tested without a terminal. watch() subscribes to a session's observer endpoint, which never
stalls the session however slowly the terminal draws, and refreshes the view a few times per
second until the session ends.

Latency: the engine publishes its latency samples as PerfSample batches on TELEMETRY (the core's
per-decision stages, its per-batch push and publish time, engine<->venue round trips), a batch
per stage every 4,096 samples (bot4.services.engine.PERF_BATCH) and the rest at the end; the
view shows p50/p99/max of each stage's latest batch that reached it (telemetry conflates per
stage: a slow view sees fewer batches, never a mixed one), and says so while none has come (a
short session may send its samples only at its end). It also shows the observer's own lag: the
age of the observer heartbeat when it reached the view (wall clock, meaningful on one host).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import zmq
from rich import box
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from bot4 import contracts as c
from bot4.contracts.codes import DECISION_ACTIONS, ORDER_STATES, name
from bot4.services.observer import SERVICE as OBSERVER
from bot4.services.observer import TOPICS

#: Order states after which an order no longer works at the venue.
_DONE = frozenset(ORDER_STATES.index(s) for s in ("filled", "cancelled", "rejected", "expired"))


@dataclass
class InstrumentView:
    """What the view knows of one instrument (None: no Position message yet)."""

    position: int | None = None
    realised: float = 0.0
    unrealised: float = 0.0
    fees: float = 0.0
    equity: float = 0.0
    order_events: int = 0
    open_orders: set[int] = field(default_factory=set)
    fills: int = 0
    filled_lots: int = 0
    last_decision: c.Decision | None = None
    decisions: int = 0


class LiveView:
    """The state a live view renders, fed the messages an observer receives (feed() for raw
    frames, update() for decoded messages). names: instrument id -> label for the table."""

    def __init__(self, names: Mapping[int, str] | None = None, clock: Callable[[], int] = time.time_ns):
        self.names = dict(names or {})
        self.instruments: dict[int, InstrumentView] = {}
        self.total_equity: float | None = None
        self.stages: dict[tuple[str, str], np.ndarray] = {}  # (service, stage) -> the latest samples (ns)
        self.heartbeats: dict[str, c.Heartbeat] = {}  # service -> its latest heartbeat
        self.engines_stopped: set[int] = set()  # instances (one per shard) that sent their last heartbeat
        self.observer_lag_ns: int | None = None
        self.frames = 0
        self._clock = clock
        self._codecs = {t: c.Codec(t) for t in TOPICS}

    @property
    def rejected(self) -> int:
        """Frames that did not decode (counted by reason in each topic's Codec)."""
        return sum(sum(x.rejected.values()) for x in self._codecs.values())

    @property
    def ended(self) -> bool:
        """The observer publisher said it stopped (the last frame of a session)."""
        hb = self.heartbeats.get(OBSERVER)
        return hb is not None and hb.state == "stopping"

    def feed(self, topic: bytes, frame: Any) -> None:
        """One (topic, frame) off the observer endpoint; a frame that does not decode is counted
        (rejected) and changes nothing."""
        try:
            codec = self._codecs[c.topic_of(bytes(topic))]
        except (KeyError, ValueError):
            self._codecs[c.TELEMETRY].rejected["wrong_tag"] += 1  # a topic an observer never gets
            return
        msg = codec.decode(frame)
        if not isinstance(msg, c.Rejection):
            self.update(msg)

    def update(self, msg: c.Message) -> None:
        """One decoded message."""
        self.frames += 1
        if isinstance(msg, c.Position):
            v = self._inst(msg.instrument)
            v.position, v.realised, v.unrealised, v.fees, v.equity = (msg.position, msg.realised, msg.unrealised,
                                                                        msg.fees, msg.equity)
            self.total_equity = msg.total_equity
        elif isinstance(msg, c.OrderEvent):
            v = self._inst(msg.instrument)
            v.order_events += 1
            if msg.status in _DONE:
                v.open_orders.discard(msg.id)
            else:
                v.open_orders.add(msg.id)
        elif isinstance(msg, c.Fill):
            v = self._inst(msg.instrument)
            v.fills += 1
            v.filled_lots += msg.qty
        elif isinstance(msg, c.Decision):
            v = self._inst(msg.instrument)
            v.last_decision = msg
            v.decisions += 1
        elif isinstance(msg, c.PerfSample):
            self.stages[(msg.service, msg.stage)] = np.array(c.unpack(msg), dtype=np.int64)
        elif isinstance(msg, c.Heartbeat):
            self.heartbeats[msg.service] = msg
            if msg.service == "engine" and msg.state == "stopping":
                self.engines_stopped.add(msg.instance)
            if msg.service == OBSERVER:
                self.observer_lag_ns = self._clock() - msg.ts

    def as_json(self) -> dict[str, Any]:
        """The view's figures as builtin types: per instrument position, realised, unrealised,
        fees, equity, order events, open orders, fills, lots, decisions seen; total equity,
        frames, rejected, the observer's last counters and whether the session ended."""
        inst = {str(k): {"position": v.position, "realised": v.realised, "unrealised": v.unrealised, "fees": v.fees,
                         "equity": v.equity, "order_events": v.order_events, "open_orders": len(v.open_orders),
                         "fills": v.fills, "filled_lots": v.filled_lots, "decisions_seen": v.decisions}
                for k, v in sorted(self.instruments.items())}
        hb = self.heartbeats.get(OBSERVER)
        return {"instruments": inst, "total_equity": self.total_equity, "frames": self.frames,
                "rejected": self.rejected, "observer": dict(hb.counters) if hb is not None else None,
                "ended": self.ended}

    def _inst(self, instrument: int) -> InstrumentView:
        v = self.instruments.get(instrument)
        if v is None:
            v = self.instruments[instrument] = InstrumentView()
        return v

    # -- rendering -------------------------------------------------------------------------------
    def positions_table(self) -> Table:
        """One row per instrument: position, realised, unrealised, fees, equity, order events,
        open orders, fills and their lots, the decisions the view received (conflated ones are
        not seen) and the last one (action, target, p)."""
        t = Table(title="positions and P&L (quote units)", title_justify="left", box=box.SIMPLE_HEAD)
        for col in ("inst", "pos", "realised", "unrealised", "fees", "equity", "orders", "open", "fills", "lots",
                    "decisions seen", "last decision"):
            t.add_column(col, justify="left" if col in ("inst", "last decision") else "right")
        for inst in sorted(self.instruments):
            v = self.instruments[inst]
            d = v.last_decision
            last = "-" if d is None else f"{name(DECISION_ACTIONS, d.action)} {d.target:+d} {d.p:.3f}"
            t.add_row(self.names.get(inst, str(inst)), "-" if v.position is None else f"{v.position:,}",
                      f"{v.realised:,.4f}", f"{v.unrealised:,.4f}", f"{v.fees:,.4f}", f"{v.equity:,.4f}",
                      f"{v.order_events:,}", f"{len(v.open_orders):,}", f"{v.fills:,}", f"{v.filled_lots:,}",
                      f"{v.decisions:,}", last)
        if self.total_equity is not None:
            t.caption = f"total equity {self.total_equity:,.4f}"
            t.caption_justify = "left"
        return t

    def latency_table(self) -> Table | Text:
        """p50/p99/max (µs) of each stage's latest PerfSample batch, or a line saying the session
        published none."""
        if not self.stages:
            return Text("latency: no per-stage samples (PerfSample) so far; the engine sends a batch per "
                        "stage every 4,096 samples and the rest at its end")
        t = Table(title="latency (latest samples, µs)", title_justify="left", box=box.SIMPLE_HEAD)
        for col in ("service", "stage", "n", "p50", "p99", "max"):
            t.add_column(col, justify="left" if col in ("service", "stage") else "right")
        for (svc, stage), x in sorted(self.stages.items()):
            if x.size:
                p50, p99 = np.percentile(x, [50, 99])
                t.add_row(svc, stage, f"{x.size:,}", f"{p50 / 1e3:,.1f}", f"{p99 / 1e3:,.1f}", f"{x.max() / 1e3:,.1f}")
        return t

    def status_line(self) -> Text:
        """Frames seen, the observer's conflated / dropped counts and lag, the engine's state."""
        parts = [f"frames {self.frames:,}"]
        if self.rejected:
            parts.append(f"rejected {self.rejected:,}")
        hb = self.heartbeats.get(OBSERVER)
        if hb is not None:
            k = hb.counters
            conflated = sum(v for n, v in k.items() if n.startswith("conflated."))
            parts.append(f"observer: conflated {conflated:,}, dropped executions {k.get('dropped.executions', 0):,}, "
                         f"queue {k.get('queue.depth', 0):,} (max {k.get('queue.max', 0):,})")
            if self.observer_lag_ns is not None:
                parts.append(f"lag {self.observer_lag_ns / 1e6:,.1f} ms")
        done = len(self.engines_stopped)
        parts.append("engine running" if not done else "engine finished" if done == 1 else f"{done} engines finished")
        return Text(" · ".join(parts))

    def render(self) -> Group:
        """The whole view: positions table, latency, status line."""
        return Group(self.positions_table(), self.latency_table(), self.status_line())


#: Frames read per burst at most (the rest wait, then conflate in the observer publisher).
_BURST = 5_000
#: Seconds between bursts (shorter than the observer publisher's close flush_s, so a view that
#: reads is never taken for a stalled one at the session's end).
_READ_EVERY_S = 0.1
#: After stop(): how long the view waits for frames still on their way (the session's end).
_TAIL_S = 0.5


def _drain_tail(sock: zmq.Socket, view: LiveView) -> None:
    while not view.ended and sock.poll(int(_TAIL_S * 1000)):
        parts = sock.recv_multipart()
        if len(parts) == 2:
            view.feed(parts[0], parts[1])


def subscribe(ctx: zmq.Context, endpoint: str, *, keys: Any = None, name: str | None = None) -> zmq.Socket:
    """A SUB socket on a session's observer endpoint, subscribed to everything (CURVE client
    `name` of the keys directory `keys` on tcp)."""
    from bot4.services.observer import check_observe_endpoint

    check_observe_endpoint(endpoint, curve=keys is not None)
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVHWM, 1000)
    if endpoint.startswith("tcp://"):
        from bot4.services.security import DEFAULT_CLIENT, secure_client

        secure_client(sock, keys, name or DEFAULT_CLIENT)
    sock.subscribe(b"")
    sock.connect(endpoint)
    return sock


def watch(sock: zmq.Socket, view: LiveView | None = None, *, console: Console | None = None,
          refresh_per_second: float = 4.0, idle_timeout_s: float | None = 10.0,
          stop: Callable[[], bool] | None = None, live: bool = True) -> LiveView:
    """Read `sock` (subscribe()) into `view` and draw it on `console`, refreshed
    refresh_per_second times per second, until the session ends (the observer's last heartbeat),
    `stop()` is true (what is still on its way is read first, until the end or a quiet half
    second), or nothing arrived for idle_timeout_s (None: wait forever). live=False
    draws once, at the end. Returns the view."""
    from rich.live import Live

    view = view if view is not None else LiveView()
    console = console or Console()
    every = 1.0 / refresh_per_second
    read_every = min(every, _READ_EVERY_S)
    next_draw = time.monotonic()
    idle_since = time.monotonic()
    ctx_live = Live(view.render(), console=console, auto_refresh=False, transient=False) if live else None
    if ctx_live is not None:
        ctx_live.start()
    try:
        while True:
            # Read in bursts every _READ_EVERY_S: between them the frames wait in the pipes and
            # the observer publisher conflates what does not fit, so the view decodes about ten
            # thousand frames a second at most, however fast the session runs (in-process, its
            # Python would otherwise take the GIL from the session's threads).
            got = 0
            while got < _BURST:
                try:
                    parts = sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                got += 1
                if len(parts) == 2:
                    view.feed(parts[0], parts[1])
                if view.ended:
                    break
            now = time.monotonic()
            if got:
                idle_since = now
            if view.ended:
                break
            if stop is not None and stop():
                _drain_tail(sock, view)
                break
            if idle_timeout_s is not None and now - idle_since > idle_timeout_s:
                break
            if ctx_live is not None and now >= next_draw:
                ctx_live.update(view.render(), refresh=True)
                next_draw = now + every
            if got < _BURST:  # else more is waiting: read on at once
                time.sleep(max(0.0, read_every - (time.monotonic() - now)))
    finally:
        if ctx_live is not None:
            ctx_live.update(view.render(), refresh=True)
            ctx_live.stop()
            if not console.is_terminal:
                console.line()  # a terminal's cursor is already below the view
        else:
            console.print(view.render())
    return view
