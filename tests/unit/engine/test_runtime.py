"""Process settings: the trading GC tuning, pinning the engine's thread to a CPU of its own, and
the event loop that polls instead of sleeping."""

from __future__ import annotations

import asyncio
import gc
import os
import selectors
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest

from quantdesk.engine.runtime import (
    YOUNG_THRESHOLD,
    SpinningSelector,
    cpus_besides,
    is_spinning,
    pin_this_thread,
    spinning_event_loop,
    tune_gc_for_trading,
)
from quantdesk.errors import ConfigError

T = TypeVar("T")


@pytest.fixture
def restored_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restored_gc")
def test_tuning_freezes_what_is_alive_and_raises_only_the_young_threshold() -> None:
    _, older, oldest = gc.get_threshold()
    gc.unfreeze()
    tune_gc_for_trading()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (YOUNG_THRESHOLD, older, oldest)
    assert YOUNG_THRESHOLD > 700  # CPython's default, which a decision's allocations used to trip


_affinity = pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="CPU affinity is Linux's")


def _in_a_thread(work: Callable[[], T]) -> T:
    """Run `work` on a thread of its own: pinning it must not pin the test runner's thread."""
    out: list[T] = []
    thread = threading.Thread(target=lambda: out.append(work()))
    thread.start()
    thread.join()
    return out[0]


@_affinity
def test_pinning_a_thread_keeps_it_on_one_cpu_and_leaves_the_others_alone() -> None:
    mine = os.sched_getaffinity(0)
    cpu = min(mine)

    def pinned() -> tuple[set[int], set[int]]:
        before = pin_this_thread(cpu)
        return before, os.sched_getaffinity(0)

    before, after = _in_a_thread(pinned)
    assert before == mine and after == {cpu}
    assert os.sched_getaffinity(0) == mine


@_affinity
def test_the_cpus_besides_the_engines_are_the_rest_and_a_cpu_it_cannot_have_is_refused_by_name() -> None:
    mine = os.sched_getaffinity(0)
    cpu = min(mine)
    if len(mine) > 1:
        assert cpus_besides(cpu) == mine - {cpu}
    with pytest.raises(ConfigError, match=r"engine_cpu 4096: not a CPU this process may run on"):
        cpus_besides(4096)

    def alone() -> str:
        pin_this_thread(cpu)
        with pytest.raises(ConfigError, match=r"the only CPU this process may run on") as refused:
            cpus_besides(cpu)
        return str(refused.value)

    assert f"engine_cpu {cpu}" in _in_a_thread(alone)


def _timed_select(
    selector: selectors.BaseSelector, timeout: float | None
) -> tuple[list[tuple[selectors.SelectorKey, int]], float, float]:
    """The events of one `select`, its wall seconds and the CPU seconds this thread spent in it."""
    wall, cpu = time.perf_counter(), time.thread_time()
    events = selector.select(timeout)
    return list(events), time.perf_counter() - wall, time.thread_time() - cpu


def test_the_spinning_selector_polls_until_the_timeout_where_the_systems_sleeps() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs, SpinningSelector() as spinning, selectors.DefaultSelector() as sleeping:
        spinning.register(ours, selectors.EVENT_READ)
        sleeping.register(ours, selectors.EVENT_READ)

        events, wall, cpu = _timed_select(spinning, 0.05)
        assert events == [] and wall >= 0.05
        assert cpu > 0.25 * wall  # it stayed on the CPU, polling
        events, wall, cpu = _timed_select(sleeping, 0.05)
        assert events == [] and wall >= 0.04 and cpu < 0.1 * wall  # the contrast: asleep in the kernel

        events, wall, _ = _timed_select(spinning, 0)
        assert events == [] and wall < 0.01  # a zero timeout is one poll

        theirs.send(b"tick")
        for timeout in (5.0, None):  # ready: returned at once, whatever the timeout
            events, wall, _ = _timed_select(spinning, timeout)
            assert [key.fileobj for key, _ in events] == [ours] and wall < 1.0


def test_a_spinning_event_loop_keeps_time_and_reads_sockets_and_is_told_apart() -> None:
    async def session() -> tuple[bool, float, bytes]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        await asyncio.sleep(0.02)
        slept = loop.time() - started
        ours, theirs = socket.socketpair()
        ours.setblocking(False)
        with ours, theirs:
            loop.call_later(0.01, theirs.send, b"bar")
            data = await asyncio.wait_for(loop.sock_recv(ours, 16), timeout=5)
        return is_spinning(loop), slept, data

    with asyncio.Runner(loop_factory=spinning_event_loop) as runner:
        spinning, slept, data = runner.run(session())
    assert spinning and 0.019 <= slept < 1.0 and data == b"bar"

    async def plain() -> bool:
        return is_spinning(asyncio.get_running_loop())

    assert asyncio.run(plain()) is False
