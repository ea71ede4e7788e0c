"""Order life cycle: the transition table, fills (VWAP, leaves, status) and random event sequences."""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from quantdesk.model import IllegalTransition, Order, OrderStatus, OrderType, Side
from quantdesk.model.orders import TRANSITIONS

D = Decimal
S = OrderStatus


def _order(status: OrderStatus = S.INITIALIZED, qty: Decimal | int = 100) -> Order:
    return Order(
        "ord-1", "AAPL", Side.BUY, OrderType.LIMIT, D(qty), price=D("189.50"), status=status, ts_created=1
    )


def _snapshot(order: Order) -> tuple[object, ...]:
    return (order.status, order.filled_qty, order.avg_fill_price, order.fees, order.ts_last, order.reason)


_LEGAL = [(source, target) for source, targets in TRANSITIONS.items() for target in sorted(targets)]
_ILLEGAL = [
    (source, target)
    for source, target in itertools.product(OrderStatus, OrderStatus)
    if target not in TRANSITIONS[source]
]


# -- the transition table -----------------------------------------------------------------------


def test_transition_table_covers_every_status() -> None:
    assert set(TRANSITIONS) == set(OrderStatus)
    assert len(_LEGAL) + len(_ILLEGAL) == len(OrderStatus) ** 2


@pytest.mark.parametrize(("source", "target"), _LEGAL, ids=[f"{s}->{t}" for s, t in _LEGAL])
def test_every_legal_transition_succeeds(source: OrderStatus, target: OrderStatus) -> None:
    order = _order(source)
    assert order.can_transition(target)
    order.transition(target, ts=42, reason="venue says so")
    assert order.status is target
    assert order.ts_last == 42
    assert order.reason == "venue says so"


@pytest.mark.parametrize(("source", "target"), _ILLEGAL, ids=[f"{s}->{t}" for s, t in _ILLEGAL])
def test_every_illegal_transition_raises_naming_both_states(source: OrderStatus, target: OrderStatus) -> None:
    order = _order(source)
    before = _snapshot(order)
    assert not order.can_transition(target)
    with pytest.raises(IllegalTransition, match=f"^order ord-1: {source.value} -> {target.value} is not"):
        order.transition(target, ts=42, reason="ignored")
    assert _snapshot(order) == before


@pytest.mark.parametrize("status", list(OrderStatus))
def test_exactly_the_terminal_states_have_no_exits(status: OrderStatus) -> None:
    assert status.is_terminal == (TRANSITIONS[status] == frozenset())
    assert _order(status).is_terminal == status.is_terminal


def test_terminal_states_are_filled_canceled_rejected_expired() -> None:
    assert {s for s in OrderStatus if s.is_terminal} == {S.FILLED, S.CANCELED, S.REJECTED, S.EXPIRED}


def test_open_states_are_those_past_submission_and_not_terminal() -> None:
    closed = {S.INITIALIZED, S.PENDING_SUBMIT, S.FILLED, S.CANCELED, S.REJECTED, S.EXPIRED}
    assert {s for s in OrderStatus if not _order(s).is_open} == closed


def test_a_refused_cancel_returns_pending_cancel_to_a_working_state() -> None:
    order = _order(S.ACCEPTED)
    order.transition(S.PENDING_CANCEL, ts=1)
    order.transition(S.ACCEPTED, ts=2)
    assert order.status is S.ACCEPTED


def test_transition_without_a_reason_keeps_the_previous_one() -> None:
    order = _order(S.SUBMITTED)
    order.transition(S.UNKNOWN, ts=1, reason="timeout on submit")
    order.transition(S.ACCEPTED, ts=2)
    assert order.reason == "timeout on submit"


# -- apply_fill ----------------------------------------------------------------------------------


