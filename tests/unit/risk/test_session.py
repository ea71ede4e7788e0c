"""End of day: entry cutoff and flatten times on NSE and NYSE, early closes, holidays, broker square-off."""

from __future__ import annotations

from datetime import date
from typing import Any

import pandas as pd
import pytest

from quantdesk.clock.calendar import MarketCalendar
from quantdesk.errors import ConfigError
from quantdesk.risk.config import RiskConfig
from quantdesk.risk.session import KITE_MIS_SQUARE_OFF, EndOfDay


def utc_ns(text: str) -> int:
    return pd.Timestamp(text, tz="UTC").value


@pytest.fixture(scope="module")
def nyse() -> MarketCalendar:
    return MarketCalendar("XNYS", start="2024-01-01", end="2024-12-31")


@pytest.fixture(scope="module")
def nse() -> MarketCalendar:
    return MarketCalendar("XNSE", start="2024-01-01", end="2024-12-31")


def eod(calendar: MarketCalendar, **config: Any) -> EndOfDay:
    return EndOfDay(RiskConfig(**config), calendar)


def test_nse_flattens_at_15_25_ist_and_stops_entries_at_15_10(nse: MarketCalendar) -> None:
    day = date(2024, 3, 12)
    assert eod(nse).flatten_ns(day) == utc_ns("2024-03-12 09:55")  # 15:25 IST
    assert eod(nse).entry_cutoff_ns(day) == utc_ns("2024-03-12 09:40")  # 15:10 IST


def test_nyse_flattens_five_minutes_before_the_close_across_dst(nyse: MarketCalendar) -> None:
    assert eod(nyse).flatten_ns(date(2024, 7, 1)) == utc_ns("2024-07-01 19:55")  # 15:55 EDT
    assert eod(nyse).flatten_ns(date(2024, 11, 26)) == utc_ns("2024-11-26 20:55")  # 15:55 EST
    assert eod(nyse).entry_cutoff_ns(date(2024, 11, 26)) == utc_ns("2024-11-26 20:40")


def test_nyse_early_close_pulls_the_flatten_and_cutoff_forward(nyse: MarketCalendar) -> None:
    day = date(2024, 11, 29)  # the day after Thanksgiving closes at 13:00 ET
    assert nyse.is_early_close(day)
    assert eod(nyse).flatten_ns(day) == utc_ns("2024-11-29 17:55")  # 12:55 ET
    assert eod(nyse).entry_cutoff_ns(day) == utc_ns("2024-11-29 17:40")  # 12:40 ET


def test_a_configured_flatten_time_never_goes_past_close_minus_the_margin(nyse: MarketCalendar) -> None:
    late = eod(nyse, flatten_time="15:50")
    assert late.flatten_ns(date(2024, 11, 26)) == utc_ns("2024-11-26 20:50")
    assert late.flatten_ns(date(2024, 11, 29)) == utc_ns("2024-11-29 17:55")


def test_minutes_before_close_is_configurable(nyse: MarketCalendar) -> None:
    assert eod(nyse, flatten_minutes_before_close=10).flatten_ns("2024-11-26") == utc_ns("2024-11-26 20:50")


def test_an_explicit_entry_cutoff_is_used_but_never_after_the_flatten(
    nse: MarketCalendar, nyse: MarketCalendar
) -> None:
    assert eod(nse, entry_cutoff="14:00").entry_cutoff_ns("2024-03-12") == utc_ns("2024-03-12 08:30")
    # 15:00 ET is after the early-close flatten of 12:55 ET: the cutoff is the flatten.
    assert eod(nyse, entry_cutoff="15:00").entry_cutoff_ns("2024-11-29") == utc_ns("2024-11-29 17:55")


def test_is_past_cutoff_at_the_edge_after_the_close_and_on_a_holiday(nyse: MarketCalendar) -> None:
    end_of_day = eod(nyse)
    cutoff = utc_ns("2024-11-26 20:40")
    assert not end_of_day.is_past_cutoff(cutoff - 1)
    assert end_of_day.is_past_cutoff(cutoff)
    assert end_of_day.is_past_cutoff(utc_ns("2024-11-26 23:00"))  # after the close, same local day
    assert not end_of_day.is_past_cutoff(utc_ns("2024-11-27 14:00"))  # before the next open
    assert not end_of_day.is_past_cutoff(utc_ns("2024-11-28 21:00"))  # Thanksgiving: no cutoff


def test_is_past_flatten_at_the_edge(nse: MarketCalendar) -> None:
    flatten = utc_ns("2024-03-12 09:55")
    assert not eod(nse).is_past_flatten(flatten - 1)
    assert eod(nse).is_past_flatten(flatten)


def test_next_flatten_skips_a_holiday_and_moves_on_once_reached(nyse: MarketCalendar) -> None:
    end_of_day = eod(nyse)
    assert end_of_day.next_flatten(utc_ns("2024-11-27 15:00")) == utc_ns("2024-11-27 20:55")
    # Reached at exactly the flatten: the next one is Friday's early-close flatten.
    assert end_of_day.next_flatten(utc_ns("2024-11-27 20:55")) == utc_ns("2024-11-29 17:55")
    assert end_of_day.next_flatten(utc_ns("2024-11-28 16:00")) == utc_ns("2024-11-29 17:55")


def test_next_flatten_past_the_end_of_the_calendar_is_a_config_error(nyse: MarketCalendar) -> None:
    with pytest.raises(ConfigError, match="no session after"):
        eod(nyse).next_flatten(utc_ns("2024-12-31 21:30"))


def test_a_flatten_not_before_the_kite_mis_square_off_is_refused(nse: MarketCalendar) -> None:
    equity_square_off = KITE_MIS_SQUARE_OFF["equity"]
    assert equity_square_off == "15:20"
    with pytest.raises(ConfigError, match="not before the broker's square-off at 15:20"):
        EndOfDay(RiskConfig(), nse, broker_square_off=equity_square_off)
    with pytest.raises(ConfigError, match="not before"):
        EndOfDay(RiskConfig(flatten_time="15:20"), nse, broker_square_off=equity_square_off)
    early = EndOfDay(RiskConfig(flatten_time="15:15"), nse, broker_square_off=equity_square_off)
    assert early.flatten_ns("2024-03-12") == utc_ns("2024-03-12 09:45")
    assert early.entry_cutoff_ns("2024-03-12") == utc_ns("2024-03-12 09:30")


def test_flatten_on_a_day_without_a_session_is_a_config_error(nyse: MarketCalendar) -> None:
    with pytest.raises(ConfigError, match="not a XNYS session"):
        eod(nyse).flatten_ns(date(2024, 11, 28))
