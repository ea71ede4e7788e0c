"""Position: a netting position per symbol, with average price and realised/unrealised P&L."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from quantdesk.model.fill import Fill

_ZERO = Decimal(0)


@dataclass(slots=True)
class Position:
    """Net quantity of one symbol (positive long, negative short) derived only from fills.

    Realised P&L is booked when a fill reduces or flips the position, against
    the average entry price; fees are tracked apart so gross and net both show.
    """

    symbol: str
    multiplier: Decimal = Decimal(1)
    qty: Decimal = field(default_factory=Decimal)
    avg_price: Decimal = field(default_factory=Decimal)
    realized_pnl: Decimal = field(default_factory=Decimal)
    fees: Decimal = field(default_factory=Decimal)
    ts_opened: int = 0
    ts_last: int = 0

    @property
    def is_flat(self) -> bool:
        return self.qty == 0

    @property
    def is_long(self) -> bool:
        return self.qty > 0

    @property
    def is_short(self) -> bool:
        return self.qty < 0

    def apply(self, fill: Fill) -> Decimal:
        """Apply a fill; return the P&L it realised (before fees)."""
        signed = fill.signed_qty
        realized = _ZERO
        self.fees += fill.fee
        self.ts_last = fill.ts_event
        if self.qty == 0 or (self.qty > 0) == (signed > 0):
            # Opening or adding: the average price moves, nothing is realised.
            new_qty = self.qty + signed
            self.avg_price = (self.avg_price * abs(self.qty) + fill.price * abs(signed)) / abs(new_qty)
            if self.qty == 0:
                self.ts_opened = fill.ts_event
            self.qty = new_qty
        else:
            closing = min(abs(signed), abs(self.qty))
            direction = 1 if self.qty > 0 else -1
            realized = (fill.price - self.avg_price) * closing * direction * self.multiplier
            self.realized_pnl += realized
            new_qty = self.qty + signed
            if new_qty == 0:
                self.avg_price = _ZERO
            elif (new_qty > 0) != (self.qty > 0):
                # Flip: the remainder opens a new position at the fill price.
                self.avg_price = fill.price
                self.ts_opened = fill.ts_event
            self.qty = new_qty
        return realized

    def unrealized_pnl(self, mark: Decimal) -> Decimal:
        return (mark - self.avg_price) * self.qty * self.multiplier

    def notional(self, mark: Decimal) -> Decimal:
        return abs(self.qty) * mark * self.multiplier
