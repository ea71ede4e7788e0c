"""Recovery test kit: a venue the node can die inside, a store that loses its buffer in a crash, and a
desk that trades on both, crashes at a chosen step and restarts a fresh engine on the same venue and store.

A crash is an exception no code of ours catches (`Crashed`, a BaseException),
raised the moment the node would be killed: what the venue did stays done, what
the node had not yet been told it never hears, what the store had not yet
flushed is gone. The venue is a real `SimulatedExchange`; it keeps trading
while the node is down (`Desk.feed_while_down`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from kit import MINUTE, T0, bar
from quantdesk.bus import MessageBus
from quantdesk.clock import SimulatedClock
from quantdesk.engine import Engine, EngineConfig
from quantdesk.engine.messages import DecisionRecord
from quantdesk.engine.pipeline import PipelineConfig, research_risk_config
from quantdesk.execution import EventLog
from quantdesk.execution.client_ids import DuplicateClientId
from quantdesk.execution.recovery import (
    Reconciler,
    RecoveryConfig,
    RecoveryReport,
    StoredBracket,
    StoredFill,
    StoredOrder,
    StoredState,
)
from quantdesk.model import (
    Bar,
    Fill,
    Instrument,
    Order,
    OrderAccepted,
    OrderEvent,
    OrderFilled,
    OrderStatus,
)
from quantdesk.risk.messages import Mode
from quantdesk.strategies import Strategy
from quantdesk.venues.base import VenueCapabilities, VenueListener, VenueOrderState
from quantdesk.venues.sim import SimulatedExchange

CASH = Decimal(1_000_000)
# Kite's order tag: 20 alphanumeric characters, not enforced unique by the broker.
KITE = VenueCapabilities(
    "KITE", max_client_id_length=20, client_id_alphanumeric=True, unique_client_ids=False
)
_ZERO = Decimal(0)


class Crashed(BaseException):
    """The node died here (kill -9): nothing of it runs after this point."""


# A crash point: (where, client order id, leg tag) -> die now? `where` is "persisted" (the row is
# committed, the venue not called), "sent" (the venue accepted, the node not told), "fill" (the
# venue filled, the node not told) or "cancel" (the venue cancelled, the node not told).
CrashPoint = Callable[[str, str, str], bool]


def nth(where: str, n: int, tags: Iterable[str] = ()) -> CrashPoint:
    """Die at the `n`-th time `where` happens (to an order of one of `tags`, if given)."""
    wanted = set(tags)
    seen = [0]

    def point(at: str, client_order_id: str, tag: str) -> bool:
        if at != where or (wanted and tag not in wanted):
            return False
        seen[0] += 1
        return seen[0] == n

    return point


class CrashingVenue:
    """A `SimulatedExchange` behind a connection the node can die on; it outlives every node.

    `submitted` lists every client id ever handed to the exchange (the evidence that
    none was sent twice); `executions`, `open_orders`, `query_order` and `positions`
    are the exchange's own, as a broker answers them.
    """

    def __init__(self, exchange: SimulatedExchange, capabilities: VenueCapabilities | None = None) -> None:
        self.exchange = exchange
        self._capabilities = capabilities or exchange.capabilities
        self.submitted: list[str] = []
        self.tags: dict[str, str] = {}
        self.crash_at: CrashPoint | None = None
        self._listener: VenueListener | None = None
        self._dying = False
        self._dead = False
        exchange.connect(self)

    @property
    def capabilities(self) -> VenueCapabilities:
        return self._capabilities

    def connect(self, listener: VenueListener) -> None:
        self._listener = listener
        self._dead = self._dying = False

    @property
    def down(self) -> bool:
        return self._dead

    def _point(self, where: str, client_order_id: str) -> bool:
        if self._dying or self._dead or self.crash_at is None:
            return False
        if self.crash_at(where, client_order_id, self.tags.get(client_order_id, "")):
            self._dying = True
        return self._dying

    def _die_if_dying(self) -> None:
        if self._dying:
            self._dying, self._dead = False, True
            raise Crashed()

    def submit_order(self, order: Order) -> None:
        self.tags[order.client_order_id] = order.tag
        if self._point("persisted", order.client_order_id):
            self._die_if_dying()
        self.submitted.append(order.client_order_id)
        self.exchange.submit_order(order)
        self._die_if_dying()

    def cancel_order(self, client_order_id: str) -> None:
        self._point("cancel", client_order_id)
        self.exchange.cancel_order(client_order_id)
        self._die_if_dying()

    def on_order_event(self, event: OrderEvent) -> None:
        if type(event) is OrderAccepted:
            self._point("sent", event.client_order_id)
        elif type(event) is OrderFilled:
            self._point("fill", event.client_order_id)
        if self._dying or self._dead or self._listener is None:
            return  # the node is gone (or going): it never hears of this
        self._listener.on_order_event(event)

    # -- what a broker answers --------------------------------------------------------------------

    def open_orders(self) -> list[VenueOrderState]:
        return self.exchange.open_orders()

    def query_order(self, client_order_id: str) -> VenueOrderState | None:
        return self.exchange.query_order(client_order_id)

    def executions(self) -> list[Fill]:
        return self.exchange.executions()

    @property
    def positions(self) -> Mapping[str, Decimal]:
        return self.exchange.positions

    # -- market data ----------------------------------------------------------------------------

    def on_bar(self, b: Bar) -> None:
        self.exchange.on_bar(b)
        self._die_if_dying()

    def on_bar_close(self, b: Bar) -> None:
        self.exchange.on_bar_close(b)
        self._die_if_dying()


class BlindVenue(CrashingVenue):
    """The same venue without an execution list: missed fills must be estimated from the orders."""

    def __getattribute__(self, name: str) -> Any:
        if name == "executions":
            raise AttributeError(name)
        return super().__getattribute__(name)


# -- stores -----------------------------------------------------------------------------------------


class Store(Protocol):
    """What the desk needs of a store: an outbox, a writer for one engine, and what it knows."""

    def attach(self, engine: Engine) -> None: ...

    def persist_before_send(self, order: Order, *, strategy: str, plan_id: str) -> None: ...

    def flush(self) -> None: ...

    def state(self) -> StoredState: ...


class MemoryStore:
    """A store in memory with the writer's timing: the outbox row is committed at once, everything
    else (order updates, fills, decisions) only when `flush` runs; a crash loses the rest.

    `durable_plans` also commits an entry's plan (its stop and targets) with the entry's outbox
    row, as the writer should (see the recovery report): without it a crash between an entry's
    send and the next flush leaves the entry's stop unknown."""

    def __init__(self, *, durable_plans: bool = False) -> None:
        self.durable_plans = durable_plans
        # Tags whose outbox rows only reach the buffer (the writer's `send_when_down` while the
        # database is down): a crash loses them.
        self.buffer_only: set[str] = set()
        self.rows: dict[str, StoredOrder] = {}
        self.fills: dict[str, StoredFill] = {}
        self.brackets: dict[str, StoredBracket] = {}
        self._engine: Engine | None = None
        self._fills: list[Fill] = []
        self._decisions: list[DecisionRecord] = []

    def attach(self, engine: Engine) -> None:
        self._engine = engine
        self._fills, self._decisions = [], []  # the last node's buffer died with it
        engine.bus.subscribe(Fill, self._fills.append)
        engine.pipeline.subscribe(self._decisions.append)

    def persist_before_send(self, order: Order, *, strategy: str, plan_id: str) -> None:
        if order.client_order_id in self.rows:
            raise DuplicateClientId(f"client id {order.client_order_id} is already in the store")
        if order.tag in self.buffer_only:
            return
        self.rows[order.client_order_id] = _row(order, strategy, plan_id, OrderStatus.PENDING_SUBMIT, _ZERO)
        if self.durable_plans and order.tag == "ENTRY":
            for record in self._decisions:
                if record.plan_id == plan_id:
                    self.brackets[plan_id] = StoredBracket(record.signal.stop, record.signal.targets)

    def flush(self) -> None:
        engine = self._engine
        assert engine is not None
        for fill in self._fills:
            order = engine.orders.orders[fill.client_order_id]
            if order.tag in self.buffer_only:
                continue  # behind its order's row in the buffer (the writer's order is FIFO)
            stored = StoredFill(engine.orders.strategy_of(fill.client_order_id), order.tag, fill)
            self.fills.setdefault(fill.execution_id, stored)
        self._fills.clear()
        for record in self._decisions:
            if record.approved and record.plan_id:
                signal = record.signal
                self.brackets[record.plan_id] = StoredBracket(signal.stop, signal.targets)
        self._decisions.clear()
        filled: dict[str, Decimal] = {}
        for stored in self.fills.values():
            cid = stored.fill.client_order_id
            filled[cid] = filled.get(cid, _ZERO) + stored.fill.qty
        orders = engine.orders
        for cid, order in orders.orders.items():
            if order.tag in self.buffer_only:
                continue
            group = orders.group_of(cid)
            plan = group.plan_id if group is not None else orders.plan_of(cid)
            self.rows[cid] = _row(order, orders.strategy_of(cid), plan, order.status, filled.get(cid, _ZERO))

    def state(self) -> StoredState:
        return StoredState(
            client_order_ids=frozenset(self.rows),
            orders=tuple(self.rows.values()),
            fills=tuple(self.fills.values()),
            brackets=dict(self.brackets),
        )


