"""Alerts through real Apprise to a local HTTP receiver: the body arrives, and a burst sends one."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from kit import rig
from quantdesk.telemetry import AlertConfig, Alerter, AlertRules

# Apprise imports the deprecated `imghdr` (its own business, not a failure of ours).
pytestmark = pytest.mark.filterwarnings("ignore:'imghdr' is deprecated:DeprecationWarning")


class Receiver(ThreadingHTTPServer):
    """An HTTP endpoint on 127.0.0.1 keeping every JSON body posted to it."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.posts: list[dict[str, Any]] = []
        self.arrived = threading.Condition()

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.server_address[1]}/"

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.posts) >= count, timeout)
            return list(self.posts)


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with self.server.arrived:
            self.server.posts.append(json.loads(body))
            self.server.arrived.notify_all()
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        return


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_an_engine_alert_reaches_the_receiver_with_its_body(receiver: Receiver) -> None:
    alerter = Alerter(AlertConfig(urls=(receiver.url,)))
    r = rig()
    AlertRules.attach(r.engine, alerter)
    r.engine.state.engage_kill_switch("daily loss cap hit", actor="risk")
    posts = receiver.wait_for(1)
    assert alerter.close(timeout=10)
    assert len(posts) == 1
    assert posts[0]["title"] == "[quantdesk] Kill switch engaged"
    assert posts[0]["message"] == "by risk: daily loss cap hit"
    assert posts[0]["type"] == "failure"
    assert alerter.stats().sent == 1


def test_a_burst_of_ten_alerts_of_one_kind_delivers_one(receiver: Receiver) -> None:
    alerter = Alerter(AlertConfig(urls=(receiver.url,), min_interval_s=60))
    queued = [alerter.notify("stream_disconnected", "Stream down", f"attempt {i}") for i in range(10)]
    assert alerter.close(timeout=10)  # everything queued has been sent when this returns
    assert queued == [True] + [False] * 9
    posts = receiver.wait_for(1)
    assert [post["message"] for post in posts] == ["attempt 0"]
    stats = alerter.stats()
    assert (stats.sent, stats.suppressed_total, stats.suppressed) == (1, 9, {"stream_disconnected": 9})
