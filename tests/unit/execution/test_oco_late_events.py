"""Late and failed events around OCO groups: closing exits that end unfilled (refused, expired,
cancelled by the venue) and fills that arrive after their order's cancel was confirmed."""

from __future__ import annotations

from decimal import Decimal

from kit import MINUTE, T0, a_plan_id, bar, flat_bar, rig
from quantdesk.bus import MessageBus
from quantdesk.clock import SimulatedClock
from quantdesk.engine import Engine, EngineConfig
from quantdesk.engine.pipeline import PipelineConfig, research_risk_config
from quantdesk.execution import EventLog
from quantdesk.execution.order_manager import MAX_EXIT_ATTEMPTS, BeforeSend
from quantdesk.model import (
    Fill,
    Instrument,
    Order,
    OrderAccepted,
    OrderCanceled,
    OrderEvent,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderStatus,
    OrderType,
    Side,
)
from quantdesk.risk.messages import Mode
from quantdesk.store.writer import StoreWriteFailed
from quantdesk.venues.base import VenueCapabilities, VenueListener
from quantdesk.venues.sim import SimulatedExchange

D = Decimal


class ScriptedVenue:
    """A venue that answers only when the test says so (an order stays submitted until then): it
    makes the races the simulated exchange cannot (a fill reported after the cancel's confirmation)."""

    def __init__(self, clock: SimulatedClock) -> None:
        self._clock = clock
        self._listener: VenueListener | None = None
        self.sent: list[Order] = []
        self.cancels: list[str] = []
        self._executions = 0

    @property
    def capabilities(self) -> VenueCapabilities:
        return VenueCapabilities(name="SCRIPTED")

    def connect(self, listener: VenueListener) -> None:
        self._listener = listener

    def submit_order(self, order: Order) -> None:
        self.sent.append(order)  # answered later: accepted, refused, filled...

    def accept(self, order: Order) -> None:
        self._emit(OrderAccepted(order.client_order_id, f"V-{order.client_order_id}", self._clock.now_ns()))

    def cancel_order(self, client_order_id: str) -> None:
        self.cancels.append(client_order_id)

    # -- what the test makes the venue say ------------------------------------------------------

    def confirm_cancel(self, order: Order) -> None:
        self._emit(OrderCanceled(order.client_order_id, self._clock.now_ns(), "canceled"))

    def confirm_cancels(self) -> None:
        """Confirm every cancel asked so far (of orders still working)."""
        by_id = {o.client_order_id: o for o in self.sent}
        for client_order_id in dict.fromkeys(self.cancels):
            if by_id[client_order_id].is_open:
                self.confirm_cancel(by_id[client_order_id])

    def reject(self, order: Order, reason: str = "refused") -> None:
        self._emit(OrderRejected(order.client_order_id, self._clock.now_ns(), reason))

    def expire(self, order: Order) -> None:
        self._emit(OrderExpired(order.client_order_id, self._clock.now_ns(), "DAY order: session ended"))

    def fill(self, order: Order, qty: str | None = None, price: str = "100") -> None:
        self._executions += 1
        now = self._clock.now_ns()
        fill = Fill(
            f"X{self._executions}",
            order.client_order_id,
            order.venue_order_id,
            order.symbol,
            order.side,
            D(qty) if qty is not None else order.qty,
            D(price),
            D(0),
            now,
            now,
        )
        self._emit(OrderFilled(fill))

    def last(self, tag: str) -> Order:
        return [o for o in self.sent if o.tag == tag][-1]

    def tags(self) -> list[str]:
        return [o.tag for o in self.sent]

    def _emit(self, event: OrderEvent) -> None:
        assert self._listener is not None
        self._listener.on_order_event(event)


