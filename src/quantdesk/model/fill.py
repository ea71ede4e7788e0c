"""Fill: one execution of (part of) an order, with exact price, quantity and fee."""

from __future__ import annotations

from decimal import Decimal

import msgspec

from quantdesk.model.enums import Side


class Fill(msgspec.Struct, frozen=True):
    """An execution reported by a venue; `execution_id` is unique per venue and makes it idempotent."""

    execution_id: str
    client_order_id: str
    venue_order_id: str
    symbol: str
    side: Side
    qty: Decimal
    price: Decimal
    fee: Decimal
    ts_event: int
    ts_init: int

    @property
    def signed_qty(self) -> Decimal:
        return self.qty if self.side is Side.BUY else -self.qty
