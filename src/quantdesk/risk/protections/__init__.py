"""Protections with freqtrade's semantics: entry locks after stop-outs, drawdown, a close, low profit."""

from __future__ import annotations

from quantdesk.risk.protections.base import (
    ClosedTrade,
    LookbackConfig,
    Protection,
    ProtectionConfig,
    ProtectionLock,
    TradeView,
)
from quantdesk.risk.protections.cooldown_period import CooldownPeriod, CooldownPeriodConfig
from quantdesk.risk.protections.low_profit_pairs import LowProfitPairs, LowProfitPairsConfig
from quantdesk.risk.protections.manager import PROTECTIONS, ProtectionManager, protections_from_config
from quantdesk.risk.protections.max_drawdown import MaxDrawdown, MaxDrawdownConfig
from quantdesk.risk.protections.stoploss_guard import STOP_REASONS, StoplossGuard, StoplossGuardConfig

__all__ = [
    "PROTECTIONS",
    "STOP_REASONS",
    "ClosedTrade",
    "CooldownPeriod",
    "CooldownPeriodConfig",
    "LookbackConfig",
    "LowProfitPairs",
    "LowProfitPairsConfig",
    "MaxDrawdown",
    "MaxDrawdownConfig",
    "Protection",
    "ProtectionConfig",
    "ProtectionLock",
    "ProtectionManager",
    "StoplossGuard",
    "StoplossGuardConfig",
    "TradeView",
    "protections_from_config",
]