def _row(order: Order, strategy: str, plan_id: str, status: OrderStatus, filled: Decimal) -> StoredOrder:
    average = order.avg_fill_price if filled == order.filled_qty else _ZERO
    return StoredOrder(
        client_order_id=order.client_order_id,
        strategy=strategy,
        plan_id=plan_id,
        leg=order.tag,
        symbol=order.symbol,
        side=order.side,
        order_type=order.order_type,
        time_in_force=order.time_in_force,
        qty=order.qty,
        price=order.price,
        stop_price=order.stop_price,
        status=status,
        filled_qty=filled,
        avg_fill_price=average,
        fees=order.fees if filled == order.filled_qty else _ZERO,
        venue_order_id=order.venue_order_id,
        reason=order.reason,
        ts_created=order.ts_created,
        ts_updated=order.ts_last,
    )


# -- strategies and prices -------------------------------------------------------------------------


class Bracket(Strategy):
    """Every `every` bars while flat: buy 10 (at market, or at a limit `dip` below the close) with a
    stop `risk` below and targets `reward` and 2 x `reward` above; with `hold`, exit at market after
    that many bars in the position."""

    every: int = 5
    dip: float = 0.0
    risk: float = 1.5
    reward: float = 1.0
    hold: int = 0

    def on_start(self) -> None:
        self._bars = 0
        self._held = 0

    def on_bar(self, b: Bar) -> None:
        self._bars += 1
        self._held = 0 if self.is_flat else self._held + 1
        if self.hold and self._held == self.hold:
            self.exit("held long enough")
        if self.is_flat and self._bars % self.every == 0:
            entry = round(b.close - self.dip, 2) if self.dip else None
            reference = entry if entry is not None else b.close
            self.enter_long(
                entry=entry,
                stop=round(reference - self.risk, 2),
                targets=[round(reference + self.reward, 2), round(reference + 2 * self.reward, 2)],
            )


