"""Order events a venue reports: accepted, triggered, filled, cancelled, rejected, expired."""

from __future__ import annotations

from dataclasses import dataclass

from quantdesk.model.fill import Fill


@dataclass(frozen=True, slots=True)
class OrderAccepted:
    client_order_id: str
    venue_order_id: str
    ts_event: int


@dataclass(frozen=True, slots=True)
class OrderTriggered:
    """A stop-limit's stop was touched: it now rests as a limit order."""

    client_order_id: str
    ts_event: int


@dataclass(frozen=True, slots=True)
class OrderFilled:
    fill: Fill

    @property
    def client_order_id(self) -> str:
        return self.fill.client_order_id


@dataclass(frozen=True, slots=True)
class OrderCanceled:
    client_order_id: str
    ts_event: int
    reason: str = ""


@dataclass(frozen=True, slots=True)
class OrderRejected:
    """An explicit refusal by the venue (or our own pre-send check), with its reason."""

    client_order_id: str
    ts_event: int
    reason: str


@dataclass(frozen=True, slots=True)
class OrderExpired:
    client_order_id: str
    ts_event: int
    reason: str = ""


OrderEvent = OrderAccepted | OrderTriggered | OrderFilled | OrderCanceled | OrderRejected | OrderExpired
