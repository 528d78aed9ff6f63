"""The windowed time-series kernels (core/features/window_kernels*.{hpp,cpp}) against their
reference packages, hand vectors from METHODS.md section 5, every SIMD level against scalar, and
the NaN / causality / input-checking contract.

Tolerances:
- against reference packages: rtol 1e-10, atol 1e-12. The references sum in other orders
  (numpy pairwise sums, pocketfft, numba loops, lstsq in polyfit), so agreement to the last bit is
  not expected; 1e-10 still catches any convention difference (ddof, bin weights, nvals, ties).
- levels against scalar: exact. Every kernel is bit-identical at every level by construction
  (fixed 8-way summation and 8-block prefix-sum orders, one chunk per lane in the scalar order,
  no FMA contraction, shared twiddle/log tables), and sample entropy counts must be identical.

Conventions where a reference's behaviour is an accident of rounding or an error, and the kernel
returns NaN instead (window_kernels.hpp: "undefined -> NaN, never an infinity"):
- zero-variance window: NaN for every kernel whose definition divides by a spread (antropy's
  spectral entropy returns -0.0 from the 0/0 of a constant window; tsfresh's cid_ce returns 0).
- sample entropy with no (m+1)-matches: NaN (antropy returns inf).
- dfa with fewer than two usable scales: NaN (antropy's epsilon-regularised fit returns 0.0 for a
  single point).
- dfa on a window where some F(n) is mathematically zero (x constant inside every chunk of that
  size, common in sparse tick returns): the kernel drops that scale as antropy means to; antropy
  sees rounding noise (~1e-20) instead of 0 and fits its log, so the two differ. Such windows are
  detected with the same criterion and compared with dfa_exact_zeros(), antropy's algorithm with
  those scales dropped.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from bot4 import _core

F = _core.features
LEVELS = F.kernel_levels()
RTOL, ATOL = 1e-10, 1e-12

antropy = pytest.importorskip("antropy")
nolds = pytest.importorskip("nolds")
pywt = pytest.importorskip("pywt")
stattools = pytest.importorskip("statsmodels.tsa.stattools")


# ------------------------------------------------------------------------------------------
# references

def ref_acf(x, lag):
    return stattools.acf(x, nlags=lag)[lag]


def ref_c3(x, lag):
    n = len(x)
    return float(np.mean((np.roll(x, -2 * lag) * np.roll(x, -lag) * x)[: n - 2 * lag]))


def ref_cid_ce(x):
    z = (x - x.mean()) / x.std()
    return float(np.sqrt(np.sum(np.diff(z) ** 2)))


def ref_hurst(x):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return nolds.hurst_rs(x, nvals=F.hurst_nvals(len(x)), fit="poly", corrected=False, unbiased=True)


def ref_wavelet(x, levels):
    coeffs = pywt.wavedec(x, "db2", mode="periodization", level=levels)
    energy = np.array([np.sum(c ** 2) for c in coeffs])  # [aL, dL, ..., d1]
    return np.concatenate([energy[1:][::-1], energy[:1]]) / energy.sum()


def ref_spectral(x):
    return float(antropy.spectral_entropy(x, sf=1, method="fft", normalize=True))


KERNELS = {
    # name: (kernel call, reference call)
    "acf": (lambda x, lv: F.kernel_acf(x, 1, level=lv), lambda x: ref_acf(x, 1)),
    "acf_5": (lambda x, lv: F.kernel_acf(x, 5, level=lv), lambda x: ref_acf(x, 5)),
    "c3": (lambda x, lv: F.kernel_c3(x, 1, level=lv), lambda x: ref_c3(x, 1)),
    "c3_2": (lambda x, lv: F.kernel_c3(x, 2, level=lv), lambda x: ref_c3(x, 2)),
    "cid_ce": (lambda x, lv: F.kernel_cid_ce(x, level=lv), ref_cid_ce),
    "hurst_rs": (lambda x, lv: F.kernel_hurst_rs(x, level=lv), ref_hurst),
    "dfa": (lambda x, lv: F.kernel_dfa(x, level=lv), lambda x: antropy.detrended_fluctuation(x)),
    "sample_entropy": (lambda x, lv: F.kernel_sample_entropy(x, 2, level=lv),
                       lambda x: antropy.sample_entropy(x, order=2)),
    "sample_entropy_3": (lambda x, lv: F.kernel_sample_entropy(x, 3, level=lv),
                         lambda x: antropy.sample_entropy(x, order=3)),
    "perm_entropy": (lambda x, lv: F.kernel_perm_entropy(x, 3, 1, level=lv),
                     lambda x: antropy.perm_entropy(x, order=3, delay=1, normalize=True)),
    "perm_entropy_4_2": (lambda x, lv: F.kernel_perm_entropy(x, 4, 2, level=lv),
                         lambda x: antropy.perm_entropy(x, order=4, delay=2, normalize=True)),
    "perm_entropy_5": (lambda x, lv: F.kernel_perm_entropy(x, 5, 1, level=lv),
                       lambda x: antropy.perm_entropy(x, order=5, delay=1, normalize=True)),
    "perm_entropy_7": (lambda x, lv: F.kernel_perm_entropy(x, 7, 1, level=lv),
                       lambda x: antropy.perm_entropy(x, order=7, delay=1, normalize=True)),
    "spectral_entropy": (lambda x, lv: F.kernel_spectral_entropy(x, level=lv), ref_spectral),
    "wavelet_energies": (lambda x, lv: F.kernel_wavelet_energies(x, 3, level=lv), lambda x: ref_wavelet(x, 3)),
    "ols_slope": (lambda x, lv: F.kernel_ols_slope(np.arange(len(x), dtype=np.float64), x, level=lv),
                  lambda x: np.polyfit(np.arange(len(x), dtype=np.float64), x, 1)[0]),
    "ols_slope_xy": (lambda x, lv: F.kernel_ols_slope(x, np.cumsum(x), level=lv),
                     lambda x: np.polyfit(x, np.cumsum(x), 1)[0]),
}


def base_name(name: str) -> str:
    for base in ("sample_entropy", "perm_entropy", "spectral_entropy", "wavelet_energies", "ols_slope",
                 "hurst_rs", "cid_ce", "acf", "c3", "dfa"):
        if name.startswith(base):
            return base
    raise KeyError(name)


def assert_matches(got, want, rtol=RTOL, atol=ATOL, what=""):
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, what
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=what)


def dfa_scales(n: int) -> int:
    from antropy.utils import _log_n

    return len(_log_n(4, 0.1 * n, 1.2))


def dfa_degenerate(x) -> bool:
    """True when antropy would fit the log of a rounding-noise F(n) (see the module docstring):
    for some n of antropy's nvals, x is constant inside every chunk of n samples."""
    from antropy.utils import _log_n

    n_total = len(x)
    for nv in _log_n(4, 0.1 * n_total, 1.2):
        m = n_total // nv
        chunks = x[: m * nv].reshape(m, nv)
        if m and np.all(chunks[:, 1:] == chunks[:, :-1]):
            return True
    return False


