"""Risk configuration: per-trade, heat and daily-loss caps, position limits, end of day, sizing, live caps."""

from __future__ import annotations

from collections.abc import Set
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from quantdesk.errors import ConfigError
from quantdesk.risk.messages import Mode

_HHMM = r"^([01]\d|2[0-3]):[0-5]\d$"


class SizingConfig(BaseModel):
    """How a signal becomes a quantity; every mode rounds down to the lot and respects the caps.

    - ``fixed``: `fixed_qty` units per entry.
    - ``signal``: the quantity the signal itself carries.
    - ``notional``: as many units as `notional` buys at the entry price.
    - ``risk``: as many units as lose `risk_pct` percent of equity when stopped;
      `risk_pct` None means the gate's per-trade cap (`max_risk_per_trade_pct`).

    `max_notional` caps the value of any entry (None: no cap).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: Literal["fixed", "signal", "notional", "risk"] = "risk"
    fixed_qty: Decimal | None = Field(default=None, gt=0, allow_inf_nan=False)
    notional: Decimal | None = Field(default=None, gt=0, allow_inf_nan=False)
    max_notional: Decimal | None = Field(default=None, gt=0, allow_inf_nan=False)
    risk_pct: Decimal | None = Field(default=None, gt=0, le=100, allow_inf_nan=False)

    @model_validator(mode="after")
    def _mode_has_its_value(self) -> SizingConfig:
        if self.mode == "fixed" and self.fixed_qty is None:
            raise ValueError("sizing mode 'fixed' needs fixed_qty")
        if self.mode == "notional" and self.notional is None:
            raise ValueError("sizing mode 'notional' needs notional")
        return self


class LiveCaps(BaseModel):
    """Day-one caps of LIVE trading, in percent of equity (DESIGN.md section 4)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_risk_per_trade_pct: Decimal = Field(default=Decimal("0.25"), gt=0, le=100, allow_inf_nan=False)
    max_portfolio_heat_pct: Decimal = Field(default=Decimal("1.0"), gt=0, le=100, allow_inf_nan=False)
    max_daily_loss_pct: Decimal = Field(default=Decimal("1.0"), gt=0, le=100, allow_inf_nan=False)


DAY_ONE_LIVE_CAPS = LiveCaps()


class RiskConfig(BaseModel):
    """Hard limits of the pre-trade gate, end-of-day times and sizing. Percentages are of equity.

    End of day, in the exchange's local time:

    - flatten: the earlier of `flatten_time` ("HH:MM"; None means the exchange's
      default, 15:25 on NSE, none elsewhere) and `flatten_minutes_before_close`
      before the day's close, early closes included. NYSE by default: 15:55 ET,
      12:55 ET on a 13:00 early close.
    - entry cutoff: `entry_cutoff` ("HH:MM") if set, never later than the
      flatten; else the flatten minus `entry_cutoff_margin_minutes` (NSE: 15:10).

    `max_data_age_seconds` blocks entries on a symbol whose last tick or bar is
    older than this (None disables; `for_mode(BACKTEST)` disables it unless set).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_risk_per_trade_pct: Decimal = Field(default=Decimal("0.5"), gt=0, le=100, allow_inf_nan=False)
    max_portfolio_heat_pct: Decimal = Field(default=Decimal("2.0"), gt=0, le=100, allow_inf_nan=False)
    max_daily_loss_pct: Decimal = Field(default=Decimal("2.0"), gt=0, le=100, allow_inf_nan=False)
    max_open_positions: int = Field(default=5, ge=1)
    max_positions_per_symbol: int = Field(default=1, ge=1)
    allow_stopless_entries: bool = Field(
        default=False, description="Let an entry without a stop through; it then risks its whole notional."
    )
    entry_cutoff: str | None = Field(default=None, pattern=_HHMM)
    entry_cutoff_margin_minutes: int = Field(default=15, ge=0)
    flatten_time: str | None = Field(default=None, pattern=_HHMM)
    flatten_minutes_before_close: int = Field(default=5, ge=0)
    max_data_age_seconds: float | None = Field(default=5.0, gt=0, allow_inf_nan=False)
    sizing: SizingConfig = SizingConfig()

    @model_validator(mode="after")
    def _consistent(self) -> RiskConfig:
        if self.entry_cutoff and self.flatten_time and self.entry_cutoff >= self.flatten_time:
            raise ValueError(
                f"entry_cutoff {self.entry_cutoff} must be before flatten_time {self.flatten_time}"
            )
        if self.sizing.risk_pct is not None and self.sizing.risk_pct > self.max_risk_per_trade_pct:
            raise ValueError(
                f"sizing.risk_pct {self.sizing.risk_pct} is above max_risk_per_trade_pct "
                f"{self.max_risk_per_trade_pct}: the gate would block every risk-sized entry"
            )
        return self

    def for_mode(
        self, mode: Mode, overrides_given: Set[str] | None = None, *, caps: LiveCaps = DAY_ONE_LIVE_CAPS
    ) -> RiskConfig:
        """This configuration as it applies in `mode`.

        LIVE: each capped percentage becomes min(configured, cap) unless its
        field is in `overrides_given` (set explicitly in the user's config), in
        which case the configured value stands, higher or lower. So a config that
        says nothing trades LIVE at 0.25% / 1.0% / 1.0%, and one that writes
        ``max_risk_per_trade_pct: 0.4`` keeps 0.4 for that field only.
        `sizing.risk_pct` is lowered to the resulting per-trade cap if above it.

        BACKTEST: the stale-data check is off unless `max_data_age_seconds` was
        given (bar timestamps are minutes apart, so a live age would block all).

        `overrides_given` defaults to the fields set when this model was built.
        """
        given = set(self.model_fields_set if overrides_given is None else overrides_given)
        unknown = given - set(type(self).model_fields)
        if unknown:
            raise ConfigError(f"risk config has no field(s) {', '.join(sorted(unknown))}")
        update: dict[str, object] = {}
        if mode is Mode.LIVE:
            for name in ("max_risk_per_trade_pct", "max_portfolio_heat_pct", "max_daily_loss_pct"):
                if name not in given:
                    update[name] = min(getattr(self, name), getattr(caps, name))
            per_trade = self.max_risk_per_trade_pct
            if "max_risk_per_trade_pct" not in given:
                per_trade = min(per_trade, caps.max_risk_per_trade_pct)
            if self.sizing.risk_pct is not None and self.sizing.risk_pct > per_trade:
                update["sizing"] = self.sizing.model_copy(update={"risk_pct": per_trade})
        elif mode is Mode.BACKTEST and "max_data_age_seconds" not in given:
            update["max_data_age_seconds"] = None
        return self.model_copy(update=update) if update else self
