"""The ensemble stage inside the engine: several model slots combined per decision (bot4.backtest.run
with model=[...] and an [ensemble] section), what reaches the strategy and the router, the breaker
and refresh counters, the control-plane refresh, and the TOML section reaching the core."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from bot4 import _core
from bot4.backtest import run
from bot4.errors import ConfigError
from bot4.sim import generate

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pinned_outputs import CONFIG, EMBEDDED, MODEL_DIR  # noqa: E402

RECORDS = ("decisions", "orders", "fills", "equity")


@pytest.fixture(scope="module")
def stream():
    return generate(seed=EMBEDDED["seed"], n_events=60_000)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Three slots: the pinned model and two small challengers trained on other streams."""
    from bot4.models import load
    from bot4.research import TrainConfig, train

    out = [load(MODEL_DIR)]
    for seed, trees, depth in ((99, 12, 3), (5, 8, 2)):
        d = tmp_path_factory.mktemp(f"slot{seed}")
        train(generate(seed=seed, n_events=80_000), TrainConfig(n_estimators=trees, max_depth=depth), d,
              progress=False)
        out.append(load(d))
    return out


def _cfg(**ensemble):
    return {**CONFIG, "ensemble": ensemble}


def _slots(result, k=3):
    s = result.scores
    assert s.size == k * result.decisions.size
    P = s["p"].reshape(-1, k)
    np.testing.assert_array_equal(s["ts"].reshape(-1, k)[:, 0], result.decisions["ts"])
    np.testing.assert_array_equal(s["slot"].reshape(-1, k), np.tile(np.arange(k), (P.shape[0], 1)))
    return P


def _same_records(a, b):
    for k in RECORDS:
        x, y = getattr(a, k), getattr(b, k)
        for f in x.dtype.names:
            np.testing.assert_array_equal(x[f], y[f], err_msg=f"{k}.{f}")


def test_mean_ensemble_is_what_the_strategy_trades_on(stream, models):
    res = run(stream, models, config=_cfg(mode="mean"), progress=False)
    P = _slots(res)
    np.testing.assert_allclose(res.decisions["p"], P.mean(axis=1), rtol=0, atol=1e-15)
    assert res.counters["ensemble_calm"] == res.decisions.size  # thresholds at their default (off)
    assert res.counters["ensemble_scaled"] == res.counters["ensemble_fallback"] == 0
    # the strategy's signal follows the combined probability (threshold_bracket, long_threshold)
    thr = CONFIG["strategy"]["long_threshold"]
    p = res.decisions["p"]
    want = np.where(p >= thr, 1, np.where(p <= 1 - thr, -1, 0))
    np.testing.assert_array_equal(res.decisions["target"], want)
    lat = res.latency_ns
    assert lat["ensemble"].size == res.decisions.size and lat["ensemble"].sum() > 0


def test_ensemble_weighting_slot_zero_alone_trades_exactly_as_slot_zero(stream, models):
    alone = run(stream, models[0], config=CONFIG, progress=False)
    ens = run(stream, models, config=_cfg(mode="weighted", weights=[1.0, 0.0, 0.0]), progress=False)
    _same_records(alone, ens)
    assert np.all(alone.latency_ns["ensemble"] == 0)  # no ensemble: no work in the stage


def test_breaker_scales_sizes_and_falls_back(stream, models):
    fixed = {**CONFIG["strategy"], "fixed_qty_lots": 4, "max_qty_lots": 0}
    base = run(stream, models, config={**_cfg(mode="mean"), "strategy": fixed}, progress=False)
    scaled = run(stream, models, config={**_cfg(mode="mean", scale_dispersion=0.0, size_scale=0.5),
                                         "strategy": fixed}, progress=False)
    P = _slots(scaled)
    disp = P.std(axis=1)
    c = scaled.counters
    assert c["ensemble_scaled"] == int((disp > 0).sum()) and c["ensemble_calm"] == int((disp == 0).sum())
    new, entry = 0, 1  # orders::OrderEventKind New, orders::OrderRole entry
    entry_q = lambda r: r.orders["qty"][(r.orders["kind"] == new) & (r.orders["role"] == entry)]  # noqa: E731
    assert set(entry_q(base).tolist()) == {4} and set(entry_q(scaled).tolist()) == {2}
    # above the fallback threshold the strategy gets the fallback slot's own output
    fb = run(stream, models, config=_cfg(mode="mean", scale_dispersion=0.0, fallback_dispersion=0.0,
                                         fallback_slot=2), progress=False)
    P = _slots(fb)
    disp = P.std(axis=1)
    want = np.where(disp > 0, P[:, 2], P.mean(axis=1))
    np.testing.assert_allclose(fb.decisions["p"], want, rtol=0, atol=1e-15)
    assert fb.counters["ensemble_fallback"] == int((disp > 0).sum())


