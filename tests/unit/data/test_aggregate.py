"""Tick-to-bar aggregation (batch and incremental) and bar resampling, checked against pandas."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quantdesk.data import BarAggregator, resample_bars, synthetic_intraday, ticks_to_bars
from quantdesk.errors import ConfigError
from quantdesk.model import Bar, Tick

MINUTE = 60_000_000_000
START = pd.Timestamp("2024-01-02 14:30", tz="UTC").value


def random_ticks(symbol: str = "AAA", n: int = 600, seed: int = 3) -> list[Tick]:
    """Ticks over ~20 minutes with irregular spacing and one silent stretch (no ticks)."""
    rng = np.random.default_rng(seed)
    times = START + np.cumsum(rng.integers(0, 4_000_000_000, n))
    times[n // 2 :] += 3 * MINUTE  # a hole of at least two whole minutes
    prices = np.round(100 + np.cumsum(rng.normal(0, 0.05, n)), 2)
    sizes = rng.integers(1, 500, n).astype(float)
    return [
        Tick(symbol, int(t), float(p), float(s), int(t)) for t, p, s in zip(times, prices, sizes, strict=True)
    ]


def pandas_bars(ticks: list[Tick], rule: str) -> pd.DataFrame:
    frame = pd.DataFrame(
        {"price": [t.price for t in ticks], "size": [t.size for t in ticks]},
        index=pd.to_datetime([t.ts_event for t in ticks], unit="ns", utc=True),
    )
    bars = frame["price"].resample(rule).ohlc()
    bars["volume"] = frame["size"].resample(rule).sum()
    return bars.dropna(subset=["open"])


def as_frame(bars: list[Bar]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "open": [b.open for b in bars],
            "high": [b.high for b in bars],
            "low": [b.low for b in bars],
            "close": [b.close for b in bars],
            "volume": [b.volume for b in bars],
        },
        index=pd.to_datetime([b.ts_event for b in bars], unit="ns", utc=True),
    )


def incremental(ticks: list[Tick], interval_ns: int) -> list[Bar]:
    aggregator = BarAggregator(ticks[0].symbol, interval_ns)
    bars = [bar for tick in ticks if (bar := aggregator.update(tick)) is not None]
    last = aggregator.flush()
    return bars + ([last] if last is not None else [])


@pytest.mark.parametrize("rule", ["1min", "5min"])
def test_batch_and_incremental_bars_match_pandas_resample(rule: str) -> None:
    ticks = random_ticks()
    interval = pd.Timedelta(rule).value
    expected = pandas_bars(ticks, rule)

    batch = ticks_to_bars(ticks, interval)
    streamed = incremental(ticks, interval)

    assert batch == streamed
    pd.testing.assert_frame_equal(as_frame(batch), expected, check_freq=False, check_names=False)


def test_empty_intervals_give_no_bar() -> None:
    ticks = random_ticks()

    bars = ticks_to_bars(ticks, MINUTE)

    steps = np.diff([b.ts_event for b in bars])
    assert steps.max() >= 3 * MINUTE
    assert all(b.volume > 0 for b in bars)


def test_bars_are_labelled_by_interval_start_on_the_utc_grid() -> None:
    t = START + 90_000_000_000  # 14:31:30
    ticks = [Tick("AAA", t, 10.0, 1.0, t), Tick("AAA", t + MINUTE, 11.0, 2.0, t + MINUTE)]

    bars = ticks_to_bars(ticks, 5 * MINUTE)

    assert bars == [Bar("AAA", START, 10.0, 11.0, 10.0, 11.0, 3.0, START)]


def test_aggregator_returns_the_finished_bar_when_a_tick_opens_the_next_interval() -> None:
    aggregator = BarAggregator("AAA", MINUTE)

    assert aggregator.update(Tick("AAA", START + 1, 10.0, 1.0, START + 1)) is None
    assert aggregator.update(Tick("AAA", START + 2, 12.0, 1.0, START + 2)) is None
    assert aggregator.update(Tick("AAA", START + 3, 9.0, 1.0, START + 3)) is None
    finished = aggregator.update(Tick("AAA", START + MINUTE, 11.0, 5.0, START + MINUTE))

    assert finished == Bar("AAA", START, 10.0, 12.0, 9.0, 9.0, 3.0, START)
    assert aggregator.flush() == Bar("AAA", START + MINUTE, 11.0, 11.0, 11.0, 11.0, 5.0, START + MINUTE)
    assert aggregator.flush() is None


def test_aggregator_drops_and_counts_a_tick_for_a_finished_interval() -> None:
    aggregator = BarAggregator("AAA", MINUTE)
    aggregator.update(Tick("AAA", START + MINUTE, 10.0, 1.0, START + MINUTE))

    late = aggregator.update(Tick("AAA", START, 99.0, 1.0, START))

    assert late is None
    assert aggregator.late_ticks == 1
    bar = aggregator.flush()
    assert bar is not None and bar.high == 10.0


def test_ticks_of_several_symbols_give_bars_per_symbol_in_time_order() -> None:
    a = random_ticks("AAA", 200, seed=1)
    b = random_ticks("BBB", 200, seed=2)
    mixed = sorted(a + b, key=lambda t: t.ts_event)

    bars = ticks_to_bars(mixed, MINUTE)

    assert [b for b in bars if b.symbol == "AAA"] == ticks_to_bars(a, MINUTE)
    assert [b for b in bars if b.symbol == "BBB"] == ticks_to_bars(b, MINUTE)
    keys = [(bar.ts_event, bar.symbol) for bar in bars]
    assert keys == sorted(keys)


def test_non_positive_interval_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        ticks_to_bars([], 0)
    with pytest.raises(ConfigError):
        BarAggregator("AAA", -MINUTE)


def test_resample_bars_matches_pandas_ohlc_rules() -> None:
    minutes = synthetic_intraday(days=2)
    frame = minutes.to_frame()

    five = resample_bars(minutes, "5min")

    expected = frame.resample("5min").agg(
        {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
    )
    expected = expected.dropna(subset=["open"])
    assert len(five) == 2 * 78  # overnight bins are empty and dropped
    pd.testing.assert_frame_equal(five.to_frame(), expected, check_freq=False)
    assert five.price_decimals == minutes.price_decimals


def test_resample_with_a_bad_rule_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="'fortnightly'"):
        resample_bars(synthetic_intraday(bars=10), "fortnightly")
