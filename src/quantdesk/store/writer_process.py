"""The write-behind writer in a process of its own, so the store's work never holds the engine's GIL.

`ProcessStoreWriter` is a `StoreWriter` whose batches are written by a child
process: the engine thread still only appends records to a deque, and between
events (`pump`, called by the node's loop) pickles them in small chunks and sends
them down a pipe — no second thread takes the interpreter lock from the engine in
the middle of an event (a thread shipping on its own remains as a fallback when
nobody pumps); the child runs an ordinary `StoreWriter` over its own
connection and answers each write with its figures, the plans it has written
(the outbox links an entry to its decision row by them) and its alerts. The
outbox itself (`persist_before_send`) stays synchronous in the engine's process.

Failure semantics are the thread writer's: a store that goes down leaves records
buffered in the child (alerted once, written on recovery); past `max_buffer`
records in both processes the node is asked to pause entries; `stop()` raises if
anything is left unwritten. The child dies with its parent (Linux: a parent-death
signal), as a thread would: a crash loses what was buffered, never writes it late
over a restarted node's recovery.
"""

from __future__ import annotations

import contextlib
import copyreg
import ctypes
import dataclasses
import io
import multiprocessing
import os
import pickle
import signal
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import msgspec
import structlog

from quantdesk.clock import monotonic_ns
from quantdesk.engine.messages import DecisionRecord, SignalBlocked
from quantdesk.model import Signal
from quantdesk.risk.messages import Mode
from quantdesk.store.capture import DECISION, REFUSED, SIGNAL, Record
from quantdesk.store.database import make_engine, session_factory
from quantdesk.store.writer import FLUSH_INTERVAL_S, StoreWriteFailed, StoreWriter, WriterStats

if TYPE_CHECKING:
    from quantdesk.engine import Engine

log = structlog.get_logger(__name__)

# Records per pickled message: each chunk holds the engine's interpreter lock only ~0.1 ms.
SHIP_CHUNK = 64
# How long a synchronous flush waits for the child before calling the store down.
FLUSH_TIMEOUT_S = 30.0
# Signals the child remembers to give a decision shipped later the same signal object.
_SIGNAL_MEMORY = 50_000
_PR_SET_PDEATHSIG = 1
_NICENESS = 10
# The background thread leaves shipping to `pump` while someone calls it this often.
_PUMPED_RECENTLY_NS = 1_000_000_000
_STATE_ALERTS = frozenset({"store_degraded", "store_recovered"})


@dataclass(frozen=True, slots=True)
class _Ack:
    """The child's answer after a write: its figures, new plan rows and alerts since the last."""

    token: int
    buffered: int
    written: int
    flushes: int
    failures: int
    degraded: bool
    last_error: str
    quarantined: int
    reachable: bool
    plans: tuple[tuple[str, tuple[int, bool]], ...]
    alerts: tuple[tuple[str, str], ...]


