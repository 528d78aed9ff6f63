"""A paper-trading session: feed -> engine over ZeroMQ, its outputs collected into a summary.

run_paper starts the feed and the engine as threads over inproc (default) or as processes over
ipc (processes=True), subscribes to the engine's decisions, executions, positions and telemetry,
and returns what came over the bus: the order events and fills as messages, the P&L (the last
position's total equity), and the counters of feed, engine and collector. With speed "max" the
result equals bot4.backtest.run over the same data (tests/services/test_session.py).

While it runs, the session answers control commands (bot4.services.control; `bot4 ctl`) at its
control endpoint: ipc in the session's run folder by default, forwarded to the engine, which
applies them between pieces and replies with the command's trace id.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import zmq

from bot4 import contracts as c
from bot4.services.control import ControlServer, check_endpoint
from bot4.services.engine import DEFAULT_LOOKAHEAD_NS, SOURCE_SEP, EngineService, run_engine
from bot4.services.feed import Speed, parse_speed, run_feed
from bot4.services.observer import ConflatingPublisher, check_observe_endpoint, observer_key
from bot4.services.venue import VenueService, run_venue

_COLLECT = (c.DECISIONS, c.EXECUTIONS, c.POSITIONS, c.TELEMETRY)


@dataclass
class PaperResult:
    """What a session published: orders (OrderEvent), fills (Fill), decisions (count), pnl
    (quote units: total equity of the last position message; 0.0 without one), counters by
    service (feed, engine, collector; observer: what its observers were sent, conflated and
    dropped), the journal directory (None = not journaled), the control endpoint the session
    answered at (None = none), its observer endpoint (None = none) and the perf manifest it
    wrote (None = none)."""

    orders: list[c.OrderEvent]
    fills: list[c.Fill]
    decisions: int
    pnl: float
    counters: dict[str, dict[str, int]] = field(default_factory=dict)
    journal: Path | None = None
    control: str | None = None
    observe: str | None = None
    #: Shadow models' scores (ShadowScore, one per decision per shadow slot, in the order
    #: published) and the champion's decisions they were scored beside (Decision: its p is slot
    #: 0's); both kept only when the session ran shadow models (run_paper shadow=).
    scores: list[c.ShadowScore] = field(default_factory=list)
    scored_decisions: list[c.Decision] = field(default_factory=list)
    perf: Path | None = None

    def as_json(self) -> dict[str, Any]:
        """The summary as builtin types: counts of orders, fills and decisions, pnl, counters,
        journal, control and observer endpoints."""
        return {"orders": len(self.orders), "fills": len(self.fills), "decisions": self.decisions,
                "scores": len(self.scores), "pnl": self.pnl, "counters": self.counters,
                "journal": str(self.journal) if self.journal is not None else None, "control": self.control,
                "observe": self.observe, "perf": str(self.perf) if self.perf is not None else None}


@dataclass
class Source:
    """Where the feed's data comes from: a recording (paths, or MarketData in this process), or
    the embedded simulator (seed, n_events) made part_events at a time."""

    data: Any = None
    venue: str | None = None
    seed: int | None = None
    n_events: int | None = None
    part_events: int = 100_000

    def parts(self) -> Iterator[Any]:
        """Consecutive parts of the recording (MarketData), as the feed publishes them."""
        if self.data is None:
            from bot4.sim import DEFAULT_SEED, generate_parts
            from bot4.sim.generate import DEFAULT_EVENTS

            yield from generate_parts(seed=DEFAULT_SEED if self.seed is None else self.seed,
                                      n_events=DEFAULT_EVENTS if self.n_events is None else self.n_events,
                                      part_events=self.part_events)
        elif isinstance(self.data, (str, os.PathLike, list, tuple)):
            from bot4.data import load

            paths = [self.data] if isinstance(self.data, (str, os.PathLike)) else list(self.data)
            yield load([Path(p) for p in paths], venue=self.venue)
        else:
            yield self.data


class Links(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Where the services of one session meet: each link's endpoint (ipc://PATH, or
    tcp://HOST:PORT with CURVE keys on every service; bot4.services.security.Transport).

    md: the feed's market data (the feed binds; engines and the venue connect). out: the
    collector's engine outputs (the collector binds; engines connect). venue: the venue
    service's orders and fills (the venue binds; engines connect; None = the venue inside each
    engine). replay: the feed's replay ring for a restarted engine (the feed binds; None = no
    restarts). control_pub: the collector's command publisher (the collector binds; engines
    connect; None = no control plane)."""

    md: str
    out: str
    venue: str | None = None
    replay: str | None = None
    control_pub: str | None = None

    def tcp(self) -> bool:
        """Whether any link is tcp (every service then needs the CURVE keys)."""
        return any(e is not None and e.startswith("tcp://")
                   for e in (self.md, self.out, self.venue, self.replay, self.control_pub))


