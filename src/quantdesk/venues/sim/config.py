"""Configuration of the simulated exchange: fill timing, limit semantics, volume share, latency, slippage."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class FillAt(StrEnum):
    """When a market order placed on a bar fills: the next bar's open, or this bar's close."""

    NEXT_OPEN = "next_open"
    CLOSE = "close"


class LimitFill(StrEnum):
    """A resting limit fills when price touches it, or only when price trades through it."""

    TOUCH = "touch"
    THROUGH = "through"


class SimVenueConfig(BaseModel):
    """How the simulated exchange fills orders. Defaults: next-open fills, no costs, no limits."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    fill_at: FillAt = FillAt.NEXT_OPEN
    limit_fill: LimitFill = LimitFill.TOUCH
    max_volume_share: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="Share of a bar's volume one bar can fill; None = all.",
    )
    latency_ms: float = Field(default=0.0, ge=0)
    slippage_ticks: int = Field(default=0, ge=0)
    check_cash: bool = True
    allow_short: bool = True
    enforce_session: bool = False
    cash_buffer: Decimal = Field(
        default=Decimal("0"), ge=0, description="Extra share of notional a buy must leave in cash."
    )
