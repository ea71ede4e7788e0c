"""Market sessions and holidays of an exchange, precomputed from exchange_calendars for per-bar use.

Codes are exchange_calendars codes ("XNYS" for NYSE, "XLON", "XTKS", an alias such
as "NYSE", ...), passed through unchanged, plus our own "XNSE" for the National
Stock Exchange of India. exchange_calendars has no NSE calendar; "XNSE" is backed
by its "XBOM" (BSE) calendar, whose regular hours (09:15-15:30 Asia/Kolkata) and
trading holidays NSE shares (one-off sessions such as Diwali's Muhurat trading or
a Saturday drill are not in it). exchange_calendars records XBOM holidays only up to
a fixed year (2026 in version 4.13), so a requested range is clipped to what the
calendar knows, and a query outside the clipped range raises ConfigError rather
than answering from days nobody recorded.

Building an exchange_calendars calendar takes a noticeable fraction of a second,
so the tables derived from it (immutable numpy arrays and tuples) are cached per
(code, start, end); every per-bar query is then a `searchsorted` on those arrays.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from types import MappingProxyType
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

from quantdesk.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

NANOS_PER_MINUTE = 60_000_000_000

#: Our calendar codes that exchange_calendars does not know, and the code that backs each.
CALENDAR_ALIASES: MappingProxyType[str, str] = MappingProxyType({"XNSE": "XBOM"})

_EXAMPLE_CODES = "XNYS (NYSE), XNSE (NSE), XBOM (BSE), XLON, XTKS, XHKG"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_HHMM = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")


@dataclass(frozen=True, slots=True)
class _SessionTable:
    """Everything a MarketCalendar answers from; read-only, shared through the cache."""

    code: str
    tz: str
    start: date
    end: date
    lo_ns: int  # local midnight starting `start`, in UTC ns
    hi_ns: int  # local midnight ending `end`, in UTC ns
    sessions: tuple[date, ...]
    index_of: MappingProxyType[date, int]
    opens: NDArray[np.int64]
    closes: NDArray[np.int64]
    break_starts: NDArray[np.int64]  # NaT (int64 min) where a session has no break
    break_ends: NDArray[np.int64]
    has_breaks: bool
    early_closes: frozenset[date]
    # The same opens and closes as Python ints: a per-bar question about one instant is a
    # bisect on these, several times cheaper than a numpy call on a scalar.
    open_ns: tuple[int, ...] = ()
    close_ns: tuple[int, ...] = ()


class MarketCalendar:
    """Sessions of one exchange: open/close in UTC ns, holidays, early closes, breaks.

    `MarketCalendar("XNYS")` covers 2000-01-01..2030-12-31 by default;
    `MarketCalendar("XNSE")` is clipped to the last year exchange_calendars
    records for BSE. A session is the half-open interval [open, close); for
    exchanges with a lunch break (XHKG, XTKS) `is_open` is False during the
    break while `session_of` still names the session.
    """

    __slots__ = ("_t",)

    def __init__(
        self,
        code: str,
        *,
        start: str | date = "2000-01-01",
        end: str | date = "2030-12-31",
    ) -> None:
        first = _as_date(start, "calendar start")
        last = _as_date(end, "calendar end")
        if first > last:
            raise ConfigError(f"calendar {code}: start {first} is after end {last}")
        self._t = _session_table(code, first, last)

    def __repr__(self) -> str:
        return f"MarketCalendar({self.code!r}, start={self.start}, end={self.end})"

    @property
    def code(self) -> str:
        """The code this calendar was built from, e.g. "XNYS" or "XNSE"."""
        return self._t.code

    @property
    def tz(self) -> str:
        """The exchange's time zone as a zoneinfo name, e.g. "America/New_York"."""
        return self._t.tz

    @property
    def start(self) -> date:
        """First day covered (after clipping to what exchange_calendars records)."""
        return self._t.start

    @property
    def end(self) -> date:
        """Last day covered (after clipping to what exchange_calendars records)."""
        return self._t.end

    # ---- days -----------------------------------------------------------------

    def is_session(self, day: date | str) -> bool:
        """True when the exchange trades on `day` (not a weekend or holiday)."""
        return self._check_day(_as_date(day, "day")) in self._t.index_of

    def session_bounds(self, day: date | str) -> tuple[int, int]:
        """Regular open and close of the session on `day`, in UTC ns."""
        i = self._session_index(day)
        return int(self._t.opens[i]), int(self._t.closes[i])

    def close_time(self, day: date | str) -> int:
        """Close of the session on `day` in UTC ns, early closes included."""
        return int(self._t.closes[self._session_index(day)])

    def is_early_close(self, day: date | str) -> bool:
        """True when the session on `day` closes before the regular time (e.g. NYSE 13:00 ET)."""
        i = self._session_index(day)
        return self._t.sessions[i] in self._t.early_closes

    def sessions_between(self, start: date | str, end: date | str) -> list[date]:
        """Sessions from `start` to `end`, both included, in order; empty when start > end."""
        first = self._check_day(_as_date(start, "start"))
        last = self._check_day(_as_date(end, "end"))
        s = self._t.sessions
        return list(s[bisect_left(s, first) : bisect_right(s, last)])

    def time_before_close(self, day: date | str, minutes: int) -> int:
        """UTC ns `minutes` before the close on `day`, following early closes.

        On NYSE 2024-07-03 (close 13:00 ET) `time_before_close(day, 5)` is 12:55 ET,
        not 15:55. The result is not clipped to the open: asking for more minutes
        than the session lasts gives a time before it opens.
        """
        if minutes < 0:
            raise ConfigError(f"minutes before close must be >= 0, got {minutes}")
        return self.close_time(day) - minutes * NANOS_PER_MINUTE

    def local_time_on(self, day: date | str, hhmm: str) -> int:
        """UTC ns of wall time `hhmm` ("HH:MM", exchange local time) on `day`.

        `MarketCalendar("XNSE").local_time_on("2024-03-12", "15:25")` is 09:55 UTC.
        `day` need not be a session. A wall time skipped or repeated by a DST change
        resolves as zoneinfo's fold=0 does (the earlier offset).
        """
        match = _HHMM.fullmatch(hhmm)
        if match is None:
            raise ConfigError(f"local time {hhmm!r} is not HH:MM (24-hour), e.g. '15:25'")
        wall = time(int(match[1]), int(match[2]))
        return _local_ns(_as_date(day, "day"), wall, self._t.tz)

    # ---- instants (per bar: searchsorted on int64 arrays, no pandas) ------------

    def is_open(self, ts_ns: int) -> bool:
        """True when `ts_ns` falls in regular hours: open <= ts < close, outside any break."""
        t = self._t
        if not t.lo_ns <= ts_ns < t.hi_ns:
            raise self._instant_out_of_range(ts_ns)
        i = bisect_right(t.open_ns, ts_ns) - 1
        if i < 0 or ts_ns >= t.close_ns[i]:
            return False
        return not (t.has_breaks and t.break_starts[i] <= ts_ns < t.break_ends[i])

    def session_of(self, ts_ns: int) -> date | None:
        """The session whose [open, close) contains `ts_ns`, else None."""
        i = self._containing(ts_ns)
        return None if i < 0 else self._t.sessions[i]

    def minutes_to_close(self, ts_ns: int) -> float | None:
        """Minutes from `ts_ns` to the close of the session containing it, else None."""
        i = self._containing(ts_ns)
        if i < 0:
            return None
        return float(int(self._t.closes[i]) - ts_ns) / NANOS_PER_MINUTE

    def next_open(self, ts_ns: int) -> int:
        """The first open strictly after `ts_ns`, in UTC ns."""
        t = self._t
        if not t.lo_ns <= ts_ns < t.hi_ns:
            raise self._instant_out_of_range(ts_ns)
        i = int(t.opens.searchsorted(ts_ns, "right"))
        if i == len(t.opens):
            raise ConfigError(f"calendar {t.code} has no open after {_iso(ts_ns)}; it ends on {t.end}")
        return int(t.opens[i])

    def previous_close(self, ts_ns: int) -> int:
        """The last close strictly before `ts_ns`, in UTC ns."""
        t = self._t
        if not t.lo_ns <= ts_ns < t.hi_ns:
            raise self._instant_out_of_range(ts_ns)
        i = int(t.closes.searchsorted(ts_ns, "left")) - 1
        if i < 0:
            raise ConfigError(f"calendar {t.code} has no close before {_iso(ts_ns)}; it starts on {t.start}")
        return int(t.closes[i])

    # ---- internals --------------------------------------------------------------

    def _containing(self, ts_ns: int) -> int:
        """Index of the session whose [open, close) holds ts_ns, or -1."""
        t = self._t
        if not t.lo_ns <= ts_ns < t.hi_ns:
            raise self._instant_out_of_range(ts_ns)
        i = bisect_right(t.open_ns, ts_ns) - 1
        if i < 0 or ts_ns >= t.close_ns[i]:
            return -1
        return i

    def _check_day(self, day: date) -> date:
        t = self._t
        if not t.start <= day <= t.end:
            raise ConfigError(f"{day} is outside the {t.code} calendar, which covers {t.start}..{t.end}")
        return day

    def _session_index(self, day: date | str) -> int:
        d = self._check_day(_as_date(day, "day"))
        i = self._t.index_of.get(d)
        if i is None:
            raise ConfigError(f"{d} is not a {self._t.code} session (weekend or holiday)")
        return i

    def _instant_out_of_range(self, ts_ns: int) -> ConfigError:
        t = self._t
        return ConfigError(f"{_iso(ts_ns)} is outside the {t.code} calendar, which covers {t.start}..{t.end}")


