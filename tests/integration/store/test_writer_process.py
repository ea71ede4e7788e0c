"""The writer process: the same audit chain as the thread writer, its outbox links, its failures."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from typing import Any

import msgspec
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from kit import Rig, rig
from quantdesk.engine.messages import DecisionRecord, FlattenCompleted, SignalBlocked
from quantdesk.model import Fill, Order, OrderStatus, OrderType, Side, Signal
from quantdesk.risk.kill_switch import StateChange
from quantdesk.risk.messages import Mode
from quantdesk.store import (
    AuditLogRow,
    DecisionRow,
    FillRow,
    OrderRow,
    SignalRow,
    make_engine,
    session_factory,
    writer_process,
)
from quantdesk.store.capture import (
    DECISION,
    FILL,
    FLATTEN,
    ORDER,
    REFUSED,
    SIGNAL,
    STATE,
    Record,
    event_of,
    kind_of,
)
from quantdesk.store.writer import StoreWriteFailed
from quantdesk.store.writer_process import (
    MAX_RESTARTS,
    PUMP_FRACTION,
    RELEASE_CHUNK,
    SHIP_CHUNK,
    ProcessStoreWriter,
    _decode_records,
    _encode_records,
    _SignalMemory,
)
from recovery_kit import Bracket, wave

SHA = "e" * 64
_reads_the_pipe = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads the pipe's unread bytes (SIOCOUTQ)"
)


@pytest.fixture
def trading(db_url: str, sessions: sessionmaker[Session]) -> Iterator[tuple[Rig, ProcessStoreWriter]]:
    """An engine trading brackets with the writer process attached, its outbox wired in."""
    writer = ProcessStoreWriter(sessions, db_url, mode=Mode.BACKTEST, config_sha=SHA, batch_size=7)
    r = rig(default_qty=Decimal(10), before_send=writer.persist_before_send)
    writer.attach(r.engine)
    r.engine.add_strategy(Bracket("AAA"))
    r.engine.start()
    writer.start_background(0.05)
    yield r, writer
    if writer._process is not None:
        writer._process.kill()


def _count(sessions: sessionmaker[Session], model: object) -> int:
    with sessions() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)  # type: ignore[arg-type]


def test_a_session_is_stored_as_the_same_complete_chain(
    trading: tuple[Rig, ProcessStoreWriter], sessions: sessionmaker[Session]
) -> None:
    r, writer = trading
    fills: list[Fill] = []
    r.bus.subscribe(Fill, fills.append)
    for i in range(120):
        r.feed(wave(i))
        if i % 5 == 4:
            # A signal bar (its decision comes with the next bar): the shipper sends the signal
            # now and its decision in a later message.
            time.sleep(0.06)
    r.engine.end_cycle()
    writer.stop()
    assert len(fills) > 20
    _assert_chain(r, fills, sessions)
    assert writer.stats().written > 0 and writer.buffered == 0


def _assert_chain(r: Rig, fills: list[Fill], sessions: sessionmaker[Session]) -> None:
    """The store holds the engine's session once each: signals, decisions, orders, fills, linked."""
    engine = r.engine
    assert _count(sessions, SignalRow) == engine.signals  # no signal written twice
    assert _count(sessions, DecisionRow) == len(engine.pipeline.decisions)
    with sessions() as session:
        rows = {row.client_order_id: row for row in session.scalars(select(OrderRow))}
        stored_fills = set(session.scalars(select(FillRow.execution_id)))
        orphans = session.scalar(
            select(func.count())
            .select_from(DecisionRow)
            .where(~DecisionRow.signal_id.in_(select(SignalRow.id)))
        )
    assert {cid: row.status for cid, row in rows.items()} == {
        cid: order.status for cid, order in engine.orders.orders.items()
    }
    assert all(row.decision_id is not None for row in rows.values() if row.leg == "ENTRY")
    assert stored_fills == {f.execution_id for f in fills}
    assert _count(sessions, FillRow) == len(fills)
    assert orphans == 0


def test_an_entry_is_sent_with_its_decision_written_by_the_child(
    trading: tuple[Rig, ProcessStoreWriter], sessions: sessionmaker[Session]
) -> None:
    r, writer = trading
    for i in range(12):
        r.feed(wave(i))  # no pause: only the outbox's flush can have written the decisions
    entries = [o.client_order_id for o in r.engine.orders.orders.values() if o.tag == "ENTRY"]
    assert entries
    with sessions() as session:
        linked = session.scalars(
            select(OrderRow.client_order_id)
            .join(DecisionRow, OrderRow.decision_id == DecisionRow.id)
            .join(SignalRow, DecisionRow.signal_id == SignalRow.id)
            .where(SignalRow.stop.is_not(None))
        ).all()
    assert set(entries) <= set(linked)
    writer.stop()


