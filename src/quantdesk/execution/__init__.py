"""Execution: orders from intents, client ids, the order state machine in motion, brackets, the event log."""

from quantdesk.execution.event_log import EventLog
from quantdesk.execution.order_manager import ExitPolicy, OcoGroup, OrderManager

__all__ = ["EventLog", "ExitPolicy", "OcoGroup", "OrderManager"]