@lru_cache(maxsize=32)
def _session_table(code: str, start: date, end: date) -> _SessionTable:
    """Build (once per code and range) the arrays every MarketCalendar query reads."""
    # exchange_calendars and pandas (~150 MB) load only when a calendar is built, so a
    # backtest without one never imports them.
    import exchange_calendars as xc

    backing = CALENDAR_ALIASES.get(code, code)
    try:
        cal = _build(backing, start, end)
    except xc.errors.InvalidCalendarName:
        raise ConfigError(
            f"unknown market calendar {code!r}; use e.g. {_EXAMPLE_CODES}, "
            "or any code from exchange_calendars.get_calendar_names()"
        ) from None
    except ValueError:
        # Asked beyond the years the calendar records (XBOM: holidays only to 2026):
        # clip to its bounds rather than refuse the default range.
        bound_min, bound_max = _bounds(backing)
        start = max(start, bound_min) if bound_min is not None else start
        end = min(end, bound_max) if bound_max is not None else end
        if start > end:
            raise ConfigError(f"calendar {code} records no days in the requested range") from None
        try:
            cal = _build(backing, start, end)
        except ValueError as exc:
            raise ConfigError(f"calendar {code}: {exc}") from None

    tz = str(cal.tz.key) if isinstance(cal.tz, ZoneInfo) else str(cal.tz)
    sessions = tuple(ts.date() for ts in cal.sessions)
    break_starts = _utc_ns(cal.break_starts)
    return _SessionTable(
        code=code,
        tz=tz,
        start=start,
        end=end,
        lo_ns=_local_ns(start, time(0), tz),
        hi_ns=_local_ns(end + timedelta(days=1), time(0), tz),
        sessions=sessions,
        index_of=MappingProxyType({d: i for i, d in enumerate(sessions)}),
        opens=_utc_ns(cal.opens),
        closes=_utc_ns(cal.closes),
        break_starts=break_starts,
        break_ends=_utc_ns(cal.break_ends),
        has_breaks=bool((break_starts != np.iinfo(np.int64).min).any()),
        early_closes=frozenset(ts.date() for ts in cal.early_closes).intersection(sessions),
        open_ns=tuple(_utc_ns(cal.opens).tolist()),
        close_ns=tuple(_utc_ns(cal.closes).tolist()),
    )


