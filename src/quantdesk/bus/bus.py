"""In-process publish/subscribe of typed events with a deterministic dispatch order."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

E = TypeVar("E")
Handler = Callable[[Any], None]


class MessageBus:
    """Routes each published event to the handlers subscribed to its exact type.

    Handlers run synchronously in subscription order, so the same events always
    produce the same sequence of effects. Publishing a type nobody subscribed to
    costs one dict lookup; hot paths can ask `has_subscribers` once and skip
    building the event at all.
    """

    def __init__(self) -> None:
        self._handlers: dict[type, tuple[Handler, ...]] = {}
        self.published = 0

    def subscribe(self, event_type: type[E], handler: Callable[[E], None]) -> None:
        current = self._handlers.get(event_type, ())
        if handler in current:
            raise ValueError(f"{handler!r} is already subscribed to {event_type.__name__}")
        self._handlers[event_type] = (*current, handler)

    def unsubscribe(self, event_type: type[E], handler: Callable[[E], None]) -> None:
        current = self._handlers.get(event_type, ())
        remaining = tuple(h for h in current if h != handler)
        if remaining:
            self._handlers[event_type] = remaining
        else:
            self._handlers.pop(event_type, None)

    def has_subscribers(self, event_type: type) -> bool:
        return event_type in self._handlers

    def publish(self, event: object) -> None:
        handlers = self._handlers.get(type(event))
        if handlers is None:
            return
        self.published += 1
        for handler in handlers:
            handler(event)