def dfa_exact_zeros(x) -> float:
    """antropy's DFA (fractal._dfa, same scales, regression and epsilon) with the scales whose
    F(n) is mathematically zero (x constant inside every chunk) dropped, as its zero filter
    intends: the reference for the windows dfa_degenerate() finds. NaN below two scales, as the
    kernel does."""
    from antropy.utils import _linear_regression, _log_n

    x = np.asarray(x, dtype=np.float64)
    n_total = len(x)
    walk = np.cumsum(x - x.mean())
    scales, flucts = [], []
    for nv in _log_n(4, 0.1 * n_total, 1.2):
        m = n_total // nv
        if m and np.all(x[: m * nv].reshape(m, nv)[:, 1:] == x[: m * nv].reshape(m, nv)[:, :-1]):
            continue
        d = walk[: m * nv].reshape(m, nv)
        t = np.arange(nv, dtype=np.float64)
        rss = np.empty(m)
        for i in range(m):
            slope, intercept = _linear_regression(t, np.ascontiguousarray(d[i]))
            rss[i] = np.sum((d[i] - (intercept + slope * t)) ** 2) / nv
        f = np.sqrt(np.mean(rss))
        if f != 0.0:
            scales.append(nv)
            flucts.append(f)
    if len(flucts) < 2:
        return math.nan
    alpha, _ = _linear_regression(np.log(np.asarray(scales, dtype=np.float64)), np.log(np.asarray(flucts)))
    return float(alpha)


