"""Order management: turns entry and exit intents into orders, drives their state machine, keeps brackets.

A bracket here is the simple form the core engine needs: once an entry fills
(fully or partly), a protective stop and at most one target are placed for the
filled quantity; when one of them fills the other is cancelled; an exit
cancels both and closes at market. The trading-pipeline issue grows this into
the full OCO manager.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import msgspec

from quantdesk.clock import Clock
from quantdesk.execution.event_log import EventLog
from quantdesk.model import (
    Fill,
    Instrument,
    Order,
    OrderAccepted,
    OrderCanceled,
    OrderEvent,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderStatus,
    OrderTriggered,
    OrderType,
    Side,
    TimeInForce,
)
from quantdesk.venues.base import Venue

_ZERO = Decimal(0)


class Bracket(msgspec.Struct, eq=False):
    """An entry and the exits that protect it; children die with the group."""

    group_id: str
    strategy: str
    symbol: str
    side: Side
    entry_id: str
    stop: Decimal | None
    target: Decimal | None
    stop_id: str | None = None
    target_id: str | None = None
    closed: bool = False
    child_ids: list[str] = msgspec.field(default_factory=list)


FillHandler = Callable[[Order, Fill], None]
OrderHandler = Callable[[Order], None]


class OrderManager:
    """Creates, submits and tracks orders; the only code that talks to the venue.

    Client order ids are deterministic (`<prefix><sequence>`), so the same run
    produces the same ids; a duplicate venue event (same execution id) is ignored.
    """

    def __init__(
        self,
        venue: Venue,
        instruments: dict[str, Instrument],
        clock: Clock,
        event_log: EventLog,
        *,
        on_fill: FillHandler,
        on_order_update: OrderHandler,
        id_prefix: str = "Q",
        time_in_force: TimeInForce = TimeInForce.GTC,
    ) -> None:
        self._venue = venue
        self._instruments = instruments
        self._clock = clock
        self._log = event_log
        self._on_fill = on_fill
        self._on_order_update = on_order_update
        self._prefix = id_prefix
        self._tif = time_in_force
        self._sequence = 0
        self.orders: dict[str, Order] = {}
        self._strategy_of: dict[str, str] = {}
        self._bracket_of: dict[str, Bracket] = {}
        self._open_brackets: dict[tuple[str, str], list[Bracket]] = {}
        self._execution_ids: set[str] = set()
        self._handlers: dict[type, Callable[[Order, Any], None]] = {
            OrderAccepted: self._on_accepted,
            OrderTriggered: self._on_triggered,
            OrderRejected: self._on_rejected,
            OrderCanceled: self._on_canceled,
            OrderExpired: self._on_expired,
        }
        venue.connect(self)

    # -- commands -----------------------------------------------------------------------------

    def enter(
        self,
        strategy: str,
        symbol: str,
        side: Side,
        qty: Decimal,
        *,
        entry: Decimal | None = None,
        stop: Decimal | None = None,
        target: Decimal | None = None,
    ) -> Order:
        """Submit an entry (market, or limit at `entry`) whose fills will get a stop and target."""
        instrument = self._instruments[symbol]
        price = instrument.round_price(entry, side) if entry is not None else None
        order = self._new_order(
            strategy,
            symbol,
            side,
            qty,
            OrderType.LIMIT if price is not None else OrderType.MARKET,
            price=price,
            tag="ENTRY",
        )
        bracket = Bracket(
            group_id=order.client_order_id,
            strategy=strategy,
            symbol=symbol,
            side=side,
            entry_id=order.client_order_id,
            stop=instrument.price(stop) if stop is not None else None,
            target=instrument.round_price(target, side.opposite) if target is not None else None,
        )
        self._bracket_of[order.client_order_id] = bracket
        self._open_brackets.setdefault((strategy, symbol), []).append(bracket)
        self._submit(order)
        return order

    def exit(self, strategy: str, symbol: str, position_qty: Decimal, reason: str = "") -> Order | None:
        """Cancel the strategy's working orders in `symbol` and close `position_qty` at market."""
        for bracket in self._open_brackets.pop((strategy, symbol), []):
            bracket.closed = True
            for client_order_id in (bracket.entry_id, *bracket.child_ids):
                self.cancel(client_order_id)
        if position_qty == 0:
            return None
        side = Side.SELL if position_qty > 0 else Side.BUY
        order = self._new_order(
            strategy, symbol, side, abs(position_qty), OrderType.MARKET, tag="EXIT", reason=reason
        )
        self._submit(order)
        return order

    def cancel(self, client_order_id: str) -> None:
        order = self.orders.get(client_order_id)
        if order is None or not order.is_open or order.status is OrderStatus.PENDING_CANCEL:
            return
        order.transition(OrderStatus.PENDING_CANCEL, self._clock.now_ns())
        self._venue.cancel_order(client_order_id)

    def working_orders(self, symbol: str | None = None) -> list[Order]:
        return [o for o in self.orders.values() if o.is_open and (symbol is None or o.symbol == symbol)]

    # -- venue events -------------------------------------------------------------------------

    def on_order_event(self, event: OrderEvent) -> None:
        order = self.orders.get(event.client_order_id)
        if order is None:
            self._log.record(f"unknown_order_event {event.client_order_id}")
            return
        if type(event) is OrderFilled:
            self._handle_fill(order, event.fill)
            return
        if order.is_terminal:
            return  # A late duplicate of a terminal answer changes nothing.
        self._handlers[type(event)](order, event)
        self._on_order_update(order)

    def _on_accepted(self, order: Order, event: OrderAccepted) -> None:
        if order.status in (OrderStatus.SUBMITTED, OrderStatus.UNKNOWN):
            order.venue_order_id = event.venue_order_id
            order.transition(OrderStatus.ACCEPTED, event.ts_event)
            self._log.record(f"accepted {order.client_order_id} {event.ts_event}")

    def _on_triggered(self, order: Order, event: OrderTriggered) -> None:
        if order.can_transition(OrderStatus.TRIGGERED):
            order.transition(OrderStatus.TRIGGERED, event.ts_event)

    def _on_rejected(self, order: Order, event: OrderRejected) -> None:
        order.transition(OrderStatus.REJECTED, event.ts_event, event.reason)
        self._log.record(f"rejected {order.client_order_id} {event.ts_event} {event.reason}")
        self._on_child_gone(order)

    def _on_canceled(self, order: Order, event: OrderCanceled) -> None:
        order.transition(OrderStatus.CANCELED, event.ts_event, event.reason)
        self._log.record(f"canceled {order.client_order_id} {event.ts_event}")

    def _on_expired(self, order: Order, event: OrderExpired) -> None:
        order.transition(OrderStatus.EXPIRED, event.ts_event, event.reason)
        self._log.record(f"expired {order.client_order_id} {event.ts_event}")

    # -- internals ----------------------------------------------------------------------------

    def _new_order(
        self,
        strategy: str,
        symbol: str,
        side: Side,
        qty: Decimal,
        order_type: OrderType,
        *,
        price: Decimal | None = None,
        stop_price: Decimal | None = None,
        tag: str,
        reason: str = "",
    ) -> Order:
        self._sequence += 1
        client_order_id = f"{self._prefix}{self._sequence}"
        order = Order(
            client_order_id=client_order_id,
            symbol=symbol,
            side=side,
            order_type=order_type,
            qty=qty,
            price=price,
            stop_price=stop_price,
            time_in_force=self._tif,
            tag=tag,
            ts_created=self._clock.now_ns(),
            reason=reason,
        )
        self.orders[client_order_id] = order
        self._strategy_of[client_order_id] = strategy
        return order

    def _submit(self, order: Order) -> None:
        now = self._clock.now_ns()
        check = self._instruments[order.symbol].validate_order(order.qty, order.price, order.side)
        self._log.record(
            f"submit {order.client_order_id} {order.symbol} {order.side.value} "
            f"{order.order_type.value} {order.qty} {order.price} {order.stop_price} {order.tag} {now}"
        )
        if not check:
            order.transition(OrderStatus.REJECTED, now, check.reason)
            self._log.record(f"rejected {order.client_order_id} {now} {check.reason}")
            self._on_order_update(order)
            return
        order.transition(OrderStatus.PENDING_SUBMIT, now)
        order.transition(OrderStatus.SUBMITTED, now)
        self._venue.submit_order(order)

    def _handle_fill(self, order: Order, fill: Fill) -> None:
        if fill.execution_id in self._execution_ids:
            return
        self._execution_ids.add(fill.execution_id)
        if order.can_transition(OrderStatus.PARTIALLY_FILLED) or order.can_transition(OrderStatus.FILLED):
            order.apply_fill(fill.qty, fill.price, fill.fee, fill.ts_event)
        else:
            # The venue executed it after we saw the order end (a fill racing a cancel):
            # the trade happened, so the portfolio must book it; the order stays as it was.
            self._log.record(f"late_fill {order.client_order_id} {fill.execution_id} {order.status.value}")
        self._log.record(
            f"fill {order.client_order_id} {fill.execution_id} {fill.qty} {fill.price} "
            f"{fill.fee} {fill.ts_event}"
        )
        self._on_fill(order, fill)
        bracket = self._bracket_of.get(order.client_order_id)
        if bracket is not None and not bracket.closed:
            if order.client_order_id == bracket.entry_id:
                self._protect(bracket, fill.qty)
            else:
                self._on_child_fill(bracket, order, fill.qty)
        self._on_order_update(order)

    def _protect(self, bracket: Bracket, qty: Decimal) -> None:
        """Place (or grow) the stop and the target for a new entry fill of `qty`."""
        exit_side = bracket.side.opposite
        if bracket.stop is not None:
            self._grow_child(bracket, "stop_id", OrderType.STOP, exit_side, qty, stop=bracket.stop)
        if bracket.target is not None:
            self._grow_child(bracket, "target_id", OrderType.LIMIT, exit_side, qty, price=bracket.target)

    def _grow_child(
        self,
        bracket: Bracket,
        slot: str,
        order_type: OrderType,
        side: Side,
        qty: Decimal,
        *,
        price: Decimal | None = None,
        stop: Decimal | None = None,
    ) -> None:
        existing_id = getattr(bracket, slot)
        if existing_id is not None:
            existing = self.orders[existing_id]
            if existing.is_open:
                qty += existing.leaves_qty
                self.cancel(existing_id)
        child = self._new_order(
            bracket.strategy,
            bracket.symbol,
            side,
            qty,
            order_type,
            price=price,
            stop_price=stop,
            tag="STOP" if order_type is OrderType.STOP else "TP1",
        )
        setattr(bracket, slot, child.client_order_id)
        bracket.child_ids.append(child.client_order_id)
        self._bracket_of[child.client_order_id] = bracket
        self._submit(child)

    def _on_child_fill(self, bracket: Bracket, child: Order, qty: Decimal) -> None:
        sibling_id = bracket.target_id if child.client_order_id == bracket.stop_id else bracket.stop_id
        if sibling_id is None:
            if child.status is OrderStatus.FILLED:
                self._close_bracket(bracket)
            return
        sibling = self.orders[sibling_id]
        if not sibling.is_open:
            return
        if child.status is OrderStatus.FILLED and sibling.leaves_qty <= qty:
            self._close_bracket(bracket)
            return
        # A partial exit: shrink the sibling to what is left of the position.
        remaining = sibling.leaves_qty - qty
        slot = "stop_id" if sibling_id == bracket.stop_id else "target_id"
        self.cancel(sibling_id)
        if remaining > 0:
            replacement = self._new_order(
                bracket.strategy,
                bracket.symbol,
                sibling.side,
                remaining,
                sibling.order_type,
                price=sibling.price,
                stop_price=sibling.stop_price,
                tag=sibling.tag,
            )
            setattr(bracket, slot, replacement.client_order_id)
            bracket.child_ids.append(replacement.client_order_id)
            self._bracket_of[replacement.client_order_id] = bracket
            self._submit(replacement)

    def _close_bracket(self, bracket: Bracket) -> None:
        bracket.closed = True
        for client_order_id in (bracket.entry_id, *bracket.child_ids):
            self.cancel(client_order_id)
        brackets = self._open_brackets.get((bracket.strategy, bracket.symbol))
        if brackets is not None and bracket in brackets:
            brackets.remove(bracket)

    def _on_child_gone(self, order: Order) -> None:
        bracket = self._bracket_of.get(order.client_order_id)
        if bracket is None or bracket.closed or order.client_order_id == bracket.entry_id:
            return
        if order.client_order_id == bracket.stop_id:
            # A refused stop must not leave a naked position: close it at market.
            self._log.record(f"stop_rejected_flatten {order.client_order_id}")
            filled = self.orders[bracket.entry_id].filled_qty
            self._close_bracket(bracket)
            if filled > 0:
                exit_order = self._new_order(
                    bracket.strategy,
                    bracket.symbol,
                    bracket.side.opposite,
                    filled,
                    OrderType.MARKET,
                    tag="EXIT",
                    reason="protective stop rejected",
                )
                self._submit(exit_order)

    def strategy_of(self, client_order_id: str) -> str:
        return self._strategy_of.get(client_order_id, "")

    def has_working(self, strategy: str, symbol: str) -> bool:
        return bool(self._open_brackets.get((strategy, symbol)))

    @property
    def submitted_count(self) -> int:
        return self._sequence

    def filled_quantity(self) -> Decimal:
        return sum((o.filled_qty for o in self.orders.values()), _ZERO)
