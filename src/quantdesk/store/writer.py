"""Write-behind persistence: engine events buffered off the hot path, written to the store in batches."""

from __future__ import annotations

import copy
import functools
import math
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

import msgspec
import structlog
from sqlalchemy import Connection, Insert, Select, Table, bindparam, insert, select
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, SQLAlchemyError, StatementError
from sqlalchemy.orm import Session, sessionmaker

from quantdesk.engine.messages import DecisionRecord, FlattenCompleted, SignalBlocked
from quantdesk.errors import RetryableError
from quantdesk.execution.client_ids import DuplicateClientId, Leg
from quantdesk.model import Fill, Order, OrderStatus, Position, Signal
from quantdesk.risk.kill_switch import StateChange
from quantdesk.risk.messages import Mode
from quantdesk.store.capture import (
    DECISION,
    FILL,
    FLATTEN,
    ORDER,
    SIGNAL,
    STATE,
    Capture,
    Record,
    as_record,
    event_of,
    kind_of,
    plan_of_client_id,
)
from quantdesk.store.database import KEYED_BATCH, WRITE
from quantdesk.store.models import (
    APPROVED,
    BLOCKED,
    AuditLogRow,
    Base,
    DecisionRow,
    FillRow,
    OrderRow,
    PositionRow,
    RiskEventRow,
    SignalRow,
)

if TYPE_CHECKING:
    from quantdesk.engine import Engine

# The background writer's period. Longer periods mean fewer, larger transactions: less work
# beside the engine (measured with PostgreSQL on the engine's two vCPUs, tick-to-decision p99 in
# engine time with the writer on: x1.065 at 1 s against x1.105 at 0.2 s, paired runs). A crash loses what
# is buffered (about one period of records): order states and fills come back from the venue
# at recovery, and no order is sent before its row, signal and decision are committed (the
# outbox), whatever the period.
FLUSH_INTERVAL_S = 1.0

log = structlog.get_logger(__name__)

# A query's IN list stays well under SQLite's and psycopg's parameter limits.
_IN_CHUNK = 500
# While degraded, the background thread backs off up to this between attempts.
_MAX_RETRY_S = 5.0
_EXIT = Leg.EXIT.value
_LEGS = {leg.value: leg for leg in Leg}
_REFUSED_KIND = "SIGNAL_REFUSED"
_FLATTEN_KIND = "flatten"  # read by store.reports (FLATTEN_EVENT_KIND)


class StoreWriteFailed(RetryableError):
    """The store cannot take a write now (down, read-only, locked); the order it guarded was not sent."""


@dataclass(frozen=True, slots=True)
class WriterStats:
    """The writer's figures. `written` counts records (bus events, each one or more rows),
    `flushes` committed transactions, `failures` failed write attempts; `quarantined`
    records the database refused and that were set aside."""

    buffered: int
    written: int
    flushes: int
    failures: int
    degraded: bool
    last_error: str
    quarantined: int


@dataclass(frozen=True, slots=True)
class _OrderRef:
    row_id: int
    strategy: str
    decision_id: int | None
    is_exit: bool


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), _IN_CHUNK):
        yield items[start : start + _IN_CHUNK]


def _by_key(*columns: Any) -> Select[Any]:
    """A lookup of `columns` by the first of them, for the `keys` given at execution."""
    return select(*columns).where(columns[0].in_(bindparam("keys", expanding=True)))


# The lookups every batch (and an entry's outbox) makes: "is this plan, order, fill stored?".
# Built once and run on the connection, they skip building a statement and the ORM's execution
# layer each time (a one-key lookup: ~29 against ~120 us on SQLite, measured 2026-12-04).
_PLANS_BY_ID: Final = _by_key(*(DecisionRow.__table__.c[k] for k in ("client_plan_id", "id", "approved")))
_ORDERS_BY_CLIENT_ID: Final = _by_key(
    *(OrderRow.__table__.c[k] for k in ("client_order_id", "id", "strategy", "decision_id", "leg"))
)
_FILLS_BY_EXECUTION_ID: Final = _by_key(FillRow.__table__.c.execution_id)
# After a failed commit whose outcome is unknown (`_verify`): what of the batch is there already.
_SIGNALS_BY_TS: Final = _by_key(
    *(SignalRow.__table__.c[k] for k in ("ts", "strategy", "symbol", "side", "id"))
).order_by(SignalRow.__table__.c.id)
_DECISIONS_BY_SIGNAL: Final = _by_key(DecisionRow.__table__.c.signal_id, DecisionRow.__table__.c.id)
_AUDIT_BY_TS: Final = _by_key(*(AuditLogRow.__table__.c[k] for k in ("ts", "actor", "action", "reason")))


def _lookup(session: Session, statement: Select[Any], keys: Sequence[Any]) -> Iterator[Sequence[Any]]:
    """The rows of a `_by_key` lookup for `keys`, a few hundred keys to a statement."""
    connection = session.connection()
    for chunk in _chunks(keys):
        yield from connection.execute(statement, {"keys": list(chunk)})


def _is_poison(error: BaseException) -> bool:
    """A record the database refuses whatever its state (a constraint, a value it cannot hold)."""
    if isinstance(error, IntegrityError | DataError):
        return True
    if isinstance(error, DBAPIError):
        return False  # the server or the file, not the record
    return isinstance(error, StatementError | ValueError | TypeError | ArithmeticError)


def _one_line(error: BaseException) -> str:
    text = str(getattr(error, "orig", None) or error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0] if text else ''}"[:300]


def _storable(signal: Signal) -> Signal:
    """`signal` with what no column can hold (NaN or infinite prices, a malformed signal's)
    set to None and named in the rationale; a NaN feature is stored as null."""
    bad: list[str] = []
    changes: dict[str, Any] = {}
    for name in ("entry", "stop", "qty"):
        value: Decimal | None = getattr(signal, name)
        if value is not None and not value.is_finite():
            bad.append(f"{name}={value}")
            changes[name] = None
    if any(not t.is_finite() for t in signal.targets):
        bad.append("targets=" + ",".join(map(str, signal.targets)))
        changes["targets"] = tuple(t for t in signal.targets if t.is_finite())
    if not bad:
        return signal
    changes["rationale"] = f"{signal.rationale} [not storable: {' '.join(bad)}]".strip()
    return msgspec.structs.replace(signal, **changes)


