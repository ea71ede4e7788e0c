"""Position: a netting position per symbol, with average price and realised/unrealised P&L."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, Inexact, localcontext
from typing import Any, Final, cast

from quantdesk.model.enums import Side
from quantdesk.model.fill import Fill

# Enum members as C statics: compiled, `Side.BUY` is a call of EnumType's __getattr__ hook
# on Python 3.11 (~80 ns); see _compiled.py.
_BUY: Final = Side.BUY

_ZERO: Final = Decimal(0)
# The cost a partial close takes out of the position is an average, often a
# non-terminating one; it is then rounded to this quantum, and whatever the
# rounding leaves stays in the open cost until the last unit closes. So realised
# plus unrealised P&L equals the cash flow exactly, and a round trip realises exactly.
_COST_QUANTUM: Final = Decimal("1E-12")


def _share(cost: Decimal, part: Decimal, whole: Decimal) -> Decimal:
    """The cost of `part` units out of `whole` that cost `cost`, on the quantum if inexact."""
    with localcontext() as context:
        context.clear_flags()
        share = cost * part / whole
        # Through Any: the flags are a decimal SignalDict, not the dict typeshed declares (compiled
        # code checks the declared type).
        if cast(Any, context).flags[Inexact]:
            share = share.quantize(_COST_QUANTUM)
    return share


@dataclass(slots=True)
class Position:
    """Net quantity of one symbol (positive long, negative short) derived only from fills.

    Realised P&L is booked when a fill reduces or flips the position, against
    the average entry price; fees are tracked apart so gross and net both show.
    Accounting runs on the exact open cost; `avg_price` is that cost per unit.
    """

    symbol: str
    multiplier: Decimal = Decimal(1)
    qty: Decimal = field(default_factory=Decimal)
    avg_price: Decimal = field(default_factory=Decimal)
    realized_pnl: Decimal = field(default_factory=Decimal)
    fees: Decimal = field(default_factory=Decimal)
    ts_opened: int = 0
    ts_last: int = 0
    _cost: Decimal = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Signed entry value of the open quantity (negative for a short).
        self._cost = self.avg_price * self.qty

    @property
    def is_flat(self) -> bool:
        return self.qty == _ZERO

    @property
    def is_long(self) -> bool:
        return self.qty > _ZERO

    @property
    def is_short(self) -> bool:
        return self.qty < _ZERO

    def apply(self, fill: Fill) -> Decimal:
        """Apply a fill; return the P&L it realised (before fees)."""
        signed = fill.qty if fill.side is _BUY else -fill.qty  # Fill.signed_qty, without the call
        realized = _ZERO
        self.fees += fill.fee
        self.ts_last = fill.ts_event
        if self.qty == _ZERO or (self.qty > _ZERO) == (signed > _ZERO):
            # Opening or adding: the average price moves, nothing is realised.
            if self.qty == _ZERO:
                self.ts_opened = fill.ts_event
            self._cost += signed * fill.price
            self.qty += signed
            self.avg_price = self._cost / self.qty
        else:
            # The part of the position this fill closes, signed like the position.
            closed = self.qty if abs(signed) >= abs(self.qty) else -signed
            closed_cost = self._cost if closed == self.qty else _share(self._cost, closed, self.qty)
            realized = (fill.price * closed - closed_cost) * self.multiplier
            self.realized_pnl += realized
            self._cost -= closed_cost
            new_qty = self.qty + signed
            if new_qty == _ZERO:
                self.avg_price = self._cost = _ZERO
            elif (new_qty > _ZERO) != (self.qty > _ZERO):
                # Flip: the remainder opens a new position at the fill price.
                self.avg_price = fill.price
                self._cost = new_qty * fill.price
                self.ts_opened = fill.ts_event
            self.qty = new_qty
        return realized

    def unrealized_pnl(self, mark: Decimal) -> Decimal:
        return (mark * self.qty - self._cost) * self.multiplier

    def notional(self, mark: Decimal) -> Decimal:
        return abs(self.qty) * mark * self.multiplier
