"""bot4.services.venue: the venue simulators as a service of their own, trading with the engine
over ROUTER/DEALER. A session with its venue there gives the same orders, fills and P&L as one
backtest (the core asks the venue only while it is live, which misses nothing); the journal of
such a session replays bit for bit; bad frames, unknown instruments and a silent venue are clear
errors, never a hang or a lost order."""

from __future__ import annotations

import numpy as np
import pytest
import zmq
from paper_helpers import CONFIG, MODEL_DIR, assert_same_as_backtest
from recordings import BTCUSDT, data_path, require_recording

from bot4 import contracts as c
from bot4.backtest import run, run_stream
from bot4.backtest.engine import _l3_ids, engine_config
from bot4.backtest.streaming import _streams, time_pieces
from bot4.errors import VenueLinkError
from bot4.events import VENUE_REQUEST, VENUE_RESPONSE
from bot4.services.engine import EngineService, journal_frames, replay_journal
from bot4.services.session import run_paper
from bot4.services.venue import VenueService, _venue_of, run_venue, venue_link
from bot4.sim import generate

SEED, EVENTS = 7, 30_000


@pytest.fixture(scope="module")
def data():
    return generate(seed=SEED, n_events=EVENTS)


@pytest.fixture(scope="module")
def whole(data):
    return run(data, MODEL_DIR, config=CONFIG, progress=False)


def _local_venue(specs, config=CONFIG, calls=None):
    """The core's remote-venue path with the simulators called directly (no sockets)."""
    sim = engine_config(config).get("sim")
    venues = {i: _venue_of(sim, s) for i, s in specs.items()}

    def exchange(instrument, requests, clock_offset, now):
        if calls is not None:
            calls.append((instrument, requests.size, now))
        return venues[instrument].exchange(instrument, requests, clock_offset, now)
    return venues, exchange


def _feed_all(venues, piece, l3):
    book, trades, orders = _streams(piece, l3)  # as the core gets them (no derived L2 of an L3 book)
    for v in venues.values():
        v.append_feed(book=book, trades=trades, orders=orders)


def test_the_core_over_a_remote_venue_equals_the_backtest(data, whole):
    calls: list = []
    venues, exchange = _local_venue(data.specs, calls=calls)
    # The venue must have what the engine has: feed it each piece as the engine takes it in.
    pieces = list(time_pieces(data, seconds=30))

    def fed():
        for p in pieces:
            _feed_all(venues, p, _l3_ids(data))
            yield p
    got = run_stream(fed(), data.specs, MODEL_DIR, CONFIG, progress=False, venue=exchange, l3=_l3_ids(data))
    assert whole.orders.size > 100 and whole.fills.size > 10
    for k in ("orders", "fills", "equity", "decisions"):
        np.testing.assert_array_equal(getattr(got, k), getattr(whole, k), err_msg=k)
    assert got.pnl == whole.pnl
    n = got.counters
    assert n["remote_venue_exchanges"] == len(calls) > 0
    # most polls are answered locally (the venue idle), yet every request reached it
    assert n["remote_venue_skipped"] > n["remote_venue_exchanges"]
    assert n["remote_venue_requests"] == sum(k for _, k, _ in calls) == whole.counters["sim_requests"]
    assert sum(v.counters()["fills"] for v in venues.values()) == whole.counters["sim_fills"]
    assert n["sim_fills"] == 0  # no simulator inside the core


def test_an_error_in_the_venue_callable_is_raised_as_itself(data):
    def broken(instrument, requests, clock_offset, now):
        raise ConnectionError("venue gone")
    with pytest.raises(ConnectionError, match="venue gone"):
        run_stream(time_pieces(data, seconds=30), data.specs, MODEL_DIR, CONFIG, progress=False, venue=broken)

    def wrong(instrument, requests, clock_offset, now):
        return np.zeros(1, VENUE_REQUEST), True
    with pytest.raises(TypeError, match="VENUE_RESPONSE"):
        run_stream(time_pieces(data, seconds=30), data.specs, MODEL_DIR, CONFIG, progress=False, venue=wrong)


