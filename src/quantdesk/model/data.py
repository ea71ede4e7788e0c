"""Market data value types: Bar, Tick and Quote.

Market data is float, as every feed and pandas deliver it; a price becomes exact
(a `Decimal` on the instrument's tick grid) the moment it enters accounting, at
the fill. Times are UTC nanoseconds: `ts_event` is the venue's time (for a bar,
the timestamp the data labels it with), `ts_init` when we saw it.

These are NamedTuples rather than frozen dataclasses: immutable, and cheap
enough to build one per bar on the backtest hot path.
"""

from __future__ import annotations

from typing import NamedTuple


class Bar(NamedTuple):
    """One OHLCV bar of one symbol."""

    symbol: str
    ts_event: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    ts_init: int


class Tick(NamedTuple):
    """One trade print."""

    symbol: str
    ts_event: int
    price: float
    size: float
    ts_init: int


class Quote(NamedTuple):
    """Top of book: best bid and ask with their sizes."""

    symbol: str
    ts_event: int
    bid: float
    ask: float
    bid_size: float
    ask_size: float
    ts_init: int

    @property
    def mid(self) -> float:
        return (self.bid + self.ask) / 2.0