class ProcessStoreWriter(StoreWriter):
    """A `StoreWriter` whose batches a child process writes (see the module's text).

    `url` is the database the child connects to; `sessions` (on the same database)
    serve the outbox in this process. Call `start_background()` once attached;
    `flush()` ships everything and waits until the child has written it (starting the
    child first if need be); `stop()` ends it.
    """

    def __init__(
        self,
        sessions: Any,
        url: str,
        *,
        mode: Mode,
        config_sha: str,
        batch_size: int = 500,
        max_buffer: int = 100_000,
        on_alert: Callable[[str, str], None] | None = None,
        on_overflow: Callable[[], None] | None = None,
        send_when_down: Collection[str] = (),
    ) -> None:
        super().__init__(
            sessions,
            mode=mode,
            config_sha=config_sha,
            batch_size=batch_size,
            max_buffer=max_buffer,
            on_alert=on_alert,
            on_overflow=on_overflow,
            send_when_down=send_when_down,
        )
        self._url = url
        self._process: multiprocessing.process.BaseProcess | None = None
        self._conn: Connection | None = None
        self._ship_lock = threading.Lock()
        self._token = 0
        self._acked = 0
        self._child = _Ack(0, 0, 0, 0, 0, False, "", 0, True, (), ())
        self._outbox_failures = 0
        # The outbox failed in this process: degraded until the child reaches the store again.
        self._outbox_down = False
        self._last_pump = 0

    # -- the child's life ---------------------------------------------------------------------

    def attach(self, engine: Engine) -> None:
        """Subscribe to the engine (see `StoreWriter.attach`) and start the writer process now,
        waiting for its first answer: its start-up (about a second) must not fall on the first
        entry's outbox write, and a child that cannot start fails the node's start."""
        super().attach(engine)
        self.flush()

    def start_background(self, interval_s: float = FLUSH_INTERVAL_S) -> None:
        """Start the writer process (if `flush` has not) and the shipper thread (every `interval_s`)."""
        self._ensure_child()
        super().start_background(interval_s)  # its thread runs this class's `_run`: shipping

    def _ensure_child(self) -> None:
        if self._process is not None:
            return
        parent, child = multiprocessing.Pipe(duplex=True)
        context = multiprocessing.get_context("spawn")  # no fork of a threaded process
        process = context.Process(
            target=_child_main,
            args=(child, self._url, self._mode.value, self._config_sha, self._batch_size),
            name="quantdesk-store-writer",
            daemon=True,
        )
        process.start()
        child.close()
        self._process, self._conn = process, parent

    def stop(self) -> int:
        """Ship and write what is left, end the child, return how many records were written.

        Raises `StoreWriteFailed` if records are still unwritten (the store is down)."""
        thread, self._thread = self._thread, None
        self._stop.set()
        if thread is not None:
            thread.join()
        before = self._child.written
        if self._process is None:
            return 0
        try:
            self.flush()
            with self._ship_lock:
                self._token += 1
                self._send(("stop", self._token))
                self._await(self._token)
        finally:
            assert self._conn is not None
            self._conn.close()
            self._process.join(timeout=FLUSH_TIMEOUT_S)
            if self._process.is_alive():
                self._process.kill()
            self._process = None
        if self.buffered:
            raise StoreWriteFailed(f"{self.buffered} records not written: {self._child.last_error}")
        return self._child.written - before

    # -- shipping -------------------------------------------------------------------------------

    def pump(self) -> None:
        """Ship what is buffered and take in the child's answers, without waiting.

        Call it from the engine's own thread between events (the node does, every 0.1 s):
        pickling there costs the engine a few microseconds per record, where a shipper
        thread would have to take the interpreter lock from the engine in the middle of
        its work. The background thread only ships if nobody has pumped for a second."""
        self._last_pump = monotonic_ns()
        with self._ship_lock:
            self._ship()
            if self._degraded:
                self._token += 1
                self._send(("flush", self._token))  # the child writes or probes: is it back?
            self._read_acks(block=False)

    def _run(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            if monotonic_ns() - self._last_pump < _PUMPED_RECENTLY_NS:
                continue
            try:
                self.pump()
            except (OSError, EOFError) as error:
                self._failed(error)
                log.error("store_writer_process_lost", error=str(error))
                return

    def flush(self) -> int:
        """Ship everything buffered, wait until the child has written it (or failed to: then it
        stays buffered there and `stats().degraded` says so); returns how many were written."""
        with self._ship_lock:
            self._ensure_child()
            before = self._child.written
            self._ship()
            self._token += 1
            self._send(("flush", self._token))
            self._await(self._token)
            return self._child.written - before

    def _ship(self) -> None:
        buffer = self._buffer
        while buffer:
            chunk = [buffer.popleft() for _ in range(min(SHIP_CHUNK, len(buffer)))]
            self._send(("records", chunk))

    def _send(self, message: tuple[Any, ...]) -> None:
        assert self._conn is not None
        self._conn.send_bytes(_dumps(message))

    def _await(self, token: int) -> None:
        deadline = monotonic_ns() + int(FLUSH_TIMEOUT_S * 1e9)
        while self._acked < token:
            if monotonic_ns() > deadline:
                raise StoreWriteFailed(f"the writer process did not answer within {FLUSH_TIMEOUT_S:g} s")
            self._read_acks(block=True, timeout=min(1.0, (deadline - monotonic_ns()) / 1e9))

    def _read_acks(self, *, block: bool, timeout: float = 0.0) -> None:
        conn = self._conn
        assert conn is not None
        if not conn.poll(timeout if block else 0):
            return
        while True:
            self._apply(pickle.loads(conn.recv_bytes()))
            if not conn.poll(0):
                return

    def _apply(self, ack: _Ack) -> None:
        self._acked = max(self._acked, ack.token)
        self._child = ack
        self._capture.elsewhere = ack.buffered  # counted against max_buffer
        for plan_id, row in ack.plans:
            self._plan_rows[plan_id] = row
            self._unwritten_plans.discard(plan_id)
        for kind, message in ack.alerts:
            if kind not in _STATE_ALERTS:  # those two are raised here, for both processes at once
                self._alert(kind, message)
        if ack.reachable:
            self._outbox_down = False
        with self._state_lock:
            was = self._degraded
            self._degraded = ack.degraded or self._outbox_down
            if ack.last_error:
                self._last_error = ack.last_error
        if self._degraded and not was:
            log.error("store_degraded", error=self._last_error, buffered=self.buffered)
            self._alert("store_degraded", f"store degraded, buffering writes: {self._last_error}")
        elif was and not self._degraded:
            log.warning("store_recovered", written=ack.written)
            self._alert("store_recovered", "store recovered, buffered writes flushed")
        if self._capture.overflowed and self.buffered < self._max_buffer:
            self._capture.overflowed = False

    # -- the figures ----------------------------------------------------------------------------

    def _failed(self, error: BaseException) -> None:
        self._outbox_failures += 1
        self._outbox_down = True
        super()._failed(error)

    @property
    def buffered(self) -> int:
        return len(self._buffer) + self._child.buffered

    def stats(self) -> WriterStats:
        child = self._child
        return WriterStats(
            buffered=self.buffered,
            written=child.written,
            flushes=child.flushes,
            failures=child.failures + self._outbox_failures,
            degraded=self._degraded,
            last_error=self._last_error or child.last_error,
            quarantined=child.quarantined,
        )


def _read_only(values: dict[Any, Any]) -> MappingProxyType[Any, Any]:
    return MappingProxyType(values)


def _reduce_read_only(proxy: MappingProxyType[Any, Any]) -> tuple[Any, ...]:
    return (_read_only, (dict(proxy),))


# Signals keep their features read-only (a mappingproxy, which pickle refuses by default).
_DISPATCH = {**copyreg.dispatch_table, MappingProxyType: _reduce_read_only}


def _dumps(message: object) -> bytes:
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = _DISPATCH
    pickler.dump(message)
    return buffer.getvalue()


# -- the child ---------------------------------------------------------------------------------


class _SignalMemory:
    """Gives a decision or refusal shipped in a later message than its signal that same signal
    object, which is how the writer ties a decision row to its signal row."""

    def __init__(self) -> None:
        self._seen: OrderedDict[tuple[Any, ...], Signal] = OrderedDict()

    def apply(self, records: Sequence[Record]) -> list[Record]:
        out: list[Record] = []
        for record in records:
            kind = record[0]
            if kind == SIGNAL:
                self._remember(record[1])
            elif kind == DECISION:
                decision: DecisionRecord = record[1]
                known = self._known(decision.signal)
                if known is not None:
                    record = (kind, msgspec.structs.replace(decision, signal=known))
            elif kind == REFUSED:
                refused: SignalBlocked = record[1]
                known = self._known(refused.signal)
                if known is not None:
                    record = (kind, dataclasses.replace(refused, signal=known))
            out.append(record)
        return out

    @staticmethod
    def _key(signal: Signal) -> tuple[Any, ...]:
        return (
            signal.ts,
            signal.strategy,
            signal.symbol,
            str(signal.side),
            repr(signal.entry),
            repr(signal.stop),
        )

    def _remember(self, signal: Signal) -> None:
        self._seen[self._key(signal)] = signal
        if len(self._seen) > _SIGNAL_MEMORY:
            self._seen.popitem(last=False)

    def _known(self, signal: Signal) -> Signal | None:
        known = self._seen.get(self._key(signal))
        return None if known is None or known is signal else known


def _die_with_parent() -> None:
    """Linux: SIGKILL this process when its parent dies (elsewhere: the pipe's EOF ends it)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _child_main(conn: Connection, url: str, mode: str, config_sha: str, batch_size: int) -> None:
    """The writer process: receive records, write them in batches, answer with the figures."""
    _die_with_parent()
    with contextlib.suppress(OSError):
        # Under CPU contention the engine comes first: the store's work only has to keep up.
        os.nice(_NICENESS)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the node stops it in order, after the engine
    alerts: list[tuple[str, str]] = []
    db = make_engine(url)
    writer = StoreWriter(
        session_factory(db),
        mode=Mode(mode),
        config_sha=config_sha,
        batch_size=batch_size,
        max_buffer=2**62,  # the parent counts the bound over both processes
        on_alert=lambda kind, message: alerts.append((kind, message)),
    )
    memory = _SignalMemory()
    plans_sent = 0
    retry_s = 0.2
    token = 0
    running = True
    while running:
        wait = retry_s if writer.buffered else None
        if conn.poll(wait):
            try:
                message = pickle.loads(conn.recv_bytes())
            except EOFError:
                break
            kind = message[0]
            if kind == "records":
                writer.enqueue(memory.apply(message[1]))
                if conn.poll(0):
                    continue  # more on the way: write them together
            else:  # "flush" or "stop"
                token = message[1]
                running = kind == "flush"
        wrote = writer.flush()
        reachable = not writer.stats().degraded and (wrote > 0 or writer.reachable())
        retry_s = min(retry_s * 2, 5.0) if writer.stats().degraded else 0.2
        stats = writer.stats()
        plans = tuple(writer.written_plans()[plans_sent:])
        plans_sent += len(plans)
        ack = _Ack(
            token,
            stats.buffered,
            stats.written,
            stats.flushes,
            stats.failures,
            stats.degraded,
            stats.last_error,
            stats.quarantined,
            reachable,
            plans,
            tuple(alerts),
        )
        alerts.clear()
        try:
            conn.send_bytes(_dumps(ack))
        except OSError:
            break
    db.dispose()
