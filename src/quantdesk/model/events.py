"""Order events a venue reports: accepted, triggered, filled, cancelled, rejected, expired.

msgspec Structs: immutable like frozen dataclasses, and several times cheaper to
build, which matters on the backtest hot path.

Structs here are declared `gc=False`: they hold only scalars, strings and immutable
containers, so they cannot be part of a reference cycle, and untracked they cost the
cyclic collector nothing (fewer and shorter pauses on the hot path).
"""

from __future__ import annotations

import msgspec

from quantdesk.model.fill import Fill


class OrderAccepted(msgspec.Struct, frozen=True, gc=False):
    client_order_id: str
    venue_order_id: str
    ts_event: int


class OrderTriggered(msgspec.Struct, frozen=True, gc=False):
    """A stop-limit's stop was touched: it now rests as a limit order."""

    client_order_id: str
    ts_event: int


class OrderFilled(msgspec.Struct, frozen=True, gc=False):
    fill: Fill

    @property
    def client_order_id(self) -> str:
        return self.fill.client_order_id


class OrderCanceled(msgspec.Struct, frozen=True, gc=False):
    client_order_id: str
    ts_event: int
    reason: str = ""


class OrderRejected(msgspec.Struct, frozen=True, gc=False):
    """An explicit refusal by the venue (or our own pre-send check), with its reason."""

    client_order_id: str
    ts_event: int
    reason: str


class OrderExpired(msgspec.Struct, frozen=True, gc=False):
    client_order_id: str
    ts_event: int
    reason: str = ""


OrderEvent = OrderAccepted | OrderTriggered | OrderFilled | OrderCanceled | OrderRejected | OrderExpired