def _build(code: str, start: date, end: date) -> Any:
    import exchange_calendars as xc

    return xc.get_calendar(code, start=start.isoformat(), end=end.isoformat())


def _bounds(code: str) -> tuple[date | None, date | None]:
    """The years a calendar class records; read from its default instance (cached by xc)."""
    import exchange_calendars as xc
    import pandas as pd

    cls = type(xc.get_calendar(code))
    lo, hi = cls.bound_min(), cls.bound_max()
    return (
        None if lo is None else pd.Timestamp(lo).date(),
        None if hi is None else pd.Timestamp(hi).date(),
    )


def _utc_ns(values: pd.Series[Any]) -> NDArray[np.int64]:
    """A tz-aware datetime column as read-only int64 UTC ns (NaT -> int64 min)."""
    import pandas as pd

    out = np.array(pd.DatetimeIndex(values).as_unit("ns").asi8, dtype=np.int64)
    out.setflags(write=False)
    return out


def _local_ns(day: date, wall: time, tz: str) -> int:
    local = datetime.combine(day, wall, tzinfo=ZoneInfo(tz))
    return (local - _EPOCH) // timedelta(microseconds=1) * 1000


def _as_date(value: date | str, what: str) -> date:
    if isinstance(value, datetime):
        # A datetime is a date too, but its time and zone would be silently dropped.
        raise ConfigError(f"{what} must be a date, not a datetime: {value!r}")
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} {value!r} is not a date (YYYY-MM-DD)") from None


def _iso(ts_ns: int) -> str:
    return (_EPOCH + timedelta(microseconds=ts_ns // 1000)).isoformat()