def local_links(folder: str, transport: str = "ipc", *, venue: bool = False, replay: bool = False,
                control: bool = True, host: str = "127.0.0.1") -> Links:
    """Links for services on this machine: ipc sockets in `folder`, or tcp on `host` at ports
    free a moment ago (transport="tcp")."""
    if transport not in ("ipc", "tcp"):
        raise ValueError(f"transport must be 'ipc' or 'tcp', got {transport!r}")
    if transport == "ipc":
        def at(name: str) -> str:
            return f"ipc://{folder}/{name}"
    else:
        from bot4.services.security import free_tcp_endpoint

        def at(name: str) -> str:
            return free_tcp_endpoint(host)
    return Links(md=at("md"), out=at("out"), venue=at("venue") if venue else None,
                 replay=at("replay") if replay else None, control_pub=at("ctlpub") if control else None)


def _transport(ctx: zmq.Context, keys: Any, client: str) -> Any:
    from bot4.services.security import Transport

    return Transport(ctx, keys, client)


def _instruments(first: Any) -> tuple[dict, list[int]]:
    import numpy as np

    l3 = sorted(set(np.unique(first.orders["instrument"]).tolist())) if first.orders.size else []
    return dict(first.specs), l3


def _feed_main(endpoint: str, source: Source, speed: Speed, batch_events: int,
               fault_frames: Mapping[int, Sequence[bytes]] | None, out: Any, subscribers: int = 1,
               replay: str | None = None, done: Any = None, keys: Any = None, client: str = "client") -> None:
    ctx = zmq.Context()
    tr = _transport(ctx, keys, client)
    try:
        out.put(("feed", run_feed(ctx, endpoint, source.parts(), speed=speed, batch_events=batch_events,
                                  fault_frames=fault_frames, subscribers=subscribers, replay_endpoint=replay,
                                  serve_until=done, transport=tr)))
    except BaseException as exc:  # the parent reports it; a process cannot raise into it
        out.put(("feed", exc))
        raise SystemExit(1) from None
    finally:
        tr.stop()
        ctx.term()


def _engine_main(md: str, outp: str, kwargs: dict, out: Any, ctl: str | None = None,
                 venue: str | None = None, recover: bool = False, replay: str | None = None,
                 key: str = "engine", keys: Any = None, client: str = "client") -> None:
    ctx = zmq.Context()
    tr = _transport(ctx, keys, client)
    try:
        out.put((key, run_engine(ctx, md, outp, EngineService(**kwargs), connect_out=True,
                                 control_endpoint=ctl, venue_endpoint=venue, recover=recover,
                                 replay_endpoint=replay, transport=tr)["counters"]))
    except BaseException as exc:
        out.put((key, exc))
        raise SystemExit(1) from None
    finally:
        tr.stop()
        ctx.term()


def _venue_main(md: str, endpoint: str, kwargs: dict, out: Any, engines: int = 1, keys: Any = None,
                client: str = "client") -> None:
    ctx = zmq.Context()
    tr = _transport(ctx, keys, client)
    try:
        out.put(("venue", run_venue(ctx, md, endpoint, VenueService(**kwargs), engines=engines, transport=tr)))
    except BaseException as exc:
        out.put(("venue", exc))
        raise SystemExit(1) from None
    finally:
        tr.stop()
        ctx.term()


