"""Recovery and reconciliation on the simulated venue: a node dies at a step of the order lifecycle, the
venue trades on, a fresh engine recovers from the store and the venue, and the invariants hold."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from kit import MINUTE, T0, bar, flat_bar
from quantdesk.engine import Engine
from quantdesk.execution.recovery import (
    RecoveryConfig,
    StoredFill,
    is_own_client_id,
)
from quantdesk.model import ExitSignal, Order, OrderStatus, OrderType, Side
from quantdesk.venues.base import VenueCapabilities
from quantdesk.venues.sim import SimVenueConfig
from recovery_kit import (
    KITE,
    BlindVenue,
    Bracket,
    Crashed,
    Desk,
    MemoryStore,
    make_desk,
    nth,
    wave,
)

D = Decimal


def _positioned(store: MemoryStore | None = None, **kw: object) -> Desk:
    """A desk long 10 AAA at 100 with its stop (98.50) and two targets (101, 102) working."""
    desk = make_desk(store or MemoryStore(), **kw)  # type: ignore[arg-type]
    desk.boot(recover=False)
    assert desk.feed(*(flat_bar(i, 100.0) for i in range(6)))
    assert desk.engine_positions() == {"AAA": D(10)}
    assert {o.tag for o in desk.engine.orders.working_orders()} == {"STOP", "TP1", "TP2"}  # type: ignore[union-attr]
    return desk


def _working(desk: Desk) -> dict[str, Order]:
    assert desk.engine is not None
    return {o.tag: o for o in desk.engine.orders.working_orders()}


def _assert_in_step(desk: Desk) -> None:
    """The node and the venue agree: positions, open orders, cash; no id was sent twice."""
    assert desk.engine is not None
    assert desk.engine_positions() == desk.venue_positions()
    assert desk.engine_working() == desk.venue_open()
    assert desk.engine.portfolio.account.cash == desk.exchange.cash
    assert [cid for cid, n in Counter(desk.venue.submitted).items() if n > 1] == []


# -- (a) ids ---------------------------------------------------------------------------------------


def test_no_stored_id_is_issued_again_and_new_ids_continue_past_them() -> None:
    desk = _positioned()
    desk.store.flush()
    stored = set(desk.store.state().client_order_ids)
    stop_id = _working(desk)["STOP"].client_order_id
    desk.crash()
    desk.exchange.cancel_order(stop_id)  # the stop disappears while nobody listens
    desk.boot(recover=True)
    assert desk.engine is not None
    assert all(cid in desk.engine.orders.ids for cid in stored)
    new_stop = _working(desk)["STOP"]
    assert new_stop.client_order_id not in stored
    assert new_stop.client_order_id.endswith("-stop-1")  # the attempt after the stored one
    _assert_in_step(desk)


def test_kite_style_ids_are_reserved_and_continued_the_same_way() -> None:
    desk = _positioned(capabilities=KITE)
    desk.store.flush()
    stop_id = _working(desk)["STOP"].client_order_id
    assert len(stop_id) == 20 and stop_id.isalnum() and stop_id.endswith("S00")
    desk.crash()
    desk.exchange.cancel_order(stop_id)
    desk.boot(recover=True)
    assert _working(desk)["STOP"].client_order_id == stop_id[:-2] + "01"
    _assert_in_step(desk)


def test_our_stop_that_the_store_never_recorded_is_found_at_the_venue_and_kept() -> None:
    store = MemoryStore()
    store.buffer_only = {"STOP"}  # the database was down: the stop's row sat in the lost buffer
    desk = _positioned(store=store)
    stop_id = _working(desk)["STOP"].client_order_id
    desk.crash()
    assert stop_id not in store.rows
    report = desk.boot(recover=True)
    assert report is not None and report.adopted == (stop_id,) and report.orphans_cancelled == ()
    assert _working(desk)["STOP"].client_order_id == stop_id  # kept, not cancelled and re-placed
    assert desk.engine is not None and stop_id in desk.engine.orders.ids
    _assert_in_step(desk)


# -- (b) the outbox --------------------------------------------------------------------------------


def test_an_outbox_row_the_venue_never_received_is_closed_here_and_never_sent() -> None:
    desk = make_desk(MemoryStore())
    desk.boot(recover=False)
    desk.venue.crash_at = nth("persisted", 1, ["STOP"])  # the stop's row is committed, then death
    assert not desk.feed(*(flat_bar(i, 100.0) for i in range(6)))
    lost = next(cid for cid, row in _mem(desk).rows.items() if row.leg == "STOP")
    assert _mem(desk).rows[lost].status is OrderStatus.PENDING_SUBMIT
    assert desk.exchange.query_order(lost) is None
    report = desk.boot(recover=True)
    assert report is not None and report.never_sent == (lost,)
    assert desk.engine is not None
    order = desk.engine.orders.orders[lost]
    assert order.status is OrderStatus.CANCELED and "never reached the venue" in order.reason
    assert lost not in desk.venue.submitted
    assert _working(desk)["STOP"].client_order_id != lost  # protection under a new id
    _assert_in_step(desk)


def test_an_order_the_venue_accepted_unheard_is_adopted_with_the_venues_state() -> None:
    desk = make_desk(MemoryStore(durable_plans=True), strategies=lambda: [Bracket("AAA", dip=5.0)])
    desk.boot(recover=False)
    desk.venue.crash_at = nth("sent", 1, ["ENTRY"])  # accepted at the venue, the node never told
    assert not desk.feed(*(flat_bar(i, 100.0) for i in range(6)))
    entry = next(cid for cid, row in _mem(desk).rows.items() if row.leg == "ENTRY")
    report = desk.boot(recover=True)
    assert report is not None and report.adopted == (entry,) and report.never_sent == ()
    assert desk.engine is not None
    assert desk.engine.orders.orders[entry].status is OrderStatus.ACCEPTED
    assert desk.venue.submitted.count(entry) == 1
    assert report.groups_resumed == (_mem(desk).rows[entry].plan_id,)
    _assert_in_step(desk)


def test_a_working_entry_whose_plan_was_lost_is_cancelled_not_left_unprotected() -> None:
    desk = make_desk(MemoryStore(), strategies=lambda: [Bracket("AAA", dip=5.0)])
    desk.boot(recover=False)
    desk.venue.crash_at = nth("sent", 1, ["ENTRY"])  # its decision was still in the write buffer
    assert not desk.feed(*(flat_bar(i, 100.0) for i in range(6)))
    entry = next(cid for cid, row in _mem(desk).rows.items() if row.leg == "ENTRY")
    report = desk.boot(recover=True)
    assert report is not None and report.adopted == (entry,) and len(report.groups_closed) == 1
    assert desk.engine is not None and desk.engine.orders.orders[entry].status is OrderStatus.CANCELED
    assert [kind for kind, _ in desk.engine.orders.alerts] == ["bracket_unknown"]
    _assert_in_step(desk)


# -- (c) missed fills ------------------------------------------------------------------------------


def test_fills_missed_while_down_are_booked_once_even_across_a_second_restart() -> None:
    desk = _positioned(flush_every=1_000)  # nothing flushed: the store has only outbox rows
    desk.crash()
    desk.feed_while_down(bar(T0 + 6 * MINUTE, 100, 101.2, 99.8, 101))  # TP1 (5 at 101) fills
    assert _mem(desk).fills == {}
    report = desk.boot(recover=True)
    assert report is not None
    executions = [f.execution_id for f in desk.exchange.executions()]
    assert len(executions) == 2 and report.missed_fills == tuple(executions)  # the entry's, TP1's
    assert desk.engine_positions() == {"AAA": D(5)}
    assert _working(desk)["STOP"].qty == D(5) and "TP1" not in _working(desk)
    _assert_in_step(desk)
    desk.store.flush()
    desk.crash()
    again = desk.boot(recover=True)
    assert again is not None and again.missed_fills == () and again.in_sync
    _assert_in_step(desk)
    assert desk.engine is not None and desk.engine.portfolio.realized_pnl == D(5)  # 5 x (101 - 100)


def test_only_the_fills_the_store_lacks_are_booked_for_a_partly_stored_order() -> None:
    # 3 a bar at most (0.3% of 1,000): the 10-lot entry fills over four bars.
    desk = make_desk(MemoryStore(), config=None, strategies=lambda: [Bracket("AAA", every=5)])
    desk.exchange.config = SimVenueConfig(max_volume_share=0.003)
    desk.exchange.derive_state()
    desk.boot(recover=False)
    assert desk.feed(*(flat_bar(i, 100.0) for i in range(7)))
    assert desk.engine is not None
    entry = next(o for o in desk.engine.orders.orders.values() if o.tag == "ENTRY")
    assert entry.filled_qty == D(6) and entry.is_open
    desk.crash()
    desk.feed_while_down(flat_bar(7, 100.0), flat_bar(8, 100.0))
    report = desk.boot(recover=True)
    assert report is not None
    assert _mem(desk).rows[entry.client_order_id].filled_qty == D(6)
    assert len(report.missed_fills) == 2 and desk.engine_positions() == {"AAA": D(10)}
    assert _working(desk)["STOP"].qty == D(10)
    _assert_in_step(desk)


def test_a_venue_without_an_execution_list_gets_estimated_fills_and_an_alert() -> None:
    desk = _positioned(venue_class=BlindVenue)
    desk.store.flush()
    desk.crash()
    desk.feed_while_down(bar(T0 + 6 * MINUTE, 100, 100, 98, 98.2))  # the stop (98.50) fills
    report = desk.boot(recover=True)
    assert report is not None and len(report.estimated_fills) == 1
    assert any(kind == "fill_estimated" for kind, _ in desk.alerts)
    assert desk.engine_positions() == {} and desk.engine_working() == set()
    _assert_in_step(desk)  # the stop filled at its price: cash is exact


# -- (d) OCO resumes -------------------------------------------------------------------------------


def test_an_entry_filled_while_down_gets_its_stop_and_targets() -> None:
    desk = make_desk(MemoryStore(), strategies=lambda: [Bracket("AAA", dip=1.0)])
    desk.boot(recover=False)
    assert desk.feed(*(flat_bar(i, 100.0) for i in range(7)))  # a limit entry at 99 rests
    assert set(_working(desk)) == {"ENTRY"}
    desk.crash()
    desk.feed_while_down(bar(T0 + 7 * MINUTE, 100, 100, 98.9, 99.5))
    assert desk.venue_positions() == {"AAA": D(10)}
    report = desk.boot(recover=True)
    assert report is not None and len(report.groups_resumed) == 1
    working = _working(desk)
    assert set(working) == {"STOP", "TP1", "TP2"}
    assert working["STOP"].stop_price == D("97.50") and working["STOP"].qty == D(10)
    assert (working["TP1"].price, working["TP1"].qty) == (D("100.00"), D(5))
    assert (working["TP2"].price, working["TP2"].qty) == (D("101.00"), D(5))
    _assert_in_step(desk)


def test_a_stop_filled_while_down_gets_its_targets_cancelled() -> None:
    desk = _positioned()
    desk.store.flush()
    desk.crash()
    desk.feed_while_down(bar(T0 + 6 * MINUTE, 100, 100, 98, 98.2))
    report = desk.boot(recover=True)
    assert report is not None and len(report.groups_closed) == 1 and report.groups_resumed == ()
    assert desk.engine_working() == desk.venue_open() == set()
    assert desk.engine_positions() == desk.venue_positions() == {}
    assert set(report.shadows) == {cid for cid, r in _mem(desk).rows.items() if r.leg == "STOP"}
    _assert_in_step(desk)


def test_an_exit_whose_order_never_left_is_finished_under_a_new_id() -> None:
    desk = _positioned()
    desk.store.flush()
    desk.venue.crash_at = nth("persisted", 1, ["EXIT"])  # children cancelled, exit row written, death
    assert desk.engine is not None
    with pytest.raises(Crashed):
        desk.engine.submit_exit(_exit_signal(desk))
    lost = next(cid for cid, row in _mem(desk).rows.items() if row.leg == "EXIT")
    report = desk.boot(recover=True)
    assert report is not None and report.never_sent == (lost,) and len(report.groups_closed) == 1
    assert set(_working(desk)) == {"EXIT"} and lost not in desk.venue.submitted
    desk.feed(flat_bar(6, 100.0))
    assert desk.engine_positions() == desk.venue_positions() == {}
    assert desk.engine_working() == desk.venue_open() == set()
    _assert_in_step(desk)


def test_an_exit_that_died_before_its_order_was_written_leaves_the_position_protected() -> None:
    desk = _positioned()
    desk.store.flush()
    desk.venue.crash_at = nth("cancel", 2)  # two children cancelled, then death: no exit row
    assert desk.engine is not None
    with pytest.raises(Crashed):
        desk.engine.submit_exit(_exit_signal(desk))
    report = desk.boot(recover=True)
    assert report is not None and len(report.shadows) == 2 and len(report.groups_resumed) == 1
    assert set(_working(desk)) == {"STOP", "TP1", "TP2"}
    assert desk.engine_positions() == {"AAA": D(10)}
    _assert_in_step(desk)


def test_an_entry_whose_plan_was_lost_is_closed_at_market_with_an_alert() -> None:
    desk = make_desk(MemoryStore())
    desk.boot(recover=False)
    desk.venue.crash_at = nth("fill", 1, ["ENTRY"])  # the decision (its stop) was never flushed
    assert not desk.feed(*(flat_bar(i, 100.0) for i in range(6)))
    assert _mem(desk).brackets == {}
    report = desk.boot(recover=True)
    assert report is not None and len(report.groups_closed) == 1
    assert desk.engine is not None
    assert [kind for kind, _ in desk.engine.orders.alerts] == ["bracket_unknown"]
    assert set(_working(desk)) == {"EXIT"}
    desk.feed(flat_bar(6, 100.0))
    assert desk.engine_positions() == desk.venue_positions() == {}
    _assert_in_step(desk)


# -- (e) orphans and shadows -----------------------------------------------------------------------


def _manual(qty: str = "3", price: str = "90") -> Order:
    return Order("MANUAL1", "AAA", Side.BUY, OrderType.LIMIT, D(qty), price=D(price))


def test_an_orphan_is_cancelled_by_default_and_alerted() -> None:
    desk = _positioned()
    desk.store.flush()
    desk.crash()
    desk.exchange.submit_order(_manual())
    report = desk.boot(recover=True)
    assert report is not None and report.orphans_cancelled == ("MANUAL1",)
    assert "MANUAL1" not in desk.venue_open()
    assert any(kind == "orphan" and "MANUAL1" in text for kind, text in desk.alerts)
    _assert_in_step(desk)


def test_an_adopted_orphan_is_tracked_and_its_fill_booked() -> None:
    desk = _positioned(config=RecoveryConfig(orphan_policy="adopt"))
    desk.store.flush()
    desk.crash()
    desk.exchange.submit_order(_manual(price="99"))
    report = desk.boot(recover=True)
    assert report is not None and report.orphans_adopted == ("MANUAL1",)
    assert "MANUAL1" in desk.engine_working() and "MANUAL1" in desk.venue_open()
    desk.feed(bar(T0 + 6 * MINUTE, 100, 100, 98.8, 99))  # fills the adopted order (not the stop)
    assert desk.engine_positions() == desk.venue_positions() == {"AAA": D(13)}
    assert desk.engine is not None and desk.engine.position_qty("", "AAA") == D(3)
    _assert_in_step(desk)


def test_a_shadow_is_settled_from_the_venue_alerted_and_its_group_protected_again() -> None:
    desk = _positioned()
    desk.store.flush()
    stop_id = _working(desk)["STOP"].client_order_id
    desk.crash()
    desk.exchange.cancel_order(stop_id)
    report = desk.boot(recover=True)
    assert report is not None and report.shadows == (stop_id,)
    assert desk.engine is not None and desk.engine.orders.orders[stop_id].status is OrderStatus.CANCELED
    assert any(kind == "shadow" for kind, _ in desk.alerts)
    assert _working(desk)["STOP"].qty == D(10)
    _assert_in_step(desk)


# -- (f) positions ---------------------------------------------------------------------------------


def test_a_position_mismatch_is_reported_pauses_entries_and_lifts_once_resolved() -> None:
    desk = _positioned(config=RecoveryConfig(confirmations=1))
    desk.store.flush()
    desk.crash()
    desk.exchange.positions["AAA"] += D(5)  # something no order explains
    report = desk.boot(recover=True)
    assert report is not None and [(m.symbol, m.ours, m.venue) for m in report.position_mismatches] == [
        ("AAA", D(10), D(15))
    ]
    assert report.paused and desk.engine is not None and desk.engine.state.paused
    assert any(kind == "position_mismatch" for kind, _ in desk.alerts)
    assert desk.reconciler is not None
    assert desk.reconciler.reconcile().paused  # still different: still paused
    desk.exchange.positions["AAA"] -= D(5)
    after = desk.reconciler.reconcile()
    assert after.position_mismatches == () and not after.paused and not desk.engine.state.paused


def test_a_pause_set_by_an_operator_is_not_lifted_by_the_reconciler() -> None:
    desk = _positioned(config=RecoveryConfig(confirmations=1))
    desk.store.flush()
    desk.crash()
    desk.exchange.positions["AAA"] += D(5)
    desk.boot(recover=True)
    assert desk.engine is not None and desk.reconciler is not None
    desk.engine.pause("checking the account", actor="ops")
    desk.exchange.positions["AAA"] -= D(5)
    assert desk.reconciler.reconcile().paused


# -- (g) periodic reconciliation -------------------------------------------------------------------


def test_periodic_reconciliation_finds_an_orphan_and_a_shadow_after_confirming_them() -> None:
    desk = make_desk(MemoryStore(), config=RecoveryConfig(reconcile_interval_seconds=60, confirmations=2))
    desk.boot(recover=True, periodic=True)
    assert desk.feed(*(flat_bar(i, 100.0) for i in range(6)))
    stop_id = _working(desk)["STOP"].client_order_id
    listener = desk.venue._listener
    desk.venue._listener = None  # behind the node's back: it hears of neither
    desk.exchange.submit_order(_manual())
    desk.exchange.cancel_order(stop_id)
    desk.venue._listener = listener
    before = len(desk.reports)
    assert desk.feed(flat_bar(6, 100.0))  # one pass: both suspected, nothing done yet
    first = desk.reports[before:]
    assert len(first) == 1 and first[0].suspected == 2 and first[0].in_sync
    assert desk.feed(flat_bar(7, 100.0))  # the next pass confirms and acts
    second = desk.reports[-1]
    assert second.orphans_cancelled == ("MANUAL1",) and second.shadows == (stop_id,)
    assert _working(desk)["STOP"].client_order_id != stop_id
    _assert_in_step(desk)


def test_periodic_reconciliation_leaves_a_difference_that_went_away() -> None:
    desk = make_desk(MemoryStore(), config=RecoveryConfig(confirmations=2))
    desk.boot(recover=True)
    assert desk.feed(*(flat_bar(i, 100.0) for i in range(6)))
    assert desk.reconciler is not None
    desk.venue._listener, listener = None, desk.venue._listener
    desk.exchange.submit_order(_manual())
    desk.venue._listener = listener
    assert desk.reconciler.reconcile().suspected == 1
    desk.exchange.cancel_order("MANUAL1")  # cancelled by whoever placed it
    report = desk.reconciler.reconcile()
    assert report.suspected == 0 and report.in_sync


def test_an_unreachable_venue_leaves_everything_as_it_is() -> None:
    from quantdesk.errors import RetryableError

    desk = _positioned()
    desk.store.flush()
    desk.crash()
    desk.boot(recover=True)
    assert desk.reconciler is not None

    def down() -> list[object]:
        raise RetryableError("connection reset")

    desk.venue.open_orders = down  # type: ignore[method-assign,assignment]
    report = desk.reconciler.reconcile()
    assert report.venue_error.startswith("RetryableError") and report.orphans_cancelled == ()
    assert any(kind == "reconciliation_failed" for kind, _ in desk.alerts)


# -- the whole lifecycle, crashing anywhere ---------------------------------------------------------

_POINTS = st.sampled_from(
    [
        ("persisted", ()),
        ("persisted", ("STOP",)),
        ("sent", ()),
        ("sent", ("ENTRY",)),
        ("fill", ("ENTRY",)),
        ("fill", ("STOP", "TP1", "TP2")),
        ("fill", ("EXIT",)),
        ("cancel", ()),
    ]
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    point=_POINTS,
    n=st.integers(1, 4),
    flush_every=st.integers(1, 4),
    down_bars=st.integers(0, 5),
    dip=st.sampled_from([0.0, 0.5]),
    hold=st.sampled_from([0, 3]),
    kite=st.booleans(),
    lost=st.sampled_from([(), ("STOP",), ("STOP", "TP1", "TP2", "EXIT")]),
    policy=st.sampled_from(["cancel", "adopt"]),
    second=st.booleans(),
    recovering=st.sampled_from([None, "persisted", "cancel"]),
)
def test_a_node_killed_at_any_step_recovers_with_nothing_lost_doubled_or_orphaned(
    point: tuple[str, tuple[str, ...]],
    n: int,
    flush_every: int,
    down_bars: int,
    dip: float,
    hold: int,
    kite: bool,
    lost: tuple[str, ...],
    policy: str,
    second: bool,
    recovering: str | None,
) -> None:
    desk = make_desk(
        MemoryStore(),
        strategies=lambda: [Bracket("AAA", every=4, dip=dip, hold=hold)],
        config=RecoveryConfig(orphan_policy=policy),  # type: ignore[arg-type]
        flush_every=flush_every,
        capabilities=KITE if kite else None,
    )
    _mem(desk).buffer_only = set(lost)  # rows the writer only buffered (store down): lost with the node
    desk.boot(recover=False)
    where, tags = point
    desk.venue.crash_at = nth(where, n, tags)
    i = _run(desk, 0, 50)
    desk.venue.crash_at = None
    if desk.engine is not None:
        desk.crash()  # the point never came: die between two bars instead
    desk.feed_while_down(*(wave(j) for j in range(i, i + down_bars)))
    i += down_bars
    if recovering is not None:  # killed again by the recovery's first order or cancel, if it makes one
        desk.venue.crash_at = nth(recovering, 1)
        recovered = desk.boot_or_die(recover=True)
        desk.venue.crash_at = None
        if not recovered:
            desk.feed_while_down(wave(i))
            i += 1
            desk.boot(recover=True)
    else:
        desk.boot(recover=True)
    _assert_in_step(desk)
    _assert_protected(desk)
    if second:  # a second crash, right after recovery, before anything flushed
        desk.venue.crash_at = nth("fill", 1)
        i = _run(desk, i, i + 30)
        desk.venue.crash_at = None
        if desk.engine is None:
            desk.feed_while_down(wave(i))
            i += 1
            desk.boot(recover=True)
            _assert_in_step(desk)
    _run(desk, i, 90)
    assert desk.engine is not None
    _assert_in_step(desk)
    if not lost:
        desk.store.flush()
        booked = sorted(stored.fill.execution_id for stored in desk.store.state().fills)
        assert booked == sorted(f.execution_id for f in desk.exchange.executions())


def _run(desk: Desk, first: int, last: int) -> int:
    """Feed waves first..last-1; the index of the bar it died on (the venue saw it), or `last`."""
    for i in range(first, last):
        if not desk.feed(wave(i)):
            return i + 1
    return last


def _assert_protected(desk: Desk) -> None:
    """Every open position has a working stop or exit (nothing naked after recovery)."""
    assert desk.engine is not None
    working = desk.engine.orders.working_orders()
    for strategy, symbol, _ in desk.engine.open_strategy_positions():
        assert any(o.symbol == symbol and o.tag in ("STOP", "EXIT") for o in working), (strategy, symbol)


# -- small pieces ----------------------------------------------------------------------------------


def test_the_recovery_config_refuses_unknown_keys_and_defaults_to_cancelling_orphans() -> None:
    config = RecoveryConfig()
    assert (config.orphan_policy, config.reconcile_interval_seconds, config.confirmations) == (
        "cancel",
        60.0,
        2,
    )
    with pytest.raises(ValidationError):
        RecoveryConfig(orphan_policy="ignore")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        RecoveryConfig.model_validate({"interval": 5})


def test_our_ids_are_told_from_foreign_ones_per_venue_layout() -> None:
    sim, kite = VenueCapabilities("SIM"), VenueCapabilities("KITE", 20, client_id_alphanumeric=True)
    assert is_own_client_id("qd-ABCDEFGHIJKLMNOP-stop-0", sim) and not is_own_client_id("MANUAL1", sim)
    assert is_own_client_id("QABCDEFGHIJKLMNOPS01", kite)
    assert not is_own_client_id("QABCDEFGHIJKLMNOPZ01", kite) and not is_own_client_id("", kite)


def _traded_then_restarted() -> tuple[Desk, Engine, Engine, list[StoredFill]]:
    """A desk that traded 60 bars, its engine (kept for comparison), a fresh engine after a crash
    (not yet restored) and the stored fills."""
    desk = make_desk(MemoryStore())
    desk.boot(recover=False)
    assert desk.feed(*(wave(i) for i in range(60)))
    desk.store.flush()
    old = desk.engine
    assert old is not None and old.closed_trades
    fills = list(desk.store.state().fills)
    desk.crash()
    desk.boot(recover=False)
    assert desk.engine is not None
    return desk, old, desk.engine, fills


def test_engine_restore_rebuilds_cash_positions_and_trades_from_the_stored_fills() -> None:
    _, old, new, fills = _traded_then_restarted()
    assert new.restore(fills) == len(fills)
    assert new.portfolio.account.cash == old.portfolio.account.cash
    assert new.portfolio.realized_pnl == old.portfolio.realized_pnl
    assert new.open_strategy_positions() == old.open_strategy_positions()
    assert new.closed_trades == old.closed_trades
    assert all(isinstance(f, StoredFill) for f in fills)


def test_the_report_reads_as_plain_values() -> None:
    desk = _positioned(config=RecoveryConfig(confirmations=1))
    desk.store.flush()
    desk.crash()
    desk.exchange.positions["AAA"] += D(1)
    report = desk.boot(recover=True)
    assert report is not None
    values = report.to_dict()
    assert values["position_mismatches"] == [{"symbol": "AAA", "ours": "10", "venue": "11"}]
    assert values["stage"] == "start" and values["in_sync"] is False and values["paused"] is True


def _exit_signal(desk: Desk) -> ExitSignal:
    return ExitSignal("Bracket", "AAA", desk.now, "time stop")


def _mem(desk: Desk) -> MemoryStore:
    assert isinstance(desk.store, MemoryStore)
    return desk.store


def test_a_restart_mid_session_keeps_the_days_start_and_its_losses_for_the_daily_cap() -> None:
    desk, old, new, fills = _traded_then_restarted()
    before = old.pipeline.risk_state(desk.now)
    assert before.realized_pnl_today != 0  # the day has made or lost money: something to keep
    new.restore(fills)
    after = new.pipeline.risk_state(desk.now)
    assert after.start_of_day_equity == before.start_of_day_equity
    assert after.realized_pnl_today == before.realized_pnl_today
