"""What the store knows that a restarted node needs: its orders, their plans and fills, the pause state."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from quantdesk.engine.recovery import StoredOrder, StoredPlan, StoredState
from quantdesk.model import Fill, Order
from quantdesk.store.models import AuditLogRow, DecisionRow, FillRow, OrderRow, SignalRow

_PAUSING = {"pause", "kill_switch"}


def load_state(
    sessions: sessionmaker[Session],
    *,
    known_to_venue: Callable[[str], bool],
    since_ts: int | None = None,
) -> StoredState:
    """Read what recovery needs. An order is restored if the venue knows it, or if it may still be
    in flight (not terminal) and was created since `since_ts` (the venue account's start): an
    order of an earlier, unrelated account is never touched, let alone re-sent."""
    with sessions() as session:
        rows = session.scalars(select(OrderRow).order_by(OrderRow.id)).all()
        all_ids = frozenset(row.client_order_id for row in rows)
        chosen = [
            row
            for row in rows
            if known_to_venue(row.client_order_id)
            or (not row.status.is_terminal and (since_ts is None or row.ts_created >= since_ts))
        ]
        plan_ids = {row.oco_group for row in chosen if row.oco_group}
        plans: dict[str, StoredPlan] = {}
        if plan_ids:
            query = (
                select(DecisionRow.client_plan_id, SignalRow.stop, SignalRow.targets)
                .join(SignalRow, DecisionRow.signal_id == SignalRow.id)
                .where(DecisionRow.client_plan_id.in_(sorted(plan_ids)))
            )
            for plan_id, stop, targets in session.execute(query):
                if plan_id is not None:
                    plans[plan_id] = StoredPlan(stop, tuple(Decimal(t) for t in targets or ()))
        by_row = {row.id: row for row in chosen}
        fills = [
            _fill(fill_row, by_row[fill_row.order_id])
            for fill_row in session.scalars(
                select(FillRow).where(FillRow.order_id.in_(list(by_row))).order_by(FillRow.ts, FillRow.id)
            )
        ]
        last = session.scalars(
            select(AuditLogRow)
            .where(AuditLogRow.action.in_([*_PAUSING, "resume"]))
            .order_by(AuditLogRow.ts.desc(), AuditLogRow.id.desc())
            .limit(1)
        ).first()
        paused = f"{last.action} by {last.actor}: {last.reason}" if last and last.action in _PAUSING else None
        return StoredState(
            orders=[StoredOrder(_order(row), row.strategy, row.oco_group or "") for row in chosen],
            plans=plans,
            fills=fills,
            client_ids=all_ids,
            paused_reason=paused,
        )


def _order(row: OrderRow) -> Order:
    return Order(
        client_order_id=row.client_order_id,
        symbol=row.symbol,
        side=row.side,
        order_type=row.order_type,
        qty=row.qty,
        price=row.price,
        stop_price=row.stop_price,
        time_in_force=row.time_in_force,
        tag=row.leg.value if row.leg is not None else "",
        ts_created=row.ts_created,
        status=row.status,
        venue_order_id=row.broker_order_id or "",
        filled_qty=row.filled_qty,
        avg_fill_price=row.avg_fill_price,
        fees=row.fees,
        reason=row.reason,
        ts_last=row.ts_updated,
    )


def _fill(row: FillRow, order: OrderRow) -> Fill:
    return Fill(
        execution_id=row.execution_id,
        client_order_id=order.client_order_id,
        venue_order_id=order.broker_order_id or "",
        symbol=order.symbol,
        side=order.side,
        qty=row.qty,
        price=row.price,
        fee=row.fee,
        ts_event=row.ts,
        ts_init=row.ts_init,
    )
