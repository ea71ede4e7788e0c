"""The simulated venue's value types: its copy of a working order, and where a bar fills one.

msgspec Structs kept out of the compiled exchange and matching modules: mypyc drops a
class's keyword arguments (frozen, eq=False, gc=False) when it compiles a Struct's
definition. They are `gc=False`: holding only scalars, strings and immutable values they
cannot be part of a reference cycle, and untracked they cost the cyclic collector nothing.
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


class PathHit(msgspec.Struct, frozen=True, gc=False):
    """Where (segment index + fraction, 0 = the open) and at what price an order fills on a bar.

    One is built per working order per bar (`venues/sim/matching.py`).
    """

    position: float
    price: float
    triggered_only: bool = False
