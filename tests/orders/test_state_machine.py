"""Order lifecycle: only legal transitions, counted rejections, monotonic sequence numbers."""
import numpy as np
import pytest

from bot4.errors import ConfigError

from orders_ref import orders


def new_limit(m, cid=1, side="buy", price=100, qty=10):
    r = m.submit_limit(cid, side, price, qty)
    assert r["status"] == "ok"
    return r["order_id"]


def test_happy_path_states_and_events():
    m = orders.OrderManager()
    oid = new_limit(m)
    assert m.order_state(oid) == "new"
    assert m.on_ack(oid) == "ok"
    assert m.order_state(oid) == "acknowledged"
    assert m.on_fill(oid, 4, 100) == "ok"
    assert m.order_state(oid) == "partially_filled"
    assert m.on_fill(oid, 6, 99) == "ok"
    assert m.order_state(oid) == "filled"
    ev = m.drain_events()
    assert ev.dtype == orders.event_dtype
    kinds = [orders.EVENT_KINDS[k] for k in ev["kind"]]
    assert kinds == ["new", "ack", "fill", "fill"]
    assert list(ev["seq"]) == [1, 2, 3, 4]
    assert list(ev["qty_lots"][2:]) == [4, 6]
    assert m.position == 10
    assert len(m.drain_events()) == 0


def test_fill_before_ack_is_legal():
    m = orders.OrderManager()
    oid = new_limit(m)
    assert m.on_fill(oid, 10, 100) == "ok"
    assert m.order_state(oid) == "filled"


@pytest.mark.parametrize(
    "setup, event, reason",
    [
        ([], ("on_expire",), "illegal_transition"),          # expire needs an acknowledged order
        (["ack"], ("on_ack",), "illegal_transition"),        # double ack
        (["ack"], ("on_reject",), "illegal_transition"),     # reject after ack
        (["ack"], ("on_fill", 11, 100), "overfill"),
        (["ack"], ("on_fill", 0, 100), "bad_quantity"),
        (["ack"], ("on_fill", 1, 101), "bad_price"),         # buy limit 100 cannot fill at 101
        (["ack", "cancel"], ("on_fill", 1, 100), "closed_order"),
        (["reject"], ("on_ack",), "closed_order"),
        (["ack", "expire"], ("on_cancel",), "closed_order"),
    ],
)
def test_illegal_events_are_counted_and_change_nothing(setup, event, reason):
    m = orders.OrderManager()
    oid = new_limit(m)
    for s in setup:
        assert getattr(m, "on_" + s)(oid) == "ok"
    before = m.order(oid)
    seq = m.last_seq
    m.drain_events()
    name, *args = event
    assert getattr(m, name)(oid, *args) == reason
    assert m.counters()[reason] == 1
    assert m.order(oid) == before
    assert m.last_seq == seq
    assert len(m.drain_events()) == 0


@pytest.mark.parametrize("name, args", [("on_ack", ()), ("on_fill", (1, 100)), ("on_cancel", ()),
                                        ("on_reject", ()), ("on_expire", ())])
def test_unknown_order_is_counted(name, args):
    m = orders.OrderManager()
    assert getattr(m, name)(999, *args) == "unknown_order"
    assert m.counters()["unknown_order"] == 1
    assert len(m.drain_events()) == 0


def test_submit_validation():
    m = orders.OrderManager()
    assert m.submit_limit(1, "buy", 100, 0)["status"] == "bad_quantity"
    assert m.submit_limit(2, "buy", 0, 5)["status"] == "bad_price"
    assert m.submit_market(3, "sell", 5, reduce_only=True)["status"] == "reduce_only"
    assert m.order_ids() == []
    with pytest.raises(ValueError):
        m.submit_limit(4, "up", 100, 1)


def test_reduce_only_against_position():
    m = orders.OrderManager()
    oid = new_limit(m, qty=5)
    m.on_fill(oid, 5, 100)
    assert m.submit_limit(2, "sell", 101, 6, reduce_only=True)["status"] == "reduce_only"
    assert m.submit_limit(3, "buy", 90, 1, reduce_only=True)["status"] == "reduce_only"
    assert m.submit_limit(4, "sell", 101, 5, reduce_only=True)["status"] == "ok"


def test_config_unknown_key_and_bad_values():
    with pytest.raises(ConfigError, match="unknown key"):
        orders.OrderManager({"ttl": 5})
    with pytest.raises(ConfigError, match="stp_policy"):
        orders.OrderManager({"stp_policy": "nope"})
    with pytest.raises(ConfigError):
        orders.OrderManager({"dedup_capacity": 0})
    with pytest.raises(ConfigError, match="bad type"):
        orders.OrderManager({"dedup_ttl_ns": "x"})


def test_event_dtype_layout():
    dt = orders.event_dtype
    assert dt.itemsize == 64
    assert dt["seq"] == np.uint64 and dt["kind"] == np.uint8


def test_cancel_all():
    m = orders.OrderManager()
    a = new_limit(m, 1, "buy", 100, 1)
    b = new_limit(m, 2, "sell", 110, 1)
    m.on_fill(a, 1, 100)
    assert m.cancel_all() == 1
    assert m.order_state(b) == "pending_cancel" and m.order_state(a) == "filled"
    assert m.cancel_all() == 0                       # nothing active left to cancel
    assert m.on_cancel(b) == "ok" and m.order_state(b) == "cancelled"
