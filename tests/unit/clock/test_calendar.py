"""Market sessions from real exchange calendars: holidays, early closes, DST, NSE, lookups."""

from __future__ import annotations

from datetime import UTC, date, datetime

import exchange_calendars as xc
import pandas as pd
import pytest

from quantdesk.clock.calendar import MarketCalendar
from quantdesk.errors import ConfigError


def utc_ns(text: str) -> int:
    """'2024-07-03 17:00' (UTC) as int nanoseconds."""
    return pd.Timestamp(text, tz="UTC").value


@pytest.fixture(scope="module")
def nyse() -> MarketCalendar:
    return MarketCalendar("XNYS")


@pytest.fixture(scope="module")
def nse() -> MarketCalendar:
    return MarketCalendar("XNSE")


def test_calendars_report_code_and_exchange_time_zone(nyse: MarketCalendar, nse: MarketCalendar) -> None:
    assert (nyse.code, nyse.tz) == ("XNYS", "America/New_York")
    assert (nse.code, nse.tz) == ("XNSE", "Asia/Kolkata")


def test_nyse_closes_early_before_independence_day_and_is_shut_on_it(
    nyse: MarketCalendar,
) -> None:
    assert nyse.is_early_close(date(2024, 7, 3))
    assert nyse.close_time(date(2024, 7, 3)) == utc_ns("2024-07-03 17:00")  # 13:00 ET
    assert not nyse.is_session(date(2024, 7, 4))
    assert nyse.is_session(date(2024, 7, 5))
    assert not nyse.is_early_close(date(2024, 7, 5))


def test_nyse_closes_early_the_day_after_thanksgiving(nyse: MarketCalendar) -> None:
    assert not nyse.is_session(date(2024, 11, 28))
    assert nyse.is_early_close(date(2024, 11, 29))
    assert nyse.session_bounds(date(2024, 11, 29)) == (
        utc_ns("2024-11-29 14:30"),
        utc_ns("2024-11-29 18:00"),  # 13:00 EST
    )
    assert not nyse.is_early_close(date(2024, 11, 27))


def test_nyse_open_in_utc_moves_an_hour_earlier_after_us_dst_starts(nyse: MarketCalendar) -> None:
    assert nyse.session_bounds(date(2024, 3, 8)) == (
        utc_ns("2024-03-08 14:30"),
        utc_ns("2024-03-08 21:00"),
    )
    assert nyse.session_bounds(date(2024, 3, 11)) == (
        utc_ns("2024-03-11 13:30"),
        utc_ns("2024-03-11 20:00"),
    )


def test_nse_shut_on_republic_day(nse: MarketCalendar) -> None:
    assert not nse.is_session(date(2024, 1, 26))
    with pytest.raises(ConfigError, match="2024-01-26 is not a XNSE session"):
        nse.session_bounds(date(2024, 1, 26))


def test_nse_normal_day_runs_0915_to_1530_ist(nse: MarketCalendar) -> None:
    assert nse.session_bounds(date(2024, 1, 25)) == (
        utc_ns("2024-01-25 03:45"),
        utc_ns("2024-01-25 10:00"),
    )
    assert not nse.is_early_close(date(2024, 1, 25))


def test_market_open_at_exact_open_and_closed_at_exact_close(nyse: MarketCalendar) -> None:
    open_ns, close_ns = nyse.session_bounds(date(2024, 3, 12))
    assert not nyse.is_open(open_ns - 1)
    assert nyse.is_open(open_ns)
    assert nyse.is_open(close_ns - 1)
    assert not nyse.is_open(close_ns)
    assert nyse.session_of(open_ns) == date(2024, 3, 12)
    assert nyse.session_of(close_ns) is None


def test_weekend_is_no_session_and_market_stays_closed(nyse: MarketCalendar) -> None:
    assert not nyse.is_session(date(2024, 3, 9))
    assert not nyse.is_session(date(2024, 3, 10))
    assert not nyse.is_open(utc_ns("2024-03-09 15:00"))
    assert nyse.session_of(utc_ns("2024-03-10 15:00")) is None
    assert nyse.minutes_to_close(utc_ns("2024-03-10 15:00")) is None


