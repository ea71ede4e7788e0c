"""Fill: one execution of (part of) an order, with exact price, quantity and fee.

Structs here are declared `gc=False`: they hold only scalars, strings and immutable
containers, so they cannot be part of a reference cycle, and untracked they cost the
cyclic collector nothing (fewer and shorter pauses on the hot path).
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from quantdesk.model.enums import Side


class Fill(msgspec.Struct, frozen=True, gc=False):
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