@pytest.mark.parametrize("processes", [False, True], ids=["threads-inproc", "processes-ipc"])
def test_paper_with_the_venue_as_a_service_equals_the_backtest(whole, processes):
    paper = run_paper(None, seed=SEED, n_events=EVENTS, part_events=9_000, model=MODEL_DIR, config=CONFIG,
                      processes=processes, venue_service=True, control=None)
    assert_same_as_backtest(paper, whole)
    eng, ven = paper.counters["engine"], paper.counters["venue"]
    assert eng["core.remote_venue_exchanges"] + 1 == eng["venue_exchanges"] == ven["exchanges"]  # + the final one
    assert eng["core.remote_venue_requests"] == ven["requests"] > 100
    assert eng["core.remote_venue_responses"] == ven["responses"]
    assert ven["md_batches"] == eng["batches"] and ven["md_seq_gaps"] == 0 and ven["refused"] == 0
    assert ven["sim.1.fills"] == whole.fills.size
    assert eng["core.sim_fills"] == 0


def test_the_journal_of_a_session_with_a_venue_service_replays_bit_for_bit(data, tmp_path):
    jdir = tmp_path / "journal"
    paper = run_paper(data, model=MODEL_DIR, config=CONFIG, journal=jdir, venue_service=True, control=None,
                      batch_events=700)
    journaled = [x for x in journal_frames(jdir, "out") if x[0] == c.EXECUTIONS]
    assert len(journaled) == len(paper.orders) + len(paper.fills) > 50
    assert sum(1 for t, _ in journal_frames(jdir, "in") if t == c.VENUE) == paper.counters["engine"]["venue_exchanges"]
    fresh = EngineService(data.specs, l3=list(data.specs), model=MODEL_DIR, config=CONFIG)
    replayed = [x for x in replay_journal(jdir, fresh) if x[0] == c.EXECUTIONS]
    assert replayed == journaled


def _requests(n=1, instrument=1):
    a = np.zeros(n, VENUE_REQUEST)
    a["instrument"] = instrument
    a["id"] = np.arange(1, n + 1)
    a["qty"] = 1
    a["price"] = 100
    a["sent_local"] = 1_000
    a["clock_offset"] = np.iinfo(np.int64).max
    return a


def _frame(msg) -> bytes:
    return c.Codec(c.VENUE).encode(msg)


def test_bad_requests_are_counted_refusals(data):
    svc = VenueService(data.specs, config=CONFIG)
    for bad in (b"", b"\xc1", _frame(c.pack(c.VenueResponses, np.zeros(0, VENUE_RESPONSE), seq=1, ts=1, live=False))):
        reply = c.Codec(c.VENUE).decode(svc.decode(bad))
        assert isinstance(reply, c.VenueResponses) and reply.error.startswith("not a venue request") and not reply.live
    unknown = svc.decode(_frame(c.pack(c.VenueRequests, _requests(instrument=9), seq=1, ts=1, instrument=9, now=2,
                                       clock_offset=0, md_seq=0)))
    assert isinstance(unknown, c.VenueRequests)
    reply = c.Codec(c.VENUE).decode(svc.answer(unknown))
    assert reply.seq == 1 and "instrument 9 is not served" in reply.error
    assert svc.counters["refused"] == 4 and svc.counters["exchanges"] == 0
    assert svc.summary()["link.rejected.truncated"] + svc.summary()["link.rejected.malformed"] == 2


def test_a_request_ahead_of_the_venues_market_data_waits_for_it(data):
    svc = VenueService(data.specs, config=CONFIG)
    msg = svc.decode(_frame(c.pack(c.VenueRequests, _requests(), seq=1, ts=1, instrument=1, now=2_000,
                                   clock_offset=0, md_seq=2)))
    assert svc.waits(msg)
    book = np.ascontiguousarray(data.book[:100])
    for seq in range(2):
        svc.take_market(c.Codec(c.MARKET).encode(c.pack(c.BookBatch, book, seq=seq, ts=1)))
    assert not svc.waits(msg)
    reply = c.Codec(c.VENUE).decode(svc.answer(msg))
    assert reply.error == "" and reply.live and svc.counters["requests"] == 1
    # a batch lost on the way is counted
    svc.take_market(c.Codec(c.MARKET).encode(c.pack(c.BookBatch, book, seq=5, ts=1)))
    assert svc.counters["md_seq_gaps"] == 1


