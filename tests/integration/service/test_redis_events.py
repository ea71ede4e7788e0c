"""Engine events on real Redis: the JSON on each channel, and a session that outlives a Redis outage."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from kit import MINUTE, T0, bar, rig
from quantdesk.model import Bar, Fill
from quantdesk.service.redis_events import RedisEventPublisher
from quantdesk.strategies import Strategy

REDIS_URL = os.environ.get("QUANTDESK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
pytestmark = pytest.mark.redis


class Every4(Strategy):
    def on_bar(self, b: Bar) -> None:
        i = (b.ts_event - T0) // MINUTE
        if i % 4 == 1 and self.is_flat:
            self.enter_long(stop=b.close * 0.98, targets=[b.close * 1.01])
        elif i % 4 == 3 and not self.is_flat:
            self.exit("time")


def wave(i: int) -> Bar:
    price = 100.0 + (i % 7) * 0.5
    return bar(T0 + i * MINUTE, price, price + 0.6, price - 0.6, price)


def wait_for(check: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return False


@pytest.fixture
def server() -> redis.Redis:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as error:
        reason = f"Redis is not reachable at {REDIS_URL}: {error}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"Redis is required when CI=true: {reason}", pytrace=False)
        pytest.skip(reason)
    return client


def test_every_event_of_interest_arrives_as_json_on_its_channel(server: redis.Redis) -> None:
    prefix = f"qd-test-{uuid.uuid4().hex[:8]}"
    pubsub = server.pubsub()
    pubsub.psubscribe(f"{prefix}:*")
    assert wait_for(lambda: pubsub.get_message(timeout=0.1) is not None)  # the subscribe confirmation
    r = rig()
    r.engine.add_strategy(Every4("AAA"))
    publisher = RedisEventPublisher(REDIS_URL, prefix=prefix)
    publisher.attach(r.engine)
    engine_fills: list[Fill] = []
    r.bus.subscribe(Fill, engine_fills.append)
    r.engine.start()
    for i in range(12):
        r.feed(wave(i))
    r.engine.end_cycle()
    assert wait_for(lambda: publisher.stats().queued == 0)
    received: list[tuple[str, dict[str, Any]]] = []
    while (message := pubsub.get_message(timeout=0.2)) is not None:
        if message["type"] == "pmessage":
            received.append((message["channel"].decode().split(":", 1)[1], json.loads(message["data"])))
    publisher.close()
    channels = {channel for channel, _ in received}
    assert {"signals", "decisions", "orders", "fills", "positions"} <= channels
    fills = [data for channel, data in received if channel == "fills"]
    assert [f["execution_id"] for f in fills] == [f.execution_id for f in engine_fills]
    assert [f["price"] for f in fills] == [str(f.price) for f in engine_fills]
    orders = [data for channel, data in received if channel == "orders"]
    assert {o["client_order_id"] for o in orders} == set(r.engine.orders.orders)
    assert publisher.stats().published == len(received)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def private_redis() -> Iterator[tuple[int, list[subprocess.Popen[bytes]]]]:
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI") == "true":
            pytest.fail("redis-server is required when CI=true", pytrace=False)
        pytest.skip("redis-server is not installed")
    port = free_port()
    processes: list[subprocess.Popen[bytes]] = []
    yield port, processes
    for process in processes:
        process.kill()
        process.wait()


def start_redis(port: int, processes: list[subprocess.Popen[bytes]]) -> None:
    args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    processes.append(subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    client = redis.Redis(port=port, socket_connect_timeout=0.2)
    assert wait_for(lambda: _pings(client)), "redis-server did not start"


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


def test_trading_carries_on_when_redis_dies_and_publishing_resumes_when_it_is_back(
    private_redis: tuple[int, list[subprocess.Popen[bytes]]],
) -> None:
    port, processes = private_redis
    start_redis(port, processes)
    r = rig()
    r.engine.add_strategy(Every4("AAA"))
    lost: list[str] = []
    publisher = RedisEventPublisher(f"redis://127.0.0.1:{port}/0", prefix="t", on_disconnect=lost.append)
    publisher.attach(r.engine)
    r.engine.start()
    for i in range(8):
        r.feed(wave(i))
    assert wait_for(lambda: publisher.stats().connected and publisher.stats().queued == 0)
    before = publisher.stats().published

    processes[0].kill()  # Redis gone mid-session
    processes[0].wait()
    started = time.monotonic()
    for i in range(8, 40):
        r.feed(wave(i))
    r.engine.end_cycle()
    assert time.monotonic() - started < 1.0  # the engine never waited on Redis
    assert r.engine.pipeline.approved >= 8  # and kept trading
    assert wait_for(lambda: not publisher.stats().connected)
    assert publisher.stats().queued > 0
    assert len(lost) == 1  # told once (the node alerts "stream disconnected"), not per retry

    start_redis(port, processes)  # back on the same port
    assert wait_for(lambda: publisher.stats().queued == 0, timeout=15)
    stats = publisher.stats()
    assert stats.connected and stats.reconnects >= 1 and stats.published > before
    publisher.close()
