"""Alerts: rate limiting per kind, a worker that never blocks or raises, and the engine events that alert."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest

from kit import T0, flat_bar, instrument, rig
from quantdesk.bus import MessageBus
from quantdesk.clock import NANOS_PER_SECOND, SimulatedClock
from quantdesk.engine import Engine, EngineConfig
from quantdesk.engine.pipeline import PipelineConfig
from quantdesk.model import Bar, Order, OrderType
from quantdesk.risk import LIVE_CONFIRMATION, Mode, ModeChangeRefused, RiskConfig, SizingConfig
from quantdesk.strategies import Strategy
from quantdesk.telemetry import AlertConfig, Alerter, AlertRules
from quantdesk.telemetry.alerts import Level
from quantdesk.venues.sim import SimulatedExchange

D = Decimal
RISK = RiskConfig(max_data_age_seconds=None, sizing=SizingConfig(mode="risk"))


class Recorder:
    """Stands in for Apprise: keeps what it was asked to send."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, Level]] = []
        self.done = threading.Semaphore(0)

    def __call__(self, title: str, body: str, level: Level) -> bool:
        self.sent.append((title, body, level))
        self.done.release()
        return True


class FakeTime:
    def __init__(self) -> None:
        self.ns = 0

    def __call__(self) -> int:
        return self.ns

    def advance(self, seconds: float) -> None:
        self.ns += int(seconds * NANOS_PER_SECOND)


def _alerter(**config: object) -> tuple[Alerter, Recorder, FakeTime]:
    recorder, now = Recorder(), FakeTime()
    return Alerter(AlertConfig(**config), now_ns=now, send=recorder), recorder, now  # type: ignore[arg-type]


def test_one_alert_per_kind_per_interval_and_the_next_one_reports_the_suppressed() -> None:
    alerter, recorder, now = _alerter(min_interval_s=60)
    assert alerter.notify("orphan", "Orphans", "1 orphan")
    now.advance(10)
    assert not alerter.notify("orphan", "Orphans", "2 orphans")
    assert not alerter.notify("orphan", "Orphans", "3 orphans")
    assert alerter.notify("shadow", "Shadows", "1 shadow")  # another kind has its own limit
    assert alerter.stats().suppressed == {"orphan": 2}
    now.advance(50)  # 60 s after the first
    assert alerter.notify("orphan", "Orphans", "4 orphans")
    assert alerter.close(timeout=5)

    bodies = [body for _, body, _ in recorder.sent]
    assert bodies[0] == "1 orphan" and bodies[1] == "1 shadow"
    assert bodies[2].startswith("4 orphans") and "2 more 'orphan' alert(s) suppressed" in bodies[2]
    stats = alerter.stats()
    assert (stats.sent, stats.suppressed_total, stats.suppressed) == (3, 2, {})
    assert recorder.sent[0][0] == "[quantdesk] Orphans"


def test_a_failing_sender_is_counted_and_never_raises() -> None:
    def broken(title: str, body: str, level: Level) -> bool:
        raise ConnectionError("no route")

    alerter = Alerter(AlertConfig(min_interval_s=0), send=broken)
    assert alerter.notify("kill_switch", "Kill switch", "engaged")
    assert alerter.close(timeout=5)
    assert (alerter.stats().sent, alerter.stats().failed) == (0, 1)


def test_a_full_queue_drops_the_alert_instead_of_waiting() -> None:
    release = threading.Event()
    started = threading.Event()

    def slow(title: str, body: str, level: Level) -> bool:
        started.set()
        return release.wait(5)

    alerter = Alerter(AlertConfig(min_interval_s=0, queue_size=1), send=slow)
    alerter.notify("a", "A", "first")  # taken by the worker, which then hangs
    assert started.wait(5)
    assert alerter.notify("b", "B", "second")  # waits in the queue
    assert not alerter.notify("c", "C", "third")  # no room: dropped at once
    assert alerter.stats().dropped == 1
    release.set()
    assert alerter.close(timeout=5)
    assert alerter.stats().sent == 2


def test_without_urls_alerts_are_only_logged() -> None:
    alerter = Alerter(AlertConfig(urls=()))
    assert not alerter.notify("mode", "Mode", "LIVE")
    assert alerter.close(timeout=1) and alerter.stats().sent == 0
    assert Alerter(AlertConfig(enabled=False, urls=("json://127.0.0.1:1/",))).close(timeout=1)


def test_the_config_refuses_unknown_keys_and_negative_intervals() -> None:
    with pytest.raises(ValueError):
        AlertConfig(url="json://127.0.0.1/")  # type: ignore[call-arg]
    with pytest.raises(ValueError):
        AlertConfig(min_interval_s=-1)


class OnCue(Strategy):
    def on_start(self) -> None:
        self.go = False

    def on_bar(self, bar: Bar) -> None:
        if self.go and self.is_flat:
            self.go = False
            self.enter_long(stop=bar.close * 0.98, targets=[bar.close * 1.01])


def _wait_for(recorder: Recorder, count: int) -> list[tuple[str, str, Level]]:
    for _ in range(count):
        assert recorder.done.acquire(timeout=5)
    return recorder.sent