# -- row values: the columns the models' converters fill (from_signal, from_order, ...), built as
# plain dicts because constructing ORM objects would triple the cost of a batch; a test checks
# that both give the same values.


def signal_values(signal: Signal, config_sha: str) -> dict[str, Any]:
    s = _storable(signal)
    return {
        "ts": s.ts,
        "strategy": s.strategy,
        "symbol": s.symbol,
        "side": s.side,
        "entry": s.entry,
        "stop": s.stop,
        "targets": list(s.targets),
        "qty": s.qty,
        # JSON has no NaN (PostgreSQL refuses it): an undefined feature is stored as null.
        "features": {k: (v if math.isfinite(v) else None) for k, v in s.features.items()},
        "feature_scores": {},
        "score": None,
        "rationale": s.rationale,
        "config_sha": config_sha,
    }


def decision_values(record: DecisionRecord, *, signal_id: int, mode: Mode, config_sha: str) -> dict[str, Any]:
    return {
        "signal_id": signal_id,
        "client_plan_id": record.plan_id or None,
        "ts": record.ts,
        "mode": mode,
        "approved": record.approved,
        "status": APPROVED if record.approved else BLOCKED,
        "risk_pct": record.risk_pct,
        "risk_amount": record.risk_amount,
        "qty": record.qty,
        "block_reasons": list(record.reasons),
        "block_details": list(record.details),
        "config_sha": config_sha,
    }


def order_update_values(order: Order) -> dict[str, Any]:
    return {
        "status": order.status,
        "broker_order_id": order.venue_order_id or None,
        "filled_qty": order.filled_qty,
        "avg_fill_price": order.avg_fill_price,
        "fees": order.fees,
        "reason": order.reason,
        "ts_updated": order.ts_last or order.ts_created,
    }


def order_values(
    order: Order, *, strategy: str, decision_id: int | None, oco_group: str | None
) -> dict[str, Any]:
    return {
        "decision_id": decision_id,
        "client_order_id": order.client_order_id,
        "strategy": strategy,
        "symbol": order.symbol,
        "leg": _LEGS.get(order.tag),
        "oco_group": oco_group,
        "order_type": order.order_type,
        "side": order.side,
        "time_in_force": order.time_in_force,
        "qty": order.qty,
        "price": order.price,
        "stop_price": order.stop_price,
        "ts_created": order.ts_created,
        **order_update_values(order),
    }


def fill_values(fill: Fill, *, order_id: int) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "execution_id": fill.execution_id,
        "qty": fill.qty,
        "price": fill.price,
        "fee": fill.fee,
        "ts": fill.ts_event,
        "ts_init": fill.ts_init,
    }


def position_values(strategy: str, position: Position) -> dict[str, Any]:
    return {
        "strategy": strategy,
        "symbol": position.symbol,
        "qty": position.qty,
        "avg_price": position.avg_price,
        "realized_pnl": position.realized_pnl,
        "fees": position.fees,
        "ts_opened": position.ts_opened,
        "ts_updated": position.ts_last,
    }


def audit_values(change: StateChange) -> dict[str, Any]:
    return {
        "ts": change.ts,
        "actor": change.actor,
        "action": change.action,
        "reason": change.reason,
        "details": {},
    }


