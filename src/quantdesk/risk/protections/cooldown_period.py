"""CooldownPeriod: after a trade in a symbol closes, wait before entering that symbol again."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from quantdesk.risk.protections.base import (
    Protection,
    ProtectionConfig,
    ProtectionLock,
    TradeView,
)


class CooldownPeriodConfig(ProtectionConfig):
    """Only the cooldown's length: `stop_duration_minutes` (or candles); no lookback of its own.

    Example: `{"method": "CooldownPeriod", "stop_duration_minutes": 15}`.
    """


class CooldownPeriod(Protection[CooldownPeriodConfig]):
    """Locks a symbol until its last exit plus `stop_duration`, whatever the trade's outcome.

    Per symbol only; never global. As in freqtrade the lookback equals the stop duration, so
    the lock is simply "last exit + duration" while that is still in the future.
    """

    has_local_stop: ClassVar[bool] = True

    def _evaluate(
        self, symbol: str | None, now: int, closed_trades: Sequence[TradeView], side: str | None
    ) -> ProtectionLock | None:
        duration = self.config.stop_duration_ns
        recent = self._window(closed_trades, now - duration, now, symbol, None).trades
        if not recent:
            return None
        reason = f"cooldown of {self.config.stop_duration_text} after the last exit"
        return self._lock(recent[-1].exit_time or 0, reason, symbol, None)
