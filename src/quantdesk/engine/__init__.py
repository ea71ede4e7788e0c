"""The trading engine: one object for backtest, replay, paper and live."""

from quantdesk.engine.engine import Engine, EngineConfig, SignalBlocked

__all__ = ["Engine", "EngineConfig", "SignalBlocked"]