def _dead_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"postgresql+psycopg://postgres@127.0.0.1:{port}/gone"


def _down_desk(alerts: list[tuple[str, str]]) -> tuple[Rig, ProcessStoreWriter, list[Fill]]:
    """`_desk` on a store that refuses every connection; protective orders are buffered."""
    url = _dead_url()
    return _desk(session_factory(make_engine(url)), url, alerts, send_when_down={"STOP", "EXIT"})


def test_a_store_that_is_down_degrades_alerts_once_and_keeps_every_record() -> None:
    alerts: list[tuple[str, str]] = []
    r, writer, _ = _down_desk(alerts)
    writer.start_background(0.05)
    try:
        for i in range(30):
            r.feed(wave(i))
        r.engine.end_cycle()
        writer.flush()
        stats = writer.stats()
        assert stats.degraded and stats.buffered > 0 and stats.written == 0
        assert Counter(kind for kind, _ in alerts)["store_degraded"] == 1
        # Entries were refused at the outbox, not sent: nothing reached the venue unrecorded.
        assert not [o for o in r.engine.orders.orders.values() if o.tag == "ENTRY" and o.venue_order_id]
        with pytest.raises(StoreWriteFailed, match="records not written"):
            writer.stop()
    finally:
        if writer._process is not None:
            writer._process.kill()


def test_records_the_child_holds_count_against_max_buffer() -> None:
    """Shipped to a child whose store is down, records are still unwritten: the bound that
    pauses entries counts them with the parent's own, or a dead store would never pause."""
    url = _dead_url()
    full: list[tuple[int, int]] = []
    holder: dict[str, ProcessStoreWriter] = {}

    def on_overflow() -> None:
        w = holder["writer"]
        full.append((len(w._buffer), w.stats().buffered))

    writer = holder["writer"] = ProcessStoreWriter(
        session_factory(make_engine(url)),
        url,
        mode=Mode.BACKTEST,
        config_sha=SHA,
        max_buffer=20,
        on_overflow=on_overflow,
        send_when_down={"STOP", "EXIT"},
    )
    r = rig(default_qty=Decimal(10), before_send=writer.persist_before_send)
    writer.attach(r.engine)
    r.engine.add_strategy(Bracket("AAA"))
    r.engine.start()
    try:
        for i in range(60):
            r.feed(wave(i))
            r.engine.end_cycle()
            writer.flush()  # ships to the child, which keeps them (its store is down)
        assert len(full) == 1, full  # once, at the bound
        own, total = full[0]
        assert own < 20 <= total
    finally:
        if writer._process is not None:
            writer._process.kill()


