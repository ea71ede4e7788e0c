"""The paper replay feed: recorded bars delivered through a paced wall clock, instant by instant."""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import structlog

from quantdesk.clock import NANOS_PER_SECOND, PacedClock, monotonic_ns
from quantdesk.clock.calendar import MarketCalendar
from quantdesk.data.series import BarSeries
from quantdesk.engine import Engine
from quantdesk.model import Bar, Tick


class MarketVenue(Protocol):
    """The simulated venue as the feed drives it: bars before and after strategies see them."""

    def on_bar(self, bar: Bar) -> None: ...

    def on_bar_close(self, bar: Bar) -> None: ...

    def on_tick(self, tick: Tick) -> None: ...


CycleObserver = Callable[[int, int], None]
"""Called after each instant with (decisions made, nanoseconds from the first bar to the last decision)."""

ClosedHours = Callable[[int, int], tuple[int, int] | None]
"""Given the last bar's time and the next one's: (the close, when to resume) if the market closed
in between, else None (`closed_hours_on` builds one from an exchange calendar)."""

SessionClose = Callable[[int], int | None]
"""The close of the session an instant falls in, else None (`session_close_on` builds one)."""

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class FeedStats:
    """Where the replay stands, for /status and the logs."""

    state: str
    delivered: int
    total: int
    last_ts: int | None
    lag_s: float  # market seconds the last instant came after its time (a replay behind its clock)
    skipped_s: float  # market seconds of closed hours the clock jumped over (skip_closed)
    held_at: int | None  # where the clock stopped once the bars ran out (`hold_at_close`)