class StoreWriter:
    """Persists the engine's audit chain off the hot path; the outbox write is its one synchronous path.

    The engine's thread only appends small immutable tuples to a deque (an order is
    copied, since it mutates). `flush` writes them in batches of `batch_size`, one
    transaction each, keeping the chain: signals, then their decisions, then orders
    (linked to the approved decision whose plan id they carry; exits keep the plan id
    as `oco_group` and no decision), then status updates, fills (a known
    `execution_id` is skipped) and positions per (strategy, symbol) derived from the
    fills. A batch that fails stays buffered and is written again, without duplicates.

    When the store is down, the writer alerts "store_degraded" once, keeps buffering,
    and past `max_buffer` records calls `on_overflow` (the node pauses entries) instead
    of dropping anything; the first flush that succeeds alerts "store_recovered". A
    record the database refuses whatever its state (a bug upstream) is isolated,
    logged, counted as quarantined and kept in `quarantine`, so it cannot block the rest.

    Attach before `engine.start()`: the engine publishes signals only to subscribers
    present at start (without them each decision's signal is still written).
    In a backtest, call `flush()` between days or runs; paper and live use
    `start_background()`.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        mode: Mode,
        config_sha: str,
        batch_size: int = 500,
        max_buffer: int = 100_000,
        on_alert: Callable[[str, str], None] | None = None,
        on_overflow: Callable[[], None] | None = None,
        send_when_down: Collection[str] = (),
    ) -> None:
        """`send_when_down`: order tags (e.g. {"STOP", "EXIT"}) whose outbox row is buffered
        rather than refused when the store is down, so a dead database never leaves a
        position unprotected; every other order is refused with `StoreWriteFailed`."""
        if batch_size < 1 or max_buffer < 1:
            raise ValueError("batch_size and max_buffer must be positive")
        self._sessions = sessions
        self._serialize = sessions.kw["bind"].dialect.name == "sqlite"
        self._mode = mode
        self._config_sha = config_sha
        self._batch_size = batch_size
        self._max_buffer = max_buffer
        self._on_alert = on_alert
        self._on_overflow = on_overflow
        self._send_when_down = frozenset(send_when_down)
        # What the engine's thread does (compiled); the writer reads its buffer and sets.
        self._capture = Capture(max_buffer, self._overflow)
        self._buffer = self._capture.buffer
        self._multipliers: dict[str, Decimal] = {}
        # Below: owned by the flushing thread (under _flush_lock), except that the outbox
        # adds to _order_rows and reads _plan_rows (single dict operations).
        self._carry: list[Record] = []
        self._signal_rows: dict[int, tuple[Signal, int]] = {}
        self._plan_rows: dict[str, tuple[int, bool]] = {}
        self._unwritten_plans = self._capture.unwritten_plans
        self._order_rows: dict[str, _OrderRef] = {}
        self._positions: dict[tuple[str, str], tuple[Position, int]] = {}
        self._verify = False
        self._verify_left = 0  # records still to check against the store (`verify_next`)
        self.quarantine: list[tuple[Record, str]] = []
        # SQLite has one writer: the outbox and a batch take turns rather than fail on
        # a stale read snapshot ("database is locked" without waiting).
        self._db_lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._written = self._flushes = self._failures = 0
        self._degraded = False
        self._last_error = ""
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._live_mode: Callable[[], Mode] = lambda: self._mode

    # -- wiring and the hot path --------------------------------------------------------------

    def attach(self, engine: Engine) -> None:
        """Subscribe to the engine's signals, decisions, orders, fills, refusals and state changes."""
        if self._capture.orders is not None:
            raise RuntimeError("this StoreWriter is already attached to an engine")
        if engine.state.mode is not self._mode:
            raise ValueError(
                f"the writer records mode {self._mode.value}, the engine runs {engine.state.mode.value}"
            )
        self._capture.orders = engine.orders
        state = engine.state
        self._live_mode = lambda: state.mode
        self._multipliers = {symbol: i.multiplier for symbol, i in engine.instruments.items()}
        capture = self._capture
        engine.bus.subscribe(Signal, capture.on_signal)
        engine.bus.subscribe(Order, capture.on_order)
        engine.bus.subscribe(Fill, capture.on_fill)
        engine.bus.subscribe(SignalBlocked, capture.on_refused)
        engine.bus.subscribe(FlattenCompleted, capture.on_flatten)
        engine.pipeline.subscribe(capture.on_decision)
        engine.state.subscribe(capture.on_state_change)

    def replace_session_factory(self, sessions: sessionmaker[Session]) -> None:
        """Write through `sessions` from the next batch on (a new URL, or tests breaking the store)."""
        with self._flush_lock, self._db_lock:
            self._sessions = sessions
            self._serialize = sessions.kw["bind"].dialect.name == "sqlite"

    def _overflow(self) -> None:
        log.error("store_buffer_full", buffered=len(self._buffer), max_buffer=self._max_buffer)
        if self._on_overflow is not None:
            try:
                self._on_overflow()
            except Exception:  # the hot path must go on protecting positions
                log.exception("store_overflow_handler_failed")

    # -- the outbox ---------------------------------------------------------------------------

    def persist_before_send(self, order: Order, *, strategy: str, plan_id: str) -> None:
        """Commit `order`'s row as PENDING_SUBMIT before the venue sees it (DESIGN principle 4).

        Raises `StoreWriteFailed` when the store cannot take it (at once while degraded):
        the caller must not send the order. Tags in `send_when_down` are buffered instead.
        A client id already in the store raises `DuplicateClientId`.

        An entry whose signal and decision are still buffered has them written first: after
        a crash, the plan's stop and targets must be in the store with the order, or
        recovery could not protect its fill.
        """
        is_exit = order.tag == _EXIT
        if plan_id in self._unwritten_plans and not self._degraded:
            taken = self._take_plan(plan_id)
            if taken is not None and self._commit_with_plan(order, strategy, plan_id, taken):
                return
            self.flush()
        decision = self._plan_rows.get(plan_id)
        decision_id = decision[0] if decision is not None and decision[1] and not is_exit else None
        error: BaseException | None = None
        if self._degraded:
            reason = f"the store is degraded ({self._last_error})"
        else:
            try:
                with self._db_lock if self._serialize else _NO_LOCK, self._write_session() as session:
                    row_id = _insert_outbox_row(session, order, strategy, decision_id, plan_id)
                    session.commit()
            except IntegrityError:
                raise DuplicateClientId(
                    f"client id {order.client_order_id} is already in the store; refusing to send it again"
                ) from None
            except SQLAlchemyError as failure:
                error = failure
                self._failed(failure)
                reason = _one_line(failure)
            else:
                self._order_rows[order.client_order_id] = _OrderRef(row_id, strategy, decision_id, is_exit)
                return
        if order.tag in self._send_when_down:
            pending = msgspec.structs.replace(order, status=OrderStatus.PENDING_SUBMIT)
            self._capture.append((ORDER, pending, strategy, plan_id))
            log.warning(
                "outbox_buffered", client_order_id=order.client_order_id, plan_id=plan_id, reason=reason
            )
            return
        raise StoreWriteFailed(f"order {order.client_order_id} not sent: {reason}") from error

    def _commit_with_plan(self, order: Order, strategy: str, plan_id: str, records: list[Record]) -> bool:
        """Commit `order`'s row with its plan's signal and decision (`records`) in one transaction;
        True if done. On any database error the records go back to the buffer and False sends
        the caller down the usual path (a flush, then the row alone), which tells a duplicate
        client id, a record the database refuses and a store that is down apart."""
        is_exit = order.tag == _EXIT
        staged = _Staged(self)
        staged.mode = self._live_mode()  # decided in this cycle, in the engine's mode now
        try:
            with self._db_lock if self._serialize else _NO_LOCK, self._write_session() as session:
                staged.write(session, records)
                decision = staged.plan_rows.get(plan_id)
                approved = decision is not None and decision[1] and not is_exit
                decision_id = decision[0] if decision is not None and approved else None
                row_id = _insert_outbox_row(session, order, strategy, decision_id, plan_id)
                session.commit()
        except SQLAlchemyError as error:
            # The commit may have landed before the connection died: the batch checks first.
            self._verify = True
            self._buffer.extendleft(reversed(records))
            log.warning(
                "outbox_with_plan_failed",
                client_order_id=order.client_order_id,
                plan_id=plan_id,
                error=_one_line(error),
            )
            return False
        staged.mode = self._mode  # the writer's mode moves with the state records it writes
        staged.merge()
        with self._state_lock:
            self._written += len(records)
        self._order_rows[order.client_order_id] = _OrderRef(row_id, strategy, decision_id, is_exit)
        return True

    def _take_plan(self, plan_id: str) -> list[Record] | None:
        """The plan's signal and decision records, taken out of the buffer to be written in its
        entry's outbox transaction (one commit, where a flush first would be two or more and,
        for the writer process, a round trip); None when they are not both still here."""
        with self._flush_lock:  # a background flush does not take records meanwhile
            return self._take_plan_records(plan_id)

    def _take_plan_records(self, plan_id: str) -> list[Record] | None:
        buffer = self._buffer
        if self._carry:
            return None  # a batch that failed may hold them: write in order
        decision_at = -1
        signal: Signal | None = None
        position = len(buffer)
        # From the newest: the decision was made in this cycle, its signal just before.
        for entry in reversed(buffer):
            position -= 1
            if decision_at < 0:
                if kind_of(entry) == DECISION and event_of(entry).plan_id == plan_id:
                    decision_at, signal = position, event_of(entry).signal
            elif kind_of(entry) == SIGNAL and event_of(entry) is signal:
                decision = buffer[decision_at]
                del buffer[decision_at]
                del buffer[position]
                return [as_record(entry), as_record(decision)]
        return None

    # -- flushing -----------------------------------------------------------------------------

    def flush(self) -> int:
        """Write what is buffered now, in batches; return how many records were written.

        A store that is down leaves the records buffered (see `stats().degraded`);
        `flush` itself raises only for bugs in the writer.
        """
        with self._flush_lock:
            written = 0
            # Records appended while this runs wait for the next call: no endless flush.
            budget = len(self._buffer)
            try:
                if self._degraded and not self._carry and not budget:
                    self._probe()  # nothing to write: recovery must still be seen, not assumed
                while self._carry or budget > 0:
                    if not self._carry:
                        take = min(self._batch_size, budget, len(self._buffer))
                        if take == 0:
                            break
                        budget -= take
                        self._carry = [as_record(entry) for entry in self._capture.drain(take)]
                    written += self._write_carry()
            except SQLAlchemyError as error:
                self._failed(error)
                return written
            self._recovered()
            return written

    def _write_session(self, options: Mapping[str, Any] = WRITE) -> Session:
        """A session for a transaction that writes: on SQLite it takes the write lock at BEGIN;
        with `KEYED_BATCH`, on PostgreSQL its lookups go by index (see there)."""
        session = self._sessions()
        try:
            session.connection(execution_options=options)
        except BaseException:
            session.close()
            raise
        return session

    def _probe(self) -> None:
        with self._sessions() as session:
            session.execute(select(1))

    # -- for a writer fed from elsewhere (`store.writer_process`) -------------------------------

    def enqueue(self, records: Iterable[Record]) -> None:
        """Buffer records another writer's engine made, as if this one's engine had."""
        self._buffer.extend(records)

    def verify_next(self, count: int) -> None:
        """The next `count` records may already be in the store (sent again after the writer
        that held them died mid-write): the batches holding them check before inserting."""
        self._verify_left = count
        self._verify = self._verify or count > 0

    def check_store(self) -> bool:
        """Probe the store now; if it does not answer, the writer is degraded (alerted once)
        until a write or a probe succeeds. Returns whether it answered."""
        try:
            self._probe()
        except SQLAlchemyError as error:
            self._failed(error)
            return False
        return True

    def reachable(self) -> bool:
        """Whether the store answers a trivial query now."""
        try:
            self._probe()
        except SQLAlchemyError:
            return False
        return True

    def written_plans(self) -> list[tuple[str, tuple[int, bool]]]:
        """Every plan id written, with its decision row id and approval, in the order written."""
        return list(self._plan_rows.items())

    def _write_carry(self) -> int:
        """Write the carried batch, isolating records the database refuses; connection errors propagate."""
        carry = self._carry
        written = 0
        size = len(carry)
        while carry:
            chunk = carry[:size]
            try:
                self._write(chunk)
            except Exception as error:
                if not _is_poison(error):
                    raise
                with self._state_lock:
                    self._failures += 1
                if size > 1:
                    size = (size + 1) // 2
                    continue
                self._quarantine(carry.pop(0), error)
                size = len(carry)
                continue
            del carry[: len(chunk)]
            written += len(chunk)
            size = len(carry)
        with self._state_lock:
            self._written += written
        return written

    def _quarantine(self, record: Record, error: BaseException) -> None:
        reason = _one_line(error)
        self.quarantine.append((record, reason))
        log.error("store_record_refused", kind=record[0], record=repr(record[1])[:500], error=reason)
        self._alert("store_record_refused", f"a record the store refuses was set aside: {reason}")

    def _failed(self, error: BaseException) -> None:
        reason = _one_line(error)
        with self._state_lock:
            self._failures += 1
            self._last_error = reason
            first = not self._degraded
            self._degraded = True
        if first:
            log.error("store_degraded", error=reason, buffered=self.buffered)
            self._alert("store_degraded", f"store degraded, buffering writes: {reason}")

    def _recovered(self) -> None:
        with self._state_lock:
            was = self._degraded
            self._degraded = False
        if self._capture.overflowed and len(self._buffer) < self._max_buffer:
            self._capture.overflowed = False
        if was:
            log.warning("store_recovered", written=self._written)
            self._alert("store_recovered", "store recovered, buffered writes flushed")

    def _alert(self, kind: str, message: str) -> None:
        if self._on_alert is not None:
            try:
                self._on_alert(kind, message)
            except Exception:
                log.exception("store_alert_failed", kind=kind)

    @property
    def buffered(self) -> int:
        return len(self._buffer) + len(self._carry)

    def stats(self) -> WriterStats:
        return WriterStats(
            buffered=self.buffered,
            written=self._written,
            flushes=self._flushes,
            failures=self._failures,
            degraded=self._degraded,
            last_error=self._last_error,
            quarantined=len(self.quarantine),
        )

    # -- background mode ----------------------------------------------------------------------

    # Seconds a caller of `pump` that returned True should let pass before the next call.
    pump_wait_s = 0.0

    def pump(self) -> bool:
        """Nothing to do here (returns False: nothing left to ship): this writer's batches go from
        its own thread (see `ProcessStoreWriter.pump`, which the node calls between events)."""
        return False

    def start_background(self, interval_s: float = FLUSH_INTERVAL_S) -> None:
        """Flush every `interval_s` on a daemon thread (backing off while the store is down)."""
        if self._thread is not None:
            raise RuntimeError("the background writer is already running")
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, args=(interval_s,), name="quantdesk-store-writer", daemon=True
        )
        self._thread.start()

    def stop(self) -> int:
        """Stop the background thread, flush what is left and return how many records that wrote.

        Raises `StoreWriteFailed` if records are still unwritten (the store is down).
        """
        thread, self._thread = self._thread, None
        self._stop.set()
        if thread is not None:
            thread.join()
        written = self.flush()
        if self.buffered:
            raise StoreWriteFailed(f"{self.buffered} records not written: {self._last_error}")
        return written

    def _run(self, interval_s: float) -> None:
        wait = interval_s
        while not self._stop.wait(wait):
            try:
                self.flush()
            except Exception as error:  # a bug: logged, and the records stay buffered for the next try
                log.exception("store_flush_failed")
                self._failed(error)
            wait = min(wait * 2, _MAX_RETRY_S) if self._degraded else interval_s

    # -- one batch, one transaction -----------------------------------------------------------

    def _write(self, batch: Sequence[Record]) -> None:
        staged = _Staged(self)
        with self._db_lock if self._serialize else _NO_LOCK, self._write_session(KEYED_BATCH) as session:
            staged.write(session, batch)
            try:
                session.commit()
            except SQLAlchemyError:
                # The commit may have reached the server before the connection died:
                # the retry checks what is already there instead of inserting twice.
                self._verify = True
                raise
        self._verify_left = max(0, self._verify_left - len(batch))
        self._verify = self._verify_left > 0
        staged.merge()
        with self._state_lock:
            self._flushes += 1


