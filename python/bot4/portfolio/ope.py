"""Off-policy evaluation of a target policy from logged decisions (METHODS.md §10).

Logged rounds (x_i, a_i, r_i, p_i) with p_i = pi_b(a_i | x_i), the probability with which the
logging policy took the action (recorded at decision time); the target policy's action
distribution pi_e(. | x_i) as an n x K matrix; weights w_i = pi_e(a_i | x_i) / p_i.

    IPS    V = (1/n) sum r_i min(w_i, clip)
    SNIPS  V = sum r_i w_i / sum w_i                                    (no clipping, as obp)
    DR     V = (1/n) sum [ sum_a pi_e(a|x_i) q(x_i, a) + min(w_i, clip) (r_i - q(x_i, a_i)) ]

These are obp's (Open Bandit Pipeline) definitions, read from its source; obp itself is not a
dependency (it needs torch, and 0.5.x needs Python < 3.11; METHODS surprise 11). Checked once
against obp 0.4.1's own `ope/estimators.py` (the newest pip resolves on Python 3.11; run from the
unpacked wheel with torch stubbed, as torch is only used for tensor inputs) on the synthetic
bandit of tests/portfolio/test_ope.py: IPS, SNIPS and DR equal to 1.1e-16 over 5 seeds, and
the IPS bootstrap intervals agree to Monte Carlo noise (~1e-3).

Intervals: "normal" uses the standard error of the per-round terms (IPS, DR) or the delta-method
influence terms w_i (r_i - V) / mean(w) (SNIPS); "bootstrap" resamples rounds and recomputes the
estimator (percentile interval). obp's bootstrap resamples SNIPS's per-round terms with the full
sample's mean weight held fixed; recomputing the ratio per resample is the standard bootstrap.

q(x, a) for DR should be fitted out of fold (`fit_reward_model` cross-fits); fitting it on the
same rounds it corrects biases DR toward the model.

Carried positions (`memory` > 0). The estimators above assume a contextual bandit: the reward of a
round depends on its own action only. Where a position carries over decisions (a trading book
keeps part of what the previous decision bought, and pays to change it), the reward of round i
also depends on the earlier actions of its episode (an instrument's chain of decisions). Under the
bounded-memory assumption that r_i depends on the actions of its episode at times
t_i - memory .. t_i only (and on contexts the actions do not move), the per-decision importance
weight of Precup, Sutton & Singh (2000), truncated to that window, makes the estimators unbiased
for the target policy's value per round:
    W_past_i = prod of w_j over rounds j of the same episode with t_i - memory <= t_j < t_i
    W_i      = W_past_i * w_i
    IPS    V = (1/n) sum r_i min(W_i, clip)
    SNIPS  V = sum r_i W_i / sum W_i
    DR     V = (1/n) sum [ min(W_past_i, clip) sum_a pi_e(a|x_i) q(x_i, a) + min(W_i, clip) (r_i - q(x_i, a_i)) ]
(per-decision DR with a truncated history, Jiang & Li 2016). memory = 0 is the bandit estimator,
exactly. The price is variance: the weights are products of memory + 1 ratios (see `ess`). The
normal interval still treats the per-round terms as independent, which rounds that share weights
are not: it is narrower than the truth when memory > 0 (the bootstrap resamples rounds, so it
shares that). Effects longer than the memory, and any effect of the actions on the market itself
(impact), are not corrected: they remain the estimate's stated assumptions.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats

from bot4.errors import InputError


@dataclass(frozen=True)
class OpeEstimate:
    """A policy value estimate with its `level` interval [low, high]."""

    estimator: str
    value: float
    low: float
    high: float
    se: float
    level: float
    interval: str
    n: int
    ess: float          # effective sample size of the (clipped) weights, (sum w)^2 / sum w^2

    def as_dict(self) -> dict[str, float | str | int]:
        """value, low, high, se, level, interval, n, ess as a plain dict (the `--json` shape of `ope`)."""
        return {"value": self.value, "low": self.low, "high": self.high, "se": self.se, "level": self.level,
                "interval": self.interval, "n": self.n, "ess": self.ess}


@dataclass(frozen=True)
class LoggedRounds:
    """Validated logged data: rewards, integer actions in [0, K), propensities in (0, 1], and the
    target policy's n x K action distribution."""

    reward: np.ndarray
    action: np.ndarray
    pscore: np.ndarray
    action_dist: np.ndarray

    @classmethod
    def build(cls, reward, action, pscore, action_dist) -> LoggedRounds:
        """Validate and convert: InputError naming the argument for NaN rewards, actions outside
        [0, K) or not integers, propensities outside (0, 1], rows of action_dist that are not
        distributions, or lengths that disagree. action_dist may be obp's (n, K, 1)."""
        r = np.asarray(reward, dtype=np.float64)
        if r.ndim != 1 or len(r) < 2:
            raise InputError("reward", f"must be a 1-D array of at least 2 rounds, got shape {r.shape}")
        n = len(r)
        if not np.all(np.isfinite(r)):
            raise InputError("reward", f"{int((~np.isfinite(r)).sum())} rewards are NaN or infinite")
        pi = np.asarray(action_dist, dtype=np.float64)
        if pi.ndim == 3 and pi.shape[2] == 1:      # obp's (n, K, len_list) with a single slot
            pi = pi[:, :, 0]
        if pi.ndim != 2 or pi.shape[0] != n or pi.shape[1] < 1:
            raise InputError("action_dist", f"must be n x K with n = {n}, got shape {pi.shape}")
        if not np.all(np.isfinite(pi)) or np.any(pi < 0) or not np.allclose(pi.sum(axis=1), 1.0, atol=1e-6):
            raise InputError("action_dist", "each row must be a probability distribution (finite, >= 0, summing to 1)")
        a_raw = np.asarray(action)
        if a_raw.shape != (n,):
            raise InputError("action", f"needs one action per round ({n}), got shape {a_raw.shape}")
        if not np.all(np.isfinite(a_raw.astype(np.float64))) or np.any(a_raw != np.round(a_raw)):
            raise InputError("action", "must be integer action indices")
        a = a_raw.astype(np.int64)
        if np.any(a < 0) or np.any(a >= pi.shape[1]):
            raise InputError("action", f"indices must be in [0, {pi.shape[1]}), got {int(a.min())}..{int(a.max())}")
        p = np.asarray(pscore, dtype=np.float64)
        if p.shape != (n,):
            raise InputError("pscore", f"needs one propensity per round ({n}), got shape {p.shape}")
        bad = np.flatnonzero(~(np.isfinite(p) & (p > 0) & (p <= 1)))
        if len(bad):
            raise InputError("pscore", f"{len(bad)} propensities outside (0, 1] (first at round {bad[0]}: {p[bad[0]]!r})",
                             "log the probability of the action actually taken; a greedy logger has none (positivity)")
        return cls(r, a, p, pi)

    @property
    def n(self) -> int:
        return len(self.reward)

    @property
    def weights(self) -> np.ndarray:
        return self.action_dist[np.arange(self.n), self.action] / self.pscore


