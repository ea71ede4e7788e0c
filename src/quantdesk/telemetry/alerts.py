"""Alerts through Apprise: rate-limited per kind, sent by a worker thread, raised by engine events."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import apprise
import structlog
from pydantic import BaseModel, ConfigDict, Field

from quantdesk.clock import NANOS_PER_SECOND, monotonic_ns
from quantdesk.engine.messages import DecisionRecord
from quantdesk.risk.kill_switch import StateChange
from quantdesk.risk.messages import BlockReason

if TYPE_CHECKING:
    from quantdesk.engine import Engine

log = structlog.get_logger(__name__)

Level = Literal["info", "success", "warning", "failure"]
# (title, level) of each kind raised here or by a component's on_alert(kind, message) hook.
KINDS: dict[str, tuple[str, Level]] = {
    "kill_switch": ("Kill switch engaged", "failure"),
    "mode": ("Trading mode changed", "warning"),
    "mode_refused": ("Mode change refused", "warning"),
    "protection": ("Protection triggered", "warning"),
    "stop_rejected": ("Protective stop refused: position closed at market", "failure"),
    "overfill": ("Exits overfilled: corrected at market", "failure"),
    "orphan": ("Orphan orders at the venue", "failure"),
    "shadow": ("Shadow orders: open here, not at the venue", "failure"),
    "stream_disconnected": ("Stream disconnected", "warning"),
    "throttling_sustained": ("Sustained throttling", "warning"),
    "store_degraded": ("Store degraded: buffering writes", "failure"),
    "store_recovered": ("Store recovered", "success"),
    "store_record_refused": ("A record the store refuses was set aside", "warning"),
    "task_failed": ("A node task failed: the node stopped", "failure"),
}
# Sends one alert (title, body, level); True when delivered.
Sender = Callable[[str, str, Level], bool]


class AlertConfig(BaseModel):
    """Where alerts go (Apprise URLs: tgram://, discord://, slack://, mailto://, json://...) and how
    often: at most one alert of a kind per `min_interval_s`; the others are counted and reported
    in the next one."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    urls: tuple[str, ...] = ()
    min_interval_s: float = Field(default=60.0, ge=0, allow_inf_nan=False)
    queue_size: int = Field(default=100, ge=1)
    send_timeout_s: float = Field(default=10.0, gt=0, allow_inf_nan=False)


@dataclass(frozen=True, slots=True)
class AlertStats:
    """Counts since start; `suppressed` holds, per kind, those held back since its last alert."""

    sent: int
    failed: int
    dropped: int
    suppressed_total: int
    suppressed: dict[str, int]
    queued: int


@dataclass(frozen=True, slots=True)
class _Alert:
    kind: str
    title: str
    body: str
    level: Level


class Alerter:
    """Sends alerts without ever making the caller wait or fail.

    `notify` decides the rate limit, queues the alert and returns; one daemon
    thread sends the queue through Apprise. A full queue drops the alert (logged
    and counted). Every alert is also a log line. `close()` drains and stops.
    """

    def __init__(
        self,
        config: AlertConfig,
        *,
        now_ns: Callable[[], int] = monotonic_ns,
        send: Sender | None = None,
    ) -> None:
        """`send` replaces Apprise (a test's recorder); `now_ns` is the clock the limit uses."""
        self.config = config
        self._now = now_ns
        self._interval_ns = round(config.min_interval_s * NANOS_PER_SECOND)
        self._active = config.enabled and (send is not None or bool(config.urls))
        self._send = send or (_apprise_sender(config) if self._active else None)
        self._queue: queue.Queue[_Alert | None] = queue.Queue(maxsize=config.queue_size)
        self._lock = threading.Lock()
        self._last: dict[str, int] = {}
        self._suppressed: dict[str, int] = {}
        self._suppressed_total = self._sent = self._failed = self._dropped = 0
        self._closed = False
        self._thread: threading.Thread | None = None
        if self._active:
            self._thread = threading.Thread(target=self._run, name="alerter", daemon=True)
            self._thread.start()

    def notify(self, kind: str, title: str, body: str, *, level: Level = "warning") -> bool:
        """Queue an alert unless one of `kind` went out less than `min_interval_s` ago.

        Returns at once: True when queued. Never raises.
        """
        try:
            return self._notify(kind, title, body, level)
        except Exception:
            log.exception("alert_failed", kind=kind)
            return False

    def callback(self) -> Callable[[str, str], None]:
        """An `on_alert(kind, message)` hook for a component (StoreWriter, OrderManager) to call."""

        def on_alert(kind: str, message: str) -> None:
            try:
                title, level = KINDS.get(kind, (str(kind).replace("_", " ").capitalize(), "warning"))
            except Exception:  # an unhashable kind: a caller's bug must not become ours
                title, level = "Alert", "warning"
            self.notify(str(kind), title, str(message), level=level)

        return on_alert

    def stats(self) -> AlertStats:
        with self._lock:
            return AlertStats(
                sent=self._sent,
                failed=self._failed,
                dropped=self._dropped,
                suppressed_total=self._suppressed_total,
                suppressed=dict(self._suppressed),
                queued=self._queue.qsize(),
            )

    def close(self, timeout: float = 5.0) -> bool:
        """Send what is queued (waiting at most `timeout` s) and stop; True when all went out."""
        with self._lock:
            self._closed = True
        thread = self._thread
        if thread is None:
            return True
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            return False
        thread.join(timeout)
        return not thread.is_alive()

    def _notify(self, kind: str, title: str, body: str, level: Level) -> bool:
        now = self._now()
        with self._lock:
            last = self._last.get(kind)
            if last is not None and now - last < self._interval_ns:
                self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
                self._suppressed_total += 1
                log.debug("alert_suppressed", kind=kind, title=title)
                return False
            self._last[kind] = now
            held_back = self._suppressed.pop(kind, 0)
            closed = self._closed
        if held_back:
            body = f"{body}\n({held_back} more '{kind}' alert(s) suppressed since the last one)"
        log.warning("alert", kind=kind, title=title, body=body, level=level)
        if not self._active or closed:
            return False
        try:
            self._queue.put_nowait(_Alert(kind, f"[quantdesk] {title}", body, level))
        except queue.Full:
            with self._lock:
                self._dropped += 1
            log.error("alert_dropped", kind=kind, reason="alert queue full")
            return False
        return True

    def _run(self) -> None:
        while True:
            alert = self._queue.get()
            if alert is None:
                return
            try:
                delivered = self._send is not None and self._send(alert.title, alert.body, alert.level)
            except Exception:
                log.exception("alert_send_failed", kind=alert.kind)
                delivered = False
            with self._lock:
                if delivered:
                    self._sent += 1
                else:
                    self._failed += 1
            if not delivered:
                log.error("alert_not_delivered", kind=alert.kind)


def _apprise_sender(config: AlertConfig) -> Sender:
    notifier = apprise.Apprise()
    for url in config.urls:
        if not notifier.add(url):
            # The URL holds its credentials: name only its scheme.
            log.error("alert_url_refused", scheme=url.split(":", 1)[0])
    timeout = config.send_timeout_s

    def send(title: str, body: str, level: Level) -> bool:
        return bool(notifier.notify(body=body, title=title, notify_type=level, timeout=timeout))

    return send


class AlertRules:
    """Which engine events become alerts: kill switch, mode changes and refusals, protection
    blocks, and the order manager's alerts (refused stop, overfill); plus the checks only the
    node sees, through `orphan_found`, `shadow_found`, `stream_disconnected` and
    `throttling_sustained`. Store alerts come from the writer's own hook
    (``StoreWriter(on_alert=alerter.callback())``)."""

    def __init__(self, alerter: Alerter) -> None:
        self._alerter = alerter
        self._on_alert = alerter.callback()
        self._order_alerts: list[tuple[str, str]] = []
        self._forwarded = 0

    @classmethod
    def attach(cls, engine: Engine, alerter: Alerter) -> AlertRules:
        """Alert on `engine`'s state changes and decisions from now on; call `poll()` periodically."""
        rules = cls(alerter)
        engine.state.subscribe(rules._on_state_change)
        engine.pipeline.subscribe(rules._on_decision)
        rules._order_alerts = engine.orders.alerts
        rules._forwarded = len(engine.orders.alerts)
        return rules

    def poll(self) -> int:
        """Forward the alerts the order manager recorded since the last call; how many.

        The engine builds its OrderManager without an `on_alert` hook, so its alerts
        are read from `OrderManager.alerts` (off the hot path: the node's watcher calls this).
        """
        fresh = self._order_alerts[self._forwarded :]
        self._forwarded += len(fresh)
        for kind, message in fresh:
            self._on_alert(kind, message)
        return len(fresh)

    def orphan_found(self, client_order_ids: Sequence[str]) -> None:
        """Orders open at the venue that the system does not hold as open."""
        self._on_alert("orphan", f"{len(client_order_ids)} orphan order(s): {_listed(client_order_ids)}")

    def shadow_found(self, client_order_ids: Sequence[str]) -> None:
        """Orders the system holds as open that the venue does not show open."""
        self._on_alert("shadow", f"{len(client_order_ids)} shadow order(s): {_listed(client_order_ids)}")

    def stream_disconnected(self, stream: str, reason: str = "") -> None:
        self._on_alert(
            "stream_disconnected", f"{stream} stream disconnected{': ' + reason if reason else ''}"
        )

    def throttling_sustained(self, detail: str) -> None:
        self._on_alert("throttling_sustained", detail)

    def _on_state_change(self, change: StateChange) -> None:
        try:
            if change.action == "kill_switch":
                self._on_alert("kill_switch", f"by {change.actor}: {change.reason or 'no reason given'}")
            elif change.action == "mode":
                self._on_alert("mode", f"now {change.reason} (by {change.actor})")
            elif change.action == "mode_refused":
                self._on_alert("mode_refused", f"{change.reason} (by {change.actor})")
        except Exception:
            log.exception("alert_rule_failed", rule="state")

    def _on_decision(self, record: DecisionRecord) -> None:
        try:
            if record.approved or BlockReason.PROTECTION.value not in record.reasons:
                return
            signal = record.signal
            detail = record.details[record.reasons.index(BlockReason.PROTECTION.value)]
            self._on_alert("protection", f"{signal.strategy} {signal.symbol} entry blocked: {detail}")
        except Exception:
            log.exception("alert_rule_failed", rule="protection")


def _listed(ids: Sequence[str], shown: int = 10) -> str:
    more = f" and {len(ids) - shown} more" if len(ids) > shown else ""
    return ", ".join(ids[:shown]) + more
