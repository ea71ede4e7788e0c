"""The writer process: the same audit chain as the thread writer, its outbox links, its failures."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from kit import Rig, rig
from quantdesk.model import Fill
from quantdesk.risk.messages import Mode
from quantdesk.store import DecisionRow, FillRow, OrderRow, SignalRow, make_engine, session_factory
from quantdesk.store.writer import StoreWriteFailed
from quantdesk.store.writer_process import ProcessStoreWriter
from recovery_kit import Bracket, wave

SHA = "e" * 64


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
    engine = r.engine
    assert len(fills) > 20
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
    assert orphans == 0
    assert writer.stats().written > 0 and writer.buffered == 0


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


def test_a_store_that_is_down_degrades_alerts_once_and_keeps_every_record() -> None:
    url = _dead_url()
    alerts: list[tuple[str, str]] = []
    writer = ProcessStoreWriter(
        session_factory(make_engine(url)),
        url,
        mode=Mode.BACKTEST,
        config_sha=SHA,
        on_alert=lambda kind, message: alerts.append((kind, message)),
        send_when_down={"STOP", "EXIT"},
    )
    r = rig(default_qty=Decimal(10), before_send=writer.persist_before_send)
    writer.attach(r.engine)
    r.engine.add_strategy(Bracket("AAA"))
    r.engine.start()
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
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        from quantdesk.risk.messages import Mode
        from quantdesk.store import make_engine, session_factory, upgrade
        from quantdesk.store.writer_process import ProcessStoreWriter
        url = "sqlite:///{tmp_path / "q.db"}"
        upgrade(url)
        writer = ProcessStoreWriter(session_factory(make_engine(url)), url, mode=Mode.PAPER, config_sha="x")
        writer.start_background()
        writer.flush()  # the child is up and answering
        print(writer._process.pid, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == -signal.SIGKILL, done.stderr
    child = int(done.stdout.split()[0])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(child):
        time.sleep(0.05)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (dead, not yet reaped by init) counts as gone.
    status = Path(f"/proc/{pid}/stat")
    return status.exists() and status.read_text().split()[2] != "Z"
