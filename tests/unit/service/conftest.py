"""An API over a real engine on the simulated venue: a rig trading `Swing`, the app, a client."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from kit import MINUTE, T0, Rig, bar, rig
from quantdesk.model import Bar, Tick
from quantdesk.service import EngineControl, create_app
from quantdesk.strategies import Strategy
from quantdesk.telemetry import TraderMetrics

TOKEN = "test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class Swing(Strategy):
    """Long every sixth bar with a stop and two targets."""

    def on_bar(self, b: Bar) -> None:
        i = (b.ts_event - T0) // MINUTE
        if i % 6 == 1 and self.is_flat:
            self.enter_long(stop=b.close * 0.97, targets=[b.close * 1.02, b.close * 1.05])


def swing_bar(i: int) -> Bar:
    close = round(100 + 3 * math.sin(i / 2.0), 2)
    previous = round(100 + 3 * math.sin((i - 1) / 2.0), 2)
    return bar(T0 + i * MINUTE, previous, max(previous, close) + 0.6, min(previous, close) - 0.6, close)


@dataclass
class Api:
    rig: Rig
    client: TestClient
    metrics: TraderMetrics

    def feed(self, first: int, last: int) -> None:
        for i in range(first, last):
            self.rig.feed(swing_bar(i))
        self.rig.engine.end_cycle()


def fill_at_last_price(r: Rig) -> None:
    """What a paper node does after a flatten: price the closing market orders at the last close."""
    for symbol, last in r.engine.last_bar.items():
        now = r.clock.now_ns()
        r.venue.on_tick(Tick(symbol, now, last.close, 0.0, now))


@pytest.fixture
def api() -> Iterator[Api]:
    r = rig()
    r.engine.add_strategy(Swing("AAA"))
    metrics = TraderMetrics()
    metrics.attach(r.engine)
    control = EngineControl(r.engine, after_flatten=lambda: fill_at_last_price(r))
    app = create_app(control, token=TOKEN, metrics=metrics.render)
    r.engine.start()
    with TestClient(app) as client:
        yield Api(r, client, metrics)