def wave(i: int, symbol: str = "AAA") -> Bar:
    """Bar `i` of a deterministic swinging price (about 100 +- 3), wide enough to hit stops and targets."""
    close = round(100 + 3 * math.sin(i / 2.0), 2)
    previous = round(100 + 3 * math.sin((i - 1) / 2.0), 2)
    return bar(
        T0 + i * MINUTE,
        previous,
        max(previous, close) + 0.6,
        min(previous, close) - 0.6,
        close,
        symbol=symbol,
    )


# -- the desk -------------------------------------------------------------------------------------


@dataclass
class Desk:
    """One venue and one store that outlive any number of engines (restarts)."""

    venue: CrashingVenue
    store: Store
    instruments: dict[str, Instrument]
    strategies: Callable[[], Sequence[Strategy]]
    config: RecoveryConfig = field(default_factory=RecoveryConfig)
    flush_every: int = 1
    now: int = T0 - MINUTE
    engine: Engine | None = None
    clock: SimulatedClock | None = None
    reconciler: Reconciler | None = None
    reports: list[RecoveryReport] = field(default_factory=list)
    alerts: list[tuple[str, str]] = field(default_factory=list)
    crashes: int = 0
    _fed: int = 0

    def boot(self, *, recover: bool, periodic: bool = False) -> RecoveryReport | None:
        """A fresh engine on the venue and store; with `recover`, the start-up sequence a node runs:
        load -> Engine.restore -> Reconciler.recover -> (schedule reconciliation) -> start."""
        clock = SimulatedClock(self.now)
        engine = Engine(
            clock=clock,
            bus=MessageBus(),
            venue=self.venue,
            instruments=self.instruments,
            cash=CASH,
            config=EngineConfig(
                pipeline=PipelineConfig(risk=research_risk_config(Decimal(10)), mode=Mode.BACKTEST)
            ),
            event_log=EventLog(keep=True),
            before_send=self.store.persist_before_send,
        )
        self.exchange.set_price_source(engine.last_bar)
        self.store.attach(engine)
        for strategy in self.strategies():
            engine.add_strategy(strategy)
        self.engine, self.clock = engine, clock
        report = None
        if recover:
            stored = self.store.state()
            engine.restore(stored.fills)
            self.reconciler = Reconciler(
                self.venue, engine, self.config, on_alert=lambda kind, text: self.alerts.append((kind, text))
            )
            report = self.reconciler.recover(stored)
            self.reports.append(report)
            if periodic:
                engine.schedule_reconciliation(self.config.reconcile_interval_seconds, self.periodic)
        engine.start()
        return report

    def periodic(self) -> None:
        assert self.reconciler is not None
        self.reports.append(self.reconciler.reconcile())

    @property
    def exchange(self) -> SimulatedExchange:
        return self.venue.exchange

    def feed(self, *bars: Bar) -> bool:
        """Feed bars to the running node; False (and the node is gone) if it crashed on the way."""
        engine, clock = self.engine, self.clock
        assert engine is not None and clock is not None
        try:
            for b in bars:
                if b.ts_event != clock.now_ns():
                    engine.end_cycle()
                clock.advance_to(b.ts_event)
                self.now = b.ts_event
                self.venue.on_bar(b)
                engine.on_bar(b)
                self.venue.on_bar_close(b)
                self._fed += 1
                if self._fed % self.flush_every == 0:
                    self.store.flush()
            engine.end_cycle()
        except Crashed:
            self._gone()
            return False
        return True

    def boot_or_die(self, *, recover: bool) -> bool:
        """`boot`, for a node the venue's `crash_at` may kill while it starts (recovering): False,
        and the node gone, if it was."""
        try:
            self.boot(recover=recover)
        except Crashed:
            self._gone()
            return False
        return True

    def _gone(self) -> None:
        self.engine = self.clock = self.reconciler = None
        self.crashes += 1

    def feed_while_down(self, *bars: Bar) -> None:
        """The venue trades on while no node listens."""
        assert self.venue.down or self.engine is None
        for b in bars:
            self.now = b.ts_event
            self.venue.on_bar(b)
            self.venue.on_bar_close(b)

    def crash(self) -> None:
        """Kill the running node between two bars (its unflushed records are lost)."""
        self.venue._dead = True
        self._gone()

    # -- what tests compare ------------------------------------------------------------------

    def engine_positions(self) -> dict[str, Decimal]:
        assert self.engine is not None
        out: dict[str, Decimal] = {}
        for _, symbol, qty in self.engine.open_strategy_positions():
            out[symbol] = out.get(symbol, _ZERO) + qty
        return {s: q for s, q in out.items() if q}

    def venue_positions(self) -> dict[str, Decimal]:
        return {s: q for s, q in self.exchange.positions.items() if q}

    def engine_working(self) -> set[str]:
        assert self.engine is not None
        return {o.client_order_id for o in self.engine.orders.working_orders()}

    def venue_open(self) -> set[str]:
        return {s.client_order_id for s in self.exchange.open_orders()}


def make_desk(
    store: Store,
    *,
    strategies: Callable[[], Sequence[Strategy]] | None = None,
    venue_class: type[CrashingVenue] = CrashingVenue,
    capabilities: VenueCapabilities | None = None,
    symbols: Sequence[str] = ("AAA",),
    **kw: Any,
) -> Desk:
    instruments = {symbol: Instrument(symbol) for symbol in symbols}
    holder: list[Desk] = []
    exchange = SimulatedExchange(instruments, cash=CASH, clock_ns=lambda: holder[0].now)
    desk = Desk(
        venue=venue_class(exchange, capabilities),
        store=store,
        instruments=instruments,
        strategies=strategies or (lambda: [Bracket(symbol) for symbol in symbols]),
        **kw,
    )
    holder.append(desk)
    return desk
