import pytest

orders = pytest.importorskip("bot4._core").orders


def fill_vwap_legs(entry_side, notional, filled, stop_d, target_d):
    """Reference leg prices: rounded AWAY from the fill VWAP (never closer than configured)."""
    lo = notional // filled           # floor
    hi = -((-notional) // filled)     # ceil
    if entry_side == "buy":
        return lo - stop_d, hi + target_d
    return hi + stop_d, lo - target_d


def crosses(a, b):
    """Would two own orders trade with each other? Stops are triggers, not resting liquidity."""
    if a["side"] == b["side"] or "stop" in (a["type"], b["type"]):
        return False
    if "market" in (a["type"], b["type"]):
        return True
    buy, sell = (a, b) if a["side"] == "buy" else (b, a)
    return buy["price"] >= sell["price"]


WORKING = {"new", "acknowledged", "partially_filled"}      # active: may be resized, counts for STP
LIVE = WORKING | {"pending_cancel"}                        # not terminal: fills still arrive
