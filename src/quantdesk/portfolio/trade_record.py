"""The closed round trip's record: a frozen msgspec Struct, kept in a module that is not compiled.

mypyc drops a class's keyword arguments when it compiles it (a frozen, gc=False Struct
would come out mutable and tracked), so the record lives here and the builder, on the
per-fill path, in `portfolio/trades.py`, which is compiled.

Declared `gc=False`: it holds only scalars and strings, so it cannot be part of a reference
cycle, and untracked it costs the cyclic collector nothing.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

_SIDES = ("LONG", "SHORT")


class TradeRecord(msgspec.Struct, frozen=True, gc=False):
    """One closed round trip: entry and exit of one position in one symbol.

    `pnl` is net of `fees`; times are UTC nanoseconds; `qty` is positive, `side` gives the
    direction ("LONG" or "SHORT").
    """

    symbol: str
    side: str
    qty: Decimal
    entry_time: int
    exit_time: int
    entry_price: Decimal
    exit_price: Decimal
    pnl: Decimal
    fees: Decimal
    strategy: str
    exit_reason: str = ""

    def __post_init__(self) -> None:
        if self.side not in _SIDES:
            raise ValueError(f"TradeRecord.side must be LONG or SHORT, got {self.side!r}")
        if self.qty <= 0:
            raise ValueError(f"TradeRecord.qty must be positive, got {self.qty}")
        if self.entry_price == 0:
            raise ValueError("TradeRecord.entry_price must not be zero")
        if self.exit_time < self.entry_time:
            raise ValueError("TradeRecord.exit_time is before entry_time")

    @property
    def return_pct(self) -> float:
        """Price return of the trade as a fraction (0.02 = +2 %), signed by side, before fees.

        A long that buys at 100 and sells at 102 gives 0.02; a short over the same prices
        gives -0.02. Fees are left out so the figure does not depend on contract multipliers.
        """
        # Float division: a ratio for statistics and protections, asked for often.
        move = float(self.exit_price) / float(self.entry_price) - 1.0
        return move if self.side == "LONG" else -move

    @property
    def duration_ns(self) -> int:
        """Time held, in nanoseconds."""
        return self.exit_time - self.entry_time