def effective_sample_size(w) -> float:
    """(sum w)^2 / sum w^2."""
    w = np.asarray(w, dtype=np.float64)
    s2 = float(np.sum(w * w))
    return float(np.sum(w)) ** 2 / s2 if s2 > 0 else 0.0


def history_weights(weights, episode, t, memory: int) -> tuple[np.ndarray, np.ndarray]:
    """(W_past, W): per round, the product of the importance weights of the earlier rounds of its
    episode within `memory` time units (t_i - memory <= t_j < t_i), and that product times the
    round's own weight. memory = 0 gives (1, weights). Rounds need not be sorted."""
    w = np.asarray(weights, dtype=np.float64)
    n = len(w)
    if not isinstance(memory, (int, np.integer)) or memory < 0:
        raise InputError("memory", f"must be an integer >= 0 (time units of carried effect), got {memory!r}")
    past = np.ones(n)
    if memory == 0:
        return past, w.copy()
    if episode is None or t is None:
        raise InputError("episode", "memory > 0 needs the rounds' episode ids and integer times")
    ep = np.asarray(episode)
    tt = np.asarray(t)
    if ep.shape != (n,) or tt.shape != (n,):
        raise InputError("episode", f"needs one episode id and one time per round ({n}), got {ep.shape} and {tt.shape}")
    if not np.all(np.isfinite(tt.astype(np.float64))) or np.any(tt != np.round(tt)):
        raise InputError("t", "must be integer times")
    tt = tt.astype(np.int64)
    for e in np.unique(ep):
        idx = np.flatnonzero(ep == e)
        idx = idx[np.argsort(tt[idx], kind="stable")]
        te, we = tt[idx], w[idx]
        if np.any(np.diff(te) == 0):
            raise InputError("t", f"episode {e!r} has two rounds at one time")
        # log-space running sums would lose exact zeros (a target that never takes the logged action)
        for k, i in enumerate(idx):
            lo = int(np.searchsorted(te, te[k] - memory, side="left"))
            past[i] = float(np.prod(we[lo:k]))
    return past, past * w


