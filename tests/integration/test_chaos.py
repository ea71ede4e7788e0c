"""Chaos on the simulated venue: partial fills, refusals, late and lost answers, a disconnect in the
middle of a bracket, both exits filling in one bar, and a flatten through all of it.

Each scenario runs an engine on `ChaosVenue` (tests/chaos_venue.py), entries
going through the trading pipeline (ranking, gate, sizing) where the scenario
is about the whole path, or straight to the `OrderManager` where it is about
order handling alone. The safety rules are DESIGN section 5.
"""

from __future__ import annotations

import random
from decimal import Decimal

from chaos_venue import ChaosRig, accepts, cancels, chaos_rig, every_event, fills, signed
from kit import a_plan_id
from quantdesk.model import Instrument, Order, OrderStatus, OrderType, Side, Signal
from quantdesk.venues.sim import SimVenueConfig

D = Decimal


def _signal(r: ChaosRig, qty: str = "10", stop: str = "95", targets: tuple[str, ...] = ("110",)) -> None:
    """A long market signal through the pipeline: ranked, gated and sized, then entered at once."""
    r.engine.submit_signal(
        Signal(
            strategy="s",
            symbol="AAA",
            side=Side.BUY,
            ts=r.clock.now_ns(),
            stop=D(stop),
            targets=tuple(D(t) for t in targets),
            qty=D(qty),
        )
    )
    r.engine.end_cycle()


def _enter(
    r: ChaosRig,
    qty: str = "10",
    *,
    stop: str | None = "95",
    targets: tuple[str, ...] = ("110",),
    entry: str | None = None,
    strategy: str = "s",
    symbol: str = "AAA",
    side: Side = Side.BUY,
) -> Order:
    """An entry straight to the order manager (for scenarios about order handling alone)."""
    plan_id = a_plan_id(qty, strategy=strategy, symbol=symbol, side=side.value)
    return r.engine.orders.enter(
        strategy,
        symbol,
        side,
        D(qty),
        plan_id=plan_id,
        entry=D(entry) if entry else None,
        stop=D(stop) if stop else None,
        targets=tuple(D(t) for t in targets),
    )


def _assert_ids_sent_once(r: ChaosRig) -> None:
    sent = r.venue.submitted
    assert len(sent) == len(set(sent)), [i for i in sent if sent.count(i) > 1]


def _assert_flat_and_quiet(r: ChaosRig, symbols: tuple[str, ...] = ("AAA",)) -> None:
    """Nothing works anywhere, and engine, fills and exchange agree that every position is zero."""
    assert r.venue.quiet
    assert r.venue.open_order_ids() == []
    assert r.engine.orders.working_orders() == []
    assert r.engine.orders.open_groups() == []
    for symbol in symbols:
        assert r.engine.portfolio.qty(symbol) == 0
        assert r.venue.positions.get(symbol, D(0)) == 0
        assert sum((signed(f.side, f.qty) for f in r.venue.fills() if f.symbol == symbol), D(0)) == 0
    _assert_ids_sent_once(r)


def _children(r: ChaosRig) -> dict[str, Decimal]:
    return {o.tag: o.leaves_qty for o in r.working() if o.tag in ("STOP", "TP1", "TP2")}


# -- partial fills --------------------------------------------------------------------------------


def test_partial_entry_fills_grow_the_children_with_a_new_id_each_time() -> None:
    r = chaos_rig(config=SimVenueConfig(max_volume_share=0.004))  # 4 of a 1,000-share bar
    r.feed(r.flat(100.0))
    _signal(r, qty="10", targets=("110", "120"))
    entry = r.tagged("ENTRY")[0]
    expected = [
        (D(4), {"STOP": D(4), "TP1": D(2), "TP2": D(2)}),
        (D(8), {"STOP": D(8), "TP1": D(4), "TP2": D(4)}),
        (D(10), {"STOP": D(10), "TP1": D(5), "TP2": D(5)}),
    ]
    for filled, children in expected:
        r.feed(r.flat(100.0))
        assert entry.filled_qty == filled
        assert _children(r) == children
        # The exchange works exactly the current children: every replaced one is gone there too.
        assert sorted(r.venue.open_order_ids()) == sorted(o.client_order_id for o in r.working())
    assert entry.status is OrderStatus.FILLED
    assert len(r.tagged("STOP")) == 3
    assert [o.status for o in r.tagged("STOP")[:2]] == [OrderStatus.CANCELED] * 2
    _assert_ids_sent_once(r)


