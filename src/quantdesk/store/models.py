"""The store's tables: the chain signal -> decision -> orders -> fills, positions, risk events, audit log."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Double,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    event,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Mapper,
    ORMExecuteState,
    Session,
    mapped_column,
    relationship,
)
from sqlalchemy.types import TypeEngine

from quantdesk.engine.messages import DecisionRecord
from quantdesk.errors import FatalError
from quantdesk.execution.client_ids import Leg
from quantdesk.model import (
    Fill,
    Instrument,
    Order,
    OrderStatus,
    OrderType,
    Position,
    Side,
    Signal,
    TimeInForce,
)
from quantdesk.risk.kill_switch import StateChange
from quantdesk.risk.messages import Mode

# Money and quantities: 18 integer digits and 10 decimals. Every value is
# rounded (half even) to the 10 decimals before it is written, on both back
# ends, so SQLite and PostgreSQL hold the same digits.
DECIMAL_PRECISION = 28
DECIMAL_SCALE = 10
_QUANTUM = Decimal(1).scaleb(-DECIMAL_SCALE)
_FIT = Context(prec=DECIMAL_PRECISION, traps=[InvalidOperation])
# Room for the sign, 18 digits, the point and 10 decimals.
_DECIMAL_TEXT_LENGTH = DECIMAL_PRECISION + 2

# Fixed constraint names, so migrations (and SQLite's batch mode) can address them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class AppendOnlyViolation(FatalError):
    """Code tried to change or delete an audit_log row: a bug, the log is append-only."""


class ExactDecimal(TypeDecorator[Decimal]):
    """A `Decimal` stored exactly: NUMERIC(28, 10) on PostgreSQL, fixed-point text on SQLite.

    SQLite's NUMERIC is a binary float, hence the text there. Text compares
    equal exactly but orders lexically: on SQLite, sum and compare money in
    Python, not in SQL.
    """

    impl = Numeric(DECIMAL_PRECISION, DECIMAL_SCALE, asdecimal=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(_DECIMAL_TEXT_LENGTH))
        return dialect.type_descriptor(Numeric(DECIMAL_PRECISION, DECIMAL_SCALE, asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        fitted = fit_decimal(value)
        return format(fitted, "f") if dialect.name == "sqlite" else fitted

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return value if isinstance(value, Decimal) else Decimal(value)


def fit_decimal(value: Decimal) -> Decimal:
    """`value` on the store's 10-decimal grid, or ValueError if it is not finite or too large."""
    if not isinstance(value, Decimal):
        raise TypeError(f"store columns take Decimal, not {type(value).__name__} ({value!r})")
    if not value.is_finite():
        raise ValueError(f"cannot store {value}: not a finite number")
    try:
        return value.quantize(_QUANTUM, rounding=ROUND_HALF_EVEN, context=_FIT)
    except InvalidOperation:
        raise ValueError(
            f"cannot store {value}: more than {DECIMAL_PRECISION - DECIMAL_SCALE} integer digits"
        ) from None


