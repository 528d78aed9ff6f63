"""Out-of-sample metrics: trading results after costs (Sharpe per trade and per unit time,
turnover, hit rate), probability quality (AUC, Brier, log loss, ECE), the probabilistic and
deflated Sharpe ratio and the probability of backtest overfitting by CSCV (METHODS.md §3, §13).

All Sharpe ratios here are per period (per trade, per bar), never annualised: PSR and DSR need the
per-period value and its sample size, and mixing units is the classic mistake (METHODS.md §13).
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
from scipy.stats import kurtosis, norm, rankdata, skew

from bot4.research.calibration import brier, ece, log_loss

EULER_GAMMA = 0.5772156649015329


# ---------------------------------------------------------------------------------------------
# probability quality


def auc(y, p) -> float:
    """Area under the ROC curve by the rank-sum (Mann-Whitney) formula with mid-ranks for ties,
    equal to sklearn.metrics.roc_auc_score. NaN when y has a single class."""
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    if y.shape != p.shape or y.ndim != 1:
        raise ValueError(f"y and p must be 1-D of equal length, got {y.shape} and {p.shape}")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("y must contain only 0 and 1")
    n1 = float(y.sum())
    n0 = y.size - n1
    if n1 == 0 or n0 == 0:
        return float("nan")
    r = rankdata(p)
    return float((r[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def auc_null_se(n1: int, n0: int) -> float:
    """Standard error of the AUC of an uninformative score: sqrt((n1 + n0 + 1) / (12 n1 n0))."""
    return float(np.sqrt((n1 + n0 + 1) / (12.0 * n1 * n0)))


def probability_metrics(y, p, n_bins: int = 10) -> dict:
    """AUC, Brier, log loss and ECE (equal-width right-closed bins) of probabilities p."""
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    if y.size == 0:
        return {"rows": 0, "auc": None, "brier": None, "log_loss": None, "ece": None, "base_rate": None}
    a = auc(y, p)
    return {"rows": int(y.size), "auc": None if np.isnan(a) else a, "brier": brier(y, p),
            "log_loss": log_loss(y, p), "ece": ece(y, p, n_bins), "base_rate": float(y.mean())}


# ---------------------------------------------------------------------------------------------
# trading results after costs


def sharpe(returns) -> float:
    """Per-period Sharpe ratio mean / std (ddof = 1); NaN with fewer than 2 returns or zero spread."""
    r = np.asarray(returns, dtype=np.float64)
    if r.size < 2:
        return float("nan")
    sd = r.std(ddof=1)
    return float(r.mean() / sd) if sd > 0 else float("nan")


def trade_pnls(equity) -> np.ndarray:
    """After-fee P&L of each round trip (flat -> position -> flat) from an engine equity record
    (fields ts, position, equity; equity includes realised, unrealised and fees). A position
    still open at the end counts as a trade marked to its last equity."""
    eq = np.asarray(equity)
    if eq.size == 0:
        return np.zeros(0)
    pos = np.asarray(eq["position"], dtype=np.float64)
    val = np.asarray(eq["equity"], dtype=np.float64)
    out = []
    start_val = 0.0
    open_ = False
    prev_val = 0.0
    for q, v in zip(pos, val):
        if not open_ and q != 0:
            open_, start_val = True, prev_val
        elif open_ and q == 0:
            out.append(v - start_val)
            open_ = False
        prev_val = v
    if open_:
        out.append(val[-1] - start_val)
    return np.asarray(out, dtype=np.float64)


def bar_pnls(equity, start_ns: int, end_ns: int, bar_ns: int) -> np.ndarray:
    """Equity change over each bar [start + k*bar, start + (k+1)*bar) of [start_ns, end_ns): the
    equity at a bar's end is the last record at or before it (0 before the first record)."""
    if bar_ns <= 0:
        raise ValueError(f"bar_ns must be > 0, got {bar_ns}")
    n = max(int((int(end_ns) - int(start_ns)) // int(bar_ns)), 0)
    if n == 0:
        return np.zeros(0)
    edges = int(start_ns) + int(bar_ns) * np.arange(n + 1, dtype=np.int64)
    eq = np.asarray(equity)
    if eq.size == 0:
        return np.zeros(n)
    ts = np.asarray(eq["ts"], dtype=np.int64)
    val = np.asarray(eq["equity"], dtype=np.float64)
    k = np.searchsorted(ts, edges, side="right") - 1
    level = np.where(k >= 0, val[np.maximum(k, 0)], 0.0)
    return np.diff(level)


def turnover(fills, capital: float, tick_size: float = 1.0, lot_size: float = 1.0, contract_size: float = 1.0,
             inverse: bool = False) -> float:
    """Traded notional over fills, quote units, divided by capital: |price * qty * contract_size| for
    a linear instrument (contract_size its multiplier, 1 for crypto quoted in the base asset),
    |qty * contract_size| for an inverse one (contract_size its face value)."""
    f = np.asarray(fills)
    if f.size == 0:
        return 0.0
    qty = f["qty"].astype(np.float64) * lot_size * contract_size
    notional = np.abs(qty if inverse else f["price"].astype(np.float64) * tick_size * qty)
    return float(notional.sum() / capital)


def trading_metrics(equity, fills, capital: float, start_ns: int, end_ns: int, bar_ns: int,
                    tick_size: float = 1.0, lot_size: float = 1.0, contract_size: float = 1.0,
                    inverse: bool = False) -> dict:
    """After-fee results of one backtest on [start_ns, end_ns): P&L, trades, hit rate, Sharpe per
    trade, Sharpe per bar of bar_ns, turnover (notional / capital) and fees."""
    pnls = trade_pnls(equity)
    bars = bar_pnls(equity, start_ns, end_ns, bar_ns)
    eq = np.asarray(equity)
    fees = float(eq["fees"][-1]) if eq.size else 0.0
    total = float(eq["equity"][-1]) if eq.size else 0.0
    return {"pnl": total, "fees": fees, "trades": int(pnls.size),
            "hit_rate": float(np.mean(pnls > 0)) if pnls.size else None,
            "sharpe_per_trade": _none(sharpe(pnls)), "sharpe_per_bar": _none(sharpe(bars)),
            "bar_ns": int(bar_ns), "bars": int(bars.size),
            "turnover": turnover(fills, capital, tick_size, lot_size, contract_size, inverse)}


def _none(x: float):
    return None if x is None or not np.isfinite(x) else float(x)


# ---------------------------------------------------------------------------------------------
# probabilistic / deflated Sharpe ratio and PBO


def probabilistic_sharpe(sr: float, n: int, skewness: float = 0.0, kurt: float = 3.0,
                         sr_star: float = 0.0) -> float:
    """PSR(SR*) = Phi((SR - SR*) sqrt(n - 1) / sqrt(1 - g3 SR + (g4 - 1)/4 SR^2)): the probability
    that the true per-period Sharpe exceeds SR* given n returns with skewness g3 and (non-excess)
    kurtosis g4."""
    if n < 2:
        raise ValueError(f"n must be >= 2, got {n}")
    denom = 1.0 - skewness * sr + (kurt - 1.0) / 4.0 * sr * sr
    if denom <= 0:
        raise ValueError("the PSR variance term 1 - g3 SR + (g4 - 1)/4 SR^2 is not positive")
    return float(norm.cdf((sr - sr_star) * np.sqrt(n - 1.0) / np.sqrt(denom)))


def expected_max_sharpe(n_trials: int, variance: float) -> float:
    """SR0 = sqrt(V) ((1 - gamma) Phi^-1(1 - 1/N) + gamma Phi^-1(1 - 1/(N e))): the expected
    maximum of N independent per-period Sharpe estimates with variance V under a zero true
    Sharpe. 0 for a single trial."""
    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}")
    if n_trials == 1:
        return 0.0
    return float(np.sqrt(variance) * ((1 - EULER_GAMMA) * norm.ppf(1 - 1.0 / n_trials)
                                      + EULER_GAMMA * norm.ppf(1 - 1.0 / (n_trials * np.e))))


def deflated_sharpe(sr: float, n: int, n_trials: int, trials_variance: float, skewness: float = 0.0,
                    kurt: float = 3.0) -> tuple[float, float]:
    """(DSR, SR0): PSR at SR0 = expected_max_sharpe(n_trials, trials_variance)."""
    sr0 = expected_max_sharpe(n_trials, trials_variance)
    return probabilistic_sharpe(sr, n, skewness, kurt, sr0), sr0


def sharpe_report(returns, trial_sharpes=None) -> dict:
    """Sharpe, PSR(0) and DSR of one return series. trial_sharpes: the per-period Sharpe of every
    configuration tried on the same periods (this one included); their count is N and their
    variance V. Skewness and kurtosis are the returns' own (biased moments, as in the paper)."""
    r = np.asarray(returns, dtype=np.float64)
    sr = sharpe(r)
    out = {"sharpe": _none(sr), "n": int(r.size), "psr": None, "deflated_sharpe": None, "sr0": None,
           "n_trials": 1, "skew": None, "kurtosis": None}
    if not np.isfinite(sr):
        return out
    g3 = float(skew(r))
    g4 = float(kurtosis(r, fisher=False))
    out.update(skew=g3, kurtosis=g4)
    try:
        out["psr"] = probabilistic_sharpe(sr, r.size, g3, g4)
        ts = np.asarray([s for s in (trial_sharpes if trial_sharpes is not None else [sr]) if np.isfinite(s)])
        n_trials = max(int(ts.size), 1)
        var = float(ts.var(ddof=1)) if ts.size > 1 else 0.0
        dsr, sr0 = deflated_sharpe(sr, r.size, n_trials, var, g3, g4)
        out.update(deflated_sharpe=dsr, sr0=sr0, n_trials=n_trials, trials_variance=var)
    except ValueError:
        pass   # degenerate moments (e.g. one huge return): no PSR rather than a wrong one
    return out


def pbo_cscv(returns, n_blocks: int = 8, metric=sharpe) -> dict:
    """Probability of backtest overfitting by combinatorially symmetric cross-validation.

    returns: (T, N) matrix, one column per trial (configuration) on the same T periods. The rows
    are cut into n_blocks (even) contiguous blocks; for each of the C(S, S/2) halves taken as
    in-sample, n* = argmax of the in-sample metric, w = its out-of-sample rank / (N + 1), and
    lambda = ln(w / (1 - w)). PBO = share of lambda <= 0. Ranks are mid-ranks (ties averaged)."""
    M = np.asarray(returns, dtype=np.float64)
    if M.ndim != 2 or M.shape[1] < 2:
        raise ValueError(f"returns must be a (T, N) matrix with N >= 2 trials, got shape {M.shape}")
    if n_blocks < 2 or n_blocks % 2:
        raise ValueError(f"n_blocks must be an even integer >= 2, got {n_blocks}")
    T, N = M.shape
    if np.all(np.ptp(M, axis=0) == 0):
        raise ValueError("every trial's returns are constant (no trades?): PBO is undefined")
    if T < 2 * n_blocks:
        raise ValueError(f"{T} periods are too few for {n_blocks} blocks of >= 2 periods")
    blocks = np.array_split(np.arange(T), n_blocks)
    logits, is_perf, oos_perf = [], [], []
    for chosen in combinations(range(n_blocks), n_blocks // 2):
        is_rows = np.concatenate([blocks[b] for b in chosen])
        oos_rows = np.concatenate([blocks[b] for b in range(n_blocks) if b not in chosen])
        is_m = np.array([metric(M[is_rows, j]) for j in range(N)])
        oos_m = np.array([metric(M[oos_rows, j]) for j in range(N)])
        is_m = np.where(np.isfinite(is_m), is_m, -np.inf)
        oos_m = np.where(np.isfinite(oos_m), oos_m, -np.inf)
        best = int(np.argmax(is_m))
        w = rankdata(oos_m)[best] / (N + 1.0)
        logits.append(float(np.log(w / (1.0 - w))))
        is_perf.append(is_m[best])
        oos_perf.append(oos_m[best])
    lam = np.asarray(logits)
    fin = np.isfinite(is_perf) & np.isfinite(oos_perf)
    slope = (float(np.polyfit(np.asarray(is_perf)[fin], np.asarray(oos_perf)[fin], 1)[0])
             if fin.sum() > 2 and np.ptp(np.asarray(is_perf)[fin]) > 0 else None)
    return {"pbo": float(np.mean(lam <= 0)), "logits": lam.tolist(), "combinations": int(lam.size),
            "n_trials": int(N), "n_blocks": int(n_blocks), "degradation_slope": slope}
