"""Tests of the simulated exchange: acceptance, rejection, matching on bars, ticks and quotes, fills."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from quantdesk.model import (
    Bar,
    Fill,
    Instrument,
    Order,
    OrderAccepted,
    OrderCanceled,
    OrderEvent,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderTriggered,
    OrderType,
    Quote,
    Side,
    Tick,
    TimeInForce,
)
from quantdesk.venues.sim.config import FillAt, LimitFill, SimVenueConfig
from quantdesk.venues.sim.exchange import SimulatedExchange
from quantdesk.venues.sim.fees import FeeModel, UsEquityFees

D = Decimal
BUY, SELL = Side.BUY, Side.SELL
MARKET, LIMIT, STOP, STOP_LIMIT = OrderType.MARKET, OrderType.LIMIT, OrderType.STOP, OrderType.STOP_LIMIT
DAY, IOC, GTC = TimeInForce.DAY, TimeInForce.IOC, TimeInForce.GTC
MS = 1_000_000
SECOND = 1_000 * MS
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
NS_PER_DAY = 24 * HOUR
T0 = 1_704_205_800 * SECOND  # 2024-01-02 14:30 UTC
AAA = Instrument("AAA")


class Recorder:
    """A venue listener that keeps every event and can react to one (as the engine's OCO does)."""

    def __init__(self) -> None:
        self.events: list[OrderEvent] = []
        self.react: Callable[[OrderEvent], None] | None = None

    def on_order_event(self, event: OrderEvent) -> None:
        self.events.append(event)
        if self.react is not None:
            self.react(event)


@dataclass
class Sim:
    """One exchange, its listener and its clock, with builders for orders and market data."""

    venue: SimulatedExchange
    recorder: Recorder
    now: list[int] = field(default_factory=lambda: [T0])

    @property
    def events(self) -> list[OrderEvent]:
        return self.recorder.events

    def submit(
        self,
        client_order_id: str,
        side: Side,
        qty: int | str = 10,
        order_type: OrderType = MARKET,
        *,
        price: str | None = None,
        stop: str | None = None,
        tif: TimeInForce = GTC,
        symbol: str = "AAA",
    ) -> None:
        order = Order(
            client_order_id=client_order_id,
            symbol=symbol,
            side=side,
            order_type=order_type,
            qty=D(qty),
            price=D(price) if price is not None else None,
            stop_price=D(stop) if stop is not None else None,
            time_in_force=tif,
        )
        self.venue.submit_order(order)

    def bar(
        self,
        open_: float,
        high: float,
        low: float,
        close: float,
        volume: float = 1e6,
        *,
        at: int | None = None,
    ) -> Bar:
        """Advance the clock (a minute, or to `at`) and feed the bar's open to the exchange."""
        self.now[0] = at if at is not None else self.now[0] + MINUTE
        bar = Bar("AAA", self.now[0], open_, high, low, close, volume, self.now[0])
        self.venue.on_bar(bar)
        return bar

    def tick(self, price: float, *, at: int | None = None) -> None:
        self.now[0] = at if at is not None else self.now[0] + SECOND
        self.venue.on_tick(Tick("AAA", self.now[0], price, 100.0, self.now[0]))

    def quote(
        self, bid: float, ask: float, bid_size: float = 1e6, ask_size: float = 1e6, *, at: int | None = None
    ) -> None:
        self.now[0] = at if at is not None else self.now[0] + SECOND
        self.venue.on_quote(Quote("AAA", self.now[0], bid, ask, bid_size, ask_size, self.now[0]))

    def fills(self, client_order_id: str | None = None) -> list[Fill]:
        return [
            e.fill
            for e in self.events
            if isinstance(e, OrderFilled) and client_order_id in (None, e.client_order_id)
        ]

    def fill_prices(self, client_order_id: str | None = None) -> list[Decimal]:
        return [f.price for f in self.fills(client_order_id)]

    def kinds(self, client_order_id: str) -> list[str]:
        return [type(e).__name__ for e in self.events if e.client_order_id == client_order_id]

    def rejection(self, client_order_id: str) -> str:
        assert self.kinds(client_order_id) == ["OrderRejected"], self.kinds(client_order_id)
        assert client_order_id not in self.venue.open_order_ids()
        [reason] = [
            e.reason
            for e in self.events
            if isinstance(e, OrderRejected) and e.client_order_id == client_order_id
        ]
        return reason


def make_sim(
    config: SimVenueConfig | None = None,
    *,
    cash: str = "1000000",
    instrument: Instrument = AAA,
    fee_model: FeeModel | None = None,
    session_key: Callable[[int], object] | None = None,
    is_open: Callable[[int], bool] | None = None,
) -> Sim:
    now = [T0]
    venue = SimulatedExchange(
        {instrument.symbol: instrument},
        cash=D(cash),
        config=config or SimVenueConfig(),
        fee_model=fee_model,
        session_key=session_key,
        is_open=is_open,
        clock_ns=lambda: now[0],
    )
    recorder = Recorder()
    venue.connect(recorder)
    return Sim(venue, recorder, now)


def long_position(sim: Sim, qty: int = 10) -> None:
    """Buy `qty` at market and fill it at the next bar's open of 100."""
    sim.submit("entry", BUY, qty)
    sim.bar(100.0, 100.5, 99.5, 100.0)
    assert sim.venue.positions["AAA"] == qty


# -- market orders --------------------------------------------------------------------------------


def test_market_order_fills_at_the_next_bar_open_not_the_bar_it_was_placed_on() -> None:
    sim = make_sim()
    placed_on = sim.bar(100.0, 101.0, 99.0, 100.5)
    sim.submit("m", BUY)
    sim.venue.on_bar_close(placed_on)
    assert sim.fills() == []
    next_bar = sim.bar(101.0, 102.0, 100.0, 101.5)
    [fill] = sim.fills("m")
    assert (fill.price, fill.qty, fill.side, fill.ts_event) == (D("101.00"), D(10), BUY, next_bar.ts_event)
    assert sim.kinds("m") == ["OrderAccepted", "OrderFilled"]
    assert sim.venue.open_order_ids() == []


def test_market_order_fills_at_the_current_bar_close_with_fill_at_close() -> None:
    sim = make_sim(SimVenueConfig(fill_at=FillAt.CLOSE))
    placed_on = sim.bar(100.0, 101.0, 99.0, 100.5)
    sim.submit("m", BUY)
    sim.venue.on_bar_close(placed_on)
    [fill] = sim.fills("m")
    assert (fill.price, fill.ts_event) == (D("100.50"), placed_on.ts_event)


def test_slippage_in_ticks_worsens_a_market_buy_up_and_a_market_sell_down() -> None:
    sim = make_sim(SimVenueConfig(slippage_ticks=3))
    sim.submit("buy", BUY)
    sim.submit("sell", SELL)
    sim.bar(101.0, 102.0, 100.0, 101.5)
    assert sim.fill_prices("buy") == [D("101.03")]
    assert sim.fill_prices("sell") == [D("100.97")]


def test_slippage_applies_to_stops_but_not_to_limits() -> None:
    sim = make_sim(SimVenueConfig(slippage_ticks=2))
    sim.submit("stop", BUY, order_type=STOP, stop="101.00")
    sim.submit("limit", BUY, order_type=LIMIT, price="99.50")
    sim.bar(100.0, 101.5, 99.0, 101.0)
    assert sim.fill_prices("stop") == [D("101.02")]
    assert sim.fill_prices("limit") == [D("99.50")]


# -- limit orders on bars -------------------------------------------------------------------------


def test_limit_buy_gapped_below_at_the_open_fills_at_the_open() -> None:
    sim = make_sim()
    sim.submit("l", BUY, order_type=LIMIT, price="99.50")
    sim.bar(98.25, 99.0, 98.0, 98.5)
    assert sim.fill_prices("l") == [D("98.25")]


def test_limit_buy_touched_fills_at_the_exact_limit_in_touch_mode() -> None:
    sim = make_sim(SimVenueConfig(limit_fill=LimitFill.TOUCH))
    sim.submit("l", BUY, order_type=LIMIT, price="99.10")
    sim.bar(100.0, 101.0, 99.1, 100.5)
    assert sim.fill_prices("l") == [D("99.10")]


def test_limit_buy_touched_does_not_fill_in_through_mode_until_the_low_is_below_it() -> None:
    sim = make_sim(SimVenueConfig(limit_fill=LimitFill.THROUGH))
    sim.submit("l", BUY, order_type=LIMIT, price="99.10")
    sim.bar(100.0, 101.0, 99.1, 100.5)
    assert sim.fills() == []
    sim.bar(100.0, 101.0, 99.09, 100.5)
    assert sim.fill_prices("l") == [D("99.10")]


def test_limit_sell_gapped_above_fills_at_the_open_and_touched_fills_at_the_limit() -> None:
    sim = make_sim()
    sim.submit("gap", SELL, order_type=LIMIT, price="101.00")
    sim.submit("touch", SELL, order_type=LIMIT, price="103.00")
    sim.bar(102.0, 103.0, 101.5, 102.5)
    assert sim.fill_prices("gap") == [D("102.00")]
    assert sim.fill_prices("touch") == [D("103.00")]


def test_limit_sell_touched_does_not_fill_in_through_mode() -> None:
    sim = make_sim(SimVenueConfig(limit_fill=LimitFill.THROUGH))
    sim.submit("l", SELL, order_type=LIMIT, price="103.00")
    sim.bar(102.0, 103.0, 101.5, 102.5)
    assert sim.fills() == []
    sim.bar(102.0, 103.01, 101.5, 102.5)
    assert sim.fill_prices("l") == [D("103.00")]


# -- stops on bars --------------------------------------------------------------------------------


def test_stop_buy_gapped_above_fills_at_the_open() -> None:
    sim = make_sim()
    sim.submit("s", BUY, order_type=STOP, stop="101.00")
    sim.bar(102.5, 103.0, 102.0, 102.5)
    assert sim.fill_prices("s") == [D("102.50")]


def test_stop_buy_touched_intrabar_fills_at_the_stop() -> None:
    sim = make_sim()
    sim.submit("s", BUY, order_type=STOP, stop="101.30")
    sim.bar(100.0, 101.3, 99.5, 100.5)
    assert sim.fill_prices("s") == [D("101.30")]


def test_stop_sell_gapped_below_fills_at_the_open_and_touched_fills_at_the_stop() -> None:
    sim = make_sim()
    sim.submit("gap", SELL, order_type=STOP, stop="99.00")
    sim.bar(98.0, 98.5, 97.5, 98.0)
    assert sim.fill_prices("gap") == [D("98.00")]
    sim.submit("touch", SELL, order_type=STOP, stop="97.70")
    sim.bar(98.0, 98.5, 97.7, 98.0)
    assert sim.fill_prices("touch") == [D("97.70")]


def test_stop_not_reached_rests() -> None:
    sim = make_sim()
    sim.submit("s", BUY, order_type=STOP, stop="101.00")
    sim.bar(100.0, 100.99, 99.0, 100.5)
    assert sim.fills() == []
    assert sim.venue.open_order_ids() == ["s"]


def test_stop_limit_triggers_and_fills_at_the_limit_when_the_path_returns() -> None:
    sim = make_sim()
    sim.submit("sl", BUY, order_type=STOP_LIMIT, stop="101.00", price="101.50")
    # gaps above the limit at 102, trades back down to 100.5: triggered, then the limit fills
    sim.bar(102.0, 102.2, 100.5, 101.0)
    assert sim.kinds("sl") == ["OrderAccepted", "OrderTriggered", "OrderFilled"]
    assert sim.fill_prices("sl") == [D("101.50")]


def test_stop_limit_stays_triggered_when_the_path_does_not_return_and_fills_later() -> None:
    sim = make_sim()
    sim.submit("sl", BUY, order_type=STOP_LIMIT, stop="101.00", price="101.50")
    sim.bar(102.0, 103.0, 101.8, 102.5)
    assert sim.kinds("sl") == ["OrderAccepted", "OrderTriggered"]
    # the stop is not touched again (the bar stays below it), but the triggered limit fills
    sim.bar(100.8, 100.9, 100.2, 100.5)
    assert sim.kinds("sl") == ["OrderAccepted", "OrderTriggered", "OrderFilled"]
    assert sim.fill_prices("sl") == [D("100.80")]


def test_stop_limit_sell_triggered_intrabar_fills_at_the_stop() -> None:
    sim = make_sim()
    sim.submit("sl", SELL, order_type=STOP_LIMIT, stop="99.00", price="98.50")
    sim.bar(100.0, 100.2, 98.0, 98.8)
    assert sim.kinds("sl") == ["OrderAccepted", "OrderTriggered", "OrderFilled"]
    assert sim.fill_prices("sl") == [D("99.00")]


# -- the intrabar path ----------------------------------------------------------------------------


def bracket(sim: Sim, *, cancel_sibling: bool) -> None:
    long_position(sim)
    sim.submit("stop", SELL, order_type=STOP, stop="97.00")
    sim.submit("target", SELL, order_type=LIMIT, price="104.00")
    if cancel_sibling:
        siblings = {"stop": "target", "target": "stop"}

        def oco(event: OrderEvent) -> None:
            if isinstance(event, OrderFilled) and event.client_order_id in siblings:
                sim.venue.cancel_order(siblings[event.client_order_id])

        sim.recorder.react = oco


def test_bracket_stop_nearer_the_open_fills_first_and_the_canceled_target_does_not_fill() -> None:
    sim = make_sim()
    bracket(sim, cancel_sibling=True)
    sim.bar(100.0, 105.0, 96.0, 101.0)  # low nearer the open: 100 -> 96 -> 105
    assert sim.fill_prices("stop") == [D("97.00")]
    assert sim.kinds("target") == ["OrderAccepted", "OrderCanceled"]
    assert sim.venue.positions["AAA"] == 0
    assert sim.venue.open_order_ids() == []


def test_bracket_target_nearer_the_open_fills_first_and_the_canceled_stop_does_not_fill() -> None:
    sim = make_sim()
    bracket(sim, cancel_sibling=True)
    sim.bar(100.0, 104.5, 95.0, 99.0)  # high nearer the open: 100 -> 104.5 -> 95
    assert sim.fill_prices("target") == [D("104.00")]
    assert sim.kinds("stop") == ["OrderAccepted", "OrderCanceled"]
    assert sim.venue.positions["AAA"] == 0


def test_bracket_legs_both_fill_in_path_order_when_nobody_cancels() -> None:
    sim = make_sim()
    bracket(sim, cancel_sibling=False)
    sim.bar(100.0, 105.0, 96.0, 101.0)
    assert [f.client_order_id for f in sim.fills()] == ["entry", "stop", "target"]
    assert sim.venue.positions["AAA"] == -10


# -- partial fills --------------------------------------------------------------------------------


def test_max_volume_share_fills_in_parts_rounded_down_to_the_lot() -> None:
    sim = make_sim(SimVenueConfig(max_volume_share=0.1), instrument=Instrument("AAA", lot_size=D(10)))
    sim.submit("m", BUY, 50)
    for open_ in (100.0, 101.0, 102.0):
        sim.bar(open_, open_ + 1, open_ - 1, open_, volume=250.0)  # 10% = 25 -> 20 shares
    assert [(f.qty, f.price) for f in sim.fills("m")] == [
        (D(20), D("100.00")),
        (D(20), D("101.00")),
        (D(10), D("102.00")),
    ]
    assert sim.venue.positions["AAA"] == 50
    assert sim.venue.open_order_ids() == []


def test_max_volume_share_of_a_bar_is_computed_exactly() -> None:
    # 0.29 * 100 is 28.999999999999996 in floats; the venue must still allow 29 shares
    sim = make_sim(SimVenueConfig(max_volume_share=0.29))
    sim.submit("m", BUY, 40)
    sim.bar(100.0, 101.0, 99.0, 100.0, volume=100.0)
    assert [f.qty for f in sim.fills("m")] == [D(29)]


def test_volume_share_is_shared_by_the_orders_of_one_bar_in_path_order() -> None:
    sim = make_sim(SimVenueConfig(max_volume_share=0.5))
    sim.submit("later", BUY, 30, LIMIT, price="99.00")
    sim.submit("first", BUY, 30)
    sim.bar(100.0, 101.0, 98.0, 100.0, volume=40.0)
    assert [(f.client_order_id, f.qty) for f in sim.fills()] == [("first", D(20))]
    assert sorted(sim.venue.open_order_ids()) == ["first", "later"]


def test_partly_filled_stop_fills_its_remainder_at_the_next_open_without_a_new_touch() -> None:
    sim = make_sim(SimVenueConfig(max_volume_share=0.1))
    sim.submit("s", BUY, 30, STOP, stop="101.00")
    sim.bar(100.0, 102.0, 99.5, 101.5, volume=200.0)
    sim.bar(100.5, 100.8, 100.0, 100.5, volume=200.0)  # back below the stop
    assert [(f.qty, f.price) for f in sim.fills("s")] == [(D(20), D("101.00")), (D(10), D("100.50"))]


def test_max_volume_share_caps_market_fills_at_the_close() -> None:
    sim = make_sim(SimVenueConfig(fill_at=FillAt.CLOSE, max_volume_share=0.1))
    bar = sim.bar(100.0, 101.0, 99.0, 100.5, volume=200.0)
    sim.submit("m", BUY, 30)
    sim.venue.on_bar_close(bar)
    assert [f.qty for f in sim.fills("m")] == [D(20)]
    assert sim.venue.open_order_ids() == ["m"]


def test_ioc_market_at_the_close_fills_what_the_bar_allows_and_cancels_the_rest() -> None:
    sim = make_sim(SimVenueConfig(fill_at=FillAt.CLOSE, max_volume_share=0.1))
    bar = sim.bar(100.0, 101.0, 99.0, 100.5, volume=200.0)
    sim.submit("i", BUY, 30, tif=IOC)
    sim.venue.on_bar_close(bar)
    assert sim.kinds("i") == ["OrderAccepted", "OrderFilled", "OrderCanceled"]
    assert [(f.qty, f.price) for f in sim.fills("i")] == [(D(20), D("100.50"))]


# -- latency --------------------------------------------------------------------------------------


def test_order_is_not_eligible_before_submit_time_plus_latency() -> None:
    sim = make_sim(SimVenueConfig(latency_ms=250))
    sim.submit("m", BUY)
    sim.tick(100.0, at=T0 + 249 * MS)
    assert sim.fills() == []
    sim.tick(100.1, at=T0 + 250 * MS)
    assert sim.fill_prices("m") == [D("100.10")]


def test_latency_delays_a_bar_fill_to_the_first_bar_after_it() -> None:
    sim = make_sim(SimVenueConfig(latency_ms=90_000))
    sim.submit("m", BUY)
    sim.bar(100.0, 101.0, 99.0, 100.0, at=T0 + MINUTE)
    assert sim.fills() == []
    sim.bar(101.0, 102.0, 100.0, 101.0, at=T0 + 2 * MINUTE)
    assert sim.fill_prices("m") == [D("101.00")]


# -- rejections -----------------------------------------------------------------------------------


def test_limit_buy_costing_more_than_the_cash_is_rejected() -> None:
    sim = make_sim(cash="5000")
    sim.submit("big", BUY, 100, LIMIT, price="100.00")
    assert "insufficient cash" in sim.rejection("big")
    sim.submit("fits", BUY, 50, LIMIT, price="100.00")
    assert sim.kinds("fits") == ["OrderAccepted"]


def test_market_buy_is_checked_against_the_cash_at_the_last_price() -> None:
    sim = make_sim(cash="5000")
    last = Bar("AAA", T0, 100.0, 101.0, 99.0, 100.0, 1e6, T0)
    sim.venue.set_price_source({"AAA": last})
    sim.submit("big", BUY, 51)
    assert "insufficient cash" in sim.rejection("big")
    sim.submit("fits", BUY, 50)
    assert sim.kinds("fits") == ["OrderAccepted"]


def test_cash_buffer_keeps_a_share_of_notional_in_cash() -> None:
    sim = make_sim(SimVenueConfig(cash_buffer=D("0.1")), cash="5000")
    sim.submit("big", BUY, 50, LIMIT, price="100.00")  # 5,000 + 10% > 5,000
    assert "insufficient cash" in sim.rejection("big")


def test_off_grid_limit_price_is_rejected() -> None:
    sim = make_sim()
    sim.submit("l", BUY, order_type=LIMIT, price="100.005")
    assert "off the tick grid" in sim.rejection("l")


def test_off_grid_stop_price_is_rejected_naming_the_stop() -> None:
    sim = make_sim()
    sim.submit("s", BUY, order_type=STOP, stop="100.005")
    assert "stop price 100.005 is off the tick grid" in sim.rejection("s")


def test_quantity_off_the_lot_is_rejected() -> None:
    sim = make_sim(instrument=Instrument("AAA", lot_size=D(10)))
    sim.submit("m", BUY, 15)
    assert "not a multiple of the lot 10" in sim.rejection("m")


def test_unknown_symbol_is_rejected() -> None:
    sim = make_sim()
    sim.submit("m", BUY, symbol="BBB")
    assert sim.rejection("m") == "unknown symbol BBB"


def test_duplicate_client_order_id_is_rejected_even_after_the_first_filled() -> None:
    sim = make_sim()
    sim.submit("a", BUY)
    sim.submit("a", BUY)
    assert sim.kinds("a") == ["OrderAccepted", "OrderRejected"]
    sim.bar(100.0, 101.0, 99.0, 100.0)
    sim.submit("a", BUY)
    assert sim.kinds("a") == ["OrderAccepted", "OrderRejected", "OrderFilled", "OrderRejected"]
    reasons = [e.reason for e in sim.events if isinstance(e, OrderRejected)]
    assert reasons == ["duplicate client order id a"] * 2
    assert len(sim.fills("a")) == 1


def test_order_outside_the_session_is_rejected_when_sessions_are_enforced() -> None:
    sim = make_sim(SimVenueConfig(enforce_session=True), is_open=lambda ts: ts < T0)
    sim.submit("m", BUY)
    assert "outside the trading session" in sim.rejection("m")


def test_order_outside_the_session_is_accepted_when_sessions_are_not_enforced() -> None:
    sim = make_sim(SimVenueConfig(enforce_session=False), is_open=lambda ts: False)
    sim.submit("m", BUY)
    assert sim.kinds("m") == ["OrderAccepted"]


def test_sell_without_a_position_is_rejected_when_short_selling_is_off() -> None:
    sim = make_sim(SimVenueConfig(allow_short=False))
    sim.submit("s", SELL)
    assert "short selling off" in sim.rejection("s")


def test_sells_resting_for_the_whole_position_block_another_sell_when_short_selling_is_off() -> None:
    sim = make_sim(SimVenueConfig(allow_short=False))
    long_position(sim)
    sim.submit("exit", SELL, 10, LIMIT, price="110.00")
    assert sim.kinds("exit") == ["OrderAccepted"]
    sim.submit("more", SELL, 1, LIMIT, price="111.00")
    assert "insufficient position to sell 1" in sim.rejection("more")


def test_limit_order_without_a_price_is_rejected() -> None:
    sim = make_sim()
    sim.submit("l", BUY, order_type=LIMIT)
    sim.submit("s", BUY, order_type=STOP_LIMIT, price="101.00")
    assert sim.rejection("l") == "AAA: LIMIT order needs a limit price"
    assert sim.rejection("s") == "AAA: STOP_LIMIT order needs a stop price"
    sim.bar(100.0, 101.0, 99.0, 100.0)
    assert sim.fills() == []


# -- time in force --------------------------------------------------------------------------------


def test_day_order_expires_when_the_utc_day_changes() -> None:
    sim = make_sim()
    sim.submit("d", BUY, order_type=LIMIT, price="95.00", tif=DAY)
    sim.bar(100.0, 101.0, 96.0, 100.0, at=T0 + 5 * HOUR)  # same UTC day: rests
    assert sim.kinds("d") == ["OrderAccepted"]
    next_day = T0 + NS_PER_DAY
    sim.bar(94.0, 95.0, 93.0, 94.0, at=next_day)  # would fill, but the session ended
    assert sim.kinds("d") == ["OrderAccepted", "OrderExpired"]
    [expired] = [e for e in sim.events if isinstance(e, OrderExpired)]
    assert expired.ts_event == next_day
    assert sim.venue.open_order_ids() == []


def test_day_order_expires_when_a_given_session_key_changes() -> None:
    sim = make_sim(session_key=lambda ts: ts // HOUR)
    sim.submit("d", BUY, order_type=LIMIT, price="95.00", tif=DAY)
    sim.bar(100.0, 101.0, 96.0, 100.0, at=T0 + 20 * MINUTE)
    assert sim.kinds("d") == ["OrderAccepted"]
    sim.bar(100.0, 101.0, 96.0, 100.0, at=T0 + HOUR)
    assert sim.kinds("d") == ["OrderAccepted", "OrderExpired"]


def test_day_order_expires_on_the_first_tick_of_the_next_session() -> None:
    sim = make_sim()
    sim.submit("d", BUY, order_type=LIMIT, price="95.00", tif=DAY)
    sim.tick(94.0, at=T0 + NS_PER_DAY)
    assert sim.kinds("d") == ["OrderAccepted", "OrderExpired"]


def test_gtc_order_rests_across_sessions_until_it_fills() -> None:
    sim = make_sim()
    sim.submit("g", BUY, order_type=LIMIT, price="95.00", tif=GTC)
    sim.bar(100.0, 101.0, 96.0, 100.0, at=T0 + NS_PER_DAY)
    sim.bar(100.0, 101.0, 94.0, 100.0, at=T0 + 2 * NS_PER_DAY)
    assert sim.kinds("g") == ["OrderAccepted", "OrderFilled"]
    assert sim.fill_prices("g") == [D("95.00")]


def test_ioc_limit_not_marketable_at_the_first_bar_is_canceled() -> None:
    sim = make_sim()
    sim.submit("i", BUY, order_type=LIMIT, price="95.00", tif=IOC)
    sim.bar(100.0, 101.0, 96.0, 100.0)
    assert sim.kinds("i") == ["OrderAccepted", "OrderCanceled"]
    sim.bar(94.0, 95.0, 93.0, 94.0)
    assert sim.fills() == []


def test_ioc_fills_what_the_bar_allows_and_cancels_the_rest() -> None:
    sim = make_sim(SimVenueConfig(max_volume_share=0.1))
    sim.submit("i", BUY, 50, tif=IOC)
    sim.bar(100.0, 101.0, 99.0, 100.0, volume=200.0)
    assert sim.kinds("i") == ["OrderAccepted", "OrderFilled", "OrderCanceled"]
    assert [f.qty for f in sim.fills("i")] == [D(20)]
    assert sim.venue.positions["AAA"] == 20
    assert sim.venue.open_order_ids() == []


def test_ioc_waits_for_its_latency_before_its_one_chance() -> None:
    sim = make_sim(SimVenueConfig(latency_ms=500))
    sim.submit("i", BUY, order_type=LIMIT, price="100.00", tif=IOC)
    sim.tick(99.0, at=T0 + 100 * MS)  # not yet at the venue
    assert sim.kinds("i") == ["OrderAccepted"]
    sim.tick(101.0, at=T0 + 500 * MS)
    assert sim.kinds("i") == ["OrderAccepted", "OrderCanceled"]


# -- ticks and quotes -----------------------------------------------------------------------------


def test_market_buy_fills_at_the_ask_and_market_sell_at_the_bid() -> None:
    sim = make_sim()
    sim.submit("b", BUY)
    sim.submit("s", SELL)
    sim.quote(99.98, 100.02)
    assert sim.fill_prices("b") == [D("100.02")]
    assert sim.fill_prices("s") == [D("99.98")]


def test_limit_buy_on_quotes_waits_for_the_ask_to_reach_it_and_fills_at_the_ask() -> None:
    sim = make_sim()
    sim.submit("l", BUY, order_type=LIMIT, price="100.00")
    sim.quote(99.99, 100.01)
    assert sim.fills() == []
    sim.quote(99.95, 99.97)
    assert sim.fill_prices("l") == [D("99.97")]


def test_limit_sell_on_ticks_fills_at_the_trade_price() -> None:
    sim = make_sim()
    sim.submit("l", SELL, order_type=LIMIT, price="100.50")
    sim.tick(100.49)
    assert sim.fills() == []
    sim.tick(100.5)
    assert sim.fill_prices("l") == [D("100.50")]


def test_stop_buy_triggers_on_a_trade_price_and_fills_at_it() -> None:
    sim = make_sim()
    sim.submit("s", BUY, order_type=STOP, stop="101.00")
    sim.tick(100.99)
    assert sim.fills() == []
    sim.tick(101.07)
    assert sim.fill_prices("s") == [D("101.07")]


def test_stop_limit_on_ticks_triggers_beyond_its_limit_and_fills_when_price_returns() -> None:
    sim = make_sim()
    sim.submit("sl", BUY, order_type=STOP_LIMIT, stop="101.00", price="101.20")
    sim.tick(101.5)
    assert sim.kinds("sl") == ["OrderAccepted", "OrderTriggered"]
    sim.tick(100.9)  # below the stop again, but the order is a resting limit now
    assert sim.kinds("sl") == ["OrderAccepted", "OrderTriggered", "OrderFilled"]
    assert sim.fill_prices("sl") == [D("100.90")]
    [triggered] = [e for e in sim.events if isinstance(e, OrderTriggered)]
    assert triggered.ts_event == T0 + SECOND


def test_quote_size_caps_the_fill_and_the_rest_fills_on_later_quotes() -> None:
    sim = make_sim()
    sim.submit("b", BUY, 10)
    sim.submit("s", SELL, 10)
    sim.quote(99.98, 100.02, bid_size=7.0, ask_size=4.0)
    assert [f.qty for f in sim.fills("b")] == [D(4)]
    assert [f.qty for f in sim.fills("s")] == [D(7)]
    sim.quote(99.97, 100.03)
    assert [f.qty for f in sim.fills("b")] == [D(4), D(6)]
    assert [f.qty for f in sim.fills("s")] == [D(7), D(3)]
    assert sim.venue.positions["AAA"] == 0


def test_stop_partly_filled_on_a_quote_fills_the_rest_on_the_next_quote() -> None:
    sim = make_sim()
    sim.submit("s", BUY, 10, STOP, stop="101.00")
    sim.quote(101.0, 101.02, ask_size=4.0)
    sim.quote(100.5, 100.52)  # back below the stop: the triggered stop fills anyway
    assert [(f.qty, f.price) for f in sim.fills("s")] == [(D(4), D("101.02")), (D(6), D("100.52"))]


# -- money ----------------------------------------------------------------------------------------


def test_fees_land_in_the_fill_and_in_the_venue_cash_and_a_round_trip_is_exact() -> None:
    sim = make_sim(fee_model=UsEquityFees.ibkr_fixed())
    sim.submit("buy", BUY, 100)
    sim.bar(100.0, 101.0, 99.0, 100.0)
    sim.submit("sell", SELL, 100)
    sim.bar(101.0, 102.0, 100.0, 101.0)
    [buy] = sim.fills("buy")
    [sell] = sim.fills("sell")
    # buy: commission max(100 x 0.005, 1.00) = 1.00
    assert buy.fee == D("1.00")
    # sell: commission 1.00 + SEC 10,100 x 0.0000278 = 0.28078 -> 0.29 + TAF 0.0166 -> 0.02
    assert sell.fee == D("1.31")
    # 1,000,000 - 10,000 - 1.00 + 10,100 - 1.31
    assert sim.venue.cash == D("1000097.69")
    assert sim.venue.positions["AAA"] == 0


def test_cash_and_position_follow_partial_fills_exactly() -> None:
    sim = make_sim(SimVenueConfig(max_volume_share=0.5), cash="10000", instrument=Instrument("AAA"))
    sim.submit("b", BUY, 30, LIMIT, price="100.10")
    sim.bar(100.1, 100.2, 100.0, 100.1, volume=20.0)
    sim.bar(100.05, 100.2, 100.0, 100.1, volume=20.0)
    sim.bar(100.0, 100.2, 99.9, 100.1, volume=20.0)
    assert [(f.qty, f.price) for f in sim.fills("b")] == [
        (D(10), D("100.10")),
        (D(10), D("100.05")),
        (D(10), D("100.00")),
    ]
    assert sim.venue.positions["AAA"] == 30
    assert sim.venue.cash == D("10000") - D("1001.00") - D("1000.50") - D("1000.00")


# -- cancel ---------------------------------------------------------------------------------------


def test_cancel_of_a_working_order_emits_canceled_and_it_never_fills() -> None:
    sim = make_sim()
    sim.submit("l", BUY, order_type=LIMIT, price="95.00")
    sim.now[0] += SECOND
    sim.venue.cancel_order("l")
    assert sim.kinds("l") == ["OrderAccepted", "OrderCanceled"]
    assert sim.events[-1] == OrderCanceled("l", T0 + SECOND, "canceled by request")
    assert sim.venue.open_order_ids() == []
    assert not sim.venue.has_working_orders()
    sim.bar(94.0, 95.0, 93.0, 94.0)
    assert sim.fills() == []


def test_cancel_of_an_unknown_or_finished_order_emits_nothing() -> None:
    sim = make_sim()
    sim.submit("m", BUY)
    sim.bar(100.0, 101.0, 99.0, 100.0)
    before = list(sim.events)
    sim.venue.cancel_order("m")
    sim.venue.cancel_order("nope")
    assert sim.events == before


def test_market_order_canceled_by_a_listener_during_the_close_does_not_fill() -> None:
    sim = make_sim(SimVenueConfig(fill_at=FillAt.CLOSE))
    bar = sim.bar(100.0, 101.0, 99.0, 100.5)
    sim.submit("a", BUY)
    sim.submit("b", BUY)

    def cancel_b(event: OrderEvent) -> None:
        if isinstance(event, OrderFilled) and event.client_order_id == "a":
            sim.venue.cancel_order("b")

    sim.recorder.react = cancel_b
    sim.venue.on_bar_close(bar)
    assert sim.kinds("b") == ["OrderAccepted", "OrderCanceled"]
    assert sim.venue.positions["AAA"] == 10


def test_accepted_event_carries_a_venue_order_id_that_the_fill_repeats() -> None:
    sim = make_sim()
    sim.submit("m", BUY)
    sim.bar(100.0, 101.0, 99.0, 100.0)
    [accepted] = [e for e in sim.events if isinstance(e, OrderAccepted)]
    [fill] = sim.fills("m")
    assert accepted.venue_order_id == fill.venue_order_id != ""
    assert accepted.ts_event == T0


# -- property -------------------------------------------------------------------------------------


@st.composite
def bars(draw: st.DrawFn) -> tuple[float, float, float, float]:
    """Random OHLC floats, not necessarily on the tick grid."""
    open_ = draw(st.floats(50.0, 150.0))
    close = draw(st.floats(50.0, 150.0))
    high = max(open_, close) + draw(st.floats(0.0, 5.0))
    low = min(open_, close) - draw(st.floats(0.0, 5.0))
    return open_, high, low, close


@settings(max_examples=200, deadline=None)
@given(bars(), st.integers(4_500, 15_500), st.sampled_from(list(LimitFill)))
def test_limit_buy_fill_is_never_above_the_limit_on_the_grid_and_happens_iff_the_path_reaches_it(
    ohlc: tuple[float, float, float, float], limit_cents: int, mode: LimitFill
) -> None:
    sim = make_sim(SimVenueConfig(limit_fill=mode))
    limit = D(limit_cents).scaleb(-2)
    sim.submit("l", BUY, order_type=LIMIT, price=str(limit))
    sim.bar(*ohlc)
    low = ohlc[2]
    reached = low < float(limit) if mode is LimitFill.THROUGH else low <= float(limit)
    fills = sim.fills("l")
    assert bool(fills) == reached
    for fill in fills:
        assert fill.price <= limit
        assert fill.price % AAA.tick_size == 0
        assert fill.qty == 10


def test_a_refused_client_id_cannot_be_reused() -> None:
    from decimal import Decimal

    from quantdesk.model import Instrument, Order, OrderRejected, OrderType, Side
    from quantdesk.venues.sim import SimulatedExchange

    events: list[object] = []

    class Listener:
        def on_order_event(self, event: object) -> None:
            events.append(event)

    venue = SimulatedExchange({"AAA": Instrument("AAA")}, cash=Decimal(1000))
    venue.connect(Listener())
    venue.submit_order(Order("X1", "AAA", Side.BUY, OrderType.MARKET, Decimal("0.5")))
    venue.submit_order(Order("X1", "AAA", Side.BUY, OrderType.MARKET, Decimal(1)))
    assert [type(e) for e in events] == [OrderRejected, OrderRejected]
    assert "duplicate client order id X1" in events[1].reason  # type: ignore[attr-defined]