def test_partial_fills_delivered_twice_and_shuffled_still_size_the_children_to_what_is_filled() -> None:
    r = chaos_rig(config=SimVenueConfig(max_volume_share=0.004))
    r.feed(r.flat(100.0))
    _enter(r, qty="10", targets=("110",))
    r.venue.duplicate_all = True
    r.venue.hold(every_event)
    r.feed(r.flat(100.0))  # the entry fills 4; nothing of it is delivered yet
    r.venue.release_all(rng=random.Random(7))
    r.feed(r.flat(100.0), r.flat(100.0))
    assert r.tagged("ENTRY")[0].filled_qty == 10
    assert _children(r) == {"STOP": D(10), "TP1": D(10)}
    assert r.engine.portfolio.qty("AAA") == 10 == r.venue.positions["AAA"]
    _assert_ids_sent_once(r)


# -- refusals -------------------------------------------------------------------------------------


def test_a_refused_stop_closes_the_partial_position_at_market_at_once_and_alerts() -> None:
    r = chaos_rig(config=SimVenueConfig(max_volume_share=0.004))
    r.venue.refuse(lambda order: order.order_type is OrderType.STOP, "stop orders are not accepted")
    r.feed(r.flat(100.0))
    _signal(r, qty="10")
    r.feed(r.flat(100.0))  # 4 of 10 fill; the stop for them is refused
    stop = r.tagged("STOP")[0]
    assert stop.status is OrderStatus.REJECTED
    [(kind, message)] = r.engine.orders.alerts
    assert kind == "stop_rejected" and "stop orders are not accepted" in message
    # Immediately, in the same event: the rest of the entry is canceled and the 4 are being closed.
    [close] = r.tagged("EXIT")
    assert close.order_type is OrderType.MARKET and close.side is Side.SELL and close.qty == 4
    assert close.is_open and close.reason == "protective stop rejected"
    assert r.tagged("ENTRY")[0].status is OrderStatus.CANCELED
    assert not [o for o in r.working() if o.tag in ("TP1", "TP2")]
    r.feed(r.flat(100.0), r.flat(100.0), r.flat(100.0))
    assert close.status is OrderStatus.FILLED
    assert len(r.tagged("EXIT")) == 1  # nothing more was sent: no phantom overfill
    assert [kind for kind, _ in r.engine.orders.alerts] == ["stop_rejected"]
    _assert_flat_and_quiet(r)


def test_a_stop_refusal_arriving_late_still_closes_the_position() -> None:
    r = chaos_rig()
    r.venue.refuse(lambda order: order.order_type is OrderType.STOP)
    r.feed(r.flat(100.0))
    _enter(r, qty="10")
    r.venue.hold(lambda event: not fills(event))
    r.feed(r.flat(100.0))
    stop = r.tagged("STOP")[0]
    # The answer is still on its way: the stop is pending (the measured window), not rejected.
    assert stop.status is OrderStatus.SUBMITTED and r.tagged("EXIT") == []
    r.venue.release_all()
    assert stop.status is OrderStatus.REJECTED and len(r.tagged("EXIT")) == 1
    r.feed(r.flat(100.0))
    _assert_flat_and_quiet(r)


# -- late acknowledgements ------------------------------------------------------------------------


def test_fills_arriving_before_the_accept_are_booked_and_protected() -> None:
    r = chaos_rig()
    r.feed(r.flat(100.0))
    r.venue.hold(accepts)
    _signal(r, qty="10")
    entry = r.tagged("ENTRY")[0]
    assert entry.status is OrderStatus.SUBMITTED
    r.feed(r.flat(100.0))
    assert entry.status is OrderStatus.FILLED and r.engine.portfolio.qty("AAA") == 10
    # The children went out on the fill; their acknowledgements are held: pending, not missing.
    stop = r.tagged("STOP")[0]
    assert stop.status is OrderStatus.SUBMITTED and stop.qty == 10
    r.venue.release_all()
    assert entry.status is OrderStatus.FILLED and entry.filled_qty == 10
    assert entry.venue_order_id != ""  # the late accept (or the fill) still tells us the venue's id
    assert stop.status is OrderStatus.ACCEPTED
    assert sorted(r.venue.open_order_ids()) == sorted(o.client_order_id for o in r.working())
    r.feed(r.bar(100, 100, 94, 94))
    _assert_flat_and_quiet(r)