def _check_clip(clip: float) -> float:
    if not (clip > 0) or math.isnan(clip):
        raise InputError("clip", f"must be > 0 (inf = no clipping), got {clip!r}")
    return float(clip)


def _interval(name: str, value: float, terms: np.ndarray | None, stat: Callable[[np.ndarray], float], n: int,
              level: float, interval: str, n_boot: int, seed: int, ess: float) -> OpeEstimate:
    if not 0 < level < 1:
        raise InputError("level", f"must be in (0, 1), got {level!r}")
    if interval == "normal":
        assert terms is not None
        se = float(np.std(terms, ddof=1) / math.sqrt(n))
        z = float(stats.norm.ppf(0.5 + level / 2))
        return OpeEstimate(name, value, value - z * se, value + z * se, se, level, interval, n, ess)
    if interval == "bootstrap":
        if n_boot < 100:
            raise InputError("n_boot", f"needs at least 100 resamples, got {n_boot}")
        rng = np.random.default_rng(seed)
        boots = np.array([stat(rng.integers(0, n, n)) for _ in range(n_boot)])
        lo, hi = np.percentile(boots, [50 * (1 - level), 50 * (1 + level)])
        return OpeEstimate(name, value, float(lo), float(hi), float(np.std(boots, ddof=1)), level, interval, n, ess)
    raise InputError("interval", f"unknown {interval!r}", "use 'normal' or 'bootstrap'")


def ips(reward, action, pscore, action_dist, *, clip: float = math.inf, level: float = 0.95, interval: str = "normal",
        n_boot: int = 2000, seed: int = 0, episode=None, t=None, memory: int = 0) -> OpeEstimate:
    """Inverse propensity scoring, weights clipped at `clip`; with memory > 0 the weights are the
    episode's products over the last `memory` time units (module text, carried positions)."""
    d = LoggedRounds.build(reward, action, pscore, action_dist)
    w = np.minimum(history_weights(d.weights, episode, t, memory)[1], _check_clip(clip))
    terms = d.reward * w
    return _interval("ips", float(terms.mean()), terms, lambda idx: float(terms[idx].mean()), d.n, level, interval,
                     n_boot, seed, effective_sample_size(w))


def snips(reward, action, pscore, action_dist, *, level: float = 0.95, interval: str = "normal", n_boot: int = 2000,
          seed: int = 0, episode=None, t=None, memory: int = 0) -> OpeEstimate:
    """Self-normalised IPS (biased, consistent; never outside the range of the rewards); memory as
    in `ips`."""
    d = LoggedRounds.build(reward, action, pscore, action_dist)
    w = history_weights(d.weights, episode, t, memory)[1]
    if w.sum() <= 0:
        raise InputError("action_dist", "the target policy gives probability 0 to every logged action: SNIPS is undefined")
    value = float(np.sum(d.reward * w) / np.sum(w))
    influence = w * (d.reward - value) / w.mean()

    def stat(idx: np.ndarray) -> float:
        ws = w[idx]
        return float(np.sum(d.reward[idx] * ws) / ws.sum()) if ws.sum() > 0 else value

    return _interval("snips", value, influence, stat, d.n, level, interval, n_boot, seed, effective_sample_size(w))


