"""Tests of the incremental indicators against pandas/NumPy batch computations."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from backtesting.lib import crossover
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.lib.stride_tricks import sliding_window_view

from quantdesk.errors import ConfigError
from quantdesk.strategies.indicators import (
    ATR,
    EMA,
    RSI,
    SMA,
    Bollinger,
    Cross,
    RollingZScore,
    SessionVWAP,
    _round_half_even,
)

LONG = 100_000


def random_walk(n: int, seed: int, sigma: float = 0.002) -> np.ndarray:
    """Geometric random walk of prices around 100."""
    rng = np.random.default_rng(seed)
    return 100.0 * np.exp(np.cumsum(rng.normal(0.0, sigma, n)))


def random_bars(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """High, low, close with gaps between bars, so prev-close terms of TR matter."""
    rng = np.random.default_rng(seed)
    close = random_walk(n, seed, sigma=0.004)
    opening = close * np.exp(rng.normal(0.0, 0.004, n))
    high = np.maximum(opening, close) * (1 + rng.uniform(0, 0.003, n))
    low = np.minimum(opening, close) * (1 - rng.uniform(0, 0.003, n))
    return high, low, close


def feed(indicator: SMA | EMA | RSI | Bollinger | RollingZScore, xs: np.ndarray) -> np.ndarray:
    update = indicator.update
    return np.array([update(x) for x in xs.tolist()])


def exact_rolling(xs: np.ndarray, period: int) -> tuple[np.ndarray, np.ndarray]:
    """Rolling mean and population std by a corrected two-pass over each window."""
    windows = sliding_window_view(xs, period)
    mean = windows.mean(axis=1)
    mean = mean + (windows - mean[:, None]).mean(axis=1)
    std = np.sqrt(((windows - mean[:, None]) ** 2).mean(axis=1))
    pad = np.full(period - 1, np.nan)
    return np.concatenate([pad, mean]), np.concatenate([pad, std])


def zscore_from(xs: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(std == 0.0, 0.0, (xs - mean) / std)


def assert_close(actual: np.ndarray, expected: np.ndarray, rtol: float = 1e-9) -> None:
    """Same NaN positions and values within rtol (relative to max(1, |expected|))."""
    actual = np.asarray(actual, dtype=float)
    expected = np.asarray(expected, dtype=float)
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected))
    ok = ~np.isnan(expected)
    err = np.abs(actual[ok] - expected[ok]) / np.maximum(1.0, np.abs(expected[ok]))
    assert err.max(initial=0.0) <= rtol, f"max relative error {err.max():.3g} > {rtol:g}"


# --- SMA -------------------------------------------------------------------------------


@pytest.mark.parametrize("period", [1, 20, 390])
def test_sma_matches_pandas_rolling_mean_on_long_random_walk(period: int) -> None:
    xs = random_walk(LONG, seed=period)
    assert_close(feed(SMA(period), xs), pd.Series(xs).rolling(period).mean().to_numpy())


@pytest.mark.parametrize("period", [2, 10, 20, 390])
def test_sma_is_the_correctly_rounded_exact_mean_even_across_huge_outliers(period: int) -> None:
    xs = np.round(random_walk(3_000, seed=7), 2)
    xs[100] = 1e12
    xs[2_000:2_050] = 101.25  # a flat stretch: the mean must be exactly 101.25
    out = feed(SMA(period), xs)
    cents = [round(x * 100) for x in xs.tolist()]
    for t in range(period - 1, len(xs)):
        exact = Fraction(sum(cents[t - period + 1 : t + 1]), 100 * period)
        assert out[t] == float(exact)
    if period <= 50:
        assert out[2_049] == 101.25


@pytest.mark.parametrize("seed", range(20))
def test_sma_of_tick_grid_prices_sees_equal_means_as_equal(seed: int) -> None:
    # The last ten closes are the first ten reordered: SMA(10) == SMA(20) exactly.
    rng = np.random.default_rng(seed)
    first = np.round(93 + rng.random(10) * 2, 2).tolist()
    closes = first + rng.permutation(first).tolist()
    fast, slow = SMA(10), SMA(20)
    for c in closes:
        f, s = fast.update(c), slow.update(c)
    assert f == s
    cross = Cross()
    cross.update(f - 0.01, s)
    assert cross.update(f, s) == 0  # touching is not crossing


@settings(max_examples=500)
@given(
    st.one_of(
        st.floats(allow_nan=False, allow_infinity=False, min_value=-1e15, max_value=1e15),
        st.integers(-(10**6), 10**6).map(lambda k: k / 2),  # exact halves: the ties
        st.integers(-(10**9), 10**9).map(lambda k: k / 100 * 1e8),  # cent prices, scaled as the SMA does
    )
)
def test_sma_rounds_its_scaled_input_exactly_as_round_does(v: float) -> None:
    # The SMA's native rounding must be round()'s, ties to even included, or sums would differ.
    assert _round_half_even(v) == round(v)


def test_indicators_take_numpy_integer_periods() -> None:
    sma = SMA(np.int64(2))  # type: ignore[arg-type]
    assert sma.period == 2 and type(sma.period) is int
    assert Bollinger(np.int64(3), np.float64(1.5)).k == 1.5  # type: ignore[arg-type]


def test_sma_warm_up_returns_nan_until_the_window_is_full() -> None:
    sma = SMA(3)
    assert math.isnan(sma.update(1.0)) and not sma.ready
    assert math.isnan(sma.update(2.0)) and math.isnan(sma.value)
    assert sma.update(6.0) == 3.0 and sma.ready and sma.value == 3.0
    assert sma.update(10.0) == 6.0


def test_sma_reset_starts_over() -> None:
    xs = random_walk(1_000, seed=3)
    sma = SMA(10)
    feed(sma, xs)
    sma.reset()
    assert not sma.ready and math.isnan(sma.value)
    np.testing.assert_array_equal(feed(sma, xs[:50]), feed(SMA(10), xs[:50]))


def test_sma_of_a_constant_series_is_that_constant() -> None:
    out = feed(SMA(7), np.full(2_000, 101.37))
    assert np.isnan(out[:6]).all() and (out[6:] == 101.37).all()


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "20"])
def test_indicators_refuse_a_period_that_is_not_a_positive_integer(bad: object) -> None:
    for cls in (SMA, EMA, ATR, RSI, Bollinger, RollingZScore):
        with pytest.raises(ConfigError, match="period"):
            cls(bad)  # type: ignore[arg-type]


prices = st.floats(min_value=0.01, max_value=10_000.0, allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(st.lists(prices, min_size=1, max_size=60), st.integers(min_value=1, max_value=12))
def test_sma_matches_pandas_on_arbitrary_short_series(xs: list[float], period: int) -> None:
    expected = pd.Series(xs).rolling(period).mean().to_numpy()
    out = feed(SMA(period), np.array(xs))
    np.testing.assert_array_equal(np.isnan(out), np.isnan(expected))
    # Inputs are summed on a 1e-8 grid: off-grid floats move by at most 5e-9.
    np.testing.assert_allclose(out, expected, rtol=1e-9, atol=5e-9)


# --- EMA -------------------------------------------------------------------------------


def seeded_ewm(xs: np.ndarray, period: int, alpha: float) -> np.ndarray:
    """pandas ewm(adjust=False) started at the mean of the first `period` values."""
    tail = pd.Series(xs[period - 1 :].copy())
    tail.iloc[0] = xs[:period].mean()
    smoothed = tail.ewm(alpha=alpha, adjust=False).mean().to_numpy()
    return np.concatenate([np.full(period - 1, np.nan), smoothed])


@pytest.mark.parametrize("period", [1, 9, 50])
def test_ema_matches_seeded_pandas_ewm_on_long_random_walk(period: int) -> None:
    xs = random_walk(LONG, seed=period + 100)
    assert_close(feed(EMA(period), xs), seeded_ewm(xs, period, 2.0 / (period + 1)))


def test_ema_is_seeded_with_the_mean_of_the_first_period_values() -> None:
    ema = EMA(4)
    assert [math.isnan(ema.update(x)) for x in (1.0, 2.0, 3.0)] == [True] * 3
    assert not ema.ready
    assert ema.update(6.0) == 3.0 and ema.ready
    assert ema.update(8.0) == pytest.approx(3.0 + 0.4 * (8.0 - 3.0))


def test_ema_reset_starts_over() -> None:
    xs = random_walk(500, seed=11)
    ema = EMA(12)
    feed(ema, xs)
    ema.reset()
    assert not ema.ready and math.isnan(ema.value)
    np.testing.assert_array_equal(feed(ema, xs), feed(EMA(12), xs))


# --- SessionVWAP -----------------------------------------------------------------------


def session_data(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = 4 * 390
    volume = rng.integers(0, 5_000, n).astype(float)
    volume[rng.random(n) < 0.1] = 0.0
    volume[390:393] = 0.0  # a session that opens without volume
    return pd.DataFrame(
        {
            "price": random_walk(n, seed, sigma=0.001),
            "volume": volume,
            "session": np.repeat([20240304, 20240305, 20240306, 20240307], 390),
        }
    )


def test_session_vwap_matches_pandas_groupby_cumsum() -> None:
    df = session_data(seed=5)
    p, v = df["price"], df["volume"]
    grouped = pd.DataFrame({"v": v, "pv": p * v, "pv2": v * p * p}).groupby(df["session"])
    cum = grouped.cumsum()
    has_volume = cum["v"] > 0
    vwap = np.where(has_volume, cum["pv"] / cum["v"].where(has_volume), p)
    var = np.where(has_volume, cum["pv2"] / cum["v"].where(has_volume) - vwap**2, 0.0)

    vw = SessionVWAP()
    out, std = [], []
    for price, volume, session in df.itertuples(index=False):
        out.append(vw.update(price, volume, session))
        std.append(vw.std)
    np.testing.assert_allclose(out, vwap, rtol=1e-12)
    # The reference's raw sums cancel (p**2 ~ 1e4): compare variances absolutely.
    np.testing.assert_allclose(np.square(std), np.maximum(var, 0.0), rtol=1e-9, atol=1e-9)
    assert np.all(np.array(std) >= 0.0)


def test_session_vwap_restarts_when_the_session_key_changes() -> None:
    vw = SessionVWAP()
    vw.update(100.0, 10.0, 1)
    assert vw.update(110.0, 30.0, 1) == 107.5
    assert vw.std == pytest.approx(math.sqrt((10 * 7.5**2 + 30 * 2.5**2) / 40))
    assert vw.update(50.0, 5.0, 2) == 50.0 and vw.std == 0.0
    assert vw.session_volume == 5.0


def test_session_vwap_with_zero_cumulative_volume_is_the_price() -> None:
    vw = SessionVWAP()
    assert vw.update(100.0, 0.0, "d1") == 100.0 and vw.std == 0.0
    assert vw.update(101.0, 0.0, "d1") == 101.0 and vw.ready
    assert vw.update(102.0, 4.0, "d1") == 102.0
    # Volume-less bars after volume leave the VWAP and std where they are.
    assert vw.update(90.0, 0.0, "d1") == 102.0 and vw.std == 0.0


def test_session_vwap_of_one_price_has_zero_std_exactly() -> None:
    vw = SessionVWAP()
    # A volume-less bar at another price first: 626.09 + (66.46 - 626.09) != 66.46.
    vw.update(626.09, 0.0, 7)
    rng = np.random.default_rng(2)
    for volume in rng.integers(1, 10_000, 500).tolist():
        vw.update(66.46, float(volume), 7)
    assert vw.value == 66.46 and vw.std == 0.0


def test_session_vwap_update_bar_uses_the_typical_price() -> None:
    vw = SessionVWAP()
    assert vw.update_bar(12.0, 9.0, 10.5, 100.0, 1) == 10.5
    vw.reset()
    assert not vw.ready and math.isnan(vw.value) and math.isnan(vw.std)
    assert vw.update(10.0, 1.0, 1) == 10.0  # same key as before the reset: a new session


# --- ATR -------------------------------------------------------------------------------


def batch_atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, period: int) -> np.ndarray:
    prev_close = np.concatenate([[np.nan], close[:-1]])
    tr = np.fmax.reduce([high - low, np.abs(high - prev_close), np.abs(low - prev_close)])
    return seeded_ewm(tr, period, 1.0 / period)


@pytest.mark.parametrize("period", [1, 14])
def test_atr_matches_a_batch_wilder_computation(period: int) -> None:
    high, low, close = random_bars(20_000, seed=period)
    atr = ATR(period)
    out = [atr.update(h, lo, c) for h, lo, c in zip(high.tolist(), low.tolist(), close.tolist(), strict=True)]
    assert_close(np.array(out), batch_atr(high, low, close, period))


def test_atr_true_range_reaches_back_to_the_previous_close_on_a_gap() -> None:
    atr = ATR(2)
    assert math.isnan(atr.update(10.0, 9.0, 9.5)) and not atr.ready  # TR = 1.0
    assert atr.update(12.0, 11.0, 11.5) == 1.75  # TR = 12 - 9.5 = 2.5
    assert atr.update(11.6, 11.4, 11.5) == pytest.approx((1.75 + 0.2) / 2)
    assert atr.update(11.0, 10.0, 10.5) == pytest.approx((0.975 + 1.5) / 2)  # TR = 11.5 - 10
    atr.reset()
    assert not atr.ready and math.isnan(atr.update(5.0, 1.0, 2.0))


# --- RSI -------------------------------------------------------------------------------


def batch_rsi(close: np.ndarray, period: int) -> np.ndarray:
    change = np.diff(close)
    gain = seeded_ewm(np.clip(change, 0.0, None), period, 1.0 / period)
    loss = seeded_ewm(np.clip(-change, 0.0, None), period, 1.0 / period)
    with np.errstate(divide="ignore", invalid="ignore"):
        rsi = 100.0 - 100.0 / (1.0 + gain / loss)
    rsi = np.where(loss == 0.0, np.where(gain == 0.0, 50.0, 100.0), rsi)
    rsi[np.isnan(gain)] = np.nan
    return np.concatenate([[np.nan], rsi])


@pytest.mark.parametrize("period", [2, 14])
def test_rsi_matches_a_batch_wilder_computation(period: int) -> None:
    xs = random_walk(20_000, seed=period, sigma=0.003)
    out = feed(RSI(period), xs)
    assert np.isnan(out[:period]).all() and not np.isnan(out[period:]).any()
    assert_close(out, batch_rsi(xs, period))


def test_rsi_of_flat_rising_and_falling_markets() -> None:
    flat, up, down = RSI(3), RSI(3), RSI(3)
    for i in range(10):
        flat.update(100.0)
        up.update(100.0 + i)
        down.update(100.0 - i)
    assert (flat.value, up.value, down.value) == (50.0, 100.0, 0.0)
    assert up.avg_loss == 0.0 and down.avg_gain == 0.0


def test_rsi_first_value_comes_after_period_changes() -> None:
    rsi = RSI(2)
    assert math.isnan(rsi.update(10.0)) and math.isnan(rsi.update(11.0))  # +1
    assert not rsi.ready and math.isnan(rsi.avg_gain)
    assert rsi.update(10.5) == pytest.approx(100 - 100 / (1 + 0.5 / 0.25))  # -0.5
    rsi.reset()
    assert not rsi.ready and math.isnan(rsi.update(10.0))


# --- Bollinger -------------------------------------------------------------------------


def test_bollinger_matches_pandas_with_population_std() -> None:
    xs = random_walk(5_000, seed=21)
    s = pd.Series(xs)
    mean, std = s.rolling(20).mean().to_numpy(), s.rolling(20).std(ddof=0).to_numpy()
    bands = Bollinger(20, 2.5)
    rows = [(bands.update(x), bands.middle, bands.upper, bands.lower) for x in xs.tolist()]
    out, middle, upper, lower = (np.array(c) for c in zip(*rows, strict=True))
    assert_close(out, mean)
    assert_close(middle, mean)
    assert_close(upper, mean + 2.5 * std)
    assert_close(lower, mean - 2.5 * std)


def test_bollinger_does_not_drift_on_a_long_random_walk() -> None:
    # pandas' own rolling std drifts by up to ~1e-8 over 1e5 values, so the
    # reference here is an exact two-pass over each window.
    xs = random_walk(LONG, seed=22)
    mean, std = exact_rolling(xs, 50)
    bands = Bollinger(50, 2.0)
    upper = [(bands.update(x), bands.upper)[1] for x in xs.tolist()]
    assert_close(np.array(upper), mean + 2.0 * std)


def test_bollinger_bands_collapse_exactly_on_a_flat_window() -> None:
    bands = Bollinger(5, 2.0)
    for x in [101.3, 99.9, 100.7, 100.2] + [100.05] * 10:
        bands.update(x)
    assert bands.upper == bands.lower == bands.middle == 100.05
    assert bands.std == 0.0 and bands.mean == 100.05


def test_bollinger_warm_up_and_reset() -> None:
    bands = Bollinger(3, 1.0)
    for x in (1.0, 2.0):
        assert math.isnan(bands.update(x)) and math.isnan(bands.upper) and not bands.ready
    assert bands.update(3.0) == 2.0
    assert bands.upper == pytest.approx(2.0 + math.sqrt(2.0 / 3.0))
    bands.reset()
    assert not bands.ready and math.isnan(bands.lower) and math.isnan(bands.update(4.0))


@pytest.mark.parametrize("k", [-1.0, math.inf, math.nan, True, "2"])
def test_bollinger_refuses_a_bad_k(k: float) -> None:
    with pytest.raises(ConfigError, match="Bollinger k"):
        Bollinger(20, k)


# --- RollingZScore ---------------------------------------------------------------------


@pytest.mark.parametrize("period", [5, 20, 390])
def test_zscore_does_not_drift_on_a_long_random_walk(period: int) -> None:
    xs = random_walk(LONG, seed=period + 7)
    mean, std = exact_rolling(xs, period)
    assert_close(feed(RollingZScore(period), xs), zscore_from(xs, mean, std))


@pytest.mark.parametrize("period", [5, 20, 60])
def test_zscore_matches_pandas_rolling(period: int) -> None:
    # pandas' online rolling std accumulates rounding (1.3e-9 relative after 2,000
    # values with pandas 3.1, up to 1e-5 after 1e5), so it is a 1e-8 reference on a short
    # series; the exact two-pass test above holds the indicator to 1e-9.
    xs = random_walk(2_000, seed=period, sigma=0.005)
    rolling = pd.Series(xs).rolling(period)
    mean, std = rolling.mean().to_numpy(), rolling.std(ddof=0).to_numpy()
    assert_close(feed(RollingZScore(period), xs), zscore_from(xs, mean, std), rtol=1e-8)


def test_zscore_of_a_flat_window_is_zero() -> None:
    z = RollingZScore(4)
    out = feed(z, np.array([5.0, 5.0, 5.0, 5.0, 5.0, 7.1, 6.9, 7.3, 7.3, 7.3, 7.3, 7.3]))
    assert np.isnan(out[:3]).all()
    assert out[3] == out[4] == 0.0
    assert out[5] == pytest.approx(math.sqrt(3.0))  # one outlier among equals
    assert (out[-2:] == 0.0).all() and z.std == 0.0 and z.mean == 7.3


def test_zscore_stays_exact_when_the_window_settles_far_from_where_it_was() -> None:
    # After a jump the running sums hold (x - old mean)**2 ~ 100 while the new
    # window's variance is ~1e-19: the cancellation must trigger an exact pass.
    z = RollingZScore(4)
    feed(z, np.array([100.0, 101.0, 99.0, 100.0, 110.0, 110.0, 110.0]))
    assert z.update(110.000001) == pytest.approx(math.sqrt(3.0), rel=1e-9)
    assert z.std == pytest.approx(math.sqrt(3.0) / 4 * 1e-6, rel=1e-6)
    bands = Bollinger(4, 1.0)
    feed(bands, np.array([100.0, 101.0, 99.0, 100.0, 110.0, 110.0, 110.0, 110.000001]))
    assert bands.upper - bands.middle == pytest.approx(math.sqrt(3.0) / 4 * 1e-6, rel=1e-6)


def test_zscore_is_exact_after_a_huge_outlier_leaves_the_window() -> None:
    # The outlier's square (~1e16) swamps the running sum of squares; once it
    # has left, the window [1, 2] must still give z = 1, not a rounding residue.
    out = feed(RollingZScore(2), np.array([1.0, 1.0, 94906267.0, 1.0, 2.0]))
    assert out[-1] == pytest.approx(1.0, rel=1e-12)


def test_a_flat_stretch_costs_no_exact_recomputation_per_bar() -> None:
    # 115.16 * 3 / 3 != 115.16 in floats: without the all-equal check every bar
    # of a flat stretch would redo the O(period) exact pass.
    z = RollingZScore(3)
    out = feed(z, np.array([114.0, 116.0] + [115.16] * 3_000))
    assert (out[4:] == 0.0).all() and z.mean == 115.16
    assert 1 <= z.recomputations <= 3_000 // 256 + 3


def test_zscore_reset_and_period_one() -> None:
    z = RollingZScore(1)
    assert z.update(3.0) == 0.0 and z.ready
    z.reset()
    assert not z.ready and math.isnan(z.value) and math.isnan(z.mean) and math.isnan(z.std)
    assert z.update(4.0) == 0.0


def exact_zscore(window: list[float]) -> float:
    """z of the window's last value in rational arithmetic, rounded once at the end."""
    values = [Fraction(x) for x in window]
    mean = sum(values) / len(values)
    variance = sum((x - mean) ** 2 for x in values) / len(values)
    if variance == 0:
        return 0.0
    deviation = values[-1] - mean
    return math.copysign(math.sqrt(deviation**2 / variance), deviation)


