"""Initial schema: the audit chain signals -> decisions -> orders -> fills, and the tables around it.

Revision ID: 0001
Revises:
Create Date: 2026-11-24

Generated with ``alembic revision --autogenerate`` from quantdesk.store.models,
then reviewed: column types are spelled out here (not imported from the
models) so this revision stays as it is when the models move on; the
append-only triggers on audit_log were added by hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _id() -> sa.types.TypeEngine[int]:
    # SQLite autoincrements only an INTEGER PRIMARY KEY.
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _decimal() -> sa.types.TypeEngine[Any]:
    # models.ExactDecimal: SQLite's NUMERIC is a binary float, so text there.
    return sa.Numeric(28, 10).with_variant(sa.String(30), "sqlite")


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _code() -> sa.String:
    # An enum's value (Side, OrderStatus, Leg, ...): no CHECK, so new members need no migration.
    return sa.String(32)


def _pk(table: str) -> sa.PrimaryKeyConstraint:
    return sa.PrimaryKeyConstraint("id", name=f"pk_{table}")


_PG_REFUSE_CHANGE = """
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
END
$$
"""
_PG_TRIGGERS = (
    "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
    "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()",
    "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()",
)
# RAISE(ABORT) is a constraint failure in SQLite: an IntegrityError, as on PostgreSQL.
_SQLITE_TRIGGERS = tuple(
    f"CREATE TRIGGER audit_log_no_{operation.lower()} BEFORE {operation} ON audit_log "
    f"BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: {operation} refused'); END"
    for operation in ("UPDATE", "DELETE")
)


def upgrade() -> None:
    op.create_table(
        "instruments",
        sa.Column("id", _id(), nullable=False),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("exchange", sa.String(32), nullable=False),
        sa.Column("currency", sa.String(8), nullable=False),
        sa.Column("tick_size", _decimal(), nullable=False),
        sa.Column("lot_size", _decimal(), nullable=False),
        sa.Column("min_qty", _decimal(), nullable=False),
        sa.Column("max_qty", _decimal(), nullable=True),
        sa.Column("multiplier", _decimal(), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        _pk("instruments"),
        sa.UniqueConstraint("symbol", "exchange", name="uq_instruments_symbol_exchange"),
    )

    op.create_table(
        "signals",
        sa.Column("id", _id(), nullable=False),
        sa.Column("ts", sa.BigInteger(), nullable=False),
        sa.Column("strategy", sa.String(64), nullable=False),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("side", _code(), nullable=False),
        sa.Column("entry", _decimal(), nullable=True),
        sa.Column("stop", _decimal(), nullable=True),
        sa.Column("targets", _json(), nullable=False),
        sa.Column("qty", _decimal(), nullable=True),
        sa.Column("features", _json(), nullable=False),
        sa.Column("feature_scores", _json(), nullable=False),
        sa.Column("score", sa.Double(), nullable=True),
        sa.Column("rationale", sa.Text(), nullable=False),
        sa.Column("config_sha", sa.String(64), nullable=False),
        _pk("signals"),
    )
    op.create_index("ix_signals_ts", "signals", ["ts"])
    op.create_index("ix_signals_strategy", "signals", ["strategy"])
    op.create_index("ix_signals_symbol_ts", "signals", ["symbol", "ts"])

    op.create_table(
        "decisions",
        sa.Column("id", _id(), nullable=False),
        sa.Column("signal_id", _id(), nullable=False),
        sa.Column("client_plan_id", sa.String(64), nullable=True),
        sa.Column("ts", sa.BigInteger(), nullable=False),
        sa.Column("mode", _code(), nullable=False),
        sa.Column("approved", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("risk_pct", _decimal(), nullable=False),
        sa.Column("risk_amount", _decimal(), nullable=False),
        sa.Column("qty", _decimal(), nullable=False),
        sa.Column("block_reasons", _json(), nullable=False),
        sa.Column("block_details", _json(), nullable=False),
        sa.Column("config_sha", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(["signal_id"], ["signals.id"], name="fk_decisions_signal_id_signals"),
        _pk("decisions"),
        # NULLs (blocks that never got a plan id) are distinct on both back ends.
        sa.UniqueConstraint("client_plan_id", name="uq_decisions_client_plan_id"),
    )
    op.create_index("ix_decisions_signal_id", "decisions", ["signal_id"])
    op.create_index("ix_decisions_status", "decisions", ["status"])
    op.create_index("ix_decisions_ts", "decisions", ["ts"])

    op.create_table(
        "orders",
        sa.Column("id", _id(), nullable=False),
        sa.Column("decision_id", _id(), nullable=True),
        sa.Column("client_order_id", sa.String(128), nullable=False),
        sa.Column("broker_order_id", sa.String(128), nullable=True),
        sa.Column("strategy", sa.String(64), nullable=False),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("leg", _code(), nullable=True),
        sa.Column("oco_group", sa.String(64), nullable=True),
        sa.Column("order_type", _code(), nullable=False),
        sa.Column("side", _code(), nullable=False),
        sa.Column("time_in_force", _code(), nullable=False),
        sa.Column("qty", _decimal(), nullable=False),
        sa.Column("price", _decimal(), nullable=True),
        sa.Column("stop_price", _decimal(), nullable=True),
        sa.Column("status", _code(), nullable=False),
        sa.Column("filled_qty", _decimal(), nullable=False),
        sa.Column("avg_fill_price", _decimal(), nullable=False),
        sa.Column("fees", _decimal(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("ts_created", sa.BigInteger(), nullable=False),
        sa.Column("ts_updated", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["decision_id"], ["decisions.id"], name="fk_orders_decision_id_decisions"),
        _pk("orders"),
        sa.UniqueConstraint("client_order_id", name="uq_orders_client_order_id"),
    )
    op.create_index("ix_orders_broker_order_id", "orders", ["broker_order_id"])
    op.create_index("ix_orders_decision_id", "orders", ["decision_id"])
    op.create_index("ix_orders_oco_group", "orders", ["oco_group"])
    op.create_index("ix_orders_status", "orders", ["status"])
    op.create_index("ix_orders_symbol", "orders", ["symbol"])
    op.create_index("ix_orders_ts_created", "orders", ["ts_created"])

    op.create_table(
        "fills",
        sa.Column("id", _id(), nullable=False),
        sa.Column("order_id", _id(), nullable=False),
        sa.Column("execution_id", sa.String(128), nullable=False),
        sa.Column("qty", _decimal(), nullable=False),
        sa.Column("price", _decimal(), nullable=False),
        sa.Column("fee", _decimal(), nullable=False),
        sa.Column("ts", sa.BigInteger(), nullable=False),
        sa.Column("ts_init", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name="fk_fills_order_id_orders"),
        _pk("fills"),
        sa.UniqueConstraint("execution_id", name="uq_fills_execution_id"),
    )
    op.create_index("ix_fills_order_id", "fills", ["order_id"])
    op.create_index("ix_fills_ts", "fills", ["ts"])

    op.create_table(
        "positions",
        sa.Column("id", _id(), nullable=False),
        sa.Column("strategy", sa.String(64), nullable=False),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("qty", _decimal(), nullable=False),
        sa.Column("avg_price", _decimal(), nullable=False),
        sa.Column("realized_pnl", _decimal(), nullable=False),
        sa.Column("fees", _decimal(), nullable=False),
        sa.Column("ts_opened", sa.BigInteger(), nullable=False),
        sa.Column("ts_updated", sa.BigInteger(), nullable=False),
        _pk("positions"),
        sa.UniqueConstraint("strategy", "symbol", name="uq_positions_strategy_symbol"),
    )
    op.create_index("ix_positions_symbol", "positions", ["symbol"])
    op.create_index("ix_positions_ts_updated", "positions", ["ts_updated"])

    op.create_table(
        "risk_events",
        sa.Column("id", _id(), nullable=False),
        sa.Column("ts", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("symbol", sa.String(64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("details", _json(), nullable=False),
        _pk("risk_events"),
    )
    op.create_index("ix_risk_events_kind", "risk_events", ["kind"])
    op.create_index("ix_risk_events_symbol", "risk_events", ["symbol"])
    op.create_index("ix_risk_events_ts", "risk_events", ["ts"])

    op.create_table(
        "audit_log",
        sa.Column("id", _id(), nullable=False),
        sa.Column("ts", sa.BigInteger(), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("details", _json(), nullable=False),
        _pk("audit_log"),
    )
    op.create_index("ix_audit_log_action", "audit_log", ["action"])
    op.create_index("ix_audit_log_ts", "audit_log", ["ts"])

    dialect = op.get_context().dialect.name
    if dialect == "postgresql":
        op.execute(_PG_REFUSE_CHANGE)
        for statement in _PG_TRIGGERS:
            op.execute(statement)
    elif dialect == "sqlite":
        for statement in _SQLITE_TRIGGERS:
            op.execute(statement)


def downgrade() -> None:
    # Dropping a table drops its indexes and triggers; the function outlives it.
    for table in (
        "audit_log",
        "risk_events",
        "positions",
        "fills",
        "orders",
        "decisions",
        "signals",
        "instruments",
    ):
        op.drop_table(table)
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP FUNCTION audit_log_append_only()")
