"""LowProfitPairs: lock a symbol whose recent trades together earned too little."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from pydantic import PositiveInt

from quantdesk.risk.protections.base import (
    LookbackConfig,
    Protection,
    ProtectionLock,
    TradeView,
)


class LowProfitPairsConfig(LookbackConfig):
    """At least `trade_limit` trades in the lookback whose summed profit ratio is below `required_profit`.

    Example: `{"method": "LowProfitPairs", "lookback_minutes": 360, "trade_limit": 2,
    "required_profit": 0.0, "stop_duration_minutes": 60}` locks a symbol for an hour after its
    trades of the last six hours (two or more) lost money in sum.
    """

    trade_limit: PositiveInt = 1
    required_profit: float = 0.0
    only_per_side: bool = False


class LowProfitPairs(Protection[LowProfitPairsConfig]):
    """Sums `return_pct` of one symbol's trades closed in the lookback; locks it when below the bar.

    Per symbol only. The lock lasts `stop_duration` from the last exit in the window. With
    `only_per_side` the trades of the checked side alone are counted and summed, and the lock
    blocks that side only.
    """

    has_local_stop: ClassVar[bool] = True

    @property
    def only_per_side(self) -> bool:
        return self.config.only_per_side

    def _evaluate(
        self, symbol: str | None, now: int, closed_trades: Sequence[TradeView], side: str | None
    ) -> ProtectionLock | None:
        config = self.config
        window = self._window(closed_trades, now - config.lookback_ns, now, symbol, side).trades
        if len(window) < config.trade_limit:
            return None
        profit = sum(trade.return_pct for trade in window)
        if profit >= config.required_profit:
            return None
        reason = (
            f"profit {profit:.2%} over {len(window)} trades in {config.lookback_text} is below "
            f"{config.required_profit:.2%}, locking for {config.stop_duration_text}"
        )
        return self._lock(window[-1].exit_time or 0, reason, symbol, side)
