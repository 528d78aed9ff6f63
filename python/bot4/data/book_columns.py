"""Columnar accumulation of L2 book messages while a loader reads a file, turned into one
BOOK_EVENT array at the end (numpy in bulk rather than row by row)."""

from __future__ import annotations

import numpy as np

from bot4.events import BOOK_EVENT, FLAG_CLEAR, FLAG_LAST


class BookColumns:
    """Per level: price, qty, side. Per message: level count, times, seq, instrument, flags and
    whether it clears the book. FLAG_LAST goes on each message's last level and FLAG_CLEAR on the
    first level of a clearing message; messages left without levels are dropped."""

    def __init__(self) -> None:
        self.price: list[int] = []
        self.qty: list[int] = []
        self.side = bytearray()
        self.m_n: list[int] = []
        self.m_tsx: list[int] = []
        self.m_tsl: list[int] = []
        self.m_seq: list[int] = []
        self.m_iid: list[int] = []
        self.m_flags: list[int] = []
        self.m_clear: list[bool] = []

    def __len__(self) -> int:
        return len(self.price)

    def open_message(self, tsx: int, tsl: int, seq: int, iid: int, flags: int, clear: bool) -> None:
        """Start a book message: exchange and receive times (ns), venue sequence number, instrument id,
        flags, and whether the message replaces the book (clear = snapshot).
        """
        self.m_n.append(0)
        self.m_tsx.append(tsx)
        self.m_tsl.append(tsl)
        self.m_seq.append(seq)
        self.m_iid.append(iid)
        self.m_flags.append(flags)
        self.m_clear.append(clear)

    def add_level(self, side: int, price: int, qty: int) -> None:
        """Append a level change to the open message: side (BID/ASK), price in ticks, absolute size in lots
        (0 = delete)."""
        self.price.append(price)
        self.qty.append(qty)
        self.side.append(side)
        self.m_n[-1] += 1

    def add_message(self, tsx: int, tsl: int, seq: int, iid: int, flags: int, clear: bool,
                    prices: list[int], qtys: list[int], n_bids: int) -> None:
        """A whole message at once: the first n_bids levels are bids, the rest asks."""
        n = len(prices)
        self.open_message(tsx, tsl, seq, iid, flags, clear)
        self.m_n[-1] = n
        self.price.extend(prices)
        self.qty.extend(qtys)
        self.side.extend(bytes(n_bids))
        self.side.extend(b"\x01" * (n - n_bids))

    def to_array(self) -> np.ndarray:
        """The gathered messages as a BOOK_EVENT array (messages without levels dropped; FLAG_LAST on each
        message's last record)."""
        total = len(self.price)
        out = np.zeros(total, BOOK_EVENT)
        if total == 0:
            return out
        n = np.array(self.m_n, dtype=np.int64)
        keep = n > 0
        n = n[keep]
        ends = np.cumsum(n) - 1
        starts = ends - n + 1

        def per_message(values, dtype):
            return np.repeat(np.array(values, dtype=dtype)[keep], n)

        out["ts_exchange"] = per_message(self.m_tsx, np.int64)
        out["ts_local"] = per_message(self.m_tsl, np.int64)
        out["seq"] = per_message(self.m_seq, np.int64)
        out["instrument"] = per_message(self.m_iid, np.uint32)
        out["price"] = np.array(self.price, dtype=np.int64)
        out["qty"] = np.array(self.qty, dtype=np.int64)
        out["side"] = np.frombuffer(bytes(self.side), dtype=np.uint8)
        flags = per_message(self.m_flags, np.uint8)
        flags[ends] |= FLAG_LAST
        flags[starts[np.array(self.m_clear, dtype=bool)[keep]]] |= FLAG_CLEAR
        out["flags"] = flags
        return out