# ------------------------------------------------------------------------------------------
# data

def gaussian_windows():
    rng = np.random.default_rng(20240808)
    return [rng.standard_normal(n) for n in (64, 128, 256) for _ in range(4)]


@pytest.fixture(scope="module")
def real_returns(shared_data):
    """Log returns of the rebuilt mid at each message end of the reference recording (92% of
    them exactly zero: the mid only moves on some messages)."""
    from bot4.data import load

    r = mid_returns(load(shared_data / "binance_hftbacktest" / "usdm" / "btcusdt_20240808.gz"))
    assert len(r) > 5000 and (r == 0).mean() > 0.5
    return r


@pytest.fixture(scope="module")
def sim_returns():
    """The same on bot4's embedded simulator stream (no recording needed): also sparse, so the
    degenerate-DFA windows occur here too."""
    from bot4.sim import generate

    r = mid_returns(generate(seed=7, n_events=60_000))
    assert len(r) > 5000 and (r == 0).mean() > 0.3
    return r


def mid_returns(data):
    from bot4.events import FLAG_LAST, NO_ASK_PRICE, NO_BID_PRICE

    books = _core.book.BookSet()
    for instrument in data.specs:
        books.add(instrument)
    ends = np.flatnonzero(data.book["flags"] & FLAG_LAST).astype(np.int64)
    tops = books.apply(data.book, ends)
    ok = (tops["bid_price"] != NO_BID_PRICE) & (tops["ask_price"] != NO_ASK_PRICE)
    mid = (tops["bid_price"][ok] + tops["ask_price"][ok]) / 2.0
    return np.diff(np.log(mid))


def real_windows(r, n, step):
    return [np.ascontiguousarray(r[s:s + n]) for s in range(0, len(r) - n + 1, step)]


def check_against_reference(name, x, level="active"):
    kernel, ref = KERNELS[name]
    got = kernel(x, level)
    if np.ptp(x) == 0:
        # zero variance: every spread-normalised kernel is undefined
        # c3, perm entropy and the slope on time stay defined for a constant window
        if base_name(name) not in ("c3", "perm_entropy") and name != "ols_slope":
            assert np.all(np.isnan(got)), f"{name}: constant window should give NaN, got {got}"
            return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = ref(x)
    if base_name(name) == "dfa" and dfa_scales(len(x)) < 2:
        assert np.isnan(got), "dfa with a single scale should give NaN"  # antropy: 0.0
        return
    if base_name(name) == "dfa" and dfa_degenerate(x):
        want = dfa_exact_zeros(x)
        if np.isnan(want):
            assert np.isnan(got), f"{name}: fewer than two non-zero scales should give NaN, got {got}"
        else:
            assert_matches(got, want, what=f"{name} (exact zero scales dropped) n={len(x)}")
        return
    want = np.asarray(want, dtype=np.float64)
    if base_name(name) == "sample_entropy" and np.isinf(want):
        assert np.isnan(got), f"{name}: no (m+1)-matches should give NaN"
        return
    if base_name(name) == "spectral_entropy" and len(x) & (len(x) - 1):
        assert np.isnan(got)
        return
    assert_matches(got, want, what=f"{name} n={len(x)}")


# ------------------------------------------------------------------------------------------
# hand vectors (METHODS.md section 5)

