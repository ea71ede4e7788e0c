"""The simulated venue's own copy of a working order, apart from the engine's `Order`.

A msgspec Struct kept out of the compiled exchange module: mypyc drops a class's keyword
arguments (eq=False, gc=False) when it compiles a Struct's definition. It is `gc=False`:
holding only scalars, strings and immutable values it cannot be part of a reference
cycle, and untracked it costs the cyclic collector nothing.
"""

from __future__ import annotations

from collections.abc import Hashable
from decimal import Decimal

import msgspec

from quantdesk.model import OrderType, Side, TimeInForce


class Resting(msgspec.Struct, eq=False, gc=False):
    """The venue's own copy of a working order (the engine's Order is never touched here)."""

    client_order_id: str
    venue_order_id: str
    symbol: str
    side: Side
    order_type: OrderType
    leaves: Decimal
    limit: float | None
    stop: float | None
    limit_dec: Decimal | None
    stop_dec: Decimal | None
    tif: TimeInForce
    eligible_ts: int
    session: Hashable
    sequence: int
    triggered: bool = False
