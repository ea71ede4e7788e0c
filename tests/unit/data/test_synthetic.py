"""Synthetic intraday bars: determinism, sessions, volume shape, price sanity, speed."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from quantdesk.data import BarSeries, synthetic_intraday
from quantdesk.errors import ConfigError

COLUMNS = ("ts", "open", "high", "low", "close", "volume")


def local_times(series: BarSeries, tz: str) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(pd.to_datetime(series.ts, unit="ns", utc=True)).tz_convert(tz)


def test_same_seed_gives_identical_arrays() -> None:
    first = synthetic_intraday(days=3, seed=11)
    second = synthetic_intraday(days=3, seed=11)

    for name in COLUMNS:
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name))


def test_another_seed_gives_another_path() -> None:
    first = synthetic_intraday(days=1, seed=1)
    second = synthetic_intraday(days=1, seed=2)

    np.testing.assert_array_equal(first.ts, second.ts)
    assert not np.array_equal(first.close, second.close)


def test_xnys_bars_lie_in_regular_sessions_on_weekdays() -> None:
    series = synthetic_intraday(days=10, start="2024-07-08")

    local = local_times(series, "America/New_York")
    minutes = local.hour * 60 + local.minute
    assert minutes.min() == 9 * 60 + 30
    assert minutes.max() == 15 * 60 + 59
    assert (local.day_of_week < 5).all()
    assert len(series) == 10 * 390


def test_xnys_skips_holidays_and_keeps_early_closes() -> None:
    # Fri 2024-01-12, then Monday 15th is Martin Luther King Jr. Day.
    series = synthetic_intraday(days=2, start="2024-01-12")
    assert sorted(set(local_times(series, "America/New_York").strftime("%Y-%m-%d"))) == [
        "2024-01-12",
        "2024-01-16",
    ]
    # The day after Thanksgiving closes at 13:00: 210 one-minute bars.
    black_friday = synthetic_intraday(days=1, start="2024-11-29")
    assert len(black_friday) == 210


def test_xnse_bars_lie_in_the_0915_1530_ist_session() -> None:
    series = synthetic_intraday(days=5, exchange="XNSE", start="2024-01-22")

    local = local_times(series, "Asia/Kolkata")
    minutes = local.hour * 60 + local.minute
    assert minutes.min() == 9 * 60 + 15
    assert minutes.max() == 15 * 60 + 29
    assert len(series) == 5 * 375
    # 2024-01-22 (Ayodhya) and 2024-01-26 (Republic Day) were market holidays.
    days = set(local.strftime("%Y-%m-%d"))
    assert not days & {"2024-01-22", "2024-01-26"}


def test_xnse_past_the_calendar_bound_uses_weekdays() -> None:
    series = synthetic_intraday(days=3, exchange="XNSE", start="2026-12-30")

    days = sorted(set(local_times(series, "Asia/Kolkata").strftime("%Y-%m-%d")))
    assert days == ["2026-12-30", "2026-12-31", "2027-01-01"]


def test_bars_stops_after_exactly_that_many_bars_across_sessions() -> None:
    series = synthetic_intraday(bars=1000, interval="5min")

    assert len(series) == 1000
    sessions = set(local_times(series, "America/New_York").date)
    assert len(sessions) == 13  # 78 five-minute bars a session
    assert np.all(np.diff(series.ts) > 0)


def test_volume_is_u_shaped_within_the_session() -> None:
    frame = synthetic_intraday(days=20).to_frame()
    local = pd.DatetimeIndex(frame.index).tz_convert("America/New_York")
    minute = local.hour * 60 + local.minute - (9 * 60 + 30)

    by_minute = frame["volume"].groupby(np.asarray(minute)).mean()
    opening, midday, closing = by_minute[:30].mean(), by_minute[180:210].mean(), by_minute[-30:].mean()
    assert opening > 2 * midday
    assert closing > 2 * midday


def test_prices_are_positive_on_the_tick_grid_and_bars_are_consistent() -> None:
    # A cheap, very volatile path presses against zero.
    series = synthetic_intraday(days=30, start_price=0.5, tick_size=0.05, annual_vol=4.0, seed=3)

    assert series.open[0] == 0.5
    np.testing.assert_array_equal(series.open[1:], series.close[:-1])
    for prices in (series.open, series.high, series.low, series.close):
        assert (prices > 0).all()
        ticks = prices / 0.05
        np.testing.assert_allclose(ticks, np.rint(ticks), atol=1e-9)
    assert (series.high >= np.maximum(series.open, series.close)).all()
    assert (series.low <= np.minimum(series.open, series.close)).all()
    assert (series.volume >= 1).all()
    assert series.price_decimals == 2


def test_one_million_bars_generate_quickly() -> None:
    started = time.perf_counter()
    series = synthetic_intraday(bars=1_000_000)
    elapsed = time.perf_counter() - started

    assert len(series) == 1_000_000
    assert elapsed < 10.0  # about 1 s when vectorised; a per-bar loop takes far longer


@pytest.mark.parametrize(
    "kwargs",
    [
        {"days": 1, "bars": 10},
        {"days": 0},
        {"exchange": "XLON"},
        {"interval": "7h"},
        {"interval": "soon"},
        {"tick_size": 0.0},
    ],
)
def test_bad_arguments_are_config_errors(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        synthetic_intraday(**kwargs)  # type: ignore[arg-type]
