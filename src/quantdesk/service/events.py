"""Bus events as JSON-able dicts on named channels: one shape for the WebSocket and for Redis."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from quantdesk.engine import Engine
from quantdesk.engine.messages import DecisionRecord, FlattenCompleted, SignalBlocked
from quantdesk.model import Fill, Order, Signal
from quantdesk.risk.kill_switch import StateChange

CHANNELS = ("signals", "decisions", "orders", "fills", "positions", "risk")

Event = tuple[str, dict[str, Any]]


def iso(ts: int) -> str:
    return datetime.fromtimestamp(ts / 1e9, tz=UTC).isoformat()


def _num(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def signal_event(signal: Signal) -> Event:
    return "signals", {
        "strategy": signal.strategy,
        "symbol": signal.symbol,
        "side": signal.side.value,
        "entry": _num(signal.entry),
        "stop": _num(signal.stop),
        "targets": [str(t) for t in signal.targets],
        "qty": _num(signal.qty),
        "features": dict(signal.features),
        "rationale": signal.rationale,
        "ts": signal.ts,
        "time": iso(signal.ts),
    }


def decision_event(record: DecisionRecord) -> Event:
    return "decisions", {
        "plan_id": record.plan_id,
        "strategy": record.signal.strategy,
        "symbol": record.signal.symbol,
        "side": record.signal.side.value,
        "approved": record.approved,
        "reasons": list(record.reasons),
        "details": list(record.details),
        "qty": str(record.qty),
        "risk_amount": str(record.risk_amount),
        "risk_pct": str(record.risk_pct),
        "ts": record.ts,
        "time": iso(record.ts),
    }


def order_event(order: Order) -> Event:
    return "orders", order_dict(order)


def order_dict(order: Order) -> dict[str, Any]:
    return {
        "client_order_id": order.client_order_id,
        "venue_order_id": order.venue_order_id,
        "symbol": order.symbol,
        "side": order.side.value,
        "type": order.order_type.value,
        "tag": order.tag,
        "qty": str(order.qty),
        "price": _num(order.price),
        "stop_price": _num(order.stop_price),
        "status": order.status.value,
        "filled_qty": str(order.filled_qty),
        "avg_fill_price": str(order.avg_fill_price),
        "reason": order.reason,
        "ts": order.ts_last,
        "time": iso(order.ts_last),
    }


def fill_event(fill: Fill) -> Event:
    return "fills", {
        "execution_id": fill.execution_id,
        "client_order_id": fill.client_order_id,
        "symbol": fill.symbol,
        "side": fill.side.value,
        "qty": str(fill.qty),
        "price": str(fill.price),
        "fee": str(fill.fee),
        "ts": fill.ts_event,
        "time": iso(fill.ts_event),
    }


def state_event(change: StateChange) -> Event:
    return "risk", {
        "kind": change.action,
        "actor": change.actor,
        "reason": change.reason,
        "ts": change.ts,
        "time": iso(change.ts),
    }


def refused_event(refused: SignalBlocked) -> Event:
    return "risk", {
        "kind": "signal_refused",
        "symbol": refused.signal.symbol,
        "strategy": refused.signal.strategy,
        "reason": refused.reason,
        "ts": refused.signal.ts,
        "time": iso(refused.signal.ts),
    }


def flatten_event(done: FlattenCompleted) -> Event:
    return "risk", {
        "kind": "flatten_completed",
        "actor": done.actor,
        "reason": done.reason,
        "canceled": done.canceled,
        "closing_orders": done.closing_orders,
        "duration_ms": done.duration_ns / 1e6,
        "ts": done.ts,
        "time": iso(done.ts),
    }


def subscribe_events(engine: Engine, sink: Callable[[str, dict[str, Any]], None]) -> None:
    """Send every event of interest to `sink(channel, data)`; a fill also sends the position it made.

    Subscribe before `engine.start()` (signals are published only to subscribers present then).
    `sink` runs on the engine's thread: it must only enqueue.
    """

    def on_fill(fill: Fill) -> None:
        sink(*fill_event(fill))
        position = engine.portfolio.positions.get(fill.symbol)
        if position is not None:
            sink("positions", position_dict(position.symbol, position.qty, position.avg_price, fill.ts_event))

    engine.bus.subscribe(Signal, lambda s: sink(*signal_event(s)))
    engine.pipeline.subscribe(lambda r: sink(*decision_event(r)))
    engine.bus.subscribe(Order, lambda o: sink(*order_event(o)))
    engine.bus.subscribe(Fill, on_fill)
    engine.bus.subscribe(SignalBlocked, lambda r: sink(*refused_event(r)))
    engine.bus.subscribe(FlattenCompleted, lambda d: sink(*flatten_event(d)))
    engine.state.subscribe(lambda c: sink(*state_event(c)))


def position_dict(symbol: str, qty: Decimal, avg_price: Decimal, ts: int) -> dict[str, Any]:
    return {"symbol": symbol, "qty": str(qty), "avg_price": str(avg_price), "ts": ts, "time": iso(ts)}
