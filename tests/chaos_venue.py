"""Test double: a venue that delays, reorders, duplicates, drops and refuses like a bad network and a fussy
broker, wrapped around the simulated exchange; and a rig that runs an engine on it.

The wrapper sits between the `OrderManager` and a real `SimulatedExchange`, so
matching, positions and cash stay the exchange's own; only the road between
them is made unreliable:

- `hold(predicate)` keeps back the order events that match (acknowledgements,
  fills, cancels, rejections) until `release`/`release_all`, in order or
  shuffled; `hold_cancels` keeps back our cancel *requests*, so the exchange
  goes on working an order we already asked to cancel (the OCO race);
- `duplicate_all` delivers every event twice, and `replay(i)` delivers an old
  event again, long after the fact;
- `disconnect()` makes `submit_order`/`cancel_order`/lookups raise
  `RetryableError`; the request never reaches the exchange unless
  `reach_venue=True`, in which case it does and only the answer is lost (a
  timeout). `reconnect()` ends it. The event stream is a separate connection:
  to lose it too, `hold` its events as well;
- `refuse(predicate)` answers chosen orders (every STOP, say) with an
  `OrderRejected` instead of passing them on.

Every client id handed to `submit_order` is recorded in `submitted`, whatever
happened to it, so a test can prove that no id was ever sent twice.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from quantdesk.bus import MessageBus
from quantdesk.clock import SimulatedClock
from quantdesk.engine import Engine, EngineConfig
from quantdesk.engine.pipeline import PipelineConfig, research_risk_config
from quantdesk.errors import RetryableError
from quantdesk.execution import EventLog
from quantdesk.model import (
    Bar,
    Fill,
    Instrument,
    Order,
    OrderAccepted,
    OrderCanceled,
    OrderEvent,
    OrderFilled,
    OrderRejected,
    OrderStatus,
    Side,
)
from quantdesk.risk.messages import Mode
from quantdesk.venues.base import VenueCapabilities, VenueListener, VenueOrderState
from quantdesk.venues.sim import SimulatedExchange, SimVenueConfig

EventFilter = Callable[[OrderEvent], bool]
OrderFilter = Callable[[Order], bool]

_ZERO = Decimal(0)
MINUTE = 60_000_000_000
T0 = 1_704_205_800_000_000_000  # 2024-01-02 14:30 UTC, the NYSE open (as in kit.py)


def every_event(event: OrderEvent) -> bool:
    return True


def fills(event: OrderEvent) -> bool:
    return isinstance(event, OrderFilled)


def accepts(event: OrderEvent) -> bool:
    return isinstance(event, OrderAccepted)


def cancels(event: OrderEvent) -> bool:
    return isinstance(event, OrderCanceled)


def rejects(event: OrderEvent) -> bool:
    return isinstance(event, OrderRejected)


class ChaosVenue:
    """A `Venue` (and order-book venue) that forwards to `inner` through an unreliable road."""

    def __init__(self, inner: SimulatedExchange, clock_ns: Callable[[], int]) -> None:
        self.inner = inner
        self._now = clock_ns
        self.submitted: list[str] = []
        self.cancel_requests: list[str] = []
        self.delivered: list[OrderEvent] = []
        self.held: list[OrderEvent] = []
        self.held_cancels: list[str] = []
        self.dropped: list[OrderEvent] = []
        self.orders: dict[str, Order] = {}
        self.down = False
        self.reach_venue = False
        self.hold_cancels = False
        self.duplicate_all = False
        self._hold: EventFilter | None = None
        self._refuse: OrderFilter | None = None
        self._refuse_reason = ""
        self._refused: dict[str, VenueOrderState] = {}
        self._dropping = False
        self._listener: VenueListener | None = None
        inner.connect(self)

    # -- the Venue interface --------------------------------------------------------------------

    @property
    def capabilities(self) -> VenueCapabilities:
        return self.inner.capabilities

    def connect(self, listener: VenueListener) -> None:
        self._listener = listener

    def submit_order(self, order: Order) -> None:
        self.submitted.append(order.client_order_id)
        self.orders.setdefault(order.client_order_id, order)
        if self.down:
            if self.reach_venue:
                self._call_dropping_answers(lambda: self._submit(order))
            raise RetryableError(f"connection lost while submitting {order.client_order_id}")
        self._submit(order)

    def cancel_order(self, client_order_id: str) -> None:
        self.cancel_requests.append(client_order_id)
        if self.down:
            if self.reach_venue:
                self._call_dropping_answers(lambda: self.inner.cancel_order(client_order_id))
            raise RetryableError(f"connection lost while canceling {client_order_id}")
        if self.hold_cancels:
            self.held_cancels.append(client_order_id)
            return
        self.inner.cancel_order(client_order_id)

    # -- lookups a broker answers -----------------------------------------------------------------

    def query_order(self, client_order_id: str) -> VenueOrderState | None:
        if self.down:
            raise RetryableError(f"connection lost while looking up {client_order_id}")
        refused = self._refused.get(client_order_id)
        if refused is not None:
            return refused
        return self.inner.query_order(client_order_id)

    def open_orders(self) -> list[VenueOrderState]:
        if self.down:
            raise RetryableError("connection lost while listing open orders")
        return self.inner.open_orders()

    def open_order_ids(self) -> list[str]:
        """What the exchange is working right now (the truth, whatever the road delivered)."""
        return self.inner.open_order_ids()

    @property
    def positions(self) -> dict[str, Decimal]:
        return self.inner.positions

    # -- market data goes straight to the exchange --------------------------------------------------

    def on_bar(self, bar: Bar) -> None:
        self.inner.on_bar(bar)

    def on_bar_close(self, bar: Bar) -> None:
        self.inner.on_bar_close(bar)

    def set_price_source(self, last_bars: Mapping[str, Bar]) -> None:
        self.inner.set_price_source(last_bars)

    # -- chaos controls ---------------------------------------------------------------------------

    def hold(self, predicate: EventFilter = every_event) -> None:
        """Keep back every event matching `predicate` from now on (until `stop_holding`)."""
        self._hold = predicate

    def stop_holding(self) -> None:
        self._hold = None

    def refuse(self, predicate: OrderFilter, reason: str = "refused by the venue") -> None:
        """Answer every order matching `predicate` with an `OrderRejected` (never passed on)."""
        self._refuse = predicate
        self._refuse_reason = reason

    def stop_refusing(self) -> None:
        self._refuse = None

    def disconnect(self, *, reach_venue: bool = False) -> None:
        """Drop the connection: requests raise `RetryableError`. With `reach_venue`, they still
        reach the exchange and only the answers are lost."""
        self.down = True
        self.reach_venue = reach_venue

    def reconnect(self) -> None:
        self.down = False
        self.reach_venue = False

    @property
    def quiet(self) -> bool:
        """Nothing is held back on the road: our view and the exchange's may be compared."""
        return not self.held and not self.held_cancels

    def release(
        self, count: int | None = None, *, rng: random.Random | None = None, newest_first: bool = False
    ) -> int:
        """Deliver up to `count` held events (all of them by default), oldest first, newest first,
        or shuffled if `rng` is given.

        Events the deliveries cause are held again if holding is still on. Returns how many
        were delivered.
        """
        batch = list(reversed(self.held)) if newest_first else list(self.held)
        if rng is not None:
            rng.shuffle(batch)
        if count is not None:
            batch = batch[:count]
        taken = {id(event) for event in batch}
        self.held = [event for event in self.held if id(event) not in taken]
        for event in batch:
            self._deliver(event)
        return len(batch)

    def send_held_cancels(self) -> int:
        requests, self.held_cancels = self.held_cancels, []
        for client_order_id in requests:
            self.inner.cancel_order(client_order_id)
        return len(requests)

    def release_all(self, *, rng: random.Random | None = None) -> None:
        """Stop all holding and deliver everything held, until the road is quiet."""
        self._hold = None
        self.hold_cancels = False
        while not self.quiet:
            self.send_held_cancels()
            self.release(rng=rng)

    def replay(self, index: int) -> OrderEvent | None:
        """Deliver again the `index`-th event delivered so far (modulo their number): a duplicate,
        out of order."""
        if not self.delivered:
            return None
        event = self.delivered[index % len(self.delivered)]
        self._deliver(event)
        return event

    # -- internals --------------------------------------------------------------------------------

    def _submit(self, order: Order) -> None:
        if self._refuse is not None and self._refuse(order):
            now = self._now()
            self._refused[order.client_order_id] = VenueOrderState(
                order.client_order_id,
                "",
                order.symbol,
                order.side,
                order.qty,
                _ZERO,
                OrderStatus.REJECTED,
                now,
            )
            self.on_order_event(OrderRejected(order.client_order_id, now, self._refuse_reason))
            return
        self.inner.submit_order(order)

    def _call_dropping_answers(self, call: Callable[[], None]) -> None:
        self._dropping = True
        try:
            call()
        finally:
            self._dropping = False

    def on_order_event(self, event: OrderEvent) -> None:
        """From the exchange: drop, hold or deliver."""
        if self._dropping:
            self.dropped.append(event)
        elif self._hold is not None and self._hold(event):
            self.held.append(event)
        else:
            self._deliver(event)

    def fills(self) -> list[Fill]:
        """Every distinct fill delivered so far (duplicates counted once, by execution id)."""
        unique: dict[str, Fill] = {}
        for event in self.delivered:
            if isinstance(event, OrderFilled):
                unique.setdefault(event.fill.execution_id, event.fill)
        return list(unique.values())

    def _deliver(self, event: OrderEvent) -> None:
        assert self._listener is not None
        self.delivered.append(event)
        self._listener.on_order_event(event)
        if self.duplicate_all:
            self._listener.on_order_event(event)


