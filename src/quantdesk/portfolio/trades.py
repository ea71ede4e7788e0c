"""Closed round trips: the builder that makes trade records from fills (compiled: per fill).

A trade opens when a position leaves zero and closes when it returns; a fill
that flips the position closes one trade and opens the next. The record itself,
a msgspec Struct, is `portfolio/trade_record.py` (kept pure; re-exported here).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Final

from quantdesk.model import Fill, Side
from quantdesk.portfolio.trade_record import TradeRecord

# Enum members as C statics: compiled, `Side.BUY` is a call of EnumType's __getattr__ hook
# on Python 3.11 (~80 ns); see _compiled.py.
_BUY: Final = Side.BUY

__all__ = ["TradeBuilder", "TradeRecord"]

_ZERO: Final = Decimal(0)


class _OpenTrade:
    """The trade being built: what went in and, so far, what came out."""

    __slots__ = ("entry_time", "entry_value", "exit_qty", "exit_value", "fees", "qty", "side")

    def __init__(
        self,
        side: str,
        entry_time: int,
        qty: Decimal = _ZERO,
        entry_value: Decimal = _ZERO,
        fees: Decimal = _ZERO,
    ) -> None:
        self.side = side
        self.entry_time = entry_time
        self.qty = qty
        self.entry_value = entry_value
        self.exit_qty = _ZERO
        self.exit_value = _ZERO
        self.fees = fees

    def __repr__(self) -> str:
        return (
            f"_OpenTrade(side={self.side!r}, entry_time={self.entry_time}, qty={self.qty}, "
            f"entry_value={self.entry_value}, exit_qty={self.exit_qty}, exit_value={self.exit_value}, "
            f"fees={self.fees})"
        )


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
        buy = fill.side is _BUY
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
        closed = self._close(trade, exit_time, exit_reason) if trade.qty == _ZERO else None
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
