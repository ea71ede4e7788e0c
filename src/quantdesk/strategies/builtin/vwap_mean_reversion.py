"""vwap_mean_reversion and its micro variant: fade stretches of k standard deviations from session VWAP."""

from __future__ import annotations

from quantdesk.model import Bar
from quantdesk.strategies.base import Strategy
from quantdesk.strategies.indicators import SessionVWAP
from quantdesk.strategies.registry import register


@register("vwap_mean_reversion")
class VwapMeanReversion(Strategy):
    """Buy when the close is `k` volume-weighted standard deviations below the session VWAP
    (sell when above, if `allow_short`); exit when price reverts to within `exit_k` deviations of
    VWAP, at the protective stop `stop_k` deviations out, or near the close.

    A close already beyond the stop band (|z| >= `stop_k`) is not entered: its stop would
    sit on the wrong side of the price. Waits `warmup_bars` bars into each session so VWAP
    and its deviation mean something. With `max_hold_bars` > 0 a time stop closes a trade that has not
    reverted. With `take_profit` the reversion level also rests at the venue as a target
    beside the stop (an OCO pair), instead of waiting for a bar's close to exit.
    Example: k=2.0, stop_k=3.5 on 5-minute bars.
    """

    k: float = 2.0
    exit_k: float = 0.0
    stop_k: float = 3.5
    warmup_bars: int = 12
    max_hold_bars: int = 0
    allow_short: bool = True
    exit_before_close: float = 10.0
    take_profit: bool = False

    def on_start(self) -> None:
        self._vwap = SessionVWAP()
        self._session = -1
        self._bars_in_session = 0
        self._held = 0

    def on_bar(self, bar: Bar) -> None:
        session = self._context.session_key(bar.ts_event)
        if session != self._session:
            self._session, self._bars_in_session = session, 0
            if not self.is_flat:
                self.exit("new session")
        self._bars_in_session += 1
        vwap = self._vwap.update_bar(bar.high, bar.low, bar.close, bar.volume, session)
        std = self._vwap.std
        position = self.position
        to_close = self._context.minutes_to_close(bar.ts_event)
        if position != 0:
            self._held += 1
            reverted = (
                bar.close >= vwap - self.exit_k * std
                if position > 0
                else (bar.close <= vwap + self.exit_k * std)
            )
            if reverted:
                self.exit("reverted to VWAP")
            elif self.max_hold_bars and self._held >= self.max_hold_bars:
                self.exit("time stop")
            elif to_close is not None and to_close <= self.exit_before_close:
                self.exit("end of session")
            return
        if self._bars_in_session < self.warmup_bars or std <= 0:
            return
        if to_close is not None and to_close <= self.exit_before_close:
            return
        z = (bar.close - vwap) / std
        features = {"z": z, "vwap": vwap, "std": std}
        if z <= -self.stop_k or z >= self.stop_k:
            return  # stretched past the stop band already: the stop would be on the wrong side
        if z <= -self.k:
            self._held = 0
            self.enter_long(
                stop=vwap - self.stop_k * std,
                targets=[vwap - self.exit_k * std] if self.take_profit else (),
                features=features,
                rationale=f"close {z:.2f} sd below VWAP",
            )
        elif self.allow_short and z >= self.k:
            self._held = 0
            self.enter_short(
                stop=vwap + self.stop_k * std,
                targets=[vwap + self.exit_k * std] if self.take_profit else (),
                features=features,
                rationale=f"close {z:.2f} sd above VWAP",
            )


@register("vwap_micro_mean_reversion")
class VwapMicroMeanReversion(VwapMeanReversion):
    """The micro variant for 1-minute bars: tighter bands (k=1.5, stop 2.5 sd), a shorter
    warm-up and a 10-bar time stop, so trades are small and short-lived."""

    k: float = 1.5
    stop_k: float = 2.5
    warmup_bars: int = 5
    max_hold_bars: int = 10
