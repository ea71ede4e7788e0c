"""Round-trip trades from fills: a trade opens when a position leaves zero, closes when it returns."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from quantdesk.backtest.stats import TradeRecord
from quantdesk.model import Fill, Side

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

    def add(self, fill: Fill) -> None:
        qty = fill.qty
        buy = fill.side is Side.BUY
        trade = self._open
        if trade is None:
            trade = self._open = _OpenTrade(side="LONG" if buy else "SHORT", entry_time=fill.ts_event)
        if (trade.side == "LONG") == buy:
            trade.qty += qty
            trade.entry_value += qty * fill.price
            trade.fees += fill.fee
            return
        closing = qty if qty <= trade.qty else trade.qty
        fee = fill.fee if closing == qty else fill.fee * closing / qty
        trade.qty -= closing
        trade.exit_qty += closing
        trade.exit_value += closing * fill.price
        trade.fees += fee
        if trade.qty == 0:
            self._close(trade, fill.ts_event)
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

    def _close(self, trade: _OpenTrade, ts: int) -> None:
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
            )
        )
        self._open = None
