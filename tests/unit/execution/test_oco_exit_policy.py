"""ExitPolicy.STOP_RESTING: only the stop rests, targets are held by the order manager and released
when market data touches them, on a venue that refuses exits exceeding the position (as Alpaca does)."""

from __future__ import annotations

from decimal import Decimal

from chaos_venue import ChaosVenue
from kit import MINUTE, T0, bar, flat_bar
from quantdesk.bus import MessageBus
from quantdesk.clock import SimulatedClock
from quantdesk.engine import Engine, EngineConfig
from quantdesk.engine.pipeline import PipelineConfig, research_risk_config
from quantdesk.execution import EventLog, ExitPolicy
from quantdesk.execution.client_ids import plan_client_id
from quantdesk.model import Instrument, Order, OrderStatus, OrderType, Quote, Side, Tick
from quantdesk.risk.messages import Mode
from quantdesk.venues.base import Venue
from quantdesk.venues.sim import SimulatedExchange, SimVenueConfig

D = Decimal
_PLANS = iter(range(1_000_000))


class AlpacaLikeExchange(SimulatedExchange):
    """The simulated exchange, refusing (as Alpaca does) an order that would make the exits
    resting against a position exceed it. Every such refusal is kept for the test to assert on."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.exceeded: list[str] = []
        self.refused_tags: set[str] = set()

    def _refusal(self, order: Order, now: int) -> str:
        if order.tag in self.refused_tags:
            return f"{order.tag} refused"
        position = self.positions.get(order.symbol, D(0))
        if position != 0 and (order.side is Side.SELL) == (position > 0):
            resting = sum(
                (
                    s.qty - s.filled_qty
                    for s in self.open_orders()
                    if s.symbol == order.symbol and s.side is order.side
                ),
                D(0),
            )
            if resting + order.qty > abs(position):
                self.exceeded.append(order.client_order_id)
                return "insufficient qty available for order"
        return super()._refusal(order, now)


class Desk:
    """An engine under STOP_RESTING on an `AlpacaLikeExchange` (behind a `ChaosVenue` when asked)."""

    def __init__(self, *, chaos: bool = False, config: SimVenueConfig | None = None) -> None:
        self.instrument = Instrument("AAA")
        instruments = {"AAA": self.instrument}
        self.clock = SimulatedClock(T0 - MINUTE)
        self.exchange = AlpacaLikeExchange(
            instruments, cash=D(1_000_000), config=config, clock_ns=self.clock.now_ns
        )
        self.chaos = ChaosVenue(self.exchange, self.clock.now_ns) if chaos else None
        venue: Venue = self.chaos if self.chaos is not None else self.exchange  # type: ignore[assignment]
        self.log = EventLog(keep=True)
        self.engine = Engine(
            clock=self.clock,
            bus=MessageBus(),
            venue=venue,
            instruments=instruments,
            cash=D(1_000_000),
            config=EngineConfig(pipeline=PipelineConfig(risk=research_risk_config(D(1)), mode=Mode.BACKTEST)),
            event_log=self.log,
        )
        self.orders = self.engine.orders
        self.orders.exit_policy = ExitPolicy.STOP_RESTING
        self.exchange.set_price_source(self.engine.last_bar)

    def enter(
        self,
        side: Side,
        qty: str,
        stop: str,
        targets: tuple[str, ...],
        *,
        break_even: bool = False,
    ) -> Order:
        order = self.orders.enter(
            "s",
            "AAA",
            side,
            D(qty),
            plan_id=plan_client_id(
                strategy="s",
                symbol="AAA",
                side=side.value,
                entry=None,
                stop=None,
                targets=(),
                qty=D(qty),
                signal_ts=next(_PLANS),
                config_sha="",
            ),
            stop=D(stop),
            targets=tuple(D(t) for t in targets),
        )
        group = self.orders.group_of(order.client_order_id)
        assert group is not None
        group.break_even = break_even
        return order

    def feed(self, *bars: object) -> None:
        for b in bars:
            self.clock.advance_to(b.ts_event)  # type: ignore[attr-defined]
            self.exchange.on_bar(b)  # type: ignore[arg-type]
            self.engine.on_bar(b)  # type: ignore[arg-type]
            self.exchange.on_bar_close(b)  # type: ignore[arg-type]
            self.check()

    def check(self) -> None:
        """The Alpaca constraint and the stop: after every step, the exits resting at the venue
        never exceed the position, and (once the road is quiet) cover all of it."""
        assert self.exchange.exceeded == []
        position = self.exchange.positions.get("AAA", D(0))
        closing = Side.SELL if position > 0 else Side.BUY
        resting = [s for s in self.exchange.open_orders() if s.side is closing and position != 0]
        assert sum((s.qty - s.filled_qty for s in resting), D(0)) <= abs(position)

    def at_venue(self, tag: str) -> list[Order]:
        return [o for o in self.orders.orders.values() if o.tag == tag]

    def resting(self) -> dict[str, Decimal]:
        """What rests at the venue, by tag."""
        by_tag: dict[str, Decimal] = {}
        for state in self.exchange.open_orders():
            tag = self.orders.orders[state.client_order_id].tag
            by_tag[tag] = by_tag.get(tag, D(0)) + state.qty - state.filled_qty
        return by_tag

    def alerts(self) -> list[str]:
        return [kind for kind, _ in self.orders.alerts]


def _bar(i: int, o: float, h: float, low: float, c: float) -> object:
    return bar(T0 + i * MINUTE, o, h, low, c)


def test_only_the_stop_rests_after_the_entry_fills() -> None:
    desk = Desk()
    desk.feed(flat_bar(0, 100.0))
    desk.enter(Side.BUY, "10", "95", ("110",))
    desk.feed(flat_bar(1, 100.0))
    assert desk.resting() == {"STOP": D(10)}
    assert desk.at_venue("TP1") == []
    assert "AAA" in desk.orders.held_targets


def test_a_touched_target_is_released_as_market_after_the_stop_is_cancelled() -> None:
    desk = Desk()
    desk.feed(flat_bar(0, 100.0))
    desk.enter(Side.BUY, "10", "95", ("110",))
    desk.feed(flat_bar(1, 100.0), _bar(2, 100, 111, 99, 108))
    (stop,) = desk.at_venue("STOP")
    (target,) = desk.at_venue("TP1")
    assert stop.status is OrderStatus.CANCELED
    assert target.order_type is OrderType.MARKET and target.qty == D(10) and target.side is Side.SELL
    assert stop.ts_last <= target.ts_created  # the stop went first
    desk.feed(flat_bar(3, 109.0))
    assert target.status is OrderStatus.FILLED
    assert desk.engine.portfolio.qty("AAA") == 0
    assert desk.orders.working_orders() == [] and desk.exchange.open_order_ids() == []
    assert desk.orders.open_groups() == [] and not desk.orders.held_targets
    assert desk.engine.portfolio.realized_pnl == D(90)  # 10 x (109 - 100)


def test_tp1_release_shrinks_the_stop_then_tp1_fill_moves_it_to_break_even() -> None:
    desk = Desk()
    desk.feed(flat_bar(0, 100.0))
    desk.enter(Side.BUY, "10", "95", ("105", "110"), break_even=True)
    desk.feed(flat_bar(1, 100.0))
    assert desk.resting() == {"STOP": D(10)}
    desk.feed(_bar(2, 100, 106, 100, 104))  # TP1 touched
    assert desk.resting() == {"STOP": D(5), "TP1": D(5)}
    desk.feed(flat_bar(3, 105.0))  # TP1 fills at the open
    assert desk.engine.portfolio.qty("AAA") == 5
    stop = desk.orders.orders[desk.at_venue("STOP")[-1].client_order_id]
    assert stop.is_open and stop.qty == D(5) and stop.stop_price == D("100.00")  # break-even
    assert [s.stop_price for s in desk.at_venue("STOP")] == [D("95.00"), D("95.00"), D("100.00")]
    desk.feed(_bar(4, 105, 111, 104, 110))  # TP2 touched
    assert desk.resting() == {"TP2": D(5)}
    desk.feed(flat_bar(5, 110.0))
    assert desk.engine.portfolio.qty("AAA") == 0
    assert desk.exchange.open_order_ids() == [] and desk.orders.open_groups() == []
    assert desk.engine.portfolio.realized_pnl == D(5) * 5 + D(10) * 5
    assert desk.alerts() == []


def test_the_stop_fills_while_targets_are_held_and_no_target_is_ever_sent() -> None:
    desk = Desk()
    desk.feed(flat_bar(0, 100.0))
    desk.enter(Side.BUY, "10", "95", ("105", "110"))
    desk.feed(flat_bar(1, 100.0), _bar(2, 99, 100, 90, 92))
    assert desk.engine.portfolio.qty("AAA") == 0
    assert desk.at_venue("TP1") == [] and desk.at_venue("TP2") == []
    assert not desk.orders.held_targets and desk.orders.open_groups() == []
    desk.feed(_bar(3, 100, 120, 100, 110))  # a touch after the group closed releases nothing
    assert desk.at_venue("TP1") == []


def test_a_short_target_is_released_when_the_low_reaches_it() -> None:
    desk = Desk()
    desk.feed(flat_bar(0, 100.0))
    desk.enter(Side.SELL, "10", "105", ("90",))
    desk.feed(flat_bar(1, 100.0), _bar(2, 100, 100, 91, 92))
    assert desk.at_venue("TP1") == []  # 91 did not reach 90
    desk.feed(_bar(3, 92, 93, 89, 90))
    assert desk.resting() == {"TP1": D(10)}
    assert desk.at_venue("TP1")[0].side is Side.BUY
    desk.feed(flat_bar(4, 90.0))
    assert desk.engine.portfolio.qty("AAA") == 0
    assert desk.engine.portfolio.realized_pnl == D(100)


def test_a_refused_target_puts_the_whole_stop_back_and_is_not_released_again() -> None:
    desk = Desk()
    desk.exchange.refused_tags.add("TP1")
    desk.feed(flat_bar(0, 100.0))
    desk.enter(Side.BUY, "10", "95", ("110",))
    desk.feed(flat_bar(1, 100.0), _bar(2, 100, 111, 99, 108))
    (target,) = desk.at_venue("TP1")
    assert target.status is OrderStatus.REJECTED
    assert desk.resting() == {"STOP": D(10)}
    assert "target_rejected" in desk.alerts()
    desk.feed(_bar(3, 108, 112, 107, 111))
    assert len(desk.at_venue("TP1")) == 1  # held no more: not refused again on every bar
    assert desk.resting() == {"STOP": D(10)}


def test_a_released_target_cancelled_by_the_venue_puts_the_stop_back_and_is_held_again() -> None:
    desk = Desk()
    desk.feed(flat_bar(0, 100.0))
    desk.enter(Side.BUY, "10", "95", ("110",))
    desk.feed(flat_bar(1, 100.0), _bar(4, 100, 111, 99, 108))
    (target,) = desk.at_venue("TP1")
    assert desk.resting() == {"TP1": D(10)}
    # The venue cancels it (say, a market order refused at the auction): nobody asked.
    desk.exchange.cancel_order(target.client_order_id)
    assert target.status is OrderStatus.CANCELED
    desk.check()
    assert desk.resting() == {"STOP": D(10)}
    assert "AAA" in desk.orders.held_targets
    desk.feed(_bar(5, 108, 112, 107, 111))
    assert desk.resting() == {"TP1": D(10)}
    desk.feed(flat_bar(7, 110.0))
    assert desk.engine.portfolio.qty("AAA") == 0


def test_partial_entry_fills_grow_the_stop_and_release_only_what_is_filled() -> None:
    desk = Desk(config=SimVenueConfig(max_volume_share=0.004))  # 4 of a 1,000-volume bar
    desk.feed(flat_bar(0, 100.0))
    desk.enter(Side.BUY, "10", "95", ("110",))
    desk.feed(flat_bar(1, 100.0))
    assert desk.resting() == {"ENTRY": D(6), "STOP": D(4)}
    desk.feed(flat_bar(2, 100.0))
    assert desk.resting() == {"ENTRY": D(2), "STOP": D(8)}
    desk.feed(_bar(3, 100, 111, 100, 108))  # entry fills 2 more; the target is touched
    assert desk.engine.portfolio.qty("AAA") == 10
    assert desk.resting() == {"TP1": D(10)}


def test_the_new_stop_waits_for_the_old_ones_cancel_to_be_confirmed() -> None:
    desk = Desk(chaos=True)
    assert desk.chaos is not None
    desk.feed(flat_bar(0, 100.0))
    desk.enter(Side.BUY, "10", "95", ("105", "110"))
    desk.feed(flat_bar(1, 100.0))
    desk.chaos.hold_cancels = True
    desk.feed(_bar(2, 100, 106, 100, 104))
    (stop,) = desk.at_venue("STOP")
    assert stop.status is OrderStatus.PENDING_CANCEL
    assert desk.at_venue("TP1") == []  # nothing new while the old stop still rests
    assert desk.resting() == {"STOP": D(10)}
    desk.chaos.hold_cancels = False
    desk.chaos.send_held_cancels()
    desk.check()
    assert desk.resting() == {"STOP": D(5), "TP1": D(5)}
    desk.feed(flat_bar(3, 105.0))
    assert desk.engine.portfolio.qty("AAA") == 5
    assert desk.resting() == {"STOP": D(5)}


def test_trades_and_quotes_release_targets_too() -> None:
    desk = Desk()
    desk.feed(flat_bar(0, 100.0))
    desk.enter(Side.BUY, "10", "95", ("105", "110"))
    desk.feed(flat_bar(1, 100.0))
    desk.engine.on_tick(Tick("AAA", T0 + 2 * MINUTE, 104.99, 100.0, T0 + 2 * MINUTE))
    assert desk.at_venue("TP1") == []
    desk.engine.on_tick(Tick("AAA", T0 + 2 * MINUTE, 105.0, 100.0, T0 + 2 * MINUTE))
    assert desk.resting() == {"STOP": D(5), "TP1": D(5)}
    desk.engine.on_quote(Quote("AAA", T0 + 2 * MINUTE, 109.99, 110.5, 100.0, 100.0, T0 + 2 * MINUTE))
    assert "TP2" not in desk.resting()  # the bid (what a sale gets) is below 110
    desk.engine.on_quote(Quote("AAA", T0 + 2 * MINUTE, 110.0, 110.1, 100.0, 100.0, T0 + 2 * MINUTE))
    assert desk.resting() == {"TP1": D(5), "TP2": D(5)}
    desk.check()


def test_both_resting_is_unchanged_and_holds_nothing() -> None:
    desk = Desk()
    desk.orders.exit_policy = ExitPolicy.BOTH_RESTING
    desk.exchange.exceeded.clear()
    desk.feed(flat_bar(0, 100.0))
    desk.enter(Side.BUY, "10", "95", ("110",))
    desk.clock.advance_to(T0 + MINUTE)
    for step in (desk.exchange.on_bar, desk.engine.on_bar, desk.exchange.on_bar_close):
        step(flat_bar(1, 100.0))
    assert not desk.orders.held_targets
    # The stop rests; the target is refused by the Alpaca-like venue: the reason for STOP_RESTING.
    assert desk.exchange.exceeded == [desk.at_venue("TP1")[0].client_order_id]


def test_the_backtest_feed_sends_bars_through_the_engine_so_held_targets_see_them() -> None:
    desk = Desk()
    # The runner's shortcuts (a strategy called directly) would skip `Engine.on_bar`.
    assert desk.engine.bar_dispatcher("AAA") == desk.engine.on_bar
    assert desk.engine.bar_handler("AAA") is None
