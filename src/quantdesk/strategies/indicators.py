"""Incremental technical indicators for strategies: one O(1), allocation-free `update` per bar.

Every indicator is a plain class with `__slots__`, fed one value (or one bar) at a
time. `update(...)` returns the current value, `math.nan` while warming up; the
same number stays in `value`, `ready` says whether the warm-up is over and
`reset()` forgets everything (start of a new backtest, not of a session).

Market data is float here, like the feed that delivers it: indicators are
signal math, never accounting. Inputs are assumed finite (the data layer
rejects bad ticks); the update methods do not check them, for speed. The
running sums that make updates O(1) are recomputed exactly (`math.fsum`)
about every max(256, 8 * period) updates, so rounding never drifts.

Typical use inside a strategy::

    self.fast, self.slow, self.cross = EMA(9), EMA(21), Cross()
    ...
    if self.cross.update(self.fast.update(bar.close), self.slow.update(bar.close)) > 0:
        self.enter_long(stop=bar.low)
"""

from __future__ import annotations

import math
import operator
from collections.abc import Hashable
from math import fsum, sqrt
from numbers import Real
from typing import Final, SupportsFloat, SupportsIndex

from quantdesk.errors import ConfigError

__all__ = ["ATR", "EMA", "RSI", "SMA", "Bollinger", "Cross", "RollingZScore", "SessionVWAP"]

# Final: compiled, a module constant is a C static instead of a globals-dict lookup per use.
_NAN: Final = math.nan
# Rounding error of a running sum grows with the updates since its last exact
# recomputation, which costs O(period): recompute about every max(256, 8 * period)
# updates, a few ns per update amortised.
_RESYNC_EVERY: Final = 256
# A rolling variance below this fraction of the mean square of the shifted values
# (std < 1/1000 of their rms) has lost digits to cancellation: recompute exactly.
_CANCELLATION: Final = 1e-6


# The session key before the first update: equal to nothing a caller can pass.
_NO_SESSION: Final = object()


def _check_period(name: str, period: SupportsIndex) -> int:
    """The period as a plain int; numpy integers (from a parameter grid) are fine."""
    try:
        value = operator.index(period)
    except TypeError:
        value = 0
    if isinstance(period, bool) or value < 1:
        raise ConfigError(f"{name} period must be an integer >= 1, got {period!r}")
    return value


def _round_half_even(v: float) -> int:
    """`round(v)` for a finite float, in native operations when compiled (round() is a generic call)."""
    q = int(v)
    d = v - q  # exact (Sterbenz): v and its truncation are within a factor of two, or q is 0
    if d > 0.5 or (d == 0.5 and q & 1):
        q += 1
    elif d < -0.5 or (d == -0.5 and q & 1):
        q -= 1
    return q


