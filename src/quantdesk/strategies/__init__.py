"""Strategies: the Strategy base, the registry, incremental indicators and the built-ins."""

from quantdesk.strategies.base import ParameterError, Strategy, StrategyContext
from quantdesk.strategies.registry import get_strategy, register, strategy_names

__all__ = [
    "ParameterError",
    "Strategy",
    "StrategyContext",
    "get_strategy",
    "register",
    "strategy_names",
]
