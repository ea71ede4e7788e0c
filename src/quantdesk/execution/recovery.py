"""Recovery and reconciliation: take back what the store knew, make it agree with the venue, keep it so.

At start-up `Reconciler.recover` is given what the store knows (`StoredState`,
loaded by `quantdesk.store.recovery`), on an engine built fresh whose portfolio
was restored from the stored fills (`Engine.restore`), and before it starts:

1. every client id the store ever wrote is reserved, and the executions it booked
   are remembered, so no id is sent twice and no fill is counted twice;
2. the orders still open in the store come back — an outbox row (PENDING_SUBMIT)
   or a send without an answer comes back UNKNOWN: nobody knows whether it left —
   and each OCO group is rebuilt from its orders and its plan's stop and targets;
3. our own ids the store never got (a stop buffered while the store was down, then
   a crash) are looked up at the venue and adopted;
4. each open order is compared with the venue (snapshot, then a lookup by client
   id): absent means never sent (closed here, never sent again), a terminal state
   settles it (a shadow), more filled there means missed fills, which are booked
   once (by the venue's execution ids when it lists them, else estimated at the
   order's price and flagged); orphans — open there, unknown or ended here — are
   cancelled, or adopted when `orphan_policy="adopt"` (ids of ours always cancelled);
5. only then does OCO management act, once per group: an exit the crash interrupted
   is finished, a group with nothing open is closed (its siblings cancelled), the
   others get their stop and targets sized to what is open now;
6. positions are compared with the venue's: a mismatch alerts and pauses entries
   until a later pass finds them equal.

While running, `Reconciler.reconcile` (on the engine's clock, see
`Engine.schedule_reconciliation`) does steps 4-6 on the live order manager; a
difference must be seen on `confirmations` passes in a row before it is acted on,
since an answer may simply still be on its way.

The module is core: it talks to the venue only through its port (`venues.base`)
and to the engine through the `RecoveryHost` protocol; it never imports the store.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from quantdesk.clock import Clock
from quantdesk.errors import RetryableError
from quantdesk.execution.client_ids import Leg, order_client_id
from quantdesk.execution.event_log import EventLog
from quantdesk.execution.order_manager import AlertHandler, OcoGroup, OrderManager
from quantdesk.execution.tracker import OrderTracker
from quantdesk.model import Fill, Instrument, Order, OrderStatus, OrderType, Side, TimeInForce
from quantdesk.venues.base import OrderBookVenue, VenueCapabilities, VenueOrderState

_ZERO = Decimal(0)
_ACTOR = "reconciler"
# Our own ids are looked up at the venue one attempt after another; a plan never gets near this.
_MAX_PROBES = 64
# Stored states meaning "handed to the venue, or about to be, with no answer kept".
_IN_DOUBT = frozenset({OrderStatus.INITIALIZED, OrderStatus.PENDING_SUBMIT, OrderStatus.SUBMITTED})
_PART_FILLABLE = frozenset(
    {OrderStatus.UNKNOWN, OrderStatus.ACCEPTED, OrderStatus.TRIGGERED, OrderStatus.PENDING_CANCEL}
)
_OUR_ALPHANUMERIC_ID = re.compile(r"Q[A-Z2-7]{12,}[ES12X][0-9A-Z]{2}")
_CHILD_LEGS = (Leg.STOP.value, Leg.TP1.value, Leg.TP2.value)


class RecoveryConfig(BaseModel):
    """How recovery and the periodic reconciliation treat what they find (`[recovery]`).

    `orphan_policy`: what to do with an order open at the venue that the system does
    not know — "cancel" (default) or "adopt" (track it: its fills count in the
    portfolio, a flatten closes them). Cancel is the default because an order nobody
    manages can open a position with no protective stop, and a cancel can be undone
    by placing the order again while an unwanted fill cannot; a desk that also trades
    by hand in the same account (common on Kite) sets "adopt". Orders carrying our
    own client ids are cancelled under either policy: the system re-places what it
    still needs under new ids.

    `reconcile_interval_seconds`: how often the running node compares its orders and
    positions with the venue's (clock time). `confirmations`: on how many passes in a
    row a difference must be seen before it is acted on while running (at start-up
    nothing is in flight, so one is enough).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    orphan_policy: Literal["cancel", "adopt"] = "cancel"
    reconcile_interval_seconds: float = Field(default=60.0, gt=0, allow_inf_nan=False)
    confirmations: int = Field(default=2, ge=1, le=10)


# -- what the store knows (built by quantdesk.store.recovery) ------------------------------------


