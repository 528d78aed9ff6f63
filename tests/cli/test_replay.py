from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from bot4.data import load
from bot4.data.market_data import merge
from bot4.replay import replay

from recordings import data_path

BINANCE = data_path("binance_hftbacktest")


def run_cli(*args):
    env = dict(os.environ)
    env.pop("BOT4_SIMD", None)
    out = subprocess.run([sys.executable, "-m", "bot4.cli", *map(str, args)], capture_output=True,
                         text=True, env=env)
    return out


@pytest.mark.realdata
def test_replay_reference_file_json():
    out = run_cli("replay", "--data", BINANCE / "usdm" / "btcusdt_20240808.gz", "--check-bbo", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    for key in ("events", "level_changes", "trades", "rejected", "sequence_gaps", "bbo_checked",
                "bbo_matched", "final_bid", "final_ask", "seconds"):
        assert key in result
    assert result["level_changes"] == 445_262 and result["trades"] == 21_313
    assert result["sequence_gaps"] == 0
    assert result["bbo_checked"] == result["bbo_matched"] == 629
    assert (result["final_bid"], result["final_ask"]) == ("61659.7", "61659.8")
    assert (result["final_bid_qty"], result["final_ask_qty"]) == ("1.486", "0.981")


@pytest.mark.realdata
def test_replay_chains_continuation_files_in_the_order_given():
    out = run_cli("replay", "--data", BINANCE / "coinm" / "btcusd_perp_20240808.gz",
                  BINANCE / "coinm" / "btcusd_perp_20240809.gz", "--check-bbo", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["sequence_gaps"] == 0
    assert result["bbo_checked"] == result["bbo_matched"] > 1000


@pytest.mark.realdata
def test_replay_human_output_names_every_figure():
    out = run_cli("replay", "--data", BINANCE / "usdm" / "ethusdt_20240808.gz", "--check-bbo")
    assert out.returncode == 0, out.stderr
    for label in ("events", "level changes", "trades", "rejections", "sequence gaps",
                  "final bid/ask", "bbo checked", "book seconds"):
        assert label in out.stdout


def test_replay_missing_file_is_a_clear_error(tmp_path):
    out = run_cli("replay", "--data", tmp_path / "nope.gz")
    assert out.returncode == 2
    assert "no such file" in out.stderr


@pytest.mark.realdata
def test_several_instruments_in_one_batch_equal_their_separate_replays():
    btc = load(BINANCE / "usdm" / "btcusdt_20240808.gz")
    eth = load(BINANCE / "usdm" / "ethusdt_20240808.gz")
    both = merge([btc, eth])
    assert len(both.specs) == 2 and len(both.book) == len(btc.book) + len(eth.book)
    assert len(np.unique(both.book["instrument"])) == 2
    together = replay(both, check_bbo=True)
    apart = [replay(d, check_bbo=True) for d in (btc, eth)]
    assert together.bbo.checked == together.bbo.matched == sum(r.bbo.matched for r in apart)
    from bot4.replay import build_books

    books = build_books(both)
    books.apply(both.book)
    for data, result in zip((btc, eth), apart):
        (instrument, spec), = data.specs.items()
        bid, _, ask, _ = books.book(instrument).top()
        assert (spec.price_str(bid), spec.price_str(ask)) == (result.final_bid, result.final_ask)


@pytest.mark.parametrize("venue_args", [["--venue", "lobster"], []])
@pytest.mark.realdata
def test_replay_l3_lobster(venue_args):
    path = data_path("lobster_aapl") / "AAPL_2012-06-21_34200000_57600000_message_10.csv"
    out = run_cli("replay", "--data", path, *venue_args, "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["level"] == "L3" and result["order_events"] > 900


def test_replay_without_data_uses_the_embedded_stream():
    out = run_cli("replay", "--events", "20000", "--seed", "3", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["source"].startswith("bot4-sim seed=3")
    assert result["level"] == "L3" and result["rejected"] == {}
    assert result["l2_l3_consistent"] is True
    assert result["final_bid"] is not None and float(result["final_bid"]) < float(result["final_ask"])


def test_replay_text_on_the_embedded_stream_says_so():
    # (was `bot4 demo` before the demo became the train → backtest → report pipeline)
    out = run_cli("replay", "--events", "20000", "--check-bbo")
    assert out.returncode == 0, out.stderr
    assert "embedded default market stream" in out.stdout
    assert "L2 vs L3 book consistent" in out.stdout
