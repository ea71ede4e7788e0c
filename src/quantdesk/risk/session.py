"""End of the trading day: the entry cutoff and the flatten time of each session, in UTC ns.

The times follow `RiskConfig` (see its docstring): the flatten is the earlier of
the configured local `flatten_time` (NSE default 15:25 IST) and
`flatten_minutes_before_close` before the day's close, so an early close
(NYSE 2024-11-29 shuts at 13:00 ET) pulls it forward; the entry cutoff is the
configured local `entry_cutoff`, or the flatten minus a margin.

Brokers square off intraday positions themselves, at a charge per order.
Zerodha Kite squares off MIS positions at 15:20 IST for equity and 15:25 IST for
F&O (KITE_MIS_SQUARE_OFF), so the flatten must be configured before the
square-off of the product traded: for MIS equity the NSE default of 15:25 is too
late and `flatten_time` must be e.g. "15:15". Pass the product's square-off as
`broker_square_off` and EndOfDay refuses a flatten that is not strictly earlier.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from types import MappingProxyType
from typing import Final
from zoneinfo import ZoneInfo

from quantdesk.clock.calendar import NANOS_PER_MINUTE, MarketCalendar
from quantdesk.errors import ConfigError
from quantdesk.risk.config import RiskConfig

#: Local flatten time used when `RiskConfig.flatten_time` is None, by calendar code.
EXCHANGE_FLATTEN_TIMES: Mapping[str, str] = MappingProxyType({"XNSE": "15:25", "XBOM": "15:25"})

#: Zerodha Kite's own square-off of intraday (MIS) positions, IST, by product.
KITE_MIS_SQUARE_OFF: Mapping[str, str] = MappingProxyType({"equity": "15:20", "fno": "15:25"})

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_LOOKAHEAD_DAYS: Final = 15  # longer than any run of holidays and weekends


class EndOfDay:
    """Entry cutoff and flatten time of every session of one exchange.

    On NSE with the defaults: cutoff 15:10 IST (09:40 UTC), flatten 15:25 IST
    (09:55 UTC). On NYSE: cutoff 15:40 ET, flatten 15:55 ET; on the 2024-11-29
    early close, 12:40 and 12:55 ET.
    """

    __slots__ = ("_cache", "_calendar", "_config", "_flatten_hhmm", "_session", "_tz")

    def __init__(
        self, config: RiskConfig, calendar: MarketCalendar, *, broker_square_off: str | None = None
    ) -> None:
        self._config = config
        self._calendar = calendar
        self._tz = ZoneInfo(calendar.tz)
        self._flatten_hhmm = config.flatten_time or EXCHANGE_FLATTEN_TIMES.get(calendar.code)
        self._cache: dict[date, tuple[int, int]] = {}
        # (open, close, cutoff) of the last session asked about: every instant inside it has
        # that cutoff, so the gate's per-signal question needs no calendar lookup.
        self._session: tuple[int, int, int] = (0, 0, 0)
        if broker_square_off is not None:
            calendar.local_time_on(calendar.start, broker_square_off)  # validates HH:MM
            if self._flatten_hhmm is None:
                raise ConfigError(
                    f"risk.flatten_time is needed before the broker's square-off at {broker_square_off}"
                )
            if self._flatten_hhmm >= broker_square_off:
                raise ConfigError(
                    f"risk.flatten_time {self._flatten_hhmm} is not before the broker's square-off at "
                    f"{broker_square_off}; set it earlier, e.g. 5 minutes before"
                )

    def flatten_ns(self, day: date | str) -> int:
        """When every position is closed on session `day`, in UTC ns."""
        return self._times(day)[1]

    def entry_cutoff_ns(self, day: date | str) -> int:
        """From when no new entry is allowed on session `day`, in UTC ns."""
        return self._times(day)[0]

    def is_past_cutoff(self, now: int) -> bool:
        """True from the entry cutoff of the trading day holding `now` until that day ends.

        Outside a session the trading day is the local calendar date; a day the
        exchange does not trade has no cutoff (the gate's tradability check
        covers it).
        """
        cutoff = self.cutoff_of(now)
        return cutoff is not None and now >= cutoff

    def cutoff_of(self, now: int) -> int | None:
        """The entry cutoff of the trading day holding `now`, or None on a day without trading."""
        opens, closes, cutoff = self._session
        if opens <= now < closes:
            return cutoff
        day = self._calendar.session_of(now)
        if day is not None:
            opens, closes = self._calendar.session_bounds(day)
            cutoff = self.entry_cutoff_ns(day)
            self._session = (opens, closes, cutoff)
            return cutoff
        day = self._trading_day(now)
        return None if day is None else self.entry_cutoff_ns(day)

    def is_past_flatten(self, now: int) -> bool:
        """True from the flatten time of the trading day holding `now` until that day ends."""
        day = self._trading_day(now)
        return day is not None and now >= self.flatten_ns(day)

    def next_flatten(self, now: int) -> int:
        """The first flatten time strictly after `now`, in UTC ns (so a timer can re-arm at it)."""
        day = self._calendar.session_of(now) or self._local_date(now)
        last = min(day + timedelta(days=_LOOKAHEAD_DAYS), self._calendar.end)
        for session in self._calendar.sessions_between(day, last):
            flatten = self.flatten_ns(session)
            if flatten > now:
                return flatten
        raise ConfigError(
            f"calendar {self._calendar.code} has no session after {day} up to {last}; it ends on "
            f"{self._calendar.end}"
        )

    # ---- internals --------------------------------------------------------------

    def _times(self, day: date | str) -> tuple[int, int]:
        key = day if isinstance(day, date) else date.fromisoformat(day)
        times = self._cache.get(key)
        if times is None:
            times = self._compute(key)
            self._cache[key] = times
        return times

    def _compute(self, day: date) -> tuple[int, int]:
        cal, config = self._calendar, self._config
        flatten = cal.time_before_close(day, config.flatten_minutes_before_close)
        if self._flatten_hhmm is not None:
            flatten = min(flatten, cal.local_time_on(day, self._flatten_hhmm))
        if config.entry_cutoff is not None:
            cutoff = min(cal.local_time_on(day, config.entry_cutoff), flatten)
        else:
            cutoff = flatten - config.entry_cutoff_margin_minutes * NANOS_PER_MINUTE
        return cutoff, flatten

    def _trading_day(self, now: int) -> date | None:
        day = self._calendar.session_of(now)
        if day is not None:
            return day
        local = self._local_date(now)
        return local if self._calendar.is_session(local) else None

    def _local_date(self, now: int) -> date:
        return (_EPOCH + timedelta(microseconds=now // 1000)).astimezone(self._tz).date()