@settings(max_examples=200, deadline=None)
@given(st.lists(prices, min_size=1, max_size=60), st.integers(min_value=1, max_value=12))
def test_zscore_matches_pandas_on_arbitrary_short_series(xs: list[float], period: int) -> None:
    # pandas gives the warm-up; the values come from exact arithmetic, because
    # pandas' rolling std keeps the rounding of large values that have left the
    # window ([1257, 1, 0.75, 1], period 3: pandas 0.7071067792, exact 0.7071067812).
    s = pd.Series(xs)
    expected_nan = np.isnan(s.rolling(period).std(ddof=0).to_numpy())
    out = feed(RollingZScore(period), np.array(xs))
    np.testing.assert_array_equal(np.isnan(out), expected_nan)
    for i in range(period - 1, len(xs)):
        expected = exact_zscore(xs[i - period + 1 : i + 1])
        assert out[i] == pytest.approx(expected, rel=1e-9, abs=1e-9)


# --- Cross -----------------------------------------------------------------------------


def test_cross_agrees_with_backtesting_crossover_bar_by_bar() -> None:
    # Warm-up NaNs at the start, as indicator series have them.
    close = pd.Series(random_walk(5_000, seed=31, sigma=0.01))
    fast = close.rolling(5).mean().to_numpy().copy()
    slow = close.rolling(20).mean().to_numpy()
    fast[100:110] = slow[100:110]  # touching without crossing
    cross = Cross()
    seen = set()
    for i in range(len(close)):
        got = cross.update(fast[i], slow[i])
        a, b = fast[: i + 1], slow[: i + 1]
        expected = 1 if crossover(a, b) else -1 if crossover(b, a) else 0
        assert got == expected == cross.value, f"bar {i}"
        seen.add(got)
    assert seen == {-1, 0, 1}


def test_cross_is_strict_and_touching_is_not_crossing() -> None:
    cross = Cross()
    assert not cross.ready
    assert [cross.update(a, 2.0) for a in (1.0, 2.0, 3.0, 2.0, 1.0)] == [0, 0, 0, 0, 0]
    assert cross.ready
    assert [cross.update(a, 2.0) for a in (3.0, 1.0, 1.5)] == [1, -1, 0]


def test_cross_ignores_nan_and_compares_across_it() -> None:
    cross = Cross()
    assert cross.update(math.nan, 1.0) == 0 and not cross.ready
    assert cross.update(0.0, 1.0) == 0  # first real pair
    assert cross.update(2.0, math.nan) == 0
    assert cross.update(2.0, 1.0) == 1  # compared with (0.0, 1.0), not with the NaN
    cross.reset()
    assert not cross.ready and cross.update(0.0, 1.0) == 0