def _resync_wraps(period: int) -> int:
    """Buffer wrap-arounds between exact recomputations: about max(256, 8 * period) updates."""
    return max(8, _RESYNC_EVERY // period)


class SMA:
    """Simple moving average: the exact mean of the last `period` values, correctly rounded.

    Formula: SMA_t = (x_{t-period+1} + ... + x_t) / period. Values are summed as
    integers in units of 1e-8 (every price on a tick grid of 1e-8 or coarser is
    exact there), so the running sum never drifts and the mean is one correctly
    rounded division. That matters beyond accuracy: when two averages are
    mathematically equal (frequent with prices on a tick grid) they compare equal,
    so a strict cross is never seen where there is none. Float running sums —
    pandas' Kahan-compensated one included — get such ties wrong now and then
    (on 100,000 seeded minute bars, backtesting.py counts 49 phantom crosses of
    SMA(10)/SMA(20)). Inputs must be finite. Warm-up: the first `period - 1`
    updates return NaN; update number `period` returns the mean of the first
    `period` values.
    """

    __slots__ = ("_buf", "_count", "_divisor", "_i", "_period", "_sum", "value")

    def __init__(self, period: SupportsIndex) -> None:
        self._period = _check_period("SMA", period)
        self.reset()

    @property
    def period(self) -> int:
        return self._period

    @property
    def ready(self) -> bool:
        return self._count == self._period

    def reset(self) -> None:
        self._buf = [0] * self._period
        self._i = 0
        self._count = 0
        self._sum = 0
        self._divisor = self._period * _SMA_SCALE
        self.value = _NAN

    def update(self, x: float) -> float:
        q = _round_half_even(x * _SMA_SCALE_F)
        buf = self._buf
        i = self._i
        total = self._sum + q - buf[i]
        buf[i] = q
        i += 1
        self._i = 0 if i == self._period else i
        self._sum = total
        if self._count < self._period:
            self._count += 1
            if self._count < self._period:
                return _NAN
        v = total / self._divisor
        self.value = v
        return v


_SMA_SCALE: Final = 100_000_000
_SMA_SCALE_F: Final = 1e8


class EMA:
    """Exponential moving average with alpha = 2 / (period + 1), seeded with an SMA.

    Formula: EMA_t = EMA_{t-1} + alpha * (x_t - EMA_{t-1}). Seed and warm-up: the
    first `period - 1` updates return NaN; update number `period` returns the
    simple mean of the first `period` values, and the recursion runs from there
    (pandas: `ewm(alpha=alpha, adjust=False)` started at that mean).
    """

    __slots__ = ("_alpha", "_left", "_period", "_seed_sum", "value")

    def __init__(self, period: SupportsIndex) -> None:
        self._period = _check_period("EMA", period)
        self._alpha = 2.0 / (self._period + 1)
        self.reset()

    @property
    def period(self) -> int:
        return self._period

    @property
    def alpha(self) -> float:
        return self._alpha

    @property
    def ready(self) -> bool:
        return self._left == 0

    def reset(self) -> None:
        self._left = self._period
        self._seed_sum = 0.0
        self.value = _NAN

    def update(self, x: float) -> float:
        if self._left:
            return self._warm_up(x)
        v = self.value
        v += self._alpha * (x - v)
        self.value = v
        return v

    def _warm_up(self, x: float) -> float:
        self._seed_sum += x
        self._left -= 1
        if self._left:
            return _NAN
        self.value = v = self._seed_sum / self._period
        return v


class SessionVWAP:
    """Session volume-weighted average price and the volume-weighted std around it.

    Formulas, over the updates since `session_key` last changed:
    VWAP = sum(v * p) / sum(v) and std = sqrt(sum(v * p**2) / sum(v) - VWAP**2),
    clamped at 0. Both are computed with West's weighted incremental update
    (algebraically the same, without the cancellation of the raw sums, so a
    session at one price has a std of exactly 0).

    `update(price, volume, session_key)`: a `session_key` (any hashable, e.g. the
    session date as an int) different from the previous one starts a new
    session. An update with volume <= 0 adds nothing; while the session's
    cumulative volume is zero, VWAP is the latest price and std is 0. No
    warm-up: the first update of a session returns a value. `update_bar` feeds
    the typical price (high + low + close) / 3.
    """

    __slots__ = ("_key", "_m2", "_volume", "std", "value")

    _key: Hashable

    def __init__(self) -> None:
        self.reset()

    @property
    def ready(self) -> bool:
        return self.value == self.value

    @property
    def session_volume(self) -> float:
        return self._volume

    def reset(self) -> None:
        self._key = _NO_SESSION
        self._volume = 0.0
        self._m2 = 0.0
        self.std = _NAN
        self.value = _NAN

    def update(self, price: float, volume: float, session_key: Hashable) -> float:
        if session_key != self._key:
            self._key = session_key
            self._volume = 0.0
            self._m2 = 0.0
        cumulative = self._volume
        if volume > 0.0:
            w = cumulative + volume
            # The session's first volume starts the mean at the price itself, so
            # a session traded at one price has VWAP == price and std == 0 exactly.
            mean = self.value if cumulative else price
            delta = price - mean
            mean += delta * (volume / w)
            m2 = self._m2 + volume * delta * (price - mean)
            self._volume = w
            self._m2 = m2
            self.value = mean
            self.std = sqrt(m2 / w) if m2 > 0.0 else 0.0
            return mean
        if cumulative == 0.0:
            self.value = price
            self.std = 0.0
            return price
        return self.value

    def update_bar(
        self, high: float, low: float, close: float, volume: float, session_key: Hashable
    ) -> float:
        return self.update((high + low + close) / 3.0, volume, session_key)


class ATR:
    """Wilder's average true range.

    TR_t = max(high - low, |high - close_{t-1}|, |low - close_{t-1}|), and
    TR_0 = high - low on the first bar. Seed: ATR = mean of the first `period`
    TRs; then ATR_t = (ATR_{t-1} * (period - 1) + TR_t) / period. Warm-up: the
    first `period - 1` updates return NaN.
    """

    __slots__ = ("_left", "_n", "_n1", "_period", "_prev_close", "_seed_sum", "value")

    def __init__(self, period: SupportsIndex) -> None:
        self._period = _check_period("ATR", period)
        self._n = float(self._period)
        self._n1 = float(self._period - 1)
        self.reset()

    @property
    def period(self) -> int:
        return self._period

    @property
    def ready(self) -> bool:
        return self._left == 0

    def reset(self) -> None:
        self._left = self._period
        self._seed_sum = 0.0
        self._prev_close = _NAN
        self.value = _NAN

    def update(self, high: float, low: float, close: float) -> float:
        pc = self._prev_close
        self._prev_close = close
        # max(h - l, |h - pc|, |l - pc|) == max(h, pc) - min(l, pc) when h >= l,
        # and rounds identically; conditional expressions beat max() by ~140 ns.
        tr = (high if high > pc else pc) - (low if low < pc else pc)
        if self._left:
            return self._warm_up(high - low if self._left == self._period else tr)
        v = (self.value * self._n1 + tr) / self._n
        self.value = v
        return v

    def _warm_up(self, tr: float) -> float:
        self._seed_sum += tr
        self._left -= 1
        if self._left:
            return _NAN
        self.value = v = self._seed_sum / self._n
        return v


class RSI:
    """Wilder's relative strength index, 0..100.

    Changes c_t = close_t - close_{t-1}; gain = max(c, 0), loss = max(-c, 0). Seed:
    average gain and loss = simple means over the first `period` changes; then
    avg_t = (avg_{t-1} * (period - 1) + x_t) / period for each. RSI = 100 - 100 /
    (1 + avg_gain / avg_loss); avg_loss == 0 gives 100, and avg_gain == avg_loss
    == 0 (a flat market) gives 50. Warm-up: a change needs two closes, so the
    first `period` updates return NaN and update `period + 1` the first RSI.
    """

    __slots__ = (
        "_gain",
        "_left",
        "_loss",
        "_n",
        "_n1",
        "_period",
        "_prev",
        "value",
    )

    def __init__(self, period: SupportsIndex = 14) -> None:
        self._period = _check_period("RSI", period)
        self._n = float(self._period)
        self._n1 = float(self._period - 1)
        self.reset()

    @property
    def period(self) -> int:
        return self._period

    @property
    def ready(self) -> bool:
        return self._left == 0

    @property
    def avg_gain(self) -> float:
        return self._gain if self._left == 0 else _NAN

    @property
    def avg_loss(self) -> float:
        return self._loss if self._left == 0 else _NAN

    def reset(self) -> None:
        self._left = self._period + 1
        self._gain = 0.0
        self._loss = 0.0
        self._prev = _NAN
        self.value = _NAN

    def update(self, close: float) -> float:
        change = close - self._prev
        self._prev = close
        if self._left:
            return self._warm_up(change)
        n1 = self._n1
        n = self._n
        if change > 0.0:
            gain = (self._gain * n1 + change) / n
            loss = self._loss * n1 / n
        else:
            gain = self._gain * n1 / n
            loss = (self._loss * n1 - change) / n
        self._gain = gain
        self._loss = loss
        v = (100.0 - 100.0 / (1.0 + gain / loss)) if loss else (100.0 if gain else 50.0)
        self.value = v
        return v

    def _warm_up(self, change: float) -> float:
        left = self._left - 1
        self._left = left
        if left == self._period:  # first close: no change yet
            return _NAN
        if change > 0.0:
            self._gain += change
        else:
            self._loss -= change
        if left:
            return _NAN
        self._gain /= self._n
        self._loss /= self._n
        gain = self._gain
        loss = self._loss
        v = (100.0 - 100.0 / (1.0 + gain / loss)) if loss else (100.0 if gain else 50.0)
        self.value = v
        return v


class _RollingMoments:
    """Mean and variance of a sliding window, for Bollinger and RollingZScore.

    The window's values are kept shifted by a constant `c` close to their mean
    (s = sum(x - c), q = sum((x - c)**2)), so rounding errors scale with the
    window's spread rather than with the price level: variance = q/n - (s/n)**2
    stays accurate to ~1e-11 relative even when the std is 1e-5 of the price.
    s, q and c are recomputed exactly (`math.fsum`, two-pass) about every
    max(256, 8 * period) updates, and whenever the variance falls below
    `_CANCELLATION` of the largest q / n since the last recomputation, where
    the rounding q has absorbed would show (the window moved far from c, or
    an outlier passed through it). A window of equal values gets a std of
    exactly 0.
    """

    __slots__ = (
        "_buf",
        "_i",
        "_n",
        "_peak",
        "_period",
        "_q",
        "_ready",
        "_resync",
        "_s",
        "_shift",
        "_tol",
        "_wraps_left",
        "recomputations",
    )

    def __init__(self, name: str, period: SupportsIndex) -> None:
        self._period = _check_period(name, period)
        self._n = float(self._period)
        self._resync = _resync_wraps(self._period)
        # How many O(period) exact passes ran: the cost the resync schedule bounds.
        self.recomputations = 0
        self._reset_moments()

    @property
    def period(self) -> int:
        return self._period

    @property
    def ready(self) -> bool:
        return self._ready

    @property
    def mean(self) -> float:
        """Mean of the window (NaN while warming up)."""
        return self._shift + self._s / self._n if self._ready else _NAN

    @property
    def std(self) -> float:
        """Population std (ddof=0) of the window (NaN while warming up)."""
        if not self._ready:
            return _NAN
        m = self._s / self._n
        var = self._q / self._n - m * m
        return sqrt(var) if var > 0.0 else 0.0

    def _reset_moments(self) -> None:
        # Zero-padded like SMA, so the hot path never branches on the warm-up; a
        # tolerance of +inf sends every warm-up update to the slow path (NaN).
        self._buf = [0.0] * self._period
        self._i = 0
        self._shift = 0.0
        self._s = 0.0
        self._q = 0.0
        self._peak = 0.0
        self._tol = math.inf
        self._wraps_left = 1
        self._ready = False

    def _wrap(self) -> None:
        self._i = 0
        left = self._wraps_left - 1
        if left:
            self._wraps_left = left
            return
        self._wraps_left = self._resync
        self._ready = True
        self._tol = _CANCELLATION / self._n
        self._recompute()

    def _recompute(self) -> None:
        self.recomputations += 1
        buf = self._buf
        if buf.count(buf[0]) == self._period:
            self._shift = buf[0]
            self._s = self._q = self._peak = 0.0
            return
        c = fsum(buf) / self._n
        deviations = [v - c for v in buf]
        self._shift = c
        self._s = fsum(deviations)
        self._q = self._peak = fsum([y * y for y in deviations])

    def _slow_moments(self) -> tuple[float, float]:
        """(mean - shift, std) after a wrap or a near-zero variance; NaNs while warming up."""
        if not self._ready:
            return _NAN, _NAN
        n = self._n
        q = self._q
        m = self._s / n
        var = q / n - m * m
        peak = self._peak
        if peak != 0.0 and not var > peak * self._tol:
            self._recompute()
            q = self._q
            m = self._s / n
            var = q / n - m * m
        return m, sqrt(var) if var > 0.0 else 0.0


class Bollinger(_RollingMoments):
    """Bollinger bands: SMA(period) +- k population standard deviations.

    middle = mean of the last `period` values; upper/lower = middle +- k * std,
    with std the population std (ddof=0, as `rolling(period).std(ddof=0)`; some
    charting packages use ddof=1). `update` returns the middle. Warm-up: the
    first `period - 1` updates return NaN (middle, upper and lower all NaN).
    """

    __slots__ = ("_k", "lower", "upper", "value")

    def __init__(self, period: SupportsIndex = 20, k: SupportsFloat = 2.0) -> None:
        # Typed as what the caller may pass (a numpy float from a parameter grid); checked here.
        if isinstance(k, bool) or not (isinstance(k, Real) and math.isfinite(k) and float(k) >= 0.0):
            raise ConfigError(f"Bollinger k must be a finite number >= 0, got {k!r}")
        self._k: float = float(k)
        super().__init__("Bollinger", period)
        self.reset()

    @property
    def k(self) -> float:
        return self._k

    @property
    def middle(self) -> float:
        return self.value

    def reset(self) -> None:
        self._reset_moments()
        self.value = self.upper = self.lower = _NAN

    def update(self, x: float) -> float:
        # The sliding step is repeated in RollingZScore.update: a shared method
        # would cost one more call (~40 ns) on every bar.
        buf = self._buf
        i = self._i
        c = self._shift
        y = x - c
        yo = buf[i] - c
        buf[i] = x
        d = y - yo
        s = self._s + d
        q = self._q + d * (y + yo)
        self._s = s
        self._q = q
        peak = self._peak
        if q > peak:
            self._peak = peak = q
        i += 1
        if i != self._period:
            self._i = i
            n = self._n
            m = s / n
            var = q / n - m * m
            if var > peak * self._tol:
                mean = c + m
                width = self._k * sqrt(var)
                self.value = mean
                self.upper = mean + width
                self.lower = mean - width
                return mean
        else:
            self._wrap()
        m, std = self._slow_moments()
        mean = self._shift + m
        width = self._k * std
        self.value = mean
        self.upper = mean + width
        self.lower = mean - width
        return mean


class RollingZScore(_RollingMoments):
    """Z-score of the latest value against its window: (x - mean) / std.

    mean and std (population, ddof=0) are over the last `period` values
    including x itself. A window of equal values (std == 0) gives 0.0, not NaN
    or inf. Warm-up: the first `period - 1` updates return NaN. The window's
    `mean` and `std` are available as properties.
    """

    __slots__ = ("value",)

    def __init__(self, period: SupportsIndex) -> None:
        super().__init__("RollingZScore", period)
        self.reset()

    def reset(self) -> None:
        self._reset_moments()
        self.value = _NAN

    def update(self, x: float) -> float:
        buf = self._buf
        i = self._i
        c = self._shift
        y = x - c
        yo = buf[i] - c
        buf[i] = x
        d = y - yo
        s = self._s + d
        q = self._q + d * (y + yo)
        self._s = s
        self._q = q
        peak = self._peak
        if q > peak:
            self._peak = peak = q
        i += 1
        if i != self._period:
            self._i = i
            n = self._n
            m = s / n
            var = q / n - m * m
            if var > peak * self._tol:
                z = (y - m) / sqrt(var)
                self.value = z
                return z
        else:
            self._wrap()
        m, std = self._slow_moments()
        z = ((x - self._shift) - m) / std if std > 0.0 else (0.0 if std == 0.0 else _NAN)
        self.value = z
        return z


class Cross:
    """Crossing of two series, bar by bar, with backtesting.py's `crossover` semantics.

    `update(a, b)` returns +1 when a crosses above b (previous a < previous b
    and a > b, both strict), -1 when a crosses below b (previous a > previous
    b and a < b), else 0. Touching is not crossing: a < b, a == b, a > b gives
    0, 0, 0. The first pair gives 0. A NaN in `a` or `b` gives 0 and is not
    kept as the previous pair, so the next non-NaN pair is compared with the
    last non-NaN one. With leading NaNs (indicator warm-up) this equals
    backtesting.py; after a NaN inside a series it differs: backtesting.py
    compares with the NaN and reports no cross, this class compares across the
    gap.
    """

    __slots__ = ("_a", "_b", "value")

    def __init__(self) -> None:
        self.reset()

    @property
    def ready(self) -> bool:
        """True once a non-NaN pair has been seen, so a cross can be detected."""
        return self._a == self._a

    def reset(self) -> None:
        self._a = _NAN
        self._b = _NAN
        self.value = 0

    def update(self, a: float, b: float) -> int:
        if a != a or b != b:
            self.value = 0
            return 0
        pa = self._a
        pb = self._b
        self._a = a
        self._b = b
        if pa < pb:
            r = 1 if a > b else 0
        elif pa > pb:
            r = -1 if a < b else 0
        else:
            r = 0
        self.value = r
        return r