class ReplayFeed:
    """Delivers each instant's bars when the paced clock reaches their time, as a live stream would.

    Per instant, in the backtest's order: due alarms fire, the exchange matches
    working orders on each bar, strategies see the bar, then the pipeline decides
    the instant's signals at once (a live feed cannot wait for the next bar to
    know the instant is over).
    """

    def __init__(
        self,
        engine: Engine,
        venue: MarketVenue,
        clock: PacedClock,
        series: Mapping[str, BarSeries],
        *,
        on_cycle: CycleObserver | None = None,
        after_ts: int | None = None,
        behind_limit_s: float | None = None,
        on_behind: Callable[[str], None] | None = None,
        skip_closed: ClosedHours | None = None,
        session_close: SessionClose | None = None,
    ) -> None:
        """`after_ts`: skip bars at or before it (a restarted node resumes where its venue stopped).

        `behind_limit_s`: market seconds the replay may fall behind its clock before it warns
        (logged, and `on_behind` with the message), once until it has caught up to half of that:
        the node passes the risk gate's `max_data_age_seconds`, past which entries are refused
        as stale, so a speed this machine cannot sustain is said, not just seen in the blocks.

        `skip_closed`: jump the clock over the market's closed hours between two sessions
        instead of sleeping through them at the replay's speed. The clock still runs to the
        close, so everything due before it happens as live; alarms set inside the closed hours
        fire at the resume, in order, as on a node that was asleep.

        `session_close`: the close of the session an instant falls in (None outside sessions),
        where `hold_at_close` stops the clock once the bars have run out.
        """
        self._engine = engine
        self._venue = venue
        self._clock = clock
        self._series = dict(series)
        self._on_cycle = on_cycle
        self._decisions = 0
        engine.pipeline.subscribe(self._count_decision)
        self.state = "waiting"
        self.delivered = 0
        self._after = after_ts
        self.total = sum(
            int((s.ts > (after_ts if after_ts is not None else -1)).sum()) for s in self._series.values()
        )
        self.last_ts: int | None = None
        self.lag_s = 0.0
        self._behind_limit_s = behind_limit_s
        self._on_behind = on_behind
        self._warned = False
        self._skip_closed = skip_closed
        self._session_close = session_close
        self.skipped_s = 0.0
        self.held_at: int | None = None

    @property
    def first_ts(self) -> int:
        return min(int(s.ts[0]) for s in self._series.values() if len(s))

    def stats(self) -> FeedStats:
        return FeedStats(
            self.state, self.delivered, self.total, self.last_ts, self.lag_s, self.skipped_s, self.held_at
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Replay every instant, sleeping until its time; return at the end or when `stop` is set."""
        self.state = "streaming"
        # Market time starts now, at the first bar to deliver: start-up does not eat the session.
        instants = [
            (ts, bars) for ts, bars in _instants(self._series) if self._after is None or ts > self._after
        ]
        if instants:
            self._clock.restart(instants[0][0])
        for ts, bars in instants:
            if self._skip_closed is not None and self.last_ts is not None:
                closed = self._skip_closed(self.last_ts, ts)
                if closed is not None:
                    await self._skip(stop, *closed)
            delay = self._clock.seconds_until(ts)
            self._note_lag(max(0.0, -delay * self._clock.speed))
            if delay > 0:
                await sleep_unless(stop, delay)
            else:
                # Behind (a fast replay, a slow instant): the loop's other tasks still come in
                # between instants, as with a live feed: the API and its kill switch, and the
                # watcher that feeds the store's writer, would otherwise wait for the whole replay.
                await asyncio.sleep(0)
            if stop.is_set():
                self.state = "stopped"
                return
            self._deliver(ts, bars)
        self.state = "finished"

    async def hold_at_close(self, stop: asyncio.Event) -> None:
        """After the last bar: run the clock on to its session's close (the last bar itself when it
        lies outside a session, or without `session_close`), fire what is due there, and hold the
        clock. The day ends as live, with its end-of-day work; the nights and sessions after it,
        which no bar reaches, never start: a clock left running made a day of nothing at `speed`
        after another, each with its own end-of-day flatten."""
        end = self.last_ts
        if end is not None and self._session_close is not None:
            close = self._session_close(end)
            end = end if close is None else close
        if not await self._run_to(stop, self._clock.now_ns() if end is None else end):
            return
        self._clock.hold()
        self.held_at = self._clock.now_ns()
        log.info("replay_clock_held", at=iso_utc(self.held_at))

    async def _skip(self, stop: asyncio.Event, close_ts: int, resume_ts: int) -> None:
        """Run the clock to the close, fire what is due there, then restart it at `resume_ts`."""
        if not await self._run_to(stop, close_ts):
            return
        before = self._clock.now_ns()
        self._clock.restart(resume_ts)  # never back: a replay behind its clock stays where it is
        jumped = self._clock.now_ns() - before
        self.skipped_s += jumped / NANOS_PER_SECOND
        log.info("replay_skipped_closed_hours", close=iso_utc(close_ts), resume=iso_utc(resume_ts))

    async def _run_to(self, stop: asyncio.Event, ts: int) -> bool:
        """Sleep until the clock reads `ts` and fire what is due; False if stopped first."""
        delay = self._clock.seconds_until(ts)
        if delay > 0:
            await sleep_unless(stop, delay)
        if stop.is_set():
            return False
        self._clock.fire_due()
        return True

    def _note_lag(self, lag_s: float) -> None:
        self.lag_s = lag_s
        limit = self._behind_limit_s
        if limit is None:
            return
        if lag_s > limit and not self._warned:
            self._warned = True
            message = (
                f"the replay is {lag_s:.1f} s of market time behind its clock at speed "
                f"{self._clock.speed:g}: past {limit:g} s (max_data_age_seconds) entries are "
                "refused as stale; a lower speed keeps up"
            )
            log.warning("replay_behind_clock", lag_s=round(lag_s, 3), limit_s=limit, speed=self._clock.speed)
            if self._on_behind is not None:
                self._on_behind(message)
        elif lag_s < limit / 2:
            self._warned = False

    def _count_decision(self, _record: object) -> None:
        self._decisions += 1

    def _deliver(self, ts: int, bars: list[Bar]) -> None:
        engine, venue = self._engine, self._venue
        started = monotonic_ns()
        decisions_before = self._decisions
        self._clock.fire_due()
        for bar in bars:
            venue.on_bar(bar)
            engine.on_bar(bar)
            venue.on_bar_close(bar)
        engine.end_cycle()
        self.delivered += len(bars)
        self.last_ts = ts
        made = self._decisions - decisions_before
        if made and self._on_cycle is not None:
            self._on_cycle(made, monotonic_ns() - started)


async def sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    """Sleep `seconds`, or less if `stop` is set meanwhile.

    Woken by a timer of its own: the task runs again the loop's second turn after its time.
    `asyncio.wait_for(stop.wait(), seconds)` took six turns (its timeout, then cancelling the
    wait), and each turn let the writer's pump ship another chunk first: a bar due while the
    node pumped waited ~6 chunks (0.6 ms) instead of the one under way (see
    `quantdesk.node.paper.PUMP_YIELDS`).
    """
    if stop.is_set():
        return
    loop = asyncio.get_running_loop()
    woken: asyncio.Future[None] = loop.create_future()
    timer = loop.call_later(seconds, _wake, woken)
    watcher = loop.create_task(_wake_when_set(stop, woken))
    try:
        await woken
    finally:
        timer.cancel()
        watcher.cancel()


def _wake(woken: asyncio.Future[None]) -> None:
    if not woken.done():
        woken.set_result(None)


async def _wake_when_set(stop: asyncio.Event, woken: asyncio.Future[None]) -> None:
    await stop.wait()
    _wake(woken)


def closed_hours_on(calendar: MarketCalendar) -> ClosedHours:
    """The `skip_closed` of a feed on `calendar`'s sessions. Between the last bar and the next,
    when a close or an open lies between them: from the first close after the last bar (the
    bar itself if it came after hours) to the open before the next bar, or to that bar if it
    comes first (pre-market). A session without bars in between is skipped with its nights."""

    def closed(last_ts: int, ts: int) -> tuple[int, int] | None:
        last_close = calendar.previous_close(ts)
        reopen = calendar.next_open(last_ts)
        if last_close < last_ts and reopen > ts:
            return None  # the same session, or the same stretch of closed hours
        close = max(last_ts, calendar.previous_close(reopen))
        resume = min(ts, calendar.next_open(last_close))
        return (close, resume) if resume > close else None

    return closed


def session_close_on(calendar: MarketCalendar) -> SessionClose:
    """The `session_close` of a feed on `calendar`'s sessions."""

    def close(ts: int) -> int | None:
        day = calendar.session_of(ts)
        return None if day is None else calendar.close_time(day)

    return close


def iso_utc(ts_ns: int) -> str:
    """A clock reading as ISO 8601 UTC, for logs and /status."""
    return datetime.fromtimestamp(ts_ns / NANOS_PER_SECOND, tz=UTC).isoformat()


def _instants(series: Mapping[str, BarSeries]) -> Iterator[tuple[int, list[Bar]]]:
    """Bars of every symbol merged in time order and grouped by timestamp (symbols in given order)."""
    streams = [_bars(s, rank) for rank, s in enumerate(series.values())]
    current: list[Bar] = []
    for _, _, bar in heapq.merge(*streams):
        if current and bar.ts_event != current[0].ts_event:
            yield current[0].ts_event, current
            current = []
        current.append(bar)
    if current:
        yield current[0].ts_event, current


def _bars(series: BarSeries, rank: int) -> Iterator[tuple[int, int, Bar]]:
    columns = zip(
        series.ts.tolist(),
        series.open.tolist(),
        series.high.tolist(),
        series.low.tolist(),
        series.close.tolist(),
        series.volume.tolist(),
        strict=True,
    )
    for ts, o, h, low, c, v in columns:
        yield ts, rank, Bar(series.symbol, ts, o, h, low, c, v, ts)