def test_hand_vectors():
    x15 = np.arange(1.0, 6.0)
    assert F.kernel_c3(x15, 1) == pytest.approx(30.0, rel=1e-15)
    assert F.kernel_cid_ce(x15) == pytest.approx(1.414214, abs=5e-7)
    assert F.kernel_acf(np.arange(1.0, 11.0), 1) == pytest.approx(0.7, rel=1e-14)
    x_bp = np.array([4, 7, 9, 10, 6, 11, 3], dtype=np.float64)
    assert F.kernel_perm_entropy(x_bp, 3, 1) == pytest.approx(0.588762, abs=5e-7)
    assert F.kernel_perm_entropy(x_bp, 3, 1) == pytest.approx(1.521928 / math.log2(6), rel=1e-6)
    # db2 periodization is orthonormal: the energies are those of pywt's coefficients and the
    # coefficient energy equals the signal energy (120 for sqrt(0..15))
    x16 = np.sqrt(np.arange(16.0))
    for levels in (1, 2, 3, 4):
        rel = F.kernel_wavelet_energies(x16, levels)
        assert rel.sum() == pytest.approx(1.0, rel=1e-15)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # levels above dwt_max_level are fine with periodization
            coeffs = pywt.wavedec(x16, "db2", mode="periodization", level=levels)
        energies = [np.sum(c ** 2) for c in coeffs]
        assert sum(energies) == pytest.approx(120.0, rel=1e-13)
        assert_matches(rel * 120.0, np.concatenate([energies[1:][::-1], energies[:1]]), rtol=1e-13)
    # the R/S hand vector holds for the reference; the kernel's own nvals start at 8, so it is
    # compared with nolds on longer series below
    assert nolds.hurst_rs([1.0, 2, 3, 4], nvals=[2, 4], fit="poly", corrected=False) == pytest.approx(1.131517, abs=5e-7)
    # a pure tone on an FFT bin has all its power in one bin: spectral entropy 0
    t = np.arange(64.0)
    assert F.kernel_spectral_entropy(np.cos(2 * np.pi * 8 * t / 64)) == pytest.approx(0.0, abs=1e-12)
    assert F.kernel_ols_slope(np.array([0.0, 1, 2, 3]), np.array([1.0, 3, 5, 7])) == pytest.approx(2.0, rel=1e-15)


def test_hurst_nvals():
    assert F.hurst_nvals(128) == [8, 16, 32, 64]
    assert F.hurst_nvals(64) == [8, 16, 32]
    assert F.hurst_nvals(100) == [8, 16, 32]
    assert F.hurst_nvals(15) == []


# ------------------------------------------------------------------------------------------
# against the references

@pytest.mark.parametrize("name", sorted(KERNELS))
def test_gaussian_windows_match_reference(name):
    for x in gaussian_windows():
        check_against_reference(name, x)


@pytest.mark.parametrize("n", [64, 128, 256])
@pytest.mark.parametrize("name", sorted(KERNELS))
def test_real_return_windows_match_reference(name, n, real_returns):
    windows = real_windows(real_returns, n, step=97)
    assert len(windows) > 50
    for x in windows:
        check_against_reference(name, x)


@pytest.mark.parametrize("n", [64, 256])
@pytest.mark.parametrize("name", sorted(KERNELS))
def test_sim_return_windows_match_reference(name, n, sim_returns):
    windows = real_windows(sim_returns, n, step=211)
    assert len(windows) > 20
    for x in windows:
        check_against_reference(name, x)


def test_degenerate_dfa_windows_are_checked_against_the_exact_reference(sim_returns):
    """The windows with a mathematically zero F(n) exist in tick returns and get a real check."""
    windows = [x for x in real_windows(sim_returns, 128, step=13) if np.ptp(x) > 0 and dfa_degenerate(x)]
    assert len(windows) >= 5
    defined = 0
    for x in windows:
        check_against_reference("dfa", x)
        defined += np.isfinite(F.kernel_dfa(x))
    assert defined > 0


def test_real_windows_are_mostly_defined(real_returns):
    """The sparse tick returns must not turn the kernels into NaN generators."""
    windows = real_windows(real_returns, 128, step=61)
    for name in ("acf", "hurst_rs", "dfa", "sample_entropy", "spectral_entropy", "perm_entropy"):
        values = np.array([KERNELS[name][0](x, "active") for x in windows])
        assert np.isfinite(values).mean() > 0.8, name


def test_ties_and_zeros_in_perm_entropy():
    rng = np.random.default_rng(3)
    for order, delay in ((3, 1), (4, 1), (4, 3), (5, 2), (6, 1), (7, 1), (8, 1)):
        for _ in range(5):
            x = rng.integers(-1, 2, size=128).astype(np.float64) * 1e-4
            x[rng.random(128) < 0.7] = 0.0
            want = antropy.perm_entropy(x, order=order, delay=delay, normalize=True)
            for level in LEVELS:
                assert F.kernel_perm_entropy(x, order, delay, level=level) == pytest.approx(want, rel=1e-12, abs=1e-15)


