"""Closed round trips: the trade record and the builder that makes them from fills.

A trade opens when a position leaves zero and closes when it returns; a fill
that flips the position closes one trade and opens the next.

Structs here are declared `gc=False`: they hold only scalars, strings and immutable
containers, so they cannot be part of a reference cycle, and untracked they cost the
cyclic collector nothing (fewer and shorter pauses on the hot path).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import msgspec

from quantdesk.model import Fill, Side

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


_ZERO = Decimal(0)


@dataclass(slots=True)
class _OpenTrade:
    side: str
    entry_time: int
    qty: Decimal = _ZERO
    entry_value: Decimal = _ZERO
    exit_qty: Decimal = _ZERO
    exit_value: Decimal = _ZERO
    fees: Decimal = _ZERO


class TradeBuilder:
    """Turns one (strategy, symbol)'s fills into round trips with average entry and exit prices.

    A fill that flips the position closes the trade at that fill and opens a new
    one with the remainder; its fee is split pro rata between the two.
    """

    def __init__(self, strategy: str, symbol: str, multiplier: Decimal) -> None:
        self.strategy = strategy
        self.symbol = symbol
        self.multiplier = multiplier
        self.closed: list[TradeRecord] = []
        self._open: _OpenTrade | None = None

    @property
    def open_trade(self) -> _OpenTrade | None:
        return self._open

    def add(self, fill: Fill, exit_reason: str = "") -> TradeRecord | None:
        """Add a fill; return the trade it closed, if any."""
        qty = fill.qty
        buy = fill.side is Side.BUY
        trade = self._open
        if trade is None:
            trade = self._open = _OpenTrade(side="LONG" if buy else "SHORT", entry_time=fill.ts_event)
        if (trade.side == "LONG") == buy:
            trade.qty += qty
            trade.entry_value += qty * fill.price
            trade.fees += fill.fee
            return None
        closing = qty if qty <= trade.qty else trade.qty
        fee = fill.fee if closing == qty else fill.fee * closing / qty
        trade.qty -= closing
        trade.exit_qty += closing
        trade.exit_value += closing * fill.price
        trade.fees += fee
        # A venue may report fills out of time order: a trade never ends before it began.
        exit_time = max(fill.ts_event, trade.entry_time)
        closed = self._close(trade, exit_time, exit_reason) if trade.qty == 0 else None
        if closing < qty:
            # A flip: the rest of the fill opens the opposite trade with the rest of the fee.
            rest = qty - closing
            self._open = _OpenTrade(
                side="LONG" if buy else "SHORT",
                entry_time=fill.ts_event,
                qty=rest,
                entry_value=rest * fill.price,
                fees=fill.fee - fee,
            )
        return closed

    def _close(self, trade: _OpenTrade, ts: int, exit_reason: str) -> TradeRecord:
        total_in = trade.exit_qty  # opened and then closed: equal once the trade is flat
        avg_entry = trade.entry_value / total_in
        avg_exit = trade.exit_value / total_in
        direction = 1 if trade.side == "LONG" else -1
        gross = (trade.exit_value - trade.entry_value) * direction * self.multiplier
        self.closed.append(
            TradeRecord(
                symbol=self.symbol,
                side=trade.side,
                qty=total_in,
                entry_time=trade.entry_time,
                exit_time=ts,
                entry_price=avg_entry,
                exit_price=avg_exit,
                pnl=gross - trade.fees,
                fees=trade.fees,
                strategy=self.strategy,
                exit_reason=exit_reason,
            )
        )
        self._open = None
        return self.closed[-1]
