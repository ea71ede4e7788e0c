"""What a restarted node needs from the store: every id it wrote, open orders, plans, fills, pause."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from quantdesk.execution.client_ids import Leg
from quantdesk.execution.recovery import StoredBracket, StoredFill, StoredOrder, StoredPosition, StoredState
from quantdesk.model import Fill, OrderStatus
from quantdesk.store.models import AuditLogRow, DecisionRow, FillRow, OrderRow, PositionRow, SignalRow

_NOTHING = Decimal(0)
_PAUSING = {"pause", "kill_switch"}
_IN_FLIGHT = sorted(
    status
    for status in OrderStatus
    if status.is_open or status in (OrderStatus.PENDING_SUBMIT, OrderStatus.INITIALIZED)
)
_CHUNK = 500  # an IN list well under SQLite's and psycopg's parameter limits


def load_stored_state(sessions: sessionmaker[Session], *, since_ts: int | None = None) -> StoredState:
    """Everything the reconciler needs from the store, as plain values (reads only).

    - every client order id ever written (reserved: none is sent again);
    - the orders to look at: every order still in flight, every order of their plans (OCO
      groups), of the plans whose fills make up a position still open, and the exits of those
      (strategy, symbol) pairs since; older history stays in the store (its ids are reserved
      and its fills replayed all the same);
    - every fill in booking order, with its order's strategy and leg (the portfolio is
      replayed from them), and each order's filled quantity, average price and fees taken
      from its fills (the order row may lag them by a batch);
    - the stop and targets of those orders' plans (from the approved decision's signal);
    - the position rows.

    `since_ts` (the venue account's start) leaves out orders created and fills made before
    it: a store that outlived its venue account must not bring the old account back.
    """
    with sessions() as session:
        order_filter = [] if since_ts is None else [OrderRow.ts_created >= since_ts]
        client_ids = frozenset(session.scalars(select(OrderRow.client_order_id)))
        positions = tuple(
            StoredPosition(row.strategy, row.symbol, row.qty, row.avg_price, row.realized_pnl, row.fees)
            for row in session.scalars(select(PositionRow).order_by(PositionRow.id))
        )
        fill_query = (
            select(FillRow, OrderRow.client_order_id, OrderRow.broker_order_id)
            .add_columns(OrderRow.symbol, OrderRow.side, OrderRow.strategy, OrderRow.leg, OrderRow.oco_group)
            .join(OrderRow, FillRow.order_id == OrderRow.id)
            .order_by(FillRow.id)
        )
        if since_ts is not None:
            fill_query = fill_query.where(FillRow.ts >= since_ts)
        fills: list[StoredFill] = []
        sums: dict[str, tuple[Decimal, Decimal, Decimal]] = {}
        held: dict[tuple[str, str], Decimal] = {}
        # The plans whose fills make up each pair's current position (since it was last flat).
        holding: dict[tuple[str, str], set[str]] = {}
        for row, client_order_id, broker_id, symbol, side, strategy, leg, plan in session.execute(fill_query):
            fill = Fill(
                execution_id=row.execution_id,
                client_order_id=client_order_id,
                venue_order_id=broker_id or "",
                symbol=symbol,
                side=side,
                qty=row.qty,
                price=row.price,
                fee=row.fee,
                ts_event=row.ts,
                ts_init=row.ts_init,
            )
            fills.append(StoredFill(strategy, leg.value if leg is not None else "", fill))
            qty, value, fees = sums.get(client_order_id, (_NOTHING, _NOTHING, _NOTHING))
            sums[client_order_id] = (qty + fill.qty, value + fill.qty * fill.price, fees + fill.fee)
            key = (strategy, symbol)
            before = held.get(key, _NOTHING)
            held[key] = before + fill.signed_qty
            if not before:
                holding[key] = set()
            if plan:
                holding[key].add(plan)
        in_flight = session.scalars(
            select(OrderRow).where(OrderRow.status.in_(_IN_FLIGHT), *order_filter)
        ).all()
        by_id = {row.id: row for row in in_flight}
        wanted = {row.oco_group for row in in_flight if row.oco_group}
        for key, qty in held.items():
            if qty:
                wanted.update(holding.get(key, ()))
        ordered = sorted(wanted)
        for start in range(0, len(ordered), _CHUNK):
            in_plans = select(OrderRow).where(
                OrderRow.oco_group.in_(ordered[start : start + _CHUNK]), *order_filter
            )
            by_id.update((row.id, row) for row in session.scalars(in_plans))
        pairs = {(row.strategy, row.symbol) for row in by_id.values()}
        if pairs:
            # Exits since the oldest loaded order: recovery tells from them which groups were closing.
            earliest = min(row.ts_created for row in by_id.values())
            exits = select(OrderRow).where(
                OrderRow.leg == Leg.EXIT,
                OrderRow.ts_created >= earliest,
                OrderRow.symbol.in_(sorted({symbol for _, symbol in pairs})),
                *order_filter,
            )
            by_id.update(
                (row.id, row) for row in session.scalars(exits) if (row.strategy, row.symbol) in pairs
            )
        rows = [by_id[row_id] for row_id in sorted(by_id)]
        plans = sorted({row.oco_group for row in rows if row.oco_group and row.leg is Leg.ENTRY})
        brackets: dict[str, StoredBracket] = {}
        for start in range(0, len(plans), _CHUNK):
            planned = (
                select(DecisionRow.client_plan_id, SignalRow.stop, SignalRow.targets)
                .join(SignalRow, DecisionRow.signal_id == SignalRow.id)
                .where(DecisionRow.client_plan_id.in_(plans[start : start + _CHUNK]), DecisionRow.approved)
            )
            for plan_id, stop, targets in session.execute(planned):
                if plan_id is not None:
                    brackets[plan_id] = StoredBracket(stop, tuple(Decimal(t) for t in targets or ()))
        return StoredState(
            client_order_ids=client_ids,
            orders=tuple(_stored_order(row, sums.get(row.client_order_id)) for row in rows),
            fills=tuple(fills),
            brackets=brackets,
            positions=positions,
        )


def _stored_order(row: OrderRow, filled: tuple[Decimal, Decimal, Decimal] | None) -> StoredOrder:
    qty, value, fees = filled or (_NOTHING, _NOTHING, _NOTHING)
    return StoredOrder(
        client_order_id=row.client_order_id,
        strategy=row.strategy,
        plan_id=row.oco_group or "",
        leg=row.leg.value if row.leg is not None else "",
        symbol=row.symbol,
        side=row.side,
        order_type=row.order_type,
        time_in_force=row.time_in_force,
        qty=row.qty,
        price=row.price,
        stop_price=row.stop_price,
        status=row.status,
        filled_qty=qty,
        avg_fill_price=value / qty if qty else _NOTHING,
        fees=fees,
        venue_order_id=row.broker_order_id or "",
        reason=row.reason,
        ts_created=row.ts_created,
        ts_updated=row.ts_updated,
    )


def stored_pause(sessions: sessionmaker[Session]) -> str | None:
    """Why new entries were paused when the node went down, or None: a pause or a kill switch
    outlives a crash (the last pause, kill switch or resume in the audit log decides)."""
    with sessions() as session:
        last = session.scalars(
            select(AuditLogRow)
            .where(AuditLogRow.action.in_([*_PAUSING, "resume"]))
            .order_by(AuditLogRow.ts.desc(), AuditLogRow.id.desc())
            .limit(1)
        ).first()
    if last is None or last.action not in _PAUSING:
        return None
    return f"{last.action} by {last.actor}: {last.reason}"


def stored_client_ids(sessions: sessionmaker[Session]) -> frozenset[str]:
    """Every client order id the store ever wrote: a new account must not reuse one."""
    with sessions() as session:
        return frozenset(session.scalars(select(OrderRow.client_order_id)))
