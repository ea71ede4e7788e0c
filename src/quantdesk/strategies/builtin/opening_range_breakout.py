"""opening_range_breakout: trade the first break of the session's opening range."""

from __future__ import annotations

from quantdesk.model import Bar
from quantdesk.strategies.base import Strategy
from quantdesk.strategies.registry import register

_NS_PER_MINUTE = 60_000_000_000


@register("opening_range_breakout")
class OpeningRangeBreakout(Strategy):
    """Record the high and low of the first `range_minutes` of each session, then buy a close above
    the high (stop at the low) or, with `allow_short`, sell a close below the low (stop at the high).

    The target is `target_r` times the range from the entry. One trade per session;
    flat `exit_before_close` minutes before the close when the calendar is known,
    and in any case at the first bar of the next session. Example on 1-minute
    bars: range_minutes=15 uses 09:30-09:45 on NYSE.
    """

    range_minutes: int = 15
    target_r: float = 2.0
    allow_short: bool = True
    exit_before_close: float = 10.0

    def on_start(self) -> None:
        self._session = -1
        self._session_start = 0
        self._high = 0.0
        self._low = 0.0
        self._traded = False

    def on_bar(self, bar: Bar) -> None:
        session = self._context.session_key(bar.ts_event)
        if session != self._session:
            if not self.is_flat:
                self.exit("new session")
            self._session, self._session_start = session, bar.ts_event
            self._high, self._low, self._traded = bar.high, bar.low, False
            return
        if bar.ts_event < self._session_start + self.range_minutes * _NS_PER_MINUTE:
            self._high, self._low = max(self._high, bar.high), min(self._low, bar.low)
            return
        to_close = self._context.minutes_to_close(bar.ts_event)
        if to_close is not None and to_close <= self.exit_before_close:
            if not self.is_flat:
                self.exit("end of session")
            return
        if self._traded or not self.is_flat:
            return
        width = self._high - self._low
        features = {"range": width, "range_pct": width / bar.close * 100.0}
        if bar.close > self._high:
            self._traded = True
            self.enter_long(
                stop=self._low,
                targets=[bar.close + self.target_r * width],
                features=features,
                rationale="close above the opening range",
            )
        elif self.allow_short and bar.close < self._low:
            self._traded = True
            self.enter_short(
                stop=self._high,
                targets=[bar.close - self.target_r * width],
                features=features,
                rationale="close below the opening range",
            )
