"""Engine events published on Redis channels as JSON, off the hot path; trading never waits on Redis."""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
import structlog

from quantdesk.engine import Engine
from quantdesk.service.events import subscribe_events

log = structlog.get_logger("quantdesk.redis")

_MAX_BACKOFF_S = 5.0


@dataclass(frozen=True, slots=True)
class RedisStats:
    published: int
    dropped: int
    reconnects: int
    connected: bool
    queued: int


class RedisEventPublisher:
    """Publishes signals, decisions, orders, fills, positions and risk events to `{prefix}:{channel}`.

    The engine's thread only appends to a bounded queue (the oldest event is
    dropped and counted when it is full). A daemon thread publishes, and while
    Redis is down it reconnects with exponential backoff (capped at 5 s); the
    event it was sending is kept and sent first once Redis is back.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "quantdesk",
        max_queue: int = 10_000,
        on_disconnect: Callable[[str], None] | None = None,
    ) -> None:
        """`on_disconnect(reason)` runs on the publisher's thread when a connection is lost."""
        self.url = url
        self._on_disconnect = on_disconnect
        self.prefix = prefix
        self._queue: deque[tuple[str, str]] = deque()
        self._max = max_queue
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: redis.Redis | None = None
        self.published = self.dropped = self.reconnects = 0
        self.connected = False

    def attach(self, engine: Engine) -> None:
        """Subscribe to `engine`'s events (before `engine.start()`) and start publishing."""
        subscribe_events(engine, self.enqueue)
        self.start()

    def enqueue(self, channel: str, data: dict[str, Any]) -> None:
        queue = self._queue
        if len(queue) >= self._max:
            queue.popleft()
            self.dropped += 1
        queue.append((f"{self.prefix}:{channel}", json.dumps(data, separators=(",", ":"))))
        self._wake.set()

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="quantdesk-redis", daemon=True)
        self._thread.start()

    def stats(self) -> RedisStats:
        return RedisStats(self.published, self.dropped, self.reconnects, self.connected, len(self._queue))

    def close(self, timeout: float = 2.0) -> int:
        """Send what is queued if Redis answers within `timeout`, stop, disconnect; return what is left."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._client is not None:
            self._client.close()
        self.connected = False
        return len(self._queue)

    def _run(self) -> None:
        backoff = 0.1
        while True:
            if self._stop.is_set() and (not self._queue or not self.connected):
                return
            if not self._queue:
                self._wake.wait(0.5)
                self._wake.clear()
                continue
            try:
                client = self._connect()
                pipe = client.pipeline(transaction=False)
                batch = [self._queue[i] for i in range(min(len(self._queue), 500))]
                for channel, payload in batch:
                    pipe.publish(channel, payload)
                pipe.execute()
                for _ in batch:
                    self._queue.popleft()
                self.published += len(batch)
                backoff = 0.1
            except redis.RedisError as error:
                if self.connected:
                    log.warning("redis_disconnected", error=str(error))
                    if self._on_disconnect is not None:
                        self._on_disconnect(str(error))
                self.connected = False
                self._client = None
                if self._stop.wait(backoff):
                    return
                backoff = min(backoff * 2, _MAX_BACKOFF_S)

    def _connect(self) -> redis.Redis:
        if self._client is not None and self.connected:
            return self._client
        client = redis.Redis.from_url(self.url, socket_timeout=2.0, socket_connect_timeout=2.0)
        client.ping()
        if self._client is None and self.published:
            self.reconnects += 1
        self._client = client
        self.connected = True
        log.info("redis_connected", url=self.url)
        return client