class _NoLock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *args: object) -> None:
        return None


_NO_LOCK = _NoLock()


class _Staged:
    """One batch's rows and the ids they got; merged into the writer's maps only after commit."""

    def __init__(self, writer: StoreWriter) -> None:
        self.w = writer
        self.signal_rows: dict[int, tuple[Signal, int]] = {}
        self.decided: list[int] = []
        self.plan_rows: dict[str, tuple[int, bool]] = {}
        self.order_rows: dict[str, _OrderRef] = {}
        self.positions: dict[tuple[str, str], tuple[Position, int]] = {}
        self.mode = writer._mode

    def merge(self) -> None:
        w = self.w
        w._signal_rows.update(self.signal_rows)
        for key in self.decided:
            w._signal_rows.pop(key, None)
        w._plan_rows.update(self.plan_rows)
        w._unwritten_plans.difference_update(self.plan_rows)
        w._order_rows.update(self.order_rows)
        w._positions.update(self.positions)
        w._mode = self.mode

    def _signal_id(self, signal: Signal) -> int:
        known = self.signal_rows.get(id(signal)) or self.w._signal_rows[id(signal)]
        return known[1]

    def _has_signal(self, signal: Signal) -> bool:
        known = self.signal_rows.get(id(signal)) or self.w._signal_rows.get(id(signal))
        return known is not None and known[0] is signal

    def _order_ref(self, client_order_id: str) -> _OrderRef | None:
        return self.order_rows.get(client_order_id) or self.w._order_rows.get(client_order_id)

    def write(self, session: Session, batch: Sequence[Record]) -> None:
        signals: dict[int, Signal] = {}
        decisions: list[tuple[DecisionRecord, Mode]] = []
        orders: dict[str, list[Any]] = {}
        fills: list[Fill] = []
        changes: list[StateChange] = []
        refused: list[SignalBlocked] = []
        flattens: list[FlattenCompleted] = []
        for record in batch:
            kind = record[0]
            if kind == SIGNAL:
                signals[id(record[1])] = record[1]
            elif kind == DECISION:
                decisions.append((record[1], self.mode))
            elif kind == ORDER:
                first = orders.get(record[1].client_order_id)
                if first is None:
                    orders[record[1].client_order_id] = [record[1], record[2], record[3]]
                else:
                    first[0] = record[1]  # the latest state; identity from the first sighting
            elif kind == FILL:
                fills.append(record[1])
            elif kind == STATE:
                changes.append(record[1])
                if record[1].action == "mode" and record[1].reason in Mode.__members__:
                    self.mode = Mode(record[1].reason)
            elif kind == FLATTEN:
                flattens.append(record[1])
            else:
                refused.append(record[1])
        # A decision or refusal whose signal was not published (writer attached late) brings it.
        for signal in [d.signal for d, _ in decisions] + [r.signal for r in refused]:
            if id(signal) not in signals and not self._has_signal(signal):
                signals[id(signal)] = signal
        self._signals(session, list(signals.items()))
        self._decisions(session, decisions)
        self._orders(session, orders, fills)
        self._fills(session, fills)
        self._appends(session, changes, refused)
        self._flattens(session, flattens)

    def _flattens(self, session: Session, flattens: list[FlattenCompleted]) -> None:
        """Each finished flatten as a risk event the burn-in check reads (kind "flatten")."""
        if self.w._verify and flattens:
            query = select(RiskEventRow.ts).where(RiskEventRow.kind == _FLATTEN_KIND)
            done = set(session.scalars(query.where(RiskEventRow.ts.in_(sorted({f.ts for f in flattens})))))
            flattens = [f for f in flattens if f.ts not in done]
        rows = [
            {
                "ts": f.ts,
                "kind": _FLATTEN_KIND,
                "symbol": None,
                "reason": f.reason,
                "details": {
                    "duration_ms": f.duration_ns / 1_000_000,
                    "actor": f.actor,
                    "canceled": f.canceled,
                    "closing_orders": f.closing_orders,
                },
            }
            for f in flattens
        ]
        _insert(session, RiskEventRow, rows, ids=False)

    def _signals(self, session: Session, signals: list[tuple[int, Signal]]) -> None:
        if self.w._verify and signals:
            stamps = sorted({s.ts for _, s in signals})
            found: dict[tuple[Any, ...], list[int]] = {}
            for ts, strategy, symbol, side, row_id in _lookup(session, _SIGNALS_BY_TS, stamps):
                found.setdefault((ts, strategy, symbol, side), []).append(row_id)
            remaining = []
            for key, signal in signals:
                ids = found.get((signal.ts, signal.strategy, signal.symbol, signal.side))
                if ids:
                    self.signal_rows[key] = (signal, ids.pop(0))
                else:
                    remaining.append((key, signal))
            signals = remaining
        sha = self.w._config_sha
        ids = _insert(session, SignalRow, [signal_values(s, sha) for _, s in signals])
        for (key, signal), row_id in zip(signals, ids, strict=True):
            self.signal_rows[key] = (signal, row_id)

    def _decisions(self, session: Session, decisions: list[tuple[DecisionRecord, Mode]]) -> None:
        if not decisions:
            return
        w = self.w
        existing: dict[str, tuple[int, bool]] = {}
        unknown = sorted({d.plan_id for d, _ in decisions if d.plan_id and d.plan_id not in w._plan_rows})
        for plan_id, row_id, approved in _lookup(session, _PLANS_BY_ID, unknown):
            existing[plan_id or ""] = (row_id, approved)
        by_signal: dict[int, int] = {}
        if w._verify:
            signal_ids = sorted({self._signal_id(d.signal) for d, _ in decisions})
            for signal_id, row_id in _lookup(session, _DECISIONS_BY_SIGNAL, signal_ids):
                by_signal[signal_id] = row_id
        rows: list[dict[str, Any]] = []
        plans: list[str] = []
        for record, mode in decisions:
            self.decided.append(id(record.signal))
            signal_id = self._signal_id(record.signal)
            plan_id = record.plan_id
            known = self.plan_rows.get(plan_id) or w._plan_rows.get(plan_id) or existing.get(plan_id)
            if plan_id and known is not None:
                self.plan_rows[plan_id] = known  # the same plan decided again (a restart): one row
                continue
            if signal_id in by_signal:
                if plan_id:
                    self.plan_rows[plan_id] = (by_signal[signal_id], record.approved)
                continue
            rows.append(decision_values(record, signal_id=signal_id, mode=mode, config_sha=w._config_sha))
            plans.append(plan_id)
            if plan_id:
                self.plan_rows[plan_id] = (-1, record.approved)  # placeholder, id below
        for plan_id, row_id, values in zip(plans, _insert(session, DecisionRow, rows), rows, strict=True):
            if plan_id:
                self.plan_rows[plan_id] = (row_id, values["approved"])

    def _decision_for(self, plan_id: str | None, is_exit: bool) -> int | None:
        if not plan_id or is_exit:
            return None
        known = self.plan_rows.get(plan_id) or self.w._plan_rows.get(plan_id)
        return known[0] if known is not None and known[1] else None

    def _orders(self, session: Session, orders: dict[str, list[Any]], fills: list[Fill]) -> None:
        wanted = [cid for cid in orders if self._order_ref(cid) is None]
        wanted += sorted({f.client_order_id for f in fills if self._order_ref(f.client_order_id) is None})
        for client_order_id, row_id, strategy, decision_id, leg in _lookup(
            session, _ORDERS_BY_CLIENT_ID, sorted(set(wanted))
        ):
            self.order_rows[client_order_id] = _OrderRef(row_id, strategy, decision_id, leg == Leg.EXIT)
        inserts: list[dict[str, Any]] = []
        new: list[tuple[str, str, int | None, bool]] = []
        updates: list[dict[str, Any]] = []
        for client_order_id, (order, strategy, plan_id) in orders.items():
            ref = self._order_ref(client_order_id)
            if ref is None:
                is_exit = order.tag == _EXIT
                decision_id = self._decision_for(plan_id, is_exit)
                inserts.append(
                    order_values(
                        order, strategy=strategy or "", decision_id=decision_id, oco_group=plan_id or None
                    )
                )
                new.append((client_order_id, strategy or "", decision_id, is_exit))
                continue
            if ref.decision_id is None and not ref.is_exit:
                # An outbox row written before its decision was flushed gets its link now.
                plan = plan_id or plan_of_client_id(client_order_id)
                decision_id = self._decision_for(plan, False)
                if decision_id is not None:
                    ref = _OrderRef(ref.row_id, ref.strategy, decision_id, False)
                    self.order_rows[client_order_id] = ref
            updates.append({"id": ref.row_id, "decision_id": ref.decision_id, **order_update_values(order)})
        for (client_order_id, strategy, decision_id, is_exit), row_id in zip(
            new, _insert(session, OrderRow, inserts), strict=True
        ):
            self.order_rows[client_order_id] = _OrderRef(row_id, strategy, decision_id, is_exit)
        _update(session, OrderRow, updates)

    def _fills(self, session: Session, fills: list[Fill]) -> None:
        if not fills:
            return
        executions = sorted({f.execution_id for f in fills})
        existing = {execution_id for (execution_id,) in _lookup(session, _FILLS_BY_EXECUTION_ID, executions)}
        rows: list[dict[str, Any]] = []
        fresh: list[tuple[str, Fill]] = []
        for fill in fills:
            if fill.execution_id in existing:
                log.info("duplicate_fill_skipped", execution_id=fill.execution_id)
                continue
            existing.add(fill.execution_id)
            ref = self._order_ref(fill.client_order_id)
            if ref is None:
                raise ValueError(
                    f"fill {fill.execution_id}: order {fill.client_order_id} is not in the store"
                )
            rows.append(fill_values(fill, order_id=ref.row_id))
            fresh.append((ref.strategy, fill))
        _insert(session, FillRow, rows, ids=False)
        self._positions(session, fresh)

    def _positions(self, session: Session, fills: list[tuple[str, Fill]]) -> None:
        w = self.w
        keys = {(strategy, fill.symbol) for strategy, fill in fills}
        unknown = sorted(k for k in keys if k not in w._positions)
        loaded: dict[tuple[str, str], tuple[Position, int]] = {}
        for chunk in _chunks(sorted({symbol for _, symbol in unknown})):
            for row in session.scalars(select(PositionRow).where(PositionRow.symbol.in_(chunk))):
                key = (row.strategy, row.symbol)
                position = Position(
                    row.symbol,
                    w._multipliers.get(row.symbol, Decimal(1)),
                    row.qty,
                    row.avg_price,
                    row.realized_pnl,
                    row.fees,
                    row.ts_opened,
                    row.ts_updated,
                )
                loaded[key] = (position, row.id)
        for key in sorted(keys):
            known = w._positions.get(key) or loaded.get(key)
            if known is None:
                self.positions[key] = (Position(key[1], w._multipliers.get(key[1], Decimal(1))), -1)
            else:
                self.positions[key] = (copy.copy(known[0]), known[1])
        for strategy, fill in fills:
            self.positions[(strategy, fill.symbol)][0].apply(fill)
        inserts: list[tuple[tuple[str, str], dict[str, Any]]] = []
        updates: list[dict[str, Any]] = []
        for key, (position, row_id) in self.positions.items():
            values = position_values(key[0], position)
            if row_id < 0:
                inserts.append((key, values))
            else:
                updates.append({"id": row_id, **values})
        ids = _insert(session, PositionRow, [values for _, values in inserts])
        for (key, _), row_id in zip(inserts, ids, strict=True):
            self.positions[key] = (self.positions[key][0], row_id)
        _update(session, PositionRow, updates)

    def _appends(self, session: Session, changes: list[StateChange], refused: list[SignalBlocked]) -> None:
        if self.w._verify and changes:
            stamps = sorted({c.ts for c in changes})
            there = [tuple(row) for row in _lookup(session, _AUDIT_BY_TS, stamps)]
            remaining = []
            for change in changes:
                key = (change.ts, change.actor, change.action, change.reason)
                if key in there:
                    there.remove(key)
                else:
                    remaining.append(change)
            changes = remaining
        audit = [audit_values(c) for c in changes]
        _insert(session, AuditLogRow, audit, ids=False)
        # A malformed signal's refusal is a risk event pointing at its signal row.
        events: list[tuple[int, SignalBlocked]] = []
        for blocked in refused:
            self.decided.append(id(blocked.signal))
            events.append((self._signal_id(blocked.signal), blocked))
        if events and self.w._verify:
            query = select(RiskEventRow.details).where(RiskEventRow.kind == _REFUSED_KIND)
            query = query.where(RiskEventRow.ts.in_(sorted({b.signal.ts for _, b in events})))
            done = {details.get("signal_id") for details in session.scalars(query)}
            events = [(signal_id, b) for signal_id, b in events if signal_id not in done]
        rows = [
            {
                "ts": b.signal.ts,
                "kind": _REFUSED_KIND,
                "symbol": b.signal.symbol,
                "reason": b.reason,
                "details": {"signal_id": signal_id, "strategy": b.signal.strategy},
            }
            for signal_id, b in events
        ]
        _insert(session, RiskEventRow, rows, ids=False)


