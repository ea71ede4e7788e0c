"""The capture: what the engine's thread buffers per bus event, and the records the writer reads back."""

from __future__ import annotations

import gc
from decimal import Decimal

import msgspec

from kit import T0, rig
from quantdesk.engine.messages import DecisionRecord, FlattenCompleted, SignalBlocked
from quantdesk.model import Fill, Order, OrderStatus, OrderType, Side, Signal
from quantdesk.risk.kill_switch import StateChange
from quantdesk.store.capture import (
    DECISION,
    FILL,
    FLATTEN,
    ORDER,
    REFUSED,
    SIGNAL,
    STATE,
    Capture,
    as_record,
    event_of,
    kind_of,
)


def _order() -> Order:
    order = Order("qd-PLAN1-entry-0", "AAA", Side.BUY, OrderType.MARKET, Decimal(10), ts_created=T0)
    order.transition(OrderStatus.PENDING_SUBMIT, T0)
    return order


def _capture_every_kind(capture: Capture | None = None) -> tuple[Capture, Order, list[object]]:
    capture = capture or Capture(max_buffer=1_000, on_full=lambda: None)
    signal = Signal("s", "AAA", Side.BUY, T0, stop=Decimal("99.5"))
    decision = DecisionRecord("PLAN1", signal, True, (), (), Decimal(10), Decimal(5), Decimal("0.5"), T0)
    order = _order()
    ten, hundred, zero = Decimal(10), Decimal(100), Decimal(0)
    fill = Fill("E1", "qd-PLAN1-entry-0", "V1", "AAA", Side.BUY, ten, hundred, zero, T0 + 1, T0 + 1)
    events: list[object] = [
        signal,
        decision,
        SignalBlocked(signal, "stop above entry"),
        StateChange("pause", "operator", "lunch", T0 + 2),
        FlattenCompleted(T0 + 3, "kill_switch", "drawdown", 2, 1, 1_500_000),
        fill,
    ]
    capture.on_signal(signal)
    capture.on_decision(decision)
    capture.on_order(order)  # first sighting: with its identity
    order.transition(OrderStatus.SUBMITTED, T0 + 1)
    capture.on_order(order)  # a repeat: the copy alone
    capture.on_refused(events[2])  # type: ignore[arg-type]
    capture.on_state_change(events[3])  # type: ignore[arg-type]
    capture.on_flatten(events[4])  # type: ignore[arg-type]
    capture.on_fill(fill)
    return capture, order, events


def test_every_event_is_buffered_as_itself_and_untracked_by_the_gc() -> None:
    """A tuple per event was one allocation more on the engine's thread and one the collector
    tracks (young collections came twice as often with the writer on); an order goes in as its
    copy, first sighting or not: telling them apart is the drain's work, off the tick."""
    capture, _, events = _capture_every_kind()
    entries = list(capture.buffer)
    assert len(entries) == 8
    assert not any(isinstance(entry, tuple) for entry in entries)
    assert not any(gc.is_tracked(entry) for entry in entries)
    assert all(isinstance(entry, Order) for entry in entries[2:4])
    assert all(entry is event for entry, event in zip([*entries[:2], *entries[4:]], events, strict=True))


def test_each_entry_drains_as_the_record_the_writer_expects() -> None:
    capture, _, events = _capture_every_kind()
    kinds_buffered = [kind_of(entry) for entry in capture.buffer]
    events_buffered = [event_of(entry) for entry in capture.buffer]
    records = [as_record(entry) for entry in capture.drain(100)]
    kinds = [SIGNAL, DECISION, ORDER, ORDER, REFUSED, STATE, FLATTEN, FILL]
    assert [record[0] for record in records] == kinds == kinds_buffered
    assert [record[1] for record in records] == events_buffered
    assert not capture.buffer
    signal, decision, first, repeat, refused, change, flatten, fill = records
    assert signal == (SIGNAL, events[0]) and decision == (DECISION, events[1])
    assert first[2:] == ("", "PLAN1")  # no order manager: the plan from the client id
    assert repeat[2:] == (None, None)  # identity comes from the first sighting
    assert (refused[1], change[1], flatten[1], fill[1]) == tuple(events[2:])
    assert as_record(first) is first  # a record stays as it is


