"""The Venue interface every execution venue implements, and the capabilities it declares."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from quantdesk.model import Order, OrderEvent


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