def run_paper(data: Any = None, *, speed: Speed = "max", config: Any = None, model: Any = None,
              strategy: Any = None, journal: str | os.PathLike[str] | None = None, fsync: str = "every:1000",
              processes: bool = False, seed: int | None = None, n_events: int | None = None,
              part_events: int = 100_000, venue: str | None = None, batch_events: int = 1024,
              fault_frames: Mapping[int, Sequence[bytes]] | None = None, timeout_s: float = 600.0,
              venue_lookahead_ns: int = DEFAULT_LOOKAHEAD_NS, control: str | None = "auto",
              on_control: Callable[[str], None] | None = None, announce: bool = False,
              observe: str | None = None, observers: int = 0, keys: str | os.PathLike[str] | None = None,
              venue_service: bool = False, restarts: int = 0,
              on_engine_start: Callable[[int], None] | None = None,
              shards: Sequence[Sequence[int]] | None = None, shadow: Any = None,
              perf: str | os.PathLike[str] | None = None, transport: str = "ipc", links: Links | None = None,
              remote: bool = False, client: str = "client") -> PaperResult:
    """Paper-trade `data` (recording path(s), a MarketData, or None = the embedded simulator with
    `seed` and `n_events`) at `speed` (a factor over the recording's clock, or "max").

    config, model, strategy: as bot4.backtest.run (with processes=True they must be picklable:
    a model directory, a strategy name or spec string). journal: the engine journals every frame
    in and out there (fsync: its policy). batch_events: records per feed time slice.
    fault_frames: raw frames the feed injects after the n-th batch (see Feed). venue_lookahead_ns:
    how far the strategy trails the feed so the simulated venue has the recording's near future
    (see bot4.services.engine). control: the control endpoint ("auto" = ipc in a fresh run
    folder; an ipc:// or inproc:// address, or tcp:// with keys; None = no control plane);
    on_control is called with
    it once it is bound, before any data flows; announce: also write it where `bot4 ctl` looks
    first (bot4.services.control.pointer_file), the observer endpoint beside it. observe: an
    ipc://, inproc:// or tcp:// address where the collector republishes every engine output to
    observers (a live view, `bot4 ctl watch`) through a ConflatingPublisher that never stalls the
    session (bot4.services.observer; its counters are counters["observer"]); observers: wait up
    to 30 s for that many observers to subscribe before anything starts. keys: a CURVE keys
    directory (bot4.services.security, `bot4 keys generate DIR`), required when the control or
    observer endpoint is tcp://, or any link is: only its authorised clients are answered.
    transport: with processes, the links between the services as "ipc" sockets in the run
    folder or "tcp" on 127.0.0.1 (needs keys: CURVE on every link, each service authenticating
    its peers). links: the services' endpoints (Links) instead of chosen ones, e.g. tcp on
    other hosts; remote: the feed, venue and engines are started elsewhere on `links`
    (bot4.services.deploy, `bot4 serve`) and this process is the collector only: it binds
    links.out and links.control_pub and collects until every engine stopped (counters then
    hold the collector's own only). client: this process's client name in the keys directory.
    venue_service: the venue simulators run as a
    service of their own (a thread, or a process with processes=True) that reads the feed and
    trades with the engine over ROUTER/DEALER (bot4.services.venue), instead of inside the
    engine's core; the result is the same. restarts: with processes, venue_service and a journal,
    an engine process that dies (kill -9 included) is started again up to this many times and
    carries on from its journal (bot4.services.engine.run_engine recover=True), the feed
    replaying what it missed; the venue answers its repeated exchanges once, and the collector
    drops the outputs it already has, so the result is the same as without the crash.
    With shards, each engine restarts on its own (restarts counts the restarts of all of them).
    on_engine_start: called with each engine process's pid once it starts. shards: the
    instruments split over several engine processes (processes=True), e.g. [[1, 2], [3]]: each
    engine trades its group against its own ledger and risk limits (its journal in
    journal/shard-<k>), all behind the same contracts, the feed and (with venue_service) one
    venue; pnl is the sum of the engines' total equity. A command naming an instrument goes to
    its engine; a command for all goes to every engine and is answered once all did, merged
    (bot4.services.control.merge_replies: Status aggregated over the shards). shadow: a model or a list of them scored beside the champion at
    every decision and never traded (as bot4.backtest.run's shadow; model directories with
    processes=True): the result keeps their scores and the champion's decisions (scores,
    scored_decisions), for bot4.models.live_canary. perf: write the session's perf manifest there at the end
    (bot4.services.perf: the core's per-decision stages, the engine's per-batch time and the
    engine<->venue round trips, p50/p95/p99/p99.9 with the machine they ran on)."""
    if shards is not None and not processes:
        raise ValueError("shards run as engine processes: pass processes=True")
    if remote and not processes:
        raise ValueError("remote services are processes elsewhere: pass processes=True (and links)")
    if remote and links is None:
        raise ValueError("remote needs the services' links (Links)")
    if remote and restarts:
        raise ValueError("restarts with remote services are the hosts' own (`bot4 serve engine --recover`)")
    if transport not in ("ipc", "tcp"):
        raise ValueError(f"transport must be 'ipc' or 'tcp', got {transport!r}")
    if (transport == "tcp" or (links is not None and links.tcp())) and keys is None:
        raise ValueError("tcp links need keys (a CURVE keys directory, `bot4 keys generate DIR`)")
    if links is not None and not processes:
        raise ValueError("links are between service processes: pass processes=True")
    if links is not None and venue_service != (links.venue is not None):
        raise ValueError("links.venue must be given exactly when venue_service=True")
    if links is not None and restarts and links.replay is None:
        raise ValueError("restarts need the feed's replay link (links.replay)")
    if restarts and not (processes and venue_service and journal is not None):
        raise ValueError("restarts needs processes=True, venue_service=True and a journal (the state a restarted "
                         "engine carries on from)")
    parse_speed(speed)
    if control is not None and control != "auto":
        check_endpoint(control, curve=keys is not None)
    if observe is not None:
        check_observe_endpoint(observe, curve=keys is not None)
    source = Source(data, venue, seed, n_events, part_events)
    first_parts = source.parts()
    first = next(first_parts)
    specs, l3 = _instruments(first)
    engine_kwargs = dict(specs=specs, l3=l3, model=model, config=config, strategy=strategy, journal=journal,
                         fsync=fsync, venue_lookahead_ns=venue_lookahead_ns, shadow=shadow)
    groups = _shard_groups(shards, specs)
    sharded = shards is not None

    def shard_kwargs(k: int) -> dict:
        ids = set(groups[k])
        if not sharded:
            return engine_kwargs
        return dict(engine_kwargs, specs={i: s for i, s in specs.items() if i in ids}, l3=[i for i in l3 if i in ids],
                    journal=Path(journal) / f"shard-{k}" if journal is not None else None, name=f"engine-{k}",
                    shard=True)
    venue_kwargs = dict(specs=specs, l3=l3, config=config)
    md_subscribers = len(groups) + (1 if venue_service else 0)
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 2_000)  # the end-of-output acknowledgement (an unsubscribe) must get out
    for t in _COLLECT:
        sub.setsockopt(zmq.SUBSCRIBE, t)
    results: dict[str, Any] = {}
    tmp = None
    server: ControlServer | None = None
    observer: ConflatingPublisher | None = None
    guard: Any = None
    observed: dict[str, int] = {}
    exits: dict[str, Any] = {}
    security: dict[str, int] = {}
    scored: list[Any] | None = [] if shadow is not None else None
    perf_collector = None
    if perf is not None:
        from bot4.services.perf import PerfCollector

        perf_collector = PerfCollector("paper")
    link_tr: Any = None
    try:
        if (any(e is not None and e.startswith("tcp://") for e in (control, observe)) or transport == "tcp"
                or (links is not None and links.tcp())):
            from bot4.services.security import CurveGuard, Transport

            if keys is None:
                raise ValueError("tcp endpoints need keys (a CURVE keys directory, `bot4 keys generate DIR`)")
            guard = CurveGuard(ctx, keys)
            link_tr = Transport(ctx, keys, client, guard=guard)
        if observe is not None:
            observer = ConflatingPublisher(ctx, observe, keys=keys, guard=guard, announce=announce)
            if observers:
                observer.wait_observers(observers)
        if processes or control == "auto" or venue_service:
            tmp = tempfile.mkdtemp(prefix="bot4-paper-")
        tag = uuid.uuid4().hex
        if processes and links is None:
            links = local_links(str(tmp), transport, venue=venue_service, replay=bool(restarts),
                                control=control is not None)
        if control is not None:
            endpoint = f"ipc://{tmp}/ctl" if control == "auto" else control
            if links is not None and links.control_pub is None:
                raise ValueError("a control endpoint with links needs links.control_pub (where the engines "
                                 "take the commands)")
            publish = links.control_pub if links is not None else f"inproc://ctl-{tag}"
            assert publish is not None
            server = ControlServer(ctx, endpoint, publish, announce=announce, keys=keys, guard=guard,
                                   engines=len(groups))
            sub.setsockopt(zmq.SUBSCRIBE, c.CONTROL_REPLIES)
            if on_control is not None:
                on_control(server.endpoint)  # (the bound address: tcp port 0 becomes the port chosen)
        ctl_pub = server.xpub.getsockopt_string(zmq.LAST_ENDPOINT) if server is not None else None
        if processes:
            from bot4.services.security import bind_link

            assert links is not None
            md, outp = links.md, links.out
            # The collector binds before the engine starts, so the engine's outputs have their peer
            # from the engine's first frame on.
            outp = bind_link(sub, outp, "out", link_tr)
            if isinstance(data, (str, os.PathLike, list, tuple)) or data is None:
                feed_source = source
            else:
                feed_source = Source(first, venue, seed, n_events, part_events)
            spawn = mp.get_context("spawn")
            q: Any = spawn.Queue()
            venue_ep = links.venue if venue_service else None
            replay_ep = links.replay if restarts else None
            done = spawn.Event()
            keys_arg = str(keys) if keys is not None else None

            def engine_process(recover: bool, k: int = 0) -> Any:
                return spawn.Process(target=_engine_main, name=f"bot4-engine-{k}" if sharded else "bot4-engine",
                                     args=(md, outp, shard_kwargs(k), q, ctl_pub, venue_ep, recover, replay_ep,
                                           f"engine-{k}" if sharded else "engine", keys_arg, client))
            procs: list[Any] = []
            if not remote:
                procs = [engine_process(False, k) for k in range(len(groups))]
                procs.append(spawn.Process(target=_feed_main, name="bot4-feed",
                                           args=(md, feed_source, speed, batch_events, fault_frames, q,
                                                 md_subscribers, replay_ep, done if replay_ep else None, keys_arg,
                                                 client)))
                if venue_ep is not None:
                    procs.append(spawn.Process(target=_venue_main, name="bot4-venue",
                                               args=(md, venue_ep, venue_kwargs, q, len(groups), keys_arg, client)))
            for p in procs[::-1]:  # the venue and the feed first: the engines connect to them
                p.start()
            if on_engine_start is not None:
                for p in procs[:len(groups)]:
                    on_engine_start(p.pid)
            restarted = 0

            def failed() -> bool:
                nonlocal restarted
                for k in range(len(groups) if procs else 0):
                    if procs[k].exitcode not in (None, 0) and restarted < restarts:
                        # (each engine on its own: a shard's restart leaves the others running)
                        restarted += 1
                        procs[k] = engine_process(True, k)
                        procs[k].start()
                        if on_engine_start is not None:
                            on_engine_start(procs[k].pid)
                        return False
                return any(p.exitcode not in (None, 0) for p in procs)
            collected = _collect(sub, timeout_s, failed, server, observer, engines=len(groups), scores=scored,
                                 perf=perf_collector)
            done.set()
            results["restarts"] = restarted
            if collected is None:
                for p in procs:  # one failed: the other may wait for it forever
                    p.terminate()
            for p in procs:
                p.join(timeout_s)
            exits = {p.name: p.exitcode for p in procs if p.exitcode not in (None, 0)}
            while not q.empty():
                name, value = q.get(timeout=5)
                results[name] = value
        else:
            md, outp = f"inproc://md-{tag}", f"inproc://out-{tag}"

            def chained() -> Iterable[Any]:
                yield first
                yield from first_parts

            service = EngineService(**engine_kwargs)
            stop = threading.Event()
            venue_ep = f"inproc://venue-{tag}" if venue_service else None
            threads = [_Thread("engine", results, run_engine, ctx, md, outp, service, control_endpoint=ctl_pub,
                               venue_endpoint=venue_ep),
                       _Thread("feed", results, run_feed, ctx, md, chained(), speed=speed,
                               batch_events=batch_events, fault_frames=fault_frames, stop=stop,
                               subscribers=md_subscribers)]
            if venue_ep is not None:
                bound = threading.Event()
                venue_thread = _Thread("venue", results, run_venue, ctx, md, venue_ep, VenueService(**venue_kwargs),
                                       stop=stop, ready=bound)
                venue_thread.start()
                bound.wait(30)
                threads.append(venue_thread)
            threads[0].start()
            sub.connect(outp)
            threads[1].start()
            collected = _collect(sub, timeout_s, lambda: any(isinstance(v, BaseException) for v in results.values()),
                                 server, observer, scores=scored, perf=perf_collector)
            if collected is None:
                stop.set()  # the feed may be blocked on an engine that is gone
            for th in threads:
                th.join(timeout_s)
            if isinstance(results.get("engine"), dict):
                results["engine"] = results["engine"]["counters"]
        for name in ("engine", "feed", "venue", *(f"engine-{k}" for k in range(len(groups)) if sharded)):
            err = results.get(name)
            if isinstance(err, BaseException):
                if processes:
                    raise RuntimeError(f"paper session: the {name} process failed: {err!r}") from err
                raise err
        if collected is None:
            why = ", ".join(f"{k} exited {v}" for k, v in exits.items())
            raise RuntimeError(f"paper session: a service stopped before the end of stream{f' ({why})' if why else ''}")
    finally:
        if observer is not None:
            observed = observer.close()
        if server is not None:
            server.close()
        if link_tr is not None:
            link_tr.close(sub)  # (its handshake counts are kept)
        else:
            sub.close()
        if guard is not None:
            security = {**guard.counters(), **(link_tr.counters() if link_tr is not None else {})}
            guard.stop()
        ctx.term()
        if tmp is not None:
            for f in Path(tmp).iterdir():
                f.unlink()
            os.rmdir(tmp)
    orders, fills, decisions, pnl, counters = collected
    written = perf_collector.write(perf) if perf_collector is not None and perf is not None else None
    kept_scores = [m for m in scored if isinstance(m, c.ShadowScore)] if scored is not None else []
    kept_decisions = [m for m in scored if isinstance(m, c.Decision)] if scored is not None else []
    return PaperResult(orders=orders, fills=fills, decisions=decisions, pnl=pnl, scores=kept_scores,
                       scored_decisions=kept_decisions,
                       counters={"feed": results.get("feed", {}), "engine": results.get("engine", {}),
                                 **({"engines": {f"engine-{k}": results.get(f"engine-{k}", {})
                                                 for k in range(len(groups))}} if sharded else {}),
                                 "collector": counters,
                                 **({"venue": results.get("venue", {})} if venue_service else {}),
                                 **({"supervisor": {"engine_restarts": results.get("restarts", 0)}} if restarts else {}),
                                 **({"observer": observed} if observer is not None else {}),
                                 **({"security": security} if guard is not None else {}),
                                 **({"control": dict(server.counters)} if server is not None else {})},
                       journal=Path(journal) if journal is not None else None,
                       control=server.endpoint if server is not None else None,
                       observe=observer.endpoint if observer is not None else None, perf=written)


