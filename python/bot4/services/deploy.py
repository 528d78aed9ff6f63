"""A paper session's services started one by one, each on its own host, from one session plan.

A plan (a TOML file, `load_plan`) names every link's endpoint (bot4.services.session.Links),
the CURVE keys directory, the data and the trading setup. Each host runs one service from it:

    serve_feed(plan)               binds links.md (and links.replay), replays the data
    serve_venue(plan)              binds links.venue, reads links.md (with venue links only)
    serve_engine(plan, shard=k)    connects to every link; recover=True after a crash
    serve_collector(plan)          binds links.out and links.control_pub, answers the control
                                   endpoint, collects the session's result (a PaperResult)

`bot4 serve feed|venue|engine|collector --plan FILE` calls them. Over tcp every link is CURVE
(bot4.services.security.Transport): a service that binds holds the keys directory's server pair
and its clients/ (the keys it admits); a service that connects holds server.key and its own
client secret (`--name`, default "client"); a peer without an authorised key is refused and
counted (security.* counters). Any start order works: the feed waits for its subscribers, an
engine for the collector.

Every host reads the plan's data source for the instruments' specs (the feed replays it): the
same recording path on each host, or the simulator's seed and n_events. Relative paths in a plan
are taken from the plan file's folder.

A crashed engine (with a journal, a venue service and the feed's replay link) is started again
with serve_engine(..., recover=True) (`bot4 serve engine --recover`, e.g. by the host's service
manager): it carries on from its journal, the venue answers its repeated exchanges once, and the
collector drops the outputs it already has. The feed keeps answering replays for
plan.replay_linger_s after its stream ended.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import zmq

from bot4.errors import ConfigError
from bot4.services.engine import DEFAULT_LOOKAHEAD_NS, EngineService, run_engine
from bot4.services.feed import parse_speed, run_feed
from bot4.services.security import DEFAULT_CLIENT, Transport
from bot4.services.session import Links, PaperResult, Source, _instruments, _shard_groups, run_paper
from bot4.services.venue import VenueService, run_venue

__all__ = ["SERVICES", "Plan", "load_plan", "serve_collector", "serve_engine", "serve_feed", "serve_venue",
           "start_service"]


class Plan(msgspec.Struct, forbid_unknown_fields=True):
    """A session across hosts. links: every link's endpoint (Links). control: the collector's
    control endpoint for `bot4 ctl` (None = none). keys: the CURVE keys directory (required
    when a link or the control endpoint is tcp). data: recording path(s), or none for the
    embedded simulator (seed, n_events, part_events); venue: the recording's venue name.
    speed: "max" or a factor over the recording's clock. config: a risk/strategy TOML file (as
    `bot4 config check` takes), or the config inline (a table, as bot4.backtest.run's dict); model: a model directory; strategy: a strategy name or spec. shards: instrument groups, one
    engine each (none = one engine). journal: each engine's journal folder (shard k's in
    journal/shard-<k>). replay_linger_s: how long the feed answers replays after its stream
    ended (a restarted engine catches up from it). timeout_s: a service idle that long fails."""

    links: Links
    control: str | None = None
    keys: str | None = None
    data: list[str] | None = None
    venue: str | None = None
    seed: int | None = None
    n_events: int | None = None
    part_events: int = 100_000
    speed: str | float = "max"
    batch_events: int = 1024
    config: str | dict[str, Any] | None = None
    model: str | None = None
    strategy: str | None = None
    shards: list[list[int]] | None = None
    journal: str | None = None
    fsync: str = "every:1000"
    venue_lookahead_ns: int = DEFAULT_LOOKAHEAD_NS
    replay_linger_s: float = 30.0
    timeout_s: float = 600.0

    def check(self) -> Plan:
        """ValueError on a plan no service could run (a bad speed, tcp without keys, ...)."""
        parse_speed(self.speed)
        if self.batch_events < 1 or self.part_events < 1:
            raise ValueError("batch_events and part_events must be >= 1")
        tcp = self.links.tcp() or (self.control is not None and self.control.startswith("tcp://"))
        if tcp and self.keys is None:
            raise ValueError("tcp links need keys (a CURVE keys directory, `bot4 keys generate DIR`)")
        if self.control is not None and self.links.control_pub is None:
            raise ValueError("a control endpoint needs links.control_pub (where the engines take the commands)")
        if self.replay_linger_s < 0 or self.timeout_s <= 0:
            raise ValueError("replay_linger_s must be >= 0 and timeout_s > 0")
        return self


def load_plan(path: str | os.PathLike[str]) -> Plan:
    """The plan in the TOML file at `path` (its relative paths resolved from the file's folder);
    a ConfigError names the file and what is wrong."""
    p = Path(path)
    try:
        plan = msgspec.toml.decode(p.read_bytes(), type=Plan)
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read ({exc.strerror or exc})") from None
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ConfigError(f"{p}: {exc}") from None
    base = p.resolve().parent

    def at(x: str | None) -> str | None:
        return None if x is None else str(base / x)
    plan = msgspec.structs.replace(plan, keys=at(plan.keys), journal=at(plan.journal),
                                   config=at(plan.config) if isinstance(plan.config, str) else plan.config,
                                   model=at(plan.model) if plan.model is not None and (base / plan.model).exists()
                                   else plan.model,
                                   data=[str(base / d) for d in plan.data] if plan.data is not None else None)
    try:
        return plan.check()
    except ValueError as exc:
        raise ConfigError(f"{p}: {exc}") from None


def _source(plan: Plan) -> Source:
    return Source(plan.data, plan.venue, plan.seed, plan.n_events, plan.part_events)


def _config(plan: Plan) -> Any:
    if plan.config is None or isinstance(plan.config, dict):
        return plan.config
    from bot4.config import load_config

    return load_config(plan.config)


def _setup(plan: Plan) -> tuple[dict, list[int], list[list[int]]]:
    """Specs, L3 instruments and the shard groups (from the first part of the plan's data)."""
    specs, l3 = _instruments(next(_source(plan).parts()))
    return specs, l3, _shard_groups(plan.shards, specs)


class _Linger:
    """serve_until for a feed on its own: true once `seconds` passed since the first wait."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.t0: float | None = None

    def wait(self, timeout: float) -> bool:
        now = time.monotonic()
        if self.t0 is None:
            self.t0 = now
        left = self.t0 + self.seconds - now
        if left > 0:
            time.sleep(min(timeout, left))
        return time.monotonic() >= self.t0 + self.seconds

    def is_set(self) -> bool:
        return self.t0 is not None and time.monotonic() >= self.t0 + self.seconds


def _with_transport(plan: Plan, client: str, fn: Callable[[zmq.Context, Transport], Any]) -> Any:
    ctx = zmq.Context()
    tr = Transport(ctx, plan.keys, client)
    try:
        return fn(ctx, tr)
    finally:
        tr.stop()
        ctx.term()


def serve_feed(plan: Plan, *, client: str = DEFAULT_CLIENT, ready: Any = None) -> dict[str, int]:
    """The feed of `plan`: binds links.md (and links.replay), waits for every engine (and the
    venue), replays the data at plan.speed, answers replays for plan.replay_linger_s after the
    end; returns its counters (bot4.services.feed.run_feed)."""
    plan.check()
    _, _, groups = _setup(plan)
    subscribers = len(groups) + (1 if plan.links.venue is not None else 0)
    linger = _Linger(plan.replay_linger_s) if plan.links.replay is not None else None
    return _with_transport(plan, client, lambda ctx, tr: run_feed(
        ctx, plan.links.md, _source(plan).parts(), speed=plan.speed,
        batch_events=plan.batch_events, subscribers=subscribers, replay_endpoint=plan.links.replay,
        serve_until=linger, ready=ready, transport=tr, ack_timeout_s=plan.timeout_s))


def serve_venue(plan: Plan, *, client: str = DEFAULT_CLIENT, ready: Any = None) -> dict[str, Any]:
    """The venue service of `plan` (links.venue must be set): binds links.venue, reads links.md,
    answers every engine until all sent their final exchange; returns its summary."""
    plan.check()
    if plan.links.venue is None:
        raise ValueError("the plan has no venue link (links.venue): the venue runs inside each engine")
    specs, l3, groups = _setup(plan)
    venue = plan.links.venue
    return _with_transport(plan, client, lambda ctx, tr: run_venue(
        ctx, plan.links.md, venue, VenueService(specs, l3=l3, config=_config(plan)), engines=len(groups),
        ready=ready, idle_timeout_s=plan.timeout_s, transport=tr))


def serve_engine(plan: Plan, *, shard: int = 0, recover: bool = False, client: str = DEFAULT_CLIENT,
                 ready: Any = None) -> dict[str, Any]:
    """Engine `shard` of `plan` (0 without shards): connects to links.md, links.out,
    links.control_pub, links.venue and (recover=True, carrying on from its journal after a
    crash) links.replay; returns its counters."""
    plan.check()
    specs, l3, groups = _setup(plan)
    if not 0 <= shard < len(groups):
        raise ValueError(f"shard {shard}: the plan has {len(groups)} engine(s) (0..{len(groups) - 1})")
    if recover and (plan.journal is None or plan.links.replay is None or plan.links.venue is None):
        raise ValueError("recover needs the plan's journal, links.replay and links.venue")
    sharded = plan.shards is not None
    ids = set(groups[shard])
    kwargs: dict[str, Any] = dict(specs=specs, l3=l3, model=plan.model, config=_config(plan), strategy=plan.strategy,
                                  journal=plan.journal, fsync=plan.fsync, venue_lookahead_ns=plan.venue_lookahead_ns)
    if sharded:
        kwargs.update(specs={i: s for i, s in specs.items() if i in ids}, l3=[i for i in l3 if i in ids],
                      journal=Path(plan.journal) / f"shard-{shard}" if plan.journal is not None else None,
                      name=f"engine-{shard}", shard=True)
    return _with_transport(plan, client, lambda ctx, tr: run_engine(
        ctx, plan.links.md, plan.links.out, EngineService(**kwargs), connect_out=True, ready=ready,
        control_endpoint=plan.links.control_pub, venue_endpoint=plan.links.venue, recover=recover,
        replay_endpoint=plan.links.replay, transport=tr)["counters"])


def serve_collector(plan: Plan, *, client: str = DEFAULT_CLIENT, on_control: Callable[[str], None] | None = None,
                    announce: bool = False, observe: str | None = None,
                    perf: str | os.PathLike[str] | None = None) -> PaperResult:
    """The collector of `plan`: binds links.out (and links.control_pub, answering `bot4 ctl` at
    plan.control), collects every engine's outputs until all stopped, and returns the session's
    result (bot4.services.session.run_paper with remote=True; its counters are the collector's)."""
    plan.check()
    return run_paper(plan.data, seed=plan.seed, n_events=plan.n_events, part_events=plan.part_events,
                     venue=plan.venue, speed=plan.speed, journal=plan.journal,
                     processes=True, links=plan.links, remote=True, shards=plan.shards,
                     venue_service=plan.links.venue is not None, control=plan.control, on_control=on_control,
                     announce=announce, observe=observe, keys=plan.keys, client=client, timeout_s=plan.timeout_s,
                     perf=perf)


SERVICES = ("feed", "venue", "engine", "collector")


def _service_main(plan: Plan, service: str, out: Any, kwargs: dict) -> None:
    fns: dict[str, Callable[..., Any]] = {"feed": serve_feed, "venue": serve_venue, "engine": serve_engine,
                                          "collector": serve_collector}
    fn = fns[service]
    key = f"engine-{kwargs.get('shard', 0)}" if service == "engine" else service
    try:
        out.put((key, fn(plan, **kwargs)))
    except BaseException as exc:  # the parent reports it; a process cannot raise into it
        out.put((key, exc))
        raise SystemExit(1) from None


def start_service(plan: Plan, service: str, results: Any, **kwargs: Any) -> Any:
    """serve_<service>(plan, **kwargs) in a process of its own (spawned), started; it puts
    (name, result or exception) on `results` (a multiprocessing queue of the spawn context:
    multiprocessing.get_context("spawn").Queue()) as it ends, name being the service's, or
    "engine-<shard>". Returns the Process (a supervisor restarts a dead engine with
    recover=True)."""
    import multiprocessing as mp

    if service not in SERVICES:
        raise ValueError(f"service must be one of {', '.join(SERVICES)}, got {service!r}")
    p = mp.get_context("spawn").Process(target=_service_main, args=(plan, service, results, kwargs),
                                        name=f"bot4-{service}", daemon=False)
    p.start()
    return p
