"""Recovery after a restart: put back what the store knew, ask the venue what happened, make them agree.

The order of the steps is the point:

1. restore every stored order (open ones as UNKNOWN: nobody knows what happened
   to them while the node was down), every client id ever issued (never sent
   again), the OCO groups and the fills the store already booked;
2. settle the unknown orders by looking each up at the venue by client id (the
   same path as after a timeout: absent means never sent, and a protective child
   that never arrived is replaced under a new id);
3. apply the venue's executions the store lacks, through the normal fill path, so
   the OCO manager reacts as if they had just happened (children after an entry
   fill, siblings cancelled after a child fill);
4. cancel orphans (open at the venue, unknown to the store) and alert;
5. give every open group without a working stop its protection again;
6. compare positions with the venue's: a mismatch alerts and pauses new entries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from quantdesk.engine.engine import Engine
from quantdesk.model import Fill, Order, OrderFilled
from quantdesk.venues.base import RecoverableVenue

_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class StoredOrder:
    """An order as the store last saw it, with the strategy and plan it belongs to."""

    order: Order
    strategy: str
    plan_id: str


@dataclass(frozen=True, slots=True)
class StoredPlan:
    """What an OCO group needs from its plan: the protective stop and the targets."""

    stop: Decimal | None
    targets: tuple[Decimal, ...]


@dataclass(frozen=True, slots=True)
class StoredState:
    """Everything the store knows that recovery needs, loaded by `quantdesk.store.recovery`."""

    orders: Sequence[StoredOrder]
    plans: Mapping[str, StoredPlan]
    fills: Sequence[Fill]
    client_ids: frozenset[str]
    paused_reason: str | None = None


@dataclass(slots=True)
class RecoveryReport:
    """What recovery found and did; the node logs it and shows it in /status."""

    restored_orders: int = 0
    restored_fills: int = 0
    settled: int = 0
    missed_fills: list[str] = field(default_factory=list)
    orphans_cancelled: list[str] = field(default_factory=list)
    reprotected: list[str] = field(default_factory=list)
    closed_unprotected: list[str] = field(default_factory=list)
    position_mismatches: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.missed_fills or self.orphans_cancelled or self.position_mismatches)


def recover(engine: Engine, venue: RecoverableVenue, state: StoredState) -> RecoveryReport:
    """Reconcile a freshly built engine (not yet started) with its store and its venue."""
    orders = engine.orders
    report = RecoveryReport(restored_orders=len(state.orders))
    known_fills = orders.restore(state.orders, state.plans, state.fills, state.client_ids)
    engine.restore_fills(known_fills)
    report.restored_fills = len(known_fills)
    if state.paused_reason is not None:
        engine.pause(f"restored: {state.paused_reason}", "recovery")

    report.settled = orders.resolve_unknown()

    booked = {fill.execution_id for _, fill in known_fills}
    missed = [
        f for f in venue.executions() if f.execution_id not in booked and f.client_order_id in orders.orders
    ]
    for fill in sorted(missed, key=lambda f: f.ts_event):
        orders.on_order_event(OrderFilled(fill))
        report.missed_fills.append(fill.execution_id)

    for state_at_venue in venue.open_orders():
        if state_at_venue.client_order_id not in orders.orders:
            venue.cancel_order(state_at_venue.client_order_id)
            report.orphans_cancelled.append(state_at_venue.client_order_id)
    if report.orphans_cancelled:
        orders.alert("orphan", f"cancelled {len(report.orphans_cancelled)} orders unknown to the store")

    report.reprotected = orders.reprotect_open_groups()
    report.closed_unprotected = close_unprotected(engine)
    report.position_mismatches = position_mismatches(engine, venue)
    if report.position_mismatches:
        orders.alert("position_mismatch", "; ".join(report.position_mismatches))
        engine.pause("positions differ from the venue's after recovery", "recovery")
    return report


def close_unprotected(engine: Engine) -> list[str]:
    """Close at market, with an alert, every position whose stop cannot be known after a restart
    (its plan's signal never reached the store), and cancel such a plan's entry if it still
    works, when the limits require a stop on every entry: a position nobody can protect is
    not kept, nor opened."""
    if engine.pipeline.risk.allow_stopless_entries:
        return []
    closed = []
    for group in engine.orders.open_groups():
        entry = engine.orders.orders[group.entry_id]
        if group.stop is None and entry.is_open:
            engine.orders.cancel(group.entry_id)  # an entry whose stop is unknown must not fill
            closed.append(f"{group.strategy}/{group.symbol} entry")
    for strategy, symbol, qty in engine.open_strategy_positions():
        if engine.orders.stop_for(strategy, symbol) is None:
            engine.orders.exit(strategy, symbol, qty, "stop unknown after a restart")
            closed.append(f"{strategy}/{symbol}")
    if closed:
        engine.orders.alert("bracket_unknown", f"closed at market, stop unknown after a restart: {closed}")
    return closed


def position_mismatches(engine: Engine, venue: RecoverableVenue) -> list[str]:
    """Symbols whose net position differs between the engine and the venue, described."""
    ours = {p.symbol: p.qty for p in engine.portfolio.open_positions()}
    theirs = {symbol: qty for symbol, qty in venue.positions.items() if qty != 0}
    return [
        f"{symbol}: ours {ours.get(symbol, _ZERO)}, venue {theirs.get(symbol, _ZERO)}"
        for symbol in sorted(set(ours) | set(theirs))
        if ours.get(symbol, _ZERO) != theirs.get(symbol, _ZERO)
    ]


@dataclass(slots=True)
class ReconcileReport:
    """One periodic check of the node against its venue."""

    orphans_cancelled: list[str] = field(default_factory=list)
    shadows: list[str] = field(default_factory=list)
    missed_fills: list[str] = field(default_factory=list)
    position_mismatches: list[str] = field(default_factory=list)

    @property
    def found_anything(self) -> bool:
        return bool(self.orphans_cancelled or self.shadows or self.missed_fills or self.position_mismatches)


def reconcile(engine: Engine, venue: RecoverableVenue, *, grace_ns: int = 2_000_000_000) -> ReconcileReport:
    """While running: no orphans (open at the venue, unknown here: cancelled, alerted), no shadows
    (open here, not at the venue: settled from a lookup, alerted), no execution left unbooked,
    positions that agree (else alert and pause new entries).

    Orders younger than `grace_ns` are left alone: their answer may still be on its way.
    """
    orders = engine.orders
    report = ReconcileReport()
    now = engine.clock.now_ns()
    open_at_venue = {state.client_order_id for state in venue.open_orders()}
    for client_order_id in sorted(open_at_venue - set(orders.orders)):
        venue.cancel_order(client_order_id)
        report.orphans_cancelled.append(client_order_id)
    missed = [
        f
        for f in venue.executions()
        if not orders.has_execution(f.execution_id) and f.client_order_id in orders.orders
    ]
    for fill in sorted(missed, key=lambda f: f.ts_event):
        orders.on_order_event(OrderFilled(fill))
        report.missed_fills.append(fill.execution_id)
    report.shadows = [
        order.client_order_id
        for order in orders.working_orders()
        if order.status.is_open
        and order.client_order_id not in open_at_venue
        and now - order.ts_created >= grace_ns
    ]
    for client_order_id in report.shadows:
        orders.settle_shadow(client_order_id, venue.query_order(client_order_id))
    if report.shadows:
        orders.reprotect_open_groups()  # a stop that vanished at the venue is replaced
    if report.orphans_cancelled:
        orders.alert("orphan", f"cancelled {len(report.orphans_cancelled)} orders unknown to the node")
    if report.shadows:
        orders.alert("shadow", f"{len(report.shadows)} orders open here were not open at the venue")
    report.position_mismatches = position_mismatches(engine, venue)
    if report.position_mismatches:
        orders.alert("position_mismatch", "; ".join(report.position_mismatches))
        engine.pause("positions differ from the venue's", "reconciliation")
    return report
