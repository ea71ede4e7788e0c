"""Risk: the pre-trade gate, sizing, protections, end-of-day times, limits and the kill switch."""

from quantdesk.risk.config import LiveCaps, RiskConfig, SizingConfig
from quantdesk.risk.gate import RiskGate
from quantdesk.risk.kill_switch import LIVE_CONFIRMATION, ModeChangeRefused, TradingState
from quantdesk.risk.messages import BlockReason, Decision, Mode, OpenPositionView, RiskState, TradePlan
from quantdesk.risk.sizer import Sizer, SizeResult

__all__ = [
    "LIVE_CONFIRMATION",
    "BlockReason",
    "Decision",
    "LiveCaps",
    "Mode",
    "ModeChangeRefused",
    "OpenPositionView",
    "RiskConfig",
    "RiskGate",
    "RiskState",
    "SizeResult",
    "Sizer",
    "SizingConfig",
    "TradePlan",
    "TradingState",
]
