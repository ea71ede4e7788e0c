"""The write-behind store writer on both back ends: the full chain, order, duplicates, outbox, outages."""

from __future__ import annotations

import math
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, inspect, select, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DataError, IntegrityError, OperationalError, StatementError
from sqlalchemy.orm import Session, sessionmaker
from structlog.testing import capture_logs

from kit import MINUTE, T0, Rig, bar, rig
from quantdesk.engine.messages import DecisionRecord
from quantdesk.errors import RetryableError
from quantdesk.execution import OrderManager
from quantdesk.execution.client_ids import DuplicateClientId
from quantdesk.model import Bar, Fill, Order, OrderStatus, OrderType, Position, Side, Signal
from quantdesk.risk.kill_switch import StateChange
from quantdesk.risk.messages import Mode
from quantdesk.store import (
    AuditLogRow,
    DecisionRow,
    FillRow,
    OrderRow,
    PositionRow,
    RiskEventRow,
    SignalRow,
    fit_decimal,
    make_engine,
    session_factory,
    upgrade,
)
from quantdesk.store.capture import DECISION, ORDER, SIGNAL, as_record, kind_of
from quantdesk.store.writer import (
    StoreWriteFailed,
    StoreWriter,
    _insert,
    _Staged,
    _update,
    audit_values,
    decision_values,
    fill_values,
    order_values,
    plan_of_client_id,
    position_values,
    signal_values,
)
from quantdesk.strategies import Strategy
from quantdesk.venues.base import Venue, VenueCapabilities, VenueListener
from quantdesk.venues.sim import SimulatedExchange

SHA = "5ha" * 21 + "a"


class Swing(Strategy):
    """Goes long every sixth bar with a stop and two targets, exits at market three bars later;
    on the bars in `malformed` it sends a signal the engine refuses (stop above the price)."""

    malformed: frozenset[int] = frozenset()

    def on_bar(self, b: Bar) -> None:
        i = (b.ts_event - T0) // MINUTE
        if i in self.malformed:
            self.enter_long(stop=b.close * 1.05, rationale="stop on the wrong side")
        elif i % 6 == 1 and self.is_flat:
            self.enter_long(
                stop=b.close * 0.97, targets=[b.close * 1.02, b.close * 1.05], features={"bar": float(i)}
            )
        elif i % 6 == 4 and not self.is_flat:
            self.exit("time stop")


def _bar(i: int) -> Bar:
    close = round(100 + 3 * math.sin(i / 2.0), 2)
    previous = round(100 + 3 * math.sin((i - 1) / 2.0), 2)
    return bar(T0 + i * MINUTE, previous, max(previous, close) + 0.6, min(previous, close) - 0.6, close)


@dataclass
class Desk:
    """An engine trading `Swing` on the simulated venue, with a writer attached before start."""

    rig: Rig
    writer: StoreWriter
    fills: list[Fill] = field(default_factory=list)
    signals: list[Signal] = field(default_factory=list)

    def run(self, first: int, last: int, *, flush_every_bar: bool = False) -> None:
        for i in range(first, last):
            self.rig.feed(_bar(i))
            if flush_every_bar:
                self.writer.flush()
        self.rig.engine.end_cycle()


def _desk(sessions: sessionmaker[Session], *, malformed: frozenset[int] = frozenset(), **kw: Any) -> Desk:
    r = rig(default_qty=Decimal(10))
    writer = StoreWriter(sessions, mode=Mode.BACKTEST, config_sha=SHA, **kw)
    writer.attach(r.engine)
    desk = Desk(r, writer)
    r.bus.subscribe(Fill, desk.fills.append)
    r.bus.subscribe(Signal, desk.signals.append)
    strategy = Swing("AAA")
    strategy.malformed = malformed
    r.engine.add_strategy(strategy)
    r.engine.start()
    return desk


@pytest.fixture
def open_store() -> Iterator[Callable[..., sessionmaker[Session]]]:
    """Opens more session factories on a URL (a second reader, a lossy link); disposed afterwards."""
    engines: list[Engine] = []

    def opener(url: str, **kw: Any) -> sessionmaker[Session]:
        engines.append(make_engine(url))
        return sessionmaker(engines[-1], expire_on_commit=False, **kw)

    yield opener
    for engine in engines:
        engine.dispose()


def _dead_store() -> sessionmaker[Session]:
    """Sessions on a PostgreSQL URL whose port nobody listens on: every connect is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return session_factory(make_engine(f"postgresql+psycopg://postgres@127.0.0.1:{port}/gone"))


def _count(sessions: sessionmaker[Session], model: Any) -> int:
    with sessions() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def _assert_store_matches_engine(desk: Desk, sessions: sessionmaker[Session]) -> None:
    """Counts, statuses, the chain and positions in the store equal the engine's own."""
    engine = desk.rig.engine
    assert desk.writer.stats().buffered == 0 and desk.writer.stats().quarantined == 0
    with sessions() as session:
        assert _count(sessions, SignalRow) == engine.signals == len(desk.signals)
        decisions = session.execute(select(DecisionRow.client_plan_id, DecisionRow.approved)).all()
        assert len(decisions) == len(engine.pipeline.decisions)
        assert sum(approved for _, approved in decisions) == engine.pipeline.approved
        stored = {row.client_order_id: row for row in session.scalars(select(OrderRow))}
        assert stored.keys() == engine.orders.orders.keys()
        for client_order_id, order in engine.orders.orders.items():
            row = stored[client_order_id]
            assert (row.status, row.filled_qty, row.broker_order_id or "") == (
                order.status,
                order.filled_qty,
                order.venue_order_id,
            )
        assert sorted(session.scalars(select(FillRow.execution_id))) == sorted(
            f.execution_id for f in desk.fills
        )
        # The chain: every fill of an entry, stop or target joins back to its signal.
        chained = session.execute(
            select(FillRow.execution_id, OrderRow.leg, DecisionRow.approved, SignalRow.strategy)
            .join(OrderRow, FillRow.order_id == OrderRow.id)
            .join(DecisionRow, OrderRow.decision_id == DecisionRow.id)
            .join(SignalRow, DecisionRow.signal_id == SignalRow.id)
        ).all()
        planned = [f for f in desk.fills if engine.orders.orders[f.client_order_id].tag != "EXIT"]
        assert len(chained) == len(planned) and all(approved for _, _, approved, _ in chained)
        # Exits carry no decision but name their plan, which is an approved decision's.
        plans = {plan for plan, approved in decisions if approved}
        exits = [row for row in stored.values() if row.leg == "EXIT"]
        assert all(row.decision_id is None and row.oco_group in plans for row in exits)
        positions = {(p.strategy, p.symbol): p for p in session.scalars(select(PositionRow))}
        assert positions and {key for key, p in positions.items() if p.qty} == {
            (strategy, symbol) for strategy, symbol, _ in engine.open_strategy_positions()
        }
        for (strategy, symbol), position in positions.items():
            assert position.qty == engine.position_qty(strategy, symbol)
            mine = engine.portfolio.position(symbol)
            assert (position.avg_price, position.realized_pnl, position.fees) == (
                fit_decimal(mine.avg_price),
                fit_decimal(mine.realized_pnl),
                fit_decimal(mine.fees),
            )


