"""Portfolio: one account and a netting position per symbol, updated only by fills."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from quantdesk.model import Account, Fill, Instrument, Position

_ZERO = Decimal(0)


class Portfolio:
    """Cash plus positions; equity needs marks, which the caller supplies (lazy marking)."""

    def __init__(self, instruments: Mapping[str, Instrument], account: Account) -> None:
        self._instruments = instruments
        self.account = account
        self.positions: dict[str, Position] = {}

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
        position = self.position(fill.symbol)
        self.account.apply(fill, position.multiplier)
        return position.apply(fill)

    def open_positions(self) -> list[Position]:
        return [p for p in self.positions.values() if p.qty != 0]

    @property
    def realized_pnl(self) -> Decimal:
        return sum((p.realized_pnl for p in self.positions.values()), _ZERO)

    def unrealized_pnl(self, marks: Mapping[str, Decimal]) -> Decimal:
        return sum(
            (p.unrealized_pnl(marks[p.symbol]) for p in self.positions.values() if p.qty != 0),
            _ZERO,
        )

    def equity(self, marks: Mapping[str, Decimal]) -> Decimal:
        """Cash plus the marked value of every open position."""
        value = self.account.cash
        for p in self.positions.values():
            if p.qty != 0:
                value += p.qty * marks[p.symbol] * p.multiplier
        return value