def test_the_writer_process_dies_with_its_parent(tmp_path: Path) -> None:
    done = _run_writer_script(tmp_path, "import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    assert done.returncode == -signal.SIGKILL, done.stderr
    child = int(done.stdout.split()[0])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(child):
        time.sleep(0.05)
    assert not _alive(child)


def test_a_script_that_never_stops_its_writer_still_exits(tmp_path: Path) -> None:
    # The child ignores SIGTERM (the node stops it in order), so multiprocessing's own exit
    # handler, which terminates daemons with SIGTERM and then joins them, would wait forever.
    done = _run_writer_script(tmp_path, "pass")
    assert done.returncode == 0, done.stderr
    assert not _alive(int(done.stdout.split()[0]))


def _run_writer_script(tmp_path: Path, then: str) -> subprocess.CompletedProcess[str]:
    """A Python process that starts a writer process, prints the child's pid, then runs `then`."""
    script = textwrap.dedent(
        f"""
        from quantdesk.risk.messages import Mode
        from quantdesk.store import make_engine, session_factory, upgrade
        from quantdesk.store.writer_process import ProcessStoreWriter
        url = "sqlite:///{tmp_path / "q.db"}"
        upgrade(url)
        writer = ProcessStoreWriter(session_factory(make_engine(url)), url, mode=Mode.PAPER, config_sha="x")
        writer.start_background()
        writer.flush()  # the child is up and answering
        print(writer._process.pid, flush=True)
        """
    )
    return subprocess.run([sys.executable, "-c", script + then], capture_output=True, text=True, timeout=60)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (dead, not yet reaped by init) counts as gone.
    status = Path(f"/proc/{pid}/stat")
    return status.exists() and status.read_text().split()[2] != "Z"


# -- a child that dies on its own --------------------------------------------------------------


def _kill(writer: ProcessStoreWriter) -> None:
    process = writer._process
    assert process is not None
    process.kill()
    process.join(timeout=10)


def _desk(
    sessions: sessionmaker[Session], url: str, alerts: list[tuple[str, str]], **options: Any
) -> tuple[Rig, ProcessStoreWriter, list[Fill]]:
    """An engine trading brackets with the writer process attached (`options` are the writer's)."""
    writer = ProcessStoreWriter(
        sessions,
        url,
        mode=Mode.BACKTEST,
        config_sha=SHA,
        on_alert=lambda kind, message: alerts.append((kind, message)),
        **{"batch_size": 7, **options},
    )
    r = rig(default_qty=Decimal(10), before_send=writer.persist_before_send)
    writer.attach(r.engine)
    r.engine.add_strategy(Bracket("AAA"))
    fills: list[Fill] = []
    r.bus.subscribe(Fill, fills.append)
    r.engine.start()
    return r, writer, fills


def test_a_writer_process_killed_mid_write_loses_nothing_and_writes_nothing_twice(
    db_url: str, sessions: sessionmaker[Session]
) -> None:
    alerts: list[tuple[str, str]] = []
    r, writer, fills = _desk(sessions, db_url, alerts)
    try:
        for i in range(60):
            r.feed(wave(i))
        r.engine.end_cycle()
        writer.flush()
        for i in range(60, 120):
            r.feed(wave(i))
        r.engine.end_cycle()
        first = writer._process
        with _store_locked(db_url):
            while writer.pump():
                pass
            time.sleep(0.3)  # the child is in its write, waiting on the lock
            assert len(writer._unacked) > 0 and not writer._buffer
            _kill(writer)  # killed in the middle of a transaction
        for i in range(120, 160):
            r.feed(wave(i))
            writer.pump()  # the first call sees it gone and starts another
        r.engine.end_cycle()
        writer.stop()
        assert writer._process is None and first is not None
        died = [message for kind, message in alerts if kind == "store_writer_process_died"]
        assert len(died) == 1 and "go to a new one" in died[0], alerts
        assert not writer.stats().degraded
        _assert_chain(r, fills, sessions)
    finally:
        if writer._process is not None:
            writer._process.kill()


def test_records_a_dead_child_wrote_without_answering_are_not_written_twice(
    db_url: str, sessions: sessionmaker[Session]
) -> None:
    """A child can commit a batch and die before its answer: the new one gets those records
    again (every batch of them, not only the first) and must find them in the store."""
    r, writer, fills = _desk(sessions, db_url, [])
    try:
        for i in range(80):
            if i == 30:
                r.engine.pause("check", actor="ops")  # audit rows, and signals refused while paused
            if i == 50:
                r.engine.resume(actor="ops")
            r.feed(wave(i))
        r.engine.end_cycle()
        sent = list(writer._buffer)
        kinds = Counter(kind_of(entry) for entry in sent)
        assert kinds[STATE] == 2 and kinds[SIGNAL] > 0  # not only rows looked up by their ids
        assert len(sent) > 3 * 7  # several of the new child's batches
        writer.flush()
        writer._unacked.extend(sent)  # written, but as if the answer never came
        _kill(writer)
        for i in range(80, 120):
            r.feed(wave(i))
        r.engine.end_cycle()
        writer.stop()
        _assert_chain(r, fills, sessions)
        assert _count(sessions, AuditLogRow) == 2
    finally:
        if writer._process is not None:
            writer._process.kill()


def test_a_writer_process_that_keeps_dying_is_given_up_degraded_with_every_record_kept(
    db_url: str, sessions: sessionmaker[Session]
) -> None:
    alerts: list[tuple[str, str]] = []
    r, writer, _ = _desk(sessions, db_url, alerts)
    try:
        for i in range(20):
            r.feed(wave(i))  # no pump: all of it stays buffered here
        r.engine.end_cycle()
        held = writer.buffered
        assert held > 0
        for _ in range(MAX_RESTARTS + 1):
            _kill(writer)
            writer.pump()  # sees it gone: another one, or given up
        assert writer._process is None
        stats = writer.stats()
        assert stats.degraded and "given up" in stats.last_error
        kinds = [kind for kind, _ in alerts]
        assert kinds.count("store_writer_process_died") == MAX_RESTARTS + 1
        assert kinds.count("store_degraded") == 1
        assert writer.buffered == held and not writer.pump()
        # Degraded: an entry is refused at the outbox (not sent); the engine's own records keep buffering.
        entry = Order("qd-P1-entry-0", "AAA", Side.BUY, OrderType.MARKET, Decimal(10), tag="ENTRY")
        entry.transition(OrderStatus.PENDING_SUBMIT, 1)
        with pytest.raises(StoreWriteFailed, match="degraded"):
            writer.persist_before_send(entry, strategy="brk", plan_id="P1")
        for i in range(20, 40):
            r.feed(wave(i))
        r.engine.end_cycle()
        assert writer.buffered > held
        with pytest.raises(StoreWriteFailed, match=r"records not written.*given up"):
            writer.stop()
    finally:
        if writer._process is not None:
            writer._process.kill()


def test_a_child_restarted_while_the_store_is_down_does_not_call_it_recovered() -> None:
    """A new child has not failed a write yet: it must probe the store before its first answer,
    or the node is told the store is back (and entries resume) while it is still down."""
    alerts: list[tuple[str, str]] = []
    r, writer, _ = _down_desk(alerts)
    try:
        assert writer.stats().degraded  # said by the first child's first answer
        for i in range(20):
            r.feed(wave(i))
        r.engine.end_cycle()
        writer.flush()
        held = writer.buffered
        _kill(writer)
        writer.pump()  # a new child
        deadline = time.monotonic() + 30
        while not writer._ready and time.monotonic() < deadline:
            time.sleep(0.05)
            writer.pump()
        assert writer._ready and writer.stats().degraded
        kinds = Counter(kind for kind, _ in alerts)
        assert kinds["store_degraded"] == 1 and kinds["store_recovered"] == 0, alerts
        assert writer.buffered == held
    finally:
        if writer._process is not None:
            writer._process.kill()


_two_cpus = pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs CPU affinity (Linux) and two CPUs this process may use",
)


