"""Which closed hours a replay with `skip_closed` jumps over, from the exchange calendar."""

from __future__ import annotations

from quantdesk.clock.calendar import MarketCalendar
from quantdesk.node.feed import closed_hours_on

NYSE = MarketCalendar("XNYS")
closed = closed_hours_on(NYSE)


def test_within_a_session_nothing_is_skipped() -> None:
    ten, a_minute_later = NYSE.local_time_on("2024-01-02", "10:00"), NYSE.local_time_on("2024-01-02", "10:01")
    assert closed(ten, a_minute_later) is None


def test_overnight_from_the_close_to_the_next_open() -> None:
    last, first = NYSE.local_time_on("2024-01-02", "15:59"), NYSE.local_time_on("2024-01-03", "09:30")
    assert closed(last, first) == (NYSE.close_time("2024-01-02"), NYSE.session_bounds("2024-01-03")[0])


def test_a_bar_stamped_at_the_close_still_skips_the_night() -> None:
    at_close = NYSE.close_time("2024-01-02")
    assert closed(at_close, NYSE.local_time_on("2024-01-03", "09:31")) == (
        at_close,
        NYSE.session_bounds("2024-01-03")[0],
    )


def test_a_weekend_and_an_early_close_follow_the_calendar() -> None:
    friday, monday = NYSE.local_time_on("2024-01-05", "15:59"), NYSE.local_time_on("2024-01-08", "09:30")
    assert closed(friday, monday) == (NYSE.close_time("2024-01-05"), monday)
    # 2024-07-03 closes at 13:00 ET; the 4th is a holiday.
    early, after = NYSE.local_time_on("2024-07-03", "12:59"), NYSE.local_time_on("2024-07-05", "09:30")
    assert closed(early, after) == (NYSE.local_time_on("2024-07-03", "13:00"), after)


def test_a_pre_market_bar_resumes_the_clock_at_that_bar_not_at_the_open() -> None:
    last, pre_market = NYSE.local_time_on("2024-01-02", "15:59"), NYSE.local_time_on("2024-01-03", "08:00")
    assert closed(last, pre_market) == (NYSE.close_time("2024-01-02"), pre_market)


def test_a_last_bar_after_hours_skips_from_that_bar() -> None:
    after_hours, next_open = NYSE.local_time_on("2024-01-02", "17:00"), NYSE.session_bounds("2024-01-03")[0]
    assert closed(after_hours, next_open) == (after_hours, next_open)
    assert closed(after_hours, NYSE.local_time_on("2024-01-02", "17:01")) is None


def test_a_session_without_bars_is_skipped_with_its_nights() -> None:
    monday, wednesday = NYSE.local_time_on("2024-01-08", "15:59"), NYSE.local_time_on("2024-01-10", "09:30")
    assert closed(monday, wednesday) == (NYSE.close_time("2024-01-08"), wednesday)


def test_other_exchanges_follow_their_own_sessions() -> None:
    nse = MarketCalendar("XNSE")
    last, first = nse.local_time_on("2024-03-12", "15:29"), nse.local_time_on("2024-03-13", "09:15")
    assert closed_hours_on(nse)(last, first) == (nse.close_time("2024-03-12"), first)