def test_an_accept_arriving_after_the_cancel_leaves_the_order_canceled_and_its_group_closed() -> None:
    r = chaos_rig()
    r.feed(r.flat(100.0))
    r.venue.hold(accepts)
    entry = _enter(r, qty="10", entry="97")
    r.engine.orders.cancel(entry.client_order_id)
    assert entry.status is OrderStatus.CANCELED
    r.venue.release_all()
    assert entry.status is OrderStatus.CANCELED
    # Nothing was filled, so nothing is left to protect: no group lingers with a stop.
    assert r.engine.orders.stop_for("s", "AAA") is None
    r.feed(r.bar(100, 100, 90, 91))  # through the old limit: nothing may fill
    _assert_flat_and_quiet(r)


def test_a_fill_reported_after_the_entry_cancel_was_confirmed_is_booked_and_closed_at_market() -> None:
    r = chaos_rig(config=SimVenueConfig(max_volume_share=0.004))
    r.feed(r.flat(100.0))
    entry = _enter(r, qty="10")
    r.venue.hold(fills)
    r.feed(r.flat(100.0))  # 4 fill at the exchange, not yet reported
    r.engine.orders.cancel(entry.client_order_id)
    assert entry.status is OrderStatus.CANCELED
    assert r.engine.orders.open_groups() == []  # nothing filled that we know of: nothing to guard
    r.venue.release_all()
    # The trade happened: it is booked, and with its group gone it is closed, not left naked.
    assert r.engine.portfolio.qty("AAA") == 4 == r.venue.positions["AAA"]
    [close] = r.tagged("EXIT")
    assert close.qty == 4 and close.side is Side.SELL and close.is_open
    assert close.reason == "entry filled after its group closed"
    r.feed(r.flat(100.0))
    _assert_flat_and_quiet(r)


# -- a disconnect in the middle of a bracket ------------------------------------------------------


def _entry_filled_while_down(r: ChaosRig, *, reach_venue: bool) -> Order:
    """Enter 10 long; the connection drops between the entry's fill and the bracket's submission."""
    r.feed(r.flat(100.0))
    _signal(r, qty="10")
    r.venue.hold(fills)
    r.feed(r.flat(100.0))
    r.venue.disconnect(reach_venue=reach_venue)
    r.venue.release_all()  # the fill arrives; the stop and the target go out into the void
    return r.tagged("STOP")[0]


def test_a_stop_lost_to_a_disconnect_is_unknown_never_rejected_and_never_resent() -> None:
    r = chaos_rig()
    stop = _entry_filled_while_down(r, reach_venue=False)
    assert stop.status is OrderStatus.UNKNOWN
    assert r.tagged("TP1")[0].status is OrderStatus.UNKNOWN
    r.feed(r.flat(100.0), r.flat(100.0))
    assert stop.status is OrderStatus.UNKNOWN
    assert r.engine.orders.alerts == []  # not a refusal, so no stop-rejected flatten
    assert r.tagged("EXIT") == []
    assert r.venue.submitted.count(stop.client_order_id) == 1
    assert r.engine.portfolio.qty("AAA") == 10
    _assert_ids_sent_once(r)


def test_after_reconnect_a_lookup_finds_a_lost_stop_never_arrived_and_protects_with_a_new_id() -> None:
    r = chaos_rig()
    stop = _entry_filled_while_down(r, reach_venue=False)
    r.engine.orders.resolve_unknown()  # still down: the lookup fails, nothing changes, nothing is sent
    assert stop.status is OrderStatus.UNKNOWN
    sent_while_down = list(r.venue.submitted)
    r.venue.reconnect()
    r.engine.orders.resolve_unknown()
    assert not stop.is_open and stop.status is not OrderStatus.REJECTED
    assert r.venue.submitted.count(stop.client_order_id) == 1
    [new_stop] = r.working("STOP")
    assert new_stop.client_order_id != stop.client_order_id
    assert new_stop.client_order_id not in sent_while_down
    assert new_stop.qty == 10 and new_stop.stop_price == D("95.00")
    assert new_stop.client_order_id in r.venue.open_order_ids()
    r.feed(r.bar(100, 100, 94, 94))  # the new stop protects
    _assert_flat_and_quiet(r)


