"""The trading engine: one object for backtest, replay, paper and live."""

from quantdesk.engine.engine import Engine, EngineConfig
from quantdesk.engine.messages import DecisionRecord, FlattenCompleted, FlattenReport, SignalBlocked

__all__ = ["DecisionRecord", "Engine", "EngineConfig", "FlattenCompleted", "FlattenReport", "SignalBlocked"]