def test_a_trading_session_is_stored_as_a_complete_chain_equal_to_the_engine(
    sessions: sessionmaker[Session],
) -> None:
    desk = _desk(sessions, batch_size=7)
    desk.run(0, 40)
    desk.rig.engine.pause("lunch", actor="ops")
    desk.run(40, 50)
    desk.rig.engine.resume("after lunch", actor="ops")
    desk.run(50, 80)
    written = desk.writer.flush()
    engine = desk.rig.engine
    assert engine.pipeline.approved >= 8 and engine.pipeline.blocked.get("PAUSED", 0) >= 1
    assert {o.tag for o in engine.orders.orders.values()} >= {"ENTRY", "STOP", "TP1", "EXIT"}
    assert written == desk.writer.stats().written and desk.writer.stats().flushes > 1
    _assert_store_matches_engine(desk, sessions)
    with sessions() as session:
        blocked = session.scalars(select(DecisionRow).where(DecisionRow.approved.is_(False))).all()
        assert blocked and all("PAUSED" in row.block_reasons for row in blocked)
        assert all(row.config_sha == SHA and row.mode is Mode.BACKTEST for row in blocked)
        audit = session.execute(select(AuditLogRow.action, AuditLogRow.actor, AuditLogRow.reason)).all()
        assert audit == [("pause", "ops", "lunch"), ("resume", "ops", "after lunch")]


def test_rows_follow_the_order_events_arrived_in_across_batches_and_cycles(
    sessions: sessionmaker[Session],
) -> None:
    # Flushing after every bar splits signals from their decisions (decided when time moves on).
    desk = _desk(sessions, batch_size=3)
    desk.run(0, 60, flush_every_bar=True)
    desk.writer.flush()
    with sessions() as session:
        signals = session.execute(select(SignalRow.ts, SignalRow.symbol).order_by(SignalRow.id)).all()
        assert signals == [(s.ts, s.symbol) for s in desk.signals]
        fills = list(session.scalars(select(FillRow.execution_id).order_by(FillRow.id)))
        assert fills == [f.execution_id for f in desk.fills]
        orders = list(session.scalars(select(OrderRow.client_order_id).order_by(OrderRow.id)))
        assert orders == list(desk.rig.engine.orders.orders)
    _assert_store_matches_engine(desk, sessions)


def test_a_fill_already_in_the_store_is_skipped_and_not_counted_twice_in_the_position(
    sessions: sessionmaker[Session],
) -> None:
    desk = _desk(sessions)
    desk.run(0, 30)
    desk.writer.flush()
    before = _count(sessions, FillRow)
    with sessions() as session:
        position = session.scalars(select(PositionRow)).one()
        before_position = (position.qty, position.realized_pnl, position.fees)
    for fill in desk.fills[:5]:
        desk.rig.bus.publish(fill)  # a replayed execution report
    assert desk.writer.flush() == 5
    # A writer of a later process meets the same executions: still skipped.
    later = StoreWriter(sessions, mode=Mode.BACKTEST, config_sha=SHA)
    later_rig = rig(default_qty=Decimal(10))
    later.attach(later_rig.engine)
    for fill in desk.fills:
        later_rig.bus.publish(fill)
    later.flush()
    assert _count(sessions, FillRow) == before
    with sessions() as session:
        position = session.scalars(select(PositionRow)).one()
        assert (position.qty, position.realized_pnl, position.fees) == before_position
    assert later.stats().quarantined == 0 and desk.writer.stats().quarantined == 0


class OutboxVenue:
    """Stands for `OrderManager(before_send=writer.persist_before_send)`: persists each order, then,
    at the venue's door, reads its row with a separate session before passing the order on."""

    def __init__(
        self, inner: Venue, writer: StoreWriter, orders: OrderManager, check: sessionmaker[Session]
    ) -> None:
        self.inner, self.writer, self.orders, self.check = inner, writer, orders, check
        self.seen_at_the_door: dict[str, OrderStatus | None] = {}
        self.stop_at_the_door: dict[str, Decimal | None] = {}

    @property
    def capabilities(self) -> VenueCapabilities:
        return self.inner.capabilities

    def connect(self, listener: VenueListener) -> None:
        self.inner.connect(listener)

    def cancel_order(self, client_order_id: str) -> None:
        self.inner.cancel_order(client_order_id)

    def submit_order(self, order: Order) -> None:
        group = self.orders.group_of(order.client_order_id)
        plan_id = group.plan_id if group is not None else plan_of_client_id(order.client_order_id)
        strategy = self.orders.strategy_of(order.client_order_id)
        self.writer.persist_before_send(order, strategy=strategy, plan_id=plan_id)
        with self.check() as session:
            query = select(OrderRow.status).where(OrderRow.client_order_id == order.client_order_id)
            self.seen_at_the_door[order.client_order_id] = session.scalar(query)
            chain = (
                select(SignalRow.stop)
                .join(DecisionRow, DecisionRow.signal_id == SignalRow.id)
                .join(OrderRow, OrderRow.decision_id == DecisionRow.id)
                .where(OrderRow.client_order_id == order.client_order_id)
            )
            self.stop_at_the_door[order.client_order_id] = session.scalar(chain)
        self.inner.submit_order(order)


