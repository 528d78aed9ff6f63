"""bot4.data.load of Binance files of several instruments: each instrument is its market and
symbol, so the same symbol on spot and on USD-M futures are two recordings side by side (a USD-M
file read as a continuation of the spot one lost all its messages, silently)."""

from __future__ import annotations

import numpy as np
import pytest

from bot4.data import load
from bot4.errors import DataError

pytestmark = pytest.mark.realdata

USDM_BTC = "binance_hftbacktest/usdm/btcusdt_20240808.gz"
SPOT_BTC = "binance_hftbacktest/spot/btcusdt_20240808.gz"
COINM_BTC = "binance_hftbacktest/coinm/btcusd_perp_20240808.gz"


def test_same_symbol_on_two_markets_is_two_instruments(shared_data):
    files = [shared_data / f for f in (USDM_BTC, SPOT_BTC, COINM_BTC)]
    both = load(files)
    alone = [load(f) for f in files]
    assert sorted(both.specs) == sorted(i for a in alone for i in a.specs)
    for a in alone:
        (iid,) = a.specs
        mine = both.book[both.book["instrument"] == iid]
        assert mine.tobytes() == a.book.tobytes(), iid
        assert int((both.trades["instrument"] == iid).sum()) == len(a.trades)
    assert both.rejections.as_dict() == {k: sum(a.rejections.counts.get(k, 0) for a in alone)
                                         for k in both.rejections.as_dict()}
    assert np.all(np.diff(np.maximum.accumulate(both.book["ts_local"])) >= 0)


def test_a_file_of_another_market_than_the_venue_given_is_named(shared_data):
    with pytest.raises(DataError, match="spot recording, not usdm"):
        load([shared_data / USDM_BTC, shared_data / SPOT_BTC], venue="binance-usdm")


def test_a_run_reads_binance_markets_side_by_side(shared_data):
    from bot4.sources import check_sources, load_stream

    files = [shared_data / USDM_BTC, shared_data / SPOT_BTC]
    assert [s.venue for s in check_sources(files)] == ["binance-usdm", "binance-spot"]
    stream = load_stream(files)
    assert stream.venue == "binance" and len(stream.data.specs) == 2
    assert len(stream.data.book) == sum(len(load(f).book) for f in files)
