"""Account: cash in one currency, moved only by fills and their fees."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from quantdesk.model.enums import Side
from quantdesk.model.fill import Fill

# Enum members as C statics: compiled, `Side.BUY` is a call of EnumType's __getattr__ hook
# on Python 3.11 (~80 ns); see _compiled.py.
_BUY: Final = Side.BUY


@dataclass(slots=True)
class Account:
    """A cash account: buying spends cash, selling (or shorting) adds it, fees always cost."""

    currency: str
    cash: Decimal
    starting_cash: Decimal = Decimal(0)
    fees_paid: Decimal = Decimal(0)

    def __post_init__(self) -> None:
        if self.starting_cash == 0:
            self.starting_cash = self.cash

    def apply(self, fill: Fill, multiplier: Decimal) -> None:
        fee = fill.fee
        if fill.side is _BUY:
            self.cash -= fill.qty * fill.price * multiplier + fee
        else:
            self.cash -= -fill.qty * fill.price * multiplier + fee
        self.fees_paid += fee