def _insert_outbox_row(
    session: Session, order: Order, strategy: str, decision_id: int | None, plan_id: str
) -> int:
    """The order's row as PENDING_SUBMIT, its id; a client id already stored raises IntegrityError."""
    values = order_values(order, strategy=strategy, decision_id=decision_id, oco_group=plan_id or None)
    values["status"] = OrderStatus.PENDING_SUBMIT
    return _insert(session, OrderRow, [values])[0]


def _insert(
    session: Session, model: type[Base], rows: list[dict[str, Any]], *, ids: bool = True
) -> list[int]:
    """Insert `rows` in one call to the driver; with `ids`, their ids in input order."""
    if not rows:
        return []
    table: Table = model.__table__  # type: ignore[assignment]
    if session.get_bind().dialect.name == "postgresql":
        return _insert_unnest(session, table, rows, ids=ids)
    last = _execute_rows(session.connection(), table, tuple(rows[0]), "insert", rows, last_id=ids)
    if last is None:
        return []
    # From its first row on, the transaction holds SQLite's write lock and each row got
    # max(rowid) + 1: the rows' ids are the last one's and the ones just before it.
    return list(range(last - len(rows) + 1, last + 1))


def _update(session: Session, model: type[Base], rows: list[dict[str, Any]]) -> None:
    """Update rows by id, each with its own values (on PostgreSQL one statement for all)."""
    if not rows:
        return
    table: Table = model.__table__  # type: ignore[assignment]
    if len({row["id"] for row in rows}) != len(rows):
        raise ValueError(f"{table.name}: a row is updated twice in one statement")
    keys = ("id", *(k for k in rows[0] if k != "id"))
    if session.get_bind().dialect.name == "postgresql":
        _execute_unnest(session, table, keys, "update", rows)
        return
    _execute_rows(session.connection(), table, keys, "update", rows)


