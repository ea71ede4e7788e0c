"""The write-behind writer in a process of its own, so the store's work never holds the engine's GIL.

`ProcessStoreWriter` is a `StoreWriter` whose batches are written by a child
process: the engine thread still only appends records to a deque, and between
events (`pump`, called by the node's loop) encodes them a part at a time (a sixteenth
of what is buffered, 32 records at least; msgpack, see "the records' wire format") and
sends them down a pipe — no second thread takes the interpreter lock from the engine in
the middle of an event, and an event that arrives while the loop pumps waits for one
part at most (a thread shipping on its own remains as a fallback when nobody pumps).
A pump never waits on the pipe: it ships only what the pipe has room for, and when the
child is behind (a burst, a pause of its own) it keeps the rest and says when to call again.
The child runs an ordinary `StoreWriter` over its own connection and answers each write with its
figures, the plans it has written (the outbox links an entry to its decision row by
them) and its alerts; a thread of its own keeps reading the pipe while a write waits
on the database, so a slow store never blocks the engine's pump. The outbox itself
(`persist_before_send`) stays synchronous in the engine's process.

Failure semantics are the thread writer's: a store that goes down leaves records
buffered in the child (alerted once, written on recovery); past `max_buffer`
records in both processes the node is asked to pause entries; `stop()` raises if
anything is left unwritten. The child dies with its parent (Linux: a parent-death
signal), as a thread would: a crash loses what was buffered, never writes it late
over a restarted node's recovery.

A child that dies on its own (killed, out of memory) loses nothing: the parent keeps
every record it ships until the child's answer says it is written, and gives what was
not back to a new child, which checks the store before inserting them (the dead one may
have committed some without answering). A child that keeps dying without writing
anything is given up on after `MAX_RESTARTS`: the writer is then degraded (new entries
stop) and the records stay buffered here, against `max_buffer`.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import multiprocessing
import multiprocessing.util
import os
import pickle
import queue
import signal
import socket
import struct
import termios
import threading
import typing
from collections import OrderedDict, deque
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

import msgspec
import structlog

from quantdesk.clock import monotonic_ns
from quantdesk.engine.messages import DecisionRecord, FlattenCompleted, SignalBlocked
from quantdesk.model import Fill, Order, Signal
from quantdesk.risk.kill_switch import StateChange
from quantdesk.risk.messages import Mode
from quantdesk.store.capture import (
    DECISION,
    FILL,
    FLATTEN,
    KIND_OF,
    ORDER,
    REFUSED,
    SIGNAL,
    STATE,
    Entry,
    Record,
    as_record,
)
from quantdesk.store.database import make_engine, session_factory
from quantdesk.store.writer import FLUSH_INTERVAL_S, StoreWriteFailed, StoreWriter, WriterStats, _one_line

if TYPE_CHECKING:
    from quantdesk.engine import Engine

log = structlog.get_logger(__name__)

# Records per message, and the least per `pump` call: what an event arriving during a pump may
# wait for. Measured per call (2026-12-03, a slow stretch of this 2-vCPU machine): 64 records p50
# ~230 us, p99 1.6-2.7 ms; 32 records p50 ~150 us, p99 0.85-0.93 ms. Fewer, larger calls would
# slow fewer decisions (the one right after a call runs ~x1.2; 2026-12-05, 2,000 events/s, one
# call per gap between events: 7% of decisions and +1.2-1.4 us on the p50 with 32 a call, +0.4-0.5
# us with 128; the node's calls back to back while no event is due: 2.2-2.7% and +0.3-0.5 us with
# 32), but each event that comes during a call would wait longer: the from-due tail comes first.
SHIP_CHUNK = 32
# A pump call ships this fraction of what is buffered (1/16), at least SHIP_CHUNK records and at
# most MAX_PUMP_CHUNK (~1-2 ms of the engine's thread). The event after a pump runs on caches the
# encoding and the pipe have just used (its engine time ~1.5-2x the median): when the engine never
# idles, 32 records a call made that ~7% of decisions. Unpaced engine time p99 with the writer
# process, paired against no writer (SQLite, 2026-12-04, 9 pairs, three times): x1.74-2.11 with
# 32 records a call, x1.15-1.46 with a sixteenth (a quarter: x1.28). At 2,000 events/s a pump
# period buffers ~460 records: still 32 a call.
PUMP_FRACTION = 16
MAX_PUMP_CHUNK = 1024
# The pipe's send buffer asked for (Linux grants up to net.core.wmem_max, 208 KiB by default).
# A pump ships only while the bytes the child has not read yet stay under half of what was
# granted (the kernel counts each message with its overhead): a send past the buffer would wait
# for the child's reader, and the engine's thread with it. Measured (2026-12-04, unpaced, SQLite):
# ~8% of sends waited 1-8 ms, and one in each 0.1 s burst ~35 ms, while the child decoded.
SEND_BUFFER_BYTES = 4 * 1024 * 1024
# How long the node's loop leaves a pump that found the pipe full before calling again.
PIPE_FULL_WAIT_S = 0.0005
# Written records let go per `pump` call, at least (as many as it ships, when that is more).
# Dropping the records one answer covers (500-1,000 at 2,000 events/s, freeing their objects)
# took 150-360 us on the engine's thread at once, seven times a second (measured 2026-12-04):
# a tick due then waited for it.
RELEASE_CHUNK = 64
# How long a synchronous flush waits for the child before calling the store down.
FLUSH_TIMEOUT_S = 30.0
# Children started in a row after one died without writing anything, before giving up.
MAX_RESTARTS = 3
# Signals the child remembers to give a decision shipped later the same signal object.
_SIGNAL_MEMORY = 50_000
_PR_SET_PDEATHSIG = 1
_NICENESS = 10
# The background thread leaves shipping to `pump` while someone calls it this often.
_PUMPED_RECENTLY_NS = 1_000_000_000
# How often the child writes what its reader has taken in (and answers with its figures).
_CHILD_TICK_S = 0.1
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


def _checked_cpus(cpus: Collection[int] | None) -> tuple[int, ...] | None:
    """`cpus` as the child sets them, refused by name now if the machine has no such CPU (one
    outside this process's cpuset fails the child's start, with the system's reason)."""
    if cpus is None:
        return None
    wanted = tuple(sorted(set(cpus)))
    if not wanted:
        raise ValueError("writer process cpus: none given (None lets the system place it)")
    count = os.cpu_count() or 1
    unknown = [cpu for cpu in wanted if not 0 <= cpu < count]
    if unknown:
        raise ValueError(f"writer process cpus {unknown}: this machine's CPUs are 0-{count - 1}")
    return wanted


class ProcessStoreWriter(StoreWriter):
    """A `StoreWriter` whose batches a child process writes (see the module's text).

    `url` is the database the child connects to; `sessions` (on the same database)
    serve the outbox in this process. `cpus`: the CPUs the child may run on (default: this
    process's), to keep it off a CPU the engine's thread has to itself. Call
    `start_background()` once attached; `flush()` ships everything and waits until the child
    has written it (starting the child first if need be); `stop()` ends it.
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
        cpus: Collection[int] | None = None,
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
        self._cpus = _checked_cpus(cpus)
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
        # Shipped to the current child and not yet written by it, oldest first: what a new
        # child gets if this one dies. `_done`: how many of its stream it has answered for.
        # The first `_written_held` of them are written, let go a few per pump (RELEASE_CHUNK).
        self._unacked: deque[Entry] = deque()
        self._written_held = 0
        self._done = 0
        self._ready = False  # the current child has answered once: it reads its pipe
        self._deaths = 0  # children that died in a row without writing anything
        self._gone = ""  # why no child runs any more (given up on), or ""
        self._earlier_written = 0  # written by children that have died
        # What the current child's pipe holds unread before a pump stops shipping (None: this
        # system cannot tell, and sends may wait), and the last message's bytes per record.
        self._pipe_room: int | None = None
        self._record_bytes = 512.0

    # -- the child's life ---------------------------------------------------------------------

    def attach(self, engine: Engine) -> None:
        """Subscribe to the engine (see `StoreWriter.attach`) and start the writer process now,
        waiting for its first answer: its start-up (about a second) must not fall on the first
        entry's outbox write, and a child that cannot start fails the node's start."""
        super().attach(engine)
        with self._ship_lock:
            self._ensure_child()
            try:
                self._await_ready()
            except (OSError, EOFError) as error:
                why = self._why_not(error)
                raise StoreWriteFailed(f"the store's writer process did not start: {why}") from None
        self.flush()

    def start_background(self, interval_s: float = FLUSH_INTERVAL_S) -> None:
        """Start the writer process (if `flush` has not) and the shipper thread (every `interval_s`)."""
        self._ensure_child()
        super().start_background(interval_s)  # its thread runs this class's `_run`: shipping

    def _ensure_child(self, verify: int = 0) -> None:
        """Start a child if none runs; `verify`: how many of the first records it gets may
        already be in the store (a dead child's, given to this one)."""
        if self._process is not None:
            return
        parent, child = multiprocessing.Pipe(duplex=True)
        context = multiprocessing.get_context("spawn")  # no fork of a threaded process
        process = context.Process(
            target=_child_main,
            args=(child, self._url, self._mode.value, self._config_sha, self._batch_size, verify, self._cpus),
            name="quantdesk-store-writer",
            daemon=True,
        )
        process.start()
        multiprocessing.util.Finalize(None, _kill_at_exit, args=(process,), exitpriority=10)
        child.close()
        self._process, self._conn = process, parent
        self._pipe_room = _widen_pipe(parent)
        self._ready = False
        self._done = 0

    def _child_lost(self, error: BaseException) -> None:
        """The child died: take back what it had not written and start another, or give up."""
        process, conn = self._process, self._conn
        self._process = self._conn = None
        if conn is not None:
            conn.close()
        code: int | None = None
        if process is not None:
            process.join(timeout=1.0)
            if process.is_alive():
                process.kill()
                process.join(timeout=1.0)
            code = process.exitcode
        self._earlier_written += self._child.written
        wrote = self._child.written + self._child.quarantined
        self._child = _Ack(0, 0, 0, 0, 0, self._child.degraded, self._child.last_error, 0, True, (), ())
        self._release(self._written_held)
        held = len(self._unacked)
        self._buffer.extendleft(reversed(self._unacked))
        self._unacked.clear()
        self._capture.elsewhere = 0
        self._deaths = 0 if wrote else self._deaths + 1
        reason = f"the store's writer process died (exit code {code}; {_one_line(error)})"
        log.error("store_writer_process_died", exit_code=code, error=str(error), unwritten=held)
        if self._deaths > MAX_RESTARTS:
            self._gone = f"{reason}, {self._deaths} times in a row without writing: given up"
            self._alert("store_writer_process_died", f"{self._gone}; {self.buffered} records kept here")
            with self._state_lock:
                self._last_error = self._gone
                self._degraded = True
            self._alert("store_degraded", f"store degraded, buffering writes: {self._gone}")
            return
        self._alert(
            "store_writer_process_died",
            f"{reason}; {held} records it had not written go to a new one",
        )
        # Everything held now may be in the store already: the dead child may have committed
        # a batch without answering, and a decision shipped later may name a signal it wrote.
        self._ensure_child(verify=len(self._buffer))

    def stop(self) -> int:
        """Ship and write what is left, end the child, return how many records were written.

        Raises `StoreWriteFailed` if records are still unwritten (the store is down)."""
        thread, self._thread = self._thread, None
        self._stop.set()
        if thread is not None:
            thread.join()
        if self._process is None and not self._gone:
            return 0
        written = 0
        try:
            written = self.flush()
            with self._ship_lock:
                if self._process is not None:
                    self._token += 1
                    self._send(("stop", self._token))
                    self._await(self._token)
        except (OSError, EOFError):
            pass  # it died after the flush: what it had is written (else `buffered` says so)
        finally:
            with self._ship_lock:
                process, conn = self._process, self._conn
                self._process = self._conn = None
            if conn is not None:
                conn.close()
            if process is not None:
                process.join(timeout=FLUSH_TIMEOUT_S)
                if process.is_alive():
                    process.kill()
        if self.buffered:
            reason = self._gone or self._child.last_error or self._last_error
            raise StoreWriteFailed(f"{self.buffered} records not written: {reason}")
        return written

    # -- shipping -------------------------------------------------------------------------------

    def pump(self) -> bool:
        """Ship a part of what is buffered (PUMP_FRACTION), let go of written records and take in
        the child's answers, without waiting; return whether there is more to do (call again
        after `pump_wait_s`: the node's loop does, letting events in between calls). A pipe the
        child has not read enough of takes nothing: the records wait here, `pump_wait_s` is
        PIPE_FULL_WAIT_S.

        Call it from the engine's own thread between events (the node does, every 0.1 s):
        encoding there costs the engine ~1.3 us per record, where a shipper thread would
        have to take the interpreter lock from the engine in the middle of its work. The
        background thread only ships if nobody has pumped for a second."""
        self._last_pump = monotonic_ns()
        self.pump_wait_s = 0.0
        chunk = min(MAX_PUMP_CHUNK, max(SHIP_CHUNK, -(-len(self._buffer) // PUMP_FRACTION)))
        return self._pump(chunk, message=chunk, fit=True)

    def _pump(self, limit: int, message: int = SHIP_CHUNK, *, fit: bool = False) -> bool:
        """Ship up to `limit` records, `message` to a message (`fit`: no more than the pipe has
        room for); let go of as many written ones (RELEASE_CHUNK at least)."""
        with self._ship_lock:
            if self._process is None:
                return False  # not started yet, or given up on: records stay buffered here
            try:
                if not self._ready:
                    # A new child still starting: its pipe would fill and block this thread.
                    self._read_acks(block=False)
                    return False
                if fit:
                    limit = self._room_for(min(limit, message))
                    if limit == 0 and self._buffer:
                        self.pump_wait_s = PIPE_FULL_WAIT_S
                self._ship(limit, message=message)
                self._release(max(RELEASE_CHUNK, message))
                more = bool(self._buffer) or self._written_held > 0
                if self._degraded and not more:
                    self._token += 1
                    self._send(("flush", self._token))  # the child writes or probes: is it back?
                self._read_acks(block=False)
            except (OSError, EOFError) as error:
                self._child_lost(error)
                return False
            return more

    def _run(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            if monotonic_ns() - self._last_pump >= _PUMPED_RECENTLY_NS:
                self._pump(len(self._buffer))

    def flush(self) -> int:
        """Ship everything buffered, wait until the child has written it (or failed to: then it
        stays buffered there and `stats().degraded` says so); returns how many were written.
        A child that dies meanwhile is replaced and the flush goes on with the new one."""
        with self._ship_lock:
            before = self._children_written()
            while not self._gone:
                try:
                    self._ensure_child()
                    self._ship(len(self._buffer))
                    self._token += 1
                    self._send(("flush", self._token))
                    self._await(self._token)
                    self._release(self._written_held)
                    break
                except (OSError, EOFError) as error:
                    self._child_lost(error)
            return self._children_written() - before

    def _children_written(self) -> int:
        return self._earlier_written + self._child.written

    def _ship(self, limit: int, message: int = SHIP_CHUNK) -> None:
        """Send up to `limit` buffered records, `message` to a message; each stays in
        `_unacked` until the child says it is written."""
        buffer = self._buffer
        while buffer and limit > 0:
            take = min(message, len(buffer), limit)
            limit -= take
            records = self._capture.drain(take)
            self._unacked.extend(records)
            self._capture.elsewhere = len(self._unacked) - self._written_held
            data = _encode_records(records)
            self._record_bytes = len(data) / len(records)
            self._send_bytes(data)

    def _room_for(self, records: int) -> int:
        """How many of `records` the pipe takes now without a wait (all, where it cannot tell)."""
        room = self._pipe_room
        if room is None or self._conn is None:
            return records
        unread = _unread(self._conn)
        if unread == 0:
            # Even a message past the room goes into an empty pipe: the child reads it as it comes,
            # and records too large for the room must not wait for ever.
            return max(1, min(records, int(room / self._record_bytes)))
        return max(0, min(records, int((room - unread) / self._record_bytes)))

    def _release(self, limit: int) -> None:
        """Drop up to `limit` of the records the child has written (they are no longer needed)."""
        popleft = self._unacked.popleft
        for _ in range(min(limit, self._written_held)):
            popleft()
        self._written_held -= min(limit, self._written_held)

    def _take_plan(self, plan_id: str) -> list[Record] | None:
        """See `StoreWriter._take_plan`: the entry's outbox writes its signal and decision in
        this process, in one transaction with its row, instead of a round trip to the child."""
        with self._ship_lock:  # the fallback shipper does not take records meanwhile
            return self._take_plan_records(plan_id)

    def _send(self, message: tuple[Any, ...]) -> None:
        self._send_bytes(_CONTROL + _dumps(message))

    def _send_bytes(self, data: bytes) -> None:
        assert self._conn is not None
        self._conn.send_bytes(data)

    def _await(self, token: int) -> None:
        deadline = monotonic_ns() + int(FLUSH_TIMEOUT_S * 1e9)
        while self._acked < token:
            if monotonic_ns() > deadline:
                raise StoreWriteFailed(f"the writer process did not answer within {FLUSH_TIMEOUT_S:g} s")
            self._read_acks(block=True, timeout=min(1.0, (deadline - monotonic_ns()) / 1e9))

    def _why_not(self, error: BaseException) -> str:
        """The child's own reason, or (it died before it could say) its exit code and the usual cause."""
        if str(error):
            return str(error)
        process = self._process
        code = None
        if process is not None:
            process.join(timeout=5.0)
            code = process.exitcode
        # A spawned child imports the parent's main module again: a script that starts a node
        # at import time (no __main__ guard) makes the child try the same and die at once.
        return (
            f"it ended (exit code {code}) before answering; if a script starts the node, start it "
            "under `if __name__ == '__main__':` (the writer process imports the script again)"
        )

    def _await_ready(self) -> None:
        deadline = monotonic_ns() + int(FLUSH_TIMEOUT_S * 1e9)
        while not self._ready:
            if monotonic_ns() > deadline:
                raise StoreWriteFailed(f"the writer process did not answer within {FLUSH_TIMEOUT_S:g} s")
            self._read_acks(block=True, timeout=min(1.0, (deadline - monotonic_ns()) / 1e9))

    def _read_acks(self, *, block: bool, timeout: float = 0.0) -> None:
        conn = self._conn
        assert conn is not None
        if not conn.poll(timeout if block else 0):
            return
        while True:
            answer = pickle.loads(conn.recv_bytes())
            if isinstance(answer, str):  # the child could not start: why
                raise EOFError(answer)
            self._apply(answer)
            if not conn.poll(0):
                return

    def _apply(self, ack: _Ack) -> None:
        self._acked = max(self._acked, ack.token)
        self._child = ack
        self._ready = True
        done = ack.written + ack.quarantined  # a prefix of what it was sent, in order
        held = len(self._unacked)
        self._written_held = min(self._written_held + done - self._done, held)
        self._done = done
        self._capture.elsewhere = held - self._written_held  # counted against max_buffer
        self._plan_rows.update(ack.plans)
        self._unwritten_plans.difference_update([plan_id for plan_id, _ in ack.plans])
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
        return len(self._buffer) + len(self._unacked) - self._written_held

    def stats(self) -> WriterStats:
        child = self._child
        return WriterStats(
            buffered=self.buffered,
            # The children's, and entries' plans written here.
            written=self._earlier_written + child.written + self._written,
            flushes=child.flushes,
            failures=child.failures + self._outbox_failures,
            degraded=self._degraded,
            last_error=self._last_error or child.last_error,
            quarantined=child.quarantined,
        )


# -- the records' wire format -------------------------------------------------------------------
# A chunk of records travels as msgpack, tagged `_RECORDS`: (their kinds as bytes, the entries as
# the capture buffered them). msgspec encodes the Structs several times faster than pickle does
# (about 1.3 against 6 us a record, measured on the bench's records), and the engine's thread pays
# for it. Each kind decodes to its own types in the child; a kind with `_BARE` set is an event
# buffered as itself (see `capture.Entry`), made a record again there. Control messages and the
# child's answers are rare and stay pickled, tagged `_CONTROL`.
_RECORDS: Final = b"R"
_CONTROL: Final = b"C"
_BARE: Final = 0x80
_RECORD_TYPES: Final[dict[int, Any]] = {
    SIGNAL: tuple[int, Signal],
    DECISION: tuple[int, DecisionRecord],
    ORDER: tuple[int, Order, str | None, str | None],
    FILL: tuple[int, Fill],
    STATE: tuple[int, StateChange],
    REFUSED: tuple[int, SignalBlocked],
    FLATTEN: tuple[int, FlattenCompleted],
}


def _encode_hook(value: object) -> object:
    if isinstance(value, MappingProxyType):  # a signal's read-only features
        return dict(value)
    raise TypeError(f"a store record holds a {type(value).__name__}, which the writer process cannot ship")


def _decode_hook(kind: type, value: object) -> object:
    if typing.get_origin(kind) is MappingProxyType and isinstance(value, dict):
        return MappingProxyType(value)
    raise TypeError(f"cannot decode {kind}")


_encoder: Final = msgspec.msgpack.Encoder(enc_hook=_encode_hook)
_chunk_decoder: Final = msgspec.msgpack.Decoder(tuple[bytes, list[msgspec.Raw]])
_record_decoders: Final = {
    kind: msgspec.msgpack.Decoder(record_type, dec_hook=_decode_hook)
    for kind, record_type in _RECORD_TYPES.items()
}
_record_decoders.update(
    {
        kind | _BARE: msgspec.msgpack.Decoder(event_type, dec_hook=_decode_hook)
        for event_type, kind in KIND_OF.items()
    }
)


def _encode_records(entries: list[Entry]) -> bytes:
    kinds = bytes(
        [entry[0] if isinstance(entry, tuple) else KIND_OF[type(entry)] | _BARE for entry in entries]
    )
    return _RECORDS + _encoder.encode((kinds, entries))


def _decode_records(data: bytes | memoryview) -> list[Record]:
    kinds, raws = _chunk_decoder.decode(data)
    return [
        as_record(_record_decoders[kind].decode(raw)) if kind & _BARE else _record_decoders[kind].decode(raw)
        for kind, raw in zip(kinds, raws, strict=True)
    ]


def _decode(data: bytes) -> tuple[Any, ...]:
    """A message to the child: ("records", [record, ...]), ("flush", token) or ("stop", token)."""
    body = memoryview(data)[1:]
    if data[:1] == _RECORDS:
        return ("records", _decode_records(body))
    return typing.cast(tuple[Any, ...], pickle.loads(body))


def _dumps(message: object) -> bytes:
    """A control message or an answer (plain values only: records go as msgpack)."""
    return pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)


# -- the child ---------------------------------------------------------------------------------


class _SignalMemory:
    """Gives every record that refers to one signal (its own, its decision's, a refusal's) the same
    signal object, which is how the writer ties a decision row to its signal row: records
    arrive decoded, each with a copy of its signal."""

    def __init__(self) -> None:
        self._seen: OrderedDict[tuple[Any, ...], Signal] = OrderedDict()

    def apply(self, records: Sequence[Record]) -> list[Record]:
        out: list[Record] = []
        for record in records:
            kind = record[0]
            if kind == SIGNAL:
                self._remember(record[1])
            elif kind in (DECISION, REFUSED):
                # A decision or refusal whose signal was not shipped (writer attached late) brings it.
                carrier: DecisionRecord | SignalBlocked = record[1]
                known = self._known(carrier.signal)
                if known is None:
                    self._remember(carrier.signal)
                elif known is not carrier.signal:
                    record = (kind, msgspec.structs.replace(carrier, signal=known))
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
        return self._seen.get(self._key(signal))


def _widen_pipe(conn: Connection) -> int | None:
    """Ask for a send buffer of SEND_BUFFER_BYTES on the parent's end; return the bytes a pump
    may leave unread in it (half of what the kernel granted), or None where the unread bytes
    cannot be read back (then sends wait when it is full, as before)."""
    try:
        with socket.fromfd(conn.fileno(), socket.AF_UNIX, socket.SOCK_STREAM) as end:
            end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
            granted = end.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        _unread(conn)
    except (OSError, AttributeError):
        return None
    return int(granted) // 2


def _unread(conn: Connection) -> int:
    """Bytes sent down the pipe that the child has not read yet (Linux: SIOCOUTQ, with overhead)."""
    answer = fcntl.ioctl(conn.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
    return int(struct.unpack("i", answer)[0])


def _kill_at_exit(process: multiprocessing.process.BaseProcess) -> None:
    """At interpreter exit, before multiprocessing terminates its daemons with a SIGTERM (which the
    child ignores, see `_child_main`): a writer never stopped ends as a crash would end it."""
    if process.is_alive():
        process.kill()
        process.join(timeout=5.0)


def _die_with_parent() -> None:
    """Linux: SIGKILL this process when its parent dies (elsewhere: the pipe's EOF ends it)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _run_on(cpus: tuple[int, ...]) -> None:
    """Keep every thread of this process on `cpus`: those running now (numpy's import starts
    OpenBLAS's) and, through this one, those it starts later (the pipe reader)."""
    try:
        threads = [int(tid) for tid in os.listdir("/proc/self/task")]
    except OSError:
        threads = [0]
    for tid in threads:
        os.sched_setaffinity(tid, cpus)


def _read_pipe(conn: Connection, writer: StoreWriter, inbox: queue.SimpleQueue[tuple[str, int]]) -> None:
    """The child's reader thread: records into the writer's buffer, control messages to `inbox`;
    ("eof", 0) when the pipe closes, or on a message it cannot read (logged: the parent then
    sees the child gone rather than waiting on one that no longer listens)."""
    memory = _SignalMemory()
    try:
        while True:
            message = _decode(conn.recv_bytes())
            if message[0] == "records":
                writer.enqueue(memory.apply(message[1]))
            else:
                inbox.put((message[0], message[1]))
    except (EOFError, OSError):
        pass
    except Exception as error:
        log.exception("store_writer_unreadable_message", error=str(error))
    inbox.put(("eof", 0))


def _child_main(
    conn: Connection,
    url: str,
    mode: str,
    config_sha: str,
    batch_size: int,
    verify: int,
    cpus: tuple[int, ...] | None = None,
) -> None:
    """The writer process: a reader thread takes records off the pipe as they come, this thread
    writes them in batches and answers with the figures.

    Reading apart from writing keeps the pipe drained while a write waits on a slow or hung
    database: otherwise the pipe would fill and the engine's thread, pumping, would block on it."""
    _die_with_parent()
    with contextlib.suppress(OSError):
        # Under CPU contention the engine comes first: the store's work only has to keep up.
        os.nice(_NICENESS)
    # The node stops it in order, after the engine: Ctrl+C, and a SIGTERM sent to every process
    # of the node at once (systemd, `timeout`, `kill -- -PGID`), are the node's to act on.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    alerts: list[tuple[str, str]] = []
    try:
        if cpus is not None:
            _run_on(cpus)
        db = make_engine(url)
        writer = StoreWriter(
            session_factory(db),
            mode=Mode(mode),
            config_sha=config_sha,
            batch_size=batch_size,
            max_buffer=2**62,  # the parent counts the bound over both processes
            on_alert=lambda kind, message: alerts.append((kind, message)),
        )
    except Exception as error:
        with contextlib.suppress(OSError):
            conn.send_bytes(_dumps(f"{type(error).__name__}: {error}"))
        return
    writer.verify_next(verify)
    # Known before the first answer: a child started while the store is down (a restart) must
    # not tell the parent it is fine because it has not failed a write yet.
    writer.check_store()
    # Control messages in the order they came, after the records sent before them are enqueued.
    inbox: queue.SimpleQueue[tuple[str, int]] = queue.SimpleQueue()
    threading.Thread(target=_read_pipe, args=(conn, writer, inbox), name="pipe-reader", daemon=True).start()
    plans_sent = 0
    retry_s = _CHILD_TICK_S
    token = 0
    running = True
    hello = True  # the first answer, at once: up and reading its pipe
    while running:
        try:
            if hello:
                hello = False
            else:
                kind, token_in = inbox.get(timeout=retry_s)
                if kind == "eof":
                    break
                token, running = token_in, kind == "flush"
        except queue.Empty:
            if not writer.buffered:
                continue
        wrote = writer.flush()
        degraded = writer.stats().degraded
        reachable = not degraded and (wrote > 0 or writer.reachable())
        retry_s = min(retry_s * 2, 5.0) if degraded else _CHILD_TICK_S
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
