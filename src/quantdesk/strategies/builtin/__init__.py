"""The built-in strategies; importing this package registers them."""

from quantdesk.strategies.builtin.momentum import Momentum
from quantdesk.strategies.builtin.opening_range_breakout import OpeningRangeBreakout
from quantdesk.strategies.builtin.sma_cross import SmaCross
from quantdesk.strategies.builtin.vwap_mean_reversion import (
    VwapMeanReversion,
    VwapMicroMeanReversion,
)

__all__ = [
    "Momentum",
    "OpeningRangeBreakout",
    "SmaCross",
    "VwapMeanReversion",
    "VwapMicroMeanReversion",
]