def test_every_order_row_is_committed_as_pending_submit_before_the_venue_sees_it(
    db_url: str, sessions: sessionmaker[Session], open_store: Callable[..., sessionmaker[Session]]
) -> None:
    desk = _desk(sessions, batch_size=5)
    outbox = OutboxVenue(
        desk.rig.venue, desk.writer, desk.rig.engine.orders, session_factory(make_engine(db_url))
    )
    desk.rig.engine.orders._venue = outbox  # the lead's before_send wiring goes here
    desk.run(0, 60, flush_every_bar=True)
    desk.writer.flush()
    orders = desk.rig.engine.orders.orders
    assert outbox.seen_at_the_door.keys() == orders.keys() and len(orders) > 20
    assert set(outbox.seen_at_the_door.values()) == {OrderStatus.PENDING_SUBMIT}
    # The venue's answers then updated the same rows, and entries found their decisions.
    _assert_store_matches_engine(desk, sessions)
    with sessions() as session:
        entries = session.scalars(select(OrderRow).where(OrderRow.leg == "ENTRY")).all()
        assert entries and all(row.decision_id is not None for row in entries)


def test_an_entry_reaches_the_venue_only_with_its_signal_and_decision_in_the_store(
    db_url: str, sessions: sessionmaker[Session], open_store: Callable[..., sessionmaker[Session]]
) -> None:
    """No batch flush during the run: what the store holds at the door is what a crash would leave.
    Without the plan's stop in the store, recovery could not protect the entry's fill."""
    desk = _desk(sessions, batch_size=10_000)
    outbox = OutboxVenue(desk.rig.venue, desk.writer, desk.rig.engine.orders, open_store(db_url))
    desk.rig.engine.orders._venue = outbox
    desk.run(0, 60)
    entries = [o for o in desk.rig.engine.orders.orders.values() if o.tag == "ENTRY"]
    assert len(entries) > 5
    stops = {round(Decimal(s.stop), 6) for s in desk.signals if s.stop is not None}
    for entry in entries:
        stop = outbox.stop_at_the_door[entry.client_order_id]  # entry -> decision -> signal
        assert stop is not None and round(stop, 6) in stops
    # The batches later find those rows written and do not write them again.
    desk.writer.flush()
    _assert_store_matches_engine(desk, sessions)


def _order(client_order_id: str, tag: str = "ENTRY") -> Order:
    order = Order(client_order_id, "AAA", Side.BUY, OrderType.MARKET, Decimal(10), tag=tag, ts_created=T0)
    order.transition(OrderStatus.PENDING_SUBMIT, T0)
    return order


def test_an_order_whose_outbox_write_fails_must_not_be_sent(sessions: sessionmaker[Session]) -> None:
    alerts: list[tuple[str, str]] = []
    writer = StoreWriter(sessions, mode=Mode.PAPER, config_sha=SHA, on_alert=lambda *a: alerts.append(a))
    writer.replace_session_factory(_dead_store())
    with pytest.raises(RetryableError, match="qd-A-entry-0 not sent"):
        writer.persist_before_send(_order("qd-A-entry-0"), strategy="s", plan_id="A")
    assert writer.stats().degraded and [kind for kind, _ in alerts] == ["store_degraded"]
    # While degraded the refusal is immediate: no connection attempt delays the engine.
    with pytest.raises(StoreWriteFailed, match="degraded"):
        writer.persist_before_send(_order("qd-B-entry-0"), strategy="s", plan_id="B")
    writer.replace_session_factory(sessions)
    assert writer.flush() == 0 and not writer.stats().degraded  # recovery seen by a probe
    writer.persist_before_send(_order("qd-C-entry-0"), strategy="s", plan_id="C")
    with sessions() as session:
        assert list(session.scalars(select(OrderRow.client_order_id))) == ["qd-C-entry-0"]
    assert [kind for kind, _ in alerts] == ["store_degraded", "store_recovered"]


def test_protective_orders_are_buffered_not_refused_when_the_store_is_down(
    sessions: sessionmaker[Session],
) -> None:
    writer = StoreWriter(sessions, mode=Mode.PAPER, config_sha=SHA, send_when_down={"STOP", "EXIT"})
    writer.replace_session_factory(_dead_store())
    with capture_logs() as logs:
        writer.persist_before_send(_order("qd-P-stop-0", "STOP"), strategy="s", plan_id="P")
    # Order lines carry their plan, as the node's own do (its JSON log is searched by them).
    (buffered,) = [line for line in logs if line["event"] == "outbox_buffered"]
    assert (buffered["client_order_id"], buffered["plan_id"]) == ("qd-P-stop-0", "P")
    with pytest.raises(StoreWriteFailed):
        writer.persist_before_send(_order("qd-P-entry-0"), strategy="s", plan_id="P")
    assert writer.stats().buffered == 1
    writer.replace_session_factory(sessions)
    assert writer.flush() == 1
    with sessions() as session:
        row = session.scalars(select(OrderRow)).one()
        assert (row.client_order_id, row.status, row.oco_group) == ("qd-P-stop-0", "PENDING_SUBMIT", "P")


def test_a_store_outage_buffers_alerts_once_and_loses_nothing_on_recovery(
    sessions: sessionmaker[Session],
) -> None:
    alerts: list[tuple[str, str]] = []
    desk = _desk(sessions, batch_size=10, on_alert=lambda *a: alerts.append(a))
    desk.run(0, 20)
    first = desk.writer.flush()
    desk.writer.replace_session_factory(_dead_store())
    desk.run(20, 50)
    waiting = desk.writer.stats().buffered
    assert desk.writer.flush() == 0 and desk.writer.flush() == 0
    stats = desk.writer.stats()
    assert stats.degraded and stats.failures == 2 and stats.buffered == waiting > 0
    assert "refused" in stats.last_error
    desk.writer.replace_session_factory(sessions)
    desk.run(50, 70)
    pending = desk.writer.stats().buffered
    assert pending > waiting
    assert desk.writer.flush() == pending
    assert desk.writer.stats().written == first + pending
    assert [kind for kind, _ in alerts] == ["store_degraded", "store_recovered"]
    assert not desk.writer.stats().degraded
    _assert_store_matches_engine(desk, sessions)


def test_past_the_buffer_bound_the_writer_pauses_the_engine_instead_of_dropping(
    sessions: sessionmaker[Session],
) -> None:
    overflows: list[int] = []
    holder: dict[str, Desk] = {}

    def pause() -> None:
        overflows.append(holder["desk"].writer.stats().buffered)
        holder["desk"].rig.engine.pause("store buffer full")

    desk = holder["desk"] = _desk(sessions, max_buffer=25, on_overflow=pause)
    desk.writer.replace_session_factory(_dead_store())
    desk.run(0, 60)
    desk.writer.flush()
    assert overflows == [25]  # once per episode, at the bound
    assert desk.writer.stats().buffered > 25 and desk.rig.engine.state.paused
    assert desk.rig.engine.pipeline.blocked.get("PAUSED", 0) >= 1  # no entry while paused
    desk.writer.replace_session_factory(sessions)
    desk.writer.flush()
    _assert_store_matches_engine(desk, sessions)
    with sessions() as session:
        assert list(session.scalars(select(AuditLogRow.reason))) == ["store buffer full"]


