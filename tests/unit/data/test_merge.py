"""Merging several symbols' bars into one deterministic, time-ordered stream."""

from __future__ import annotations

import numpy as np
import pandas as pd

from quantdesk.data import BarSeries, merge_bars, synthetic_intraday

MINUTE = 60_000_000_000
T0 = pd.Timestamp("2024-01-02 14:30", tz="UTC").value


def series(symbol: str, minutes: list[int]) -> BarSeries:
    n = len(minutes)
    prices = np.full(n, 10.0)
    return BarSeries(
        symbol=symbol,
        ts=np.array([T0 + m * MINUTE for m in minutes], dtype=np.int64),
        open=prices,
        high=prices,
        low=prices,
        close=prices,
        volume=np.arange(n, dtype=np.float64),
        source="test",
        price_decimals=2,
    )


def test_bars_come_out_in_time_order_across_symbols() -> None:
    a = series("A", [0, 2, 4])
    b = series("B", [1, 3, 5])

    merged = list(merge_bars([a, b]))

    assert [(bar.symbol, (bar.ts_event - T0) // MINUTE) for bar in merged] == [
        ("A", 0),
        ("B", 1),
        ("A", 2),
        ("B", 3),
        ("A", 4),
        ("B", 5),
    ]


def test_ties_follow_the_order_of_the_series_given() -> None:
    a = series("A", [0, 1, 2])
    b = series("B", [1, 2, 3])

    assert [bar.symbol for bar in merge_bars([a, b])] == ["A", "A", "B", "A", "B", "B"]
    assert [bar.symbol for bar in merge_bars([b, a])] == ["A", "B", "A", "B", "A", "B"]


def test_every_bar_is_yielded_once_with_its_own_values() -> None:
    a = synthetic_intraday("A", days=2, seed=1)
    b = synthetic_intraday("B", days=2, seed=2, interval="5min")

    merged = list(merge_bars([a, b]))

    assert len(merged) == len(a) + len(b)
    assert [bar for bar in merged if bar.symbol == "A"] == list(a.iter_bars())
    assert [bar for bar in merged if bar.symbol == "B"] == list(b.iter_bars())
    times = [bar.ts_event for bar in merged]
    assert times == sorted(times)
    assert all(bar.ts_init == bar.ts_event for bar in merged)


def test_merging_nothing_yields_nothing() -> None:
    assert list(merge_bars([])) == []
    assert list(merge_bars([series("A", [])])) == []


def test_merged_bars_carry_python_numbers_not_numpy_scalars() -> None:
    bar = next(merge_bars([series("A", [0])]))

    assert type(bar.ts_event) is int
    assert type(bar.close) is float
