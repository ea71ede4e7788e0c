"""Synthetic intraday bars: a seeded random walk inside an exchange's regular sessions."""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Literal
from zoneinfo import ZoneInfo

import numpy as np

from quantdesk.data._sessions import SESSION_EXCEPTIONS
from quantdesk.data.series import BarSeries, IntArray, infer_price_decimals, timestamps_to_ns
from quantdesk.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

Exchange = Literal["XNYS", "XNSE"]
TRADING_DAYS_PER_YEAR = 252
# Volume per minute of a mid-session bar; the U-shape makes open and close 4x busier.
BASE_VOLUME_PER_MINUTE = 1_000.0


@dataclass(frozen=True, slots=True)
class _Venue:
    calendar: str
    tz: str
    open: time
    close: time


_VENUES: dict[str, _Venue] = {
    "XNYS": _Venue("XNYS", "America/New_York", time(9, 30), time(16, 0)),
    # exchange_calendars has no XNSE; BSE (XBOM) keeps the same sessions and holidays.
    "XNSE": _Venue("XBOM", "Asia/Kolkata", time(9, 15), time(15, 30)),
}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NS_PER_UNIT = {"ns": 1, "us": 10**3, "ms": 10**6, "s": 10**9, "min": 60 * 10**9, "h": 3600 * 10**9}
_NS_PER_UNIT["D"] = 24 * _NS_PER_UNIT["h"]
_SIMPLE_INTERVAL = re.compile(r"(\d{1,9})(ns|us|ms|s|min|h|D)")
_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}([T ].*)?")