def test_sample_entropy_on_discrete_data():
    # ties exactly at r never occur with r = 0.2 std of 0/1 data unless std makes it so; these
    # integer series exercise the strict '<' on many equal differences
    rng = np.random.default_rng(11)
    for order in (1, 2, 3):
        for n in (20, 64, 200):
            x = rng.integers(0, 3, size=n).astype(np.float64)
            want = antropy.sample_entropy(x, order=order)
            got = F.kernel_sample_entropy(x, order)
            if np.isinf(want):
                assert np.isnan(got)
            else:
                assert got == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("n", [16, 32, 48, 96, 512, 1024])
def test_other_window_sizes(n):
    rng = np.random.default_rng(n)
    x = np.cumsum(rng.standard_normal(n)) * 0.1 + rng.standard_normal(n)
    for name in ("acf", "c3", "cid_ce", "sample_entropy", "perm_entropy", "perm_entropy_5", "ols_slope"):
        check_against_reference(name, x)
    if n >= 32:
        check_against_reference("hurst_rs", x)
    if n >= 48:
        check_against_reference("dfa", x)
    if n & (n - 1) == 0:
        check_against_reference("spectral_entropy", x)
    if n % 8 == 0:
        check_against_reference("wavelet_energies", x)


def test_wavelet_levels_and_short_inputs():
    rng = np.random.default_rng(7)
    for n, levels in ((8, 3), (16, 4), (64, 6), (96, 5), (128, 1), (256, 7), (1024, 10)):
        x = rng.standard_normal(n)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pywt warns when the level exceeds dwt_max_level
            want = ref_wavelet(x, levels)
        for level in LEVELS:
            assert_matches(F.kernel_wavelet_energies(x, levels, level=level), want, rtol=1e-12)


def test_spectral_entropy_small_powers_of_two():
    rng = np.random.default_rng(8)
    for n in (4, 8, 16, 32, 1024):
        x = rng.standard_normal(n)
        for level in LEVELS:
            assert F.kernel_spectral_entropy(x, level=level) == pytest.approx(ref_spectral(x), rel=1e-10)


# ------------------------------------------------------------------------------------------
# every level against scalar

def level_inputs(real):
    rng = np.random.default_rng(99)
    xs = [rng.standard_normal(n) for n in (64, 128, 256, 1024)]
    xs += real_windows(real, 128, step=211)
    xs += real_windows(real, 256, step=401)
    return xs


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("name", sorted(KERNELS))
def test_levels_agree_with_scalar(name, level, real_returns):
    kernel = KERNELS[name][0]
    for x in level_inputs(real_returns):
        want = np.asarray(kernel(x, "scalar"))
        got = np.asarray(kernel(x, level))
        np.testing.assert_array_equal(got, want, err_msg=f"{name} at {level}")


@pytest.mark.parametrize("level", LEVELS)
def test_sample_entropy_counts_identical(level, real_returns):
    """Counts are integers: the same r (bit-identical std) must give the same value exactly."""
    for x in real_windows(real_returns, 128, step=13):
        a = F.kernel_sample_entropy(x, 2, level="scalar")
        b = F.kernel_sample_entropy(x, 2, level=level)
        assert (a == b) or (np.isnan(a) and np.isnan(b))


def test_active_level_is_the_process_level():
    x = np.random.default_rng(1).standard_normal(128)
    active = _core.simd.active_level()
    assert F.kernel_dfa(x) == F.kernel_dfa(x, level=active)


@pytest.mark.parametrize("env, ok", [("scalar", True), ("avx9", False)])
def test_bot4_simd_selects_the_active_level(env, ok):
    """BOT4_SIMD picks the table behind level="active"; an invalid value is reported, not ignored."""
    import os
    import subprocess
    import sys

    code = ("import numpy as np; from bot4 import _core; x = np.arange(16.0) ** 1.5\n"
            "value = _core.features.kernel_acf(x, 1)  # level='active' first: it must raise itself\n"
            "print(_core.simd.active_level(), value)")
    run = subprocess.run([sys.executable, "-c", code], env={**os.environ, "BOT4_SIMD": env},
                         capture_output=True, text=True, timeout=60)
    if ok:
        assert run.returncode == 0, run.stderr
        level, value = run.stdout.split()
        assert level == env
        assert float(value) == F.kernel_acf(np.arange(16.0) ** 1.5, 1, level=env)
    else:
        assert run.returncode != 0 and "BOT4_SIMD" in run.stderr