def test_partial_then_final_fill_average_price_is_volume_weighted() -> None:
    order = _order(S.ACCEPTED)
    order.apply_fill(D(30), D("10.00"), D("0.30"), ts=5)
    assert (order.status, order.filled_qty, order.leaves_qty) == (S.PARTIALLY_FILLED, D(30), D(70))
    assert (order.avg_fill_price, order.ts_last) == (D(10), 5)
    order.apply_fill(D(70), D("10.10"), D("0.70"), ts=6)
    assert (order.status, order.filled_qty, order.leaves_qty) == (S.FILLED, D(100), D(0))
    assert order.avg_fill_price == D("10.07")  # (30 * 10.00 + 70 * 10.10) / 100
    assert order.fees == D("1.00")
    assert order.is_terminal


def test_non_terminating_average_is_the_exact_decimal_quotient() -> None:
    order = _order(S.ACCEPTED, qty=3)
    order.apply_fill(D(1), D(10), D(0), ts=1)
    order.apply_fill(D(2), D(11), D(0), ts=2)
    assert order.avg_fill_price == D(32) / D(3)


def test_one_fill_for_the_whole_quantity_goes_straight_to_filled() -> None:
    order = _order(S.SUBMITTED)
    order.apply_fill(D(100), D("189.50"), D(0), ts=1)
    assert order.status is S.FILLED
    assert order.avg_fill_price == D("189.50")


def test_a_fill_racing_a_cancel_is_applied_from_pending_cancel() -> None:
    order = _order(S.PENDING_CANCEL)
    order.apply_fill(D(40), D("189.50"), D(0), ts=1)
    assert (order.status, order.leaves_qty) == (S.PARTIALLY_FILLED, D(60))
    order.apply_fill(D(60), D("189.50"), D(0), ts=2)
    assert (order.status, order.leaves_qty) == (S.FILLED, D(0))


def test_overfill_raises_and_changes_nothing() -> None:
    order = _order(S.ACCEPTED)
    order.apply_fill(D(60), D("10.00"), D(0), ts=1)
    before = _snapshot(order)
    with pytest.raises(IllegalTransition, match=r"^order ord-1: fill of 41 exceeds leaves 40$"):
        order.apply_fill(D(41), D("10.00"), D(0), ts=2)
    assert _snapshot(order) == before


@pytest.mark.parametrize("qty", [D(0), D(-5)])
def test_a_fill_of_zero_or_negative_quantity_raises(qty: Decimal) -> None:
    order = _order(S.ACCEPTED)
    with pytest.raises(ValueError, match=r"^order ord-1: fill quantity must be positive$"):
        order.apply_fill(qty, D("10.00"), D(0), ts=1)
    assert order.filled_qty == 0


@pytest.mark.parametrize("status", [S.CANCELED, S.EXPIRED, S.REJECTED, S.INITIALIZED, S.PENDING_SUBMIT])
def test_a_fill_in_a_state_that_cannot_fill_raises_and_changes_nothing(status: OrderStatus) -> None:
    # The status check used to come after the quantities were updated, so a late
    # fill on a cancelled order raised but still bumped filled_qty, price and fees.
    order = _order(status)
    before = _snapshot(order)
    with pytest.raises(IllegalTransition, match=f"{status.value} -> PARTIALLY_FILLED"):
        order.apply_fill(D(10), D("10.00"), D("0.10"), ts=9)
    assert _snapshot(order) == before


# -- random event sequences ---------------------------------------------------------------------

_PRICES = st.integers(1, 100_000).map(lambda cents: D(cents).scaleb(-2))


