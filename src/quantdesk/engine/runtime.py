"""Process settings for a trading node: garbage collection tuned so pauses stay off the hot path,
a CPU of its own for the engine's thread, and an event loop that polls on it instead of sleeping."""

from __future__ import annotations

import asyncio
import gc
import os
import selectors
import weakref
from time import monotonic

from quantdesk.errors import ConfigError

# Allocations between young collections (CPython's default is 700): see `tune_gc_for_trading`.
YOUNG_THRESHOLD = 20_000


def tune_gc_for_trading() -> None:
    """Freeze what start-up built, so collections stop rescanning it, and collect young
    objects every `YOUNG_THRESHOLD` allocations instead of every 700.

    A trading process holds a large set of long-lived objects (modules,
    calendars, instruments, strategies). CPython's full collections rescan all of
    them, a pause of milliseconds in the middle of a tick. `gc.freeze()` moves
    everything alive now to a permanent generation that is never scanned.
    A decision allocates a few hundred tracked objects, so with CPython's default
    threshold (700) a young collection landed in one decision of three or four and
    set the p99; the value types of the hot path are untracked now (msgspec
    `gc=False`), and a young collection every 20,000 allocations hits about one
    decision in a hundred, at a cost that grows with what is young, not with the
    heap. Measured on `benchmarks/bench_pipeline.py` (docs/PERFORMANCE.md): p99
    and max of tick-to-decision about 15-30% lower than with 700, p50 unchanged.
    Cyclic garbage is still collected. Call once after start-up, and again after
    large loads (e.g. a recovery) to freeze what they built.
    """
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)


def cpus_besides(engine_cpu: int) -> frozenset[int]:
    """The CPUs this process may use other than `engine_cpu`: where the node's helpers run (its
    store writer process) when the engine's thread has that CPU to itself.

    Raises `ConfigError` when `engine_cpu` is not one this process may run on, when no other is
    left, or on a system without CPU affinity (Linux has it)."""
    if not hasattr(os, "sched_getaffinity"):
        raise ConfigError("engine_cpu: this system cannot pin threads to CPUs (Linux can)")
    allowed = os.sched_getaffinity(0)
    if engine_cpu not in allowed:
        raise ConfigError(
            f"engine_cpu {engine_cpu}: not a CPU this process may run on ({_cpu_list(allowed)})"
        )
    rest = frozenset(allowed - {engine_cpu})
    if not rest:
        raise ConfigError(
            f"engine_cpu {engine_cpu}: it is the only CPU this process may run on; nothing would be left"
        )
    return rest


def pin_this_thread(cpu: int) -> set[int]:
    """Run the calling thread on `cpu` only (Linux); return the CPUs it could run on before, to restore.

    Threads it starts from here on inherit the pin; other threads and processes keep theirs."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    return before


def _cpu_list(cpus: set[int] | frozenset[int]) -> str:
    return ", ".join(str(cpu) for cpu in sorted(cpus))


class SpinningSelector(selectors.DefaultSelector):
    """The system's selector, polled without waiting until something is ready or the timeout ends.

    A loop thread that sleeps in the kernel is woken by a timer or a socket, and on a machine whose
    idle CPUs doze (a VM's vCPU above all) the wake-up and the cold CPU after it cost a tick ~130 µs
    at p50 and more at the tail while a neighbour worked (docs/PERFORMANCE.md, "Store"). Polling
    keeps the thread on its CPU, so it sees a due timer or a ready socket within a poll. It takes
    that CPU whole: use it only where the thread has a CPU to itself (`engine_cpu`)."""

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        poll = super().select
        events = poll(0)
        if events or (timeout is not None and timeout <= 0):
            return events
        deadline = None if timeout is None else monotonic() + timeout
        while not events and (deadline is None or monotonic() < deadline):
            events = poll(0)  # releases the interpreter lock: the node's other threads get it here
        return events


_spinning: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()


def spinning_event_loop() -> asyncio.AbstractEventLoop:
    """An asyncio event loop on a `SpinningSelector` (for `asyncio.Runner(loop_factory=...)`)."""
    loop = asyncio.SelectorEventLoop(SpinningSelector())
    _spinning.add(loop)
    return loop


def is_spinning(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether `loop` came from `spinning_event_loop`."""
    return loop in _spinning
