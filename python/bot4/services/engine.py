"""Engine service: market data batches off a SUB socket into the core's streamed engine, and its
decisions, order events, fills and positions out on a PUB socket as contract messages.

Python only moves frames: each batch is decoded (a bad frame is a counted rejection, never a
crash), unpacked as a zero-copy view and pushed into bot4._core.engine.StreamingBacktest through
bot4.backtest.run_stream with the batch's own watermark; the records the core hands out after each
push are published at once. Every frame received and every frame sent is journaled (JournalEntry,
bot4.services.journal) when a journal directory is given, so a session can be replayed: the input
frames of a journal run through a fresh engine give the same output frames (replay_journal).

Outputs carry the recording's times and trace id 0, never a wall clock or a random id, so they
are a pure function of the input frames. A fill's exec_id is its 1-based index in the session.
The simulated venue inside the core replays the recording on the exchange clock, ahead of the
strategy, as a real venue would be: it needs the recording a little into the strategy's future.
`venue_lookahead_ns` holds the strategy that far (recording time) behind the newest batch; with
enough of it (core counter sim_late_feed_events = 0) the run equals one backtest over the whole
recording. With 0 the strategy runs on the newest data and the venue sees what came late (counted).

At the end of stream the engine finishes the run and publishes a Heartbeat with state
"stopping" and its final counters on TELEMETRY (the session's end marker).
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import zmq

from bot4 import contracts as c
from bot4.backtest import run_stream
from bot4.backtest.streaming import Piece
from bot4.errors import VenueLinkError
from bot4.events import BOOK_EVENT, TRADE_EVENT, VENUE_REQUEST
from bot4.services import live
from bot4.services.feed import await_unsubscribe, bind_publisher, wait_subscribers
from bot4.services.journal import JournalReader, JournalWriter

SERVICE = "engine"
#: Between a shard engine's output topic and its name (run_engine): b"exe/" + SOURCE_SEP + b"engine-1".
SOURCE_SEP = b"@"
#: Latency samples per PerfSample message.
PERF_BATCH = 4096
INT64_MIN = -(2**63)
#: Recording time the strategy is held behind the newest batch so the simulated venue has the
#: recording's near future (request latency plus feed-latency jitter; 1 s is ample on the
#: reference recordings).
DEFAULT_LOOKAHEAD_NS = 1_000_000_000
INT64_MAX = 2**63 - 1
Emit = Callable[[bytes, bytes], None]

#: record table -> (message type, topic) of what the engine publishes
OUTPUTS: dict[str, tuple[type[c.Message], bytes]] = {
    "decisions": (c.Decision, c.DECISIONS),
    "scores": (c.ShadowScore, c.DECISIONS),
    "orders": (c.OrderEvent, c.EXECUTIONS),
    "fills": (c.Fill, c.EXECUTIONS),
    "equity": (c.Position, c.POSITIONS),
}


def _fields(tp: type[c.Message]) -> list[tuple[str, bool]]:
    return [(f.name, f.type is bool) for f in msgspec.structs.fields(tp) if f.name not in ("v", "trace")]


_FIELDS = {k: _fields(tp) for k, (tp, _) in OUTPUTS.items()}


class EngineService:
    """One engine over a session's instruments. specs, l3, model, config, strategy: as
    bot4.backtest.run_stream (strategy by name or spec string when run in its own process).
    journal: a directory for the journal (None = no journal); fsync: its policy
    (bot4.services.journal.FsyncPolicy spec: "always", "every:N", "interval:S", "never").
    venue: None = the venue simulators run inside the core; else call(frame) -> reply frame, the
    link to a venue outside (bot4.services.venue.venue_link); its frames are journaled too.
    name: the engine's name at the venue (its exchanges are idempotent by name and seq).
    shard: one of several engines over one feed: records of other instruments are dropped
    (counted: other_shard_records) and a command naming another engine's instrument is left to
    that engine (not answered here). shadow: models scored beside the champion at every
    decision, never traded (as bot4.backtest.run's shadow; model directories when the engine
    runs in its own process); each score is published as a ShadowScore on DECISIONS after the
    decisions of its time. A model swap replaces the champion (slot 0) only."""

    def __init__(self, specs: dict, *, l3: Iterable[int] = (), model=None, config=None, strategy=None,
                 journal: str | os.PathLike[str] | None = None, fsync: str = "every:1000",
                 venue_lookahead_ns: int = DEFAULT_LOOKAHEAD_NS,
                 venue: Callable[[bytes], Any] | None = None, name: str = SERVICE, shard: bool = False,
                 shadow: Any = None):
        if venue_lookahead_ns < 0:
            raise ValueError(f"venue_lookahead_ns must be >= 0, got {venue_lookahead_ns}")
        self.lookahead = int(venue_lookahead_ns)
        if not specs:
            raise ValueError("the engine needs the instruments to trade (specs)")
        if isinstance(model, (str, os.PathLike)):
            from bot4.models import load

            model = load(Path(model))  # once: the swap check reads its feature config
        self.specs, self.l3, self.model, self.config, self.strategy = specs, list(l3), model, config, strategy
        self.shadow = shadow
        self._features = _running_features(model, config)
        self._model_sha = _model_sha(model)
        self.journal_dir = Path(journal) if journal is not None else None
        self.fsync = fsync
        self.codec = c.Codec(c.MARKET)
        self.control_codec = c.Codec(c.CONTROL)
        self._commands: list[Any] = []  # decoded, applied before the next piece reaches the core
        self.out = {t: c.Codec(t) for t in {t for _, t in OUTPUTS.values()} | {c.TELEMETRY, c.CONTROL_REPLIES}}
        self._jcodec = c.Codec(c.JOURNAL)
        self.counters: dict[str, int] = dict.fromkeys(
            ("frames_in", "frames_out", "bad_envelope", "batches", "records_in", "seq_gaps", "missed_batches",
             "end_of_stream", "fills_published", "commands_applied", "commands_refused", "venue_exchanges",
             "other_shard_records", "other_shard_commands", "perf_samples_sent"), 0)
        self.result: Any = None
        self._venue_call = venue
        self.name = name
        self.shard = shard
        self._perf: dict[str, list[np.ndarray]] = {}
        self._perf_seq = 0
        self._emit: Emit | None = None
        self._ids = np.array(sorted(int(i) for i in specs), np.uint32)
        self._journal: JournalWriter | None = None
        self._jseq = 0
        # Crash recovery (recovery_inputs): journal records that are already there, by kind, not
        # written again as the replay regenerates them; the venue's journaled replies, in order.
        self._skip = {"in": 0, "in_venue": 0, "out": 0, "out_venue": 0}
        self._journaled_replies: deque[bytes] = deque()
        self.recovered: dict[str, int] | None = None
        self._venue_codec = c.Codec(c.VENUE)
        self._venue_seq = 0
        self._md_seq = 0  # market data batches taken in (a remote venue takes in as many before it answers)

    def run_frames(self, frames: Iterable[tuple[bytes, Any]], emit: Emit,
                   on_end: Callable[[], None] | None = None) -> dict[str, Any]:
        """The engine over (topic, frame) pairs, publishing through emit(topic, frame); stops at
        EndOfStream (on_end is called as it arrives) or when the frames end. Returns the summary
        (see summary())."""
        self._on_end = on_end
        journal = JournalWriter(self.journal_dir, fsync=self.fsync) if self.journal_dir is not None else None
        self._journal = journal
        self._jseq = sum(self._skip.values())  # (a recovered engine numbers on after its journal)
        self._emit = emit
        self._exec_id = 0
        try:
            if self.recovered is not None:
                # Marks where this incarnation's outputs begin: they repeat the lost one's from the
                # start, and a collector drops as many as it already has (not journaled: it is not
                # an output of the run).
                hb = c.Heartbeat(ts=time.time_ns(), service=SERVICE, instance=os.getpid(), seq=0, state="starting",
                                 counters=dict(self.recovered))
                emit(c.TELEMETRY, self.out[c.TELEMETRY].encode(hb))
                self.counters["frames_out"] += 1
            self.result = run_stream(self._pieces(frames), self.specs, self.model, self.config, progress=False,
                                     strategy=self.strategy, shadow=self.shadow, l3=self.l3,
                                     on_records=self._publish,
                                     control=self._apply_commands,
                                     venue=self._exchange if self._venue_call is not None else None)
            if self._venue_call is not None:
                self._exchange(int(min(self.specs)), np.zeros(0, VENUE_REQUEST), INT64_MAX, INT64_MAX, final=True)
            self._perf_flush()
            summary = self.summary()
            hb = c.Heartbeat(ts=time.time_ns(), service=SERVICE, instance=os.getpid(), seq=0, state="stopping",
                             counters={k: v for k, v in summary["counters"].items() if isinstance(v, int)})
            self._send(c.TELEMETRY, self.out[c.TELEMETRY].encode(hb))
            summary["counters"].update(self.counters)  # the heartbeat itself counted
            if journal is not None:
                summary["counters"].update({f"journal.{k}": v for k, v in journal.counters.items()})
            return summary
        finally:
            if journal is not None:
                journal.close()

    def summary(self) -> dict[str, Any]:
        """pnl, orders, fills, decisions of the finished run, and every counter (the service's,
        the market codec's rejections, the core's)."""
        r = self.result
        counters: dict[str, Any] = dict(self.counters)
        counters.update({f"md.{k}": v for k, v in self.codec.counters().items()})
        counters.update({f"ctl.{k}": v for k, v in self.control_codec.counters().items()})
        if r is not None:
            counters.update({f"core.{k}": int(v) for k, v in r.counters.items()})
        if self.recovered is not None:
            counters.update({f"recovery.{k}": v for k, v in self.recovered.items()})
        return {"counters": counters}

    # -- input ---------------------------------------------------------------------------------
    def _pieces(self, frames: Iterable[tuple[bytes, Any]]) -> Iterator[Piece]:
        # One empty piece first: run_stream needs a piece even when the stream is empty.
        none: Any = None
        yield Piece(np.zeros(0, BOOK_EVENT), none, none, INT64_MIN)
        expected = 0
        last_wm = INT64_MIN
        for topic, frame in frames:
            self.counters["frames_in"] += 1
            self._journal_frame("in", topic, frame)
            if bytes(topic).startswith(c.CONTROL):
                cmd = self.control_codec.decode(frame)
                if not isinstance(cmd, c.Rejection):
                    self._commands.append(cmd)
                    # An empty piece at the last watermark: the command is applied (and answered)
                    # now rather than at the next batch, and the engine processes exactly what the
                    # next batch would have let it process first, so the outputs do not change.
                    yield Piece(np.zeros(0, BOOK_EVENT), none, none, last_wm)
                continue
            msg = self.codec.decode(frame)
            if isinstance(msg, c.Rejection):
                continue
            if isinstance(msg, c.EndOfStream):
                self.counters["end_of_stream"] += 1
                self.counters["missed_batches"] += max(0, msg.seq - expected)
                if self._on_end is not None:
                    self._on_end()
                return
            assert isinstance(msg, c.MarketBatch)
            if msg.seq != expected:
                self.counters["seq_gaps"] += 1
                self.counters["missed_batches"] += max(0, msg.seq - expected)
            expected = msg.seq + 1
            self._md_seq = expected
            recs = c.unpack(msg)
            wm = msg.watermark
            if wm != INT64_MAX:
                wm = wm - self.lookahead if wm > INT64_MIN + self.lookahead else INT64_MIN
            last_wm = max(last_wm, wm)
            self.counters["batches"] += 1
            self.counters["records_in"] += int(recs.size)
            if self.shard and recs.size:
                mine = np.isin(recs["instrument"], self._ids)
                if not mine.all():
                    self.counters["other_shard_records"] += int(recs.size - mine.sum())
                    recs = np.ascontiguousarray(recs[mine])
            t0 = time.perf_counter_ns()
            if isinstance(msg, c.BookBatch):
                yield Piece(recs, none, none, wm)
            elif isinstance(msg, c.TradeBatch):
                yield Piece(none, recs, none, wm)
            elif isinstance(msg, c.L3Batch):
                yield Piece(none, np.zeros(0, TRADE_EVENT), recs, wm)
            else:
                continue
            # (the core's push of this batch, and the publishing of what it produced)
            self._perf_add("batch", np.array([time.perf_counter_ns() - t0], np.int64))
            # BboBatch: the venue's own top of book checks a rebuilt book; the engine does not trade on it.

    # -- crash recovery --------------------------------------------------------------------------
    def recovery_inputs(self) -> tuple[list[tuple[bytes, bytes]], int]:
        """Prepare to carry on a session from this engine's journal after a crash: returns the
        journaled input frames (market data and commands, in order) to run first, and the seq of
        the last market data frame among them (-1: none). The engine is deterministic, so those
        frames (with the venue's journaled replies, which answer its exchanges again without
        asking the venue) rebuild its state exactly; what it regenerates is not journaled twice.
        A torn last record (the crash) counts as not received: the feed replays it."""
        if self.journal_dir is None:
            raise ValueError("crash recovery needs the engine's journal directory")
        inputs: list[tuple[bytes, bytes]] = []
        replies: list[bytes] = []
        counts = dict.fromkeys(self._skip, 0)
        last_md = -1
        md = c.Codec(c.MARKET)
        if self.journal_dir.exists() and any(self.journal_dir.iterdir()):
            codec = c.Codec(c.JOURNAL)
            reader = JournalReader(self.journal_dir)
            for payload in reader:
                e = codec.decode(payload)
                if not isinstance(e, c.JournalEntry) or e.service != SERVICE:
                    continue
                topic, frame = bytes(e.topic), bytes(e.frame)
                counts[e.direction + ("_venue" if topic == c.VENUE else "")] += 1
                if e.direction != "in":
                    continue
                if topic == c.VENUE:
                    replies.append(frame)
                    continue
                inputs.append((topic, frame))
                if topic.startswith(c.MARKET):
                    msg = md.decode(frame)
                    if isinstance(msg, (c.MarketBatch, c.EndOfStream)):
                        last_md = max(last_md, msg.seq)
        self._skip = counts
        self._journaled_replies = deque(replies)
        self.recovered = {**{f"journaled_{k}": v for k, v in counts.items()}, "last_md_seq": last_md}
        return inputs, last_md

    # -- the venue outside ------------------------------------------------------------------------
    def _exchange(self, instrument: int, requests: np.ndarray, clock_offset: int, now: int,
                  final: bool = False) -> tuple[np.ndarray, bool]:
        """One round trip to the venue (the core's RemoteVenue calls this with the GIL)."""
        assert self._venue_call is not None
        self._venue_seq += 1
        frame = self._venue_codec.encode(c.pack(c.VenueRequests, requests, seq=self._venue_seq, ts=time.time_ns(),
                                                instrument=instrument, now=now, clock_offset=clock_offset,
                                                md_seq=self._md_seq, final=final, engine=self.name))
        self._journal_frame("out", c.VENUE, frame)
        if self._journaled_replies:
            reply_frame = self._journaled_replies.popleft()  # recovering: the venue already answered this
        else:
            t0 = time.perf_counter_ns()
            reply_frame = self._venue_call(frame)
            self._perf_add("bus:engine<->venue", np.array([time.perf_counter_ns() - t0], np.int64))
        self._journal_frame("in", c.VENUE, reply_frame)
        reply = self._venue_codec.decode(reply_frame)
        if isinstance(reply, c.Rejection):
            raise VenueLinkError(f"the venue's reply was refused: {reply.reason}: {reply.detail}")
        if not isinstance(reply, c.VenueResponses):
            raise VenueLinkError(f"the venue answered a {type(reply).__name__}, not VenueResponses")
        if reply.error:
            raise VenueLinkError(f"the venue refused exchange {self._venue_seq}: {reply.error}")
        if reply.seq != self._venue_seq:
            raise VenueLinkError(f"the venue answered exchange {reply.seq}, expected {self._venue_seq}")
        self.counters["venue_exchanges"] += 1
        return np.array(c.unpack(reply)), bool(reply.live)

    # -- control -------------------------------------------------------------------------------
    def _apply_commands(self, engine: Any) -> None:
        """The commands received since the last piece, in order, each answered on CONTROL_REPLIES
        (same trace id). Kill, Flatten, Pause and Resume act on every instrument, or on the one
        they name (Kill then halts it; an instrument this engine does not trade is refused);
        RefreshWeights recomputes the adaptive ensemble weights at once (data: instruments refreshed);
        Status reports each instrument's paused/halted state; SetParameter, ConfigUpdate and SwapModel are
        validated and applied by bot4.services.live, or refused with the reason and nothing
        changed (a refused swap leaves the old model trading)."""
        while self._commands:
            cmd = self._commands.pop(0)
            tag = type(cmd).__struct_config__.tag
            error, data = "", dict[str, Any]()
            one = getattr(cmd, "instrument", None)
            if one is not None and int(one) not in self.specs and self.shard:
                self.counters["other_shard_commands"] += 1  # another engine's: it answers
                continue
            if one is not None and int(one) not in self.specs:
                error = f"instrument {one} is not traded by this engine (trades {', '.join(map(str, sorted(self.specs)))})"
            elif isinstance(cmd, c.Kill):
                engine.kill(one)
            elif isinstance(cmd, c.Flatten):
                engine.flatten(one)
            elif isinstance(cmd, c.Pause):
                engine.pause(True, one)
            elif isinstance(cmd, c.Resume):
                engine.pause(False, one)
            elif isinstance(cmd, c.RefreshWeights):
                data = {"refreshed": int(engine.refresh_ensemble_weights())}
            elif isinstance(cmd, c.Status):
                data = {"paused": bool(engine.paused), "buffered": int(engine.buffered),
                        **{k: v for k, v in self.counters.items()},
                        "instruments": {str(i): {"paused": bool(engine.is_paused(i)), "halted": bool(engine.halted(i))}
                                        for i in sorted(self.specs)},
                        "config": engine.config(), "strategy": engine.strategy_config(), "model": self._model_sha}
            else:
                try:
                    data = self._change(engine, cmd)
                except live.ChangeRefused as exc:
                    error = str(exc)
            self.counters["commands_refused" if error else "commands_applied"] += 1
            reply = c.CommandReply(trace=cmd.trace, ts=cmd.ts, command=str(tag), ok=not error, error=error,
                                   data=data)
            self._send(c.CONTROL_REPLIES, self.out[c.CONTROL_REPLIES].encode(reply))

    def _change(self, engine: Any, cmd: Any) -> dict:
        if isinstance(cmd, c.SetParameter):
            return live.set_parameter(engine, cmd.key, cmd.value)
        if isinstance(cmd, c.ConfigUpdate):
            return live.update_risk(engine, cmd.risk)
        if isinstance(cmd, c.SwapModel):
            model = live.load_swap_model(cmd.path, cmd.sha256, self._features)
            live.swap_model(engine, model)
            self._model_sha = str(model.sidecar["sha256"]).lower()
            return {"path": cmd.path, "sha256": self._model_sha}
        raise live.ChangeRefused(f"{type(cmd).__struct_config__.tag}: not a command the engine knows")

    # -- output --------------------------------------------------------------------------------
    def _perf_add(self, stage: str, ns: np.ndarray) -> None:
        """Latency samples of one stage, sent as PerfSample batches on TELEMETRY every
        PERF_BATCH samples (bot4.services.perf collects them). Not journaled: timings are not an
        output of the run."""
        if not ns.size:
            return
        kept = self._perf.setdefault(stage, [])
        kept.append(np.asarray(ns, np.int64))
        if sum(a.size for a in kept) >= PERF_BATCH:
            self._perf_flush(stage)

    def _perf_flush(self, stage: str | None = None) -> None:
        for name in ([stage] if stage is not None else list(self._perf)):
            kept = self._perf.pop(name, [])
            if not kept or self._emit is None:
                continue
            msg = c.pack(c.PerfSample, np.concatenate(kept), seq=self._perf_seq, ts=time.time_ns(), service=SERVICE,
                         stage=name)
            self._perf_seq += 1
            self._emit(c.TELEMETRY, self.out[c.TELEMETRY].encode(msg))
            self.counters["perf_samples_sent"] += 1

    def _publish(self, rec: dict) -> None:
        for stage, ns in rec.get("latency_ns", {}).items():
            self._perf_add(stage, ns)
        # Each table's messages, then all of them sent in time order (stable: within one time,
        # decisions, shadow scores, orders, fills, positions as the core wrote them).
        out: list[tuple[int, bytes, bytes]] = []
        for table, (tp, topic) in OUTPUTS.items():
            arr = rec[table]
            if not arr.size:
                continue
            names = _FIELDS[table]
            cols: list[Any] = []
            for name, is_bool in names:
                if name == "exec_id":
                    cols.append(range(self._exec_id + 1, self._exec_id + 1 + arr.size))
                    self._exec_id += arr.size
                    self.counters["fills_published"] += arr.size
                else:
                    col = arr[name].tolist()
                    cols.append([bool(x) for x in col] if is_bool else col)
            codec = self.out[topic]
            keys = [n for n, _ in names]
            out.extend((row[0], topic, codec.encode(tp(**dict(zip(keys, row))))) for row in zip(*cols))
        out.sort(key=lambda x: x[0])
        for _, topic, frame in out:
            self._send(topic, frame)

    def _send(self, topic: bytes, frame: bytes) -> None:
        assert self._emit is not None  # (set by run_frames)
        self._emit(topic, frame)
        self.counters["frames_out"] += 1
        self._journal_frame("out", topic, frame)

    def _journal_frame(self, direction: str, topic: bytes, frame: Any) -> None:
        if self._journal is None:
            return
        kind = direction + ("_venue" if topic == c.VENUE else "")
        if self._skip[kind]:
            self._skip[kind] -= 1  # recovering: this record is in the journal already
            return
        entry = c.JournalEntry(ts=time.time_ns(), seq=self._jseq, service=SERVICE, direction=direction,  # type: ignore[arg-type]
                               topic=bytes(topic), frame=memoryview(frame))
        self._jseq += 1
        self._journal.append(self._jcodec.encode(entry))


def _running_features(model: Any, config: Any) -> Any:
    """The FeatureConfig the engine computes (the non-decision fields a swapped-in model must
    share): the config's features section, else the model's training config, else the default."""
    from bot4.backtest.engine import engine_config
    from bot4.features import FeatureConfig

    given = engine_config(config).get("features") if config is not None else None
    if isinstance(given, dict):
        given = msgspec.convert(given, FeatureConfig)
    models = list(model.values()) if isinstance(model, dict) else [model]
    trained = next((m.feature_config for m in models if getattr(m, "feature_config", None) is not None), None)
    return given or trained or FeatureConfig()


def _model_sha(model: Any) -> str | None:
    sidecar = getattr(model, "sidecar", None)
    return str(sidecar["sha256"]).lower() if isinstance(sidecar, dict) and "sha256" in sidecar else None


def socket_frames(sock: zmq.Socket, counters: dict[str, int]) -> Iterator[tuple[bytes, Any]]:
    """(topic, frame) pairs off a SUB socket; a message that is not two parts is counted
    (bad_envelope) and skipped."""
    while True:
        parts = sock.recv_multipart(copy=False)
        if len(parts) != 2:
            counters["bad_envelope"] += 1
            continue
        yield parts[0].bytes, parts[1].buffer


def run_engine(ctx: zmq.Context, md_endpoint: str, out_endpoint: str, service: EngineService, *,
               subscribers: int = 1, ready: Any = None, connect_out: bool = False,
               ack_timeout_s: float = 30.0, control_endpoint: str | None = None,
               venue_endpoint: str | None = None, recover: bool = False,
               replay_endpoint: str | None = None, transport: Any = None) -> dict[str, Any]:
    """The engine service over sockets: SUB on the feed's `md_endpoint` (and on the session's
    command publisher at `control_endpoint`, topic CONTROL), XPUB (never dropping) bound at
    `out_endpoint` (connected to it with connect_out=True: the collector binds); waits for
    `subscribers` of its outputs before taking market data. venue_endpoint: the ROUTER of a venue
    service (bot4.services.venue) to trade with instead of the simulators inside the core.
    recover: carry on a session from the service's journal after a crash (see recovery_inputs):
    the journaled inputs first, then what the feed sent since, from its replay endpoint
    (`replay_endpoint`, bot4.services.feed.serve_replay), then the live feed. transport: how
    every endpoint is bound or connected (bot4.services.security.Transport; required for tcp,
    CURVE on every link). A shard engine (service.shard) publishes its outputs on its topics
    followed by "@" and its name (e.g. b"exe/@engine-1"), so a collector tells the engines apart."""
    from bot4.services.security import close_link, connect_link

    venue_sock = None
    if venue_endpoint is not None:
        from bot4.services.venue import venue_link

        service._venue_call, venue_sock = venue_link(ctx, venue_endpoint, transport=transport)
    pub = bind_publisher(ctx, out_endpoint, connect=connect_out, transport=transport, link="out")
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 2_000)  # the unsubscribe that acknowledges the feed's end must get out
    sub.setsockopt(zmq.SUBSCRIBE, c.MARKET)
    sub.setsockopt(zmq.SUBSCRIBE, c.CONTROL)  # commands published by the session or a control client
    try:
        if ready is not None:
            ready.set()
        wait_subscribers(pub, subscribers)
        if control_endpoint is not None:
            connect_link(sub, control_endpoint, "control_pub", transport)
        connect_link(sub, md_endpoint, "md", transport)
        source = SOURCE_SEP + service.name.encode() if service.shard else b""

        def emit(topic: bytes, frame: bytes) -> None:
            pub.send_multipart((topic + source, frame), copy=False)
        frames: Iterable[tuple[bytes, Any]] = socket_frames(sub, service.counters)
        replay_sock = None
        if recover:
            from bot4.services.feed import replay_client

            journaled, last_md = service.recovery_inputs()
            if replay_endpoint is None:
                raise ValueError("recovery needs the feed's replay endpoint")
            fetch, replay_sock = replay_client(ctx, replay_endpoint, transport=transport)
            ended = any(t.startswith(c.MARKET) and isinstance(c.Codec(c.MARKET).decode(f), c.EndOfStream)
                        for t, f in journaled[-1:])
            frames = iter(journaled) if ended else _chain(journaled, _caught_up(frames, fetch, last_md + 1))
        try:
            summary = service.run_frames(frames, emit, on_end=lambda: sub.setsockopt(zmq.UNSUBSCRIBE, c.MARKET))
        finally:
            if replay_sock is not None:
                replay_sock.close()
        # Closing a socket with frames still queued lost the tail of the output now and then
        # (processes over ipc, despite LINGER); so the collector acknowledges the end by dropping
        # its telemetry subscription once it has the final heartbeat (the last frame sent).
        if subscribers:
            summary["counters"]["end_acknowledged"] = int(await_unsubscribe(pub, c.TELEMETRY, ack_timeout_s))
        return summary
    finally:
        sub.close()
        close_link(pub, transport)
        if venue_sock is not None:
            venue_sock.close()


