"""Bar aggregation: ticks into time bars (batch and incremental) and bars into coarser bars."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from quantdesk.data.series import BarSeries, timestamps_to_ns
from quantdesk.errors import ConfigError
from quantdesk.model import Bar, Tick


def _check_interval(interval_ns: int) -> int:
    if isinstance(interval_ns, bool) or not isinstance(interval_ns, int | np.integer):
        raise ConfigError(f"bar interval must be an int of nanoseconds, got {interval_ns!r}")
    if interval_ns <= 0:
        raise ConfigError(f"bar interval must be positive, got {interval_ns} ns")
    return int(interval_ns)


def ticks_to_bars(ticks: Iterable[Tick], interval_ns: int) -> list[Bar]:
    """Time bars from ticks: each bar covers [start, start + interval) of UTC time.

    A bar is labelled by its interval start (ts_event = ts_init = start, as
    `BarSeries.iter_bars` does); buckets are aligned to the Unix epoch, so 1-minute
    bars start on whole UTC minutes. Intervals without ticks give no bar. Open and
    close are the first and last tick by time (ties keep input order); volume is
    the sum of sizes. Ticks of several symbols give bars per symbol, ordered by
    time, then by the order symbols first appear.
    """
    interval = _check_interval(interval_ns)
    ticks = list(ticks)
    if not ticks:
        return []
    code_of: dict[str, int] = {}
    codes = np.fromiter((code_of.setdefault(t.symbol, len(code_of)) for t in ticks), np.int64, len(ticks))
    ts = np.fromiter((t.ts_event for t in ticks), np.int64, len(ticks))
    price = np.fromiter((t.price for t in ticks), np.float64, len(ticks))
    size = np.fromiter((t.size for t in ticks), np.float64, len(ticks))

    order = np.lexsort((ts, codes))  # by symbol, then time; stable for equal times
    codes, ts, price, size = codes[order], ts[order], price[order], size[order]
    bucket = ts - np.mod(ts, interval)
    boundary = np.ones(len(ts), dtype=bool)
    boundary[1:] = (bucket[1:] != bucket[:-1]) | (codes[1:] != codes[:-1])
    starts = np.flatnonzero(boundary)
    ends = np.append(starts[1:], len(ts))

    label = bucket[starts]
    symbol_code = codes[starts]
    columns = (
        price[starts],
        np.maximum.reduceat(price, starts),
        np.minimum.reduceat(price, starts),
        price[ends - 1],
        np.add.reduceat(size, starts),
    )
    by_time = np.lexsort((symbol_code, label))
    symbols = list(code_of)
    labels = label[by_time].tolist()
    out_codes = symbol_code[by_time].tolist()
    o, h, low, c, v = (column[by_time].tolist() for column in columns)
    return [Bar(symbols[out_codes[i]], t, o[i], h[i], low[i], c[i], v[i], t) for i, t in enumerate(labels)]


class BarAggregator:
    """Builds one symbol's time bars from ticks as they arrive.

    Same buckets and labels as `ticks_to_bars`. `update` returns the finished bar
    when a tick opens a later interval; `flush` returns the bar in progress (call
    it at the end of data or of the session). A tick for an interval already
    finished cannot change its bar: it is dropped and counted in `late_ticks`.
    """

    __slots__ = (
        "_close",
        "_high",
        "_low",
        "_open",
        "_start",
        "_volume",
        "interval_ns",
        "late_ticks",
        "symbol",
    )

    def __init__(self, symbol: str, interval_ns: int) -> None:
        self.symbol = symbol
        self.interval_ns = _check_interval(interval_ns)
        self.late_ticks = 0
        self._start: int | None = None
        self._open = self._high = self._low = self._close = self._volume = 0.0

    def update(self, tick: Tick) -> Bar | None:
        """Add a tick; return the previous bar if this tick starts a new interval."""
        if tick.symbol != self.symbol:
            raise ValueError(f"BarAggregator for {self.symbol} got a tick for {tick.symbol}")
        start = tick.ts_event - tick.ts_event % self.interval_ns
        if self._start is None or start > self._start:
            finished = self.flush()
            self._start = start
            self._open = self._high = self._low = self._close = tick.price
            self._volume = tick.size
            return finished
        if start < self._start:
            self.late_ticks += 1
            return None
        if tick.price > self._high:
            self._high = tick.price
        elif tick.price < self._low:
            self._low = tick.price
        self._close = tick.price
        self._volume += tick.size
        return None

    def flush(self) -> Bar | None:
        """Return the bar in progress, if any, and start empty."""
        if self._start is None:
            return None
        start, self._start = self._start, None
        return Bar(
            self.symbol,
            start,
            self._open,
            self._high,
            self._low,
            self._close,
            self._volume,
            start,
        )


def resample_bars(series: BarSeries, rule: str) -> BarSeries:
    """Coarser bars from finer ones with pandas: open first, high max, low min, close last,
    volume sum; bins are left-closed and left-labelled in UTC; empty bins are dropped.

    `rule` is a pandas offset alias such as "5min", "1h" or "1D".
    """
    frame = series.to_frame()
    try:
        resampled = frame.resample(rule, closed="left", label="left").agg(
            {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
        )
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"cannot resample bars with rule {rule!r}: {exc}") from exc
    resampled = resampled[resampled["open"].notna()]
    return BarSeries(
        symbol=series.symbol,
        ts=timestamps_to_ns(resampled.index),
        open=resampled["open"].to_numpy(dtype=np.float64),
        high=resampled["high"].to_numpy(dtype=np.float64),
        low=resampled["low"].to_numpy(dtype=np.float64),
        close=resampled["close"].to_numpy(dtype=np.float64),
        volume=resampled["volume"].to_numpy(dtype=np.float64),
        source=series.source,
        price_decimals=series.price_decimals,
        skipped=series.skipped,
    )
