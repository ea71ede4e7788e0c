"""The in-process message bus: typed events, deterministic dispatch."""

from quantdesk.bus.bus import MessageBus

__all__ = ["MessageBus"]
