"""momentum: follow the rate of change over a lookback, with an ATR stop."""

from __future__ import annotations

from collections import deque

from quantdesk.model import Bar
from quantdesk.strategies.base import Strategy
from quantdesk.strategies.indicators import ATR
from quantdesk.strategies.registry import register


@register("momentum")
class Momentum(Strategy):
    """Go long when the `lookback`-bar return exceeds `threshold` percent; exit when it turns negative.

    The protective stop sits `stop_atr` ATRs below the entry bar's close. With
    `allow_short=true` the mirror image trades the downside. Example: lookback=20,
    threshold=2.0 buys after a 2% rise over 20 bars.
    """

    lookback: int = 20
    threshold: float = 2.0
    stop_atr: float = 3.0
    atr_period: int = 14
    allow_short: bool = False

    def on_start(self) -> None:
        self._closes: deque[float] = deque(maxlen=self.lookback + 1)
        self._atr = ATR(self.atr_period)

    def on_bar(self, bar: Bar) -> None:
        atr = self._atr.update(bar.high, bar.low, bar.close)
        self._closes.append(bar.close)
        if len(self._closes) <= self.lookback or not self._atr.ready:
            return
        change = (bar.close / self._closes[0] - 1.0) * 100.0
        position = self.position
        features = {"roc_pct": change, "atr": atr}
        if (position > 0 and change < 0) or (position < 0 and change > 0):
            self.exit(f"momentum turned ({change:.2f}%)")
        elif position == 0 and change > self.threshold:
            self.enter_long(
                stop=bar.close - self.stop_atr * atr,
                features=features,
                rationale=f"{self.lookback}-bar return {change:.2f}%",
            )
        elif position == 0 and self.allow_short and change < -self.threshold:
            self.enter_short(
                stop=bar.close + self.stop_atr * atr,
                features=features,
                rationale=f"{self.lookback}-bar return {change:.2f}%",
            )
