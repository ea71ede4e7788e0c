"""Process settings: the trading GC tuning, and pinning the engine's thread to a CPU of its own."""

from __future__ import annotations

import gc
import os
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest

from quantdesk.engine.runtime import YOUNG_THRESHOLD, cpus_besides, pin_this_thread, tune_gc_for_trading
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
