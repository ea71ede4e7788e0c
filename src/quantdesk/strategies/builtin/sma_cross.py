"""sma_cross: long (or short) on a crossing of a fast and a slow simple moving average."""

from __future__ import annotations

from quantdesk.model import Bar
from quantdesk.strategies.base import ParameterError, Strategy
from quantdesk.strategies.indicators import SMA, Cross
from quantdesk.strategies.registry import register


@register("sma_cross")
class SmaCross(Strategy):
    """Buy when the `fast`-bar SMA of closes crosses above the `slow` one; go flat on the cross below.

    A cross is strict, as in backtesting.py: fast was below slow on the previous
    bar and is above it on this one. The first cross can be seen on bar index
    `slow` (0-based), once both averages have a previous value. With
    `allow_short=true` the cross below also opens a short. Example:
    `quantdesk backtest --strategy sma_cross --param fast=10 --param slow=20 --data sample:GOOG`.
    """

    fast: int = 10
    slow: int = 20
    allow_short: bool = False

    def on_start(self) -> None:
        if not 0 < self.fast < self.slow:
            raise ParameterError(f"sma_cross needs 0 < fast < slow, got fast={self.fast} slow={self.slow}")
        self._fast_sma = SMA(self.fast)
        self._slow_sma = SMA(self.slow)
        self._cross = Cross()
        # Bound once: on_bar runs for every bar, and these are its whole per-bar work.
        self._update_fast = self._fast_sma.update
        self._update_slow = self._slow_sma.update
        self._update_cross = self._cross.update

    def on_bar(self, bar: Bar) -> None:
        close = bar.close
        direction = self._update_cross(self._update_fast(close), self._update_slow(close))
        if direction == 0:
            return
        position = self.position
        if direction > 0:
            if position < 0:
                self.exit("fast SMA crossed above slow")
            if position <= 0:
                self.enter_long(rationale="fast SMA crossed above slow")
        else:
            if position > 0:
                self.exit("fast SMA crossed below slow")
            if self.allow_short and position >= 0:
                self.enter_short(rationale="fast SMA crossed below slow")
