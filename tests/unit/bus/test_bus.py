"""The message bus: exact-type routing, subscription-order dispatch, cheap when nobody listens."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from quantdesk.bus import MessageBus


@dataclass(frozen=True)
class Ping:
    n: int


@dataclass(frozen=True)
class Pong:
    n: int


def test_handlers_run_in_subscription_order() -> None:
    bus = MessageBus()
    seen: list[str] = []
    bus.subscribe(Ping, lambda e: seen.append(f"a{e.n}"))
    bus.subscribe(Ping, lambda e: seen.append(f"b{e.n}"))
    bus.publish(Ping(1))
    bus.publish(Ping(2))
    assert seen == ["a1", "b1", "a2", "b2"]


def test_events_go_only_to_their_type() -> None:
    bus = MessageBus()
    pings: list[Ping] = []
    bus.subscribe(Ping, pings.append)
    bus.publish(Pong(1))
    assert pings == []
    assert not bus.has_subscribers(Pong)
    assert bus.published == 0


def test_unsubscribe_and_double_subscribe() -> None:
    bus = MessageBus()
    seen: list[Ping] = []
    bus.subscribe(Ping, seen.append)
    with pytest.raises(ValueError, match="already subscribed"):
        bus.subscribe(Ping, seen.append)
    bus.unsubscribe(Ping, seen.append)
    bus.publish(Ping(1))
    assert seen == []
    assert not bus.has_subscribers(Ping)
