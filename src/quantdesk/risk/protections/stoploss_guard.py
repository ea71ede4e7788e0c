"""StoplossGuard: stop entering after too many stop-outs within a lookback window."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from pydantic import Field, PositiveInt

from quantdesk.risk.protections.base import (
    LookbackConfig,
    Protection,
    ProtectionLock,
    TradeView,
)

STOP_REASONS: frozenset[str] = frozenset({"stop", "stop_loss", "trailing_stop"})


class StoplossGuardConfig(LookbackConfig):
    """`trade_limit` stop-outs with `return_pct < required_profit` within the lookback lock trading.

    Example: `{"method": "StoplossGuard", "lookback_minutes": 60, "trade_limit": 3,
    "stop_duration_minutes": 30}` pauses every symbol for 30 minutes after the third losing
    stop-out within an hour (counted from that third stop-out's exit).
    """

    trade_limit: PositiveInt = 10
    required_profit: float = 0.0
    only_per_pair: bool = False
    only_per_side: bool = False
    stop_reasons: frozenset[str] = Field(default=STOP_REASONS, min_length=1)


class StoplossGuard(Protection[StoplossGuardConfig]):
    """Counts stop-outs: over all symbols for the global lock, over one symbol for its own lock.

    With `only_per_pair` it never locks globally. With `only_per_side` only stop-outs of the
    side being checked count and the lock blocks only that side. A stop-out counts when its
    exit reason is in `stop_reasons` and its profit ratio is below `required_profit` (0.0: a
    loss). The lock lasts `stop_duration` from the last counted stop-out's exit.
    """

    has_global_stop: ClassVar[bool] = True
    has_local_stop: ClassVar[bool] = True

    @property
    def only_per_side(self) -> bool:
        return self.config.only_per_side

    def _evaluate(
        self, symbol: str | None, now: int, closed_trades: Sequence[TradeView], side: str | None
    ) -> ProtectionLock | None:
        config = self.config
        if symbol is None and config.only_per_pair:
            return None
        stop_outs = self._window(closed_trades, now - config.lookback_ns, now, symbol, side).trades
        if len(stop_outs) < config.trade_limit:
            return None
        last_exit = stop_outs[-1].exit_time or 0
        reason = (
            f"{len(stop_outs)} stop-outs (limit {config.trade_limit}) in {config.lookback_text}, "
            f"locking for {config.stop_duration_text}"
        )
        return self._lock(last_exit, reason, symbol, side)

    def _keeps(self, trade: TradeView) -> bool:
        config = self.config
        return trade.exit_reason in config.stop_reasons and trade.return_pct < config.required_profit