def test_the_engine_raises_a_venue_refusal_and_a_silent_venue(data):
    ctx = zmq.Context()
    try:
        call, sock = venue_link(ctx, "inproc://nobody-venue", timeout_s=0.3)
        with pytest.raises(VenueLinkError, match="did not answer"):
            call(b"x")
        sock.close()
        eng = EngineService(data.specs, l3=list(data.specs), model=MODEL_DIR, config=CONFIG,
                            venue=lambda frame: _frame(c.pack(c.VenueResponses, np.zeros(0, VENUE_RESPONSE), seq=1,
                                                              ts=1, live=False, error="closed for the day")))
        with pytest.raises(VenueLinkError, match="closed for the day"):
            eng._exchange(1, _requests(), 0, 5)
        eng = EngineService(data.specs, l3=list(data.specs), model=MODEL_DIR, config=CONFIG,
                            venue=lambda frame: _frame(c.pack(c.VenueResponses, np.zeros(0, VENUE_RESPONSE), seq=7,
                                                              ts=1, live=False)))
        with pytest.raises(VenueLinkError, match="answered exchange 7, expected 1"):
            eng._exchange(1, _requests(), 0, 5)
    finally:
        ctx.term()


def test_the_venue_service_answers_a_malformed_envelope_instead_of_hanging(data):
    import threading

    ctx = zmq.Context()
    svc = VenueService(data.specs, config=CONFIG)
    stop, ready = threading.Event(), threading.Event()
    out: dict = {}
    t = threading.Thread(target=lambda: out.update(run_venue(ctx, "inproc://no-feed", "inproc://venue-bad", svc,
                                                             stop=stop, ready=ready)))
    t.start()
    ready.wait(10)
    dealer = ctx.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.connect("inproc://venue-bad")
    try:
        dealer.send(b"one frame only")
        assert dealer.poll(5_000)
        topic, frame = dealer.recv_multipart()
        assert topic == c.VENUE and "expected (topic, frame)" in c.Codec(c.VENUE).decode(frame).error
        dealer.send_multipart((c.VENUE, b"\xc1"))
        assert dealer.poll(5_000)
        assert "not a venue request" in c.Codec(c.VENUE).decode(dealer.recv_multipart()[1]).error
    finally:
        stop.set()
        t.join(10)
        dealer.close()
        ctx.term()
    assert out["bad_envelope"] == 1 and out["refused"] == 2


@pytest.mark.realdata
def test_the_core_over_a_remote_venue_equals_the_backtest_on_btcusdt():
    from bot4.data import load

    d = load(require_recording(data_path(*BTCUSDT)))
    ref = run(d, MODEL_DIR, config=CONFIG, progress=False)
    venues, exchange = _local_venue(d.specs)

    def fed():
        for p in time_pieces(d, seconds=20):
            _feed_all(venues, p, _l3_ids(d))
            yield p
    got = run_stream(fed(), d.specs, MODEL_DIR, CONFIG, progress=False, venue=exchange, l3=_l3_ids(d))
    assert ref.fills.size > 10
    for k in ("orders", "fills", "equity"):
        np.testing.assert_array_equal(getattr(got, k), getattr(ref, k), err_msg=k)


@pytest.mark.realdata
def test_an_inverse_contract_over_a_remote_venue_equals_the_backtest():
    # (the venue service's simulators charge COIN-M fees in coin on the face value, as the core's)
    from bot4.data import load

    d = load(require_recording(data_path("binance_hftbacktest", "coinm", "btcusd_perp_20240808.gz")))
    (spec,) = d.specs.values()
    assert spec.inverse and float(spec.contract_size) == 100
    kw = dict(config={"sim": {"entry_latency_ns": 200_000}}, strategy="market_maker")
    ref = run(d, None, progress=False, **kw)
    venues, exchange = _local_venue(d.specs, config=kw["config"])

    def fed():
        for p in time_pieces(d, seconds=20):
            _feed_all(venues, p, _l3_ids(d))
            yield p
    got = run_stream(fed(), d.specs, None, progress=False, venue=exchange, l3=_l3_ids(d), **kw)
    assert ref.fills.size > 10 and np.all(ref.fills["fee"] != 0)
    for k in ("orders", "fills", "equity"):
        np.testing.assert_array_equal(getattr(got, k), getattr(ref, k), err_msg=k)