# The batch's rows go to the driver as columns of values bound by SQLAlchemy's own processors for
# the dialect (exact decimals, JSON, enums: stored as SQLAlchemy stores them), not through
# SQLAlchemy's executemany, which builds each row's parameters through its compiled statement
# (on SQLite, the writer's CPU per record on the store benchmark's chain fell to x0.76 without it,
# median of 6 paired runs, 2026-12-04).
# PostgreSQL takes each column as one array (`unnest`): row by row, even pipelined and prepared,
# cost the writer ~30 us a row in psycopg's per-statement machinery and the server an executor
# start per row; as arrays, psycopg dumps each column once and the server runs one statement.
# SQLite takes the rows through the sqlite3 module's executemany, a loop in C.

# (dialect, table, columns, statement kind) -> the statement's SQL and each column's bind processor
_STATEMENTS: dict[tuple[str, str, tuple[str, ...], str], tuple[str, list[tuple[str, Any]]]] = {}


def _array_type(table: Table, key: str, dialect: Any) -> str:
    """The column's type without length or scale: an explicit cast to VARCHAR(64) or
    NUMERIC(28, 10) would cut or round a value the column must refuse instead."""
    return table.c[key].type.compile(dialect=dialect).split("(")[0] + "[]"


def _statement(table: Table, keys: tuple[str, ...], kind: str, dialect: Any) -> tuple[str, Any]:
    """The SQL for `kind` ("insert", or "update" by `id`) of `keys`, and the columns' processors.

    PostgreSQL's takes one array per column; SQLite's one row of parameters, in `keys`' order
    with the id last for an update."""
    key = (dialect.name, table.name, keys, kind)
    prepared = _STATEMENTS.get(key)
    if prepared is not None:
        return prepared
    columns = ", ".join(keys)
    if dialect.name == "postgresql":
        arrays = ", ".join(f"%b::{_array_type(table, k, dialect)}" for k in keys)
        if kind == "insert":
            sql = f"INSERT INTO {table.name} ({columns}) SELECT * FROM unnest({arrays})"
        else:
            assigned = ", ".join(f"{k} = v.{k}" for k in keys if k != "id")
            source = f"unnest({arrays}) AS v({columns})"
            sql = f"UPDATE {table.name} SET {assigned} FROM {source} WHERE {table.name}.id = v.id"
    elif kind == "insert":
        sql = f"INSERT INTO {table.name} ({columns}) VALUES ({', '.join('?' for _ in keys)})"
    else:
        keys = (*(k for k in keys if k != "id"), "id")
        assigned = ", ".join(f"{k} = ?" for k in keys if k != "id")
        sql = f"UPDATE {table.name} SET {assigned} WHERE id = ?"
    processors = [(k, table.c[k].type.dialect_impl(dialect).bind_processor(dialect)) for k in keys]
    prepared = _STATEMENTS[key] = (sql, processors)
    return prepared


