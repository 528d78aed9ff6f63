"""Fuzz the TOML configs: the risk/strategy config (bot4.config.risk.load_config + build_risk, what
`bot4 config check` runs) and the feature config (FeatureConfig.from_toml + the core engine built
from it). Refusals are bot4 errors, msgspec validation errors and ValueErrors naming the field;
any other exception or a crash is a finding.

    python fuzz/fuzz_config.py -max_total_time=30      # bounded (CI)
    python fuzz/fuzz_config.py -runs=1000000           # >= 1M inputs
"""

import msgspec

from bot4 import _core
from bot4.config.risk import build_risk, load_config
from bot4.errors import Bot4Error
from bot4.features import FeatureConfig

import _harness


def seeds() -> list[bytes]:
    return [
        b"\x00[risk.sizing]\nkelly_fraction = 0.25\n[risk.pre_trade]\nmax_order_lots = 10\n"
        b"[risk.kill_switch]\nmax_drawdown = 0.1\n[strategy]\nentry_probability = 0.6\n"
        b"exit_probability = 0.5\n",
        b"\x00[strategy]\nentry_probability = 0.7\n",
        b"\x01decision = \"time\"\ndecision_interval_ns = 100000000\nsample_interval_ns = 1000000\n"
        b"window = 64\nflow_window_ns = 1000000000\n",
        b"\x01decision = \"events\"\ndecision_every_n = 5\nwindow = 128\nvpin_buckets = 10\n"
        b"[microprice]\nn_spreads = 1\nn_imbalance = 2\ng = [0.0, 0.1]\n",
    ]


def one_input(data: bytes) -> None:
    if not data:
        return
    mode, body = data[0] & 1, data[1:]
    if mode == 0:
        path = _harness.scratch("risk.toml")
        path.write_bytes(body)
        try:
            build_risk(load_config(path))
        except Bot4Error:
            return
        except ValueError as exc:  # the core's own field checks (pybind ValueError naming the field)
            if not str(exc):
                raise
        return
    try:
        config = FeatureConfig.from_toml(body)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return
    try:
        _core.features.FeatureEngine(config.to_core())
    except ValueError as exc:
        if not str(exc):
            raise


if __name__ == "__main__":
    _harness.main(__file__, seeds, one_input)