# ------------------------------------------------------------------------------------------
# undefined inputs

ALL_NAN_CALLS = {
    "acf": lambda x, lv: F.kernel_acf(x, 1, level=lv),
    "cid_ce": lambda x, lv: F.kernel_cid_ce(x, level=lv),
    "hurst_rs": lambda x, lv: F.kernel_hurst_rs(x, level=lv),
    "dfa": lambda x, lv: F.kernel_dfa(x, level=lv),
    "sample_entropy": lambda x, lv: F.kernel_sample_entropy(x, 2, level=lv),
    "spectral_entropy": lambda x, lv: F.kernel_spectral_entropy(x, level=lv),
    "ols_slope": lambda x, lv: F.kernel_ols_slope(x, np.arange(len(x), dtype=np.float64), level=lv),
}


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("name", sorted(ALL_NAN_CALLS))
def test_constant_window_is_nan(name, level):
    for value in (0.0, 1e-4, -3.25, 0.1):
        out = np.asarray(ALL_NAN_CALLS[name](np.full(128, value), level))
        assert np.all(np.isnan(out)), (name, value)


def test_constant_window_defined_kernels():
    x = np.full(64, 2.0)
    # all the energy of a constant is in the approximation; an all-zero window has none at all
    assert_matches(F.kernel_wavelet_energies(x, 3), [0.0, 0.0, 0.0, 1.0], atol=1e-15)
    assert np.all(np.isnan(F.kernel_wavelet_energies(np.zeros(64), 3)))
    assert F.kernel_c3(x, 1) == 8.0
    assert F.kernel_perm_entropy(x, 3, 1) == 0.0  # one pattern (ties by position)
    assert antropy.perm_entropy(x, 3, 1, normalize=True) == 0.0


@pytest.mark.parametrize("level", LEVELS)
def test_too_short_and_invalid_parameters(level):
    x = np.random.default_rng(2).standard_normal(100)
    nan = math.isnan
    assert nan(F.kernel_acf(x[:1], 0, level=level))
    assert nan(F.kernel_acf(x[:10], 10, level=level))
    assert nan(F.kernel_c3(x[:4], 2, level=level))
    assert nan(F.kernel_cid_ce(x[:1], level=level))
    assert nan(F.kernel_hurst_rs(x[:31], level=level))  # hurst_nvals gives a single scale
    assert nan(F.kernel_dfa(x[:30], level=level))       # antropy's nvals is [4] below n = 48
    assert nan(F.kernel_sample_entropy(x[:3], 2, level=level))
    assert nan(F.kernel_sample_entropy(x, 0, level=level))
    assert nan(F.kernel_perm_entropy(x[:3], 4, 1, level=level))
    assert nan(F.kernel_perm_entropy(x, 1, 1, level=level))
    assert nan(F.kernel_perm_entropy(x, 3, 0, level=level))
    assert nan(F.kernel_perm_entropy(x, 11, 1, level=level))  # above the supported order 10
    assert nan(F.kernel_spectral_entropy(x, level=level))       # n = 100 is not a power of two
    assert nan(F.kernel_spectral_entropy(x[:2], level=level))
    assert np.all(np.isnan(F.kernel_wavelet_energies(x, 3, level=level)))  # 100 % 8 != 0
    assert np.all(np.isnan(F.kernel_wavelet_energies(x[:96], 0, level=level)))
    assert F.kernel_wavelet_energies(x[:96], 0, level=level).shape == (1,)
    assert nan(F.kernel_ols_slope(x[:1], x[:1], level=level))
    big = np.random.default_rng(3).standard_normal(F.kernel_max_window + 1)
    for name, (kernel, _) in KERNELS.items():
        assert np.all(np.isnan(kernel(big, level))), name