class LosesCommitAnswers(Session):
    """A session whose commits reach the database but whose answers are lost (the link dies)."""

    lose = 0

    def commit(self) -> None:
        super().commit()
        if LosesCommitAnswers.lose > 0:
            LosesCommitAnswers.lose -= 1
            raise OperationalError("COMMIT", {}, ConnectionError("server closed the connection unexpectedly"))


def test_a_commit_whose_answer_was_lost_is_not_written_twice(
    db_url: str, sessions: sessionmaker[Session], open_store: Callable[..., sessionmaker[Session]]
) -> None:
    desk = _desk(sessions, batch_size=1_000, malformed=frozenset({13}))
    desk.run(0, 20)
    desk.writer.flush()
    lossy = open_store(db_url, class_=LosesCommitAnswers)
    desk.writer.replace_session_factory(lossy)
    desk.rig.engine.pause("check", actor="ops")
    desk.run(20, 40)
    LosesCommitAnswers.lose = 1
    assert desk.writer.flush() == 0 and desk.writer.stats().degraded
    assert desk.writer.flush() > 0 and not desk.writer.stats().degraded
    _assert_store_matches_engine(desk, sessions)
    assert _count(sessions, AuditLogRow) == 1 and _count(sessions, RiskEventRow) == 1


def test_a_malformed_signal_is_stored_with_its_refusal(sessions: sessionmaker[Session]) -> None:
    desk = _desk(sessions, malformed=frozenset({3}))
    desk.run(0, 5)
    strategy = desk.rig.engine.strategies[0]
    strategy.enter_long(stop=float("nan"), features={"z": float("nan")})  # NaN: no column holds it
    desk.writer.flush()
    with sessions() as session:
        refused = session.execute(
            select(RiskEventRow.reason, SignalRow.stop, SignalRow.rationale, SignalRow.features)
            .join(SignalRow, SignalRow.id == RiskEventRow.details["signal_id"].as_integer())
            .order_by(RiskEventRow.id)
        ).all()
    assert len(refused) == 2
    wrong_side = next(s for s in desk.signals if s.rationale == "stop on the wrong side")
    assert refused[0][0].startswith("stop") and refused[0][1] == fit_decimal(wrong_side.stop or Decimal(0))
    assert refused[1][1:] == (None, "[not storable: stop=NaN]", {"z": None})
    assert desk.writer.stats().quarantined == 0


def test_a_record_the_database_refuses_is_set_aside_and_the_rest_is_written(
    sessions: sessionmaker[Session],
) -> None:
    alerts: list[tuple[str, str]] = []
    desk = _desk(sessions, batch_size=50, on_alert=lambda *a: alerts.append(a))
    desk.run(0, 10)
    huge = Signal("Swing", "AAA", Side.BUY, T0, qty=Decimal("1e20"))  # 21 digits: the column holds 18
    desk.rig.bus.publish(huge)
    desk.run(10, 30)
    desk.writer.flush()
    stats = desk.writer.stats()
    assert stats.quarantined == 1 and desk.writer.quarantine[0][0][1] is huge
    assert not stats.degraded and [kind for kind, _ in alerts] == ["store_record_refused"]
    desk.signals.remove(huge)
    desk.writer.quarantine.clear()
    _assert_store_matches_engine(desk, sessions)


def test_the_background_thread_writes_while_the_engine_thread_only_buffers(
    db_url: str, sessions: sessionmaker[Session]
) -> None:
    statement_threads: Counter[int] = Counter()
    bind = sessions.kw["bind"]

    def count(*_: object) -> None:
        statement_threads[threading.get_ident()] += 1

    event.listen(bind, "before_cursor_execute", count)
    desk = _desk(sessions, batch_size=20)
    desk.writer.start_background(interval_s=0.005)
    with pytest.raises(RuntimeError):
        desk.writer.start_background()
    try:
        for first in range(0, 80, 20):
            desk.run(first, first + 20)
            _wait_until(lambda: desk.writer.stats().buffered == 0)
        assert statement_threads and threading.get_ident() not in statement_threads
        assert desk.writer.stats().written > 0
    finally:
        desk.writer.stop()
        event.remove(bind, "before_cursor_execute", count)
    _assert_store_matches_engine(desk, sessions)


def _wait_until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.002)


def test_outbox_writes_and_background_batches_take_turns_without_errors(
    db_url: str, sessions: sessionmaker[Session], open_store: Callable[..., sessionmaker[Session]]
) -> None:
    # SQLite has one writer: the engine thread's outbox commits interleave with the batches.
    desk = _desk(sessions, batch_size=10)
    outbox = OutboxVenue(desk.rig.venue, desk.writer, desk.rig.engine.orders, open_store(db_url))
    desk.rig.engine.orders._venue = outbox
    desk.writer.start_background(interval_s=0.001)
    try:
        for first in range(0, 120, 10):
            desk.run(first, first + 10)
            time.sleep(0.002)
    finally:
        desk.writer.stop()
    stats = desk.writer.stats()
    assert stats.failures == 0 and not stats.degraded and stats.flushes > 1
    assert set(outbox.seen_at_the_door.values()) == {OrderStatus.PENDING_SUBMIT}
    _assert_store_matches_engine(desk, sessions)


def test_stop_refuses_to_end_quietly_while_records_are_unwritten(sessions: sessionmaker[Session]) -> None:
    desk = _desk(sessions)
    desk.writer.replace_session_factory(_dead_store())
    desk.writer.start_background(interval_s=0.005)
    desk.run(0, 20)
    with pytest.raises(StoreWriteFailed, match="records not written"):
        desk.writer.stop()
    desk.writer.replace_session_factory(sessions)
    assert desk.writer.stop() > 0
    _assert_store_matches_engine(desk, sessions)


def _decided(writer: StoreWriter, plan_id: str, ts: int = T0) -> None:
    """A signal and its approved decision, buffered as the engine's capture leaves them."""
    signal = Signal("s", "AAA", Side.BUY, ts, stop=Decimal("99.5"), targets=(Decimal(101),))
    writer._capture.on_signal(signal)
    writer._capture.on_decision(
        DecisionRecord(plan_id, signal, True, (), (), Decimal(10), Decimal(5), Decimal("0.5"), ts)
    )


