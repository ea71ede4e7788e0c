"""Order: an order's identity, terms and life cycle, moved only through a transition table.

Structs here are declared `gc=False`: they hold only scalars, strings and immutable
containers, so they cannot be part of a reference cycle, and untracked they cost the
cyclic collector nothing (fewer and shorter pauses on the hot path).
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from quantdesk.model.enums import OPEN_STATUSES, TERMINAL_STATUSES, OrderStatus, OrderType, Side, TimeInForce

S = OrderStatus
_ZERO = Decimal(0)

# Every legal move. A cancel that the venue refuses returns PENDING_CANCEL to a
# working state, and a fill may race a cancel, so those edges exist on purpose.
_WORKING = {S.ACCEPTED, S.TRIGGERED, S.PARTIALLY_FILLED}
TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.INITIALIZED: frozenset({S.PENDING_SUBMIT, S.REJECTED}),
    S.PENDING_SUBMIT: frozenset({S.SUBMITTED, S.REJECTED, S.UNKNOWN}),
    S.SUBMITTED: frozenset(
        {
            S.ACCEPTED,
            S.REJECTED,
            S.UNKNOWN,
            S.TRIGGERED,
            S.PARTIALLY_FILLED,
            S.FILLED,
            S.CANCELED,
            S.EXPIRED,
        }
    ),
    S.UNKNOWN: frozenset(
        {S.ACCEPTED, S.REJECTED, S.TRIGGERED, S.PARTIALLY_FILLED, S.FILLED, S.CANCELED, S.EXPIRED}
    ),
    S.ACCEPTED: frozenset(
        {S.TRIGGERED, S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.CANCELED, S.EXPIRED}
    ),
    S.TRIGGERED: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.CANCELED, S.EXPIRED}),
    S.PARTIALLY_FILLED: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.CANCELED, S.EXPIRED}),
    S.PENDING_CANCEL: frozenset({S.CANCELED, S.PARTIALLY_FILLED, S.FILLED, S.EXPIRED} | _WORKING),
    S.FILLED: frozenset(),
    S.CANCELED: frozenset(),
    S.REJECTED: frozenset(),
    S.EXPIRED: frozenset(),
}


class IllegalTransition(Exception):
    """An order was asked to move to a state its current state cannot reach: a bug, never a refusal."""


class Order(msgspec.Struct, eq=False, gc=False):
    """One order, from creation to a terminal state.

    Terms (side, type, quantity, prices) are fixed at creation; status, filled
    quantity and average price change only through `transition` and `apply_fill`.
    """

    client_order_id: str
    symbol: str
    side: Side
    order_type: OrderType
    qty: Decimal
    price: Decimal | None = None
    stop_price: Decimal | None = None
    time_in_force: TimeInForce = TimeInForce.DAY
    tag: str = ""
    ts_created: int = 0
    status: OrderStatus = OrderStatus.INITIALIZED
    venue_order_id: str = ""
    # One shared zero (Decimals are immutable): a default factory would be a call per order.
    filled_qty: Decimal = _ZERO
    avg_fill_price: Decimal = _ZERO
    fees: Decimal = _ZERO
    reason: str = ""
    ts_last: int = 0

    @property
    def leaves_qty(self) -> Decimal:
        return self.qty - self.filled_qty

    # The status sets directly, not `OrderStatus.is_terminal`/`is_open`: one call instead of two,
    # asked several times per order on the hot path.
    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    def can_transition(self, status: OrderStatus) -> bool:
        return status in TRANSITIONS[self.status]

    def transition(self, status: OrderStatus, ts: int, reason: str = "") -> None:
        """Move to `status`, or raise `IllegalTransition` naming both states."""
        if status not in TRANSITIONS[self.status]:
            raise IllegalTransition(
                f"order {self.client_order_id}: {self.status.value} -> {status.value} is not allowed"
            )
        self.status = status
        self.ts_last = ts
        if reason:
            self.reason = reason

    def apply_late_fill(self, qty: Decimal, price: Decimal, fee: Decimal, ts: int) -> None:
        """Record an execution the venue reports after this order ended (a fill that raced a
        cancel): the quantity, price and fees change, the status stays — "cancelled, partly
        filled", as brokers report it. More than what was left is refused, as by `apply_fill`."""
        if qty <= 0 or qty > self.qty - self.filled_qty:
            raise IllegalTransition(
                f"order {self.client_order_id}: late fill of {qty} against leaves {self.leaves_qty}"
            )
        new_filled = self.filled_qty + qty
        self.avg_fill_price = (self.avg_fill_price * self.filled_qty + price * qty) / new_filled
        self.filled_qty = new_filled
        self.fees += fee
        self.ts_last = ts

    def apply_fill(self, qty: Decimal, price: Decimal, fee: Decimal, ts: int) -> None:
        """Record an execution: quantity, volume-weighted average price, fees and the new status."""
        if qty <= 0:
            raise ValueError(f"order {self.client_order_id}: fill quantity must be positive")
        if qty > self.qty - self.filled_qty:  # leaves_qty
            raise IllegalTransition(
                f"order {self.client_order_id}: fill of {qty} exceeds leaves {self.leaves_qty}"
            )
        new_filled = self.filled_qty + qty
        # Transition first: a fill the state forbids (on a cancelled order, say) must change nothing.
        self.transition(OrderStatus.FILLED if new_filled == self.qty else OrderStatus.PARTIALLY_FILLED, ts)
        self.avg_fill_price = (self.avg_fill_price * self.filled_qty + price * qty) / new_filled
        self.filled_qty = new_filled
        self.fees += fee