@_two_cpus
def test_a_writer_process_given_cpus_runs_and_writes_only_there(
    db_url: str, sessions: sessionmaker[Session]
) -> None:
    mine = os.sched_getaffinity(0)
    cpu = max(mine)  # any CPU but the one a node's engine would keep
    r, writer, fills = _desk(sessions, db_url, [], cpus=[cpu])
    try:
        assert writer._process is not None and writer._process.pid is not None
        child = writer._process.pid
        # Every thread of the child (the writer and its pipe reader) has the one CPU.
        threads = os.listdir(f"/proc/{child}/task")
        assert len(threads) >= 2
        assert {tid: os.sched_getaffinity(int(tid)) for tid in threads} == {tid: {cpu} for tid in threads}
        assert os.sched_getaffinity(0) == mine  # this process keeps its own
        for i in range(60):
            r.feed(wave(i))
        r.engine.end_cycle()
        writer.stop()
        assert fills and writer.buffered == 0
        assert _count(sessions, FillRow) == len(fills)
    finally:
        if writer._process is not None:
            writer._process.kill()


def test_cpus_a_writer_process_may_not_use_are_refused_by_name_before_it_starts(tmp_path: Path) -> None:
    sessions = session_factory(make_engine(f"sqlite:///{tmp_path / 'q.db'}"))
    with pytest.raises(ValueError, match=r"writer process cpus \[4096\]: this machine's CPUs are 0-"):
        ProcessStoreWriter(sessions, "sqlite://", mode=Mode.BACKTEST, config_sha=SHA, cpus=[4096])
    with pytest.raises(ValueError, match=r"writer process cpus: none given"):
        ProcessStoreWriter(sessions, "sqlite://", mode=Mode.BACKTEST, config_sha=SHA, cpus=[])


def test_a_writer_process_that_cannot_start_fails_attach_with_its_reason(tmp_path: Path) -> None:
    sessions = session_factory(make_engine(f"sqlite:///{tmp_path / 'q.db'}"))
    writer = ProcessStoreWriter(sessions, "nosuchdb://nowhere", mode=Mode.BACKTEST, config_sha=SHA)
    r = rig(default_qty=Decimal(10))
    with pytest.raises(StoreWriteFailed, match=r"did not start.*nosuchdb"):
        writer.attach(r.engine)
    assert writer._process is not None
    writer._process.join(timeout=10)
    assert writer._process.exitcode == 0  # it said why and ended, rather than crashing


