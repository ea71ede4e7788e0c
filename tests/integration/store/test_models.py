"""The store's tables on both back ends: the audit chain, unique ids, exact decimals, foreign keys."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session, sessionmaker

from quantdesk.engine.messages import DecisionRecord
from quantdesk.execution.client_ids import Leg
from quantdesk.model import Fill, Order, OrderStatus, OrderType, Position, Side, Signal
from quantdesk.risk.kill_switch import StateChange
from quantdesk.risk.messages import Mode
from quantdesk.store import (
    AppendOnlyViolation,
    AuditLogRow,
    DecisionRow,
    FillRow,
    OrderRow,
    PositionRow,
    SignalRow,
)

T0 = 1_704_205_800_000_000_000
PLAN = "P" * 52
SHA = "c0ffee" * 10 + "abcd"


def _signal(ts: int = T0) -> Signal:
    return Signal(
        strategy="orb",
        symbol="RELIANCE",
        side=Side.BUY,
        ts=ts,
        entry=Decimal("2500.05"),
        stop=Decimal("2480.00"),
        targets=(Decimal("2540.10"), Decimal("2580.15")),
        features=Signal.freeze_features({"range_pct": 0.8, "volume_z": 2.5}),
        rationale="opening range breakout",
    )


def _record(signal: Signal, plan_id: str = PLAN, *, approved: bool = True) -> DecisionRecord:
    return DecisionRecord(
        plan_id=plan_id,
        signal=signal,
        approved=approved,
        reasons=() if approved else ("PAUSED", "ENTRY_CUTOFF"),
        details=() if approved else ("trading is paused", "past the 15:25 cutoff"),
        qty=Decimal(40),
        risk_amount=Decimal("802.00"),
        risk_pct=Decimal("0.2505"),
        ts=signal.ts + 1_000,
    )


def _order(client_order_id: str, leg: Leg, qty: str = "40") -> Order:
    order = Order(
        client_order_id=client_order_id,
        symbol="RELIANCE",
        side=Side.BUY if leg is Leg.ENTRY else Side.SELL,
        order_type=OrderType.LIMIT if leg is not Leg.STOP else OrderType.STOP,
        qty=Decimal(qty),
        price=Decimal("2500.05") if leg is not Leg.STOP else None,
        stop_price=Decimal("2480.00") if leg is Leg.STOP else None,
        tag=leg.value,
        ts_created=T0 + 2_000,
    )
    order.transition(OrderStatus.PENDING_SUBMIT, T0 + 2_000)
    return order


def _fill(order: Order, execution_id: str, qty: str) -> Fill:
    return Fill(
        execution_id=execution_id,
        client_order_id=order.client_order_id,
        venue_order_id="V1",
        symbol=order.symbol,
        side=order.side,
        qty=Decimal(qty),
        price=Decimal("2500.05"),
        fee=Decimal("1.2345"),
        ts_event=T0 + 5_000,
        ts_init=T0 + 5_100,
    )


def _decision(session: Session, plan_id: str | None = PLAN) -> DecisionRow:
    signal_row = SignalRow.from_signal(
        _signal(), config_sha=SHA, score=0.73, feature_scores={"range_pct": 0.9}
    )
    session.add(signal_row)
    session.flush()
    row = DecisionRow.from_record(
        _record(_signal(), plan_id or ""), signal_id=signal_row.id, mode=Mode.PAPER, config_sha=SHA
    )
    session.add(row)
    session.flush()
    return row


def test_chain_from_signal_to_fills_is_stored_and_joins(sessions: sessionmaker[Session]) -> None:
    entry = _order("qd-entry-0", Leg.ENTRY)
    stop = _order("qd-stop-0", Leg.STOP)
    with sessions.begin() as session:
        decision = _decision(session)
        # Outbox: the entry is committed PENDING_SUBMIT before the venue hears of it.
        entry_row = OrderRow.from_order(entry, strategy="orb", decision_id=decision.id, oco_group=PLAN)
        stop_row = OrderRow.from_order(stop, strategy="orb", oco_group=PLAN)
        session.add_all([entry_row, stop_row])
    entry.transition(OrderStatus.SUBMITTED, T0 + 3_000)
    entry.venue_order_id = "V1"
    first, second = _fill(entry, "E-1", "15"), _fill(entry, "E-2", "25")
    for fill in (first, second):
        entry.apply_fill(fill.qty, fill.price, fill.fee, fill.ts_event)
    with sessions.begin() as session:
        row = session.scalars(select(OrderRow).where(OrderRow.client_order_id == "qd-entry-0")).one()
        row.update_from(entry)
        session.add_all(
            [FillRow.from_fill(first, order_id=row.id), FillRow.from_fill(second, order_id=row.id)]
        )

    with sessions() as session:
        chain = session.execute(
            select(
                SignalRow.strategy, DecisionRow.client_plan_id, OrderRow.client_order_id, FillRow.execution_id
            )
            .join(DecisionRow, DecisionRow.signal_id == SignalRow.id)
            .join(OrderRow, OrderRow.decision_id == DecisionRow.id)
            .join(FillRow, FillRow.order_id == OrderRow.id)
            .order_by(FillRow.execution_id)
        ).all()
        assert [tuple(r) for r in chain] == [
            ("orb", PLAN, "qd-entry-0", "E-1"),
            ("orb", PLAN, "qd-entry-0", "E-2"),
        ]
        group = session.scalars(
            select(OrderRow).where(OrderRow.oco_group == PLAN).order_by(OrderRow.id)
        ).all()
        assert [(o.leg, o.status, o.decision_id is None) for o in group] == [
            (Leg.ENTRY, OrderStatus.FILLED, False),
            (Leg.STOP, OrderStatus.PENDING_SUBMIT, True),
        ]
        fill_row = session.scalars(select(FillRow).where(FillRow.execution_id == "E-2")).one()
        assert fill_row.order.decision is not None
        signal = fill_row.order.decision.signal
        assert (signal.side, signal.targets, signal.features) == (
            Side.BUY,
            [Decimal("2540.10"), Decimal("2580.15")],
            {"range_pct": 0.8, "volume_z": 2.5},
        )
        assert (signal.score, signal.feature_scores, signal.config_sha) == (0.73, {"range_pct": 0.9}, SHA)
        assert (group[0].filled_qty, group[0].fees, group[0].broker_order_id) == (
            Decimal(40),
            Decimal("2.4690"),
            "V1",
        )


def test_blocked_decision_keeps_every_reason(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        signal_row = SignalRow.from_signal(_signal())
        session.add(signal_row)
        session.flush()
        session.add(
            DecisionRow.from_record(
                _record(_signal(), "", approved=False),
                signal_id=signal_row.id,
                mode=Mode.PAPER,
                config_sha=SHA,
            )
        )
    with sessions() as session:
        row = session.scalars(select(DecisionRow)).one()
        assert (row.approved, row.status, row.client_plan_id, row.mode) == (
            False,
            "BLOCKED",
            None,
            Mode.PAPER,
        )
        assert row.block_reasons == ["PAUSED", "ENTRY_CUTOFF"]
        assert row.block_details == ["trading is paused", "past the 15:25 cutoff"]


def test_client_plan_id_is_unique_but_missing_ones_may_repeat(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        _decision(session, None)
        _decision(session, None)
        _decision(session, PLAN)

    with pytest.raises(IntegrityError), sessions.begin() as session:
        _decision(session, PLAN)


def test_client_order_id_is_unique(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        session.add(OrderRow.from_order(_order("qd-x-0", Leg.EXIT), oco_group=PLAN))

    with pytest.raises(IntegrityError), sessions.begin() as session:
        session.add(OrderRow.from_order(_order("qd-x-0", Leg.EXIT), oco_group=PLAN))


def test_execution_id_is_unique(sessions: sessionmaker[Session]) -> None:
    order = _order("qd-entry-0", Leg.ENTRY)
    with sessions.begin() as session:
        row = OrderRow.from_order(order)
        session.add(row)
        session.flush()
        session.add(FillRow.from_fill(_fill(order, "E-1", "10"), order_id=row.id))
        order_id = row.id

    with pytest.raises(IntegrityError), sessions.begin() as session:
        session.add(FillRow.from_fill(_fill(order, "E-1", "10"), order_id=order_id))


def test_foreign_keys_are_enforced(sessions: sessionmaker[Session]) -> None:
    order = _order("qd-entry-0", Leg.ENTRY)
    with pytest.raises(IntegrityError), sessions.begin() as session:
        session.add(OrderRow.from_order(order, decision_id=999))
    with pytest.raises(IntegrityError), sessions.begin() as session:
        session.add(FillRow.from_fill(_fill(order, "E-1", "1"), order_id=999))
    with pytest.raises(IntegrityError), sessions.begin() as session:
        session.add(
            DecisionRow.from_record(_record(_signal()), signal_id=999, mode=Mode.PAPER, config_sha=SHA)
        )


@pytest.mark.parametrize(
    ("written", "read"),
    [
        ("123.4567890123", "123.4567890123"),
        ("-0.0000000001", "-0.0000000001"),
        ("99999999999999999.9999999999", "99999999999999999.9999999999"),
        ("0.1", "0.1"),
        ("0.00000000005", "0"),  # rounded half even to the 10th decimal...
        ("0.00000000015", "0.0000000002"),  # ...on both back ends alike
    ],
)
def test_decimal_round_trips_exactly(sessions: sessionmaker[Session], written: str, read: str) -> None:
    position = Position("RELIANCE", qty=Decimal(written), avg_price=Decimal(written))
    with sessions.begin() as session:
        session.add(PositionRow.from_position("orb", position))

    with sessions() as session:
        row = session.scalars(select(PositionRow)).one()
        assert row.qty == Decimal(read)
        assert isinstance(row.qty, Decimal)
        assert row.avg_price == Decimal(read)


def test_decimal_too_large_for_the_column_is_refused(sessions: sessionmaker[Session]) -> None:
    position = Position("RELIANCE", qty=Decimal("1E18"))
    with pytest.raises(StatementError, match="integer digits"), sessions.begin() as session:
        session.add(PositionRow.from_position("orb", position))


def test_position_is_one_row_per_strategy_and_symbol(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        session.add(PositionRow.from_position("orb", Position("RELIANCE", qty=Decimal(1))))
        session.add(PositionRow.from_position("vwap", Position("RELIANCE", qty=Decimal(2))))

    with pytest.raises(IntegrityError), sessions.begin() as session:
        session.add(PositionRow.from_position("orb", Position("RELIANCE", qty=Decimal(3))))


def test_session_refuses_to_change_or_delete_audit_rows(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        session.add(AuditLogRow.from_state_change(StateChange("pause", "alice", "news", T0)))

    with pytest.raises(AppendOnlyViolation), sessions.begin() as session:
        session.scalars(select(AuditLogRow)).one().actor = "mallory"
    with pytest.raises(AppendOnlyViolation), sessions.begin() as session:
        session.delete(session.scalars(select(AuditLogRow)).one())
    with pytest.raises(AppendOnlyViolation), sessions.begin() as session:
        session.execute(update(AuditLogRow).values(actor="mallory"))
    with pytest.raises(AppendOnlyViolation), sessions.begin() as session:
        session.execute(delete(AuditLogRow))

    with sessions() as session:
        row = session.scalars(select(AuditLogRow)).one()
        assert (row.action, row.actor, row.reason, row.ts) == ("pause", "alice", "news", T0)
