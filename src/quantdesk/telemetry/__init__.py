"""Telemetry: Prometheus metrics (`trader_*`), structured logs and alerts, all off the hot path."""

from quantdesk.telemetry.alerts import AlertConfig, Alerter, AlertRules, AlertStats
from quantdesk.telemetry.logs import LogSinks, OrderLogger, configure_logging
from quantdesk.telemetry.metrics import TraderMetrics, risk_figures

__all__ = [
    "AlertConfig",
    "AlertRules",
    "AlertStats",
    "Alerter",
    "LogSinks",
    "OrderLogger",
    "TraderMetrics",
    "configure_logging",
    "risk_figures",
]
