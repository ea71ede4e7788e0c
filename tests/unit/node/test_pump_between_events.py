"""The node's loop between the writer's pump and the feed: a bar due goes in after the chunk under way."""

from __future__ import annotations

import asyncio
import statistics
import time

from quantdesk.node.feed import sleep_unless
from quantdesk.node.paper import pump_writer

CHUNK_S = 0.004


class BusyWriter:
    """A writer whose every pump keeps the loop's thread for CHUNK_S, with more always to ship."""

    pump_wait_s = 0.0

    def __init__(self) -> None:
        self.pumps = 0

    def pump(self) -> bool:
        self.pumps += 1
        until = time.perf_counter() + CHUNK_S
        while time.perf_counter() < until:
            pass
        return True


def test_a_bar_due_while_the_writer_is_pumped_waits_only_for_the_chunk_under_way() -> None:
    async def scenario() -> tuple[list[float], int]:
        stop = asyncio.Event()
        writer = BusyWriter()

        async def watcher() -> None:
            while not stop.is_set():
                await pump_writer(writer)  # type: ignore[arg-type]
                await asyncio.sleep(0)

        async def feed() -> list[float]:
            late = []
            for _ in range(15):
                due = time.monotonic() + 1.5 * CHUNK_S
                await sleep_unless(asyncio.Event(), 1.5 * CHUNK_S)
                late.append(time.monotonic() - due)
            stop.set()
            return late

        late, _ = await asyncio.gather(feed(), watcher())
        return late, writer.pumps

    late, pumps = asyncio.run(scenario())

    assert pumps >= 15  # the pump ran all along
    # Due half a chunk into one, each bar waits for the rest of it (~0.5 chunk). With the feed's
    # sleep on wait_for: ~1.5 chunks; with one turn given away between chunks as well, ~6.
    assert statistics.median(late) < CHUNK_S, [round(x * 1e3, 1) for x in late]


def test_sleep_unless_ends_when_stop_is_set_and_leaves_no_task_behind() -> None:
    async def scenario() -> tuple[float, float, int]:
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(0.01, stop.set)
        started = time.monotonic()
        await sleep_unless(stop, 10.0)
        stopped_after = time.monotonic() - started
        started = time.monotonic()
        await sleep_unless(stop, 10.0)  # already set: at once
        again_after = time.monotonic() - started
        await asyncio.sleep(0)  # the cancelled watcher's last turn
        return stopped_after, again_after, len(asyncio.all_tasks())

    stopped_after, again_after, tasks = asyncio.run(scenario())

    assert 0.005 < stopped_after < 1.0
    assert again_after < 0.01
    assert tasks == 1  # only the scenario itself


def test_sleep_unless_sleeps_its_time_when_nothing_stops_it() -> None:
    async def scenario() -> float:
        started = time.monotonic()
        await sleep_unless(asyncio.Event(), 0.02)
        return time.monotonic() - started

    assert 0.019 < asyncio.run(scenario()) < 1.0
