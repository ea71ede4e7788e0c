"""The Venue interface every execution venue implements, and the capabilities it declares."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

import msgspec

from quantdesk.model import Fill, Order, OrderEvent, OrderStatus, Side


@dataclass(frozen=True, slots=True)
class VenueCapabilities:
    """Facts about a venue that the core must respect without special-casing the venue.

    `max_client_id_length` and `client_id_alphanumeric` shape client order ids
    (Kite's tag: 20 alphanumeric characters; Alpaca: 128). `unique_client_ids`
    says whether the venue itself refuses a repeated id (Alpaca does, Kite does not).
    """

    name: str
    max_client_id_length: int = 128
    client_id_alphanumeric: bool = False
    unique_client_ids: bool = True
    native_oco: bool = False
    exits_may_exceed_position: bool = True


class VenueListener(Protocol):
    """Receives the venue's order events (the engine's execution side implements it)."""

    def on_order_event(self, event: OrderEvent) -> None: ...


class Venue(Protocol):
    """Where orders go. Answers arrive as `OrderEvent`s through the connected listener."""

    @property
    def capabilities(self) -> VenueCapabilities: ...

    def connect(self, listener: VenueListener) -> None: ...

    def submit_order(self, order: Order) -> None: ...

    def cancel_order(self, client_order_id: str) -> None: ...


class VenueOrderState(msgspec.Struct, frozen=True):
    """The venue's view of one order, from an order-book snapshot or a lookup by client id."""

    client_order_id: str
    venue_order_id: str
    symbol: str
    side: Side
    qty: Decimal
    filled_qty: Decimal
    status: OrderStatus
    ts: int

    @property
    def is_open(self) -> bool:
        return self.status.is_open


class OrderBookVenue(Venue, Protocol):
    """A venue that answers for its orders: what is open, and what became of one client id.

    Every real broker does (Alpaca: GET /v2/orders, by client_order_id; Kite: the
    order book, searched by tag), and reconciliation and retries after a timeout
    depend on it.
    """

    def open_orders(self) -> list[VenueOrderState]: ...

    def query_order(self, client_order_id: str) -> VenueOrderState | None: ...


class RecoverableVenue(OrderBookVenue, Protocol):
    """A venue a restarted node can reconcile with: its order book, its executions and positions.

    Brokers answer all three (Alpaca: orders, account activities of type FILL, positions;
    Kite: the order book, /trades, /portfolio/positions).
    """

    @property
    def positions(self) -> Mapping[str, Decimal]: ...

    def executions(self) -> list[Fill]: ...