def test_after_reconnect_a_lookup_settles_a_stop_that_reached_the_venue_without_resending_it() -> None:
    r = chaos_rig()
    stop = _entry_filled_while_down(r, reach_venue=True)
    assert stop.status is OrderStatus.UNKNOWN
    assert stop.client_order_id in r.venue.open_order_ids()  # it did arrive; only the answer was lost
    r.venue.reconnect()
    r.engine.orders.resolve_unknown()
    assert stop.status is OrderStatus.ACCEPTED and stop.venue_order_id != ""
    assert [o.client_order_id for o in r.tagged("STOP")] == [stop.client_order_id]
    assert r.venue.submitted.count(stop.client_order_id) == 1
    r.feed(r.bar(100, 100, 94, 94))
    assert stop.status is OrderStatus.FILLED
    _assert_flat_and_quiet(r)


def test_a_sibling_cancel_lost_to_a_disconnect_leaves_it_in_doubt_without_breaking_the_bar() -> None:
    r = chaos_rig()
    r.feed(r.flat(100.0))
    _signal(r, qty="10")
    r.feed(r.flat(100.0))
    stop = r.tagged("STOP")[0]
    r.venue.disconnect()
    r.feed(r.bar(100, 111, 100, 108))  # the target fills; canceling the stop fails
    assert r.tagged("TP1")[0].status is OrderStatus.FILLED
    assert r.engine.portfolio.qty("AAA") == 0 == r.venue.positions["AAA"]
    # The cancel's outcome is unknown: the stop is neither working as before nor canceled.
    assert stop.status is OrderStatus.PENDING_CANCEL
    assert r.engine.orders.open_groups() == []
    _assert_ids_sent_once(r)


def test_after_reconnect_a_lookup_retries_the_lost_cancel_so_no_orphan_stop_remains() -> None:
    r = chaos_rig()
    r.feed(r.flat(100.0))
    _signal(r, qty="10")
    r.feed(r.flat(100.0))
    stop = r.tagged("STOP")[0]
    r.venue.disconnect()
    r.feed(r.bar(100, 111, 100, 108))
    r.venue.reconnect()
    r.engine.orders.resolve_unknown()
    assert stop.status is OrderStatus.CANCELED
    r.feed(r.bar(100, 100, 90, 91))  # an orphan stop here would open a short
    _assert_flat_and_quiet(r)


# -- both exits in one bar ------------------------------------------------------------------------


def test_stop_and_target_filling_in_one_bar_are_corrected_at_market_once_with_an_alert() -> None:
    r = chaos_rig()
    r.feed(r.flat(100.0))
    _signal(r, qty="10", stop="95", targets=("105",))
    r.feed(r.flat(100.0))
    r.venue.hold_cancels = True  # the sibling's cancel is slower than the market
    r.feed(r.bar(100, 106, 94, 100))  # down through the stop, then up through the target
    assert r.tagged("STOP")[0].status is OrderStatus.FILLED
    assert r.tagged("TP1")[0].status is OrderStatus.FILLED
    assert r.venue.positions["AAA"] == -10  # both sold: 10 short until corrected
    [(kind, message)] = r.engine.orders.alerts
    assert kind == "overfill" and "10" in message
    [correction] = r.tagged("EXIT")
    assert correction.side is Side.BUY and correction.qty == 10 and correction.reason == "overfill correction"
    r.venue.release_all()
    r.feed(r.flat(100.0), r.flat(100.0), r.flat(100.0))
    assert correction.status is OrderStatus.FILLED
    assert len(r.tagged("EXIT")) == 1 and len(r.engine.orders.alerts) == 1
    _assert_flat_and_quiet(r)


def test_both_exits_reported_late_and_out_of_order_are_corrected_once() -> None:
    r = chaos_rig()
    r.feed(r.flat(100.0))
    _enter(r, qty="10", stop="95", targets=("105",))
    r.feed(r.flat(100.0))
    r.venue.hold(fills)
    r.feed(r.bar(100, 106, 94, 100))
    assert r.venue.positions["AAA"] == -10 and r.engine.portfolio.qty("AAA") == 10
    r.venue.duplicate_all = True
    r.venue.release(rng=random.Random(3))
    r.venue.release_all()
    r.feed(r.flat(100.0), r.flat(100.0))
    assert [kind for kind, _ in r.engine.orders.alerts] == ["overfill"]
    assert len(r.tagged("EXIT")) == 1
    _assert_flat_and_quiet(r)


