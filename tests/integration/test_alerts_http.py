"""Alerts through real Apprise to a local HTTP receiver: the body arrives, and a burst sends one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from http_receiver import Receiver, serving
from kit import rig
from quantdesk.telemetry import AlertConfig, Alerter, AlertRules

# Apprise imports the deprecated `imghdr` (its own business, not a failure of ours).
pytestmark = pytest.mark.filterwarnings("ignore:'imghdr' is deprecated:DeprecationWarning")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with serving() as server:
        yield server


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
