"""Recovery from the real store on SQLite and PostgreSQL: the write-behind writer's timing, a crash at each
step of the order lifecycle, a fresh engine loaded by `load_stored_state` and reconciled with the venue."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from kit import MINUTE, T0, bar, flat_bar
from quantdesk.engine import Engine
from quantdesk.execution.recovery import StoredState
from quantdesk.model import Order, OrderStatus
from quantdesk.risk.messages import Mode
from quantdesk.store import FillRow, OrderRow
from quantdesk.store.models import AuditLogRow
from quantdesk.store.recovery import load_stored_state, stored_pause
from quantdesk.store.writer import StoreWriter
from recovery_kit import Bracket, Desk, make_desk, nth, wave

SHA = "f" * 64


class SqlStore:
    """The real writer (a new one per engine: a crash loses its buffer) over one database."""

    def __init__(self, sessions: sessionmaker[Session], *, since_ts: int | None = None) -> None:
        self.sessions = sessions
        self.since_ts = since_ts
        self.writer: StoreWriter | None = None

    def attach(self, engine: Engine) -> None:
        self.writer = StoreWriter(self.sessions, mode=Mode.BACKTEST, config_sha=SHA, batch_size=50)
        self.writer.attach(engine)

    def persist_before_send(self, order: Order, *, strategy: str, plan_id: str) -> None:
        assert self.writer is not None
        self.writer.persist_before_send(order, strategy=strategy, plan_id=plan_id)

    def flush(self) -> None:
        assert self.writer is not None
        self.writer.flush()

    def state(self) -> StoredState:
        return load_stored_state(self.sessions, since_ts=self.since_ts)


def _assert_in_step(desk: Desk) -> None:
    assert desk.engine is not None
    assert desk.engine_positions() == desk.venue_positions()
    assert desk.engine_working() == desk.venue_open()
    assert desk.engine.portfolio.account.cash == desk.exchange.cash
    assert [cid for cid, n in Counter(desk.venue.submitted).items() if n > 1] == []


def _assert_store_matches_venue(desk: Desk, sessions: sessionmaker[Session]) -> None:
    """After a final flush: every execution stored once, and no order open in the store that the
    venue does not have open (no shadow left behind)."""
    desk.store.flush()
    with sessions() as session:
        stored = sorted(session.scalars(select(FillRow.execution_id)))
        rows = session.execute(select(OrderRow.client_order_id, OrderRow.status)).all()
    assert stored == sorted(f.execution_id for f in desk.exchange.executions())
    open_in_store = {cid for cid, status in rows if status.is_open or status is OrderStatus.PENDING_SUBMIT}
    assert open_in_store == desk.venue_open()


@pytest.mark.parametrize(
    ("where", "n", "tags", "hold"),
    [
        ("persisted", 1, ("STOP",), 0),
        ("sent", 2, ("ENTRY",), 0),
        ("fill", 2, ("ENTRY",), 0),
        ("fill", 2, ("STOP", "TP1", "TP2"), 0),
        ("cancel", 3, (), 0),
        ("persisted", 1, ("EXIT",), 3),
        ("fill", 1, ("EXIT",), 3),
    ],
)
def test_a_node_killed_at_a_lifecycle_step_recovers_from_the_store(
    sessions: sessionmaker[Session], where: str, n: int, tags: tuple[str, ...], hold: int
) -> None:
    desk = make_desk(
        SqlStore(sessions), strategies=lambda: [Bracket("AAA", every=4, hold=hold)], flush_every=3
    )
    desk.boot(recover=True)  # an empty store: nothing to recover, in sync
    desk.venue.crash_at = nth(where, n, tags)
    i = 0
    while i < 60 and desk.feed(wave(i)):
        i += 1
    assert desk.engine is None, "the crash point was never reached"
    desk.venue.crash_at = None
    desk.feed_while_down(*(wave(j) for j in range(i + 1, i + 4)))
    report = desk.boot(recover=True)
    assert report is not None and report.positions_checked and report.position_mismatches == ()
    _assert_in_step(desk)
    assert desk.feed(*(wave(j) for j in range(i + 4, 90)))
    _assert_in_step(desk)
    _assert_store_matches_venue(desk, sessions)


def test_what_recovery_repaired_is_written_so_the_next_restart_finds_nothing_to_do(
    sessions: sessionmaker[Session],
) -> None:
    desk = make_desk(SqlStore(sessions), flush_every=1_000)
    desk.boot(recover=True)
    assert desk.feed(*(flat_bar(i, 100.0) for i in range(6)))  # long 10, bracket working, unflushed
    desk.crash()
    desk.feed_while_down(bar(T0 + 6 * MINUTE, 100, 101.2, 99.8, 101))  # TP1 fills while down
    first = desk.boot(recover=True)
    assert first is not None and len(first.missed_fills) == 2 and first.never_sent == ()
    desk.store.flush()
    desk.crash()
    second = desk.boot(recover=True)
    assert second is not None and second.in_sync and second.missed_fills == ()
    _assert_in_step(desk)
    _assert_store_matches_venue(desk, sessions)


def test_the_loaded_state_has_every_id_the_open_orders_their_groups_and_the_fills(
    sessions: sessionmaker[Session],
) -> None:
    desk = make_desk(SqlStore(sessions))
    desk.boot(recover=False)
    assert desk.feed(*(wave(i) for i in range(40)))
    desk.store.flush()
    assert desk.engine is not None
    state = load_stored_state(sessions)
    engine_orders = desk.engine.orders.orders
    assert state.client_order_ids == frozenset(engine_orders)
    assert [s.fill.execution_id for s in state.fills] == [f.execution_id for f in desk.exchange.executions()]
    loaded = {row.client_order_id: row for row in state.orders}
    working = desk.engine_working()
    assert working and working <= set(loaded)
    for cid, row in loaded.items():
        order = engine_orders[cid]
        assert (row.status, row.filled_qty, row.leg, row.strategy) == (
            order.status,
            order.filled_qty,
            order.tag,
            desk.engine.orders.strategy_of(cid),
        )
    entries = {row.plan_id for row in state.orders if row.leg == "ENTRY"}
    assert entries and entries <= set(state.brackets)
    assert all(b.stop is not None and len(b.targets) == 2 for b in state.brackets.values())
    assert {(p.strategy, p.symbol): p.qty for p in state.positions if p.qty} == {
        (s, sym): q for s, sym, q in desk.engine.open_strategy_positions()
    }


def test_a_store_that_outlived_its_venue_account_is_not_brought_back(sessions: sessionmaker[Session]) -> None:
    old = make_desk(SqlStore(sessions))
    old.boot(recover=False)
    assert old.feed(*(flat_bar(i, 100.0) for i in range(6)))
    old.store.flush()
    # A new paper account (a fresh venue) on the same database, from a later day.
    later = T0 + 86_400_000_000_000
    desk = make_desk(SqlStore(sessions, since_ts=later))
    desk.now = later
    report = desk.boot(recover=True)
    assert report is not None and report.restored_orders == 0 and report.in_sync
    assert desk.engine is not None and desk.engine.portfolio.account.cash == Decimal(1_000_000)
    assert all(cid in desk.engine.orders.ids for cid in old.venue.submitted)


def test_a_pause_or_kill_switch_in_force_at_the_crash_is_found_again(sessions: sessionmaker[Session]) -> None:
    assert stored_pause(sessions) is None  # nothing ever paused
    audit = [
        AuditLogRow(ts=T0, actor="alice", action="pause", reason="news"),
        AuditLogRow(ts=T0 + MINUTE, actor="alice", action="resume", reason=""),
    ]
    with sessions.begin() as session:
        session.add_all(audit)
    assert stored_pause(sessions) is None  # resumed before the crash
    with sessions.begin() as session:
        session.add(AuditLogRow(ts=T0 + 2 * MINUTE, actor="bob", action="kill_switch", reason="runaway"))
    assert stored_pause(sessions) == "kill_switch by bob: runaway"


def test_a_config_change_writes_one_audit_row_with_the_whole_config(sessions: sessionmaker[Session]) -> None:
    from quantdesk.config import TradingConfig
    from quantdesk.risk.config import RiskConfig
    from quantdesk.store.audit import record_config

    first, second = TradingConfig(), TradingConfig(risk=RiskConfig(max_open_positions=2))
    for config, expected in ((first, True), (first, False), (second, True), (second, False)):
        written = record_config(
            sessions, sha=config.sha256(), config=config.model_dump(mode="json"), ts=T0, actor="node"
        )
        assert written is expected
    with sessions() as session:
        rows = session.scalars(select(AuditLogRow).where(AuditLogRow.action == "config")).all()
    assert [row.details["sha"] for row in rows] == [first.sha256(), second.sha256()]
    assert rows[1].details["previous_sha"] == first.sha256()
    assert rows[1].details["config"]["risk"]["max_open_positions"] == 2