def _commits(sessions: sessionmaker[Session]) -> list[int]:
    commits: list[int] = []
    event.listen(sessions.kw["bind"], "commit", lambda _connection: commits.append(1))
    return commits


def test_an_entry_commits_its_signal_and_decision_with_its_row_in_one_transaction(
    sessions: sessionmaker[Session],
) -> None:
    """One commit at the door (it was a flush's commit, then the row's): the entry's wait."""
    writer = StoreWriter(sessions, mode=Mode.PAPER, config_sha=SHA)
    writer._capture.on_signal(Signal("s", "BBB", Side.SELL, T0))  # another plan's, left to the batch
    _decided(writer, "P1")
    commits = _commits(sessions)
    writer.persist_before_send(_order("qd-P1-entry-0"), strategy="s", plan_id="P1")
    assert len(commits) == 1
    assert len(writer._buffer) == 1 and as_record(writer._buffer[0])[1].symbol == "BBB"
    with sessions() as session:
        chain = session.execute(
            select(SignalRow.stop, DecisionRow.client_plan_id)
            .join(DecisionRow, DecisionRow.signal_id == SignalRow.id)
            .join(OrderRow, OrderRow.decision_id == DecisionRow.id)
            .where(OrderRow.client_order_id == "qd-P1-entry-0")
        ).one()
    assert chain == (Decimal("99.5"), "P1")
    assert writer.flush() == 1  # the other signal; the plan's rows are not written twice
    assert (_count(sessions, SignalRow), _count(sessions, DecisionRow)) == (2, 1)
    assert writer.stats().written == 3


def test_an_entry_refused_at_the_door_still_has_its_signal_and_decision_written(
    sessions: sessionmaker[Session],
) -> None:
    """The one transaction fails on the duplicate row: the plan's records go back and the usual
    path (a flush, then the row alone) writes them and names the duplicate."""
    writer = StoreWriter(sessions, mode=Mode.PAPER, config_sha=SHA)
    writer.persist_before_send(_order("qd-P2-entry-0"), strategy="s", plan_id="OTHER")
    _decided(writer, "P2")
    with pytest.raises(DuplicateClientId):
        writer.persist_before_send(_order("qd-P2-entry-0"), strategy="s", plan_id="P2")
    assert not writer._buffer and writer.flush() == 0
    assert (_count(sessions, SignalRow), _count(sessions, DecisionRow)) == (1, 1)
    assert not writer.stats().degraded