def test_an_overfill_correction_made_moot_by_a_late_entry_fill_is_offset_once_not_twice() -> None:
    r = chaos_rig(config=SimVenueConfig(max_volume_share=0.001))  # 1 share a 1,000-share bar
    r.feed(r.flat(100.0))
    _enter(r, qty="3", stop="99", targets=("110",))
    r.feed(r.flat(100.0))  # 1 of 3 fills: a stop and a target for 1
    r.venue.hold(fills)
    r.venue.hold_cancels = True
    r.engine.orders.exit("s", "AAA", D(1), "exit")
    r.feed(r.bar(100, 100, 98, 98, volume=5_000))  # entry +2, the exit -1 and the stop -1: all late
    r.venue.stop_holding()
    r.venue.release(newest_first=True)
    # The stop's fill came first: 1 overfilled, bought back; then the entry's 2: those are closed,
    # and the buy-back they made moot is offset in the same order.
    corrections = [(o.side, o.qty, o.reason) for o in r.tagged("EXIT")[1:]]
    assert corrections == [
        (Side.BUY, D(1), "overfill correction"),
        (Side.SELL, D(2), "entry filled after its group closed"),
    ]
    report = r.engine.flatten("kill switch")
    assert report.closing_orders == 0  # working exits already bring the position to zero
    r.venue.release_all()
    r.feed(r.flat(98.0, volume=1e6), r.flat(98.0, volume=1e6))
    _assert_flat_and_quiet(r)


def test_fills_reported_out_of_time_order_are_booked_without_breaking_the_engine() -> None:
    r = chaos_rig()
    r.feed(r.flat(100.0))
    _signal(r, qty="10", stop="95", targets=("105",))
    r.feed(r.flat(100.0))
    r.venue.hold_cancels = True
    r.feed(r.bar(100, 106, 100, 105))  # the target fills; the stop's cancel is slow
    r.venue.hold(fills)
    r.feed(r.bar(100, 100, 94, 95))  # ... and the stop fills too, reported late
    new_entry = _enter(r, qty="5", stop="90", targets=())
    r.feed(r.flat(95.0))  # the new entry fills, reported late as well
    r.venue.release(newest_first=True)  # the entry's fill (later) arrives before the stop's (earlier)
    r.venue.release_all()
    assert [kind for kind, _ in r.engine.orders.alerts] == ["overfill"]
    r.feed(r.flat(95.0))
    [correction] = r.tagged("EXIT")
    assert correction.side is Side.BUY and correction.qty == 10 and correction.status is OrderStatus.FILLED
    # Only the new trade is left, with its stop; the first round trip is recorded once.
    assert r.engine.portfolio.qty("AAA") == 5 == r.venue.positions["AAA"]
    [stop] = r.working("STOP")
    assert stop.qty == 5 and r.engine.orders.group_of(stop.client_order_id) is r.engine.orders.group_of(
        new_entry.client_order_id
    )
    assert sorted(r.venue.open_order_ids()) == [stop.client_order_id]
    assert all(t.exit_time >= t.entry_time for t in r.engine.closed_trades)
    r.engine.flatten("done")
    r.feed(r.flat(95.0))
    _assert_flat_and_quiet(r)


# -- flatten through all of it --------------------------------------------------------------------


def _busy_book(r: ChaosRig) -> Order:
    """Two symbols: AAA partly filled with its bracket working, BBB a limit entry waiting."""
    r.feed(r.flat(100.0), r.flat(50.0, symbol="BBB"))
    entry = _enter(r, qty="10", targets=("110", "120"))
    _enter(r, qty="5", entry="45", stop="40", targets=("60",), strategy="t", symbol="BBB")
    r.feed(r.flat(100.0), r.flat(50.0, symbol="BBB"))
    assert entry.status is OrderStatus.PARTIALLY_FILLED and entry.filled_qty == 4
    return entry


def test_flatten_with_answers_held_and_a_partial_entry_working_ends_flat_once_released() -> None:
    r = chaos_rig([Instrument("AAA"), Instrument("BBB")], config=SimVenueConfig(max_volume_share=0.004))
    _busy_book(r)
    r.venue.hold(every_event)
    r.feed(r.flat(100.0))  # the entry fills 4 more at the exchange; nobody has been told
    report = r.engine.flatten("kill switch")
    assert report.closing_orders == 1  # the 4 the engine knows of
    r.venue.release_all(rng=random.Random(11))  # late fills, cancels and accepts, in any order
    for _ in range(4):
        r.feed(r.flat(100.0), r.flat(50.0, symbol="BBB"))
    _assert_flat_and_quiet(r, ("AAA", "BBB"))
    assert not [o for o in r.engine.orders.orders.values() if o.tag in ("STOP", "TP1", "TP2") and o.is_open]


