"""The in-flight order tracker: what we think is working, compared with what the venue says.

`orphaned` lists orders the venue has open that we do not know as open (placed
by hand, or lost in a crash); `shadows` lists orders we think open that the
venue does not (filled, cancelled or never received). Reconciliation acts on
both at start and periodically.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from quantdesk.model import Order, OrderStatus
from quantdesk.venues.base import VenueOrderState

# Enum members as C statics: compiled, `Side.BUY` is a call of EnumType's __getattr__ hook
# on Python 3.11 (~80 ns); see _compiled.py.
_UNKNOWN: Final = OrderStatus.UNKNOWN


@dataclass(frozen=True, slots=True)
class TrackerStats:
    """Counts for the status endpoint: orders by state, and how many are in flight."""

    total: int
    in_flight: int
    unknown: int
    by_status: Mapping[str, int]


class OrderTracker:
    """Answers questions about the orders an `OrderManager` holds, by client order id."""

    def __init__(self, orders: Mapping[str, Order]) -> None:
        self._orders = orders

    def in_flight(self) -> list[Order]:
        """Orders that may still be working at the venue (submitted, accepted, unknown, ...)."""
        return [order for order in self._orders.values() if order.is_open]

    def orphaned(self, snapshot: Iterable[VenueOrderState]) -> list[VenueOrderState]:
        """Orders open at the venue that we do not hold as open."""
        orphans = []
        for state in snapshot:
            if not state.is_open:
                continue
            ours = self._orders.get(state.client_order_id)
            if ours is None or not ours.is_open:
                orphans.append(state)
        return orphans

    def shadows(self, snapshot: Iterable[VenueOrderState]) -> list[Order]:
        """Orders we hold as open that the venue's snapshot does not show open."""
        open_at_venue = {state.client_order_id for state in snapshot if state.is_open}
        return [
            order
            for order in self._orders.values()
            if order.is_open and order.client_order_id not in open_at_venue
        ]

    def stats(self) -> TrackerStats:
        by_status: dict[str, int] = {}
        for order in self._orders.values():
            by_status[order.status.value] = by_status.get(order.status.value, 0) + 1
        in_flight = sum(1 for order in self._orders.values() if order.is_open)
        return TrackerStats(
            total=len(self._orders),
            in_flight=in_flight,
            unknown=by_status.get(_UNKNOWN.value, 0),
            by_status=dict(sorted(by_status.items())),
        )