def _columns(rows: list[dict[str, Any]], processors: list[tuple[str, Any]], sql: str) -> list[list[Any]]:
    """Each column's values as the driver takes them; a value its column's type refuses is raised
    as SQLAlchemy raises it (the writer quarantines the record that brought it)."""
    try:
        return [
            [row[k] for row in rows] if process is None else [process(row[k]) for row in rows]
            for k, process in processors
        ]
    except (ValueError, TypeError, ArithmeticError) as error:
        raise StatementError(str(error), sql, None, error) from error


@functools.cache
def _returning_id(table: Table) -> Insert:
    """A one-row insert into `table` that returns the row's id, built once."""
    return insert(table).returning(table.c.id)


def _insert_unnest(session: Session, table: Table, rows: list[dict[str, Any]], *, ids: bool) -> list[int]:
    """PostgreSQL: `rows` inserted in one statement; with `ids`, the ids they got, in input order
    (taken from the table's sequence first: the order of an INSERT's RETURNING is not promised)."""
    if ids and len(rows) == 1:
        # One row (an entry's signal and decision at the outbox): one round trip, not two.
        return [session.connection().execute(_returning_id(table), rows[0]).scalar_one()]
    keys = tuple(rows[0])
    row_ids: list[int] = []
    if ids:
        connection = session.connection()
        taken = connection.exec_driver_sql(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
            (table.name, len(rows)),
        )
        row_ids = [row_id for (row_id,) in taken]
        keys = ("id", *keys)
        rows = [{"id": row_id, **row} for row_id, row in zip(row_ids, rows, strict=True)]
    _execute_unnest(session, table, keys, "insert", rows)
    return row_ids


