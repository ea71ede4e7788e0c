"""Value types of the trading domain: instruments, market data, orders, fills, positions, cash.

This package imports nothing else of quantdesk.
"""

from quantdesk.model.account import Account
from quantdesk.model.data import Bar, Quote, Tick
from quantdesk.model.enums import OrderStatus, OrderType, Side, TimeInForce
from quantdesk.model.events import (
    OrderAccepted,
    OrderCanceled,
    OrderEvent,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderTriggered,
)
from quantdesk.model.fill import Fill
from quantdesk.model.instrument import Instrument, OrderCheck
from quantdesk.model.orders import IllegalTransition, Order
from quantdesk.model.position import Position
from quantdesk.model.signals import ExitSignal, Signal

__all__ = [
    "Account",
    "Bar",
    "ExitSignal",
    "Fill",
    "IllegalTransition",
    "Instrument",
    "Order",
    "OrderAccepted",
    "OrderCanceled",
    "OrderCheck",
    "OrderEvent",
    "OrderExpired",
    "OrderFilled",
    "OrderRejected",
    "OrderStatus",
    "OrderTriggered",
    "OrderType",
    "Position",
    "Quote",
    "Side",
    "Signal",
    "Tick",
    "TimeInForce",
]