class OrderLifeCycle(RuleBasedStateMachine):
    """Drives one order with random venue events; each is applied only if the table allows it."""

    def __init__(self) -> None:
        super().__init__()
        self.order = _order()
        self.fills: list[tuple[Decimal, Decimal]] = []
        self.fees = D(0)
        self.ts = 0
        self.terminal_snapshot: tuple[object, ...] | None = None

    @initialize(qty=st.integers(1, 1000))
    def create(self, qty: int) -> None:
        self.order = _order(qty=D(qty))

    def _move(self, target: OrderStatus) -> None:
        self.ts += 1
        before = _snapshot(self.order)
        if self.order.can_transition(target):
            assert not self.order.is_terminal
            self.order.transition(target, self.ts)
            assert self.order.status is target
        else:
            with pytest.raises(IllegalTransition):
                self.order.transition(target, self.ts)
            assert _snapshot(self.order) == before

    @rule()
    def submit(self) -> None:
        self._move(S.PENDING_SUBMIT)

    @rule()
    def sent(self) -> None:
        self._move(S.SUBMITTED)

    @rule()
    def lost(self) -> None:
        self._move(S.UNKNOWN)

    @rule()
    def accept(self) -> None:
        self._move(S.ACCEPTED)

    @rule()
    def trigger(self) -> None:
        self._move(S.TRIGGERED)

    @rule()
    def request_cancel(self) -> None:
        self._move(S.PENDING_CANCEL)

    @rule()
    def cancel(self) -> None:
        self._move(S.CANCELED)

    @rule()
    def reject(self) -> None:
        self._move(S.REJECTED)

    @rule()
    def expire(self) -> None:
        self._move(S.EXPIRED)

    @rule(share=st.floats(0.0, 1.2), price=_PRICES, fee=st.integers(0, 500))
    def fill(self, share: float, price: Decimal, fee: int) -> None:
        self.ts += 1
        order = self.order
        qty = max(D(1), D(int(order.qty * D(share))))
        fee_paid = D(fee).scaleb(-2)
        target = S.FILLED if order.filled_qty + qty == order.qty else S.PARTIALLY_FILLED
        before = _snapshot(order)
        if qty <= order.leaves_qty and order.can_transition(target):
            order.apply_fill(qty, price, fee_paid, self.ts)
            self.fills.append((qty, price))
            self.fees += fee_paid
            assert order.status is target
        else:
            with pytest.raises(IllegalTransition):
                order.apply_fill(qty, price, fee_paid, self.ts)
            assert _snapshot(order) == before

    @invariant()
    def filled_never_exceeds_qty(self) -> None:
        assert 0 <= self.order.filled_qty <= self.order.qty
        assert self.order.leaves_qty == self.order.qty - self.order.filled_qty

    @invariant()
    def filled_is_the_sum_of_applied_fills(self) -> None:
        assert self.order.filled_qty == sum((qty for qty, _ in self.fills), D(0))
        assert self.order.fees == self.fees

    @invariant()
    def average_lies_between_the_fill_prices(self) -> None:
        if self.fills:
            prices = [price for _, price in self.fills]
            assert min(prices) <= self.order.avg_fill_price <= max(prices)
        else:
            assert self.order.avg_fill_price == 0

    @invariant()
    def filled_status_means_fully_filled(self) -> None:
        assert (self.order.status is S.FILLED) == (self.order.filled_qty == self.order.qty)

    @invariant()
    def terminal_state_never_changes(self) -> None:
        if self.terminal_snapshot is not None:
            assert _snapshot(self.order) == self.terminal_snapshot
        elif self.order.is_terminal:
            self.terminal_snapshot = _snapshot(self.order)


OrderLifeCycle.TestCase.settings = settings(max_examples=100, stateful_step_count=30, deadline=None)
test_random_event_sequences_keep_the_order_consistent = OrderLifeCycle.TestCase


def test_a_late_fill_shows_on_a_cancelled_order_without_reopening_it() -> None:
    order = _order(S.CANCELED, qty=10)
    order.apply_late_fill(Decimal(4), Decimal("100"), Decimal("0.10"), 7)
    order.apply_late_fill(Decimal(6), Decimal("101"), Decimal("0.10"), 8)
    assert order.status is S.CANCELED
    assert (order.filled_qty, order.avg_fill_price, order.fees, order.ts_last) == (
        10,
        Decimal("100.6"),
        Decimal("0.20"),
        8,
    )
    with pytest.raises(IllegalTransition, match="late fill of 1 against leaves 0"):
        order.apply_late_fill(Decimal(1), Decimal("100"), Decimal(0), 9)
