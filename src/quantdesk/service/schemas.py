"""Request and response models of the API: strict on input (unknown fields refused), complete in OpenAPI."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Health(Strict):
    status: Literal["ok"]
    mode: str
    clock: str
    replay: str


class State(Strict):
    mode: str
    paused: bool
    kill_switch: bool
    entries_allowed: bool
    last_change: dict[str, Any] | None


class Risk(Strict):
    currency: str
    equity: str
    cash: str
    portfolio_heat: str
    daily_pnl: str
    open_positions: int
    limits: dict[str, Any]


class PositionOut(Strict):
    strategy: str
    symbol: str
    qty: str
    avg_price: str
    last_price: str | None
    unrealized_pnl: str | None
    stop: str | None


class OrderOut(Strict):
    client_order_id: str
    venue_order_id: str
    symbol: str
    side: str
    type: str
    tag: str
    qty: str
    price: str | None
    stop_price: str | None
    status: str
    filled_qty: str
    avg_fill_price: str
    reason: str
    ts: int
    time: str


class Orders(Strict):
    working: list[OrderOut]
    recent: list[OrderOut]


class SignalOut(Strict):
    plan_id: str
    strategy: str
    symbol: str
    side: str
    approved: bool
    reasons: list[str]
    details: list[str]
    qty: str
    risk_amount: str
    risk_pct: str
    ts: int
    time: str


class Status(Strict):
    clock: dict[str, Any]
    orders: dict[str, Any]
    throttler: dict[str, Any] | None
    protections: list[dict[str, Any]]
    store: dict[str, Any] | None
    node: dict[str, Any]


class Ack(Strict):
    ok: bool
    state: State


class ActionRequest(Strict):
    reason: str = Field(default="", max_length=500)


class FlattenResult(Strict):
    done: bool
    duration_ms: float
    canceled: int
    closing_orders: int
    open_positions: int
    working_orders: int


class ModeRequest(Strict):
    mode: Literal["PAPER", "LIVE"]
    confirm: str = Field(default="", max_length=200)


class Problem(Strict):
    detail: str | list[dict[str, Any]]
