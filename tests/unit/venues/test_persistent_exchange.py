"""The persistent simulated exchange: state survives a new process, and it commits before it answers."""

from __future__ import annotations

import pickle
from decimal import Decimal
from pathlib import Path

import pytest

from kit import T0, bar, instrument
from quantdesk.errors import DataError
from quantdesk.model import Order, OrderAccepted, OrderEvent, OrderFilled, OrderStatus, OrderType, Side
from quantdesk.venues.sim import SimulatedExchange
from quantdesk.venues.sim.persistent import PersistentExchange


def market(cid: str, side: Side = Side.BUY, qty: int = 10) -> Order:
    return Order(cid, "AAA", side, OrderType.MARKET, Decimal(qty))


def stop(cid: str, price: str, qty: int = 10) -> Order:
    return Order(cid, "AAA", Side.SELL, OrderType.STOP, Decimal(qty), stop_price=Decimal(price))


def exchange(now: list[int]) -> SimulatedExchange:
    return SimulatedExchange({"AAA": instrument()}, cash=Decimal(100_000), clock_ns=lambda: now[0])


class Recorder:
    """A listener that also checks the venue had saved its state before each answer."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.events: list[OrderEvent] = []
        self.saved_submitted: list[list[str]] = []

    def on_order_event(self, event: OrderEvent) -> None:
        self.events.append(event)
        self.saved_submitted.append(pickle.loads(self.path.read_bytes())["submitted"])


def test_the_state_survives_a_new_process(tmp_path: Path) -> None:
    path, now = tmp_path / "venue.pickle", [T0]
    first = PersistentExchange(exchange(now), path)
    assert first.restored is False
    first.connect(Recorder(path))
    first.submit_order(market("E1"))
    first.submit_order(stop("S1", "95.00"))
    first.on_bar(bar(T0, 100.0, 101.0, 99.0, 100.5))  # fills E1 at the open; S1 rests
    assert first.positions == {"AAA": Decimal(10)}

    again = PersistentExchange(exchange(now), path)  # what a restarted node builds
    assert again.restored is True
    assert again.positions == {"AAA": Decimal(10)} and again.cash == first.cash
    assert [o.client_order_id for o in again.open_orders()] == ["S1"]
    state = again.query_order("E1")
    assert state is not None and state.status is OrderStatus.FILLED and state.filled_qty == 10
    assert again.submitted == ["E1", "S1"] and [f[1] for f in again.fills] == ["E1"]
    assert again.last_ts == T0
    # The restored book still matches: the resting stop fills on a later bar.
    listener = Recorder(path)
    again.connect(listener)
    again.on_bar(bar(T0 + 60_000_000_000, 96.0, 96.0, 94.0, 94.5))
    assert again.positions == {"AAA": Decimal(0)}
    assert [type(e) for e in listener.events] == [OrderFilled]


def test_every_answer_comes_after_its_state_is_on_disk(tmp_path: Path) -> None:
    path, now = tmp_path / "venue.pickle", [T0]
    venue = PersistentExchange(exchange(now), path)
    listener = Recorder(path)
    venue.connect(listener)
    venue.submit_order(market("E1"))
    assert [type(e) for e in listener.events] == [OrderAccepted]
    assert listener.saved_submitted == [["E1"]]


def test_a_listener_that_sends_while_answered_gets_answers_in_venue_order(tmp_path: Path) -> None:
    path, now = tmp_path / "venue.pickle", [T0]
    venue = PersistentExchange(exchange(now), path)
    seen: list[str] = []

    class PlacesStopOnFill:
        def on_order_event(self, event: OrderEvent) -> None:
            seen.append(f"{type(event).__name__}:{event.client_order_id}")
            if type(event) is OrderFilled and event.client_order_id == "E1":
                venue.submit_order(stop("S1", "95.00"))

    venue.connect(PlacesStopOnFill())
    venue.submit_order(market("E1"))
    venue.submit_order(market("E2", qty=5))
    venue.on_bar(bar(T0, 100.0, 101.0, 99.0, 100.5))
    # E2's fill was produced before S1 was sent, so it is answered before S1's acceptance.
    assert seen == [
        "OrderAccepted:E1",
        "OrderAccepted:E2",
        "OrderFilled:E1",
        "OrderFilled:E2",
        "OrderAccepted:S1",
    ]


def test_a_repeated_id_is_recorded_as_sent_twice(tmp_path: Path) -> None:
    venue = PersistentExchange(exchange([T0]), tmp_path / "venue.pickle")
    venue.submit_order(market("E1"))
    venue.submit_order(market("E1"))
    assert venue.submitted == ["E1", "E1"]


def test_a_state_file_that_is_not_one_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "venue.pickle"
    path.write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="cannot read the venue state"):
        PersistentExchange(exchange([T0]), path)
    path.write_bytes(pickle.dumps({"format": 99}))
    with pytest.raises(DataError, match="not a venue state file"):
        PersistentExchange(exchange([T0]), path)


def test_a_state_saved_before_the_explicit_state_list_still_loads(tmp_path: Path) -> None:
    """Files written when the whole object was saved also hold what `derive_state` works out:
    ignored on load. A part no version ever saved is refused by name."""
    now = [T0]
    venue = exchange(now)
    venue.submit_order(market("E1"))
    old_style = {**venue.state(), "_day_orders": 7, "_enforce_session": True}
    restored = exchange(now)
    restored.restore(old_style)
    assert restored.query_order("E1") is not None
    assert restored.state()["_seen_ids"] == {"E1"}
    with pytest.raises(ValueError, match="_surprise"):
        restored.restore({"_surprise": 1})