def _engine(venue: ScriptedVenue, clock: SimulatedClock, before_send: BeforeSend | None = None) -> Engine:
    return Engine(
        clock=clock,
        bus=MessageBus(),
        venue=venue,
        instruments={"AAA": Instrument("AAA")},
        cash=D(1_000_000),
        config=EngineConfig(pipeline=PipelineConfig(risk=research_risk_config(D(1)), mode=Mode.BACKTEST)),
        event_log=EventLog(keep=True),
        before_send=before_send,
    )


def _desk(before_send: BeforeSend | None = None) -> tuple[Engine, ScriptedVenue]:
    clock = SimulatedClock(T0)
    venue = ScriptedVenue(clock)
    return _engine(venue, clock, before_send), venue


def _enter(
    engine: Engine, qty: str = "10", entry: str | None = None, targets: tuple[str, ...] = ("110",)
) -> Order:
    return engine.orders.enter(
        "s",
        "AAA",
        Side.BUY,
        D(qty),
        plan_id=a_plan_id(qty),
        entry=D(entry) if entry is not None else None,
        stop=D("95"),
        targets=tuple(D(t) for t in targets),
    )


def _alerts(engine: Engine) -> list[str]:
    return [kind for kind, _ in engine.orders.alerts]


def _filled_long(qty: str = "10") -> tuple[Engine, ScriptedVenue, Order]:
    engine, venue = _desk()
    entry = _enter(engine, qty)
    venue.fill(entry)
    assert engine.portfolio.qty("AAA") == D(qty)
    return engine, venue, entry


# -- gap 2: a closing exit of a closed group that ends unfilled ---------------------------------


def test_a_refused_exit_after_a_refused_stop_is_sent_again() -> None:
    engine, venue, _ = _filled_long()
    venue.reject(venue.last("STOP"), "stop orders are not accepted")
    first = venue.last("EXIT")
    venue.reject(first, "market closed for this symbol")
    second = venue.last("EXIT")
    assert second is not first and second.client_order_id != first.client_order_id
    assert second.side is Side.SELL and second.qty == 10 and second.order_type is OrderType.MARKET
    venue.fill(second)
    venue.confirm_cancels()
    assert engine.portfolio.qty("AAA") == 0
    assert _alerts(engine) == ["stop_rejected", "exit_refused"]
    assert engine.orders.working_orders() == []


def test_an_exit_that_never_fills_puts_the_stop_back_on_after_the_attempts_run_out() -> None:
    engine, venue, _ = _filled_long()
    venue.reject(venue.last("STOP"))
    for _ in range(MAX_EXIT_ATTEMPTS):
        venue.reject(venue.last("EXIT"))
    assert venue.tags() == ["ENTRY", "STOP", "TP1", *["EXIT"] * MAX_EXIT_ATTEMPTS, "STOP"]
    assert _alerts(engine) == ["stop_rejected", *["exit_refused"] * MAX_EXIT_ATTEMPTS, "exit_failed"]
    stop = venue.last("STOP")
    assert stop.is_open and stop.qty == 10 and stop.stop_price == D("95.00")
    (group,) = engine.orders.open_groups()
    assert group.stop_id == stop.client_order_id
    venue.fill(stop, price="95")  # the stop put back does its job
    venue.confirm_cancels()
    assert engine.portfolio.qty("AAA") == 0
    assert engine.orders.open_groups() == [] and engine.orders.working_orders() == []


def test_refusals_of_everything_end_after_a_bounded_number_of_orders() -> None:
    engine, venue, _ = _filled_long()
    venue.reject(venue.last("STOP"))
    for _ in range(MAX_EXIT_ATTEMPTS):
        venue.reject(venue.last("EXIT"))
    venue.reject(venue.last("STOP"))  # the stop put back is refused too
    venue.reject(venue.last("EXIT"))
    venue.confirm_cancels()
    assert venue.tags().count("EXIT") == MAX_EXIT_ATTEMPTS + 1 and venue.tags().count("STOP") == 2
    assert engine.orders.working_orders() == []
    kind, message = engine.orders.alerts[-1]
    assert kind == "exit_failed" and "unprotected" in message
    assert engine.portfolio.qty("AAA") == 10  # the operator has been told: nothing more is sent


