"""MaxDrawdown: stop all entries when the drawdown of the recent trades passes a limit."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import ClassVar, Literal, Self, TypeVar

from pydantic import Field, PositiveInt, model_validator

from quantdesk.risk.protections.base import (
    LookbackConfig,
    Protection,
    ProtectionLock,
    TradeView,
)


class MaxDrawdownConfig(LookbackConfig):
    """Lock everything when the drawdown within the lookback exceeds `max_allowed_drawdown`.

    `calculation_mode` "equity" (default) measures the account: `starting_balance` (the
    capital the trade history starts from) plus the net P&L of every trade closed before the
    window is the balance at the window's start; each trade in the window moves it by its
    `pnl`. The drawdown is the largest `(peak - balance) / peak`, the peak including the
    window's starting balance — freqtrade's relative account drawdown. "ratios" is freqtrade's
    legacy mode: the largest drop of the running sum of `return_pct` below its running peak
    (at least 0), in ratio points, no balance needed.

    Example: `{"method": "MaxDrawdown", "lookback_minutes": 240, "trade_limit": 3,
    "max_allowed_drawdown": 0.02, "stop_duration_minutes": 120, "starting_balance": "100000"}`.
    """

    max_allowed_drawdown: float = Field(ge=0)
    trade_limit: PositiveInt = 1
    calculation_mode: Literal["equity", "ratios"] = "equity"
    starting_balance: Decimal | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _check_balance(self) -> Self:
        if self.calculation_mode == "equity" and self.starting_balance is None:
            raise ValueError('starting_balance is required when calculation_mode is "equity"')
        return self


class MaxDrawdown(Protection[MaxDrawdownConfig]):
    """Global only: with at least `trade_limit` trades in the lookback, locks every symbol when the
    drawdown is strictly above `max_allowed_drawdown`, for `stop_duration` from the last exit.

    Pass every closed trade since `starting_balance` was measured: in equity mode the trades
    before the window set the balance it starts from.
    """

    has_global_stop: ClassVar[bool] = True

    def _evaluate(
        self, symbol: str | None, now: int, closed_trades: Sequence[TradeView], side: str | None
    ) -> ProtectionLock | None:
        config = self.config
        window_start = now - config.lookback_ns
        lookback = self._window(closed_trades, window_start, now, None, None)
        window = lookback.trades
        if not window or len(window) < config.trade_limit:
            return None
        drawdown: Decimal | float
        if config.calculation_mode == "equity":
            # The trades closed before the window, summed as they left it.
            start = (config.starting_balance or Decimal(0)) + lookback.pnl_before
            drawdown = relative_drawdown(start, _per_instant(window, lambda t: t.pnl, _sum_exact))
            exceeded = drawdown > Decimal(str(config.max_allowed_drawdown))
        else:
            drawdown = ratio_drawdown(_per_instant(window, lambda t: t.return_pct, math.fsum))
            exceeded = drawdown > config.max_allowed_drawdown
        if not exceeded:
            return None
        reason = (
            f"drawdown {drawdown:.2%} passed {config.max_allowed_drawdown:.2%} in {config.lookback_text}, "
            f"locking for {config.stop_duration_text}"
        )
        return self._lock(window[-1].exit_time or 0, reason, None, None)


T = TypeVar("T", Decimal, float)


def _per_instant(
    window: Sequence[TradeView], value: Callable[[TradeView], T], total: Callable[[list[T]], T]
) -> list[T]:
    """One balance change per exit time: trades closed at the same instant move the balance at
    once, so the drawdown does not depend on the order ties happen to be listed in."""
    steps: list[T] = []
    pending: list[T] = []
    last: int | None = None
    for trade in window:
        if trade.exit_time != last and pending:
            steps.append(total(pending))
            pending = []
        last = trade.exit_time
        pending.append(value(trade))
    if pending:
        steps.append(total(pending))
    return steps


def _sum_exact(values: list[Decimal]) -> Decimal:
    return sum(values, Decimal(0))


def relative_drawdown(start: Decimal, pnls: Sequence[Decimal]) -> Decimal:
    """Largest `(peak - balance) / peak` of the balance path `start, start + pnl1, ...`.

    A peak at or below zero means the account is gone: the drawdown is 1.
    """
    peak = balance = start
    worst = Decimal(0)
    for pnl in pnls:
        balance += pnl
        peak = max(peak, balance)
        drawdown = Decimal(1) if peak <= 0 else (peak - balance) / peak
        worst = max(worst, drawdown)
    return worst


def ratio_drawdown(returns: Sequence[float]) -> float:
    """Largest drop of the running sum of `returns` below its running peak, the peak starting at 0."""
    peak = total = worst = 0.0
    for value in returns:
        total += value
        peak = max(peak, total)
        worst = max(worst, peak - total)
    return worst
