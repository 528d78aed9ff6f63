"""bot4.services.enrichment: a TTL cache read without waiting, a seeded slow source, a service that
counts answers, failures and timeouts and publishes them as Enrichment messages a subscriber's
cache fills from; and a backtest whose decisions never wait for the source."""

from __future__ import annotations

import random
import threading
import time

import numpy as np
import pytest
import zmq
from hypothesis import given, settings
from hypothesis import strategies as st

import bot4.backtest
from bot4 import contracts as c
from bot4 import strategy as S
from bot4.backtest import run_stream
from bot4.backtest.streaming import watermarked
from bot4.services.enrichment import (
    EnrichmentCache,
    EnrichmentService,
    EnrichmentSubscriber,
    SlowSource,
    SourceFailure,
)
from bot4.services.security import CurveGuard, generate_keys, secure_client, secure_server
from bot4.sim import default_params, generate, generate_parts

S_NS = 1_000_000_000


class Clock:
    def __init__(self, t: int = 0):
        self.t = t

    def __call__(self) -> int:
        return self.t


def wait_for(cond, seconds: float = 10.0) -> bool:
    """Poll `cond` until true or `seconds` pass (a liveness bound, not a timing assertion)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.005)
    return cond()


@pytest.fixture
def ctx():
    cx = zmq.Context()
    yield cx
    cx.destroy(linger=0)


def _pubsub(ctx, name):
    pub = ctx.socket(zmq.PUB)
    pub.bind(f"inproc://{name}")
    sub = ctx.socket(zmq.SUB)
    sub.connect(f"inproc://{name}")
    return pub, sub


# --- the cache -----------------------------------------------------------------------------------

def test_ttl_expiry_with_an_injected_clock():
    clock = Clock(1_000)
    cache = EnrichmentCache(clock)
    assert cache.get("funding") is None
    cache.put("funding", 0.0001, ttl_ns=100)
    assert cache.get("funding") == (0.0001, 0)
    clock.t += 99
    assert cache.get("funding") == (0.0001, 99)
    clock.t += 1
    assert cache.get("funding") is None          # expired at exactly its TTL
    cache.put("funding", 0.0002, ttl_ns=100)      # a fresh answer replaces it, age from now
    clock.t += 10
    assert cache.get("funding") == (0.0002, 10)
    cache.put("other", "x", ttl_ns=5)
    clock.t += 5
    assert cache.purge() == 1 and len(cache) == 1 and cache.get("other") is None


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["put", "get", "tick"]), st.sampled_from("abc"),
                          st.integers(0, 50)), max_size=60))
def test_cache_matches_a_reference_model(ops):
    clock = Clock()
    cache = EnrichmentCache(clock)
    model: dict[str, tuple[int, int, int]] = {}
    for i, (op, key, n) in enumerate(ops):
        if op == "put":
            cache.put(key, i, ttl_ns=n)
            model[key] = (i, clock.t, n)
        elif op == "tick":
            clock.t += n
        else:
            want = None
            if key in model and clock.t - model[key][1] < model[key][2]:
                want = (model[key][0], clock.t - model[key][1])
            assert cache.get(key) == want


# --- the stand-in source ---------------------------------------------------------------------------

def test_slow_source_is_seeded_and_fails_at_its_rate():
    def outcomes(seed):
        src = SlowSource(0.0, failure_rate=0.3, seed=seed)
        out = []
        for i in range(200):
            try:
                out.append(src.fetch(f"k{i}"))
            except SourceFailure:
                out.append("fail")
        return out

    a, b = outcomes(7), outcomes(7)
    assert a == b and a != outcomes(8)
    rng = random.Random(7)   # the documented draw order: delay, failure, stall, answer
    expected = sum(1 for _ in range(200) if [rng.random() for _ in range(4)][1] < 0.3)
    assert a.count("fail") == expected and 30 < expected < 90
    with pytest.raises(ValueError, match="failure_rate"):
        SlowSource(failure_rate=1.5)
    with pytest.raises(ValueError, match="latency"):
        SlowSource(-1.0)


def test_close_ends_a_stalled_fetch():
    src = SlowSource(3600.0)
    out = []

    def call():
        try:
            src.fetch("k")
        except SourceFailure as exc:
            out.append(str(exc))

    t = threading.Thread(target=call)
    t.start()
    assert wait_for(lambda: src.calls == 1)
    src.close()
    t.join(10)
    assert not t.is_alive() and out == ["source closed"]


# --- the service and its subscriber ----------------------------------------------------------------

def test_answers_reach_a_subscriber_over_tcp_with_curve(ctx, tmp_path):
    keys = tmp_path / "keys"
    generate_keys(keys)
    with CurveGuard(ctx, keys) as guard:
        pub = ctx.socket(zmq.PUB)
        secure_server(pub, keys, guard)
        port = pub.bind_to_random_port("tcp://127.0.0.1")
        sub = ctx.socket(zmq.SUB)
        secure_client(sub, keys)
        sub.connect(f"tcp://127.0.0.1:{port}")
        subscriber = EnrichmentSubscriber(sub).start()
        src = SlowSource(0.02, seed=1)
        # refresh keeps answering, so the subscriber gets answers whenever its handshake completes
        with EnrichmentService(src, timeout=5, ttl=60, keys=["funding", "news"], refresh=0.05, sock=pub) as svc:
            assert wait_for(lambda: subscriber.cache.get("funding") is not None
                            and subscriber.cache.get("news") is not None)
            got = subscriber.cache.get("funding")
            assert isinstance(got.value, float) and 0 <= got.value < 1 and got.age_ns >= 0
            counts = svc.counters()
        subscriber.close()
        assert counts["answered"] >= 2 and counts["failed"] == counts["timed_out"] == 0
        assert subscriber.counters()["answers"] >= 2 and guard.counters()["zap.allowed"] == 1
        sub.close(0)
        pub.close(0)


def test_timeouts_are_published_and_late_answers_dropped(ctx):
    pub, sub = _pubsub(ctx, "enr-timeout")
    subscriber = EnrichmentSubscriber(sub)
    src = SlowSource(0.4, seed=2)
    with EnrichmentService(src, timeout=0.05, ttl=60, sock=pub) as svc:
        assert svc.request("funding")
        assert not svc.request("funding")     # one request per key in flight
        assert wait_for(lambda: svc.counters()["timed_out"] == 1)
        assert wait_for(lambda: svc.counters()["late_answers"] == 1)   # the answer came after all
        counts = svc.counters()
    assert counts["answered"] == 0 and counts["coalesced"] == 1 and counts["in_flight"] == 0
    assert svc.cache.get("funding") is None   # a late answer is never cached
    subscriber.poll(1000)
    assert subscriber.counters()["errors"] == 1 and subscriber.cache.get("funding") is None
    sub.close(0)
    pub.close(0)


def test_failures_and_stalls_are_counted_and_never_cached(ctx):
    pub, sub = _pubsub(ctx, "enr-fail")
    subscriber = EnrichmentSubscriber(sub)
    n = 40
    src = SlowSource(0.0, failure_rate=0.5, stall_rate=0.2, stall=3600, seed=11)
    rng = random.Random(11)
    draws = [[rng.random() for _ in range(4)] for _ in range(n)]
    stalls = sum(1 for d in draws if d[2] < 0.2)
    fails = sum(1 for d in draws if d[2] >= 0.2 and d[1] < 0.5)
    with EnrichmentService(src, timeout=0.3, ttl=60, workers=n, max_pending=n, sock=pub) as svc:
        for i in range(n):
            assert svc.request(f"k{i}")
        assert wait_for(lambda: svc.counters()["in_flight"] == 0)
        counts = svc.counters()
        src.close()
    assert counts["failed"] == fails and counts["timed_out"] == stalls
    assert counts["answered"] == n - fails - stalls and counts["published"] == n
    assert len(svc.cache) == n - fails - stalls
    while subscriber.poll(200):
        pass
    sc = subscriber.counters()
    assert sc["errors"] == fails + stalls and sc["answers"] == n - fails - stalls
    assert sum(subscriber.cache.get(f"k{i}") is not None for i in range(n)) == n - fails - stalls
    sub.close(0)
    pub.close(0)


def test_requests_from_another_service_over_the_inbox(ctx):
    inbox = ctx.socket(zmq.PULL)
    inbox.bind("inproc://enr-inbox")
    engine = ctx.socket(zmq.PUSH)
    engine.connect("inproc://enr-inbox")
    codec = c.Codec(c.ENRICHMENT)
    with EnrichmentService(SlowSource(0.2, seed=4), timeout=5, ttl=60, inbox=inbox) as svc:
        engine.send(b"\x92garbage")
        engine.send(codec.encode(c.Enrichment(ts=0, key="x", ok=False)))
        engine.send(codec.encode(c.EnrichmentRequest(ts=0, key="funding", timeout_ns=0)))
        engine.send(codec.encode(c.EnrichmentRequest(ts=0, key="news", timeout_ns=20_000_000)))  # 20 ms
        assert wait_for(lambda: svc.counters()["answered"] == 1 and svc.counters()["timed_out"] == 1)
        counts = svc.counters()
    assert counts["inbox_requests"] == 2 and counts["inbox_other"] == 1
    assert counts["inbox.rejected.truncated"] + counts["inbox.rejected.malformed"] == 1
    assert svc.cache.get("funding") is not None and svc.cache.get("news") is None
    engine.close(0)
    inbox.close(0)


def test_a_failure_keeps_the_older_value():
    values = iter([1.5])

    class Flaky:
        def fetch(self, key):
            v = next(values, None)
            if v is None:
                raise ConnectionError("down")
            return v

    with EnrichmentService(Flaky(), timeout=5, ttl=60) as svc:
        svc.request("k")
        assert wait_for(lambda: svc.counters()["answered"] == 1)
        svc.request("k")
        assert wait_for(lambda: svc.counters()["failed"] == 1)
        assert svc.cache.get("k").value == 1.5


def test_reads_and_requests_never_wait_for_a_hung_source():
    src = SlowSource(3600.0)   # hangs until closed
    with EnrichmentService(src, timeout=3600, ttl=60, workers=2, max_pending=8) as svc:
        svc.cache.put("funding", 0.5, 60 * S_NS)
        done = threading.Event()
        seen = []

        def decide():
            for i in range(20_000):
                svc.request(f"k{i % 16}")
                seen.append(svc.cache.get("funding"))
            done.set()

        t = threading.Thread(target=decide)
        t.start()
        t.join(30)   # a read or request that waited on the source would still be waiting
        assert done.is_set()
        assert src.calls == 2 and src.returned == 0   # both workers are inside the hung fetch
        counts = svc.counters()
        assert counts["requested"] == 8 and counts["refused_full"] > 0 and counts["coalesced"] > 0
        assert all(s is not None and s.value == 0.5 for s in seen)
        src.close()


def test_malformed_frames_are_counted(ctx):
    pub, sub = _pubsub(ctx, "enr-bad")
    subscriber = EnrichmentSubscriber(sub)
    time.sleep(0.05)
    codec = c.Codec(c.ENRICHMENT)
    pub.send_multipart([c.ENRICHMENT, b"\xc1garbage"])
    pub.send_multipart([c.ENRICHMENT])
    pub.send_multipart([c.ENRICHMENT, codec.encode(c.Enrichment(ts=0, key="k", ok=True, value=2, ttl_ns=S_NS))])
    assert wait_for(lambda: (subscriber.poll(100), subscriber.cache.get("k") is not None)[1])
    sc = subscriber.counters()
    assert sc["rejected.malformed"] == 1 and sc["malformed_multipart"] == 1 and sc["answers"] == 1
    sub.close(0)
    pub.close(0)


# --- a decision never waits for the source ---------------------------------------------------------

class Imbalance(S.Strategy):
    """README's example: joins the bid when it is much deeper than the ask, bracketed."""

    def on_decision(self, ctx):
        if ctx.position == 0 and ctx.two_sided and not ctx.open_orders() and ctx.bid_qty > 4 * ctx.ask_qty:
            return [S.Bracket(side="buy", price=ctx.bid, qty=1, stop_ticks=20, target_ticks=30)]
        return None