def test_flatten_closes_a_position_hidden_by_a_late_fill_netting_the_strategy_to_zero() -> None:
    r = chaos_rig(config=SimVenueConfig(max_volume_share=0.001))  # 1 share a 1,000-share bar
    r.feed(r.flat(100.0))
    entry = _enter(r, qty="2")
    r.venue.hold(fills)
    r.feed(r.flat(100.0))  # 1 of 2 fills, not yet reported
    r.engine.orders.cancel(entry.client_order_id)  # to our knowledge nothing was filled
    _enter(r, qty="1", stop="105", targets=("95",), side=Side.SELL)  # the strategy goes short
    r.feed(r.flat(100.0))
    r.venue.release_all()
    # Long 1 (late, being closed at market) and short 1 (with its bracket): net zero, yet exposed.
    assert r.engine.position_qty("s", "AAA") == 0
    assert len(r.working("EXIT")) == 1 and len(r.working("STOP")) == 1
    r.engine.flatten("kill switch")  # the short's bracket goes, so the short must be closed too
    r.feed(r.flat(100.0), r.flat(100.0))
    _assert_flat_and_quiet(r)


def test_flatten_twice_is_idempotent_the_second_sends_nothing() -> None:
    r = chaos_rig([Instrument("AAA"), Instrument("BBB")], config=SimVenueConfig(max_volume_share=0.004))
    _busy_book(r)
    r.venue.hold(every_event)
    _enter(r, qty="3", entry="90", strategy="u")  # its acknowledgement is held too
    r.engine.flatten("kill switch")
    sent, canceled = list(r.venue.submitted), list(r.venue.cancel_requests)
    second = r.engine.flatten("kill switch")
    assert r.venue.submitted == sent
    assert r.venue.cancel_requests == canceled
    assert second.closing_orders == 0
    r.venue.release_all()
    third = r.engine.flatten("kill switch")
    assert r.venue.submitted == sent and third.closing_orders == 0
    for _ in range(3):
        r.feed(r.flat(100.0), r.flat(50.0, symbol="BBB"))
    _assert_flat_and_quiet(r, ("AAA", "BBB"))


def test_flatten_while_disconnected_closes_everything_after_reconnect_and_lookup() -> None:
    r = chaos_rig()
    r.feed(r.flat(100.0))
    _signal(r, qty="10")
    r.feed(r.flat(100.0))
    r.venue.disconnect()
    r.engine.flatten("kill switch")  # every cancel and the closing order are lost
    [close] = r.tagged("EXIT")
    assert close.status is OrderStatus.UNKNOWN
    r.venue.reconnect()
    r.engine.orders.resolve_unknown()
    r.feed(r.flat(100.0))
    _assert_flat_and_quiet(r)


def test_flatten_with_a_cancel_held_while_the_stop_fills_corrects_the_double_close() -> None:
    r = chaos_rig()
    r.feed(r.flat(100.0))
    _signal(r, qty="10")
    r.feed(r.flat(100.0))
    r.venue.hold_cancels = True
    r.engine.flatten("kill switch")
    r.feed(r.bar(94, 100, 94, 94))  # the market close fills, and so does the stop it tried to cancel
    r.venue.release_all()
    r.feed(r.flat(94.0), r.flat(94.0))
    assert "overfill" in [kind for kind, _ in r.engine.orders.alerts]
    _assert_flat_and_quiet(r)


def test_cancels_and_accepts_of_a_flatten_held_and_replayed_change_nothing() -> None:
    r = chaos_rig()
    r.feed(r.flat(100.0))
    _signal(r, qty="10", targets=("110", "120"))
    r.feed(r.flat(100.0))
    r.venue.hold(lambda event: accepts(event) or cancels(event))
    r.engine.flatten("kill switch")
    r.venue.release_all(rng=random.Random(5))
    for index in range(len(r.venue.delivered)):
        r.venue.replay(index)
    r.feed(r.flat(100.0))
    for index in range(len(r.venue.delivered)):
        r.venue.replay(index)
    _assert_flat_and_quiet(r)