def synthetic_intraday(
    symbol: str = "SYN",
    *,
    days: int | None = None,
    bars: int | None = None,
    start: str | pd.Timestamp = "2024-01-02",
    exchange: Exchange = "XNYS",
    interval: str = "1min",
    seed: int = 7,
    start_price: float = 100.0,
    tick_size: float = 0.01,
    annual_vol: float = 0.25,
) -> BarSeries:
    """SYNTHETIC bars, not market data: a seeded random walk for tests, demos and benchmarks.

    Bars lie in the regular sessions of `exchange` (XNYS 09:30-16:00
    America/New_York; XNSE 09:15-15:30 Asia/Kolkata) from the first session on or
    after `start`: holidays and early closes come from exchange_calendars (XNSE
    uses its XBOM calendar; past the last year that calendar records, plain
    weekdays are used). Only whole intervals inside a session are generated, each
    labelled by its start. `days` counts sessions; `bars` stops after that many
    bars; give one or neither (default: one session).

    Prices: log returns with per-bar volatility annual_vol / sqrt(252 x bars per
    session) and no drift; close rounded to `tick_size` and never below one
    tick; open = the previous close (first bar: `start_price` on the tick grid);
    high and low add non-negative wicks on the grid, so low <= open, close <= high
    and every price is positive. Volume is U-shaped within the session (4x at
    open and close vs midday) with lognormal noise; roughly 1,000 per minute at
    midday. The same arguments give identical arrays (numpy Generator seeded
    with `seed`); 1M bars build in about a second.

    Example: ``synthetic_intraday(days=2)`` gives 780 one-minute bars of "SYN"
    on 2024-01-02 and 2024-01-03, first bar 14:30 UTC, open 100.0.
    """
    venue = _VENUES.get(exchange)
    if venue is None:
        raise ConfigError(f"exchange must be one of {', '.join(_VENUES)}, got {exchange!r}")
    if days is not None and bars is not None:
        raise ConfigError("give days or bars, not both")
    if days is None and bars is None:
        days = 1
    if (days is not None and days < 1) or (bars is not None and bars < 1):
        raise ConfigError(f"days and bars must be at least 1, got days={days} bars={bars}")
    if not (start_price > 0 and tick_size > 0 and annual_vol >= 0):
        raise ConfigError("start_price and tick_size must be positive, annual_vol not negative")
    step_ns = _interval_ns(interval)
    session_ns = _wall_ns(venue.close) - _wall_ns(venue.open)
    full_session_bars = session_ns // step_ns if step_ns > 0 else 0
    if full_session_bars < 1:
        raise ConfigError(f"interval {interval!r} does not fit in an {exchange} session")

    if days is not None:
        sessions = days
    else:
        assert bars is not None
        # Early closes make some sessions shorter: ask for a few spare sessions.
        sessions = math.ceil(bars / full_session_bars)
        sessions += sessions // 50 + 2
    opens, closes = _sessions(venue, _first_day(start), sessions)
    counts = (closes - opens) // step_ns
    if bars is not None:
        needed = int(np.searchsorted(np.cumsum(counts), bars)) + 1
        opens, counts = opens[:needed], counts[:needed]
    total = int(counts.sum())

    session_of = np.repeat(np.arange(len(counts)), counts)
    first_of_session = np.cumsum(counts) - counts
    position = np.arange(total) - first_of_session[session_of]
    ts = opens[session_of] + position * step_ns

    rng = np.random.default_rng(seed)
    sigma = annual_vol / math.sqrt(TRADING_DAYS_PER_YEAR * full_session_bars)
    returns = rng.standard_normal(total) * sigma - 0.5 * sigma * sigma
    wick_up = np.abs(rng.standard_normal(total))
    wick_down = np.abs(rng.standard_normal(total))
    noise = rng.lognormal(0.0, 0.35, total)

    path = start_price * np.exp(np.cumsum(returns))
    close_ticks = np.maximum(np.rint(path / tick_size), 1).astype(np.int64)
    open_ticks = np.empty_like(close_ticks)
    open_ticks[0] = max(round(start_price / tick_size), 1)
    open_ticks[1:] = close_ticks[:-1]
    wick_scale = 0.5 * sigma * path / tick_size
    high_ticks = np.maximum(open_ticks, close_ticks) + np.rint(wick_up * wick_scale).astype(np.int64)
    low_ticks = np.maximum(
        np.minimum(open_ticks, close_ticks) - np.rint(wick_down * wick_scale).astype(np.int64), 1
    )

    fraction = (position + 0.5) / counts[session_of]
    shape = 1.0 + 3.0 * (2.0 * fraction - 1.0) ** 2
    base = BASE_VOLUME_PER_MINUTE * step_ns / 60e9
    volume = np.maximum(np.rint(base * shape * noise), 1.0)

    decimals = infer_price_decimals([tick_size])

    def prices(ticks: IntArray) -> np.ndarray:
        # Rounding to the tick's decimals gives the double nearest the decimal price.
        return np.round(ticks * tick_size, decimals)

    if bars is not None:
        ts, volume = ts[:bars], volume[:bars]
        open_ticks, high_ticks = open_ticks[:bars], high_ticks[:bars]
        low_ticks, close_ticks = low_ticks[:bars], close_ticks[:bars]
    return BarSeries(
        symbol=symbol,
        ts=ts,
        open=prices(open_ticks),
        high=prices(high_ticks),
        low=prices(low_ticks),
        close=prices(close_ticks),
        volume=volume,
        source=f"synthetic:{exchange}:{interval}:seed={seed}",
        price_decimals=decimals,
    )


def _interval_ns(interval: str) -> int:
    """`pd.Timedelta(interval)` in ns; plain forms such as "1min" are read without pandas."""
    match = _SIMPLE_INTERVAL.fullmatch(interval) if isinstance(interval, str) else None
    if match is not None:
        return int(match.group(1)) * _NS_PER_UNIT[match.group(2)]
    import pandas as pd  # other spellings ("1h30min", "90 seconds") as pandas reads them

    try:
        return int(pd.Timedelta(interval).value)
    except ValueError as exc:
        raise ConfigError(f"interval must be a duration such as '1min', got {interval!r}") from exc


def _first_day(start: str | pd.Timestamp) -> date:
    """The calendar day of `start` (its wall-clock date when it carries a zone)."""
    if isinstance(start, str) and _ISO_DAY.fullmatch(start):
        try:
            return datetime.fromisoformat(start).date()
        except ValueError:
            pass  # pandas reads more spellings than ISO 8601
    import pandas as pd

    stamp = pd.Timestamp(start)
    return (stamp.tz_localize(None) if stamp.tz is not None else stamp).normalize().date()


def _wall_ns(wall: time) -> int:
    return ((wall.hour * 60 + wall.minute) * 60 + wall.second) * 10**9


