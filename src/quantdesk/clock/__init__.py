"""Time: live and simulated clocks, alarms and timers, market sessions from exchange calendars."""

from quantdesk.clock.clock import (
    NANOS_PER_SECOND,
    Clock,
    LiveClock,
    PacedClock,
    SimulatedClock,
    TimeEvent,
    monotonic_ns,
)

__all__ = [
    "NANOS_PER_SECOND",
    "Clock",
    "LiveClock",
    "PacedClock",
    "SimulatedClock",
    "TimeEvent",
    "monotonic_ns",
]