def test_stops_and_exits_refused_on_the_spot_end_after_a_bounded_number_of_orders() -> None:
    """Refused before the venue (a store that refuses their outbox rows): each refusal comes back
    inside the call that sent the order. The stop put back must be known to its group before it
    is sent, or its refusal is not seen as the stop's and exits and stops follow one another
    until the plan's client ids run out."""
    refused: list[str] = []

    def outbox(order: Order, *, strategy: str, plan_id: str) -> None:
        if order.tag in ("STOP", "EXIT") and refusing:
            refused.append(order.tag)
            raise StoreWriteFailed(f"order {order.client_order_id} not sent: the store is down")

    refusing = False
    engine, venue = _desk(outbox)
    entry = _enter(engine)
    refusing = True
    venue.fill(entry)
    assert refused == ["STOP", *["EXIT"] * MAX_EXIT_ATTEMPTS, "STOP", "EXIT"]
    assert venue.tags() == ["ENTRY"]  # a stop refused on the spot closed the plan: no target follows
    kind, message = engine.orders.alerts[-1]
    assert kind == "exit_failed" and "unprotected" in message
    assert engine.portfolio.qty("AAA") == 10


def test_an_exit_the_venue_cancels_or_expires_is_sent_again_but_not_one_we_cancelled() -> None:
    engine, venue, _ = _filled_long()
    venue.reject(venue.last("STOP"))
    venue.confirm_cancel(venue.last("EXIT"))  # cancelled by the venue: nobody asked
    venue.expire(venue.last("EXIT"))
    assert venue.tags().count("EXIT") == 3
    third = venue.last("EXIT")
    engine.orders.cancel(third.client_order_id)
    venue.confirm_cancel(third)
    assert venue.tags().count("EXIT") == 3  # our own cancel is what we asked for
    assert _alerts(engine) == ["stop_rejected", "exit_refused", "exit_refused"]


def test_a_partly_filled_exit_that_is_refused_closes_only_what_is_left() -> None:
    engine, venue, _ = _filled_long()
    venue.reject(venue.last("STOP"))
    first = venue.last("EXIT")
    venue.fill(first, "4")
    venue.expire(first)
    assert venue.last("EXIT").qty == 6
    venue.fill(venue.last("EXIT"))
    assert engine.portfolio.qty("AAA") == 0


def test_a_refused_strategy_exit_hands_the_position_back_to_its_group() -> None:
    engine, venue, _ = _filled_long()
    order = engine.orders.exit("s", "AAA", engine.position_qty("s", "AAA"), "strategy exit")
    assert order is not None
    venue.reject(order)
    retry = venue.last("EXIT")
    assert retry is not order and retry.qty == 10
    group = engine.orders.group_of(retry.client_order_id)
    assert group is not None and retry.client_order_id in group.exit_ids
    venue.fill(retry)
    assert engine.portfolio.qty("AAA") == 0 and engine.position_qty("s", "AAA") == 0
    assert _alerts(engine) == ["exit_refused"]


def test_a_flatten_whose_exits_are_refused_on_the_spot_leaves_the_stop_on() -> None:
    class RefusesExits(SimulatedExchange):
        def _refusal(self, order: Order, now: int) -> str:
            return "no market orders now" if order.tag == "EXIT" else super()._refusal(order, now)

    r = rig()
    venue = RefusesExits(r.engine.instruments, cash=D(1_000_000), clock_ns=r.clock.now_ns)
    venue.set_price_source(r.engine.last_bar)
    r.engine.orders._venue = venue
    venue.connect(r.engine.orders)
    r.venue = venue
    r.feed(flat_bar(0, 100.0))
    _enter(r.engine)
    r.feed(flat_bar(1, 100.0))
    r.engine.flatten("kill switch")
    assert "exit_failed" in _alerts(r.engine)
    resting = {r.engine.orders.orders[c].tag: r.engine.orders.orders[c] for c in venue.open_order_ids()}
    assert set(resting) == {"STOP"} and resting["STOP"].qty == 10
    assert r.engine.portfolio.qty("AAA") == 10
    r.feed(bar(T0 + 2 * MINUTE, 99, 99, 90, 91))
    assert r.engine.portfolio.qty("AAA") == 0 and venue.open_order_ids() == []