def test_next_open_from_friday_evening_is_monday_open(nyse: MarketCalendar) -> None:
    assert nyse.next_open(utc_ns("2024-03-08 22:00")) == utc_ns("2024-03-11 13:30")


def test_next_open_skips_a_monday_holiday_to_tuesday(nyse: MarketCalendar) -> None:
    # 2024-01-15 is Martin Luther King Jr. Day.
    assert nyse.next_open(utc_ns("2024-01-12 23:00")) == utc_ns("2024-01-16 14:30")


def test_previous_close_before_a_holiday_is_the_early_close(nyse: MarketCalendar) -> None:
    assert nyse.previous_close(utc_ns("2024-07-05 12:00")) == utc_ns("2024-07-03 17:00")


def test_next_open_and_previous_close_are_strict(nyse: MarketCalendar) -> None:
    open_ns, close_ns = nyse.session_bounds(date(2024, 3, 12))
    assert nyse.next_open(open_ns) == utc_ns("2024-03-13 13:30")
    assert nyse.previous_close(close_ns) == utc_ns("2024-03-11 20:00")


def test_minutes_to_close_counts_to_the_early_close(nyse: MarketCalendar) -> None:
    assert nyse.minutes_to_close(utc_ns("2024-07-03 16:30")) == 30.0
    assert nyse.minutes_to_close(utc_ns("2024-07-03 17:00")) is None


def test_local_time_on_converts_nse_wall_time_to_utc(nse: MarketCalendar) -> None:
    assert nse.local_time_on("2024-03-12", "15:25") == utc_ns("2024-03-12 09:55")


def test_local_time_on_follows_us_dst(nyse: MarketCalendar) -> None:
    assert nyse.local_time_on(date(2024, 3, 8), "15:55") == utc_ns("2024-03-08 20:55")
    assert nyse.local_time_on(date(2024, 3, 11), "15:55") == utc_ns("2024-03-11 19:55")


@pytest.mark.parametrize("bad", ["3:25", "15:60", "24:00", "1525", " 15:25"])
def test_local_time_on_rejects_malformed_time(nse: MarketCalendar, bad: str) -> None:
    with pytest.raises(ConfigError, match="is not HH:MM"):
        nse.local_time_on("2024-03-12", bad)


def test_time_before_close_follows_the_early_close(nyse: MarketCalendar) -> None:
    assert nyse.time_before_close(date(2024, 7, 3), 5) == utc_ns("2024-07-03 16:55")
    assert nyse.time_before_close(date(2024, 7, 2), 5) == utc_ns("2024-07-02 19:55")
    with pytest.raises(ConfigError, match="minutes before close"):
        nyse.time_before_close(date(2024, 7, 2), -1)
    with pytest.raises(ConfigError, match="2024-07-04 is not a XNYS session"):
        nyse.time_before_close(date(2024, 7, 4), 5)


def test_sessions_between_skips_weekends_and_holidays(nyse: MarketCalendar) -> None:
    assert nyse.sessions_between(date(2024, 7, 1), date(2024, 7, 8)) == [
        date(2024, 7, 1),
        date(2024, 7, 2),
        date(2024, 7, 3),
        date(2024, 7, 5),
        date(2024, 7, 8),
    ]
    assert nyse.sessions_between("2024-07-06", "2024-07-07") == []
    assert nyse.sessions_between("2024-07-08", "2024-07-01") == []


def test_unknown_calendar_is_named_and_supported_codes_listed() -> None:
    with pytest.raises(ConfigError, match=r"unknown market calendar 'XNOPE'.*XNYS.*XNSE"):
        MarketCalendar("XNOPE")


def test_any_exchange_calendars_code_or_alias_works() -> None:
    lse = MarketCalendar("XLON", start="2024-01-01", end="2024-12-31")
    assert lse.tz == "Europe/London"
    assert lse.session_bounds("2024-01-02") == (
        utc_ns("2024-01-02 08:00"),
        utc_ns("2024-01-02 16:30"),
    )
    assert MarketCalendar("NYSE", start="2024-01-01", end="2024-12-31").is_early_close("2024-07-03")


