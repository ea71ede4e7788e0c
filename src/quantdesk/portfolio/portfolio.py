"""Portfolio: one account and a netting position per symbol, updated only by fills."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Final

from quantdesk.model import Account, Fill, Instrument, Position

_ZERO: Final = Decimal(0)


class Portfolio:
    """Cash plus positions; equity needs marks, which the caller supplies (lazy marking).

    What the risk gate asks on every signal is kept up to date by the fills themselves:
    the realised P&L of the whole portfolio and the positions that are open, so no
    question has to walk every symbol ever traded.
    """

    def __init__(self, instruments: Mapping[str, Instrument], account: Account) -> None:
        self._instruments = instruments
        self.account = account
        self.positions: dict[str, Position] = {}
        # Open positions by symbol, in the order they opened (as `positions` would list them).
        self._open: dict[str, Position] = {}
        self._realized = _ZERO

    def position(self, symbol: str) -> Position:
        position = self.positions.get(symbol)
        if position is None:
            multiplier = self._instruments[symbol].multiplier
            position = self.positions[symbol] = Position(symbol, multiplier=multiplier)
        return position

    def qty(self, symbol: str) -> Decimal:
        position = self.positions.get(symbol)
        return position.qty if position is not None else _ZERO

    def apply_fill(self, fill: Fill) -> Decimal:
        """Book a fill into cash and its position; return the P&L it realised (before fees)."""
        position = self.positions.get(fill.symbol)
        if position is None:
            position = self.position(fill.symbol)
        self.account.apply(fill, position.multiplier)
        realized = position.apply(fill)
        if realized:
            self._realized += realized
        if position.qty == _ZERO:
            self._open.pop(fill.symbol, None)
        elif fill.symbol not in self._open:
            self._open[fill.symbol] = position
        return realized

    def open_positions(self) -> list[Position]:
        return list(self._open.values())

    @property
    def realized_pnl(self) -> Decimal:
        """Realised P&L of every position (before fees), summed fill by fill as it was booked."""
        return self._realized

    def unrealized_pnl(self, marks: Mapping[str, Decimal]) -> Decimal:
        return sum((p.unrealized_pnl(marks[p.symbol]) for p in self._open.values()), _ZERO)

    def equity(self, marks: Mapping[str, Decimal]) -> Decimal:
        """Cash plus the marked value of every open position."""
        value = self.account.cash
        for p in self._open.values():
            value += p.qty * marks[p.symbol] * p.multiplier
        return value

    def marked(self, marks: Mapping[str, Decimal]) -> tuple[Decimal, Decimal]:
        """`equity(marks)` and `unrealized_pnl(marks)` in one pass over the open positions."""
        equity = self.account.cash
        unrealized = _ZERO
        for p in self._open.values():
            mark = marks[p.symbol]
            equity += p.qty * mark * p.multiplier
            unrealized += p.unrealized_pnl(mark)
        return equity, unrealized