@dataclass
class ChaosRig:
    """An engine whose venue is a `ChaosVenue` around a simulated exchange, fed bar by bar."""

    engine: Engine
    venue: ChaosVenue
    clock: SimulatedClock
    log: EventLog
    bars: int = 0

    def feed(self, *bars: Bar) -> None:
        for b in bars:
            self.engine.end_cycle()
            self.clock.advance_to(b.ts_event)
            self.venue.on_bar(b)
            self.engine.on_bar(b)
            self.venue.on_bar_close(b)

    def bar(
        self, o: float, h: float, low: float, c: float, *, volume: float = 1_000.0, symbol: str = "AAA"
    ) -> Bar:
        """The next minute's bar (bars are numbered so that time always moves on)."""
        self.bars += 1
        ts = T0 + self.bars * MINUTE
        return Bar(symbol, ts, o, h, low, c, volume, ts)

    def flat(self, price: float, *, volume: float = 1_000.0, symbol: str = "AAA") -> Bar:
        return self.bar(price, price, price, price, volume=volume, symbol=symbol)

    def working(self, tag: str | None = None) -> list[Order]:
        orders = self.engine.orders.working_orders()
        return [o for o in orders if tag is None or o.tag == tag]

    def tagged(self, tag: str) -> list[Order]:
        """Every order the engine ever made with `tag` (ENTRY, STOP, TP1, TP2, EXIT), oldest first."""
        return [o for o in self.engine.orders.orders.values() if o.tag == tag]


def chaos_rig(
    instruments: list[Instrument] | None = None,
    *,
    cash: Decimal = Decimal(1_000_000),
    config: SimVenueConfig | None = None,
    default_qty: Decimal = Decimal(1),
) -> ChaosRig:
    """Like `kit.rig`, with the exchange behind a `ChaosVenue` (reachable as `rig.venue.inner`)."""
    instruments = instruments or [Instrument("AAA")]
    by_symbol = {i.symbol: i for i in instruments}
    clock = SimulatedClock(T0 - MINUTE)
    log = EventLog(keep=True)
    exchange = SimulatedExchange(by_symbol, cash=cash, config=config, clock_ns=clock.now_ns)
    venue = ChaosVenue(exchange, clock.now_ns)
    engine = Engine(
        clock=clock,
        bus=MessageBus(),
        venue=venue,
        instruments=by_symbol,
        cash=cash,
        config=EngineConfig(
            pipeline=PipelineConfig(risk=research_risk_config(default_qty), mode=Mode.BACKTEST)
        ),
        event_log=log,
    )
    venue.set_price_source(engine.last_bar)
    return ChaosRig(engine, venue, clock, log)


def signed(side: Side, qty: Decimal) -> Decimal:
    return qty if side is Side.BUY else -qty
