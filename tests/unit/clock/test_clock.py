"""Simulated and live clocks: time moves only forward; alarms fire in time order, ties in set order."""

from __future__ import annotations

import time

import pytest

from quantdesk.clock import LiveClock, PacedClock, SimulatedClock, TimeEvent


def test_simulated_clock_reports_the_time_it_was_set_to() -> None:
    clock = SimulatedClock(1_000)
    clock.advance_to(5_000)
    assert clock.now_ns() == 5_000
    assert clock.now().year == 1970


def test_simulated_clock_never_goes_back() -> None:
    clock = SimulatedClock(10)
    with pytest.raises(ValueError, match="cannot go back"):
        clock.advance_to(9)
    with pytest.raises(ValueError, match="cannot go back"):
        clock.set_time(5)


def test_alarms_fire_in_time_order_with_the_clock_at_their_time() -> None:
    clock = SimulatedClock(0)
    fired: list[tuple[str, int, int]] = []

    def record(event: TimeEvent) -> None:
        fired.append((event.name, event.ts, clock.now_ns()))

    clock.set_alarm("late", 300, record)
    clock.set_alarm("early", 100, record)
    clock.set_alarm("tie-first", 200, record)
    clock.set_alarm("tie-second", 200, record)
    assert clock.advance_to(250) == 3
    assert fired == [("early", 100, 100), ("tie-first", 200, 200), ("tie-second", 200, 200)]
    assert clock.now_ns() == 250
    clock.advance_to(1_000)
    assert fired[-1] == ("late", 300, 300)


def test_repeating_timer_fires_every_interval_until_its_stop() -> None:
    clock = SimulatedClock(0)
    times: list[int] = []
    clock.set_timer("tick", 10, lambda e: times.append(e.ts), stop_ns=40)
    clock.advance_to(100)
    assert times == [10, 20, 30, 40]


def test_cancel_removes_alarms_by_name() -> None:
    clock = SimulatedClock(0)
    times: list[int] = []
    clock.set_alarm("a", 10, lambda e: times.append(e.ts))
    clock.set_timer("b", 5, lambda e: times.append(-e.ts))
    assert clock.cancel("b") == 1
    clock.advance_to(20)
    assert times == [10]
    assert clock.next_alarm_ns is None


def test_a_callback_may_set_a_new_alarm_that_is_due_in_the_same_advance() -> None:
    clock = SimulatedClock(0)
    times: list[int] = []

    def chain(event: TimeEvent) -> None:
        times.append(event.ts)
        if event.ts < 30:
            clock.set_alarm("chain", event.ts + 10, chain)

    clock.set_alarm("chain", 10, chain)
    clock.advance_to(100)
    assert times == [10, 20, 30]


def test_timer_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="interval must be positive"):
        SimulatedClock().set_timer("x", 0, lambda e: None)


def test_live_clock_reads_wall_time_and_fires_due_alarms() -> None:
    clock = LiveClock()
    before = clock.now_ns()
    assert before > 1_700_000_000 * 10**9
    fired: list[str] = []
    clock.set_alarm("past", before - 1, lambda e: fired.append(e.name))
    clock.set_alarm("future", before + 3600 * 10**9, lambda e: fired.append(e.name))
    assert clock.fire_due() == 1
    assert fired == ["past"]


def test_paced_clock_runs_from_its_start_at_its_speed() -> None:
    start = 1_704_205_800_000_000_000
    clock = PacedClock(start, speed=1_000.0)
    first = clock.now_ns()
    assert start <= first < start + 1_000_000_000  # under a real millisecond from construction
    deadline = first + 2_000_000_000  # two paced seconds = two real milliseconds
    wait = clock.seconds_until(deadline)
    assert 0 < wait <= 0.002
    fired: list[int] = []
    clock.set_alarm("a", deadline, lambda event: fired.append(event.ts))
    time.sleep(wait + 0.001)
    assert clock.now_ns() >= deadline
    assert clock.fire_due() == 1 and fired == [deadline]


def test_paced_clock_refuses_a_speed_that_is_not_positive() -> None:
    with pytest.raises(ValueError, match="speed must be positive"):
        PacedClock(0, speed=0)


def test_a_paced_clock_built_stopped_waits_for_its_start_and_never_goes_back() -> None:
    start = 1_704_205_800_000_000_000
    clock = PacedClock(start, speed=1_000_000.0, running=False)
    time.sleep(0.002)
    assert clock.now_ns() == start  # built and recovering: the session has not started moving
    clock.restart(start + 60_000_000_000)
    moved = clock.now_ns()
    assert moved >= start + 60_000_000_000
    time.sleep(0.002)
    clock.restart(start)  # asked to go back: it goes on from where it is
    assert clock.now_ns() >= moved


def test_a_held_paced_clock_stays_at_its_reading_until_restarted() -> None:
    start = 1_704_205_800_000_000_000
    clock = PacedClock(start, speed=1_000_000.0)
    time.sleep(0.001)
    clock.hold()
    held = clock.now_ns()
    assert held > start  # it ran before the hold, and keeps what it ran
    time.sleep(0.002)  # 2,000 paced seconds
    assert clock.now_ns() == held and clock.seconds_until(held + 1_000_000) > 0
    clock.restart(start)  # asked to go back: it goes on from where it held
    time.sleep(0.001)
    assert clock.now_ns() > held
