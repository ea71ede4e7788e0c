"""Structured logs: structlog (and stdlib logging) to JSON lines in a file and readable lines on stderr."""

from __future__ import annotations

import json
import logging
import logging.handlers
import queue
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from structlog.typing import EventDict, Processor

from quantdesk.model import Fill, Order

if TYPE_CHECKING:
    from quantdesk.engine import Engine
    from quantdesk.execution import OrderManager

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def _capture_exc_info(logger: Any, method: str, event_dict: EventDict) -> EventDict:
    # Formatting happens on the writer thread, where `sys.exc_info()` is empty: take it here.
    if event_dict.get("exc_info") is True:
        event_dict["exc_info"] = sys.exc_info()
    return event_dict


def _record_time(logger: Any, method: str, event_dict: EventDict) -> EventDict:
    # A stdlib record is formatted later, on the writer thread: stamp it with when it was made.
    record = event_dict.get("_record")
    if record is not None and "timestamp" not in event_dict:
        made = datetime.fromtimestamp(record.created, tz=UTC)
        event_dict["timestamp"] = made.isoformat().replace("+00:00", "Z")
    return event_dict


# Run where an event is logged. Logging is an edge: its timestamps are the wall clock's,
# read by structlog (ISO 8601, UTC).
_CALLER: list[Processor] = [
    structlog.stdlib.filter_by_level,
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    _capture_exc_info,
    structlog.processors.StackInfoRenderer(),
    structlog.stdlib.PositionalArgumentsFormatter(),
    structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
]
# What a library's stdlib record gets before it is rendered like structlog's own events.
_FOREIGN: list[Processor] = [structlog.stdlib.add_log_level, structlog.stdlib.add_logger_name, _record_time]


class _Enqueue(logging.handlers.QueueHandler):
    """Hands records to the writer thread as they are: structlog's event dict is formatted there."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record


class LogSinks:
    """The running sinks: a writer thread behind a queue, so a slow disk never delays the caller."""

    def __init__(self, handlers: list[logging.Handler]) -> None:
        self._queue: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        self.handler = _Enqueue(self._queue)
        self._handlers = handlers
        self._listener = logging.handlers.QueueListener(self._queue, *handlers, respect_handler_level=True)
        self._listener.start()
        self._closed = False

    def close(self) -> None:
        """Write what is queued, stop the thread and close the file. Idempotent."""
        if self._closed:
            return
        self._closed = True
        logging.getLogger().removeHandler(self.handler)
        self._listener.stop()
        for handler in self._handlers:
            handler.close()


# Logging is process-wide (the root logger, structlog's configuration): the sinks installed last
# are remembered only so that configuring again closes them instead of writing everything twice.
_current: LogSinks | None = None


def configure_logging(
    *, json_path: Path | None = None, console: bool = True, level: str = "info"
) -> LogSinks:
    """Send every log event — `structlog.get_logger()` anywhere, and stdlib loggers — to the sinks.

    `json_path` gets one JSON object per line (``timestamp`` in ISO 8601 UTC,
    ``level``, ``logger``, ``event`` and the bound fields); `console` writes
    readable lines to stderr. Calling it again replaces the previous sinks.
    Call `close()` on the result at shutdown to write out what is queued.
    """
    global _current
    if level.lower() not in _LEVELS:
        raise ValueError(f"log level must be one of {', '.join(_LEVELS)}, got {level!r}")
    if _current is not None:
        _current.close()
    handlers: list[logging.Handler] = []
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        to_file = logging.FileHandler(json_path, encoding="utf-8")
        # Tracebacks as structured fields, so an error stays one line of JSON; never with the
        # frames' local variables, which may hold a token or a credentialled URL.
        tracebacks = structlog.processors.ExceptionRenderer(
            structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
        )
        as_json = structlog.processors.JSONRenderer(serializer=_dumps)
        to_file.setFormatter(_formatter(tracebacks, as_json))
        handlers.append(to_file)
    if console:
        to_console = logging.StreamHandler(sys.stderr)
        readable = structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        )
        to_console.setFormatter(_formatter(readable))
        handlers.append(to_console)
    sinks = _current = LogSinks(handlers)
    root = logging.getLogger()
    root.addHandler(sinks.handler)
    root.setLevel(_LEVELS[level.lower()])
    structlog.configure(
        processors=_CALLER,
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached: module-level loggers created before this call follow a later reconfiguration.
        cache_logger_on_first_use=False,
    )
    return sinks


def _formatter(*processors: Processor) -> structlog.stdlib.ProcessorFormatter:
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_FOREIGN,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *processors],
    )


def _dumps(value: Any, **kwargs: Any) -> str:
    # Money is Decimal: written as its exact string, never through a float.
    kwargs["default"] = str
    return json.dumps(value, **kwargs)


class OrderLogger:
    """Logs each order update and fill as one line, bound to its order, plan, strategy and symbol."""

    def __init__(self, orders: OrderManager) -> None:
        self._log = structlog.get_logger("quantdesk.orders")
        self._orders = orders

    @classmethod
    def attach(cls, engine: Engine) -> OrderLogger:
        """Log `engine`'s order updates and fills from now on."""
        logger = cls(engine.orders)
        engine.bus.subscribe(Order, logger._on_order)
        engine.bus.subscribe(Fill, logger._on_fill)
        return logger

    def _bound(self, client_order_id: str, symbol: str) -> Any:
        orders = self._orders
        return self._log.bind(
            client_order_id=client_order_id,
            plan_id=orders.plan_of(client_order_id),
            strategy=orders.strategy_of(client_order_id),
            symbol=symbol,
        )

    def _on_order(self, order: Order) -> None:
        try:
            self._bound(order.client_order_id, order.symbol).info(
                "order_update",
                status=order.status.value,
                leg=order.tag,
                side=order.side.value,
                order_type=order.order_type.value,
                qty=order.qty,
                filled_qty=order.filled_qty,
                price=order.price,
                stop_price=order.stop_price,
                reason=order.reason or None,
            )
        except Exception:  # a log line must never break trading
            return

    def _on_fill(self, fill: Fill) -> None:
        try:
            order = self._orders.orders.get(fill.client_order_id)
            self._bound(fill.client_order_id, fill.symbol).info(
                "fill",
                status=order.status.value if order is not None else None,
                execution_id=fill.execution_id,
                side=fill.side.value,
                qty=fill.qty,
                price=fill.price,
                fee=fill.fee,
                ts_event=fill.ts_event,
            )
        except Exception:
            return