@dataclass(frozen=True, slots=True)
class StoredOrder:
    """One order row: its terms, its last stored state, its strategy, leg and plan (OCO group).

    `filled_qty`, `avg_fill_price` and `fees` are those of the stored fills (the row's own
    copy may lag them by a batch)."""

    client_order_id: str
    strategy: str
    plan_id: str
    leg: str
    symbol: str
    side: Side
    order_type: OrderType
    time_in_force: TimeInForce
    qty: Decimal
    price: Decimal | None
    stop_price: Decimal | None
    status: OrderStatus
    filled_qty: Decimal
    avg_fill_price: Decimal
    fees: Decimal
    venue_order_id: str
    reason: str
    ts_created: int
    ts_updated: int

    def to_order(self) -> Order:
        """The order as the restarted node holds it: one handed to the venue with no answer kept
        (PENDING_SUBMIT, SUBMITTED) is UNKNOWN until the venue is asked."""
        status = self.status
        if status in _IN_DOUBT:
            status = OrderStatus.UNKNOWN
        if self.filled_qty >= self.qty > 0:
            status = OrderStatus.FILLED
        elif status is OrderStatus.FILLED:
            # The row says filled, its stored fills do not (yet): the venue fills in the rest.
            status = OrderStatus.PARTIALLY_FILLED if self.filled_qty > 0 else OrderStatus.ACCEPTED
        elif self.filled_qty > 0 and status in _PART_FILLABLE:
            status = OrderStatus.PARTIALLY_FILLED if status is not OrderStatus.PENDING_CANCEL else status
        return Order(
            client_order_id=self.client_order_id,
            symbol=self.symbol,
            side=self.side,
            order_type=self.order_type,
            qty=self.qty,
            price=self.price,
            stop_price=self.stop_price,
            time_in_force=self.time_in_force,
            tag=self.leg,
            ts_created=self.ts_created,
            status=status,
            venue_order_id=self.venue_order_id,
            filled_qty=self.filled_qty,
            avg_fill_price=self.avg_fill_price,
            fees=self.fees,
            reason=self.reason,
            ts_last=self.ts_updated,
        )


@dataclass(frozen=True, slots=True)
class StoredFill:
    """One stored execution with the strategy and leg of its order (what the portfolio replays)."""

    strategy: str
    tag: str
    fill: Fill


@dataclass(frozen=True, slots=True)
class StoredBracket:
    """A plan's protective stop and targets, from its signal (for a group whose stop was never placed)."""

    stop: Decimal | None
    targets: tuple[Decimal, ...]


@dataclass(frozen=True, slots=True)
class StoredPosition:
    """The store's position row of one strategy in one symbol."""

    strategy: str
    symbol: str
    qty: Decimal
    avg_price: Decimal
    realized_pnl: Decimal
    fees: Decimal


@dataclass(frozen=True, slots=True)
class StoredState:
    """What the store knows at start-up: every client id it ever wrote, the orders recovery must
    look at (open ones and every order of a strategy's symbol that is open or holds a position),
    every fill in booking order, the plans' brackets and the position rows."""

    client_order_ids: frozenset[str]
    orders: tuple[StoredOrder, ...] = ()
    fills: tuple[StoredFill, ...] = ()
    brackets: Mapping[str, StoredBracket] = field(default_factory=dict)
    positions: tuple[StoredPosition, ...] = ()

    @property
    def execution_ids(self) -> frozenset[str]:
        return frozenset(stored.fill.execution_id for stored in self.fills)


