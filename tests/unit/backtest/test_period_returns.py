"""Tests of the pandas-free period closes and ISO timestamps in stats, checked against pandas."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest

from quantdesk.backtest.stats import _iso, _local_days, _period_returns, period_closes

NS_PER_DAY = 86_400 * 10**9
RULES = ("D", "W", "ME", "YE")
ZONES = ("America/New_York", "Asia/Kolkata", "UTC")


def _pandas_closes(ts: npt.NDArray[np.int64], eq: npt.NDArray[np.float64], tz: str, rule: str) -> pd.Series:
    index = pd.DatetimeIndex(pd.to_datetime(ts, unit="ns", utc=True)).tz_convert(tz)
    return pd.Series(eq, index=index).resample(rule).last().dropna()


def _pandas_returns(
    ts: npt.NDArray[np.int64], eq: npt.NDArray[np.float64], tz: str
) -> tuple[npt.NDArray[np.float64], float]:
    """The pandas implementation `_period_returns` replaced, kept as the reference."""
    index = pd.DatetimeIndex(pd.to_datetime(ts, unit="ns", utc=True)).tz_convert(tz)
    freq_days = int(np.median(np.diff(ts[-100:])) // NS_PER_DAY) if len(ts) > 1 else 0
    have_weekends = float(np.mean(index.day_of_week >= 5)) > 2 / 7 * 0.6
    per_year = {7: 52.0, 31: 12.0, 365: 1.0}.get(freq_days, 365.0 if have_weekends else 252.0)
    rule = {7: "W", 31: "ME", 365: "YE"}.get(freq_days, "D")
    closes = _pandas_closes(ts, eq, tz, rule)
    return np.asarray(closes.pct_change().dropna().to_numpy(), dtype=np.float64), per_year


def _random_curve(
    seed: int, n: int, span_days: float
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2003-01-01", tz="UTC").value + int(rng.integers(0, 20 * 365)) * NS_PER_DAY
    ts = np.sort(start + rng.integers(0, int(span_days * NS_PER_DAY), n)).astype(np.int64)
    eq = 100_000.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    return ts, eq


def _dst_edges(tz: str) -> npt.NDArray[np.int64]:
    """Instants within a second and an hour either side of each 2020-2024 offset change and local midnight."""
    days = pd.date_range("2020-01-01", "2024-12-31", freq="D", tz=tz)
    offsets = days.tz_localize(None).as_unit("ns").asi8 - days.as_unit("ns").asi8
    changed = days[1:][np.diff(offsets) != 0]
    anchors = np.concatenate([changed.as_unit("ns").asi8, days[::29].as_unit("ns").asi8])
    shifts = np.array([-3_600, -1, 0, 1, 3_600, 3 * 3_600], dtype=np.int64) * 10**9
    return np.unique((anchors[:, None] + shifts[None, :]).ravel())


@pytest.mark.parametrize("tz", ZONES)
@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("seed", range(4))
def test_period_closes_match_pandas_resample_on_random_timestamps(tz: str, rule: str, seed: int) -> None:
    ts, eq = _random_curve(seed, 3_000, span_days=4 * 365)
    ts = np.sort(np.concatenate([ts, _dst_edges(tz)]))
    eq = np.resize(eq, len(ts))
    eq[::97] = np.nan  # NaN is skipped by last(); a period of only NaN is dropped

    ours = period_closes(_local_days(ts, tz), eq, rule)
    expected = _pandas_closes(ts, eq, tz, rule).to_numpy()
    assert len(ours) > 1
    np.testing.assert_array_equal(ours, expected)


@pytest.mark.parametrize("tz", ZONES)
def test_local_days_match_pandas_across_dst_changes(tz: str) -> None:
    ts = _dst_edges(tz)
    local = pd.DatetimeIndex(pd.to_datetime(ts, unit="ns", utc=True)).tz_convert(tz)
    expected = local.tz_localize(None).normalize().as_unit("ns").asi8 // NS_PER_DAY
    np.testing.assert_array_equal(_local_days(ts, tz), expected)


@pytest.mark.parametrize("tz", ZONES)
@pytest.mark.parametrize(
    ("step_ns", "n"),
    [
        (60 * 10**9, 20_000),
        (NS_PER_DAY, 900),
        (7 * NS_PER_DAY, 200),
        (31 * NS_PER_DAY, 80),
        (365 * NS_PER_DAY, 12),
    ],
)
def test_period_returns_equal_the_pandas_implementation(tz: str, step_ns: int, n: int) -> None:
    # Bars on a grid (minute, daily, weekly, monthly, yearly) pick the rule D, D, W, ME and YE.
    rng = np.random.default_rng(step_ns % 1000 + n)
    ts = pd.Timestamp("2019-03-01 13:30", tz="UTC").value + np.arange(n, dtype=np.int64) * step_ns
    eq = 100_000.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))

    returns, per_year = _period_returns(ts, eq, tz)
    expected_returns, expected_per_year = _pandas_returns(ts, eq, tz)
    assert per_year == expected_per_year
    np.testing.assert_array_equal(returns, expected_returns)


def test_period_returns_keep_pandas_handling_of_zero_and_nan_closes() -> None:
    ts = pd.Timestamp("2024-01-01", tz="UTC").value + np.arange(6, dtype=np.int64) * NS_PER_DAY
    eq = np.array([100.0, 0.0, 0.0, 50.0, np.nan, 75.0])
    returns, _ = _period_returns(ts, eq, "UTC")
    expected, _ = _pandas_returns(ts, eq, "UTC")
    np.testing.assert_array_equal(returns, expected)  # -1, NaN (0/0) dropped, +inf, +0.5
    assert list(returns) == [-1.0, np.inf, 0.5]


def test_period_closes_reject_an_unknown_rule() -> None:
    with pytest.raises(ValueError, match="unknown period rule"):
        period_closes(np.zeros(2, dtype=np.int64), np.ones(2), "QE")


@pytest.mark.parametrize(
    "ts_ns",
    [
        0,
        1,
        999,
        1_000,
        500_000_000,
        123_456_789,
        -1,
        -1_500_000_000,
        1_704_205_800 * 10**9,
        1_704_205_800 * 10**9 + 7,
        1_704_205_800 * 10**9 + 250_000,
        4_102_444_800 * 10**9 - 1,
    ],
)
def test_iso_matches_pandas_timestamp_isoformat(ts_ns: int) -> None:
    assert _iso(ts_ns) == pd.Timestamp(ts_ns, unit="ns", tz="UTC").isoformat()