def test_an_entry_whose_one_transaction_fails_gives_its_records_back(
    sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = StoreWriter(sessions, mode=Mode.PAPER, config_sha=SHA)
    _decided(writer, "P5")

    def lost(*args: object) -> None:
        raise OperationalError("INSERT", {}, Exception("connection lost mid-transaction"))

    monkeypatch.setattr(_Staged, "write", lost)
    assert not writer._commit_with_plan(_order("qd-P5-entry-0"), "s", "P5", writer._take_plan("P5") or [])
    assert [kind_of(entry) for entry in writer._buffer] == [SIGNAL, DECISION]
    monkeypatch.undo()
    writer.persist_before_send(_order("qd-P5-entry-0"), strategy="s", plan_id="P5")
    with sessions() as session:
        decision_id = session.scalars(select(OrderRow.decision_id)).one()
    assert decision_id is not None and _count(sessions, SignalRow) == 1


def test_an_entry_written_at_the_door_carries_the_mode_it_was_decided_in(
    sessions: sessionmaker[Session],
) -> None:
    """The mode change is still buffered when the entry goes: its decision row must say PAPER."""
    r = rig(default_qty=Decimal(10))
    writer = StoreWriter(sessions, mode=Mode.BACKTEST, config_sha=SHA)
    writer.attach(r.engine)
    r.engine.state.set_mode(Mode.PAPER, actor="ops")
    _decided(writer, "P3")
    writer.persist_before_send(_order("qd-P3-entry-0"), strategy="s", plan_id="P3")
    _decided(writer, "P4", ts=T0 + MINUTE)
    writer.flush()
    with sessions() as session:
        modes = {
            plan: mode for plan, mode in session.execute(select(DecisionRow.client_plan_id, DecisionRow.mode))
        }
    assert modes == {"P3": Mode.PAPER, "P4": Mode.PAPER}


def test_decisions_carry_the_mode_the_engine_was_in_when_it_decided(sessions: sessionmaker[Session]) -> None:
    desk = _desk(sessions, batch_size=1_000)
    desk.run(0, 20)
    before = len(desk.rig.engine.pipeline.decisions)
    desk.rig.engine.state.set_mode(Mode.PAPER, actor="ops")
    desk.run(20, 40)
    desk.writer.flush()  # one batch: the mode change is read in arrival order within it
    with sessions() as session:
        modes = list(session.scalars(select(DecisionRow.mode).order_by(DecisionRow.id)))
        assert (
            session.scalars(select(AuditLogRow.reason).where(AuditLogRow.action == "mode")).one() == "PAPER"
        )
    assert 0 < before < len(modes) == len(desk.rig.engine.pipeline.decisions)
    assert modes == [Mode.BACKTEST] * before + [Mode.PAPER] * (len(modes) - before)
    with pytest.raises(ValueError, match="engine runs PAPER"):
        StoreWriter(sessions, mode=Mode.BACKTEST, config_sha=SHA).attach(desk.rig.engine)


def test_a_writer_attached_after_start_still_writes_each_decisions_signal(
    sessions: sessionmaker[Session],
) -> None:
    r = rig(default_qty=Decimal(10))
    r.engine.add_strategy(Swing("AAA"))
    r.engine.start()
    writer = StoreWriter(sessions, mode=Mode.BACKTEST, config_sha=SHA)
    writer.attach(r.engine)  # too late for signals: the engine publishes none
    for i in range(30):
        r.feed(_bar(i))
    r.engine.end_cycle()
    writer.flush()
    with sessions() as session:
        chained = session.execute(select(DecisionRow.id).join(SignalRow)).all()
    assert len(chained) == len(r.engine.pipeline.decisions) == _count(sessions, SignalRow) > 0


def _columns(model: Any) -> list[str]:
    return [c.key for c in inspect(model).column_attrs if c.key != "id"]


def test_row_values_are_what_the_models_converters_give() -> None:
    signal = Signal(
        "orb",
        "AAA",
        Side.SELL,
        T0,
        entry=Decimal("10.5"),
        stop=Decimal("11"),
        targets=(Decimal("9.5"),),
        features=Signal.freeze_features({"z": 1.5}),
        rationale="why",
    )
    record = DecisionRecord(
        "PLAN", signal, False, ("PAUSED",), ("paused",), Decimal(3), Decimal(1), Decimal(2), T0
    )
    order = _order("qd-PLAN-stop-0", "STOP")
    order.venue_order_id, order.reason, order.ts_last = "V9", "why", T0 + 5
    fill = Fill(
        "E1",
        order.client_order_id,
        "V9",
        "AAA",
        Side.BUY,
        Decimal(4),
        Decimal("10.1"),
        Decimal("0.2"),
        T0,
        T0,
    )
    position = Position(
        "AAA", Decimal(1), Decimal(4), Decimal("10.1"), Decimal(3), Decimal("0.2"), T0, T0 + 9
    )
    change = StateChange("pause", "ops", "lunch", T0)
    pairs = [
        (SignalRow.from_signal(signal, config_sha=SHA), signal_values(signal, SHA)),
        (
            DecisionRow.from_record(record, signal_id=7, mode=Mode.PAPER, config_sha=SHA),
            decision_values(record, signal_id=7, mode=Mode.PAPER, config_sha=SHA),
        ),
        (
            OrderRow.from_order(order, strategy="orb", decision_id=3, oco_group="PLAN"),
            order_values(order, strategy="orb", decision_id=3, oco_group="PLAN"),
        ),
        (FillRow.from_fill(fill, order_id=5), fill_values(fill, order_id=5)),
        (PositionRow.from_position("orb", position), position_values("orb", position)),
        (AuditLogRow.from_state_change(change), audit_values(change)),
    ]
    for row, values in pairs:
        assert values == {key: getattr(row, key) for key in _columns(type(row))}


def test_plan_ids_are_read_back_from_both_client_id_layouts() -> None:
    plan = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567ABCDEFGHIJKLMNOPQRST"
    assert plan_of_client_id(f"qd-{plan}-exit-3") == plan
    assert plan_of_client_id("QABCDEFGHIJKLMNOPX01") == "ABCDEFGHIJKLMNOP"
    assert plan_of_client_id("manual-order-7") == ""


@pytest.fixture
def own_role(pg_admin: Engine) -> Iterator[tuple[str, str]]:
    """(admin URL, writer URL) on a fresh schema, the writer logging in as a role of its own.

    The shared server is never stopped: an outage is this role losing its connections
    and its right to log in.
    """
    suffix = uuid.uuid4().hex[:10]
    schema, role = f"qd_test_{suffix}", f"qd_writer_{suffix}"
    base = make_url(pg_admin.url.render_as_string(hide_password=False))
    admin_url = base.update_query_dict({"options": f"-csearch_path={schema}"})
    with pg_admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        connection.exec_driver_sql(f'CREATE ROLE "{role}" LOGIN')
    upgrade(admin_url.render_as_string(hide_password=False))
    with pg_admin.connect() as connection:
        connection.exec_driver_sql(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"')
        connection.exec_driver_sql(f'GRANT ALL ON ALL TABLES IN SCHEMA "{schema}" TO "{role}"')
        connection.exec_driver_sql(f'GRANT ALL ON ALL SEQUENCES IN SCHEMA "{schema}" TO "{role}"')
    # 127.0.0.1: the server trusts any role there (and no rule covers ::1).
    writer_url = admin_url.set(username=role, host="127.0.0.1", password=None)
    yield admin_url.render_as_string(hide_password=False), writer_url.render_as_string(hide_password=False)
    with pg_admin.connect() as connection:
        connection.exec_driver_sql("SET lock_timeout = '5s'")
        _terminate(connection, role)
        connection.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        connection.exec_driver_sql(f'DROP OWNED BY "{role}"')
        connection.exec_driver_sql(f'DROP ROLE "{role}"')


def _terminate(connection: Connection, role: str) -> None:
    connection.exec_driver_sql(
        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'"
    )


def _lock_out(admin: Engine, role: str, *, locked: bool) -> None:
    with admin.connect() as connection:
        connection.exec_driver_sql(f'ALTER ROLE "{role}" {"NOLOGIN" if locked else "LOGIN"}')
        if locked:
            _terminate(connection, role)


@pytest.mark.postgres
def test_the_background_writer_rides_out_a_real_postgresql_outage(
    pg_admin: Engine, own_role: tuple[str, str], open_store: Callable[..., sessionmaker[Session]]
) -> None:
    admin_url, writer_url = own_role
    role = make_url(writer_url).username or ""
    alerts: list[tuple[str, str]] = []
    sessions = open_store(writer_url)
    desk = _desk(sessions, batch_size=25, on_alert=lambda *a: alerts.append(a))
    desk.writer.start_background(interval_s=0.01)
    try:
        desk.run(0, 20)
        _wait_until(lambda: desk.writer.stats().buffered == 0)
        _lock_out(pg_admin, role, locked=True)
        desk.run(20, 50)  # the engine trades on while the store is gone
        # The first error may be the killed connection; then every reconnect is refused.
        _wait_until(lambda: "not permitted to log in" in desk.writer.stats().last_error)
        assert desk.writer.stats().degraded and desk.writer.stats().buffered > 0
        with pytest.raises(StoreWriteFailed):
            desk.writer.persist_before_send(_order("qd-OUT-entry-0"), strategy="Swing", plan_id="OUT")
        _lock_out(pg_admin, role, locked=False)
        desk.run(50, 70)
        _wait_until(lambda: not desk.writer.stats().degraded and desk.writer.stats().buffered == 0)
    finally:
        desk.writer.stop()
    assert [kind for kind, _ in alerts] == ["store_degraded", "store_recovered"]
    _assert_store_matches_engine(desk, open_store(admin_url))


def _stored_rig(db_url: str, *, outbox: bool, venue_class: type = SimulatedExchange):  # type: ignore[no-untyped-def]
    """An engine on the simulated venue with a StoreWriter on a migrated store."""
    from kit import rig
    from quantdesk.risk.messages import Mode
    from quantdesk.store import make_engine, session_factory, upgrade
    from quantdesk.store.writer import StoreWriter

    upgrade(db_url)
    sessions = session_factory(make_engine(db_url))
    writer = StoreWriter(sessions, mode=Mode.BACKTEST, config_sha="t")
    r = rig(before_send=writer.persist_before_send if outbox else None, venue_class=venue_class)
    return r, sessions, writer


def _enter_with_stop(r) -> None:  # type: ignore[no-untyped-def]
    """A filled entry of 3 with a protective stop at 95 (entry placed on bar 0, filled on bar 1)."""
    from decimal import Decimal

    from kit import flat_bar
    from quantdesk.execution.client_ids import plan_client_id
    from quantdesk.model import Side

    r.feed(flat_bar(0, 100.0))
    plan = plan_client_id(
        strategy="s",
        symbol="AAA",
        side="BUY",
        entry=None,
        stop=Decimal(95),
        targets=(),
        qty=Decimal(3),
        signal_ts=1,
        config_sha="t",
    )
    r.engine.orders.enter("s", "AAA", Side.BUY, Decimal(3), plan_id=plan, stop=Decimal(95))
    r.feed(flat_bar(1, 100.0))


def test_the_engine_commits_each_order_row_before_the_venue_sees_it(db_url: str) -> None:
    """The outbox wired through Engine(before_send=...): every order the venue receives is
    already a committed PENDING_SUBMIT row, read by an independent session."""
    from sqlalchemy import select

    from quantdesk.store import OrderRow

    seen_at_venue: list[str] = []

    class Watched(SimulatedExchange):
        def submit_order(self, order: Order) -> None:
            with sessions() as session:
                row = session.scalars(
                    select(OrderRow).where(OrderRow.client_order_id == order.client_order_id)
                ).one()
                seen_at_venue.append(str(row.status))
            super().submit_order(order)

    r, sessions, _ = _stored_rig(db_url, outbox=True, venue_class=Watched)
    _enter_with_stop(r)
    assert seen_at_venue == ["PENDING_SUBMIT", "PENDING_SUBMIT"]  # the entry, then its stop


def test_a_finished_flatten_is_stored_as_a_risk_event_with_its_duration(db_url: str) -> None:
    from sqlalchemy import select

    from kit import flat_bar
    from quantdesk.engine import FlattenCompleted
    from quantdesk.store import RiskEventRow

    r, sessions, writer = _stored_rig(db_url, outbox=False)
    writer.attach(r.engine)
    done: list[FlattenCompleted] = []
    r.bus.subscribe(FlattenCompleted, done.append)
    _enter_with_stop(r)
    r.engine.flatten("kill switch", actor="test")
    assert done == []  # the closing order has not filled yet
    r.feed(flat_bar(2, 100.0))
    assert len(done) == 1 and done[0].canceled == 1 and done[0].closing_orders == 1
    writer.flush()
    with sessions() as session:
        [row] = session.scalars(select(RiskEventRow).where(RiskEventRow.kind == "flatten")).all()
    assert row.reason == "kill switch" and row.details["actor"] == "test"
    assert 0 < row.details["duration_ms"] < 2_000


def test_bulk_inserts_return_ids_in_input_order_and_refusals_as_sqlalchemy_errors(
    sessions: sessionmaker[Session],
) -> None:
    # On PostgreSQL the writer inserts a batch as one statement of arrays (ids from the sequence first):
    # ids must still follow the input, and a refusal must still be SQLAlchemy's exception class,
    # which the writer's retry and quarantine decide on.
    signals = [Signal("s", "AAA", Side.BUY, T0 + i, qty=Decimal(i + 1)) for i in range(30)]
    with sessions() as session:
        ids = _insert(session, SignalRow, [signal_values(s, SHA) for s in signals])
        session.commit()
    with sessions() as session:
        stored = {row_id: qty for row_id, qty in session.execute(select(SignalRow.id, SignalRow.qty))}
    assert [stored[i] for i in ids] == [s.qty for s in signals]
    values = {
        "ts": T0,
        "mode": Mode.PAPER,
        "approved": True,
        "status": "PLANNED",
        "risk_pct": Decimal(1),
        "risk_amount": Decimal(10),
        "qty": Decimal(5),
        "block_reasons": [],
        "block_details": [],
        "config_sha": SHA,
    }
    with sessions() as session, pytest.raises(IntegrityError):
        _insert(session, DecisionRow, [{**values, "signal_id": ids[0], "client_plan_id": "P1"}] * 2)
    with sessions() as session, pytest.raises(IntegrityError):
        _insert(session, DecisionRow, [{**values, "signal_id": max(ids) + 1, "client_plan_id": "P2"}])
    with sessions() as session, pytest.raises(StatementError):
        huge = {**values, "signal_id": ids[0], "qty": Decimal("1e20"), "client_plan_id": "P3"}
        _insert(session, DecisionRow, [huge])


def test_a_batch_that_reads_first_waits_for_a_write_from_elsewhere_instead_of_failing(
    tmp_path: Any,
) -> None:
    """SQLite, two writers (the writer process and the node's outbox): a deferred transaction
    that has read cannot write once the other has committed since ("database is locked" at once,
    no busy wait), which degraded the store and refused entries under load. Writes begin
    IMMEDIATE: the other waits its turn instead."""
    url = f"sqlite:///{tmp_path / 'two.db'}"
    upgrade(url)
    outbox_db, child_db = make_engine(url), make_engine(url)
    outbox = StoreWriter(session_factory(outbox_db), mode=Mode.BACKTEST, config_sha=SHA)
    child = StoreWriter(session_factory(child_db), mode=Mode.BACKTEST, config_sha=SHA)
    outbox.persist_before_send(_order("qd-P1-entry-0"), strategy="s", plan_id="")
    accepted = _order("qd-P1-entry-0")
    accepted.transition(OrderStatus.SUBMITTED, T0 + 1)
    # The child does not know the row: its batch looks it up (a read) before updating it.
    child.enqueue([(ORDER, accepted, "s", None)])
    errors: list[BaseException] = []

    def entry_elsewhere() -> None:
        try:
            outbox.persist_before_send(_order("qd-P2-entry-0"), strategy="s", plan_id="")
        except BaseException as error:  # reported below
            errors.append(error)

    racing: list[threading.Thread] = []

    @event.listens_for(child_db, "after_cursor_execute")
    def between_read_and_write(conn: Connection, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and not racing:
            racing.append(threading.Thread(target=entry_elsewhere))
            racing[0].start()
            racing[0].join(timeout=0.5)  # committed by now, unless it waits for our lock

    try:
        assert child.flush() == 1 and not child.stats().degraded, child.stats().last_error
        racing[0].join(timeout=10)
        assert not errors
        with session_factory(outbox_db)() as session:
            rows = dict(session.execute(select(OrderRow.client_order_id, OrderRow.status)).all())
        assert rows == {"qd-P1-entry-0": OrderStatus.SUBMITTED, "qd-P2-entry-0": OrderStatus.PENDING_SUBMIT}
    finally:
        outbox_db.dispose()
        child_db.dispose()


def _plans_of_order_lookups(engine: Engine) -> list[str]:
    """Collects PostgreSQL's plan for each lookup of orders by client id run on `engine`."""
    plans: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def explain(conn: Connection, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        if statement.lstrip().startswith("SELECT orders.client_order_id"):
            cursor.execute("EXPLAIN " + statement, parameters)
            plans.append("\n".join(row[0] for row in cursor.fetchall()))

    return plans


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_batch_finds_stored_orders_by_index_where_postgresql_would_scan_the_table(
    store_engine: Engine, sessions: sessionmaker[Session]
) -> None:
    # Rows another writer stored (the outbox in the node's process): this writer must look each up.
    orders = [_order(f"qd-P{i}-entry-0") for i in range(3_000)]
    with sessions() as session:
        rows = [order_values(o, strategy="s", decision_id=None, oco_group=None) for o in orders]
        _insert(session, OrderRow, rows, ids=False)
        session.commit()
        session.execute(text("ANALYZE orders"))
        session.commit()
    plans = _plans_of_order_lookups(store_engine)
    looked_up = [o.client_order_id for o in orders[:400]]
    with sessions() as session:
        # The same lookup outside a writer's batch: the planner scans (what made this test needed).
        session.execute(select(OrderRow.client_order_id).where(OrderRow.client_order_id.in_(looked_up)))
    assert "Seq Scan on orders" in plans[0], plans[0]
    writer = StoreWriter(sessions, mode=Mode.PAPER, config_sha=SHA)
    for order in orders[:400]:
        order.transition(OrderStatus.SUBMITTED, T0 + 1)
        writer.enqueue([(ORDER, order, "s", None)])
    assert writer.flush() == 400
    assert len(plans) == 2 and "Index" in plans[1] and "Seq Scan" not in plans[1], plans[1]
    with sessions() as session:
        statuses = Counter(session.scalars(select(OrderRow.status)))
        # SET LOCAL: the connection, back in the pool, plans as before.
        assert session.execute(text("SHOW enable_seqscan")).scalar() == "on"
    assert statuses == {OrderStatus.SUBMITTED: 400, OrderStatus.PENDING_SUBMIT: 2_600}


def test_batch_rows_are_stored_exactly_as_sqlalchemy_stores_them(
    sessions: sessionmaker[Session], other_db_url: str
) -> None:
    # The writer hands a batch's rows to the driver itself (arrays on PostgreSQL, executemany of
    # tuples on SQLite) with SQLAlchemy's bind processors: decimals, JSON, enums and timestamps
    # must be stored as SQLAlchemy's own insert stores them. A copy of every row through
    # SQLAlchemy's insert into a second database must read back identical at the driver level.
    desk = _desk(sessions, batch_size=9, malformed=frozenset({13}))
    desk.run(0, 20)
    desk.rig.engine.pause("a test's pause", "tester")
    desk.run(20, 40)
    assert desk.writer.flush() > 0
    upgrade(other_db_url)
    other = make_engine(other_db_url)
    models = (SignalRow, DecisionRow, OrderRow, FillRow, PositionRow, AuditLogRow, RiskEventRow)
    try:
        with sessions() as session, Session(other) as copy:
            for model in models:
                table: Any = model.__table__
                rows = [dict(row._mapping) for row in session.execute(select(table).order_by(table.c.id))]
                assert rows, f"the run wrote no {table.name}"
                copy.execute(table.insert(), rows)
            copy.commit()
        with store_raw(sessions) as written, store_raw(session_factory(other)) as copied:
            for model in models:
                name = model.__tablename__
                assert written(name) == copied(name), name
    finally:
        other.dispose()


@contextmanager
def store_raw(sessions: sessionmaker[Session]) -> Iterator[Callable[[str], list[tuple[Any, ...]]]]:
    """A table's rows as the driver returns them, with no SQLAlchemy type processing."""
    with sessions() as session:
        connection = session.connection()
        yield lambda name: [
            tuple(row) for row in connection.exec_driver_sql(f"SELECT * FROM {name} ORDER BY id")
        ]


def test_bulk_updates_give_each_row_its_own_values_and_refuse_text_too_long_for_its_column(
    sessions: sessionmaker[Session],
) -> None:
    # PostgreSQL takes a batch's rows as one array per column: each row must still get its own
    # values, and a value too long for its column must be refused, not cut by the array's cast.
    orders = [_order(f"qd-P{i}-entry-0") for i in range(5)]
    with sessions() as session:
        ids = _insert(
            session,
            OrderRow,
            [order_values(o, strategy="s", decision_id=None, oco_group=None) for o in orders],
        )
        session.commit()
    changes = [
        {
            "id": row_id,
            "status": OrderStatus.FILLED,
            "filled_qty": Decimal(i),
            "broker_order_id": None if i % 2 else f"B{i}",
        }
        for i, row_id in enumerate(ids)
    ]
    with sessions() as session:
        _update(session, OrderRow, changes[1:4])
        session.commit()
    with sessions() as session:
        stored = {
            row.id: (row.status, row.filled_qty, row.broker_order_id)
            for row in session.scalars(select(OrderRow))
        }
    assert stored == {
        ids[0]: (OrderStatus.PENDING_SUBMIT, Decimal(0), None),
        ids[1]: (OrderStatus.FILLED, Decimal(1), None),
        ids[2]: (OrderStatus.FILLED, Decimal(2), "B2"),
        ids[3]: (OrderStatus.FILLED, Decimal(3), None),
        ids[4]: (OrderStatus.PENDING_SUBMIT, Decimal(0), None),
    }
    with sessions() as session, pytest.raises(ValueError, match="updated twice"):
        _update(session, OrderRow, [changes[0], changes[0]])
    too_long = order_values(_order("qd-P9-entry-0"), strategy="s" * 65, decision_id=None, oco_group=None)
    if make_url(str(sessions.kw["bind"].url)).get_backend_name() == "postgresql":
        with sessions() as session, pytest.raises(DataError, match="too long"):
            _insert(session, OrderRow, [too_long])
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(OrderRow)) == 5