def dr(reward, action, pscore, action_dist, q_hat, *, clip: float = math.inf, level: float = 0.95,
       interval: str = "normal", n_boot: int = 2000, seed: int = 0, episode=None, t=None,
       memory: int = 0) -> OpeEstimate:
    """Doubly robust: the reward model's value under the target policy plus the IPS-weighted
    residual of the logged action. q_hat: n x K predicted rewards (fit out of fold). memory > 0:
    per-decision DR over the episode's last `memory` time units (module text)."""
    d = LoggedRounds.build(reward, action, pscore, action_dist)
    q = np.asarray(q_hat, dtype=np.float64)
    if q.ndim == 3 and q.shape[2] == 1:
        q = q[:, :, 0]
    if q.shape != d.action_dist.shape or not np.all(np.isfinite(q)):
        raise InputError("q_hat", f"must be a finite {d.action_dist.shape} matrix, got shape {q.shape}")
    cap = _check_clip(clip)
    past, full = history_weights(d.weights, episode, t, memory)
    w = np.minimum(full, cap)
    q_logged = q[np.arange(d.n), d.action]
    terms = np.minimum(past, cap) * np.sum(d.action_dist * q, axis=1) + w * (d.reward - q_logged)
    return _interval("dr", float(terms.mean()), terms, lambda idx: float(terms[idx].mean()), d.n, level, interval,
                     n_boot, seed, effective_sample_size(w))


def fit_reward_model(X, action, reward, n_actions: int, *, n_folds: int = 2, alpha: float = 1.0,
                     seed: int = 0) -> np.ndarray:
    """Cross-fitted q(x, a): a ridge regression per action on the other folds' rounds that took
    it (the other folds' mean reward where none did). Returns n x n_actions predictions."""
    from sklearn.linear_model import Ridge

    x = np.asarray(X, dtype=np.float64)
    r = np.asarray(reward, dtype=np.float64)
    a = np.asarray(action, dtype=np.int64)
    if x.ndim != 2 or x.shape[0] != len(r) or a.shape != r.shape:
        raise InputError("X", f"needs one row per round: X {x.shape}, actions {a.shape}, rewards {r.shape}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(r))):
        raise InputError("X", "features and rewards must be finite")
    if n_folds < 2 or n_folds > len(r):
        raise InputError("n_folds", f"must be in [2, n], got {n_folds}")
    fold = np.random.default_rng(seed).permutation(len(r)) % n_folds
    q = np.zeros((len(r), n_actions))
    for k in range(n_folds):
        test, train = fold == k, fold != k
        for act in range(n_actions):
            rows = train & (a == act)
            if rows.sum() >= 2:
                q[test, act] = Ridge(alpha=alpha).fit(x[rows], r[rows]).predict(x[test])
            else:
                q[test, act] = r[train].mean()
    return q


def epsilon_greedy(greedy_action, n_actions: int, epsilon: float) -> np.ndarray:
    """The n x K action distribution of an epsilon-greedy policy: 1 - eps + eps/K on the greedy
    action, eps/K elsewhere (every action keeps a positive propensity when eps > 0)."""
    g = np.asarray(greedy_action, dtype=np.int64)
    if not 0 <= epsilon <= 1:
        raise InputError("epsilon", f"must be in [0, 1], got {epsilon!r}")
    if g.ndim != 1 or np.any(g < 0) or np.any(g >= n_actions):
        raise InputError("greedy_action", f"must be 1-D action indices in [0, {n_actions})")
    pi = np.full((len(g), n_actions), epsilon / n_actions)
    pi[np.arange(len(g)), g] += 1.0 - epsilon
    return pi


def sample_actions(action_dist, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Draw one action per row of an n x K distribution; returns (actions, their propensities)."""
    pi = np.asarray(action_dist, dtype=np.float64)
    u = np.random.default_rng(seed).random(len(pi))
    a = (pi.cumsum(axis=1) < u[:, None]).sum(axis=1)
    a = np.minimum(a, pi.shape[1] - 1)
    return a, pi[np.arange(len(pi)), a]


def estimate_all(reward, action, pscore, action_dist, q_hat=None, **kw) -> dict[str, OpeEstimate]:
    """IPS, SNIPS and (when q_hat is given) DR with the same interval and memory settings."""
    clip = kw.pop("clip", math.inf)
    out = {"ips": ips(reward, action, pscore, action_dist, clip=clip, **kw),
           "snips": snips(reward, action, pscore, action_dist, **kw)}
    if q_hat is not None:
        out["dr"] = dr(reward, action, pscore, action_dist, q_hat, clip=clip, **kw)
    return out


__all__ = [
    "LoggedRounds", "OpeEstimate", "dr", "effective_sample_size", "epsilon_greedy", "estimate_all", "fit_reward_model",
    "history_weights", "ips", "sample_actions", "snips",
]