# -- gap 3: a fill reported after its order's cancel was confirmed --------------------------------


def test_an_entry_filled_after_its_cancel_was_confirmed_is_closed_at_market() -> None:
    engine, venue = _desk()
    entry = _enter(engine, "5", entry="90")
    engine.orders.cancel(entry.client_order_id)
    venue.confirm_cancel(entry)
    assert entry.status is OrderStatus.CANCELED and engine.orders.open_groups() == []
    venue.fill(entry, price="90")  # it filled before the cancel took effect
    assert entry.status is OrderStatus.CANCELED  # the state machine is not bent: the fill is booked
    assert engine.portfolio.qty("AAA") == 5 and engine.position_qty("s", "AAA") == 5
    assert venue.tags() == ["ENTRY", "EXIT"]  # no bracket for a closed group: closed at market
    exit_order = venue.last("EXIT")
    assert exit_order.side is Side.SELL and exit_order.qty == 5
    assert _alerts(engine) == ["late_fill"]
    venue.fill(exit_order, price="90")
    assert engine.portfolio.qty("AAA") == 0 and engine.orders.working_orders() == []


def test_a_late_entry_fill_of_a_group_still_open_is_protected_normally() -> None:
    engine, venue = _desk()
    entry = _enter(engine, "10", entry="90")
    venue.fill(entry, "4", "90")
    assert (venue.last("STOP").qty, venue.last("TP1").qty) == (4, 4)
    engine.orders.cancel(entry.client_order_id)
    venue.confirm_cancel(entry)
    venue.fill(entry, "6", "90")
    assert engine.portfolio.qty("AAA") == 10
    stop, target = venue.last("STOP"), venue.last("TP1")
    assert (stop.qty, target.qty) == (10, 10) and stop.is_open and target.is_open
    assert "EXIT" not in venue.tags() and _alerts(engine) == []


def test_a_late_stop_fill_after_the_target_closed_the_group_is_bought_back() -> None:
    engine, venue, _ = _filled_long()
    stop = venue.last("STOP")
    venue.fill(venue.last("TP1"), price="110")
    assert stop.client_order_id in venue.cancels
    venue.confirm_cancel(stop)
    venue.fill(stop, price="95")  # the stop had filled before its cancel took effect
    assert engine.portfolio.qty("AAA") == -10
    buyback = venue.last("EXIT")
    assert buyback.side is Side.BUY and buyback.qty == 10 and buyback.reason == "overfill correction"
    assert _alerts(engine) == ["late_fill", "overfill"]
    venue.fill(buyback, price="95")
    assert engine.portfolio.qty("AAA") == 0


def test_a_late_entry_fill_after_a_strategy_exit_is_closed_once() -> None:
    engine, venue = _desk()
    entry = _enter(engine, "10", entry="90")
    venue.fill(entry, "4", "90")
    strategy_exit = engine.orders.exit("s", "AAA", engine.position_qty("s", "AAA"), "exit")
    assert strategy_exit is not None and strategy_exit.qty == 4
    for order in (entry, venue.last("STOP"), venue.last("TP1")):
        venue.confirm_cancel(order)
    venue.fill(entry, "6", "90")
    group_exit = venue.last("EXIT")
    assert group_exit is not strategy_exit and group_exit.qty == 6
    venue.fill(strategy_exit, price="90")
    venue.fill(group_exit, price="90")
    assert engine.portfolio.qty("AAA") == 0 and engine.orders.working_orders() == []
    assert _alerts(engine) == ["late_fill"]
