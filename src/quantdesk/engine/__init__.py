"""The trading engine: one object for backtest, replay, paper and live."""

from quantdesk.engine.engine import Engine, EngineConfig, FlattenCompleted, FlattenReport, SignalBlocked

__all__ = ["Engine", "EngineConfig", "FlattenCompleted", "FlattenReport", "SignalBlocked"]