def _utc_ns(day: date, wall: time, tz: str) -> int:
    local = datetime.combine(day, wall, tzinfo=ZoneInfo(tz))
    return (local - _EPOCH) // timedelta(microseconds=1) * 1000


def _sessions(venue: _Venue, first: date, count: int) -> tuple[IntArray, IntArray]:
    """Open and close (UTC ns) of `count` sessions from the first on or after `first`.

    Read from the table in `_sessions.py` when it covers the days needed, else from
    exchange_calendars; both give the same sessions.
    """
    # About 252 sessions in 365 days; the margin covers holiday-heavy stretches.
    end = first + timedelta(days=int(count * 1.5) + 14)
    table_lo, table_hi, holidays, weekend_sessions, special = SESSION_EXCEPTIONS[venue.calendar]
    lo, hi = date.fromisoformat(table_lo), date.fromisoformat(table_hi)
    if venue.calendar == "XBOM":
        # Its holidays are recorded only up to a year (the table's last day); weekdays after.
        end = min(end, hi)
    if first < lo or end > hi:
        return _calendar_sessions(venue, first, count)
    closed = frozenset(holidays.split())
    extra = frozenset(weekend_sessions.split())
    days: list[date] = []
    walls: list[tuple[time, time]] = []
    day = first
    while day <= end:
        iso = day.isoformat()
        if (day.weekday() < 5 and iso not in closed) or iso in extra:
            days.append(day)
            hours = special.get(iso)
            walls.append(
                (venue.open, venue.close)
                if hours is None
                else (time.fromisoformat(hours[0]), time.fromisoformat(hours[1]))
            )
        day += timedelta(days=1)
    day = max(first, end + timedelta(days=1))
    while len(days) < count:
        if day.weekday() < 5:
            days.append(day)
            walls.append((venue.open, venue.close))
        day += timedelta(days=1)
    opens = np.array([_utc_ns(d, o, venue.tz) for d, (o, _) in zip(days, walls, strict=True)], dtype=np.int64)
    closes = np.array(
        [_utc_ns(d, c, venue.tz) for d, (_, c) in zip(days, walls, strict=True)], dtype=np.int64
    )
    return opens[:count], closes[:count]


def _calendar_sessions(venue: _Venue, first_day: date, count: int) -> tuple[IntArray, IntArray]:
    """`_sessions` read from exchange_calendars, for days the table does not cover."""
    # Slow to import (~0.5 s) and only synthetic data outside the table needs it.
    import exchange_calendars as xcals
    import pandas as pd
    from exchange_calendars.exchange_calendar_xbom import XBOMExchangeCalendar

    first = pd.Timestamp(first_day)
    # About 252 sessions in 365 days; the margin covers holiday-heavy stretches.
    end = first + pd.Timedelta(days=int(count * 1.5) + 14)
    if venue.calendar == "XBOM":
        # Its holidays are recorded only up to a year; weekdays stand in after that.
        end = min(end, pd.Timestamp(XBOMExchangeCalendar.bound_max()))
    opens = closes = np.empty(0, dtype=np.int64)
    next_day = first
    if end >= first:
        try:
            with warnings.catch_warnings():
                # exchange_calendars 4.13 trips a pandas 3.1 deprecation (Series.values).
                warnings.simplefilter("ignore", DeprecationWarning)
                schedule = xcals.get_calendar(venue.calendar, start=first, end=end).schedule
        except ValueError as exc:
            raise ConfigError(f"no {venue.calendar} calendar from {first.date()}: {exc}") from exc
        opens = timestamps_to_ns(schedule["open"])
        closes = timestamps_to_ns(schedule["close"])
        next_day = end + pd.Timedelta(days=1)
    if len(opens) < count:
        days = pd.bdate_range(next_day, periods=count - len(opens))
        opens = np.concatenate(
            [opens, timestamps_to_ns((days + pd.Timedelta(_wall_ns(venue.open))).tz_localize(venue.tz))]
        )
        closes = np.concatenate(
            [closes, timestamps_to_ns((days + pd.Timedelta(_wall_ns(venue.close))).tz_localize(venue.tz))]
        )
    return opens[:count], closes[:count]
