"""Calibrate the market generator on a recorded L2 stream (MarketData with book + trades).

Method (each step is a plain estimator; the numbers of the shipped default come from running
this on ../shared/data/binance_hftbacktest/usdm/btcusdt_20240808.gz):

1. Book states. The BOOK_EVENTs are replayed message by message (records up to FLAG_LAST) through
   the core BookSet; before each message (and after the last) the sizes at the K ticks behind
   each side's touch are kept. Binance sends a diff every ~50 ms, so an "event" here is the
   *net* change of one price level within one message, the finest thing an L2 feed shows.
2. Price moves (messages after which a touch price changed). On this feed they are rare (~1.4/s)
   and large (median ~20 ticks), and both sides move together: the touch of one side empties and
   jumps outward, the other side re-quotes inside the spread. Estimated directly: the outward
   jump in ticks, the size of the touch after an outward jump, the size of the new touch after
   an inward move and the spread it leaves, and the share of outward jumps followed by the other
   side in the same message (inside_follow_prob). The inside-add rate is the number of inward
   moves per side divided by the time the spread was observed wider than one tick (the batching
   hides most wide spreads, so this rate is high and a gap closes within milliseconds, as the
   feed shows). In such messages only the change of the emptied touch is used in step 3; the
   other level changes are the re-centring of the book, which the generator reproduces by the
   jump, the far-end refill and the redraw behind a new inside touch.
3. Level changes of message m against the book before m, for prices at k < K ticks behind the
   own touch: size up = an add at level k (size = the increase); size down = a decrease, of which
   the lots traded at that price in the same interval (trades matched by side and price) are
   executions and the rest a cancel event at level k (size = the rest; a "clear" when the level
   is gone). Levels at K ticks or more are ignored (outside the model).
4. Queue-reactive intensities (Huang, Lehalle & Rosenbaum 2015): for each level k and queue bin
   b (size in units of the level's typical size = median add/cancel size at k, log2 bins), rate
   = events / time spent in (k, b), both sides pooled, shrunk towards the level's overall rate
   with a prior of `prior_seconds` (rate = (n + a r_k) / (T + a)); the share of cancels that
   clear the level likewise per (k, b) with a prior of `prior_events`. Market orders are grouped
   trades (same trade time and aggressor); their rate is taken by the bin of the touch queue of
   the side hit.
5. Size tables: empirical quantiles (at QUANTILE_PROBS) of level sizes at each distance (level k
   non-empty, sampled before every message), of add and partial-cancel sizes per level (levels
   with few events pooled with their neighbours), of market-order sizes, and of resting-order
   sizes: every trade of a market order except its last fills a whole resting order, so those
   trades sample the orders queued at the touch.
6. Hawkes clocks. For a stationary exponential-kernel Hawkes process with rate L, branching
   ratio n = alpha/beta and g = beta (1 - n), the Fano factor of counts in windows of length t is
       F(t) = 1/(1-n)^2 - (1/(1-n)^2 - 1) (1 - exp(-g t)) / (g t)
   (from the Bartlett spectrum L (beta^2 + w^2) / (g^2 + w^2); fano_model2 gives the two-kernel
   form). Limit clock (adds and cancels of step 3, time = their message time): method of
   moments, (n, g) fitted by least squares on log F over windows from 0.25 s to 16 s (well above
   the 50 ms batching, whose ties make a likelihood on these times ill-posed), then
   mu = L (1 - n), beta = g / (1 - n), alpha = n beta (n capped at 0.95). Market clock (market
   orders, ms time stamps): two kernels by penalised maximum likelihood, -log L / N +
   FANO_WEIGHT * sum (log F_model - log F_data)^2 with the mean rate held at the observed one:
   the likelihood (computed in the core, bot4._core.sim.hawkes_log_likelihood) fits the
   inter-arrival times, the penalty the clustering over seconds, which one kernel cannot do
   together (likelihood alone: Fano 5 instead of 25 at 1 s; moments alone: inter-trade-gap KS
   0.17 instead of 0.13).
7. Feed latency. The recording clock is ~1.27 s behind the exchange, so the level of
   ts_local - ts_exchange is meaningless; only its dispersion is kept: per stream (book
   messages, trades) x = ts_local - ts_exchange minus its median, pooled, as a quantile table.
   The median latency is set to median(x) - quantile(x, 0.1 %), i.e. the fastest 0.1 % of
   messages are taken to have arrived with no delay beyond the clock offset (a few ms, typical
   of a recorder near the venue); the floor is 50 us. Latency is persistent at short gaps
   (trades microseconds apart have nearly equal latencies, book messages 50 ms apart nearly
   independent ones): the generator keeps the previous latency quantile with probability
   exp(-gap/tau), tau = -dt / ln r from the rank autocorrelation r of consecutive book messages
   dt apart. Without it the non-decreasing ts_local clamp would pile delays up.
8. `cancel_newest_prob` (which order a cancel takes) is not identifiable from L2 data and is set
   to 0.5 (documented assumption).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from bot4.data.market_data import MarketData
from bot4.errors import DataError
from bot4.events import ASK, BID, FLAG_LAST, FLAG_SNAPSHOT
from bot4.sim.facts import market_orders, stylised_facts
from bot4.sim.params import SCHEMA_VERSION, HawkesClockParams, MarketModelParams, SourceInfo

QUANTILE_PROBS = (0.0, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55,
                  0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99, 0.995,
                  0.998, 0.999, 1.0)
SIZE_BIN_EDGES = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0)
FANO_WINDOWS_S = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
FANO_WEIGHT = 0.03
MIN_TABLE_SAMPLES = 50
TAIL_SUPPORT = 10
MAX_INSIDE_GAP = 16


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _table(x: np.ndarray) -> tuple[float, ...]:
    """Quantiles at QUANTILE_PROBS, flat above the level supported by TAIL_SUPPORT observations.

    A knot above 1 - TAIL_SUPPORT/n rests on a handful of observations (one whale quote seen by
    a few messages); drawing it again and again would make single outliers typical, so the top
    of the table is held at the quantile 1 - TAIL_SUPPORT/n.
    """
    x = np.asarray(x, np.float64)
    probs = np.asarray(QUANTILE_PROBS)
    top = max(1.0 - TAIL_SUPPORT / max(len(x), 1), 0.5)
    values = np.quantile(x, np.minimum(probs, top))
    return tuple(float(round(v, 3)) for v in values)


def _pooled(samples: list[np.ndarray], k: int) -> np.ndarray:
    """Samples of level k, widened to neighbouring levels until MIN_TABLE_SAMPLES are reached."""
    K = len(samples)
    lo = hi = k
    x = samples[k]
    while len(x) < MIN_TABLE_SAMPLES and (lo > 0 or hi < K - 1):
        lo, hi = max(lo - 1, 0), min(hi + 1, K - 1)
        x = np.concatenate(samples[lo:hi + 1])
    if len(x) == 0:
        raise DataError(f"no events near level {k} to calibrate on")
    return x


def _grid_tables(x: np.ndarray, level: np.ndarray, qbin: np.ndarray, K: int, nb: int,
                 min_bin: int = 0) -> tuple[tuple[tuple[float, ...], ...], ...]:
    """Size tables per (level, queue bin). A thin cell borrows the neighbouring bins of its level
    until MIN_TABLE_SAMPLES are reached, then the neighbouring levels."""
    cells = [[x[(level == k) & (qbin == b)] for b in range(nb)] for k in range(K)]
    out = []
    for k in range(K):
        row = []
        for b in range(nb):
            bb = max(b, min_bin)
            lo = hi = bb
            sample = cells[k][bb]
            while len(sample) < MIN_TABLE_SAMPLES and (lo > min_bin or hi < nb - 1):
                lo, hi = max(lo - 1, min_bin), min(hi + 1, nb - 1)
                sample = np.concatenate(cells[k][lo:hi + 1])
            klo = khi = k
            while len(sample) < MIN_TABLE_SAMPLES and (klo > 0 or khi < K - 1):
                klo, khi = max(klo - 1, 0), min(khi + 1, K - 1)
                sample = np.concatenate([c for kk in range(klo, khi + 1) for c in cells[kk][min_bin:]])
            if len(sample) == 0:
                raise DataError(f"no events near level {k} to calibrate sizes on")
            row.append(_table(sample))
        out.append(tuple(row))
    return tuple(out)


def fano_model(t: np.ndarray, n: float, g: float) -> np.ndarray:
    """Fano factor of an exponential-kernel Hawkes process (branching n, decay g = beta (1-n))."""
    big = 1.0 / (1.0 - n) ** 2
    return big - (big - 1.0) * (1.0 - np.exp(-g * t)) / (g * t)


def fano_model2(t: np.ndarray, clock: HawkesClockParams) -> np.ndarray:
    """Fano factor of counts in windows t (s) of a two-kernel exponential Hawkes clock.

    With s = i w, 1 - Phi(s) = P(s) / ((b1 + s)(b2 + s)), P(s) = s^2 + B s + C, whose roots
    -r1, -r2 are real and negative when the clock is stationary. The Bartlett spectrum is
    L (b1^2 + w^2)(b2^2 + w^2) / ((r1^2 + w^2)(r2^2 + w^2)) = L [1 + sum_j A_j / (r_j^2 + w^2)],
    so the covariance density is L sum_j A_j / (2 r_j) exp(-r_j |t|) and
        F(t) = 1 + sum_j (A_j / r_j^2) (1 - (1 - exp(-r_j t)) / (r_j t)).
    """
    a1, b1, a2, b2 = clock.alpha, clock.beta, clock.alpha2, clock.beta2
    B = b1 + b2 - a1 - a2
    C = b1 * b2 - a1 * b2 - a2 * b1
    disc = np.sqrt(max(B * B - 4.0 * C, 0.0))
    r1, r2 = (B - disc) / 2.0, (B + disc) / 2.0
    if r2 - r1 < 1e-9 * r2:
        r2 = r1 * (1.0 + 1e-6)
    A1 = (b1 * b1 - r1 * r1) * (b2 * b2 - r1 * r1) / (r2 * r2 - r1 * r1)
    A2 = (b1 * b1 - r2 * r2) * (b2 * b2 - r2 * r2) / (r1 * r1 - r2 * r2)
    t = np.asarray(t, np.float64)
    out = np.ones_like(t)
    for A, r in ((A1, r1), (A2, r2)):
        out += A / r**2 * (1.0 - (1.0 - np.exp(-r * t)) / (r * t))
    return out


def _fano_curve(times_ns: np.ndarray, t0: int, t1: int, weights: np.ndarray,
                windows_s: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    fanos, windows = [], []
    for w in windows_s:
        step = int(w * 1e9)
        n_win = int((t1 - t0) // step)
        if n_win < 8:
            continue
        sel = (times_ns >= t0) & (times_ns < t0 + n_win * step)
        counts = np.bincount(((times_ns[sel] - t0) // step).astype(np.int64), weights=weights[sel],
                             minlength=n_win)
        if counts.mean() > 0:
            fanos.append(counts.var() / counts.mean())
            windows.append(w)
    return np.asarray(windows), np.maximum(np.asarray(fanos), 1.0 + 1e-6)


def fit_hawkes_moments(times_ns: np.ndarray, t0: int, t1: int, weights: np.ndarray | None = None,
                       windows_s: tuple[float, ...] = FANO_WINDOWS_S,
                       max_branching: float = 0.95) -> tuple[HawkesClockParams, dict[str, float]]:
    """Method-of-moments fit of a one-kernel exponential Hawkes clock (see module doc, step 6).

    `weights` (event counts per time stamp) lets batched events share one time.
    """
    from scipy.optimize import least_squares  # scipy only for fitting

    if weights is None:
        weights = np.ones(len(times_ns), np.int64)
    rate = float(weights.sum()) / ((t1 - t0) / 1e9)
    t, f = _fano_curve(times_ns, t0, t1, weights, windows_s)

    def resid(theta):
        return np.log(fano_model(t, theta[0], theta[1])) - np.log(f)

    best = None
    for n0 in (0.3, 0.6, 0.85):
        for g0 in (0.1, 1.0, 10.0):
            r = least_squares(resid, x0=[n0, g0], bounds=([0.0, 1e-3], [max_branching, 1e3]))
            if best is None or r.cost < best.cost:
                best = r
    assert best is not None
    n, g = (float(v) for v in best.x)
    beta = g / (1.0 - n)
    params = HawkesClockParams(mu=float(rate * (1.0 - n)), alpha=float(n * beta), beta=float(beta))
    diag = {"rate_per_s": rate, "branching": n,
            **{f"fano_{w:g}s": float(x) for w, x in zip(t, f)}}
    return params, diag


def fit_hawkes_penalised_mle(times_ns: np.ndarray, t0: int, t1: int,
                             windows_s: tuple[float, ...] = FANO_WINDOWS_S,
                             fano_weight: float = FANO_WEIGHT,
                             max_branching: float = 0.95) -> tuple[HawkesClockParams, dict[str, float]]:
    """Two-kernel exponential Hawkes clock by penalised maximum likelihood (module doc, step 6).

    Objective: -log L / N + fano_weight * sum_t (log F_model(t) - log F_data(t))^2, with the
    mean rate held at the observed one (mu = L (1 - n)). The likelihood alone fits the
    millisecond structure (inter-arrival times) but not the clustering over seconds that the
    variance-time curve shows; the penalty asks for both. Event times at 1 ms resolution are
    spread evenly inside their millisecond (ties have zero likelihood otherwise).
    """
    from scipy.optimize import minimize
    from scipy.special import expit

    from bot4 import _core

    ts = np.sort(np.asarray(times_ns, np.int64))
    t_s = (ts - t0) / 1e9
    _, first, counts = np.unique(ts, return_index=True, return_counts=True)
    group = np.repeat(np.arange(len(first)), counts)
    within = np.arange(len(ts)) - first[group]
    t_s = t_s + (within + 0.5) / counts[group] * 1e-3
    horizon = (t1 - t0) / 1e9 + 1e-3
    t_s = np.ascontiguousarray(t_s[(t_s >= 0) & (t_s <= horizon)])
    n_ev = len(t_s)
    rate = n_ev / horizon
    win, fano = _fano_curve(ts, t0, t1, np.ones(len(ts), np.int64), windows_s)

    def unpack(th: np.ndarray) -> HawkesClockParams:
        n = float(max_branching * expit(th[0]))
        share = float(expit(th[1]))
        b1, b2 = float(np.exp(th[2])), float(np.exp(th[3]))
        return HawkesClockParams(mu=rate * (1.0 - n), alpha=n * share * b1, beta=b1,
                                 alpha2=n * (1.0 - share) * b2, beta2=b2)

    def objective(th: np.ndarray) -> float:
        c = unpack(th)
        ll = _core.sim.hawkes_log_likelihood(t_s, horizon, c.mu, c.alpha, c.beta, c.alpha2, c.beta2)
        model = fano_model2(win, c)
        if not np.all(np.isfinite(model) & (model > 0)) or not np.isfinite(ll):
            return 1e6
        pen = float(np.sum((np.log(model) - np.log(fano)) ** 2))
        return -ll / n_ev + fano_weight * pen

    best = None
    for x0 in ((1.0, 0.0, np.log(100.0), np.log(1.0)), (2.0, 0.0, np.log(300.0), np.log(5.0)),
               (0.0, 1.0, np.log(30.0), np.log(0.2))):
        r = minimize(objective, np.asarray(x0), method="Nelder-Mead",
                     options={"maxiter": 6000, "maxfev": 6000, "xatol": 1e-7, "fatol": 1e-10})
        if best is None or r.fun < best.fun:
            best = r
    assert best is not None
    clock = unpack(best.x)
    if clock.beta2 > clock.beta:  # order the kernels: fast first
        clock = HawkesClockParams(mu=clock.mu, alpha=clock.alpha2, beta=clock.beta2,
                                  alpha2=clock.alpha, beta2=clock.beta)
    diag = {"rate_per_s": rate, "branching": clock.branching_ratio,
            "loglik_per_event": float(-best.fun + fano_weight * float(np.sum(
                (np.log(fano_model2(win, clock)) - np.log(fano)) ** 2))),
            **{f"fano_{w:g}s": float(x) for w, x in zip(win, fano)},
            **{f"model_fano_{w:g}s": float(x) for w, x in zip(win, fano_model2(win, clock))}}
    return clock, diag


def _replay_windows(book: np.ndarray, msgs: np.ndarray, first: int, K: int, instrument: int):
    """Sizes at the K ticks behind each touch before every message and after the last one
    (M + 1 states), and the touch prices."""
    from bot4._core.book import BookSet

    bs = BookSet()
    bk = bs.add(instrument)
    bs.apply(book[:first])
    M = len(msgs)
    Q = np.zeros((2, M + 1, K), np.int64)
    touch = np.zeros((2, M + 1), np.int64)
    start = first
    for j, end in enumerate(list(msgs) + [None]):
        for s, name in ((BID, "bid"), (ASK, "ask")):
            d = np.asarray(bk.depth(name, K))
            if len(d) == 0:
                touch[s, j] = 0
                continue
            t = d[0, 0]
            touch[s, j] = t
            dist = np.abs(d[:, 0] - t)
            m = dist < K
            Q[s, j, dist[m]] = d[m, 1]
        if end is not None:
            bs.apply(book[start:end + 1])
            start = end + 1
    return Q, touch, bs.counters()


def calibrate(data: MarketData, *, n_levels: int = 20, prior_seconds: float = 2.0,
              prior_events: float = 5.0, source_path: str | Path | None = None) -> MarketModelParams:
    """Estimate MarketModelParams from an L2 recording (see the module docstring for the method).

    `source_path` (the file `data` was loaded from) is hashed into the provenance record.
    """
    import bot4

    if len(data.specs) != 1:
        raise DataError("calibrate() needs the data of exactly one instrument")
    spec = data.spec
    iid = spec.instrument_id
    K = int(n_levels)
    book = np.ascontiguousarray(data.book[data.book["instrument"] == iid])
    trades = data.trades[data.trades["instrument"] == iid]
    if len(book) == 0 or len(trades) == 0:
        raise DataError("calibrate() needs book events and trades")

    # --- 1. messages and pre-message book states -----------------------------------------------
    flags = book["flags"]
    snap = np.flatnonzero(flags & FLAG_SNAPSHOT)
    if len(snap) == 0 or snap[0] != 0:
        raise DataError("the book stream must start with a snapshot (FLAG_SNAPSHOT)")
    first = int(np.flatnonzero(((flags & FLAG_LAST) != 0) & ((flags & FLAG_SNAPSHOT) != 0))[0]) + 1
    last = np.flatnonzero(flags & FLAG_LAST)
    msgs = last[last >= first]
    # A later snapshot (resync) is applied but not treated as events.
    snap_msg = (flags[msgs] & FLAG_SNAPSHOT) != 0
    M = len(msgs)
    if M < 100:
        raise DataError(f"only {M} book messages after the snapshot; need at least 100")
    Qall, touch_all, book_counters = _replay_windows(book, msgs, first, K, iid)
    Q, touch = Qall[:, :M], touch_all[:, :M]  # before each message
    touch_post = touch_all[:, 1:]             # after each message
    mts = book["ts_exchange"][msgs]
    prev_ts = np.r_[book["ts_exchange"][first - 1], mts[:-1]]
    dt = np.maximum(mts - prev_ts, 0) / 1e9  # seconds spent in the pre-message state
    valid_state = (touch[BID] > 0) & (touch[ASK] > 0) & ~snap_msg
    valid_move = valid_state & (touch_post[BID] > 0) & (touch_post[ASK] > 0)
    spread = touch[ASK] - touch[BID]
    w_dt = np.where(valid_state, dt, 0.0)

    # --- 2. price moves -------------------------------------------------------------------------
    d_bid = touch_post[BID] - touch[BID]
    d_ask = touch_post[ASK] - touch[ASK]
    out_bid = valid_move & (d_bid < 0)
    out_ask = valid_move & (d_ask > 0)
    in_bid = valid_move & (d_bid > 0)
    in_ask = valid_move & (d_ask < 0)
    jumps = np.concatenate([-d_bid[out_bid], d_ask[out_ask]])
    if len(jumps) < 10:
        raise DataError(f"only {len(jumps)} touch moves in the data; need at least 10")
    new_touch_out = np.concatenate([Qall[BID, 1:, 0][out_bid], Qall[ASK, 1:, 0][out_ask]])
    new_touch_in = np.concatenate([Qall[BID, 1:, 0][in_bid], Qall[ASK, 1:, 0][in_ask]])
    spread_post = touch_post[ASK] - touch_post[BID]
    gap_left = np.maximum(np.concatenate([spread_post[in_bid], spread_post[in_ask]]) - 1, 0)
    any_out = out_bid | out_ask
    followed = (out_bid & in_ask) | (out_ask & in_bid)
    follow_prob = float(followed.sum() / max(any_out.sum(), 1))
    wide_time = float(w_dt[spread > 1].sum())
    inward = int(in_bid.sum() + in_ask.sum())
    inside_rate = (inward / 2.0) / max(wide_time, 1e-3)
    gap_counts = np.bincount(np.minimum(gap_left, MAX_INSIDE_GAP), minlength=MAX_INSIDE_GAP + 1)
    gap_w = (gap_counts + 0.5) / (gap_counts + 0.5).sum()  # add-half smoothing

    # --- 3. classify level changes --------------------------------------------------------------
    recs = book[first:msgs[-1] + 1]
    msg_of = np.searchsorted(msgs, np.arange(first, msgs[-1] + 1))
    keep = valid_state[msg_of]
    recs, msg_of = recs[keep], msg_of[keep]
    side = recs["side"].astype(np.int64)
    price = recs["price"]
    qty = recs["qty"]
    dist = np.where(side == BID, touch[BID][msg_of] - price, price - touch[ASK][msg_of])
    inw = (dist >= 0) & (dist < K)
    # In a message that moved a touch keep only the emptied touch of the side that jumped.
    moved = (d_bid != 0) | (d_ask != 0)
    out_side_touch = ((side == BID) & out_bid[msg_of]) | ((side == ASK) & out_ask[msg_of])
    inw &= ~moved[msg_of] | ((dist == 0) & out_side_touch)
    old = np.zeros(len(recs), np.int64)
    old[inw] = Q[side[inw], msg_of[inw], dist[inw]]
    delta = qty - old

    # executions: trades in (previous message, message] at the resting side and price
    t_msg = np.searchsorted(mts, trades["ts_exchange"], side="left")
    t_ok = t_msg < M
    rest_side = np.where(trades["aggressor"] == BID, ASK, BID).astype(np.int64)
    t_key = (t_msg[t_ok] * 2 + rest_side[t_ok]) * (1 << 40) + trades["price"][t_ok]
    uk, inv = np.unique(t_key, return_inverse=True)
    exec_qty = np.bincount(inv, weights=trades["qty"][t_ok].astype(np.float64))
    # distinct market orders (trade groups) behind each executed (message, side, price)
    t_group = np.cumsum(np.r_[True, (trades["ts_exchange"][1:] != trades["ts_exchange"][:-1])
                              | (trades["aggressor"][1:] != trades["aggressor"][:-1])])[t_ok]
    pair = np.unique(np.stack([inv, t_group]), axis=1)
    mo_per_key = np.bincount(pair[0], minlength=len(uk))
    r_key = (msg_of * 2 + side) * (1 << 40) + price
    pos = np.clip(np.searchsorted(uk, r_key), 0, max(len(uk) - 1, 0))
    found = (len(uk) > 0) & (uk[pos] == r_key)
    executed = np.where(found, exec_qty[pos], 0).astype(np.int64)
    n_mo_hits = np.where(found, mo_per_key[pos], 0)

    is_add = inw & (delta > 0)
    dec = inw & (delta < 0)
    cancel_size = np.where(dec, -delta - np.minimum(executed, -delta), 0)
    # A market order that leaves part of the touch is often followed, within the same message,
    # by the withdrawal of the rest: that clear is the reaction to the market order
    # (mo_withdraw_prob), not a cancel event of its own.
    hit = inw & (dist == 0) & (executed > 0) & (old - executed > 0)
    withdrawn = hit & (qty == 0)
    is_cancel = dec & (cancel_size > 0) & ~withdrawn
    is_clear = is_cancel & (qty == 0)  # the level was withdrawn entirely

    # --- 4. typical sizes, bins and queue-reactive rates ----------------------------------------
    add_k = [delta[is_add & (dist == k)] for k in range(K)]
    cancel_k = [cancel_size[is_cancel & (dist == k)] for k in range(K)]
    typical = np.asarray([max(float(np.median(np.concatenate([_pooled(add_k, k), _pooled(cancel_k, k)]))), 1.0)
                          for k in range(K)])
    edges = np.asarray(SIZE_BIN_EDGES)
    nb = len(edges) + 2

    def bins(q: np.ndarray, k: np.ndarray | int) -> np.ndarray:
        ratio = q / typical[k]
        b = 1 + np.searchsorted(edges, ratio, side="left")  # (e[i-1], e[i]] -> i+1
        return np.where(q <= 0, 0, b)

    time_kb = np.zeros((K, nb))  # time in state per (k, bin), both sides pooled
    for s in (BID, ASK):
        b = bins(Q[s], np.arange(K)[None, :])  # M x K
        for k in range(K):
            time_kb[k] += np.bincount(b[:, k], weights=w_dt, minlength=nb)
    rec_bin = np.zeros(len(recs), np.int64)
    rec_bin[inw] = bins(old[inw], dist[inw])

    def rates(mask: np.ndarray, allow_empty: bool) -> np.ndarray:
        counts = np.zeros((K, nb))
        np.add.at(counts, (dist[mask], rec_bin[mask]), 1.0)
        out = np.zeros((K, nb))
        lo = 0 if allow_empty else 1
        for k in range(K):
            total_t = time_kb[k, lo:].sum()
            base = counts[k, lo:].sum() / total_t if total_t > 0 else 0.0
            out[k, lo:] = (counts[k, lo:] + prior_seconds * base) / (time_kb[k, lo:] + prior_seconds)
        return out

    add_rate = rates(is_add, allow_empty=True)
    add_rate[0, 0] = 0.0  # the touch is never empty
    cancel_rate = rates(is_cancel, allow_empty=False)

    n_cancel = np.zeros((K, nb))
    n_clear = np.zeros((K, nb))
    np.add.at(n_cancel, (dist[is_cancel], rec_bin[is_cancel]), 1.0)
    np.add.at(n_clear, (dist[is_clear], rec_bin[is_clear]), 1.0)
    level_share = n_clear.sum(axis=1, keepdims=True) / np.maximum(n_cancel.sum(axis=1, keepdims=True), 1)
    clear_prob = (n_clear + prior_events * level_share) / (n_cancel + prior_events)
    clear_prob[:, 0] = 0.0

    # Per market order, not per message: a message holding m orders gave m chances to withdraw.
    hit_bin = bins(np.maximum(old - executed, 0), 0)
    n_hit = np.bincount(hit_bin[hit], weights=n_mo_hits[hit], minlength=nb).astype(float)
    n_wd = np.bincount(hit_bin[withdrawn], minlength=nb).astype(float)
    wd_share = n_wd.sum() / max(n_hit.sum(), 1.0)
    mo_withdraw = (n_wd + prior_events * wd_share) / (n_hit + prior_events)
    mo_withdraw[0] = 0.0

    # market orders by the touch bin of the side they hit
    mo_t, mo_q = market_orders(trades)
    mo_first = np.r_[True, (trades["ts_exchange"][1:] != trades["ts_exchange"][:-1])
                     | (trades["aggressor"][1:] != trades["aggressor"][:-1])]
    mo_side_hit = rest_side[mo_first]
    mo_msg = np.searchsorted(mts, mo_t, side="left")
    mo_ok = (mo_msg < M) & valid_state[np.minimum(mo_msg, M - 1)]
    mo_bin = bins(Q[mo_side_hit[mo_ok], mo_msg[mo_ok], 0], 0)
    mo_counts = np.bincount(mo_bin, minlength=nb).astype(float)
    touch_time = time_kb[0]
    base = mo_counts[1:].sum() / touch_time[1:].sum()
    market_rate = (mo_counts + prior_seconds * base) / (touch_time + prior_seconds)
    market_rate[0] = 0.0

    # --- 5. size tables ---------------------------------------------------------------------------
    vs = valid_state
    occupancy = [1.0]
    level_tables = []
    for k in range(K):
        sizes = np.concatenate([Q[BID, vs, k], Q[ASK, vs, k]])
        if k > 0:
            occupancy.append(float(np.mean(sizes > 0)))
        level_tables.append(sizes[sizes > 0])
    level_size = tuple(_table(_pooled(level_tables, k)) for k in range(K))
    add_size = _grid_tables(delta[is_add], dist[is_add], rec_bin[is_add], K, nb)
    part = is_cancel & ~is_clear
    cancel_tab = _grid_tables(cancel_size[part], dist[part], rec_bin[part], K, nb, min_bin=1)
    mo_last = np.r_[mo_first[1:], True]
    whole = trades["qty"][~mo_last]
    order_size = _table(whole if len(whole) >= MIN_TABLE_SAMPLES else trades["qty"])
    mo_size = _table(mo_q)
    jump_table = _table(np.maximum(jumps, 1))
    new_touch_table = _table(new_touch_out[new_touch_out > 0])
    inside_size = _table(new_touch_in[new_touch_in > 0])

    # --- 6. Hawkes clocks -------------------------------------------------------------------------
    t0, t1 = int(mts[0]), int(mts[-1])
    ev_msg = msg_of[is_add | is_cancel]
    limit_counts = np.bincount(ev_msg, minlength=M)
    has = limit_counts > 0
    limit_clock, limit_diag = fit_hawkes_moments(mts[has], t0, t1, limit_counts[has])
    market_clock, market_diag = fit_hawkes_penalised_mle(mo_t, t0, t1)

    # --- 7. latency -------------------------------------------------------------------------------
    x_book = (book["ts_local"][msgs] - book["ts_exchange"][msgs]).astype(np.float64)
    x_trade = (trades["ts_local"] - trades["ts_exchange"]).astype(np.float64)
    disp = np.concatenate([x_book - np.median(x_book), x_trade - np.median(x_trade)])
    latency_median = int(round(float(np.median(disp) - np.quantile(disp, 0.001))))
    latency_min = 50_000
    latency_table = tuple(float(round(v)) for v in np.quantile(disp, QUANTILE_PROBS))
    # Persistence: rank autocorrelation r of consecutive book-message latencies, which are dt
    # apart; with "keep the previous quantile with probability exp(-gap/tau)" the rank
    # autocorrelation at gap dt is exp(-dt/tau), so tau = -dt / ln r.
    ranks = np.argsort(np.argsort(x_book)) / max(len(x_book) - 1, 1)
    r1 = float(np.corrcoef(ranks[:-1], ranks[1:])[0, 1]) if len(ranks) > 2 else 0.0
    r1 = min(max(r1, 0.01), 0.99)
    msg_dt = float(np.median(np.diff(mts)))
    latency_memory = -msg_dt / np.log(r1)

    # --- provenance and facts ---------------------------------------------------------------------
    source = None
    if source_path is not None:
        p = Path(source_path)
        source = SourceInfo(
            file=p.name, sha256=sha256_file(p), bot4_version=bot4.__version__,
            start_ns=t0, duration_s=(t1 - t0) / 1e9, book_messages=int(M), trades=int(len(trades)),
            method="queue-reactive rates per (level, queue bin) from net level changes per message; "
                   "empirical size quantiles; Hawkes clocks by variance-time method of moments",
        )
    facts = stylised_facts(data).values
    facts.update({f"limit_clock_{k}": float(v) for k, v in limit_diag.items()})
    facts.update({f"market_clock_{k}": float(v) for k, v in market_diag.items()})
    facts["touch_jumps_per_s"] = len(jumps) / ((t1 - t0) / 1e9)
    facts["inward_moves"] = float(inward)
    facts["wide_spread_time_s"] = wide_time
    facts["book_rejected"] = float(book_counters["rejected"])

    def rows(a: np.ndarray) -> tuple[tuple[float, ...], ...]:
        return tuple(tuple(float(f"{v:.6g}") for v in row) for row in a)

    params = MarketModelParams(
        schema_version=SCHEMA_VERSION,
        instrument=spec,
        initial_bid_ticks=int(touch[BID][np.flatnonzero(valid_state)[0]]),
        epoch_ns=int(t0 // 1_000_000_000 * 1_000_000_000),
        n_levels=K,
        size_bin_edges=SIZE_BIN_EDGES,
        typical_size_lots=tuple(float(v) for v in typical),
        add_rate=rows(add_rate),
        cancel_rate=rows(cancel_rate),
        market_rate=tuple(float(f"{v:.6g}") for v in market_rate),
        inside_add_rate=float(f"{inside_rate:.6g}"),
        inside_follow_prob=float(f"{follow_prob:.6g}"),
        inside_gap_weights=tuple(float(f"{v:.6g}") for v in gap_w),
        touch_jump_ticks=jump_table,
        new_touch_size_lots=new_touch_table,
        level_occupancy=tuple(float(f"{v:.6g}") for v in occupancy),
        quantile_probs=QUANTILE_PROBS,
        level_size_lots=level_size,
        add_size_lots=add_size,
        cancel_size_lots=cancel_tab,
        order_size_lots=order_size,
        clear_prob=rows(clear_prob),
        mo_withdraw_prob=tuple(float(f"{v:.6g}") for v in mo_withdraw),
        inside_add_size_lots=inside_size,
        market_order_size_lots=mo_size,
        cancel_newest_prob=0.5,
        max_orders_per_split=64,
        limit_clock=limit_clock,
        market_clock=market_clock,
        latency_median_ns=max(latency_median, latency_min),
        latency_min_ns=latency_min,
        latency_dispersion_ns=latency_table,
        latency_memory_ns=float(f"{latency_memory:.6g}"),
        source=source,
        facts={k: float(f"{v:.6g}") for k, v in sorted(facts.items())},
    )
    return params.validate()


def calibrate_file(path: str | Path, *, n_levels: int = 20) -> MarketModelParams:
    """Load a recording with bot4.data.load and calibrate on it, recording its provenance."""
    from bot4.data import load

    data = load(path)
    return calibrate(data, n_levels=n_levels, source_path=path)
