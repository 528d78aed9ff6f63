"""bot4.strategies: the ways a strategy is named (built-in, module:Class, .py, .pyx, .so) and the
built-ins' descriptions; examples/python_strategy.py (the threshold_bracket rule as a
bot4.Strategy) trades bit-identically to the built-in."""
from __future__ import annotations

import pytest
from conftest import EXAMPLES, builtin_and_user, same_outputs

from bot4 import _core, strategies


def test_python_threshold_equals_the_builtin_on_the_embedded_stream(embedded):
    ref, user, s = builtin_and_user(embedded, str(EXAMPLES / "python_strategy.py"))
    assert ref.n_orders > 0 and ref.fills.size > 0
    assert same_outputs(ref, user) == []
    assert s.fills == ref.fills.size  # on_fill saw every fill


@pytest.mark.realdata
def test_python_threshold_equals_the_builtin_on_btcusdt(btcusdt):
    ref, user, _ = builtin_and_user(btcusdt, str(EXAMPLES / "python_strategy.py"))
    assert ref.n_orders > 0
    assert same_outputs(ref, user) == []


def test_builtins_describe_every_field():
    b = strategies.builtins()
    assert set(b) == {"threshold_bracket", "market_maker", "top_of_book"}
    fields = {f["name"]: f for f in b["threshold_bracket"]["fields"]}
    assert fields["long_threshold"]["default"] == 0.55
    assert fields["stop_ticks"]["unit"] == "ticks"
    for spec in b.values():
        assert spec["doc"]
        for f in spec["fields"]:
            assert {"name", "type", "default", "doc"} <= set(f)


def test_make_resolves_each_kind_of_spec(tmp_path):
    assert isinstance(strategies.make(None), _core.engine.BuiltinStrategy)
    mm = strategies.make("market_maker", {"name": "market_maker"})
    assert mm.name == "market_maker"
    py = strategies.make(str(EXAMPLES / "python_strategy.py"), {"long_threshold": 0.6})
    assert type(py).__name__ == "Threshold" and py.long_threshold == 0.6
    mod = strategies.make("bot4.strategy:Strategy")
    assert type(mod).__name__ == "Strategy"
    with pytest.raises(ValueError, match="built-in .*module:Class.*plugin"):
        strategies.make("no_such_strategy")
    with pytest.raises(ValueError, match="cannot import"):
        strategies.make("no_such_module:Thing")
    with pytest.raises(ValueError, match="has no Thing"):
        strategies.make("bot4.strategy:Thing")
    with pytest.raises(ValueError, match="does not exist"):
        strategies.make(str(tmp_path / "nothing.py"))
    with pytest.raises(ValueError, match="unknown"):
        strategies.make("threshold_bracket", {"long_treshold": 0.6})
