"""A backtest job as the CLI describes it: resolve data, instruments, strategy, venue; run; write."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from quantdesk.backtest.report import render_html, write_html
from quantdesk.backtest.runner import BacktestResult, Progress, run_backtest
from quantdesk.config import TradingConfig, load_config
from quantdesk.data.instruments import instrument_for, load_instruments
from quantdesk.data.samples import resolve_data
from quantdesk.data.series import BarSeries
from quantdesk.engine.pipeline import PipelineConfig, research_risk_config
from quantdesk.errors import ConfigError, UserError
from quantdesk.model import Instrument
from quantdesk.risk.messages import Mode
from quantdesk.strategies import get_strategy
from quantdesk.venues.sim import FillAt, LimitFill, SimVenueConfig
from quantdesk.venues.sim.fees import fee_model_from_name


@dataclass(frozen=True, slots=True)
class BacktestJob:
    """Everything `quantdesk backtest` takes; strings are parsed and checked by `run_job`."""

    strategy: str
    data: str
    params: Mapping[str, str] = field(default_factory=dict)
    symbols: tuple[str, ...] = ()
    qty: Decimal = Decimal(1)
    cash: Decimal = Decimal(100_000)
    fill: str = "next_open"
    limit_fill: str = "touch"
    fees: str = "none"
    slippage_ticks: int = 0
    instruments_file: str | None = None
    tick_size: Decimal | None = None
    lot_size: Decimal | None = None
    currency: str = "USD"
    calendar: str | None = None
    json_path: str | None = None
    report_path: str | None = None
    config_file: str | None = None


@dataclass(frozen=True, slots=True)
class JobOutput:
    result: BacktestResult
    json_path: Path | None
    report_path: Path | None


def parse_params(pairs: list[str]) -> dict[str, str]:
    """`["fast=10", "slow=30"]` -> {"fast": "10", "slow": "30"}; a malformed pair is a UserError."""
    params: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--param {pair!r}: expected NAME=VALUE")
        params[key.strip()] = value.strip()
    return params


def parse_decimal(text: str, what: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise UserError(f"{what} {text!r} is not a number") from None
    if not value.is_finite() or value <= 0:
        raise UserError(f"{what} must be a positive number, got {text}")
    return value


def run_job(job: BacktestJob, progress: Progress | None = None) -> JobOutput:
    """Run one backtest job and write its JSON summary and HTML report where asked."""
    strategy_class = get_strategy(job.strategy)
    strategy_class.parse_params(job.params)  # fail on a bad parameter before loading data
    venue_config = _venue_config(job)
    fee_model = fee_model_from_name(job.fees)
    data = resolve_data(job.data)
    if job.symbols:
        unknown = [s for s in job.symbols if s not in data]
        if unknown:
            raise UserError(f"{job.data}: no symbol {', '.join(unknown)} (found: {', '.join(sorted(data))})")
        data = {s: data[s] for s in job.symbols}
    instruments = _instruments(job, data)
    strategies = [strategy_class(symbol, **job.params) for symbol in data]
    calendar = None
    if job.calendar:
        from quantdesk.clock.calendar import MarketCalendar

        calendar = MarketCalendar(job.calendar)
    meta = {
        "strategy": job.strategy,
        "parameters": ", ".join(f"{k}={v}" for k, v in strategy_class.parse_params(job.params).items()),
        "data": job.data,
        "symbols": ", ".join(data),
        "quantity": str(job.qty),
        "starting cash": f"{job.cash} {job.currency}",
        "fill model": f"market orders at {venue_config.fill_at.value}, limits on "
        f"{venue_config.limit_fill.value}, slippage {venue_config.slippage_ticks} ticks",
        "fees": job.fees,
        "instruments": "; ".join(
            f"{i.symbol}: tick {i.tick_size}, lot {i.lot_size} ({i.source})" for i in instruments.values()
        ),
    }
    trading = (
        load_config(job.config_file) if job.config_file else TradingConfig(risk=research_risk_config(job.qty))
    )
    pipeline = PipelineConfig(
        risk=trading.risk,
        ranking=trading.ranking,
        protections=trading.protections,
        mode=Mode.BACKTEST,
        config_sha=trading.sha256(),
    )
    meta["risk limits"] = (
        f"{job.config_file} (config SHA-256 {pipeline.config_sha[:12]}…)"
        if job.config_file
        else f"research defaults: wide caps, entries without a stop allowed, {job.qty} per entry"
    )
    result = run_backtest(
        strategies,
        data,
        instruments,
        cash=job.cash,
        venue_config=venue_config,
        fee_model=fee_model,
        default_qty=job.qty,
        calendar=calendar,
        currency=job.currency,
        progress=progress,
        meta=meta,
        pipeline=pipeline,
    )
    json_path = report_path = None
    if job.json_path:
        json_path = Path(job.json_path)
        _write_json(json_path, result.to_dict())
    if job.report_path:
        report_meta = {**meta, "event log SHA-256": result.event_log_sha256}
        blocked = [{"reason": k, "count": str(v)} for k, v in sorted(result.blocked.items())]
        decisions = [{"approved": str(result.approved), "blocked": str(sum(result.blocked.values()))}]
        html = render_html(
            title=f"{job.strategy} on {', '.join(data)}",
            stats=result.stats,
            equity=result.equity,
            trades=result.trades,
            meta=report_meta,
            extra_tables={"Decisions": decisions, "Blocks by reason": blocked},
        )
        report_path = write_html(job.report_path, html)
    return JobOutput(result, json_path, report_path)


def _venue_config(job: BacktestJob) -> SimVenueConfig:
    try:
        fill_at = FillAt(job.fill)
    except ValueError:
        raise UserError(f"--fill {job.fill!r}: use next_open or close") from None
    try:
        limit_fill = LimitFill(job.limit_fill)
    except ValueError:
        raise UserError(f"--limit-fill {job.limit_fill!r}: use touch or through") from None
    if job.slippage_ticks < 0:
        raise UserError(f"--slippage-ticks must be 0 or more, got {job.slippage_ticks}")
    return SimVenueConfig(fill_at=fill_at, limit_fill=limit_fill, slippage_ticks=job.slippage_ticks)


def _instruments(job: BacktestJob, data: Mapping[str, BarSeries]) -> dict[str, Instrument]:
    from_file = load_instruments(job.instruments_file) if job.instruments_file else {}
    instruments: dict[str, Instrument] = {}
    for symbol, series in data.items():
        if symbol in from_file:
            instruments[symbol] = from_file[symbol]
            continue
        if from_file:
            raise ConfigError(f"{job.instruments_file}: no instrument {symbol}")
        instruments[symbol] = instrument_for(
            symbol,
            price_decimals=series.price_decimals,
            tick_size=job.tick_size,
            lot_size=job.lot_size,
            currency=job.currency,
        )
    return instruments


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    except OSError as error:
        raise UserError(f"{path}: cannot write the JSON summary: {error.strerror}") from None
