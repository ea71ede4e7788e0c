"""Order management: approved plans become orders with deterministic client ids, and OCO groups
keep every filled entry protected.

An OCO group is an entry with its protective stop and up to two targets. On
every entry fill (full or partial) the children are sized to what is filled; a
target fill shrinks the stop to what remains (and may move it to break-even);
when the position is closed by any child the siblings are cancelled; a refused
stop closes the position at market; if two children fill in a race and the
position overshoots, the overfill is bought or sold back at market; a closing
market order that ends unfilled is sent again (a bounded number of times, then
the stop goes back on); a fill reported after its order's cancel is booked and,
its group closed, closed at market. Under STOP_RESTING only the stop rests and
targets are released when market data touches them. Nothing outlives its group.
Every order id is issued once by the `ClientIdRegistry` and never submitted twice:
a replaced child gets a new attempt number.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from enum import StrEnum
from typing import Any, Final, Protocol

from quantdesk.clock import Clock
from quantdesk.errors import RetryableError
from quantdesk.execution.client_ids import ClientIdRegistry, Leg, plan_client_id
from quantdesk.execution.event_log import EventLog
from quantdesk.execution.throttle import Throttler
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
from quantdesk.model.enums import OPEN_STATUSES, TERMINAL_STATUSES
from quantdesk.model.orders import TRANSITIONS
from quantdesk.venues.base import Venue, VenueOrderState

# Enum members as C statics: compiled, `Side.BUY` is a call of EnumType's __getattr__ hook
# on Python 3.11 (~80 ns); see _compiled.py.
_LEG_ENTRY: Final = Leg.ENTRY
_LEG_EXIT: Final = Leg.EXIT
_LEG_STOP: Final = Leg.STOP
_LEG_TP1: Final = Leg.TP1
_LEG_TP2: Final = Leg.TP2
_ACCEPTED: Final = OrderStatus.ACCEPTED
_CANCELED: Final = OrderStatus.CANCELED
_EXPIRED: Final = OrderStatus.EXPIRED
_FILLED: Final = OrderStatus.FILLED
_PARTIALLY_FILLED: Final = OrderStatus.PARTIALLY_FILLED
_PENDING_CANCEL: Final = OrderStatus.PENDING_CANCEL
_PENDING_SUBMIT: Final = OrderStatus.PENDING_SUBMIT
_REJECTED: Final = OrderStatus.REJECTED
_SUBMITTED: Final = OrderStatus.SUBMITTED
_TRIGGERED: Final = OrderStatus.TRIGGERED
_UNKNOWN: Final = OrderStatus.UNKNOWN
_LIMIT: Final = OrderType.LIMIT
_MARKET: Final = OrderType.MARKET
_STOP: Final = OrderType.STOP
_BUY: Final = Side.BUY
_SELL: Final = Side.SELL

_ZERO: Final = Decimal(0)
# Leg tags as plain strings: an order's tag is compared on every event it gets, and each
# `Leg.X.value` would be a descriptor call.
_STOP_TAG: Final = _LEG_STOP.value
_TP1_TAG: Final = _LEG_TP1.value
_TP2_TAG: Final = _LEG_TP2.value
_EXIT_TAG: Final = _LEG_EXIT.value
_TAG_OF_LEG: Final = {leg: leg.value for leg in Leg}
# Neither open at the venue nor booked for a later throttle slot (PENDING_SUBMIT, still ours to
# cancel): what `working_orders` drops from its index.
_NOT_WORKING: Final = frozenset(OrderStatus) - OPEN_STATUSES - {_PENDING_SUBMIT}
# A closed group's market close is retried this often; then the protective stop goes back on.
MAX_EXIT_ATTEMPTS: Final = 3


class ExitPolicy(StrEnum):
    """How a group's exits rest at the venue (DESIGN section 6).

    BOTH_RESTING: stop and targets all rest (simulated exchange, Kite).
    STOP_RESTING: only the stop rests; targets are held here and released when
    touched — for venues that refuse exits exceeding the position (Alpaca).
    """

    BOTH_RESTING = "both_resting"
    STOP_RESTING = "stop_resting"


_STOP_RESTING: Final = ExitPolicy.STOP_RESTING


def _advance(order: Order, status: OrderStatus, ts: int) -> None:
    """`order.transition(status, ts)` for the per-order path: compiled, a C call, not a Python method.

    Anything the state machine forbids goes to `Order.transition` itself, which raises."""
    if status not in TRANSITIONS[order.status]:
        order.transition(status, ts)
    order.status = status
    order.ts_last = ts


def _fill_order(order: Order, qty: Decimal, price: Decimal, fee: Decimal, ts: int) -> None:
    """`order.apply_fill(...)` for the per-fill path, compiled; what the method would refuse goes to
    the method itself, which raises naming the order and changes nothing."""
    filled = order.filled_qty
    if qty <= _ZERO or qty > order.qty - filled:
        order.apply_fill(qty, price, fee, ts)
        return
    new_filled = filled + qty
    _advance(order, _FILLED if new_filled == order.qty else _PARTIALLY_FILLED, ts)
    order.avg_fill_price = (order.avg_fill_price * filled + price * qty) / new_filled
    order.filled_qty = new_filled
    order.fees += fee


def _opposite(side: Side) -> Side:
    """`side.opposite`, compiled: the property is Python code run per child order."""
    return _SELL if side is _BUY else _BUY


class OcoGroup:
    """An entry and the exits that protect it.

    A plain class, not a msgspec Struct: compiled, its fields are C slots, read and written
    several times per order event.
    """

    def __init__(
        self,
        *,
        plan_id: str,
        strategy: str,
        symbol: str,
        side: Side,
        entry_id: str,
        stop: Decimal | None,
        targets: tuple[Decimal, ...],
        tp1_share: Decimal,
        break_even: bool,
    ) -> None:
        self.plan_id = plan_id
        self.strategy = strategy
        self.symbol = symbol
        self.side = side
        self.entry_id = entry_id
        self.stop = stop
        self.targets = targets
        self.tp1_share = tp1_share
        self.break_even = break_even
        self.entry_filled = _ZERO
        self.entry_cost = _ZERO
        # Net quantity closed by the group's own exit fills (a buy-back of an overfill counts negative).
        self.exited = _ZERO
        # What a strategy-level exit or flatten took over closing when it closed the group: its
        # market order is not the group's, so its fills are not in `exited`.
        self.flattened = _ZERO
        self.tp_filled: list[Decimal] = [_ZERO, _ZERO]
        self.stop_id: str | None = None
        self.tp_ids: list[str | None] = [None, None]
        self.exit_ids: list[str] = []
        self.closed = False
        # STOP_RESTING: a held target the price touched, waiting for the stop to shrink before it goes.
        self.releasing: list[bool] = [False, False]
        # Closing exits of the group that ended unfilled (refused, expired, cancelled by the venue).
        self.exit_failures = 0

    def __repr__(self) -> str:
        return (
            f"OcoGroup(plan_id={self.plan_id!r}, symbol={self.symbol!r}, side={self.side.value}, "
            f"entry_filled={self.entry_filled}, exited={self.exited}, flattened={self.flattened}, "
            f"stop_id={self.stop_id!r}, tp_ids={self.tp_ids!r}, exit_ids={self.exit_ids!r}, "
            f"closed={self.closed})"
        )

    @property
    def open_qty(self) -> Decimal:
        return self.entry_filled - self.exited - self.flattened

    def member_ids(self) -> list[str]:
        ids = [self.entry_id, *self.exit_ids]
        if self.stop_id is not None:
            ids.append(self.stop_id)
        ids.extend(i for i in self.tp_ids if i is not None)
        return ids


FillHandler = Callable[[Order, Fill], None]
OrderHandler = Callable[[Order], None]
AlertHandler = Callable[[str, str], None]


class BeforeSend(Protocol):
    """Commits the order's row before the venue call; a RetryableError means: do not send."""

    def __call__(self, order: Order, *, strategy: str, plan_id: str) -> None: ...