def test_lunch_break_closes_market_but_not_the_session() -> None:
    hkex = MarketCalendar("XHKG", start="2024-01-01", end="2024-12-31")
    reference = xc.get_calendar("XHKG", start="2024-01-01", end="2024-12-31")
    break_start = reference.break_starts["2024-03-12"].value
    break_end = reference.break_ends["2024-03-12"].value
    assert hkex.is_open(break_start - 1)
    assert not hkex.is_open(break_start)
    assert hkex.session_of(break_start) == date(2024, 3, 12)
    assert hkex.is_open(break_end)


def test_xnse_range_is_clipped_to_the_years_exchange_calendars_records(
    nse: MarketCalendar,
) -> None:
    recorded_to = pd.Timestamp(type(xc.get_calendar("XBOM")).bound_max()).date()
    assert nse.end == recorded_to
    beyond = date(recorded_to.year + 1, 1, 5)
    with pytest.raises(ConfigError, match="outside the XNSE calendar"):
        nse.is_session(beyond)
    with pytest.raises(ConfigError, match="outside the XNSE calendar"):
        nse.is_open(utc_ns(f"{beyond} 05:00"))


def test_instants_outside_the_built_range_raise() -> None:
    cal = MarketCalendar("XNYS", start="2024-01-01", end="2024-12-31")
    with pytest.raises(ConfigError, match="outside the XNYS calendar, which covers 2024-01-01"):
        cal.is_open(utc_ns("2025-01-02 15:00"))
    with pytest.raises(ConfigError, match="no open after"):
        cal.next_open(utc_ns("2024-12-31 22:00"))


def test_bad_dates_are_refused_with_the_value_named() -> None:
    with pytest.raises(ConfigError, match="calendar start '2024-13-01' is not a date"):
        MarketCalendar("XNYS", start="2024-13-01")
    with pytest.raises(ConfigError, match="start 2025-01-01 is after end 2024-01-01"):
        MarketCalendar("XNYS", start="2025-01-01", end="2024-01-01")
    with pytest.raises(ConfigError, match="must be a date, not a datetime"):
        MarketCalendar("XNYS").is_session(datetime(2024, 7, 3, tzinfo=UTC))


def test_built_tables_are_shared_across_equal_requests() -> None:
    first = MarketCalendar("XNYS", start="2024-01-01", end="2024-12-31")
    second = MarketCalendar("XNYS", start=date(2024, 1, 1), end=date(2024, 12, 31))
    assert first._t is second._t


@pytest.mark.parametrize(("ours", "theirs"), [("XNYS", "XNYS"), ("XNSE", "XBOM")])
def test_every_2024_session_matches_exchange_calendars(ours: str, theirs: str) -> None:
    cal = MarketCalendar(ours, start="2024-01-01", end="2024-12-31")
    ref = xc.get_calendar(theirs, start="2024-01-01", end="2024-12-31")
    sessions = [ts.date() for ts in ref.sessions]
    assert cal.sessions_between("2024-01-01", "2024-12-31") == sessions
    early = {ts.date() for ts in ref.early_closes}
    for day, open_ts, close_ts in zip(sessions, ref.opens, ref.closes, strict=True):
        assert cal.session_bounds(day) == (open_ts.value, close_ts.value)
        assert cal.is_early_close(day) == (day in early)


def test_instant_queries_match_exchange_calendars_every_97_minutes() -> None:
    cal = MarketCalendar("XNYS", start="2024-01-01", end="2024-12-31")
    ref = xc.get_calendar("XNYS", start="2024-01-01", end="2024-12-31")
    # 97 minutes is coprime with the day, so the probes land on every minute of day.
    probes = pd.date_range("2024-01-03", "2024-12-30", freq="97min", tz="UTC")
    for ts in probes:
        assert cal.is_open(ts.value) == ref.is_open_on_minute(ts), ts
        assert cal.next_open(ts.value) == ref.next_open(ts).value, ts
        assert cal.previous_close(ts.value) == ref.previous_close(ts).value, ts
