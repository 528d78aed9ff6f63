"""bot4.sources: checked recordings and the embedded stream, with errors that say the fix (in the
library's parameter names; the CLI renders its own option names)."""

from __future__ import annotations

import gzip

import pytest

from bot4.errors import InputError
from bot4.sources import check_sources, load_stream

USDM = (b'1723161255030314667 {"stream":"btcusdt@depth@0ms","data":{"e":"depthUpdate","E":1723161256299,'
        b'"T":1723161256298,"s":"BTCUSDT","U":5,"u":7,"pu":4,"b":[["61496.50","0.010"]],"a":[]}}\n')


@pytest.fixture
def usdm(tmp_path):
    path = tmp_path / "btcusdt.gz"
    path.write_bytes(gzip.compress(USDM))
    return path


def test_embedded_stream(tmp_path):
    s = load_stream(n_events=1000, seed=3)
    assert s.venue == "bot4-sim" and s.data.venue == "bot4-sim" and not s.venue_inferred
    assert "seed 3" in s.label and "1,000 events" in s.label and s.load_seconds > 0


def test_simulator_file_is_read_as_bot4_sim(tmp_path, capsys):
    from bot4.sim import generate, save_npz

    data = generate(n_events=500)
    path = save_npz(data, tmp_path / "g.npz")
    s = load_stream([path], progress=True)
    assert s.venue == "bot4-sim" and s.venue_inferred
    assert len(s.data.orders) == len(data.orders) and len(s.data.book) == len(data.book)
    assert "as bot4-sim (told from the file" in capsys.readouterr().err


def test_wrong_venue_names_the_right_one(usdm):
    with pytest.raises(InputError) as exc:
        check_sources([usdm], "binance-spot")
    e = exc.value
    assert e.param == "venue" and e.suggest == {"venue": "binance-usdm"}
    assert "venue='binance-usdm'" in str(e)
    assert e.render({"venue": "--venue"}).endswith("pass --venue binance-usdm")
    with pytest.raises(InputError, match="venue='binance-usdm'"):
        check_sources([usdm], "tardis")
    assert check_sources([usdm], "binance-usdm")[0].venue == "binance-usdm"
    assert check_sources([usdm])[0].venue == "binance-usdm"


@pytest.mark.parametrize("case", ["folder", "missing", "twice", "twice_other_spelling", "garbage", "mixed", "none"])
def test_bad_paths(tmp_path, usdm, case):
    garbage = tmp_path / "junk.gz"
    garbage.write_bytes(b"not a recording")
    tardis = tmp_path / "t.csv"
    tardis.write_text("exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n")
    paths, needle = {
        "folder": ([tmp_path], "is a folder"),
        "missing": ([tmp_path / "nope.gz"], "no such file"),
        "twice": ([usdm, usdm], "given twice"),
        "twice_other_spelling": ([usdm, tmp_path / "." / usdm.name], "given twice"),
        "garbage": ([garbage], "not a recording bot4 reads"),
        "mixed": ([usdm, tardis], "different formats"),
        "none": ([], "no recording given"),
    }[case]
    with pytest.raises(InputError, match=needle) as exc:
        check_sources(paths)
    assert exc.value.param == "paths" and "market=" not in str(exc.value)


def test_bad_event_counts_are_refused_before_generating():
    for n in (0, -5):
        with pytest.raises(InputError, match="positive number of events") as exc:
            load_stream(n_events=n)
        assert exc.value.param == "n_events"


def test_a_recording_that_yields_nothing_is_an_error_not_an_empty_run(tmp_path):
    # Binance lines that never sync (no snapshot): every diff is rejected, nothing is left
    path = tmp_path / "nosnap.gz"
    path.write_bytes(gzip.compress(USDM * 3))
    with pytest.raises(InputError, match="no events could be read"):
        load_stream([path])


@pytest.mark.realdata
def test_spot_venue_on_a_usdm_recording_is_refused(shared_data):
    usdm = shared_data / "binance_hftbacktest" / "usdm" / "btcusdt_20240808.gz"
    with pytest.raises(InputError, match="binance-usdm"):
        load_stream([usdm], "binance-spot")


def test_binance_lines_of_an_unknown_market_ask_for_the_venue(tmp_path):
    # a combined-stream line of a stream kind the market detector does not use
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(b'1723161255030314667 {"stream":"btcusdt@kline_1m","data":{}}\n'))
    with pytest.raises(InputError, match="binance-usdm, binance-coinm or binance-spot") as exc:
        check_sources([path])
    assert exc.value.param == "venue" and "market=" not in str(exc.value)
    assert check_sources([path], "binance-spot")[0].venue == "binance-spot"