def test_a_drain_takes_what_it_is_asked_for_oldest_first_and_an_order_is_first_seen_once() -> None:
    capture, order, _ = _capture_every_kind()
    head = [as_record(entry) for entry in capture.drain(3)]
    assert [record[0] for record in head] == [SIGNAL, DECISION, ORDER] and head[2][2:] == ("", "PLAN1")
    capture.on_order(order)  # published again after its first sighting was drained
    rest = [as_record(entry) for entry in capture.drain(100)]
    assert [record[0] for record in rest] == [ORDER, REFUSED, STATE, FLATTEN, FILL, ORDER]
    assert rest[0][2:] == rest[-1][2:] == (None, None)
    assert capture.drain(5) == []


def test_a_record_put_back_or_buffered_by_the_outbox_drains_as_it_is_and_counts_as_seen() -> None:
    capture = Capture(max_buffer=1_000, on_full=lambda: None)
    order = _order()
    outbox_row = (ORDER, order, "s", "PLAN1")
    capture.buffer.extend([outbox_row, msgspec.structs.replace(order)])
    first, repeat = capture.drain(2)
    assert first is outbox_row
    assert as_record(repeat)[2:] == (None, None)


def test_an_order_is_buffered_as_it_was_when_published() -> None:
    capture, order, _ = _capture_every_kind()
    first, repeat = (as_record(entry)[1] for entry in capture.drain(4)[2:4])
    order.apply_fill(Decimal(10), Decimal(100), Decimal(0), T0 + 5)
    assert (first.status, repeat.status, order.status) == (
        OrderStatus.PENDING_SUBMIT,
        OrderStatus.SUBMITTED,
        OrderStatus.FILLED,
    )
    assert first is not order and repeat is not order


PLAN7 = "ABCDEFGHIJKLMNOP"


def _entered() -> tuple[Capture, Order]:
    """A capture beside an order manager that holds an entry the capture never saw published."""
    r = rig()
    r.engine.start()
    order = r.engine.orders.enter("swing", "AAA", Side.BUY, Decimal(10), plan_id=PLAN7, stop=Decimal(90))
    capture = Capture(max_buffer=1_000, on_full=lambda: None)
    capture.orders = r.engine.orders
    return capture, order


def _fill(order: Order, execution_id: str) -> Fill:
    ten, hundred, zero = Decimal(10), Decimal(100), Decimal(0)
    return Fill(execution_id, order.client_order_id, "V1", "AAA", Side.BUY, ten, hundred, zero, T0, T0)


def test_a_fill_for_an_order_never_published_brings_the_order_first_with_its_identity() -> None:
    """The engine publishes a fill before the order update it causes: a fill may come before any
    sighting of its order, and the store could not file it."""
    capture, order = _entered()
    fill = _fill(order, "E1")
    capture.on_fill(fill)
    records = [as_record(entry) for entry in capture.drain(1)]
    assert [record[0] for record in records] == [ORDER, FILL]
    assert records[0][1] is not order and records[0][1].client_order_id == order.client_order_id
    assert records[0][2:] == ("swing", PLAN7)
    assert records[1] == (FILL, fill)
    capture.on_fill(_fill(order, "E2"))  # the order is known now: the fill alone
    assert [as_record(entry)[0] for entry in capture.drain(1)] == [FILL]


def test_a_fill_for_an_order_already_published_drains_alone() -> None:
    capture, order = _entered()
    capture.on_order(order)
    capture.on_fill(_fill(order, "E1"))
    records = [as_record(entry) for entry in capture.drain(2)]
    assert [record[0] for record in records] == [ORDER, FILL]
    assert records[0][2:] == ("swing", PLAN7)  # the first sighting gets its identity at the drain


def test_the_buffer_bound_is_reported_once_when_reached() -> None:
    full: list[int] = []
    capture = Capture(max_buffer=3, on_full=lambda: full.append(len(capture.buffer)))
    _capture_every_kind(capture)
    assert len(capture.buffer) == 8
    assert full == [3]  # the decision and the order checked; the signal went straight in