# -- the report ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PositionMismatch:
    """A symbol whose net position here differs from the venue's."""

    symbol: str
    ours: Decimal
    venue: Decimal


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    """What one recovery (stage "start") or reconciliation pass ("periodic") found and did.

    `adopted`: orders whose outcome was unknown here, found at the venue and taken with
    its state. `never_sent`: orders the venue never received, ended here and never sent
    again. `shadows`: orders open here, not open at the venue, settled from its answer.
    `missed_fills`: execution ids booked now (`estimated_fills`: booked at the order's
    own price because the venue does not list executions; `unpriced`: orders whose
    missed fill could not be priced, so positions differ). `groups_resumed`: plans whose
    OCO management goes on; `groups_closed`: plans recovery closed. `unprotected`:
    "strategy/symbol" positions with no working stop or exit. `suspected`: differences
    seen but waiting for confirmation. `paused`: whether entries are paused after it.
    """

    stage: str
    ts: int
    restored_orders: int = 0
    restored_groups: int = 0
    adopted: tuple[str, ...] = ()
    never_sent: tuple[str, ...] = ()
    shadows: tuple[str, ...] = ()
    orphans_cancelled: tuple[str, ...] = ()
    orphans_adopted: tuple[str, ...] = ()
    missed_fills: tuple[str, ...] = ()
    estimated_fills: tuple[str, ...] = ()
    unpriced: tuple[str, ...] = ()
    groups_resumed: tuple[str, ...] = ()
    groups_closed: tuple[str, ...] = ()
    position_mismatches: tuple[PositionMismatch, ...] = ()
    unprotected: tuple[str, ...] = ()
    positions_checked: bool = False
    suspected: int = 0
    paused: bool = False
    venue_error: str = ""

    @property
    def in_sync(self) -> bool:
        """Store, engine and venue agreed without anything to repair."""
        return not (
            self.adopted
            or self.never_sent
            or self.shadows
            or self.orphans_cancelled
            or self.orphans_adopted
            or self.missed_fills
            or self.unpriced
            or self.position_mismatches
            or self.venue_error
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain values for a log line and /status (Decimals as strings)."""
        out: dict[str, Any] = {}
        for name in self.__slots__:
            value = getattr(self, name)
            if name == "position_mismatches":
                value = [{"symbol": m.symbol, "ours": str(m.ours), "venue": str(m.venue)} for m in value]
            elif isinstance(value, tuple):
                value = list(value)
            out[name] = value
        out["in_sync"] = self.in_sync
        return out


# -- what recovery needs of the engine ---------------------------------------------------------------


class _StateChange(Protocol):
    @property
    def action(self) -> str: ...

    @property
    def actor(self) -> str: ...


class TradingControl(Protocol):
    """Pause and resume of new entries (the engine's `TradingState`)."""

    @property
    def paused(self) -> bool: ...

    @property
    def changes(self) -> Sequence[_StateChange]: ...

    def pause(self, reason: str = ..., actor: str = ...) -> None: ...

    def resume(self, reason: str = ..., actor: str = ...) -> None: ...


class RecoveryHost(Protocol):
    """The engine, as recovery sees it: its order manager, positions per strategy, pause state."""

    @property
    def orders(self) -> OrderManager: ...

    @property
    def state(self) -> TradingControl: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def event_log(self) -> EventLog: ...

    @property
    def instruments(self) -> Mapping[str, Instrument]: ...

    def position_qty(self, strategy: str, symbol: str) -> Decimal: ...

    def open_strategy_positions(self) -> list[tuple[str, str, Decimal]]: ...


def is_own_client_id(client_order_id: str, capabilities: VenueCapabilities) -> bool:
    """Whether an id has the shape of `order_client_id`'s ids for this venue (ours, from some run)."""
    if capabilities.client_id_alphanumeric:
        return _OUR_ALPHANUMERIC_ID.fullmatch(client_order_id) is not None
    return client_order_id.startswith("qd-")


def _plan_part(client_order_id: str, capabilities: VenueCapabilities) -> str:
    """The part of a plan id that one of our order ids carries (all of it where the venue has room)."""
    if capabilities.client_id_alphanumeric:
        return client_order_id[1:-3]
    parts = client_order_id.split("-")
    return parts[1] if len(parts) == 4 else ""


def _attempt(client_order_id: str) -> int:
    """The attempt number at the end of one of our ids (0 when it has none we can read)."""
    head, _, tail = client_order_id.rpartition("-")
    if head and tail.isdigit():
        return int(tail)
    try:
        return int(client_order_id[-2:], 36)
    except ValueError:
        return 0


# -- one pass -------------------------------------------------------------------------------------


@dataclass
class _Pass:
    """What one pass finds, and which differences are confirmed enough to act on."""

    stage: str
    needed: int
    suspects: dict[tuple[str, str], int]
    seen: set[tuple[str, str]] = field(default_factory=set)
    touched: set[str] = field(default_factory=set)
    restored_orders: int = 0
    restored_groups: int = 0
    adopted: list[str] = field(default_factory=list)
    never_sent: list[str] = field(default_factory=list)
    shadows: list[str] = field(default_factory=list)
    orphans_cancelled: list[str] = field(default_factory=list)
    orphans_adopted: list[str] = field(default_factory=list)
    missed_fills: list[str] = field(default_factory=list)
    estimated_fills: list[str] = field(default_factory=list)
    unpriced: list[str] = field(default_factory=list)
    groups_resumed: list[str] = field(default_factory=list)
    groups_closed: list[str] = field(default_factory=list)
    position_mismatches: list[PositionMismatch] = field(default_factory=list)
    unprotected: list[str] = field(default_factory=list)
    positions_checked: bool = False
    venue_error: str = ""

    def confirm(self, kind: str, key: str) -> bool:
        """Count a difference; True once it was seen on `needed` passes in a row (then forgotten)."""
        item = (kind, key)
        self.seen.add(item)
        count = self.suspects.get(item, 0) + 1
        if count >= self.needed:
            self.suspects.pop(item, None)
            return True
        self.suspects[item] = count
        return False

    def forget_unseen(self) -> None:
        """A difference not seen again was an answer in transit: it starts from zero next time."""
        for item in [item for item in self.suspects if item not in self.seen]:
            del self.suspects[item]


@dataclass
class _Restored:
    groups: list[OcoGroup] = field(default_factory=list)
    bracket_known: dict[str, bool] = field(default_factory=dict)
    closing: dict[tuple[str, str], list[OcoGroup]] = field(default_factory=dict)
    replaced_open: list[str] = field(default_factory=list)


class Reconciler:
    """Makes the engine's orders and positions agree with the venue: once at start-up (`recover`),
    then periodically (`reconcile`). `last_report` is what the node shows in /status."""

    def __init__(
        self,
        venue: OrderBookVenue,
        host: RecoveryHost,
        config: RecoveryConfig | None = None,
        *,
        on_alert: AlertHandler | None = None,
    ) -> None:
        self._venue = venue
        self._host = host
        self._orders = host.orders
        self.config = config or RecoveryConfig()
        self._on_alert = on_alert
        self._suspects: dict[tuple[str, str], int] = {}
        self._recovered = False
        self._paused_by_us = False
        self.last_report: RecoveryReport | None = None

    # -- start-up -------------------------------------------------------------------------------

    def recover(self, stored: StoredState) -> RecoveryReport:
        """Take back `stored` and reconcile it with the venue (see the module's steps 1-6).

        Call once, on an engine built fresh (portfolio restored with `Engine.restore`), with
        the store writer attached (what recovery changes is written too), before `start`.
        A venue that cannot be reached raises (`RetryableError`): trading must not start
        half-recovered."""
        if self._recovered:
            raise RuntimeError("recover() runs once, on a freshly built engine")
        self._recovered = True
        orders = self._orders
        orders.ids.preload(stored.client_order_ids)
        orders.remember_executions(stored.execution_ids)
        found = _Pass("start", 1, {})
        restored = self._restore(stored, found)
        self._sync(found)
        self._resume_at_start(restored, found)
        self._check_positions(found)
        self._check_protection(found)
        return self._finish(found)

    def _restore(self, stored: StoredState, found: _Pass) -> _Restored:
        orders = self._orders
        instruments = self._host.instruments
        costs: dict[str, Decimal] = {}
        for item in stored.fills:
            fill = item.fill
            costs[fill.client_order_id] = costs.get(fill.client_order_id, _ZERO) + fill.qty * fill.price
        by_plan: dict[str, list[StoredOrder]] = {}
        exits: dict[tuple[str, str], list[StoredOrder]] = {}
        for row in stored.orders:
            if row.symbol not in instruments or row.client_order_id in orders.orders:
                continue  # not an instrument this engine trades; or listed twice
            orders.restore_order(row.to_order(), strategy=row.strategy)
            found.restored_orders += 1
            if row.leg == Leg.EXIT.value:
                exits.setdefault((row.strategy, row.symbol), []).append(row)
            elif row.plan_id:
                by_plan.setdefault(row.plan_id, []).append(row)
        restored = _Restored()
        unbooked = self._unbooked_plans(stored)
        # Per pair: whether an exit still works, and when the last one was created.
        exit_open = {
            key: any(orders.orders[r.client_order_id].is_open for r in rows) for key, rows in exits.items()
        }
        exit_last = {key: max(r.ts_created for r in rows) for key, rows in exits.items()}
        for plan_id, rows in by_plan.items():
            entry = next((row for row in rows if row.leg == Leg.ENTRY.value), None)
            if entry is None:
                continue  # children of a plan whose entry is not loaded: plain orders
            group, known, replaced = self._rebuild(plan_id, entry, rows, costs, stored.brackets.get(plan_id))
            members = [row.client_order_id for row in rows]
            key = (group.strategy, group.symbol)
            working_exit = exit_open.get(key, False)
            # An exit of the pair created after this entry (or still working) was closing it.
            closing = working_exit or exit_last.get(key, -1) >= entry.ts_created
            suspect = any(plan_id.startswith(part) for part in unbooked)
            if not (suspect or working_exit or self._is_live(group, members, closed=closing)):
                continue  # finished before the restart: its orders are known, nothing to manage
            for leg in (Leg.STOP, Leg.TP1, Leg.TP2, Leg.EXIT):
                for state in self._probe(plan_id, leg):
                    adopted = self._adopt_unstored(group, leg, state)
                    found.adopted.append(adopted.client_order_id)
                    if leg is Leg.EXIT:
                        closing = True
                        continue
                    members.append(adopted.client_order_id)
                    if leg is Leg.STOP:
                        current = group.stop_id
                        group.stop_id = adopted.client_order_id
                    else:
                        index = 0 if leg is Leg.TP1 else 1
                        current = group.tp_ids[index]
                        group.tp_ids[index] = adopted.client_order_id
                    if current is not None:
                        replaced.append(current)
            orders.restore_group(group, members=members, replaced=replaced)
            restored.groups.append(group)
            restored.bracket_known[plan_id] = known
            restored.replaced_open.extend(cid for cid in replaced if orders.orders[cid].is_open)
            if closing:
                group.closed = True
                restored.closing.setdefault(key, []).append(group)
        found.restored_groups = len(restored.groups)
        return restored

    def _rebuild(
        self,
        plan_id: str,
        entry: StoredOrder,
        rows: Sequence[StoredOrder],
        costs: Mapping[str, Decimal],
        bracket: StoredBracket | None,
    ) -> tuple[OcoGroup, bool, list[str]]:
        """The group as the fills and orders of the store make it: counts, current children, prices."""
        orders = self._orders
        instrument = self._host.instruments[entry.symbol]
        side = entry.side
        legs: dict[str, list[StoredOrder]] = {leg: [] for leg in _CHILD_LEGS}
        for row in rows:
            if row.leg in legs:
                legs[row.leg].append(row)
        for children in legs.values():
            children.sort(key=lambda row: (row.ts_created, _attempt(row.client_order_id)))
        stops, tp1s, tp2s = legs[Leg.STOP.value], legs[Leg.TP1.value], legs[Leg.TP2.value]
        stop: Decimal | None = None
        targets: tuple[Decimal, ...] = ()
        if bracket is not None:
            stop = instrument.price(bracket.stop) if bracket.stop is not None else None
            targets = tuple(instrument.round_price(t, side.opposite) for t in bracket.targets[:2])
        elif tp1s or tp2s:
            targets = tuple(
                children[-1].price for children in (tp1s, tp2s) if children and children[-1].price is not None
            )
        if stops and stops[-1].stop_price is not None:
            stop = stops[-1].stop_price  # the last one placed: a break-even move lives there
        group = OcoGroup(
            plan_id=plan_id,
            strategy=entry.strategy,
            symbol=entry.symbol,
            side=side,
            entry_id=entry.client_order_id,
            stop=stop,
            targets=targets,
            tp1_share=orders.tp1_share,
            break_even=orders.break_even_after_tp1,
        )
        group.entry_filled = entry.filled_qty
        group.entry_cost = costs.get(entry.client_order_id, entry.filled_qty * entry.avg_fill_price)
        for index, children in enumerate((stops, tp1s, tp2s)):
            for child in children:
                filled = child.filled_qty
                group.exited += -filled if child.side is side else filled
                if index:
                    group.tp_filled[index - 1] += filled
        group.stop_id = stops[-1].client_order_id if stops else None
        group.tp_ids = [
            tp1s[-1].client_order_id if tp1s else None,
            tp2s[-1].client_order_id if tp2s else None,
        ]
        replaced = [child.client_order_id for children in (stops, tp1s, tp2s) for child in children[:-1]]
        return group, bracket is not None or bool(stops), replaced

    def _is_live(self, group: OcoGroup, members: Iterable[str], *, closed: bool) -> bool:
        """Whether a group still needs managing: an order of it may work, or it holds a position.
        What a group closed by an exit still holds cannot be told from the store (exits count per
        strategy, not per group): the position check covers it."""
        orders = self._orders.orders
        return any(orders[cid].is_open for cid in members) or (group.open_qty != 0 and not closed)

    def _unbooked_plans(self, stored: StoredState) -> set[str]:
        """The plans (as our ids carry them) of the venue's executions the store never booked: a
        group that looks finished in the store but has one is looked at again."""
        executions = getattr(self._venue, "executions", None)
        if not callable(executions):
            return set()
        booked = stored.execution_ids
        capabilities = self._venue.capabilities
        plans: set[str] = set()
        for fill in executions():
            if fill.execution_id not in booked and is_own_client_id(fill.client_order_id, capabilities):
                plans.add(_plan_part(fill.client_order_id, capabilities))
        plans.discard("")
        return plans

    def _probe(self, plan_id: str, leg: Leg) -> list[VenueOrderState]:
        """Our ids of this plan's leg that the venue has although no store row names them."""
        orders = self._orders
        capabilities = self._venue.capabilities
        found: list[VenueOrderState] = []
        for _ in range(_MAX_PROBES):
            try:
                attempt = orders.ids.next_attempt(plan_id, leg)
                client_order_id = order_client_id(plan_id, leg, attempt=attempt, capabilities=capabilities)
            except ValueError:
                break  # not one of our plan ids: nothing of ours to find
            state = self._venue.query_order(client_order_id)
            if state is None:
                break
            orders.ids.preload((client_order_id,))
            found.append(state)
        return found

    def _adopt_unstored(self, group: OcoGroup, leg: Leg, state: VenueOrderState) -> Order:
        if leg is Leg.STOP:
            terms: dict[str, Any] = {"order_type": OrderType.STOP, "stop_price": group.stop}
        elif leg is Leg.EXIT:
            terms = {"order_type": OrderType.MARKET}
        else:
            index = 0 if leg is Leg.TP1 else 1
            price = group.targets[index] if index < len(group.targets) else None
            terms = {"order_type": OrderType.LIMIT, "price": price}
        return self._orders.adopt(
            state,
            strategy=group.strategy,
            tag=leg.value,
            reason="ours, found at the venue: its store row was lost",
            **terms,
        )

    def _resume_at_start(self, restored: _Restored, found: _Pass) -> None:
        """OCO management acts once, now that every order shows what the venue did."""
        orders = self._orders
        for client_order_id in restored.replaced_open:
            orders.cancel(client_order_id)
        for (strategy, symbol), groups in sorted(restored.closing.items()):
            others = sum(
                (
                    g.open_qty * g.side.sign
                    for g in orders.managed_groups()
                    if g.strategy == strategy and g.symbol == symbol and g not in groups
                ),
                _ZERO,
            )
            share = self._host.position_qty(strategy, symbol) - others
            orders.finish_exit(groups, share, "finishing an exit a restart interrupted")
            found.groups_closed.extend(g.plan_id for g in groups)
        for group in restored.groups:
            if group.closed:
                continue
            outcome = orders.resume_group(group, bracket_known=restored.bracket_known[group.plan_id])
            if outcome in ("closed", "unprotected"):
                found.groups_closed.append(group.plan_id)
            else:
                found.groups_resumed.append(group.plan_id)

    # -- while running --------------------------------------------------------------------------

    def reconcile(self) -> RecoveryReport:
        """One periodic pass: compare open orders, fills and positions with the venue's and repair
        what has differed for `confirmations` passes in a row. A venue that cannot be reached
        leaves everything as it is (the report says why)."""
        found = _Pass("periodic", self.config.confirmations, self._suspects)
        try:
            self._sync(found)
            for group in self._touched_groups(found):
                if group.closed:
                    self._orders.resume_group(group)
                elif self._orders.resume_group(group) in ("closed", "unprotected"):
                    found.groups_closed.append(group.plan_id)
                else:
                    found.groups_resumed.append(group.plan_id)
            self._check_positions(found)
            self._check_protection(found)
        except RetryableError as error:
            found.venue_error = f"{type(error).__name__}: {error}"
            found.seen.update(self._suspects)  # nothing was seen either way: keep counting later
        found.forget_unseen()
        return self._finish(found)

    def _touched_groups(self, found: _Pass) -> list[OcoGroup]:
        groups: list[OcoGroup] = []
        for client_order_id in sorted(found.touched):
            group = self._orders.group_of(client_order_id)
            if group is not None and group not in groups and group in self._orders.managed_groups():
                groups.append(group)
        return groups

    # -- the comparison both share --------------------------------------------------------------

    def _sync(self, found: _Pass) -> None:
        """Bring every order to the venue's state: lookups, missed fills, terminal states, orphans."""
        orders, venue = self._orders, self._venue
        snapshot = venue.open_orders()
        at_venue = {state.client_order_id: state for state in snapshot}
        behind: list[tuple[Order, VenueOrderState]] = []
        ended: list[tuple[Order, VenueOrderState, bool]] = []
        for order in orders.working_orders():
            client_order_id = order.client_order_id
            if order.status is OrderStatus.PENDING_SUBMIT:
                continue  # waiting for its throttle slot: never sent yet
            state = at_venue.get(client_order_id) or venue.query_order(client_order_id)
            in_doubt = order.status in (OrderStatus.UNKNOWN, OrderStatus.SUBMITTED)
            if state is None:
                if found.confirm("absent", client_order_id):
                    reason = "never reached the venue; not sent again" if in_doubt else "not at the venue"
                    if orders.settle_from_venue(client_order_id, OrderStatus.CANCELED, reason=reason):
                        (found.never_sent if in_doubt else found.shadows).append(client_order_id)
                        found.touched.add(client_order_id)
                continue
            if state.filled_qty > order.filled_qty and found.confirm("behind", client_order_id):
                behind.append((order, state))
            if not state.is_open:
                if found.confirm("ended", client_order_id):
                    ended.append((order, state, in_doubt))
            elif in_doubt:
                if orders.settle_from_venue(
                    client_order_id, state.status, venue_order_id=state.venue_order_id
                ):
                    found.adopted.append(client_order_id)
                    found.touched.add(client_order_id)
            elif order.status is OrderStatus.PENDING_CANCEL and found.confirm("cancel", client_order_id):
                orders.cancel_at_venue(client_order_id)  # the answer to our cancel was lost: ask again
        to_cancel = self._orphans(snapshot, behind, found)
        for fill in self._missed_fills(behind, found):
            if orders.apply_missed_fill(fill):
                found.missed_fills.append(fill.execution_id)
                found.touched.add(fill.client_order_id)
        for order, state, in_doubt in ended:
            changed = orders.settle_from_venue(
                order.client_order_id,
                state.status,
                venue_order_id=state.venue_order_id,
                reason=f"{state.status.value.lower()} at the venue (found by reconciliation)",
            )
            if changed or not order.is_open:
                (found.adopted if in_doubt else found.shadows).append(order.client_order_id)
                found.touched.add(order.client_order_id)
        for client_order_id in to_cancel:
            orders.cancel_at_venue(client_order_id)

    def _orphans(
        self,
        snapshot: list[VenueOrderState],
        behind: list[tuple[Order, VenueOrderState]],
        found: _Pass,
    ) -> list[str]:
        """Open at the venue, not open here: adopt or mark for cancelling; returns the ids to cancel."""
        orders = self._orders
        capabilities = self._venue.capabilities
        to_cancel: list[str] = []
        for state in OrderTracker(orders.orders).orphaned(snapshot):
            client_order_id = state.client_order_id
            if not found.confirm("orphan", client_order_id):
                continue
            ours = orders.orders.get(client_order_id)
            own = (
                ours is not None
                or client_order_id in orders.ids
                or is_own_client_id(client_order_id, capabilities)
            )
            cancel = own or self.config.orphan_policy == "cancel"
            if not orders.trades(state.symbol):
                # Not an instrument of this engine: nothing here could book its fills.
                if cancel:
                    to_cancel.append(client_order_id)
                    found.orphans_cancelled.append(client_order_id)
                continue
            if ours is None:
                ours = orders.adopt(
                    state, reason="orphan: cancelled at reconciliation" if cancel else "orphan: adopted"
                )
            if state.filled_qty > ours.filled_qty:
                behind.append((ours, state))
            if cancel:
                to_cancel.append(client_order_id)
                found.orphans_cancelled.append(client_order_id)
            else:
                found.orphans_adopted.append(client_order_id)
        return to_cancel

    def _missed_fills(self, behind: list[tuple[Order, VenueOrderState]], found: _Pass) -> list[Fill]:
        """The executions behind each lagging order: the venue's own (by execution id) when it
        lists them, else one estimated at the order's price; in the venue's time order."""
        if not behind:
            return []
        by_order: dict[str, list[Fill]] = {}
        executions = getattr(self._venue, "executions", None)
        if callable(executions):
            for fill in executions():
                by_order.setdefault(fill.client_order_id, []).append(fill)
        orders = self._orders
        now = self._host.clock.now_ns()
        missed: list[Fill] = []
        for order, state in behind:
            client_order_id = order.client_order_id
            missing = state.filled_qty - order.filled_qty
            for fill in by_order.get(client_order_id, ()):
                if missing <= 0:
                    break
                if orders.knows_execution(fill.execution_id) or fill.qty > missing:
                    continue
                missed.append(fill)
                missing -= fill.qty
            if missing <= 0:
                continue
            price = order.price if order.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT) else None
            if order.order_type is OrderType.STOP:
                price = order.stop_price
            if price is None:
                found.unpriced.append(client_order_id)
                continue
            execution_id = f"RECON-{client_order_id}-{state.filled_qty}"
            missed.append(
                Fill(
                    execution_id=execution_id,
                    client_order_id=client_order_id,
                    venue_order_id=state.venue_order_id,
                    symbol=order.symbol,
                    side=order.side,
                    qty=missing,
                    price=price,
                    fee=_ZERO,
                    ts_event=state.ts,
                    ts_init=now,
                )
            )
            found.estimated_fills.append(execution_id)
        missed.sort(key=lambda fill: fill.ts_event)  # stable: the venue's order within an instant
        return missed

    def _venue_positions(self) -> Mapping[str, Decimal] | None:
        positions = getattr(self._venue, "positions", None)
        if callable(positions):
            positions = positions()
        return positions if isinstance(positions, Mapping) else None

    def _check_positions(self, found: _Pass) -> None:
        """Net positions per symbol against the venue's; a confirmed mismatch pauses entries."""
        theirs = self._venue_positions()
        if theirs is None:
            return  # the venue does not say: nothing to compare
        found.positions_checked = True
        ours: dict[str, Decimal] = {}
        for _, symbol, qty in self._host.open_strategy_positions():
            ours[symbol] = ours.get(symbol, _ZERO) + qty
        orders = self._orders
        differing = [
            symbol
            for symbol in sorted(set(ours) | {s for s, q in theirs.items() if q})
            if orders.trades(symbol) and ours.get(symbol, _ZERO) != theirs.get(symbol, _ZERO)
        ]
        for symbol in differing:
            if found.confirm("position", symbol):
                found.position_mismatches.append(
                    PositionMismatch(symbol, ours.get(symbol, _ZERO), Decimal(theirs.get(symbol, _ZERO)))
                )
        state = self._host.state
        if found.position_mismatches:
            if not state.paused:
                listed = ", ".join(
                    f"{m.symbol} ours {m.ours} venue {m.venue}" for m in found.position_mismatches
                )
                state.pause(f"positions differ from the venue's: {listed}", _ACTOR)
                self._paused_by_us = True
        elif not differing and self._paused_by_us:
            self._paused_by_us = False
            last = state.changes[-1] if state.changes else None
            # Only our own pause is lifted: one an operator set since stays.
            if state.paused and last is not None and last.actor == _ACTOR and last.action == "pause":
                state.resume("positions agree with the venue again", _ACTOR)

    def _check_protection(self, found: _Pass) -> None:
        """Positions with neither a working stop nor a working exit (each one is alerted)."""
        working = self._orders.working_orders()
        for strategy, symbol, _ in self._host.open_strategy_positions():
            covered = any(
                o.symbol == symbol
                and self._orders.strategy_of(o.client_order_id) == strategy
                and o.tag in (Leg.STOP.value, Leg.EXIT.value)
                for o in working
            )
            if not covered and found.confirm("unprotected", f"{strategy}/{symbol}"):
                found.unprotected.append(f"{strategy}/{symbol}")

    # -- the report -----------------------------------------------------------------------------

    def _finish(self, found: _Pass) -> RecoveryReport:
        report = RecoveryReport(
            stage=found.stage,
            ts=self._host.clock.now_ns(),
            restored_orders=found.restored_orders,
            restored_groups=found.restored_groups,
            adopted=tuple(found.adopted),
            never_sent=tuple(found.never_sent),
            shadows=tuple(found.shadows),
            orphans_cancelled=tuple(found.orphans_cancelled),
            orphans_adopted=tuple(found.orphans_adopted),
            missed_fills=tuple(found.missed_fills),
            estimated_fills=tuple(found.estimated_fills),
            unpriced=tuple(found.unpriced),
            groups_resumed=tuple(found.groups_resumed),
            groups_closed=tuple(found.groups_closed),
            position_mismatches=tuple(found.position_mismatches),
            unprotected=tuple(found.unprotected),
            positions_checked=found.positions_checked,
            suspected=len(self._suspects),
            paused=self._host.state.paused,
            venue_error=found.venue_error,
        )
        self.last_report = report
        if found.stage == "start" or not report.in_sync:
            self._host.event_log.record(
                f"reconciled {report.stage} {report.ts} adopted={len(report.adopted)} "
                f"never_sent={len(report.never_sent)} shadows={len(report.shadows)} "
                f"orphans={len(report.orphans_cancelled) + len(report.orphans_adopted)} "
                f"missed_fills={len(report.missed_fills)} mismatches={len(report.position_mismatches)}"
            )
        self._raise_alerts(report)
        return report

    def _raise_alerts(self, report: RecoveryReport) -> None:
        orphans = report.orphans_cancelled + report.orphans_adopted
        if orphans:
            self._alert(
                "orphan",
                f"{len(orphans)} orphan order(s) at the venue: "
                f"cancelled {_listed(report.orphans_cancelled)}; adopted {_listed(report.orphans_adopted)}",
            )
        if report.shadows:
            self._alert("shadow", f"{len(report.shadows)} shadow order(s) settled: {_listed(report.shadows)}")
        if report.estimated_fills or report.unpriced:
            self._alert(
                "fill_estimated",
                f"missed fills the venue does not list: estimated {_listed(report.estimated_fills)}; "
                f"unpriced {_listed(report.unpriced)}",
            )
        if report.position_mismatches:
            listed = "; ".join(
                f"{m.symbol}: ours {m.ours}, venue {m.venue}" for m in report.position_mismatches
            )
            self._alert("position_mismatch", f"positions differ from the venue's, entries paused: {listed}")
        if report.unprotected:
            self._alert("unprotected_position", f"no working stop or exit: {_listed(report.unprotected)}")
        if report.venue_error:
            self._alert("reconciliation_failed", f"the venue could not be asked: {report.venue_error}")

    def _alert(self, kind: str, message: str) -> None:
        if self._on_alert is not None:
            self._on_alert(kind, message)


def _listed(ids: Sequence[str], limit: int = 10) -> str:
    if not ids:
        return "none"
    shown = ", ".join(ids[:limit])
    return shown if len(ids) <= limit else f"{shown} and {len(ids) - limit} more"