class DecimalList(TypeDecorator[list[Decimal]]):
    """A list of `Decimal` as a JSON array of exact strings (JSON numbers would be floats)."""

    impl = JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        return dialect.type_descriptor(JSONB() if dialect.name == "postgresql" else JSON())

    def process_bind_param(self, value: list[Decimal] | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        return [format(fit_decimal(v).normalize(), "f") for v in value]

    def process_result_value(self, value: Any, dialect: Dialect) -> list[Decimal] | None:
        if value is None:
            return None
        return [Decimal(v) for v in value]


_LEGS = {leg.value: leg for leg in Leg}
# Decision statuses written at decision time; later stages may add their own.
APPROVED = "APPROVED"
BLOCKED = "BLOCKED"

# JSONB on PostgreSQL: reports can ask `block_reasons @> '["PAUSED"]'`.
Json = JSON().with_variant(JSONB(), "postgresql")
# SQLite autoincrements only an INTEGER PRIMARY KEY; PostgreSQL gets BIGSERIAL.
Id = BigInteger().with_variant(Integer(), "sqlite")
Nanos = BigInteger
Money = ExactDecimal


def _text_enum(enum: type[StrEnum]) -> Enum:
    # Plain VARCHAR with no CHECK constraint: a new member needs no migration.
    return Enum(
        enum,
        native_enum=False,
        create_constraint=False,
        length=32,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


class Base(DeclarativeBase):
    """Declarative base of every table; its metadata is what Alembic compares against."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class InstrumentRow(Base):
    """Reference data: one instrument's symbol properties as they were when a session ran."""

    __tablename__ = "instruments"
    __table_args__ = (UniqueConstraint("symbol", "exchange"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    symbol: Mapped[str] = mapped_column(String(64))
    exchange: Mapped[str] = mapped_column(String(32))
    currency: Mapped[str] = mapped_column(String(8))
    tick_size: Mapped[Decimal] = mapped_column(Money)
    lot_size: Mapped[Decimal] = mapped_column(Money)
    min_qty: Mapped[Decimal] = mapped_column(Money)
    max_qty: Mapped[Decimal | None] = mapped_column(Money)
    multiplier: Mapped[Decimal] = mapped_column(Money)
    source: Mapped[str] = mapped_column(String(64), default="")

    @classmethod
    def from_instrument(cls, instrument: Instrument) -> InstrumentRow:
        return cls(
            symbol=instrument.symbol,
            exchange=instrument.exchange,
            currency=instrument.currency,
            tick_size=instrument.tick_size,
            lot_size=instrument.lot_size,
            min_qty=instrument.min_qty,
            max_qty=instrument.max_qty,
            multiplier=instrument.multiplier,
            source=instrument.source,
        )


class SignalRow(Base):
    """A strategy's signal with the features and scores that ranked it: the head of the chain."""

    __tablename__ = "signals"
    __table_args__ = (Index(None, "symbol", "ts"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    ts: Mapped[int] = mapped_column(Nanos, index=True)
    strategy: Mapped[str] = mapped_column(String(64), index=True)
    symbol: Mapped[str] = mapped_column(String(64))
    side: Mapped[Side] = mapped_column(_text_enum(Side))
    entry: Mapped[Decimal | None] = mapped_column(Money)
    stop: Mapped[Decimal | None] = mapped_column(Money)
    targets: Mapped[list[Decimal]] = mapped_column(DecimalList, default=list)
    qty: Mapped[Decimal | None] = mapped_column(Money)
    features: Mapped[dict[str, float]] = mapped_column(Json, default=dict)
    feature_scores: Mapped[dict[str, float]] = mapped_column(Json, default=dict)
    # A ranking score, not money: a float is what the ranker computes.
    score: Mapped[float | None] = mapped_column(Double)
    rationale: Mapped[str] = mapped_column(Text, default="")
    config_sha: Mapped[str] = mapped_column(String(64), default="")

    decisions: Mapped[list[DecisionRow]] = relationship(back_populates="signal")

    @classmethod
    def from_signal(
        cls,
        signal: Signal,
        *,
        config_sha: str = "",
        score: float | None = None,
        feature_scores: dict[str, float] | None = None,
    ) -> SignalRow:
        return cls(
            ts=signal.ts,
            strategy=signal.strategy,
            symbol=signal.symbol,
            side=signal.side,
            entry=signal.entry,
            stop=signal.stop,
            targets=list(signal.targets),
            qty=signal.qty,
            features=dict(signal.features),
            feature_scores=dict(feature_scores or {}),
            score=score,
            rationale=signal.rationale,
            config_sha=config_sha,
        )


class DecisionRow(Base):
    """The risk gate's answer to one signal: the sized plan it approved, or every reason it blocked.

    `client_plan_id` is NULL for a block decided before a plan id existed
    (ZERO_SIZE, PROTECTION, RANKING); both back ends let NULLs repeat under
    the unique constraint.
    """

    __tablename__ = "decisions"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    signal_id: Mapped[int] = mapped_column(ForeignKey("signals.id"), index=True)
    client_plan_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    ts: Mapped[int] = mapped_column(Nanos, index=True)
    mode: Mapped[Mode] = mapped_column(_text_enum(Mode))
    approved: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(32), index=True)
    risk_pct: Mapped[Decimal] = mapped_column(Money)
    risk_amount: Mapped[Decimal] = mapped_column(Money)
    qty: Mapped[Decimal] = mapped_column(Money)
    block_reasons: Mapped[list[str]] = mapped_column(Json, default=list)
    block_details: Mapped[list[str]] = mapped_column(Json, default=list)
    config_sha: Mapped[str] = mapped_column(String(64), default="")

    signal: Mapped[SignalRow] = relationship(back_populates="decisions")
    orders: Mapped[list[OrderRow]] = relationship(back_populates="decision")

    @classmethod
    def from_record(
        cls, record: DecisionRecord, *, signal_id: int, mode: Mode, config_sha: str
    ) -> DecisionRow:
        """The row of a pipeline decision; an empty plan id (a block before planning) becomes NULL."""
        return cls(
            signal_id=signal_id,
            client_plan_id=record.plan_id or None,
            ts=record.ts,
            mode=mode,
            approved=record.approved,
            status=APPROVED if record.approved else BLOCKED,
            risk_pct=record.risk_pct,
            risk_amount=record.risk_amount,
            qty=record.qty,
            block_reasons=list(record.reasons),
            block_details=list(record.details),
            config_sha=config_sha,
        )


class OrderRow(Base):
    """One order at the venue, written PENDING_SUBMIT before it is sent and updated by the venue's answers.

    `decision_id` is NULL for exits and flattens that no decision created;
    `oco_group` (the plan id) still ties them to their group.
    """

    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    decision_id: Mapped[int | None] = mapped_column(ForeignKey("decisions.id"), index=True)
    client_order_id: Mapped[str] = mapped_column(String(128), unique=True)
    broker_order_id: Mapped[str | None] = mapped_column(String(128), index=True)
    strategy: Mapped[str] = mapped_column(String(64), default="")
    symbol: Mapped[str] = mapped_column(String(64), index=True)
    leg: Mapped[Leg | None] = mapped_column(_text_enum(Leg))
    oco_group: Mapped[str | None] = mapped_column(String(64), index=True)
    order_type: Mapped[OrderType] = mapped_column(_text_enum(OrderType))
    side: Mapped[Side] = mapped_column(_text_enum(Side))
    time_in_force: Mapped[TimeInForce] = mapped_column(_text_enum(TimeInForce))
    qty: Mapped[Decimal] = mapped_column(Money)
    price: Mapped[Decimal | None] = mapped_column(Money)
    stop_price: Mapped[Decimal | None] = mapped_column(Money)
    status: Mapped[OrderStatus] = mapped_column(_text_enum(OrderStatus), index=True)
    filled_qty: Mapped[Decimal] = mapped_column(Money)
    avg_fill_price: Mapped[Decimal] = mapped_column(Money)
    fees: Mapped[Decimal] = mapped_column(Money)
    reason: Mapped[str] = mapped_column(Text, default="")
    ts_created: Mapped[int] = mapped_column(Nanos, index=True)
    ts_updated: Mapped[int] = mapped_column(Nanos)

    decision: Mapped[DecisionRow | None] = relationship(back_populates="orders")
    fills: Mapped[list[FillRow]] = relationship(back_populates="order")

    @classmethod
    def from_order(
        cls,
        order: Order,
        *,
        strategy: str = "",
        decision_id: int | None = None,
        oco_group: str | None = None,
    ) -> OrderRow:
        row = cls(
            decision_id=decision_id,
            client_order_id=order.client_order_id,
            strategy=strategy,
            symbol=order.symbol,
            leg=_LEGS.get(order.tag),
            oco_group=oco_group,
            order_type=order.order_type,
            side=order.side,
            time_in_force=order.time_in_force,
            qty=order.qty,
            price=order.price,
            stop_price=order.stop_price,
            ts_created=order.ts_created,
        )
        row.update_from(order)
        return row

    def update_from(self, order: Order) -> None:
        """Copy what the venue's answers change: status, ids, fills, fees, reason, time."""
        self.status = order.status
        self.broker_order_id = order.venue_order_id or None
        self.filled_qty = order.filled_qty
        self.avg_fill_price = order.avg_fill_price
        self.fees = order.fees
        self.reason = order.reason
        self.ts_updated = order.ts_last or order.ts_created


class FillRow(Base):
    """One execution of an order; the venue's `execution_id` makes a replayed fill a unique violation."""

    __tablename__ = "fills"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    execution_id: Mapped[str] = mapped_column(String(128), unique=True)
    qty: Mapped[Decimal] = mapped_column(Money)
    price: Mapped[Decimal] = mapped_column(Money)
    fee: Mapped[Decimal] = mapped_column(Money)
    ts: Mapped[int] = mapped_column(Nanos, index=True)
    ts_init: Mapped[int] = mapped_column(Nanos)

    order: Mapped[OrderRow] = relationship(back_populates="fills")

    @classmethod
    def from_fill(cls, fill: Fill, *, order_id: int) -> FillRow:
        return cls(
            order_id=order_id,
            execution_id=fill.execution_id,
            qty=fill.qty,
            price=fill.price,
            fee=fill.fee,
            ts=fill.ts_event,
            ts_init=fill.ts_init,
        )


class PositionRow(Base):
    """The latest state of one strategy's position in one symbol (upserted, one row per pair)."""

    __tablename__ = "positions"
    __table_args__ = (UniqueConstraint("strategy", "symbol"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    strategy: Mapped[str] = mapped_column(String(64))
    symbol: Mapped[str] = mapped_column(String(64), index=True)
    qty: Mapped[Decimal] = mapped_column(Money)
    avg_price: Mapped[Decimal] = mapped_column(Money)
    realized_pnl: Mapped[Decimal] = mapped_column(Money)
    fees: Mapped[Decimal] = mapped_column(Money)
    ts_opened: Mapped[int] = mapped_column(Nanos)
    ts_updated: Mapped[int] = mapped_column(Nanos, index=True)

    @classmethod
    def from_position(cls, strategy: str, position: Position) -> PositionRow:
        row = cls(strategy=strategy, symbol=position.symbol)
        row.update_from(position)
        return row

    def update_from(self, position: Position) -> None:
        self.qty = position.qty
        self.avg_price = position.avg_price
        self.realized_pnl = position.realized_pnl
        self.fees = position.fees
        self.ts_opened = position.ts_opened
        self.ts_updated = position.ts_last


class RiskEventRow(Base):
    """A risk event beyond a single decision: a protection lock, a daily-loss stop, a stale feed."""

    __tablename__ = "risk_events"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    ts: Mapped[int] = mapped_column(Nanos, index=True)
    kind: Mapped[str] = mapped_column(String(64), index=True)
    symbol: Mapped[str | None] = mapped_column(String(64), index=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)


class AuditLogRow(Base):
    """Append-only record of who did what and when: mode changes, pause, resume, flatten, config, manual.

    Rows are only ever inserted: the ORM refuses to flush a change or a
    delete, and a trigger in the database refuses UPDATE and DELETE.
    """

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    ts: Mapped[int] = mapped_column(Nanos, index=True)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64), index=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)

    @classmethod
    def from_state_change(cls, change: StateChange) -> AuditLogRow:
        return cls(ts=change.ts, actor=change.actor, action=change.action, reason=change.reason, details={})


def _refuse_change(mapper: Mapper[Any], connection: Any, target: AuditLogRow) -> None:
    raise AppendOnlyViolation(
        f"audit_log row {target.id} cannot be changed or deleted: the log is append-only"
    )


event.listen(AuditLogRow, "before_update", _refuse_change)
event.listen(AuditLogRow, "before_delete", _refuse_change)


def refuse_bulk_audit_changes(state: ORMExecuteState) -> None:
    """Session hook: refuse `update(AuditLogRow)` and `delete(AuditLogRow)` statements."""
    if (state.is_update or state.is_delete) and any(
        mapper.class_ is AuditLogRow for mapper in state.all_mappers
    ):
        raise AppendOnlyViolation("audit_log cannot be updated or deleted: the log is append-only")


def install_audit_guard(session_class: type[Session] | Any) -> None:
    """Attach `refuse_bulk_audit_changes` to a Session class or sessionmaker."""
    event.listen(session_class, "do_orm_execute", refuse_bulk_audit_changes)
