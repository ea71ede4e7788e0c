"""Order management on the simulated exchange: entries, brackets, exits, duplicates, refusals."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kit import MINUTE, T0, a_plan_id, bar, flat_bar, rig
from quantdesk.execution.order_manager import _advance, _fill_order
from quantdesk.model import (
    Fill,
    IllegalTransition,
    Order,
    OrderFilled,
    OrderStatus,
    OrderType,
    Side,
)
from quantdesk.model.orders import TRANSITIONS
from quantdesk.venues.sim import SimulatedExchange, SimVenueConfig

D = Decimal


def _enter_long(r, qty="10", stop=None, target=None, entry=None, targets=(), ts=None):  # type: ignore[no-untyped-def]
    return r.engine.orders.enter(
        "s",
        "AAA",
        Side.BUY,
        D(qty),
        plan_id=a_plan_id(qty, signal_ts=ts),
        stop=D(stop) if stop else None,
        targets=(D(target),) if target else tuple(D(t) for t in targets),
        entry=D(entry) if entry else None,
    )


def test_entry_fill_places_stop_and_target_for_the_filled_quantity() -> None:
    r = rig()
    r.feed(flat_bar(0, 100.0))
    entry = _enter_long(r, stop="95", target="110")
    r.feed(flat_bar(1, 100.0))
    assert entry.status is OrderStatus.FILLED
    working = {o.tag: o for o in r.engine.orders.working_orders()}
    assert set(working) == {"STOP", "TP1"}
    assert working["STOP"].order_type is OrderType.STOP and working["STOP"].stop_price == D("95.00")
    assert working["TP1"].price == D("110.00")
    assert all(o.qty == D(10) and o.side is Side.SELL for o in working.values())


def test_target_fill_cancels_the_stop_and_leaves_the_position_flat() -> None:
    r = rig()
    r.feed(flat_bar(0, 100.0))
    _enter_long(r, stop="95", target="110")
    r.feed(flat_bar(1, 100.0), bar(T0 + 2 * MINUTE, 100, 111, 99, 108))
    assert r.engine.orders.working_orders() == []
    assert r.engine.portfolio.qty("AAA") == 0
    stop = next(o for o in r.engine.orders.orders.values() if o.tag == "STOP")
    assert stop.status is OrderStatus.CANCELED
    assert r.engine.portfolio.account.cash == D(1_000_000) + D(100)  # 10 x (110 - 100)


def test_stop_fill_cancels_the_target() -> None:
    r = rig()
    r.feed(flat_bar(0, 100.0))
    _enter_long(r, stop="95", target="110")
    r.feed(flat_bar(1, 100.0), bar(T0 + 2 * MINUTE, 99, 100, 90, 92))
    target = next(o for o in r.engine.orders.orders.values() if o.tag == "TP1")
    assert target.status is OrderStatus.CANCELED
    assert r.engine.portfolio.qty("AAA") == 0
    assert r.engine.portfolio.realized_pnl == D(-50)  # 10 x (95 - 100)


def test_partial_entry_fills_size_the_children_to_what_is_filled() -> None:
    r = rig(config=SimVenueConfig(max_volume_share=0.004))  # 4 of a 1,000-volume bar
    r.feed(flat_bar(0, 100.0))
    entry = _enter_long(r, qty="10", stop="95", target="110")
    r.feed(flat_bar(1, 100.0))
    assert entry.status is OrderStatus.PARTIALLY_FILLED and entry.filled_qty == 4
    children = {o.tag: o.qty for o in r.engine.orders.working_orders() if o.tag != "ENTRY"}
    assert children == {"STOP": D(4), "TP1": D(4)}
    r.feed(flat_bar(2, 100.0), flat_bar(3, 100.0))
    assert entry.status is OrderStatus.FILLED
    children = {o.tag: o.qty for o in r.engine.orders.working_orders()}
    assert children == {"STOP": D(10), "TP1": D(10)}


def test_exit_cancels_working_exits_and_closes_at_market() -> None:
    r = rig()
    r.feed(flat_bar(0, 100.0))
    _enter_long(r, stop="95", target="110")
    r.feed(flat_bar(1, 100.0))
    r.engine.orders.exit("s", "AAA", r.engine.portfolio.qty("AAA"), "test exit")
    r.feed(flat_bar(2, 101.0))
    assert r.engine.portfolio.qty("AAA") == 0
    assert r.engine.orders.working_orders() == []
    statuses = sorted(o.status.value for o in r.engine.orders.orders.values())
    assert statuses == ["CANCELED", "CANCELED", "FILLED", "FILLED"]


class _RefusesStops(SimulatedExchange):
    """A venue that refuses stop orders (as a broker may on a risk check)."""

    def _refusal(self, order: Order, now: int) -> str:
        if order.order_type is OrderType.STOP:
            return "stop orders are not accepted"
        return super()._refusal(order, now)


def test_a_rejected_stop_leaves_no_naked_position() -> None:
    r = rig()
    venue = _RefusesStops(r.engine.instruments, cash=D(1_000_000), clock_ns=r.clock.now_ns)
    venue.set_price_source(r.engine.last_bar)
    r.engine.orders._venue = venue
    venue.connect(r.engine.orders)
    r.venue = venue
    r.feed(flat_bar(0, 100.0))
    _enter_long(r, stop="95")
    r.feed(flat_bar(1, 100.0))
    stop = next(o for o in r.engine.orders.orders.values() if o.tag == "STOP")
    assert stop.status is OrderStatus.REJECTED
    exit_order = next(o for o in r.engine.orders.orders.values() if o.tag == "EXIT")
    assert exit_order.reason == "protective stop rejected"
    r.feed(flat_bar(2, 100.0))
    assert exit_order.status is OrderStatus.FILLED
    assert r.engine.portfolio.qty("AAA") == 0
    assert "stop_rejected_flatten" in "".join(r.log.lines or [])


def test_a_duplicate_fill_is_applied_once() -> None:
    r = rig()
    r.feed(flat_bar(0, 100.0))
    entry = _enter_long(r, qty="5")
    r.feed(flat_bar(1, 100.0))
    fill = Fill(
        "SIM-E1",
        entry.client_order_id,
        entry.venue_order_id,
        "AAA",
        Side.BUY,
        D(5),
        D(100),
        D(0),
        T0 + MINUTE,
        T0 + MINUTE,
    )
    r.engine.orders.on_order_event(OrderFilled(fill))
    assert r.engine.portfolio.qty("AAA") == 5
    assert entry.filled_qty == 5


def test_client_order_ids_are_unique_and_deterministic() -> None:
    def run() -> list[str]:
        r = rig()
        r.feed(flat_bar(0, 100.0))
        _enter_long(r, stop="95", target="110", ts=1)
        r.feed(flat_bar(1, 100.0), bar(T0 + 2 * MINUTE, 100, 111, 99, 108))
        return list(r.engine.orders.orders)

    first, second = run(), run()
    assert first == second
    assert len(set(first)) == len(first)


def test_an_invalid_order_is_rejected_before_it_reaches_the_venue() -> None:
    r = rig()
    r.feed(flat_bar(0, 100.0))
    order = r.engine.orders.enter("s", "AAA", Side.BUY, D("2.5"), plan_id="ABCDEFGHIJKLMNOP")
    assert order.status is OrderStatus.REJECTED
    assert "lot" in order.reason
    assert r.venue.open_order_ids() == []


def test_limit_entry_is_rounded_so_a_buy_never_pays_more() -> None:
    r = rig()
    r.feed(flat_bar(0, 100.0))
    order = _enter_long(r, entry="99.997")
    assert order.order_type is OrderType.LIMIT and order.price == D("99.99")


def test_a_fill_after_a_confirmed_cancel_is_still_booked() -> None:
    r = rig()
    r.feed(flat_bar(0, 100.0))
    entry = _enter_long(r, qty="5", entry="90")
    r.engine.orders.cancel(entry.client_order_id)
    assert entry.status is OrderStatus.CANCELED
    late = Fill(
        "LATE-1", entry.client_order_id, entry.venue_order_id, "AAA", Side.BUY, D(5), D(90), D(0), T0, T0
    )
    r.engine.orders.on_order_event(OrderFilled(late))
    assert entry.status is OrderStatus.CANCELED and entry.filled_qty == 5  # cancelled, partly filled
    assert r.engine.portfolio.qty("AAA") == 5
    assert "late_fill" in "".join(r.log.lines or [])


def test_submissions_wait_for_their_throttle_slot_and_a_cancel_stops_a_waiting_order() -> None:
    from quantdesk.execution.throttle import RateLimit, Throttler

    r = rig()
    throttler = Throttler(
        [RateLimit("orders", 2, 60 * 1_000_000_000)],
        clock_ns=r.clock.now_ns,
        policy="wait",
        max_wait_ns=3_600 * 1_000_000_000,
    )
    r.engine.orders._throttler = throttler
    r.feed(flat_bar(0, 100.0))
    first = _enter_long(r, qty="1", entry="90")
    second = _enter_long(r, qty="1", entry="90")
    third = _enter_long(r, qty="1", entry="90")
    fourth = _enter_long(r, qty="1", entry="90")
    assert [o.status for o in (first, second)] == [OrderStatus.ACCEPTED, OrderStatus.ACCEPTED]
    assert third.status is OrderStatus.PENDING_SUBMIT and fourth.status is OrderStatus.PENDING_SUBMIT
    assert r.venue.query_order(third.client_order_id) is None  # not sent yet
    r.engine.orders.cancel(fourth.client_order_id)
    r.feed(flat_bar(1, 100.0))  # one minute later: the window has room again
    assert third.status is OrderStatus.ACCEPTED
    assert fourth.status is OrderStatus.REJECTED and fourth.reason == "canceled before it was sent"
    assert r.venue.query_order(fourth.client_order_id) is None
    assert throttler.stats().waits == 2


def test_a_throttle_that_refuses_rejects_the_order_locally_with_the_reason() -> None:
    from quantdesk.execution.throttle import RateLimit, Throttler

    r = rig()
    r.engine.orders._throttler = Throttler(
        [RateLimit("orders", 1, 1_000_000_000)], clock_ns=r.clock.now_ns, policy="reject"
    )
    r.feed(flat_bar(0, 100.0))
    _enter_long(r, qty="1", entry="90")
    refused = _enter_long(r, qty="1", entry="90")
    assert refused.status is OrderStatus.REJECTED and refused.reason.startswith("throttled: orders")
    assert r.venue.query_order(refused.client_order_id) is None


def test_a_child_waiting_for_its_throttle_slot_is_replaced_not_doubled() -> None:
    from quantdesk.execution.throttle import RateLimit, Throttler

    r = rig()
    r.engine.orders._throttler = Throttler(
        [RateLimit("orders", 2, 60 * 1_000_000_000)],
        clock_ns=r.clock.now_ns,
        policy="wait",
        max_wait_ns=3_600 * 1_000_000_000,
    )
    r.feed(flat_bar(0, 100.0))
    entry = _enter_long(r, qty="15", entry="90", stop="85")  # rests: the sim will not fill it

    def partial(n: int) -> None:
        fill = Fill(
            f"P{n}", entry.client_order_id, entry.venue_order_id, "AAA", Side.BUY, D(5), D(90), D(0), T0, T0
        )
        r.engine.orders.on_order_event(OrderFilled(fill))

    partial(1)  # the first stop (5) takes the window's second slot
    partial(2)  # its replacement (10) waits for a slot
    partial(3)  # ... and is replaced again (15) while still waiting
    r.feed(flat_bar(1, 100.0), flat_bar(2, 100.0), flat_bar(3, 100.0))  # slots come free
    stops = [o for o in r.engine.orders.working_orders() if o.tag == "STOP"]
    assert [o.qty for o in stops] == [D(15)]
    at_venue = [s for s in r.venue.open_orders() if s.side is Side.SELL]
    assert sum((s.qty - s.filled_qty for s in at_venue), D(0)) == D(15)  # never more stop than position


# -- the compiled per-order state move ------------------------------------------------------------


def test_the_order_managers_state_move_is_order_transition_for_every_pair_of_states() -> None:
    # `_advance` is the order manager's fast copy of Order.transition (a C call when compiled): it
    # must allow exactly what the table allows and raise, changing nothing, for the rest.
    for source in OrderStatus:
        for target in OrderStatus:
            order = Order("ord-1", "AAPL", Side.BUY, OrderType.MARKET, Decimal(5), status=source, reason="r")
            if target in TRANSITIONS[source]:
                _advance(order, target, 42)
                assert (order.status, order.ts_last, order.reason) == (target, 42, "r")
            else:
                with pytest.raises(IllegalTransition, match=f"{source.value} -> {target.value}"):
                    _advance(order, target, 42)
                assert (order.status, order.ts_last, order.reason) == (source, 0, "r")


@settings(max_examples=300)
@given(
    status=st.sampled_from(list(OrderStatus)),
    fills=st.lists(
        st.tuples(st.integers(-2, 12), st.integers(9_000, 11_000), st.integers(0, 300)),
        min_size=1,
        max_size=5,
    ),
)
def test_the_order_managers_fill_booking_is_order_apply_fill(
    status: OrderStatus, fills: list[tuple[int, ...]]
) -> None:
    # `_fill_order` is the compiled copy of Order.apply_fill: same state after every fill, same
    # exception (class and message) for what the method refuses, and nothing changed by a refusal.
    def snapshot(order: Order) -> tuple[object, ...]:
        return (order.status, order.filled_qty, order.avg_fill_price, order.fees, order.ts_last)

    def outcome(apply: Any, order: Order, qty: int, price: int, fee: int, ts: int) -> object:
        try:
            apply(order, D(qty), D(price) / 100, D(fee) / 100, ts)
        except Exception as error:  # compared below: class and message
            return (type(error), str(error))
        return None

    fast = Order("ord-1", "AAPL", Side.BUY, OrderType.LIMIT, D(20), price=D(100), status=status)
    slow = Order("ord-1", "AAPL", Side.BUY, OrderType.LIMIT, D(20), price=D(100), status=status)
    for ts, (qty, price, fee) in enumerate(fills, start=1):
        a = outcome(_fill_order, fast, qty, price, fee, ts)
        b = outcome(Order.apply_fill, slow, qty, price, fee, ts)
        assert a == b
        assert snapshot(fast) == snapshot(slow)
