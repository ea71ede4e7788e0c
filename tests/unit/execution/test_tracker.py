"""The tracker compares our in-flight orders with the venue's book: orphans and shadows."""

from __future__ import annotations

from decimal import Decimal

from kit import flat_bar, rig
from quantdesk.execution.client_ids import plan_client_id
from quantdesk.execution.tracker import OrderTracker
from quantdesk.model import Order, OrderStatus, OrderType, Side

D = Decimal


def _plan(ts: int) -> str:
    return plan_client_id(
        strategy="s",
        symbol="AAA",
        side="BUY",
        entry=None,
        stop=None,
        targets=(),
        qty=D(1),
        signal_ts=ts,
        config_sha="",
    )


def test_in_sync_book_has_no_orphans_and_no_shadows() -> None:
    r = rig()
    r.feed(flat_bar(0, 100.0))
    r.engine.orders.enter("s", "AAA", Side.BUY, D(5), plan_id=_plan(1), stop=D(95), targets=(D(110),))
    r.feed(flat_bar(1, 100.0))
    tracker = OrderTracker(r.engine.orders.orders)
    snapshot = r.venue.open_orders()
    assert {s.client_order_id for s in snapshot} == {o.client_order_id for o in tracker.in_flight()}
    assert tracker.orphaned(snapshot) == [] and tracker.shadows(snapshot) == []
    assert tracker.stats().in_flight == 2 and tracker.stats().by_status["FILLED"] == 1


def test_an_order_placed_at_the_venue_behind_our_back_is_an_orphan() -> None:
    r = rig()
    r.feed(flat_bar(0, 100.0))
    r.venue.submit_order(Order("MANUAL1", "AAA", Side.BUY, OrderType.LIMIT, D(1), price=D(90)))
    tracker = OrderTracker(r.engine.orders.orders)
    orphans = tracker.orphaned(r.venue.open_orders())
    assert [o.client_order_id for o in orphans] == ["MANUAL1"]
    assert orphans[0].status is OrderStatus.ACCEPTED


def test_an_order_we_think_open_but_the_venue_closed_is_a_shadow() -> None:
    r = rig()
    r.feed(flat_bar(0, 100.0))
    order = r.engine.orders.enter("s", "AAA", Side.BUY, D(5), plan_id=_plan(2), entry=D(90))
    # The venue cancels it without telling us (a lost message).
    r.venue._listener = None
    r.venue.cancel_order(order.client_order_id)
    tracker = OrderTracker(r.engine.orders.orders)
    assert tracker.shadows(r.venue.open_orders()) == [order]
    state = r.venue.query_order(order.client_order_id)
    assert state is not None and state.status is OrderStatus.CANCELED


def test_query_of_an_id_the_venue_never_saw_is_none_and_a_refused_one_is_rejected() -> None:
    r = rig()
    assert r.venue.query_order("NEVER") is None
    r.venue.submit_order(Order("BAD1", "AAA", Side.BUY, OrderType.MARKET, D("0.5")))
    state = r.venue.query_order("BAD1")
    assert state is not None and state.status is OrderStatus.REJECTED