@pytest.mark.parametrize("level", LEVELS)
def test_never_infinite(level):
    # antropy returns inf here (B > 0 matches of length 2, none of length 3)
    x = np.array([0.0, 1.0, 3.0, 2.0, 0.0, 3.0, 2.0, 3.0, 0.0, 0.0])
    assert np.isinf(antropy.sample_entropy(x, order=2))
    assert math.isnan(F.kernel_sample_entropy(x, 2, level=level))
    rng = np.random.default_rng(4)
    for _ in range(50):
        x = rng.standard_normal(64) * 10.0 ** rng.integers(-300, 300)
        for name, (kernel, _) in KERNELS.items():
            out = np.asarray(kernel(x, level))
            assert not np.any(np.isinf(out)), name


@pytest.mark.parametrize("level", LEVELS)
def test_nan_input_gives_nan(level):
    x = np.random.default_rng(5).standard_normal(128)
    x[17] = np.nan
    for name, (kernel, _) in KERNELS.items():
        if name.startswith("ols_slope"):
            continue
        assert np.all(np.isnan(kernel(x, level))), name
    assert math.isnan(F.kernel_ols_slope(x, np.arange(128.0), level=level))


# ------------------------------------------------------------------------------------------
# causality: a kernel sees only the window it is given

def test_window_view_equals_copy_and_ignores_later_samples(real_returns):
    r = real_returns[:2000].copy()
    n, end = 128, 1500
    view = r[end - n + 1:end + 1]  # a C-contiguous view into the larger array
    assert view.base is r and view.flags.c_contiguous
    copy = view.copy()
    before = {name: np.asarray(kernel(view, "active")) for name, (kernel, _) in KERNELS.items()}
    for name, (kernel, _) in KERNELS.items():
        np.testing.assert_array_equal(np.asarray(kernel(copy, "active")), before[name], err_msg=name)
    # perturb and extend everything after the window end: the window's values cannot move
    r[end + 1:] = np.random.default_rng(6).standard_normal(len(r) - end - 1)
    longer = np.concatenate([r, np.ones(500)])
    view2 = longer[end - n + 1:end + 1]
    for name, (kernel, _) in KERNELS.items():
        np.testing.assert_array_equal(np.asarray(kernel(view, "active")), before[name], err_msg=name)
        np.testing.assert_array_equal(np.asarray(kernel(view2, "active")), before[name], err_msg=name)


# ------------------------------------------------------------------------------------------
# the Python boundary

def test_input_checks():
    x = np.random.default_rng(0).standard_normal(128)
    with pytest.raises(TypeError, match="float64"):
        F.kernel_acf(x.astype(np.float32), 1)
    with pytest.raises(TypeError, match="C-contiguous"):
        F.kernel_dfa(x[::2])
    with pytest.raises(TypeError, match="1-D"):
        F.kernel_cid_ce(x.reshape(2, 64))
    with pytest.raises(TypeError):
        F.kernel_cid_ce(list(x))
    with pytest.raises(TypeError, match="float64"):
        F.kernel_ols_slope(x, np.arange(128))
    with pytest.raises(ValueError, match="same length"):
        F.kernel_ols_slope(x, x[:10].copy())
    with pytest.raises(ValueError, match="unknown SIMD level"):
        F.kernel_acf(x, 1, level="sse9")
    with pytest.raises(ValueError, match="lag"):
        F.kernel_acf(x, -1)
    for level in ("avx2", "avx512"):
        if level not in LEVELS:
            with pytest.raises(ValueError, match="not supported"):
                F.kernel_acf(x, 1, level=level)


def test_kernel_time_runs_every_kernel():
    x = np.random.default_rng(0).standard_normal(128)
    for name in ("acf", "c3", "cid_ce", "hurst_rs", "dfa", "sample_entropy", "perm_entropy",
                 "spectral_entropy", "wavelet_energies", "ols_slope"):
        ns = F.kernel_time(name, x, 3, "scalar")
        assert 0.0 < ns < 1e7, name
    samples = F.kernel_time_samples("acf", x, 5, "active", lag=2)
    assert samples.shape == (5,) and np.all(samples > 0)
    with pytest.raises(ValueError, match="unknown kernel"):
        F.kernel_time("fft", x, 3, "scalar")