def test_a_script_that_starts_a_node_without_a_main_guard_is_told_so(tmp_path: Path) -> None:
    # The spawned child imports the script again, tries to start a child of its own and dies
    # before it can say why: the error must name the cause, not be empty.
    script = tmp_path / "node.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys
            from decimal import Decimal
            sys.path.insert(0, {str(Path(__file__).parents[2])!r})
            from kit import rig
            from quantdesk.risk.messages import Mode
            from quantdesk.store import make_engine, session_factory, upgrade
            from quantdesk.store.writer_process import ProcessStoreWriter
            url = "sqlite:///{tmp_path / "q.db"}"
            upgrade(url)
            sessions = session_factory(make_engine(url))
            writer = ProcessStoreWriter(sessions, url, mode=Mode.BACKTEST, config_sha="x")
            writer.attach(rig(default_qty=Decimal(10)).engine)
            """
        )
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert "did not start: it ended (exit code 1) before answering" in last, done.stderr
    assert "if __name__ == '__main__':" in last


# -- the records' wire format -------------------------------------------------------------------


def _signal(ts: int = 1_000) -> Signal:
    return Signal(
        "brk",
        "AAA",
        Side.BUY,
        ts,
        entry=Decimal("101.25"),
        stop=Decimal("99.5"),
        targets=(Decimal("103"), Decimal("104.75")),
        features=Signal.freeze_features({"atr": 1.25, "rsi": 61.0}),
        rationale="breakout",
    )


def _every_kind() -> list[Record]:
    signal = _signal()
    order = Order("qd-P1-entry-0", "AAA", Side.BUY, OrderType.LIMIT, Decimal(10), price=Decimal("101.25"))
    order.transition(OrderStatus.PENDING_SUBMIT, 1_001)
    reasons = ("max_positions",)
    fill = Fill(
        "x1",
        order.client_order_id,
        "v1",
        "AAA",
        Side.BUY,
        Decimal(10),
        Decimal("101.2"),
        Decimal("0.01"),
        5,
        6,
    )
    ten, zero = Decimal(10), Decimal(0)
    return [
        (SIGNAL, signal),
        (
            DECISION,
            DecisionRecord("P1", signal, True, (), (), ten, Decimal("17.5"), Decimal("0.5"), 1_001),
        ),
        (
            DECISION,
            DecisionRecord("", signal, False, reasons, ("3 open",), zero, zero, zero, 1),
        ),
        (ORDER, order, "brk", "P1"),
        (ORDER, order, None, None),
        (FILL, fill),
        (STATE, StateChange("pause", "operator", "lunch", 7)),
        (REFUSED, SignalBlocked(signal, "stop above entry")),
        (FLATTEN, FlattenCompleted(8, "kill_switch", "drawdown", 2, 1, 1_500_000)),
    ]


def _plain(value: object) -> object:
    # Orders compare by identity (eq=False): compare their fields.
    return msgspec.structs.asdict(value) if isinstance(value, Order) else value


def test_every_record_kind_crosses_to_the_child_unchanged() -> None:
    records = _every_kind()
    decoded = _decode_records(memoryview(_encode_records(records))[1:])
    assert [tuple(_plain(v) for v in r) for r in decoded] == [tuple(_plain(v) for v in r) for r in records]
    assert [type(v) for r in decoded for v in r] == [type(v) for r in records for v in r]
    # The features stay read-only, as the engine made them.
    assert isinstance(decoded[0][1].features, MappingProxyType)


def test_events_buffered_as_themselves_cross_as_the_records_they_stand_for() -> None:
    """The capture buffers most events bare (`capture.Entry`); the child gets them as records,
    mixed with records in one chunk (an order's first sighting, an outbox row, records put back)."""
    records = _every_kind()
    # Bare, as the capture leaves them; the order's first sighting stays a record with its identity.
    entries = [r if len(r) == 4 and r[2] is not None else event_of(r) for r in records]
    assert sum(isinstance(entry, tuple) for entry in entries) == 1
    assert [kind_of(entry) for entry in entries] == [record[0] for record in records]
    decoded = _decode_records(memoryview(_encode_records(entries))[1:])
    assert [tuple(_plain(v) for v in r) for r in decoded] == [tuple(_plain(v) for v in r) for r in records]
    assert [type(v) for r in decoded for v in r] == [type(v) for r in records for v in r]
    assert isinstance(decoded[0][1].features, MappingProxyType)


def test_decisions_and_refusals_get_the_object_of_their_signal_shipped_earlier() -> None:
    """The writer ties a decision row to its signal row by the signal object: a decoded record
    carries a copy, which the child's memory swaps for the one it has seen."""
    records = _every_kind()
    memory = _SignalMemory()
    first = memory.apply(_decode_records(memoryview(_encode_records(records[:1]))[1:]))
    later = memory.apply(_decode_records(memoryview(_encode_records(records[1:]))[1:]))
    signal = first[0][1]
    carriers = [r[1] for r in later if r[0] in (DECISION, REFUSED)]
    assert len(carriers) == 3 and all(c.signal is signal for c in carriers)


def test_a_signal_shipped_only_inside_its_decision_is_one_object_for_all_that_name_it() -> None:
    signal = _signal(ts=2_000)
    decision = DecisionRecord("P2", signal, True, (), (), Decimal(1), Decimal(1), Decimal("0.1"), 2_001)
    memory = _SignalMemory()
    out = memory.apply(_decode_records(memoryview(_encode_records([(DECISION, decision)]))[1:]))
    again = memory.apply(
        _decode_records(memoryview(_encode_records([(REFUSED, SignalBlocked(signal, "late"))]))[1:])
    )
    assert again[0][1].signal is out[0][1].signal


def test_pump_ships_one_chunk_per_call_and_says_when_more_is_left(
    db_url: str, sessions: sessionmaker[Session]
) -> None:
    """The node's loop lets a feed event in between two calls: one call must not ship everything."""
    with _writer(sessions, db_url) as writer:
        writer.flush()  # the child is up
        buffered = 3 * SHIP_CHUNK + 5
        for i in range(buffered):
            writer._capture.on_signal(_signal(ts=10_000 + i))
        for call in range(1, 4):
            assert writer.pump()  # more to ship
            assert len(writer._buffer) == buffered - call * SHIP_CHUNK
        writer.pump()
        assert not writer._buffer
        assert writer.stop() == buffered
        assert _count(sessions, SignalRow) == buffered


def test_pump_ships_a_backlog_a_sixteenth_at_a_time_one_message_a_call(
    db_url: str, sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the engine never idles, every call is followed by an event on caches the call has just
    used: a backlog goes in a few larger calls (at most MAX_PUMP_CHUNK each), not hundreds of small ones."""
    monkeypatch.setattr(writer_process, "MAX_PUMP_CHUNK", 150)
    with _writer(sessions, db_url) as writer:
        writer.flush()  # the child is up
        buffered = 3_000
        for i in range(buffered):
            writer._capture.on_signal(_signal(ts=10_000 + i))
        messages: list[int] = []
        send = writer._send_bytes
        monkeypatch.setattr(writer, "_send_bytes", lambda data: (messages.append(len(data)), send(data))[1])
        shipped: list[int] = []
        while writer._buffer:
            before = len(writer._buffer)
            writer.pump()
            shipped.append(before - len(writer._buffer))
        expected, left = [], buffered
        while left:
            expected.append(min(left, 150, max(SHIP_CHUNK, -(-left // PUMP_FRACTION))))
            left -= expected[-1]
        assert shipped == expected
        assert shipped[:3] == [150, 150, 150] and shipped[-1] <= SHIP_CHUNK and len(shipped) < buffered / 20
        assert len(messages) == len(shipped)  # one message a call
        assert writer.stop() == buffered
        assert _count(sessions, SignalRow) == buffered


@_reads_the_pipe
def test_pump_never_waits_on_a_child_that_is_not_reading_and_loses_nothing(
    db_url: str, sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A send past the pipe's buffer would wait for the child's reader, with the engine's thread:
    a child that pauses (stopped here) must cost the engine nothing but records kept for later."""
    monkeypatch.setattr(writer_process, "SEND_BUFFER_BYTES", 64 * 1024)
    with _writer(sessions, db_url) as writer:
        writer.flush()  # the child is up
        assert writer._process is not None and writer._pipe_room is not None
        buffered = 3_000  # ~1.2 MB of signals: far past 64 KiB
        for i in range(buffered):
            writer._capture.on_signal(_signal(ts=10_000 + i))
        os.kill(writer._process.pid, signal.SIGSTOP)
        try:
            calls: list[tuple[bool, float]] = []

            def pump_a_while() -> None:
                for _ in range(200):
                    calls.append((writer.pump(), writer.pump_wait_s))

            pumping = threading.Thread(target=pump_a_while, daemon=True)
            pumping.start()
            pumping.join(timeout=20)
            assert not pumping.is_alive(), "a pump waited on the pipe"
        finally:
            os.kill(writer._process.pid, signal.SIGCONT)
        assert all(more for more, _ in calls)
        held_back = [wait for _, wait in calls if wait > 0]
        assert len(held_back) > 150 and set(held_back) == {writer_process.PIPE_FULL_WAIT_S}
        assert 0 < buffered - len(writer._buffer) < 500  # what fitted went; the rest waits here
        while writer.pump():
            time.sleep(writer.pump_wait_s)
        assert writer.stop() == buffered
        assert _count(sessions, SignalRow) == buffered


@_reads_the_pipe
def test_records_larger_than_the_pipes_room_still_go_one_at_a_time(
    db_url: str, sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A room smaller than one record must not hold the records here for ever: an empty pipe
    takes one whatever its size."""
    monkeypatch.setattr(writer_process, "SEND_BUFFER_BYTES", 1)  # the kernel's least, a few KB
    with _writer(sessions, db_url) as writer:
        writer.flush()  # the child is up
        assert writer._pipe_room is not None and writer._pipe_room < 8_000
        features = Signal.freeze_features({f"f{i}": float(i) for i in range(800)})  # ~12 KB a record
        for i in range(20):
            writer._capture.on_signal(msgspec.structs.replace(_signal(ts=10_000 + i), features=features))
        deadline = time.monotonic() + 20
        while writer.pump() and time.monotonic() < deadline:
            time.sleep(writer.pump_wait_s)
        assert not writer._buffer, "records larger than the room stayed buffered"
        assert writer.stop() == 20
        assert _count(sessions, SignalRow) == 20


def test_a_sigterm_to_the_nodes_process_group_leaves_the_writer_to_the_nodes_orderly_stop(
    db_url: str, sessions: sessionmaker[Session]
) -> None:
    """systemd, `timeout` and `kill -- -PGID` signal every process of the node at once: the child
    must leave it to the node, which flushes and then stops it, not die first and be restarted
    (with an alert that it died) in the middle of a clean shutdown."""
    alerts: list[str] = []
    with _writer(sessions, db_url, on_alert=lambda kind, _message: alerts.append(kind)) as writer:
        writer.flush()  # the child is up
        for i in range(50):
            writer._capture.on_signal(_signal(ts=10_000 + i))
        assert writer._process is not None
        os.kill(writer._process.pid, signal.SIGTERM)
        writer._process.join(timeout=0.5)
        assert writer._process.is_alive()
        assert writer.stop() == 50
    assert _count(sessions, SignalRow) == 50 and "store_writer_process_died" not in alerts


@_reads_the_pipe
def test_the_pipes_room_is_half_its_granted_buffer_and_unknown_on_what_is_not_a_socket() -> None:
    import multiprocessing

    parent, child = multiprocessing.Pipe(duplex=True)
    reader, writer = multiprocessing.Pipe(duplex=False)  # an os.pipe: no socket buffer to read
    try:
        room = writer_process._widen_pipe(parent)
        with socket.fromfd(parent.fileno(), socket.AF_UNIX, socket.SOCK_STREAM) as end:
            assert room == end.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) // 2 > 0
        assert writer_process._unread(parent) == 0
        parent.send_bytes(b"x" * 10_000)
        assert writer_process._unread(parent) >= 10_000  # counted with the kernel's overhead
        child.recv_bytes()
        assert writer_process._unread(parent) == 0
        assert writer_process._widen_pipe(writer) is None  # then a pump ships as before
    finally:
        for conn in (parent, child, reader, writer):
            conn.close()


@contextlib.contextmanager
def _writer(sessions: sessionmaker[Session], url: str, **options: Any) -> Iterator[ProcessStoreWriter]:
    """A writer process on `url`; its child is killed at the end, whatever the test left."""
    writer = ProcessStoreWriter(sessions, url, mode=Mode.BACKTEST, config_sha=SHA, **options)
    try:
        yield writer
    finally:
        if writer._process is not None:
            writer._process.kill()


def _written_but_held(writer: ProcessStoreWriter, n: int) -> None:
    """Ship `n` signals and take in the child's answers (not pumping, which lets go of
    records) until they say all are written."""
    writer.flush()  # the child is up
    for i in range(n):
        writer._capture.on_signal(_signal(ts=10_000 + i))
    writer._ship(n)
    deadline = time.monotonic() + 30
    while writer.stats().written < n:
        assert time.monotonic() < deadline, writer.stats()
        writer._read_acks(block=True, timeout=0.1)
    assert writer.buffered == 0


def test_written_records_are_let_go_a_chunk_per_pump_not_all_at_once(
    db_url: str, sessions: sessionmaker[Session]
) -> None:
    """Freeing every record an answer covers took 150-360 us at once on the engine's thread."""
    with _writer(sessions, db_url) as writer:
        n = 5 * RELEASE_CHUNK + 3
        _written_but_held(writer, n)
        held = [len(writer._unacked)]
        while writer.pump():
            held.append(len(writer._unacked))
        held.append(len(writer._unacked))
        assert held[0] == n
        assert held == [max(0, n - k * RELEASE_CHUNK) for k in range(len(held))]
        assert writer.buffered == 0 and writer.stop() == 0
        assert _count(sessions, SignalRow) == n


def test_a_child_that_dies_after_writing_gives_its_successor_none_of_what_it_wrote(
    db_url: str, sessions: sessionmaker[Session]
) -> None:
    alerts: list[tuple[str, str]] = []
    with _writer(sessions, db_url, on_alert=lambda kind, message: alerts.append((kind, message))) as writer:
        n = 3 * RELEASE_CHUNK
        _written_but_held(writer, n)
        assert len(writer._unacked) == n  # written, not let go yet
        _kill(writer)
        writer.pump()  # sees it gone, starts another
        died = [message for kind, message in alerts if kind == "store_writer_process_died"]
        assert len(died) == 1 and "; 0 records it had not written" in died[0], died
        writer.flush()
        assert writer.buffered == 0
        writer.stop()
        assert _count(sessions, SignalRow) == n


@contextlib.contextmanager
def _store_locked(url: str) -> Iterator[None]:
    """Another session holds the signals table (PostgreSQL) or the whole file (SQLite)."""
    if url.startswith("sqlite"):
        holder = sqlite3.connect(str(make_url(url).database), isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        return
    db = make_engine(url)
    with db.connect() as connection:
        connection.exec_driver_sql("LOCK TABLE signals IN ACCESS EXCLUSIVE MODE")
        try:
            yield
        finally:
            connection.rollback()
    db.dispose()


def test_a_write_stuck_on_a_locked_store_never_blocks_the_pump(
    db_url: str, sessions: sessionmaker[Session]
) -> None:
    """The child reads the pipe while its write waits: else the pipe (64 KiB) fills and the
    engine's thread, pumping, waits on the database after all."""
    writer = ProcessStoreWriter(sessions, db_url, mode=Mode.BACKTEST, config_sha=SHA)
    n = 3_000  # ~700 KiB of records: ten times what the pipe holds
    try:
        writer.flush()
        with _store_locked(db_url):
            for i in range(SHIP_CHUNK):
                writer._capture.on_signal(_signal(ts=20_000 + i))
            writer.pump()
            time.sleep(0.5)  # the child is now writing that chunk, waiting on the lock
            for i in range(SHIP_CHUNK, n):
                writer._capture.on_signal(_signal(ts=20_000 + i))
            pumping = threading.Thread(target=lambda: [None for _ in iter(writer.pump, False)])
            started = time.monotonic()
            pumping.start()
            pumping.join(timeout=30)
            took = time.monotonic() - started
            assert not pumping.is_alive() and took < 2.0, f"pumping took {took:.1f} s"
            assert not writer._buffer
        writer.flush()
        assert _count(sessions, SignalRow) == n
    finally:
        if writer._process is not None:
            writer._process.kill()


def test_an_entry_writes_its_plan_here_in_its_own_transaction_not_through_the_child(
    db_url: str, sessions: sessionmaker[Session]
) -> None:
    """No round trip to the child at the door; the child never sees the plan, so never writes it twice."""
    with _writer(sessions, db_url) as writer:
        writer.flush()
        signal = _signal(ts=30_000)
        writer._capture.on_signal(signal)
        ten, five = Decimal(10), Decimal(5)
        writer._capture.on_decision(DecisionRecord("P9", signal, True, (), (), ten, five, ten, 30_001))
        order = Order("qd-P9-entry-0", "AAA", Side.BUY, OrderType.MARKET, ten)
        order.transition(OrderStatus.PENDING_SUBMIT, 30_002)
        token = writer._token
        writer.persist_before_send(order, strategy="brk", plan_id="P9")
        assert writer._token == token and not writer._buffer  # nothing asked of the child
        with sessions() as session:
            decision_id = session.scalars(
                select(OrderRow.decision_id).where(OrderRow.client_order_id == "qd-P9-entry-0")
            ).one()
        assert decision_id is not None
        writer.stop()
        assert (_count(sessions, SignalRow), _count(sessions, DecisionRow)) == (1, 1)
        assert writer.stats().written == 2