def _chain(first: list, then: Iterator) -> Iterator:
    yield from first
    yield from then


def _caught_up(live: Iterable[tuple[bytes, Any]], fetch: Callable[[int, int], list], nxt: int) -> Iterator:
    """Market data from seq `nxt` on without a gap or a repeat: what the feed's replay holds
    first, then the live frames (each live batch already replayed is skipped; a gap before one is
    fetched from the replay). Other frames (commands) pass through."""
    codec = c.Codec(c.MARKET)

    def replayed(until: int | None) -> Iterator[tuple[bytes, Any]]:
        nonlocal nxt
        while until is None or nxt < until:
            got = fetch(nxt, 1024 if until is None else min(1024, until - nxt))
            if not got:
                return
            for t, f in got:
                nxt += 1
                yield t, f
    yield from replayed(None)
    for topic, frame in live:
        if bytes(topic).startswith(c.MARKET):
            msg = codec.decode(frame)
            if isinstance(msg, (c.MarketBatch, c.EndOfStream)):
                if msg.seq < nxt:
                    continue
                if msg.seq > nxt:
                    yield from replayed(msg.seq)
                nxt = msg.seq + 1
        yield topic, frame


def journal_frames(directory: str | os.PathLike[str], direction: str = "in") -> Iterator[tuple[bytes, bytes]]:
    """(topic, frame) of the engine's journaled frames in one direction, in journal order."""
    codec = c.Codec(c.JOURNAL)
    for payload in JournalReader(directory):
        e = codec.decode_strict(payload)
        assert isinstance(e, c.JournalEntry)
        if e.service == SERVICE and e.direction == direction:
            yield e.topic, bytes(e.frame)


def replay_journal(directory: str | os.PathLike[str], service: EngineService) -> list[tuple[bytes, bytes]]:
    """Run the input frames journaled in `directory` through `service` (a fresh engine, built
    with the session's specs, model, config and strategy); returns its output frames. A session
    whose venue was outside is replayed against the venue's journaled replies, in order."""
    out: list[tuple[bytes, bytes]] = []
    inputs = list(journal_frames(directory, "in"))
    replies = iter([f for t, f in inputs if t == c.VENUE])
    if any(t == c.VENUE for t, _ in inputs):
        def replayed(frame: bytes) -> bytes:
            reply = next(replies, None)
            if reply is None:
                raise VenueLinkError("the replay asked the venue more often than the journaled session did")
            return reply
        service._venue_call = replayed
    service.run_frames(iter([(t, f) for t, f in inputs if t != c.VENUE]), lambda t, f: out.append((t, bytes(f))))
    return out