class _Thread(threading.Thread):
    def __init__(self, name: str, results: dict, target: Any, *args: Any, **kwargs: Any):
        super().__init__(name=f"bot4-{name}", daemon=True)
        self._key, self._results, self._fn, self._args, self._kwargs = name, results, target, args, kwargs

    def run(self) -> None:
        try:
            self._results[self._key] = self._fn(*self._args, **self._kwargs)
        except BaseException as exc:
            self._results[self._key] = exc


def _shard_groups(shards: Sequence[Sequence[int]] | None, specs: Mapping[int, Any]) -> list[list[int]]:
    """The instrument groups, one per engine (one group of all without shards); every instrument
    in exactly one group."""
    if shards is None:
        return [sorted(int(i) for i in specs)]
    groups = [sorted(int(i) for i in g) for g in shards]
    if any(not g for g in groups):
        raise ValueError("shards: a group without instruments")
    seen = [i for g in groups for i in g]
    unknown = sorted(set(seen) - set(specs))
    if unknown:
        raise ValueError(f"shards: instrument(s) {unknown} not in the data (it has {sorted(specs)})")
    if len(seen) != len(set(seen)):
        raise ValueError("shards: an instrument in more than one group")
    missing = sorted(set(specs) - set(seen))
    if missing:
        raise ValueError(f"shards: instrument(s) {missing} in no group")
    return groups