class EnrichedImbalance(Imbalance):
    """The same rule; it also asks for the enrichment at every decision and reads the cache
    (recording what it saw), but ignores the value."""

    def __init__(self, service, cache):
        self.service, self.cache = service, cache
        self.hits, self.misses, self.values = 0, 0, set()

    def on_decision(self, ctx):
        self.service.request("funding")
        got = self.cache.get("funding")
        if got is None:
            self.misses += 1
        else:
            self.hits += 1
            self.values.add(got.value)
        return super().on_decision(ctx)


def _same_outputs(a, b):
    # field by field (a decision's p is NaN without a model; run_stream leaves the records' padding
    # bytes uninitialised, so whole-record bytes differ between two identical runs)
    for name in ("decisions", "orders", "fills", "equity"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and x.size == y.size, name
        for f in x.dtype.names:
            assert np.array_equal(x[f], y[f], equal_nan=x[f].dtype.kind == "f"), (name, f)
    assert a.pnl == b.pnl


def test_backtest_decisions_never_wait_for_a_hung_source(ctx):
    data = generate(seed=5, n_events=30_000)
    base = bot4.backtest.run(data, model=None, strategy=Imbalance, progress=False)
    assert base.orders.size > 0
    pub, sub = _pubsub(ctx, "enr-hung")
    subscriber = EnrichmentSubscriber(sub).start()
    src = SlowSource(3600.0)   # answers only when closed: a decision that waited would never end
    with EnrichmentService(src, timeout=3600, ttl=60, sock=pub) as svc:
        strat = EnrichedImbalance(svc, subscriber.cache)
        result: dict = {}
        runner = threading.Thread(target=lambda: result.update(
            res=bot4.backtest.run(data, model=None, strategy=strat, progress=False)))
        runner.start()
        runner.join(120)
        finished = not runner.is_alive()
        in_fetch = src.calls == 1 and src.returned == 0
        src.close()
        runner.join()
    subscriber.close()
    assert finished and in_fetch            # the run ended while the source was still inside its fetch
    assert strat.misses == base.decisions.size and strat.hits == 0
    _same_outputs(result["res"], base)
    sub.close(0)
    pub.close(0)


def test_streamed_run_reads_the_cache_while_the_source_takes_seconds(ctx):
    latency = 6.0  # (the run takes ~0.5 s alone, 1.5 s on a loaded 2-core machine)
    spec = default_params().instrument

    def parts():
        return watermarked(generate_parts(seed=5, n_events=30_000, part_events=5_000))

    def stream(strategy):
        return run_stream(parts(), {spec.instrument_id: spec}, None, progress=False, strategy=strategy)

    base = stream(Imbalance)
    pub, sub = _pubsub(ctx, "enr-slow")
    subscriber = EnrichmentSubscriber(sub).start()
    src = SlowSource(latency, seed=3)
    with EnrichmentService(src, timeout=30, ttl=600, sock=pub) as svc:
        svc.request("funding")            # a first answer, so the run has a value to read
        assert wait_for(lambda: subscriber.cache.get("funding") is not None, 4 * latency)
        warm = subscriber.cache.get("funding").value
        strat = EnrichedImbalance(svc, subscriber.cache)
        t0 = time.perf_counter()
        res = stream(strat)             # asks again at its first decision: `latency` s to answer
        elapsed = time.perf_counter() - t0
        during = svc.counters()
        src.close()
    subscriber.close()
    # The refresh asked for at the first decision was still in flight when the run ended (had any
    # decision waited for it, it would have been answered): no decision waited. Not a timing
    # assertion; elapsed only says by how much.
    assert during["requested"] == 2 and during["answered"] == 1 and during["in_flight"] == 1, (during, elapsed)
    assert during["coalesced"] == base.decisions.size - 1
    assert strat.hits == base.decisions.size and strat.misses == 0 and strat.values == {warm}
    _same_outputs(res, base)
    sub.close(0)
    pub.close(0)


def test_a_paper_session_never_waits_for_a_hung_source(ctx):
    # The same in a paper session (feed -> engine over ZeroMQ, the strategy in the engine's thread):
    # the session ends while the source is still inside its one fetch, and trades as without it.
    from bot4.services.session import run_paper

    data = generate(seed=5, n_events=20_000)
    base = run_paper(data, strategy=Imbalance, control=None)
    assert base.orders
    pub, sub = _pubsub(ctx, "enr-paper")
    subscriber = EnrichmentSubscriber(sub).start()
    src = SlowSource(3600.0)
    with EnrichmentService(src, timeout=3600, ttl=60, sock=pub) as svc:
        strat = EnrichedImbalance(svc, subscriber.cache)
        result: dict = {}
        runner = threading.Thread(target=lambda: result.update(res=run_paper(data, strategy=strat, control=None)))
        runner.start()
        runner.join(120)
        finished = not runner.is_alive()
        in_fetch = src.calls == 1 and src.returned == 0
        src.close()
        runner.join()
    subscriber.close()
    assert finished and in_fetch
    paper = result["res"]
    assert strat.misses == paper.decisions == base.decisions and strat.hits == 0
    assert paper.orders == base.orders and paper.fills == base.fills and paper.pnl == base.pnl
    sub.close(0)
    pub.close(0)
