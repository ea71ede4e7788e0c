"""Clocks: the only place quantdesk reads time — a wall clock for paper/live, a simulated one for the rest."""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

NANOS_PER_SECOND: Final = 1_000_000_000


@dataclass(frozen=True, slots=True)
class TimeEvent:
    """An alarm or timer firing: its name and the scheduled time (UTC ns)."""

    name: str
    ts: int


TimeCallback = Callable[[TimeEvent], None]


class Clock:
    """Current time plus alarms and repeating timers that fire in time order.

    Alarms due at the same instant fire in the order they were set, so a run is
    deterministic. Subclasses say where "now" comes from.
    """

    def __init__(self) -> None:
        # (ts, sequence, name, callback, interval, stop): sequence breaks ties by insertion order.
        self._alarms: list[tuple[int, int, str, TimeCallback, int, int | None]] = []
        self._sequence = 0

    def now_ns(self) -> int:
        raise NotImplementedError

    def now(self) -> datetime:
        """The current time as an aware UTC datetime (for the edges: logs, API, reports)."""
        return datetime.fromtimestamp(self.now_ns() / NANOS_PER_SECOND, tz=UTC)

    def set_alarm(self, name: str, ts: int, callback: TimeCallback) -> None:
        """Fire `callback` once at `ts` (UTC ns)."""
        self._push(ts, name, callback, 0, None)

    def set_timer(
        self,
        name: str,
        interval_ns: int,
        callback: TimeCallback,
        *,
        start_ns: int | None = None,
        stop_ns: int | None = None,
    ) -> None:
        """Fire `callback` every `interval_ns` from `start_ns` (default: now + interval)."""
        if interval_ns <= 0:
            raise ValueError(f"timer {name}: interval must be positive, got {interval_ns}")
        first = start_ns if start_ns is not None else self.now_ns() + interval_ns
        self._push(first, name, callback, interval_ns, stop_ns)

    def cancel(self, name: str) -> int:
        """Cancel every alarm and timer called `name`; return how many were removed."""
        before = len(self._alarms)
        # In place: feed loops hold a reference to this list to test it cheaply.
        self._alarms[:] = [alarm for alarm in self._alarms if alarm[2] != name]
        heapq.heapify(self._alarms)
        return before - len(self._alarms)

    @property
    def next_alarm_ns(self) -> int | None:
        return self._alarms[0][0] if self._alarms else None

    def _push(self, ts: int, name: str, callback: TimeCallback, interval: int, stop: int | None) -> None:
        self._sequence += 1
        heapq.heappush(self._alarms, (ts, self._sequence, name, callback, interval, stop))

    def _fire_due(self, until_ns: int, on_each: Callable[[int], None] | None = None) -> int:
        fired = 0
        alarms = self._alarms
        while alarms and alarms[0][0] <= until_ns:
            ts, _, name, callback, interval, stop = heapq.heappop(alarms)
            if on_each is not None:
                on_each(ts)
            if interval and (stop is None or ts + interval <= stop):
                self._push(ts + interval, name, callback, interval, stop)
            callback(TimeEvent(name, ts))
            fired += 1
        return fired


class SimulatedClock(Clock):
    """A clock that moves only when told: backtests and replays jump it from event to event."""

    def __init__(self, start_ns: int = 0) -> None:
        super().__init__()
        self._now = start_ns

    def now_ns(self) -> int:
        return self._now

    def set_time(self, ts: int) -> None:
        """Jump to `ts` without firing alarms (initialisation only; never backwards)."""
        if ts < self._now:
            raise ValueError(f"simulated clock cannot go back from {self._now} to {ts}")
        self._now = ts

    def advance_to(self, ts: int) -> int:
        """Move to `ts`, firing every alarm due on the way at its own time; return how many fired."""
        if ts < self._now:
            raise ValueError(f"simulated clock cannot go back from {self._now} to {ts}")
        fired = 0
        if self._alarms and self._alarms[0][0] <= ts:
            fired = self._fire_due(ts, self._set_now)
        self._now = ts
        return fired

    def pending_alarms(self) -> list[tuple[int, int, str, TimeCallback, int, int | None]]:
        """The live alarm heap (read-only by contract): a feed loop tests `heap and heap[0][0] <= t`
        to call `advance_to` only when an alarm is due, and otherwise moves time with `set_time`."""
        return self._alarms

    def advance(self, delta_ns: int) -> int:
        return self.advance_to(self._now + delta_ns)

    def _set_now(self, ts: int) -> None:
        self._now = max(self._now, ts)


class LiveClock(Clock):
    """Wall-clock UTC time; its alarms fire when the live loop calls `fire_due`."""

    def now_ns(self) -> int:
        return time.time_ns()

    def monotonic_ns(self) -> int:
        """A monotonic reading for measuring durations (latency, flatten time)."""
        return time.perf_counter_ns()

    def fire_due(self) -> int:
        return self._fire_due(self.now_ns())


class PacedClock(LiveClock):
    """Wall-paced time that starts at a past instant and runs `speed` times faster than real time.

    The paper node replays a recorded session through it: bars arrive when this
    clock reaches their time, alarms (end-of-day flatten, reconciliation) fire when
    the live loop calls `fire_due`, exactly as on a wall clock. Example: a session
    from 09:30 at `speed=60` reaches 10:30 after one real minute.
    """

    def __init__(self, start_ns: int, speed: float = 1.0, *, running: bool = True) -> None:
        """`running=False`: the clock reads `start_ns` until `restart` (a node builds and recovers
        at the session's time, and the market starts moving when the replay does)."""
        super().__init__()
        if not speed > 0:
            raise ValueError(f"speed must be positive, got {speed}")
        self.start_ns = start_ns
        self.speed = speed
        self._running = running
        self._origin = time.perf_counter_ns()

    def now_ns(self) -> int:
        if not self._running:
            return self.start_ns
        return self.start_ns + int((time.perf_counter_ns() - self._origin) * self.speed)

    def restart(self, start_ns: int) -> None:
        """Run from `start_ns` now — or from the current time if that is later: time never goes back
        (orders and rate-limit windows already booked at the current time stay in the past)."""
        self.start_ns = max(start_ns, self.now_ns())
        self._origin = time.perf_counter_ns()
        self._running = True

    def hold(self) -> None:
        """Stop at the current reading until `restart`: a replay with no bars left has no market
        time to give, and a clock that ran on would make days no data ever reached."""
        self.start_ns = self.now_ns()
        self._running = False

    def seconds_until(self, ts: int) -> float:
        """Real seconds until this clock reads `ts` (zero or less: already there)."""
        return (ts - self.now_ns()) / self.speed / NANOS_PER_SECOND


def monotonic_ns() -> int:
    """Monotonic nanoseconds for measuring elapsed time (never a timestamp)."""
    return time.perf_counter_ns()