def test_adaptive_refresh_counts_follow_the_cadence(stream, models):
    # fast while the models disagree by more than the median dispersion
    base = run(stream, models, config=_cfg(mode="mean"), progress=False)
    # a threshold halfway between two neighbouring dispersions (no decision sits on it)
    d = np.unique(_slots(base).std(axis=1))
    d_med = float((d[d.size // 2] + d[d.size // 2 + 1]) / 2)
    cfg = dict(mode="adaptive", refresh_every=200, refresh_every_fast=20, fast_dispersion=d_med, horizon_ns=500_000_000)
    res = run(stream, models, config=_cfg(**cfg), progress=False)
    disp = _slots(res).std(axis=1)
    since, normal, fast = 0, 0, 0
    for x in disp:
        since += 1
        hot = x >= d_med
        if since >= (20 if hot else 200):
            since = 0
            fast += hot
            normal += not hot
    c = res.counters
    assert (c["ensemble_refreshes"], c["ensemble_fast_refreshes"]) == (normal, fast)
    assert fast > 0 and normal > 0
    calm = run(stream, models, config=_cfg(**dict(cfg, fast_dispersion=0.0)), progress=False)
    assert calm.counters["ensemble_refreshes"] == calm.decisions.size // 200
    assert calm.counters["ensemble_fast_refreshes"] == 0


def test_refresh_on_request_from_the_control_plane(stream, models):
    from bot4.backtest import run_stream, time_pieces

    calls, refreshed = [0], []

    def control(engine):
        calls[0] += 1
        if calls[0] == 3:
            refreshed.append(engine.refresh_ensemble_weights())

    cfg = _cfg(mode="adaptive", horizon_ns=100_000_000)
    res = run_stream(time_pieces(stream, seconds=5), stream.specs, models, config=cfg, progress=False,
                     control=control)
    assert refreshed == [1] and calls[0] > 3
    assert res.counters["ensemble_flag_refreshes"] == 1 and res.counters["commands"] == 1
    # without an adaptive ensemble nothing is refreshed (the command is still counted)
    refreshed.clear()
    calls[0] = 0
    res = run_stream(time_pieces(stream, seconds=5), stream.specs, models, config=_cfg(mode="mean"),
                     progress=False, control=control)
    assert refreshed == [0] and res.counters["ensemble_flag_refreshes"] == 0


def test_no_ensemble_leaves_scores_and_p_as_before(stream, models):
    res = run(stream, models[0], config=CONFIG, progress=False, shadow=models[1:])
    assert set(np.unique(res.scores["slot"])) == {1, 2}
    assert res.counters["ensemble_calm"] == 0


@pytest.mark.parametrize("ens,match", [
    (dict(mode="weighted", weights=[1.0, 2.0]), "2 weights for 3 model slots"),
    (dict(mode="stacker", coefficients=[1.0]), "1 coefficients for 3 model slots"),
    (dict(mode="mean", fallback_slot=5), "fallback_slot 5"),
    (dict(mode="blend"), "unknown mode 'blend'"),
    (dict(mode="mean", scale_dispersion=0.3, fallback_dispersion=0.2), "must be >= scale_dispersion"),
    (dict(mode="weighted", weights=[1.0, float("nan"), 1.0]), "finite"),
])
def test_bad_ensemble_config_is_refused_before_the_run(stream, models, ens, match):
    with pytest.raises((ConfigError, ValueError), match=match):
        run(stream, models, config=_cfg(**ens), progress=False)


def test_an_ensemble_needs_several_models(stream, models):
    with pytest.raises(ValueError, match="combines several models"):
        run(stream, models[0], config=_cfg(mode="mean"), progress=False)


def test_toml_ensemble_section_reaches_the_core(tmp_path):
    from bot4.config import load_config

    p = tmp_path / "ens.toml"
    p.write_text('[ensemble]\nmode = "adaptive"\nweights = [1.0, 2.0, 0.5]\nintercept = -0.25\n'
                 'coefficients = [0.5, 1.5, -0.25]\nstacker_clip = 1e-6\nrank_window = 33\nloss = "brier"\n'
                 'eta = 3.5\nhorizon_ns = 250000000\ndead_zone_bp = 0.5\nloss_window = 77\nrefresh_every = 300\n'
                 'refresh_every_fast = 30\nfast_vol_bp = 2.5\nfast_dispersion = 0.15\nscale_dispersion = 0.1\n'
                 'fallback_dispersion = 0.2\nsize_scale = 0.3\nfallback_slot = 2\n')
    cfg = load_config(p)
    want = {"mode": "adaptive", "weights": [1.0, 2.0, 0.5], "intercept": -0.25, "coefficients": [0.5, 1.5, -0.25],
            "stacker_clip": 1e-6, "rank_window": 33, "loss": "brier", "eta": 3.5, "horizon_ns": 250_000_000,
            "dead_zone_bp": 0.5, "loss_window": 77, "refresh_every": 300, "refresh_every_fast": 30,
            "fast_vol_bp": 2.5, "fast_dispersion": 0.15, "scale_dispersion": 0.1, "fallback_dispersion": 0.2,
            "size_scale": 0.3, "fallback_slot": 2}
    core = _core.engine.echo_config(cfg.to_core_dict())["ensemble"]
    schema = {f["name"] for f in _core.engine.schema()["ensemble"]}
    assert set(core) == schema == set(want)  # every field of the core's declaration is in the TOML
    assert core == want


@pytest.mark.parametrize("text,match", [
    ('[ensemble]\nmode = "vote"\n', "unknown mode 'vote'"),
    ('[ensemble]\nscale_dispersion = -0.5\n', "scale_dispersion"),
    ('[ensemble]\nscale_dispersion = 0.3\nfallback_dispersion = 0.1\n', "must be >= scale_dispersion"),
    ('[ensemble]\nweights = [1.0, nan]\n', "weights"),
    ('[ensemble]\nmode = "mean"\nsize_scal = 0.5\n', "size_scal"),
])
def test_bad_toml_ensemble_section_names_the_field(tmp_path, text, match):
    from bot4.config import load_config

    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_config(p)