class OrderManager:
    """Creates, submits and tracks orders; the only code that talks to the venue about orders."""

    def __init__(
        self,
        venue: Venue,
        instruments: dict[str, Instrument],
        clock: Clock,
        event_log: EventLog,
        *,
        on_fill: FillHandler,
        on_order_update: OrderHandler,
        on_alert: AlertHandler | None = None,
        time_in_force: TimeInForce = TimeInForce.GTC,
        tp1_share: Decimal = Decimal("0.5"),
        break_even_after_tp1: bool = False,
        exit_policy: ExitPolicy = ExitPolicy.BOTH_RESTING,
        before_send: BeforeSend | None = None,
        throttler: Throttler | None = None,
        throttle_limit: str = "orders",
    ) -> None:
        self._venue = venue
        self._instruments = instruments
        self._clock = clock
        self._log = event_log
        self._on_fill = on_fill
        self._on_order_update = on_order_update
        self._on_alert = on_alert
        self._tif = time_in_force
        self._tp1_share = tp1_share
        self._break_even = break_even_after_tp1
        self.exit_policy = exit_policy
        self._before_send = before_send
        # Order submissions wait for (or are refused by) the venue's rate limits; cancels are
        # never throttled here: they protect positions and brokers give them their own budget.
        self._throttler = throttler
        self._throttle_limit = throttle_limit
        self.ids = ClientIdRegistry(venue.capabilities)
        self.orders: dict[str, Order] = {}
        self._strategy_of: dict[str, str] = {}
        self._group_of: dict[str, OcoGroup] = {}
        self._open_groups: dict[tuple[str, str], list[OcoGroup]] = {}
        self._execution_ids: set[str] = set()
        self._replaced: set[str] = set()
        self._last_plan: dict[tuple[str, str], str] = {}
        # Orders not known to be terminal; pruned lazily by `working_orders`.
        self._working: dict[str, Order] = {}
        self._cancel_requested: set[str] = set()
        self.alerts: list[tuple[str, str]] = []
        # STOP_RESTING: groups holding a target not yet released, by symbol. Empty otherwise, so
        # the engine's per-bar check of it costs one truth test.
        self._held: dict[str, list[OcoGroup]] = {}
        # A strategy exit's share of each group it took over, given back if the exit is refused.
        self._exit_shares: dict[str, list[tuple[OcoGroup, Decimal]]] = {}
        # How many times a strategy exit (no group) has been sent again after a refusal.
        self._exit_attempts: dict[str, int] = {}
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
        plan_id: str,
        entry: Decimal | None = None,
        stop: Decimal | None = None,
        targets: tuple[Decimal, ...] = (),
    ) -> Order:
        """Submit an approved entry (market, or limit at `entry`); its fills get a stop and targets.

        Only the trading pipeline calls this, after the risk gate approved the plan.
        """
        instrument = self._instruments[symbol]
        exit_side = _opposite(side)
        price = instrument.round_price(entry, side) if entry is not None else None
        order = self._new_order(
            strategy,
            symbol,
            side,
            qty,
            _LIMIT if price is not None else _MARKET,
            plan_id=plan_id,
            leg=_LEG_ENTRY,
            price=price,
        )
        group = OcoGroup(
            plan_id=plan_id,
            strategy=strategy,
            symbol=symbol,
            side=side,
            entry_id=order.client_order_id,
            stop=instrument.price(stop) if stop is not None else None,
            targets=tuple([instrument.round_price(t, exit_side) for t in targets[:2]]) if targets else (),
            tp1_share=self._tp1_share,
            break_even=self._break_even,
        )
        self._group_of[order.client_order_id] = group
        self._open_groups.setdefault((strategy, symbol), []).append(group)
        self._last_plan[(strategy, symbol)] = plan_id
        self._submit(order)
        return order

    def exit(self, strategy: str, symbol: str, position_qty: Decimal, reason: str = "") -> Order | None:
        """Cancel the strategy's working orders in `symbol` and close `position_qty` at market.

        Idempotent: while an exit for the position is already working, no second one is sent.
        """
        groups = self._open_groups.pop((strategy, symbol), [])
        return self._exit_groups(strategy, symbol, groups, position_qty, reason)

    def finish_exit(
        self, groups: Sequence[OcoGroup], position_qty: Decimal, reason: str = ""
    ) -> Order | None:
        """Finish an exit a restart interrupted: `groups` (one strategy's, in one symbol) were being
        closed; their children are cancelled and `position_qty` — what they still hold together —
        is closed at market, net of the exits already working. The strategy's other groups stay."""
        if not groups:
            return None
        strategy, symbol = groups[0].strategy, groups[0].symbol
        kept = [g for g in self._open_groups.get((strategy, symbol), []) if g not in groups]
        if kept:
            self._open_groups[(strategy, symbol)] = kept
        else:
            self._open_groups.pop((strategy, symbol), None)
        return self._exit_groups(strategy, symbol, list(groups), position_qty, reason)

    def _exit_groups(
        self, strategy: str, symbol: str, groups: list[OcoGroup], position_qty: Decimal, reason: str
    ) -> Order | None:
        plan_id = groups[-1].plan_id if groups else ""
        shares: list[tuple[OcoGroup, Decimal]] = []
        for group in groups:
            group.closed = True
            for client_order_id in group.member_ids():
                if self.orders[client_order_id].tag != _EXIT_TAG:
                    self.cancel(client_order_id)
            # The order below closes what the group holds beyond its own working exits; a late
            # fill of the entry or of a child then shows up against this share, not twice.
            closes, buybacks = self._pending_exits(group)
            share = group.open_qty - closes + buybacks
            group.flattened += share
            if share > 0:
                shares.append((group, share))
        pending = _ZERO  # what the strategy's working exits in `symbol` will still buy (+) or sell (-)
        strategy_of = self._strategy_of
        for o in self.working_orders(symbol):
            if o.tag == _EXIT_TAG and strategy_of[o.client_order_id] == strategy:
                leaves = o.qty - o.filled_qty
                pending = pending + leaves if o.side is _BUY else pending - leaves
        remaining = position_qty + pending
        if remaining == 0 or (remaining > 0) != (position_qty > 0):
            # Working exits already cover the position (or more): an exit never opens the other
            # way on what may still fill; an overfill, once it happens, is corrected by its group.
            return None
        if not plan_id:
            plan_id = self._orphan_plan_id(strategy, symbol, remaining)
        side = _SELL if remaining > 0 else _BUY
        order = self._new_order(
            strategy,
            symbol,
            side,
            abs(remaining),
            _MARKET,
            plan_id=plan_id,
            leg=_LEG_EXIT,
            reason=reason,
        )
        # Only groups this order closes (same closing side) can take a share back.
        shares = [(group, share) for group, share in shares if group.side is not side]
        if shares:
            self._exit_shares[order.client_order_id] = shares
        self._submit(order)
        return order

    def cancel(self, client_order_id: str) -> None:
        order = self.orders.get(client_order_id)
        if order is not None and order.status is _PENDING_SUBMIT:
            self._cancel_requested.add(client_order_id)  # waiting for its throttle slot: never sent
            return
        if order is None or order.status not in OPEN_STATUSES or client_order_id in self._cancel_requested:
            return  # asked once already: a repeat (a second flatten) sends nothing new
        self._cancel_requested.add(client_order_id)
        if order.status not in (_SUBMITTED, _UNKNOWN):
            order.transition(_PENDING_CANCEL, self._clock.now_ns())
        try:
            self._venue.cancel_order(client_order_id)
        except RetryableError as error:
            # The cancel's outcome is unknown: the order stays in doubt until a lookup
            # (`resolve_unknown`) settles it or asks again.
            self._log.record(f"cancel_unknown {client_order_id} {error}")

    def cancel_all(self) -> int:
        """Cancel every working order except closing exits (the first half of a flatten); return
        how many were asked. Exits already working are the flatten's own second half: a repeated
        flatten leaves them alone, so it sends nothing new."""
        working = [o for o in self.working_orders() if o.tag != _EXIT_TAG]
        for order in working:
            group = self._group_of.get(order.client_order_id)
            if group is not None:
                group.closed = True
            self.cancel(order.client_order_id)
        for key, groups in list(self._open_groups.items()):
            for group in groups:
                group.closed = True
            # A group still holding a position stays findable: the `exit` that follows takes it over.
            holding = [group for group in groups if group.open_qty != 0]
            # Close each group's own position: a strategy's groups may net to zero (a late
            # long fill beside a new short) while each side is exposed on its own.
            for group in holding:
                self._settle(group, "flatten")
            if holding:
                self._open_groups[key] = holding
            else:
                del self._open_groups[key]
        return len(working)

    def working_orders(self, symbol: str | None = None) -> list[Order]:
        """Orders that may still work at the venue, oldest first (from an index of open orders,
        so the cost does not grow with the run's history)."""
        working = self._working
        for client_order_id in [cid for cid, o in working.items() if o.status in _NOT_WORKING]:
            del working[client_order_id]
        return [o for o in working.values() if symbol is None or o.symbol == symbol]

    def open_groups(self) -> list[OcoGroup]:
        return [g for groups in self._open_groups.values() for g in groups if not g.closed]

    def stop_for(self, strategy: str, symbol: str) -> Decimal | None:
        """The protective stop price of the strategy's open group in `symbol`, if any."""
        for group in self._open_groups.get((strategy, symbol), ()):
            if not group.closed and group.stop is not None:
                return group.stop
        return None

    def alert(self, kind: str, message: str) -> None:
        """Raise an operator alert (recorded, and sent to the alert handler if there is one)."""
        self._alert(kind, message)

    def resolve_unknown(self) -> int:
        """Settle what a timeout or a dropped connection left in doubt, by asking the venue.

        An order whose submit got no answer (UNKNOWN) is looked up by its client id:
        if the venue has it, its state is taken from there; if it never arrived it is
        marked rejected and, when it was a protective child, replaced under a new id
        (an id is never sent twice). A cancel whose answer was lost (PENDING_CANCEL,
        still open at the venue) is asked again. Returns how many orders changed;
        while the venue is unreachable nothing changes.
        """
        venue = self._venue
        query = getattr(venue, "query_order", None)
        if query is None:
            return 0
        changed = 0
        for order in list(self._working.values()):
            if order.status not in (_UNKNOWN, _PENDING_CANCEL):
                continue
            try:
                state = query(order.client_order_id)
            except RetryableError:
                return changed
            now = self._clock.now_ns()
            if order.status is _UNKNOWN:
                changed += 1
                if state is None:
                    # Not a refusal (only the venue refuses): it never arrived, so it never worked.
                    order.transition(_CANCELED, now, "never reached the venue")
                    self._log.record(f"resolved {order.client_order_id} absent")
                    self._on_order_update(order)
                    self._replace_lost(order)
                    continue
                self._log.record(f"resolved {order.client_order_id} {state.status.value}")
                self._apply_venue_state(order, state.status, state.venue_order_id, now)
            elif state is None or state.status.is_open:
                try:
                    self._cancel_requested.discard(order.client_order_id)
                    self._cancel_requested.add(order.client_order_id)
                    venue.cancel_order(order.client_order_id)
                except RetryableError:
                    return changed
                changed += 1
            else:
                changed += 1
                self._apply_venue_state(order, state.status, state.venue_order_id, now)
        return changed

    def _apply_venue_state(self, order: Order, status: OrderStatus, venue_order_id: str, now: int) -> None:
        if venue_order_id:
            order.venue_order_id = venue_order_id
        if status.is_open:
            if order.status is _UNKNOWN:
                order.transition(_ACCEPTED, now)
        elif status in (_CANCELED, _EXPIRED, _REJECTED):
            if order.can_transition(status):
                order.transition(status, now, "settled by lookup")
                if status is _CANCELED:
                    self._after_cancel(order)
                else:
                    self._on_child_gone(order)
        elif order.status is _UNKNOWN:
            # Filled at the venue: the fills themselves arrive as events (or a later
            # reconciliation); until then the order is known to be working.
            order.transition(_ACCEPTED, now)
        self._on_order_update(order)

    def _replace_lost(self, order: Order) -> None:
        """An order that never reached the venue: protect or close as it was meant to."""
        group = self._group_of.get(order.client_order_id)
        if group is None:
            if order.tag == _EXIT_TAG:
                # A flatten or strategy exit that never arrived: send it again under a new id.
                plan_id = self._last_plan.get((self.strategy_of(order.client_order_id), order.symbol))
                again = self._new_order(
                    self.strategy_of(order.client_order_id),
                    order.symbol,
                    order.side,
                    order.qty,
                    _MARKET,
                    plan_id=plan_id
                    or self._orphan_plan_id(self.strategy_of(order.client_order_id), order.symbol, order.qty),
                    leg=_LEG_EXIT,
                    reason=order.reason,
                )
                self._submit(again)
            return
        if order.tag == _EXIT_TAG:
            self._close_remainder_after_lost_exit(group, order)
        elif order.client_order_id == group.entry_id:
            if group.entry_filled == 0:
                self._close_group(group)
        elif not group.closed:
            self._resize_children(group)

    def _close_remainder_after_lost_exit(self, group: OcoGroup, lost: Order) -> None:
        self._settle(group, lost.reason or "exit re-sent after a lost submit")

    # -- recovery hooks (execution/recovery.py drives them) ---------------------------------------

    @property
    def tp1_share(self) -> Decimal:
        return self._tp1_share

    @property
    def break_even_after_tp1(self) -> bool:
        return self._break_even

    @property
    def venue(self) -> Venue:
        return self._venue

    def trades(self, symbol: str) -> bool:
        """Whether `symbol` is an instrument this manager can place and book orders in."""
        return symbol in self._instruments

    def restore_order(self, order: Order, *, strategy: str) -> None:
        """Take back an order an earlier run created (from the store) or the venue holds: its id is
        reserved for good, and it counts as working while it is open. Nothing is sent or published."""
        client_order_id = order.client_order_id
        self.ids.preload((client_order_id,))
        self.orders[client_order_id] = order
        self._strategy_of[client_order_id] = strategy
        if order.is_open:
            self._working[client_order_id] = order
        if order.status is _PENDING_CANCEL:
            self._cancel_requested.add(client_order_id)

    def restore_group(self, group: OcoGroup, *, members: Iterable[str], replaced: Iterable[str] = ()) -> None:
        """Take back an OCO group rebuilt from its orders: fills of any of `members` (its entry and
        every stop or target it ever had) count for it again, and it is managed from now on.
        `replaced` are earlier children superseded by a newer one of the same leg."""
        for client_order_id in members:
            self._group_of[client_order_id] = group
        self._replaced.update(replaced)
        key = (group.strategy, group.symbol)
        self._open_groups.setdefault(key, []).append(group)
        self._last_plan[key] = group.plan_id

    def remember_executions(self, execution_ids: Iterable[str]) -> None:
        """Executions already booked (by an earlier run): a venue that reports them again changes nothing."""
        self._execution_ids.update(execution_ids)

    def knows_execution(self, execution_id: str) -> bool:
        return execution_id in self._execution_ids

    def managed_groups(self) -> list[OcoGroup]:
        """Every group still managed, closed ones that still hold a position included."""
        return [group for groups in self._open_groups.values() for group in groups]

    def adopt(
        self,
        state: VenueOrderState,
        *,
        strategy: str = "",
        tag: str = "",
        order_type: OrderType = OrderType.MARKET,
        price: Decimal | None = None,
        stop_price: Decimal | None = None,
        reason: str = "",
    ) -> Order:
        """Track an order found at the venue that no run of ours recorded (placed by hand, or ours
        but lost with the store's buffer in a crash). The venue's snapshot gives its symbol, side and
        quantity; the other terms are what the caller knows (nothing is ever sent from them). It is
        taken as ACCEPTED with nothing filled: `apply_missed_fill` and `settle_from_venue` bring it
        to the venue's state."""
        now = self._clock.now_ns()
        order = Order(
            client_order_id=state.client_order_id,
            symbol=state.symbol,
            side=state.side,
            order_type=order_type,
            qty=state.qty,
            price=price,
            stop_price=stop_price,
            time_in_force=self._tif,
            tag=tag,
            ts_created=now,
            status=_ACCEPTED,
            venue_order_id=state.venue_order_id,
            reason=reason or "adopted from the venue",
            ts_last=now,
        )
        self.restore_order(order, strategy=strategy)
        self._log.record(
            f"adopted {order.client_order_id} {order.symbol} {order.side.value} {order.qty} {now}"
        )
        self._on_order_update(order)  # from now on the store knows it too
        return order

    def apply_missed_fill(self, fill: Fill) -> bool:
        """Book an execution the venue made while nobody listened: the order, its group's count and
        the portfolio, but no OCO reaction yet — `resume_group` acts once every missed fill is in,
        so a group is not resized for a state that the next missed fill already changed.
        False for an execution already booked or an order not known."""
        order = self.orders.get(fill.client_order_id)
        if order is None or not self._book_fill(order, fill):
            return False
        self._log.record(f"missed_fill {fill.client_order_id} {fill.execution_id}")
        group = self._group_of.get(order.client_order_id)
        if group is not None:
            if order.client_order_id == group.entry_id:
                _count_entry_fill(group, fill)
            elif order.tag != _EXIT_TAG or order.client_order_id in group.exit_ids:
                self._count_exit_fill(group, order, fill)
        self._on_order_update(order)
        return True

    def settle_from_venue(
        self, client_order_id: str, status: OrderStatus, *, venue_order_id: str = "", reason: str = ""
    ) -> bool:
        """Move an order to the state the venue reports, without OCO reactions (see `apply_missed_fill`).

        An open state makes an order in doubt ACCEPTED; CANCELED, EXPIRED and REJECTED end it (a
        terminal state its own state cannot reach ends it as CANCELED); FILLED is reached only by
        fills. Returns whether the order changed."""
        order = self.orders[client_order_id]
        now = self._clock.now_ns()
        if venue_order_id and not order.venue_order_id:
            order.venue_order_id = venue_order_id
        if status.is_open:
            if order.status not in (_UNKNOWN, _SUBMITTED):
                return False
            order.transition(_ACCEPTED, now)
        elif status in (_CANCELED, _EXPIRED, _REJECTED):
            if order.is_terminal:
                return False
            ended = status if order.can_transition(status) else _CANCELED
            order.transition(ended, now, reason or f"{status.value.lower()} at the venue")
        else:
            return False
        self._cancel_requested.discard(client_order_id)
        self._log.record(f"reconciled {client_order_id} {order.status.value} {now}")
        self._on_order_update(order)
        return True

    def cancel_at_venue(self, client_order_id: str) -> None:
        """Ask the venue to cancel an order whatever we hold of it (one we ended, or never knew)."""
        order = self.orders.get(client_order_id)
        if order is not None and order.is_open and order.can_transition(_PENDING_CANCEL):
            order.transition(_PENDING_CANCEL, self._clock.now_ns())
        self._cancel_requested.add(client_order_id)
        try:
            self._venue.cancel_order(client_order_id)
        except RetryableError as error:
            self._log.record(f"cancel_unknown {client_order_id} {error}")

    def resume_group(self, group: OcoGroup, *, bracket_known: bool = True) -> str:
        """Act once on what a group's orders say after reconciliation, as the fills would have made
        it act: close a group with nothing left open (cancelling its siblings), correct an overfill,
        or make its stop and targets match what is open (placing the ones never placed).

        A filled or working entry whose stop price is unknown (`bracket_known=False`: the plan was
        lost with the crash) cannot be protected: it is closed at market, with an alert.
        Returns "closed", "unprotected", "resumed" (children placed or resized) or "" (in order)."""
        if group.closed:
            issued = len(self.orders)
            self._settle(group, "reconciled after its group closed")
            return "closed" if len(self.orders) > issued else ""
        entry = self.orders[group.entry_id]
        if group.open_qty < 0:
            self._close_group(group)
            self._settle(group, "exits overfilled while away")
            return "closed"
        if group.open_qty == 0 and not entry.is_open:
            self._close_group(group)
            return "closed"
        if not bracket_known:
            action = f"closing {group.open_qty} at market" if group.open_qty else "cancelling its entry"
            self._alert(
                "bracket_unknown",
                f"{group.symbol}: the stop of plan {group.plan_id} is not known after a restart; {action}",
            )
            self._close_group(group)
            self._settle(group, "protective stop unknown after a restart")
            return "unprotected"
        before = (group.stop_id, list(group.tp_ids), len(self.orders))
        self._resize_children(group)
        return "resumed" if (group.stop_id, list(group.tp_ids), len(self.orders)) != before else ""

    # -- venue events -------------------------------------------------------------------------

    def on_order_event(self, event: OrderEvent) -> None:
        if type(event) is OrderFilled:
            fill = event.fill
            order = self.orders.get(fill.client_order_id)
            if order is None:
                self._log.record(f"unknown_order_event {fill.client_order_id}")
                return
            self._handle_fill(order, fill)
            return
        order = self.orders.get(event.client_order_id)
        if order is None:
            self._log.record(f"unknown_order_event {event.client_order_id}")
            return
        if order.status in TERMINAL_STATUSES:
            return  # A late duplicate of a terminal answer changes nothing.
        self._handlers[type(event)](order, event)
        self._on_order_update(order)

    def _on_accepted(self, order: Order, event: OrderAccepted) -> None:
        if order.status in (_SUBMITTED, _UNKNOWN):
            order.venue_order_id = event.venue_order_id
            _advance(order, _ACCEPTED, event.ts_event)
            self._log.record(f"accepted {order.client_order_id} {event.ts_event}")

    def _on_triggered(self, order: Order, event: OrderTriggered) -> None:
        if order.can_transition(_TRIGGERED):
            order.transition(_TRIGGERED, event.ts_event)

    def _on_rejected(self, order: Order, event: OrderRejected) -> None:
        if not order.can_transition(_REJECTED):
            self._log.record(f"late_reject {order.client_order_id} {order.status.value}")
            return
        order.transition(_REJECTED, event.ts_event, event.reason)
        self._log.record(f"rejected {order.client_order_id} {event.ts_event} {event.reason}")
        self._on_child_gone(order)

    def _on_canceled(self, order: Order, event: OrderCanceled) -> None:
        order.transition(_CANCELED, event.ts_event, event.reason)
        self._log.record(f"canceled {order.client_order_id} {event.ts_event}")
        group = self._group_of.get(order.client_order_id)
        # An entry ended with nothing open (never filled, or all closed): nothing left to guard.
        if group is not None and order.client_order_id == group.entry_id and group.open_qty == 0:
            self._close_group(group)
        self._after_cancel(order)

    def _on_expired(self, order: Order, event: OrderExpired) -> None:
        order.transition(_EXPIRED, event.ts_event, event.reason)
        self._log.record(f"expired {order.client_order_id} {event.ts_event}")
        self._on_child_gone(order)

    # -- internals ----------------------------------------------------------------------------

    def _new_order(
        self,
        strategy: str,
        symbol: str,
        side: Side,
        qty: Decimal,
        order_type: OrderType,
        *,
        plan_id: str,
        leg: Leg,
        price: Decimal | None = None,
        stop_price: Decimal | None = None,
        reason: str = "",
    ) -> Order:
        client_order_id = self.ids.issue(plan_id, leg)
        # Positional, in Order's field order: keywords cost a name match per field, per order.
        order = Order(
            client_order_id,
            symbol,
            side,
            order_type,
            qty,
            price,
            stop_price,
            self._tif,
            _TAG_OF_LEG[leg],
            self._clock.now_ns(),
        )
        if reason:
            order.reason = reason
        self.orders[client_order_id] = order
        self._working[client_order_id] = order
        self._strategy_of[client_order_id] = strategy
        return order

    def _submit(self, order: Order) -> None:
        now = self._clock.now_ns()
        check = self._instruments[order.symbol].validate_order(order.qty, order.price, order.side)
        # `str(...)`: the str of a StrEnum is its value, and str of a Decimal (or None) is what
        # formatting writes, without Decimal's and Enum's much slower `__format__`. Not `!s`:
        # compiled, one conversion makes every field of the f-string a `str.format` call.
        self._log.record(
            f"submit {order.client_order_id} {order.symbol} {str(order.side)} {str(order.order_type)} "
            f"{str(order.qty)} {str(order.price)} {str(order.stop_price)} {order.tag} {now}"
        )
        if not check.ok:
            order.transition(_REJECTED, now, check.reason)
            self._log.record(f"rejected {order.client_order_id} {now} {check.reason}")
            self._on_order_update(order)
            self._on_child_gone(order)
            return
        _advance(order, _PENDING_SUBMIT, now)
        if self._before_send is not None:
            try:
                # Persist intent before acting: the order row is committed before the venue call.
                self._before_send(
                    order, strategy=self.strategy_of(order.client_order_id), plan_id=self._plan_of(order)
                )
            except RetryableError as error:
                order.transition(_REJECTED, now, f"not sent: store unavailable ({error})")
                self._log.record(f"not_sent {order.client_order_id} {now} store unavailable")
                self._on_order_update(order)
                self._on_child_gone(order)
                return
        if self._throttler is not None:
            decision = self._throttler.acquire(self._throttle_limit, now)
            if not decision.allowed:
                order.transition(_REJECTED, now, f"throttled: {decision.reason}")
                self._log.record(f"throttled {order.client_order_id} {now} {decision.reason}")
                self._on_order_update(order)
                self._on_child_gone(order)
                return
            if decision.wait_ns > 0:
                # Booked for later: sent when its slot comes, unless cancelled meanwhile.
                self._log.record(f"throttle_wait {order.client_order_id} {now} {decision.wait_ns}")
                self._send_at(order, now + decision.wait_ns)
                return
        self._send(order)

    def _send_at(self, order: Order, at: int) -> None:
        # Its own method: compiled, a lambda in `_submit` would move all of `_submit`'s locals
        # into a heap object, for every order, throttled or not.
        self._clock.set_alarm(f"send {order.client_order_id}", at, lambda _: self._send(order))

    def _send(self, order: Order) -> None:
        now = self._clock.now_ns()
        if order.status != _PENDING_SUBMIT:
            return
        if order.client_order_id in self._cancel_requested:
            # Cancelled while it waited for its throttle slot: it never leaves.
            order.transition(_REJECTED, now, "canceled before it was sent")
            self._on_order_update(order)
            return
        _advance(order, _SUBMITTED, now)
        try:
            self._venue.submit_order(order)
        except RetryableError as error:
            # A timeout or dropped connection: the outcome is unknown, never a rejection.
            # The order stays in flight until a lookup by its client id settles it.
            if order.can_transition(_UNKNOWN):
                order.transition(_UNKNOWN, now, str(error))
            self._log.record(f"unknown {order.client_order_id} {now} {error}")

    def _handle_fill(self, order: Order, fill: Fill) -> None:
        # An order we saw end (a cancel confirmed first): the venue's fill is still the truth.
        late = order.status in TERMINAL_STATUSES
        if not self._book_fill(order, fill):
            return
        group = self._group_of.get(order.client_order_id)
        if group is not None:
            if late and group.closed:
                self._alert(
                    "late_fill",
                    f"{order.symbol}: {order.tag} {order.client_order_id} filled {fill.qty} after it "
                    f"ended ({order.status.value}); its group is closed: what it leaves open is closed "
                    "at market",
                )
            if order.client_order_id == group.entry_id:
                self._on_entry_fill(group, fill)
            else:
                self._on_exit_fill(group, order, fill)
        elif order.tag == _EXIT_TAG and order.status not in OPEN_STATUSES:
            self._exit_shares.pop(order.client_order_id, None)
            self._exit_attempts.pop(order.client_order_id, None)
        self._on_order_update(order)

    def _book_fill(self, order: Order, fill: Fill) -> bool:
        """Apply an execution to its order and hand it to the portfolio; False for a repeat."""
        if fill.execution_id in self._execution_ids:
            return False
        self._execution_ids.add(fill.execution_id)
        if not order.venue_order_id:
            order.venue_order_id = fill.venue_order_id  # a fill may come before the accept
        allowed = TRANSITIONS[order.status]
        if _PARTIALLY_FILLED in allowed or _FILLED in allowed:
            _fill_order(order, fill.qty, fill.price, fill.fee, fill.ts_event)
        else:
            # The venue executed it after we saw the order end (a fill racing a cancel): the
            # trade happened, so the portfolio books it and the order shows it; its status stays.
            self._log.record(f"late_fill {order.client_order_id} {fill.execution_id} {order.status.value}")
            if fill.qty <= order.leaves_qty:
                order.apply_late_fill(fill.qty, fill.price, fill.fee, fill.ts_event)
        self._log.record(
            f"fill {order.client_order_id} {fill.execution_id} {str(fill.qty)} {str(fill.price)} "
            f"{str(fill.fee)} {fill.ts_event}"  # str(): see `_submit`
        )
        self._on_fill(order, fill)
        return True

    def _on_entry_fill(self, group: OcoGroup, fill: Fill) -> None:
        _count_entry_fill(group, fill)
        if group.closed:
            # The group was closed (exit or flatten) while the entry was still working.
            self._settle(group, "entry filled after its group closed")
            return
        self._resize_children(group)

    def _count_exit_fill(self, group: OcoGroup, order: Order, fill: Fill) -> None:
        if order.side is group.side:
            group.exited -= fill.qty  # an overfill bought (or sold) back
        else:
            group.exited += fill.qty
        if order.tag in (_TP1_TAG, _TP2_TAG):
            leg = 0 if order.tag == _TP1_TAG else 1
            group.tp_filled[leg] += fill.qty
            if leg == 0 and group.break_even and group.entry_filled > 0:
                instrument = self._instruments[group.symbol]
                group.stop = instrument.price(group.entry_cost / group.entry_filled)

    def _on_exit_fill(self, group: OcoGroup, order: Order, fill: Fill) -> None:
        self._count_exit_fill(group, order, fill)
        if group.closed or group.open_qty < 0:
            # A late fill of a closed group, or two exits filled in a race: settle what is left.
            self._close_group(group)
            self._settle(group, "exit filled after its group closed")
            return
        entry = self.orders[group.entry_id]
        if group.open_qty == 0 and not entry.is_open:
            self._close_group(group)
            return
        self._resize_children(group)

    def _resize_children(self, group: OcoGroup) -> None:
        """Make the resting exits match what is open now (replacing orders, never amending ids)."""
        if self.exit_policy is _STOP_RESTING:
            self._resize_stop_resting(group)
            return
        if group.stop is None and not group.targets:
            return  # nothing to rest: a plan without a stop or targets
        open_qty = group.open_qty
        exit_side = _opposite(group.side)
        if group.stop is not None:
            group.stop_id = self._ensure_child(
                group, group.stop_id, _LEG_STOP, _STOP, exit_side, open_qty, stop=group.stop
            )
        # A stop refused on the spot has closed the group already: no target may follow it.
        if group.closed or not group.targets:
            return
        wanted = self._targets_wanted(group)
        for leg_index, (target, qty) in enumerate(zip(group.targets, wanted, strict=False)):
            leg = _LEG_TP1 if leg_index == 0 else _LEG_TP2
            qty = min(qty, open_qty)
            group.tp_ids[leg_index] = self._ensure_child(
                group, group.tp_ids[leg_index], leg, _LIMIT, exit_side, qty, price=target
            )

    def _targets_wanted(self, group: OcoGroup) -> list[Decimal]:
        """What each target still has to take: TP1 its share of the entry's fills, TP2 the rest."""
        if len(group.targets) == 1:
            return [group.entry_filled - group.tp_filled[0]]
        tp1_total = self._instruments[group.symbol].round_qty(group.entry_filled * group.tp1_share)
        return [tp1_total - group.tp_filled[0], group.entry_filled - tp1_total - group.tp_filled[1]]

    # -- STOP_RESTING: the stop rests, targets are held here and released when touched ----------

    @property
    def held_targets(self) -> Mapping[str, object]:
        """Symbols with a target held here (STOP_RESTING), as a live view: the engine calls
        `on_price` only for these, so a run with nothing held does no work per bar."""
        return self._held

    def on_price(self, symbol: str, high: float, low: float, ts: int) -> None:
        """Market data reached `high` and `low` in `symbol` (a bar's range; a trade's price twice;
        a quote's bid and ask): release every held target it touched."""
        groups = self._held.get(symbol)
        if not groups:
            return
        instrument = self._instruments[symbol]
        top, bottom = instrument.price_from_float(high), instrument.price_from_float(low)
        for group in list(groups):
            if group.closed:
                self._refresh_held(group)
                continue
            touched = False
            for leg, target in enumerate(group.targets):
                reached = top >= target if group.side is _BUY else bottom <= target
                if reached and self._held_qty(group, leg) > 0:
                    group.releasing[leg] = True
                    touched = True
                    self._log.record(f"target_touched {group.plan_id} TP{leg + 1} {target} {ts}")
            if touched:
                self._resize_stop_resting(group)

    def _live(self, client_order_id: str | None) -> Order | None:
        """The order if it may still work (a child waiting for its throttle slot counts)."""
        order = self.orders.get(client_order_id) if client_order_id is not None else None
        if order is None or not (order.is_open or order.status is _PENDING_SUBMIT):
            return None
        return order

    def _held_qty(self, group: OcoGroup, leg: int) -> Decimal:
        """What target `leg` holds here, not yet released (0 while released, or once refused)."""
        if group.closed or group.releasing[leg]:
            return _ZERO
        released_id = group.tp_ids[leg]
        released = self.orders.get(released_id) if released_id is not None else None
        if released is not None and (
            released.status is _REJECTED or self._live(released.client_order_id) is not None
        ):
            return _ZERO  # a refused target is not tried again on every touch (it was alerted)
        return max(_ZERO, min(self._targets_wanted(group)[leg], group.open_qty))

    def _refresh_held(self, group: OcoGroup) -> None:
        held = any(self._held_qty(group, leg) > 0 for leg in range(len(group.targets)))
        groups = self._held.get(group.symbol)
        if held:
            if groups is None:
                self._held[group.symbol] = [group]
            elif group not in groups:
                groups.append(group)
        elif groups is not None and group in groups:
            groups.remove(group)
            if not groups:
                del self._held[group.symbol]

    def _resize_stop_resting(self, group: OcoGroup) -> None:
        """Stop sized to what no released target closes; touched targets released after it.

        The venue counts every resting exit against the position (a cancel not yet confirmed
        too), so a stop is replaced in two steps: cancel, and only on the cancel's confirmation
        (which calls back here) the new stop, then the released targets. A released target is a
        MARKET order: once the stop has shrunk, a limit the price walked away from would leave its
        share with no stop at the venue; a market order ends that window at once (the target acts
        as market-if-touched, at the cost of the touch's slippage)."""
        if group.closed:
            self._refresh_held(group)
            return
        open_qty = group.open_qty
        wanted = self._targets_wanted(group)
        working = _ZERO
        for client_order_id in group.tp_ids:
            released = self._live(client_order_id)
            if released is not None:
                working += released.leaves_qty
        room = open_qty - working
        release: list[Decimal] = [_ZERO, _ZERO]
        for leg in range(len(group.targets)):
            if group.releasing[leg]:
                release[leg] = max(_ZERO, min(wanted[leg], room))
                room -= release[leg]
                if release[leg] == 0:
                    group.releasing[leg] = False
        stop_qty = max(_ZERO, room)
        exit_side = _opposite(group.side)
        if group.stop is not None:
            stop = self._live(group.stop_id)
            if stop is not None and (
                stop.leaves_qty != stop_qty or stop.stop_price != group.stop or stop.status is _PENDING_CANCEL
            ):
                self._replaced.add(stop.client_order_id)
                self.cancel(stop.client_order_id)
                if group.stop_id != stop.client_order_id or stop.status is not _PENDING_SUBMIT:
                    # Continued by the cancel's confirmation (already, if the venue answered at once).
                    self._refresh_held(group)
                    return
                stop = None  # it was waiting for its throttle slot: cancelled, it is never sent
            if stop is None and stop_qty > 0:
                self._place_child(group, _LEG_STOP, _STOP, exit_side, stop_qty, stop=group.stop)
                if group.closed:
                    return  # the stop was refused on the spot: the group is being closed
        for leg in range(len(group.targets)):
            if group.releasing[leg]:
                group.releasing[leg] = False
                self._place_child(group, _LEG_TP1 if leg == 0 else _LEG_TP2, _MARKET, exit_side, release[leg])
                # A refusal on the spot has already resized the group: start again from its state.
                self._resize_stop_resting(group)
                return
        self._refresh_held(group)

    def _place_child(
        self,
        group: OcoGroup,
        leg: Leg,
        order_type: OrderType,
        side: Side,
        qty: Decimal,
        *,
        stop: Decimal | None = None,
    ) -> Order:
        """A new stop or released target, known to its group before it is sent (a refusal on the
        spot must find it there)."""
        child = self._child(group, leg, order_type, side, qty, stop=stop)
        if leg is _LEG_STOP:
            group.stop_id = child.client_order_id
        else:
            group.tp_ids[0 if leg is _LEG_TP1 else 1] = child.client_order_id
            self._log.record(f"target_released {child.client_order_id} {qty}")
        self._submit(child)
        return child

    def _ensure_child(
        self,
        group: OcoGroup,
        current_id: str | None,
        leg: Leg,
        order_type: OrderType,
        side: Side,
        qty: Decimal,
        *,
        price: Decimal | None = None,
        stop: Decimal | None = None,
    ) -> str | None:
        current = self.orders.get(current_id) if current_id is not None else None
        # A child still waiting for its throttle slot (PENDING_SUBMIT) will be sent: it counts as
        # working, or a resize would book a second one beside it.
        if current is not None and (current.is_open or current.status is _PENDING_SUBMIT):
            if current.leaves_qty == qty and current.price == price and current.stop_price == stop:
                return current_id
            self._replaced.add(current.client_order_id)
            self.cancel(current.client_order_id)
        if qty <= 0:
            return None
        child = self._child(group, leg, order_type, side, qty, price=price, stop=stop)
        if leg is _LEG_STOP:
            # Known to its group before it is sent: a refusal on the spot (at the risk gate or the
            # outbox) must be seen as this stop's, or the exits it triggers never see it refused.
            group.stop_id = child.client_order_id
        self._submit(child)
        return child.client_order_id

    def _child(
        self,
        group: OcoGroup,
        leg: Leg,
        order_type: OrderType,
        side: Side,
        qty: Decimal,
        *,
        price: Decimal | None = None,
        stop: Decimal | None = None,
    ) -> Order:
        """A new exit of `group`, registered with it, not yet sent."""
        child = self._new_order(
            group.strategy,
            group.symbol,
            side,
            qty,
            order_type,
            plan_id=group.plan_id,
            leg=leg,
            price=price,
            stop_price=stop,
        )
        self._group_of[child.client_order_id] = group
        return child

    def _close_group(self, group: OcoGroup) -> None:
        group.closed = True
        for client_order_id in group.member_ids():
            if self.orders[client_order_id].tag != _EXIT_TAG:
                self.cancel(client_order_id)
        groups = self._open_groups.get((group.strategy, group.symbol))
        if groups is not None and group in groups:
            groups.remove(group)
            if not groups:
                del self._open_groups[(group.strategy, group.symbol)]
        if self._held:
            self._refresh_held(group)

    def _pending_exits(self, group: OcoGroup) -> tuple[Decimal, Decimal]:
        """What the group's working market exits will still close, and still buy back."""
        closes = buybacks = _ZERO
        for client_order_id in group.exit_ids:
            order = self.orders[client_order_id]
            if order.is_open:
                if order.side is group.side:
                    buybacks += order.leaves_qty
                else:
                    closes += order.leaves_qty
        return closes, buybacks

    def _settle(self, group: OcoGroup, reason: str) -> None:
        """Bring a closed group to flat at market: what is open beyond what its working exits will
        close is closed; what they will close beyond what is open (an overfill) is taken back,
        with an alert."""
        closes, buybacks = self._pending_exits(group)
        excess = group.open_qty - closes + buybacks
        if excess > 0:
            side, qty = _opposite(group.side), excess
        elif excess < 0:
            side, qty = group.side, -excess
            reason = "overfill correction"
            self._alert("overfill", f"{group.symbol}: exits overfilled by {qty}; correcting at market")
        else:
            return
        order = self._new_order(
            group.strategy,
            group.symbol,
            side,
            qty,
            _MARKET,
            plan_id=group.plan_id,
            leg=_LEG_EXIT,
            reason=reason,
        )
        group.exit_ids.append(order.client_order_id)
        self._group_of[order.client_order_id] = group
        self._submit(order)

    def _on_child_gone(self, order: Order) -> None:
        """A child ended without filling (rejected or expired)."""
        if order.tag == _EXIT_TAG:
            self._on_exit_gone(order)
            return
        group = self._group_of.get(order.client_order_id)
        if group is None or group.closed or order.client_order_id == group.entry_id:
            if group is not None and order.client_order_id == group.entry_id and group.entry_filled == 0:
                self._close_group(group)
            return
        if order.tag == _STOP_TAG and order.client_order_id not in self._replaced:
            # A refused stop must not leave a naked position: close it at market.
            self._alert(
                "stop_rejected",
                f"{group.symbol}: stop {order.client_order_id} refused: "
                f"{order.reason}; closing {group.open_qty} at market",
            )
            self._log.record(f"stop_rejected_flatten {order.client_order_id}")
            self._close_group(group)
            self._settle(group, "protective stop rejected")
        elif self.exit_policy is _STOP_RESTING:
            if order.tag != _STOP_TAG and order.status is _REJECTED:
                self._alert(
                    "target_rejected",
                    f"{group.symbol}: released target {order.client_order_id} refused: {order.reason}; "
                    f"the stop goes back on for {group.open_qty}",
                )
            # A released target ended unfilled (or a replaced stop expired): the stop covers it again.
            self._resize_stop_resting(group)

    def _after_cancel(self, order: Order) -> None:
        """A cancel confirmed: a closing exit the venue cancelled (not we) closes again; under
        STOP_RESTING a replaced stop's confirmation lets its successor go, and a released target
        cancelled unfilled gives its share back to the stop."""
        if order.tag == _EXIT_TAG:
            if order.client_order_id not in self._cancel_requested:
                self._on_exit_gone(order)
            return
        group = self._group_of.get(order.client_order_id)
        if (
            group is not None
            and not group.closed
            and self.exit_policy is _STOP_RESTING
            and order.client_order_id != group.entry_id
        ):
            self._resize_stop_resting(group)

    def _on_exit_gone(self, order: Order) -> None:
        """A closing market order ended with quantity unfilled (refused, expired, or cancelled by
        the venue): what it was to close is closed again, at most `MAX_EXIT_ATTEMPTS` times; then
        the protective stop goes back on. Every refusal is alerted."""
        client_order_id = order.client_order_id
        shares = self._exit_shares.pop(client_order_id, [])
        leaves = order.leaves_qty
        if leaves <= 0:
            return
        self._alert(
            "exit_refused",
            f"{order.symbol}: exit {client_order_id} {order.status.value.lower()} with {leaves} "
            f"unfilled: {order.reason}",
        )
        group = self._group_of.get(client_order_id)
        if group is not None:
            if client_order_id in group.exit_ids:
                group.exit_failures += 1
                self._close_again(group)
            return
        # A strategy exit (or flatten): each group it took over takes its share back and closes it
        # as its own, so a repeated refusal ends with that group's stop back on.
        left = leaves
        for group, share in shares:
            back = min(share, left)
            if back <= 0:
                break
            group.flattened -= back
            left -= back
            group.exit_failures += 1
            self._close_again(group)
        if left <= 0:
            return
        strategy = self.strategy_of(client_order_id)
        attempts = self._exit_attempts.pop(client_order_id, 0) + 1
        if attempts >= MAX_EXIT_ATTEMPTS:
            self._alert(
                "exit_failed",
                f"{order.symbol}: {left} of {strategy or 'the account'} not closed after {attempts} "
                "attempts; no stop is known for it: the position is unprotected",
            )
            return
        again = self._new_order(
            strategy,
            order.symbol,
            order.side,
            left,
            _MARKET,
            plan_id=self._plan_of(order) or self._orphan_plan_id(strategy, order.symbol, left),
            leg=_LEG_EXIT,
            reason=order.reason,
        )
        self._exit_attempts[again.client_order_id] = attempts
        self._submit(again)

    def _close_again(self, group: OcoGroup) -> None:
        """Close a closed group's position again after its exit failed, or protect it."""
        failures = group.exit_failures
        if failures < MAX_EXIT_ATTEMPTS:
            self._settle(group, f"exit sent again after {failures} unfilled")
            return
        closes, buybacks = self._pending_exits(group)
        if group.open_qty - closes + buybacks == 0:
            return  # another working exit already closes it
        last_stop = self.orders.get(group.stop_id) if group.stop_id is not None else None
        # The stop goes back on each time the exits run out, unless the one put back was refused.
        refused_again = (
            failures > MAX_EXIT_ATTEMPTS and last_stop is not None and last_stop.status is _REJECTED
        )
        if refused_again or group.stop is None or group.open_qty <= 0:
            self._alert(
                "exit_failed",
                f"{group.symbol}: plan {group.plan_id} not closed after {failures} attempts "
                f"({group.open_qty} open); no stop can go back on: the position is unprotected",
            )
            return
        self._alert(
            "exit_failed",
            f"{group.symbol}: plan {group.plan_id} not closed after {failures} attempts; "
            f"its stop at {group.stop} goes back on for {group.open_qty}",
        )
        # Managed again as an open group: a fill of its stop, an exit or a flatten closes it.
        group.closed = False
        groups = self._open_groups.setdefault((group.strategy, group.symbol), [])
        if group not in groups:
            groups.append(group)
        if self.exit_policy is _STOP_RESTING:
            self._resize_stop_resting(group)
        else:
            # A fresh stop: the old one was cancelled when the group closed.
            group.stop_id = self._ensure_child(
                group, None, _LEG_STOP, _STOP, _opposite(group.side), group.open_qty, stop=group.stop
            )

    def _alert(self, kind: str, message: str) -> None:
        self.alerts.append((kind, message))
        self._log.record(f"alert {kind} {message}")
        if self._on_alert is not None:
            self._on_alert(kind, message)

    def _orphan_plan_id(self, strategy: str, symbol: str, qty: Decimal) -> str:
        """The plan an exit belongs to: the position's last plan, or a fresh one for a
        position no plan opened here (e.g. adopted at reconciliation)."""
        last = self._last_plan.get((strategy, symbol))
        if last is not None:
            return last
        return plan_client_id(
            strategy=strategy,
            symbol=symbol,
            side="SELL" if qty > 0 else "BUY",
            entry=None,
            stop=None,
            targets=(),
            qty=abs(qty),
            signal_ts=self._clock.now_ns(),
            config_sha="flatten",
        )

    def _plan_of(self, order: Order) -> str:
        group = self._group_of.get(order.client_order_id)
        if group is not None:
            return group.plan_id
        return self._last_plan.get((self.strategy_of(order.client_order_id), order.symbol), "")

    def plan_of(self, client_order_id: str) -> str:
        """The plan id an order belongs to ('' if none is known)."""
        order = self.orders.get(client_order_id)
        return self._plan_of(order) if order is not None else ""

    def strategy_of(self, client_order_id: str) -> str:
        return self._strategy_of.get(client_order_id, "")

    def group_of(self, client_order_id: str) -> OcoGroup | None:
        return self._group_of.get(client_order_id)


def _count_entry_fill(group: OcoGroup, fill: Fill) -> None:
    group.entry_filled += fill.qty
    group.entry_cost += fill.qty * fill.price
