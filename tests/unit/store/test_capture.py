"""The capture: what the engine's thread buffers per bus event, and the records the writer reads back."""

from __future__ import annotations

import gc
from decimal import Decimal

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

T0 = 1_704_205_800_000_000_000


def _order() -> Order:
    order = Order("qd-PLAN1-entry-0", "AAA", Side.BUY, OrderType.MARKET, Decimal(10), ts_created=T0)
    order.transition(OrderStatus.PENDING_SUBMIT, T0)
    return order


def _capture_every_kind() -> tuple[Capture, Order, list[object]]:
    capture = Capture(max_buffer=1_000, on_full=lambda: None)
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


def test_every_event_but_an_orders_first_sighting_is_buffered_as_itself_and_untracked_by_the_gc() -> None:
    """A tuple per event was one allocation more on the engine's thread and one the collector
    tracks (young collections came twice as often with the writer on)."""
    capture, _, events = _capture_every_kind()
    entries = list(capture.buffer)
    assert len(entries) == 8
    first_sighting = entries[2]
    assert isinstance(first_sighting, tuple) and first_sighting[0] == ORDER
    bare = entries[:2] + entries[3:]
    assert not any(isinstance(entry, tuple) for entry in bare)
    assert not any(gc.is_tracked(entry) for entry in bare)
    assert all(entry is event for entry, event in zip([*entries[:2], *entries[4:]], events, strict=True))


def test_each_entry_reads_back_as_the_record_the_writer_expects() -> None:
    capture, _, events = _capture_every_kind()
    records = [as_record(entry) for entry in capture.buffer]
    kinds = [SIGNAL, DECISION, ORDER, ORDER, REFUSED, STATE, FLATTEN, FILL]
    assert [record[0] for record in records] == kinds
    assert [kind_of(entry) for entry in capture.buffer] == [record[0] for record in records]
    assert [event_of(entry) for entry in capture.buffer] == [record[1] for record in records]
    signal, decision, first, repeat, refused, change, flatten, fill = records
    assert signal == (SIGNAL, events[0]) and decision == (DECISION, events[1])
    assert first[2:] == ("", "PLAN1")  # no order manager: the plan from the client id
    assert repeat[2:] == (None, None)  # identity comes from the first sighting
    assert (refused[1], change[1], flatten[1], fill[1]) == tuple(events[2:])
    assert as_record(first) is first  # a record stays as it is


def test_an_order_is_buffered_as_it_was_when_published() -> None:
    capture, order, _ = _capture_every_kind()
    first, repeat = (as_record(entry)[1] for entry in list(capture.buffer)[2:4])
    order.apply_fill(Decimal(10), Decimal(100), Decimal(0), T0 + 5)
    assert (first.status, repeat.status, order.status) == (
        OrderStatus.PENDING_SUBMIT,
        OrderStatus.SUBMITTED,
        OrderStatus.FILLED,
    )
    assert first is not order and repeat is not order