def test_kill_switch_mode_changes_and_refusals_alert() -> None:
    alerter, recorder, _ = _alerter(min_interval_s=60)
    r = rig(pipeline=PipelineConfig(risk=RISK, mode=Mode.PAPER))
    AlertRules.attach(r.engine, alerter)
    r.engine.pause("lunch")  # a pause is not an alert
    r.engine.state.engage_kill_switch("daily loss", actor="operator")
    with pytest.raises(ModeChangeRefused):
        r.engine.state.set_mode(Mode.LIVE, "yes")
    r.engine.state.set_mode(Mode.LIVE, LIVE_CONFIRMATION, actor="api")
    sent = _wait_for(recorder, 3)
    assert [(title, level) for title, _, level in sent] == [
        ("[quantdesk] Kill switch engaged", "failure"),
        ("[quantdesk] Mode change refused", "warning"),
        ("[quantdesk] Trading mode changed", "warning"),
    ]
    assert "daily loss" in sent[0][1] and "operator" in sent[0][1]
    assert "LIVE" in sent[2][1] and "api" in sent[2][1]
    alerter.close()


def test_an_entry_blocked_by_a_protection_lock_alerts_once_per_interval() -> None:
    alerter, recorder, _ = _alerter(min_interval_s=60)
    protections = ({"method": "CooldownPeriod", "stop_duration_minutes": 60},)
    r = rig(pipeline=PipelineConfig(risk=RISK, protections=protections, mode=Mode.PAPER))
    strategy = OnCue("AAA")
    r.engine.add_strategy(strategy)
    AlertRules.attach(r.engine, alerter)
    r.engine.start()
    r.feed(flat_bar(0, 100.0))
    strategy.go = True
    r.feed(flat_bar(1, 100.0), flat_bar(2, 100.0), flat_bar(3, 101.5))  # in, then out at the target
    for i in (4, 6):
        strategy.go = True
        r.feed(flat_bar(i, 101.0), flat_bar(i + 1, 101.0))  # both blocked by the cooldown
    blocked = [d for d in r.engine.pipeline.decisions if "PROTECTION" in d.reasons]
    assert len(blocked) == 2
    sent = _wait_for(recorder, 1)
    assert sent[0][0] == "[quantdesk] Protection triggered" and "AAA" in sent[0][1]
    assert alerter.stats().suppressed == {"protection": 1}
    alerter.close()


class RefusesStops(SimulatedExchange):
    """A venue that refuses stop orders, as a broker may on a risk check."""

    def _refusal(self, order: Order, now: int) -> str:
        if order.order_type is OrderType.STOP:
            return "stop orders are not accepted"
        return super()._refusal(order, now)


def test_a_refused_stop_recorded_by_the_order_manager_alerts_on_poll() -> None:
    alerter, recorder, _ = _alerter(min_interval_s=60)
    clock = SimulatedClock(T0)
    instruments = {"AAA": instrument("AAA")}
    venue = RefusesStops(instruments, cash=D(100_000), clock_ns=clock.now_ns)
    engine = Engine(
        clock=clock,
        bus=MessageBus(),
        venue=venue,
        instruments=instruments,
        cash=D(100_000),
        config=EngineConfig(pipeline=PipelineConfig(risk=RISK, mode=Mode.PAPER)),
    )
    venue.set_price_source(engine.last_bar)
    strategy = OnCue("AAA")
    engine.add_strategy(strategy)
    rules = AlertRules.attach(engine, alerter)
    engine.start()
    for i, go in ((0, False), (1, True), (2, False)):
        strategy.go = go
        bar = flat_bar(i, 100.0)
        engine.end_cycle()
        clock.advance_to(bar.ts_event)
        venue.on_bar(bar)
        engine.on_bar(bar)
        venue.on_bar_close(bar)
    assert [kind for kind, _ in engine.orders.alerts] == ["stop_rejected"]
    assert rules.poll() == 1 and rules.poll() == 0
    sent = _wait_for(recorder, 1)
    assert sent[0][0].startswith("[quantdesk] Protective stop refused") and sent[0][2] == "failure"
    assert "stop orders are not accepted" in sent[0][1]
    alerter.close()


def test_component_hooks_and_node_checks_alert_with_their_titles() -> None:
    alerter, recorder, _ = _alerter(min_interval_s=60)
    rules = AlertRules(alerter)
    on_store_alert = alerter.callback()  # what StoreWriter(on_alert=...) is given
    on_store_alert("store_degraded", "store degraded, buffering writes: OperationalError")
    on_store_alert("store_recovered", "store recovered, buffered writes flushed")
    rules.orphan_found([f"qd-{i}" for i in range(12)])
    rules.shadow_found(["qd-x"])
    rules.stream_disconnected("order updates", "connection reset")
    rules.throttling_sustained("orders: 200 of 200 per 1m used for 30 s")
    sent = _wait_for(recorder, 6)
    titles = [title.removeprefix("[quantdesk] ") for title, _, _ in sent]
    assert titles == [
        "Store degraded: buffering writes",
        "Store recovered",
        "Orphan orders at the venue",
        "Shadow orders: open here, not at the venue",
        "Stream disconnected",
        "Sustained throttling",
    ]
    assert sent[2][1].startswith("12 orphan order(s): qd-0") and sent[2][1].endswith("and 2 more")
    assert sent[4][1] == "order updates stream disconnected: connection reset"
    alerter.close()