def _execute_unnest(
    session: Session, table: Table, keys: tuple[str, ...], kind: str, rows: list[dict[str, Any]]
) -> None:
    """PostgreSQL: one statement for all `rows`."""
    connection = session.connection()
    sql, processors = _statement(table, keys, kind, connection.dialect)
    _run(connection, table, kind, sql, _columns(rows, processors, sql), len(rows), many=False)


def _execute_rows(
    connection: Connection,
    table: Table,
    keys: tuple[str, ...],
    kind: str,
    rows: list[dict[str, Any]],
    *,
    last_id: bool = False,
) -> int | None:
    """SQLite: the driver's executemany of one statement over `rows`; with `last_id`, the
    connection's last inserted row id after it (the driver's `lastrowid` is None after executemany)."""
    sql, processors = _statement(table, keys, kind, connection.dialect)
    params = list(zip(*_columns(rows, processors, sql), strict=True))
    then = "SELECT last_insert_rowid()" if last_id else None
    return _run(connection, table, kind, sql, params, len(rows), many=True, then=then)


def _run(
    connection: Connection,
    table: Table,
    kind: str,
    sql: str,
    params: Any,
    count: int,
    *,
    many: bool,
    then: str | None = None,
) -> int | None:
    """Execute on the driver's cursor; its errors are raised as SQLAlchemy raises them (the
    writer's retry and quarantine decide on SQLAlchemy's classes), and a statement that touched
    another number of rows than it was given is an error, not a silent loss. `then`: a query run
    next on the same cursor, whose one integer is returned."""
    dialect = connection.dialect
    cursor = connection.connection.cursor()
    try:
        if many:
            cursor.executemany(sql, params)
        else:
            cursor.execute(sql, params)
        if cursor.rowcount != count:
            raise RuntimeError(f"{table.name}: {kind} touched {cursor.rowcount} of {count} rows")
        if then is None:
            return None
        cursor.execute(then)
        row = cursor.fetchone()
        return None if row is None else int(row[0])
    except dialect.loaded_dbapi.Error as error:
        raise DBAPIError.instance(sql, params, error, dialect.loaded_dbapi.Error, dialect=dialect) from error
    finally:
        cursor.close()
