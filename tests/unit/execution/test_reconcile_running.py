"""The periodic reconciliation of a running engine with its venue: orphans, shadows, missed fills."""

from __future__ import annotations

import math
from decimal import Decimal

from kit import MINUTE, T0, Rig, bar, rig
from quantdesk.execution.recovery import Reconciler, RecoveryConfig, RecoveryReport
from quantdesk.model import Bar, Order, OrderEvent, OrderStatus, OrderType, Side
from quantdesk.strategies import Strategy


class Bracket(Strategy):
    def on_bar(self, b: Bar) -> None:
        if (b.ts_event - T0) // MINUTE == 1 and self.is_flat:
            self.enter_long(stop=b.close * 0.95, targets=[b.close * 1.10])


def swing(i: int) -> Bar:
    close = round(100 + math.sin(i / 3.0), 2)
    return bar(T0 + i * MINUTE, close, close + 0.2, close - 0.2, close)


class Deaf:
    """A listener that hears nothing: what the node misses while its stream is down."""

    def on_order_event(self, event: OrderEvent) -> None:
        pass


def trading() -> Rig:
    r = rig()
    r.engine.add_strategy(Bracket("AAA"))
    r.engine.start()
    for i in range(4):
        r.feed(swing(i))
    r.engine.end_cycle()
    assert r.engine.open_strategy_positions()  # long, with a working stop and target
    return r


def reconcile(r: Rig, confirmations: int = 1) -> RecoveryReport:
    """One periodic pass; confirmations=1 acts on what it sees at once (the default waits a pass)."""
    reconciler = Reconciler(
        r.venue, r.engine, RecoveryConfig(confirmations=confirmations), on_alert=r.engine.orders.alert
    )
    return reconciler.reconcile()


def test_a_clean_node_finds_nothing() -> None:
    r = trading()
    report = reconcile(r)
    assert report.in_sync and not r.engine.state.paused


def test_an_orphan_at_the_venue_is_cancelled_and_alerted() -> None:
    r = trading()
    r.venue.submit_order(Order("stranger-1", "AAA", Side.BUY, OrderType.LIMIT, Decimal(5), Decimal("50.00")))
    report = reconcile(r)
    assert report.orphans_cancelled == ("stranger-1",)
    assert r.venue.query_order("stranger-1").status is OrderStatus.CANCELED  # type: ignore[union-attr]
    assert ("orphan", "1 orphan order(s) at the venue: cancelled stranger-1; adopted none") in (
        r.engine.orders.alerts
    )


def test_a_stop_cancelled_behind_our_back_is_a_shadow_and_is_replaced() -> None:
    r = trading()
    stop = next(o for o in r.engine.orders.working_orders() if o.tag == "STOP")
    r.venue.connect(Deaf())
    r.venue.cancel_order(stop.client_order_id)  # the cancel's answer never reaches us
    r.venue.connect(r.engine.orders)
    report = reconcile(r)
    assert report.shadows == (stop.client_order_id,)
    assert r.engine.orders.orders[stop.client_order_id].status is OrderStatus.CANCELED
    stops = [o for o in r.engine.orders.working_orders() if o.tag == "STOP"]
    assert len(stops) == 1 and stops[0].client_order_id != stop.client_order_id  # protected again
    assert any(kind == "shadow" for kind, _ in r.engine.orders.alerts)


def test_a_fill_missed_while_deaf_is_booked_once_and_closes_the_group() -> None:
    r = trading()
    target = next(o for o in r.engine.orders.working_orders() if o.tag == "TP1")
    r.venue.connect(Deaf())
    price = float(target.price) + 0.5  # type: ignore[arg-type]
    r.clock.advance_to(T0 + 10 * MINUTE)
    r.venue.on_bar(bar(T0 + 10 * MINUTE, price, price + 0.1, price - 0.1, price))  # the target fills
    r.venue.connect(r.engine.orders)
    assert r.engine.open_strategy_positions()  # we have not heard
    report = reconcile(r)
    assert len(report.missed_fills) == 1
    assert r.engine.open_strategy_positions() == []
    assert [o.tag for o in r.engine.orders.working_orders()] == []  # the stop went with its group
    assert reconcile(r).missed_fills == ()  # booked once
    assert r.engine.portfolio.positions["AAA"].qty == r.venue.positions["AAA"] == 0


def test_positions_that_differ_pause_new_entries() -> None:
    r = trading()
    r.venue.positions["AAA"] += Decimal(3)  # the broker's book says otherwise
    report = reconcile(r)
    assert report.position_mismatches and r.engine.state.paused
