"""The WebSocket event stream: bounded per-client queues fed from the engine without ever blocking it."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

MAX_QUEUE = 1_000


@dataclass(eq=False)
class _Client:
    queue: asyncio.Queue[dict[str, Any]]
    loop: asyncio.AbstractEventLoop
    dropped: int = 0


class EventHub:
    """Fans each engine event out to every connected client.

    `publish` runs on the engine's thread and only enqueues: a slow client loses
    its oldest events (counted) instead of slowing trading down. An engine on
    another thread than the clients' loop (tests) hands events over thread-safely.
    """

    def __init__(self, max_queue: int = MAX_QUEUE) -> None:
        self._clients: set[_Client] = set()
        self._max = max_queue
        self.published = 0

    @property
    def clients(self) -> int:
        return len(self._clients)

    @property
    def dropped(self) -> int:
        return sum(c.dropped for c in self._clients)

    def connect(self) -> _Client:
        client = _Client(asyncio.Queue(self._max), asyncio.get_running_loop())
        self._clients.add(client)
        return client

    def disconnect(self, client: _Client) -> None:
        self._clients.discard(client)

    def publish(self, channel: str, data: dict[str, Any]) -> None:
        if not self._clients:
            return
        self.published += 1
        message = {"channel": channel, "data": data}
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        for client in list(self._clients):
            if client.loop is here:
                self._put(client, message)
            else:
                with contextlib.suppress(RuntimeError):  # that loop is closing: the client is gone
                    client.loop.call_soon_threadsafe(self._put, client, message)

    @staticmethod
    def _put(client: _Client, message: dict[str, Any]) -> None:
        queue = client.queue
        if queue.full():
            queue.get_nowait()
            client.dropped += 1
        queue.put_nowait(message)