def _collect(sub: zmq.Socket, timeout_s: float, failed: Any, server: ControlServer | None = None,
             observer: ConflatingPublisher | None = None, engines: int = 1,
             scores: list | None = None,
             perf: Any = None) -> tuple | None:
    codecs = {t: c.Codec(t) for t in _COLLECT}
    orders: list[c.OrderEvent] = []
    fills: list[c.Fill] = []
    decisions = 0
    pnl = 0.0
    idle = 0.0
    step = 0.2
    # Per engine (a shard's outputs carry its name after the topic): outputs accepted, how many
    # of a restarted engine's repeated outputs to drop, and its outputs since it (re)started.
    place: dict[bytes, list[int]] = {}
    recovery = {"engine_restarts": 0, "repeated_outputs": 0}
    stopped = 0
    equity: dict[bytes, float] = {}  # engine -> its last total equity
    poller = zmq.Poller()
    for s in (sub, *(server.sockets if server is not None else ())):
        poller.register(s, zmq.POLLIN)
    while True:
        ready = dict(poller.poll(int(step * 1000)))
        if server is not None:
            # Commands do not count as output: a session fed nothing still times out.
            if server.router in ready:
                server.on_client()
            if server.xpub in ready:
                server.on_engine_join()
        if sub not in ready:
            if observer is not None:
                observer.flush()  # a slow observer catches up while the engine is quiet
            if not ready:
                idle += step
            if failed():
                return None  # the caller raises the service's own error
            if idle >= timeout_s:
                raise RuntimeError(f"paper session: no output for {timeout_s:.0f} s")
            continue
        idle = 0.0
        parts = sub.recv_multipart()
        if len(parts) != 2:
            continue
        topic, frame = parts
        at = topic.find(SOURCE_SEP)
        source = topic[at + 1:] if at >= 0 else b"engine"
        topic = topic[:at] if at >= 0 else topic
        mine = place.setdefault(source, [0, 0, 0])  # accepted, skip, index
        if not topic.startswith(c.TELEMETRY):
            # Every engine output but telemetry is a deterministic sequence; a restarted engine
            # repeats it from the start, and what we already have of it is dropped by its place.
            mine[2] += 1
            if mine[2] <= mine[1]:
                recovery["repeated_outputs"] += 1
                continue
            mine[0] += 1
        if server is not None and topic.startswith(c.CONTROL_REPLIES):
            server.on_reply(frame, source.decode(errors="replace"))
            continue
        msg = codecs[c.topic_of(topic)].decode(frame)
        if isinstance(msg, c.Heartbeat) and msg.service == "engine" and msg.state == "starting":
            mine[1], mine[2] = mine[0], 0
            recovery["engine_restarts"] += 1
            continue
        if observer is not None and not isinstance(msg, c.Rejection):
            observer.publish(topic, frame, observer_key(topic, msg))
        if perf is not None and isinstance(msg, (c.PerfSample, c.Heartbeat)):
            perf.take(msg)
        if scores is not None and isinstance(msg, (c.Decision, c.ShadowScore)):
            scores.append(msg)
        if isinstance(msg, c.OrderEvent):
            orders.append(msg)
        elif isinstance(msg, c.Fill):
            fills.append(msg)
        elif isinstance(msg, c.Decision):
            decisions += 1
        elif isinstance(msg, c.Position):
            equity[source] = msg.total_equity
            pnl = sum(equity.values())
        elif isinstance(msg, c.Heartbeat) and msg.service == "engine" and msg.state == "stopping":
            stopped += 1
            if stopped == engines:
                sub.setsockopt(zmq.UNSUBSCRIBE, c.TELEMETRY)  # tells the engines everything arrived
                break
    counters = {"frames": sum(x.decoded for x in codecs.values())}
    counters.update({k: v for k, v in recovery.items() if v})
    for t, x in codecs.items():
        for k, v in x.rejected.items():
            if v:
                counters[f"{t.decode()}rejected.{k}"] = v
    return orders, fills, decisions, pnl, counters
