"""The backtest runner: feeds historical bars through the engine and the simulated exchange.

The loop is the live path with a simulated clock: for each bar the clock
moves, the exchange matches working orders at the bar's open (its path), the
strategies see the completed bar, and with `fill_at=close` market orders fill
at its close. Equity is marked lazily: fills are recorded as they happen and
the per-bar equity curve is computed once at the end from fills and closes.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from quantdesk.backtest.stats import EquityCurve, Stats, compute_stats
from quantdesk.bus import MessageBus
from quantdesk.clock import SimulatedClock
from quantdesk.clock.calendar import MarketCalendar
from quantdesk.data.series import BarSeries
from quantdesk.engine import Engine, EngineConfig
from quantdesk.engine.messages import DecisionRecord
from quantdesk.engine.pipeline import PipelineConfig, research_risk_config
from quantdesk.execution import EventLog
from quantdesk.model import Bar, Fill, Instrument, Order, Side
from quantdesk.portfolio.trades import TradeRecord
from quantdesk.risk.messages import Mode
from quantdesk.strategies import Strategy
from quantdesk.venues.sim import SimulatedExchange, SimVenueConfig
from quantdesk.venues.sim.config import FillAt
from quantdesk.venues.sim.fees import FeeModel

CHUNK: Final = 65_536
# Enum members as C statics (see _compiled.py).
_BUY: Final = Side.BUY
Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class OpenPosition:
    """A position still open when the data ended, marked at the last close."""

    strategy: str
    symbol: str
    side: str
    qty: Decimal
    entry_time: int
    avg_price: Decimal
    mark: Decimal
    unrealized_pnl: Decimal


@dataclass(slots=True)
class BacktestResult:
    """Everything a backtest produced: trades, orders, fills, equity, statistics and the log hash."""

    stats: Stats
    trades: list[TradeRecord]
    open_positions: list[OpenPosition]
    orders: list[Order]
    fills: list[Fill]
    equity: EquityCurve
    exposure: npt.NDArray[np.bool_]
    event_log_sha256: str
    event_count: int
    signals: int
    blocked: dict[str, int]
    approved: int
    decisions: list[DecisionRecord]
    instruments: dict[str, Instrument]
    bars: int
    meta: dict[str, str] = field(default_factory=dict)

    @property
    def net_pnl(self) -> Decimal:
        return self.stats.net_pnl

    def to_dict(self) -> dict[str, Any]:
        """The JSON summary: net_pnl, trades, stats, event_log_sha256 and the run's context."""
        return {
            "net_pnl": format(self.stats.net_pnl, "f"),
            "realized_pnl": format(self.stats.realized_pnl, "f"),
            "trades": [_trade_dict(t) for t in self.trades],
            "open_positions": [_open_dict(p) for p in self.open_positions],
            "stats": self.stats.to_dict(),
            "signals": self.signals,
            "decisions": {"approved": self.approved, "blocked": sum(self.blocked.values())},
            "blocked_by_reason": dict(sorted(self.blocked.items())),
            "blocked_examples": [
                {
                    "time": _iso(d.signal.ts),
                    "strategy": d.signal.strategy,
                    "symbol": d.signal.symbol,
                    "reasons": list(d.reasons),
                    "details": list(d.details),
                }
                for d in self.decisions
                if not d.approved
            ][:50],
            "orders": len(self.orders),
            "fills": len(self.fills),
            "instruments": {s: _instrument_dict(i) for s, i in sorted(self.instruments.items())},
            "bars": self.bars,
            "event_count": self.event_count,
            "event_log_sha256": self.event_log_sha256,
            "meta": self.meta,
        }


def run_backtest(
    strategies: Sequence[Strategy],
    data: Mapping[str, BarSeries],
    instruments: Mapping[str, Instrument],
    *,
    cash: Decimal,
    venue_config: SimVenueConfig | None = None,
    fee_model: FeeModel | None = None,
    default_qty: Decimal = Decimal(1),
    calendar: MarketCalendar | None = None,
    currency: str = "USD",
    progress: Progress | None = None,
    keep_event_log: bool = False,
    meta: Mapping[str, str] | None = None,
    pipeline: PipelineConfig | None = None,
) -> BacktestResult:
    """Run `strategies` (each bound to its `symbol`) over `data` and return the result.

    Example::

        bars = load_sample("GOOG")
        result = run_backtest([SmaCross("GOOG", fast=10, slow=20)], {"GOOG": bars},
                              {"GOOG": Instrument("GOOG")}, cash=Decimal(100_000),
                              default_qty=Decimal(10))
        print(result.net_pnl, result.stats.sharpe)
    """
    with _cyclic_gc_paused():
        return _run(
            strategies,
            data,
            instruments,
            cash=cash,
            venue_config=venue_config,
            fee_model=fee_model,
            default_qty=default_qty,
            calendar=calendar,
            currency=currency,
            progress=progress,
            keep_event_log=keep_event_log,
            meta=meta,
            pipeline=pipeline,
        )


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """A run allocates millions of short-lived, acyclic objects while its order and fill
    history grows; cyclic GC passes would rescan that history again and again (they made
    result building 6x slower at 100k fills). The collector resumes when the run ends."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _run(
    strategies: Sequence[Strategy],
    data: Mapping[str, BarSeries],
    instruments: Mapping[str, Instrument],
    *,
    cash: Decimal,
    venue_config: SimVenueConfig | None,
    fee_model: FeeModel | None,
    default_qty: Decimal,
    calendar: MarketCalendar | None,
    currency: str,
    progress: Progress | None,
    keep_event_log: bool,
    meta: Mapping[str, str] | None,
    pipeline: PipelineConfig | None,
) -> BacktestResult:
    missing = sorted({s.symbol for s in strategies} - set(data))
    if missing:
        raise KeyError(f"no data for {', '.join(missing)}")
    config = venue_config or SimVenueConfig()
    clock = SimulatedClock()
    bus = MessageBus()
    event_log = EventLog(keep=keep_event_log)
    instrument_map = dict(instruments)
    venue = SimulatedExchange(
        instrument_map,
        cash=cash,
        currency=currency,
        config=config,
        fee_model=fee_model,
        is_open=calendar.is_open if calendar is not None else None,
        clock_ns=clock.now_ns,
    )
    engine = Engine(
        clock=clock,
        bus=bus,
        venue=venue,
        instruments=instrument_map,
        cash=cash,
        config=EngineConfig(
            account_currency=currency,
            timezone=calendar.tz if calendar is not None else "UTC",
            pipeline=pipeline or PipelineConfig(risk=research_risk_config(default_qty), mode=Mode.BACKTEST),
        ),
        event_log=event_log,
        calendar=calendar,
    )
    venue.set_price_source(engine.last_bar)
    fills: list[Fill] = []
    bus.subscribe(Fill, fills.append)
    for strategy in strategies:
        engine.add_strategy(strategy)

    engine.start()
    total = sum(len(data[symbol]) for symbol in data)
    fill_at_close = config.fill_at is FillAt.CLOSE
    _feed(engine, venue, clock, [data[s] for s in data], fill_at_close, progress, total)
    engine.stop()
    # Orders still working when the data ends cannot fill: cancel them so none outlives the run.
    for order in engine.orders.working_orders():
        engine.orders.cancel(order.client_order_id)

    return _result(engine, data, instrument_map, fills, cash, event_log, total, meta or {})


def _feed(
    engine: Engine,
    venue: SimulatedExchange,
    clock: SimulatedClock,
    series: list[BarSeries],
    fill_at_close: bool,
    progress: Progress | None,
    total: int,
) -> None:
    """The hot loop: per bar, a Bar, the clock, the exchange (only if it has work), the strategies."""
    new_bar = tuple.__new__
    working = venue.working_index()
    dispatchers = {s.symbol: engine.bar_dispatcher(s.symbol) for s in series}
    single = dispatchers[series[0].symbol] if len(series) == 1 else None
    # One symbol, one strategy, nobody else listening: keep the last bar here and call the
    # strategy directly (one Python call per bar instead of two).
    direct = engine.bar_handler(series[0].symbol) if single is not None else None
    last_bar = engine.last_bar
    only = series[0].symbol
    venue_on_bar = venue.on_bar
    venue_on_close = venue.on_bar_close
    alarms = clock.pending_alarms()
    advance = clock.advance_to
    set_time = clock.set_time
    pending = engine.pipeline.pending
    end_cycle = engine.end_cycle
    last_t = None
    done = 0
    for symbols, ts, opens, highs, lows, closes, volumes in _chunks(series):
        for symbol, t, o, h, low, c, v in zip(symbols, ts, opens, highs, lows, closes, volumes, strict=True):
            if pending and t != last_t:
                # Time moves on: decide the last instant's signals before this bar opens.
                end_cycle()
            last_t = t
            bar = new_bar(Bar, (symbol, t, o, h, low, c, v, t))
            if alarms and alarms[0][0] <= t:
                advance(t)
            else:
                set_time(t)
            if working:
                venue_on_bar(bar)
            if direct is not None:
                last_bar[only] = bar
                direct(bar)
            elif single is not None:
                single(bar)
            else:
                dispatchers[symbol](bar)
            if fill_at_close:
                if pending:
                    end_cycle()
                if working:
                    venue_on_close(bar)
        done += len(ts)
        if progress is not None:
            progress(done, total)


def _chunks(
    series: list[BarSeries],
) -> Any:
    """Yield bars as Python lists, chunk by chunk, merged in time order across symbols."""
    if len(series) == 1:
        only = series[0]
        n = len(only)
        for start in range(0, n, CHUNK):
            end = min(start + CHUNK, n)
            yield (
                [only.symbol] * (end - start),
                only.ts[start:end].tolist(),
                only.open[start:end].tolist(),
                only.high[start:end].tolist(),
                only.low[start:end].tolist(),
                only.close[start:end].tolist(),
                only.volume[start:end].tolist(),
            )
        return
    ts = np.concatenate([s.ts for s in series])
    which = np.concatenate([np.full(len(s), i, dtype=np.int32) for i, s in enumerate(series)])
    # Time order; at equal times, the order the series were given in (a stable tie-break).
    order = np.lexsort((which, ts))
    columns = {
        name: np.concatenate([getattr(s, name) for s in series])[order]
        for name in ("open", "high", "low", "close", "volume")
    }
    ts, which = ts[order], which[order]
    names = [s.symbol for s in series]
    for start in range(0, len(ts), CHUNK):
        end = start + CHUNK
        yield (
            [names[i] for i in which[start:end].tolist()],
            ts[start:end].tolist(),
            *[columns[name][start:end].tolist() for name in ("open", "high", "low", "close", "volume")],
        )


def _result(
    engine: Engine,
    data: Mapping[str, BarSeries],
    instruments: dict[str, Instrument],
    fills: list[Fill],
    cash: Decimal,
    event_log: EventLog,
    total: int,
    meta: Mapping[str, str],
) -> BacktestResult:
    builders = engine.trade_builders()
    trades = sorted(engine.closed_trades, key=lambda t: (t.exit_time, t.entry_time))
    marks = engine.marks()
    open_positions = []
    for (strategy, symbol), builder in sorted(builders.items()):
        trade = builder.open_trade
        if trade is None:
            continue
        qty = trade.qty
        avg = trade.entry_value / (qty + trade.exit_qty) if qty else Decimal(0)
        direction = 1 if trade.side == "LONG" else -1
        open_positions.append(
            OpenPosition(
                strategy=strategy,
                symbol=symbol,
                side=trade.side,
                qty=qty,
                entry_time=trade.entry_time,
                avg_price=avg,
                mark=marks[symbol],
                unrealized_pnl=(marks[symbol] - avg) * qty * direction * builder.multiplier,
            )
        )
    equity, exposure = equity_curve(data, instruments, fills, cash)
    final_equity = engine.portfolio.equity(marks)
    stats = compute_stats(equity, trades, starting_cash=cash, exposure=exposure, final_equity=final_equity)
    return BacktestResult(
        stats=stats,
        trades=trades,
        open_positions=open_positions,
        orders=list(engine.orders.orders.values()),
        fills=fills,
        equity=equity,
        exposure=exposure,
        event_log_sha256=event_log.sha256,
        event_count=event_log.count,
        signals=engine.signals,
        blocked={**engine.pipeline.blocked, **{f"MALFORMED: {k}": v for k, v in engine.malformed.items()}},
        approved=engine.pipeline.approved,
        decisions=engine.pipeline.decisions,
        instruments=instruments,
        bars=total,
        meta=dict(meta),
    )


def equity_curve(
    data: Mapping[str, BarSeries],
    instruments: Mapping[str, Instrument],
    fills: Sequence[Fill],
    cash: Decimal,
) -> tuple[EquityCurve, npt.NDArray[np.bool_]]:
    """Equity at every distinct bar time, marked at the close, computed at once from the fills.

    A fill at time t counts in the equity of the bar stamped t (fills happen at
    that bar's open or close, both before it is marked at the close).
    """
    if len(data) == 1:
        timeline = next(iter(data.values())).ts
    else:
        merged = np.sort(np.concatenate([s.ts for s in data.values()]))
        keep = np.empty(len(merged), dtype=bool)
        keep[:1] = True
        np.not_equal(merged[1:], merged[:-1], out=keep[1:])
        timeline = merged[keep]
    n = len(timeline)
    exposure = np.zeros(n, dtype=bool)
    if not fills:
        return EquityCurve(timeline, np.full(n, float(cash))), exposure
    symbol_of = [f.symbol for f in fills]
    symbols = np.array(symbol_of)
    at = np.searchsorted(timeline, np.array([f.ts_event for f in fills], dtype=np.int64))
    multipliers = {s: instruments[s].multiplier for s in set(symbol_of)}
    # Fill.signed_qty is a Python property: spelled out, once per fill.
    signed_qty = [f.qty if f.side is _BUY else -f.qty for f in fills]
    flows = np.array(
        [
            float(q * f.price * multipliers[s] + f.fee)
            for q, f, s in zip(signed_qty, fills, symbol_of, strict=True)
        ]
    )
    equity = float(cash) - np.cumsum(np.bincount(at, weights=flows, minlength=n))
    signed = np.array([float(q) for q in signed_qty])
    for symbol, multiplier in multipliers.items():
        mine = symbols == symbol
        qty = np.cumsum(np.bincount(at[mine], weights=signed[mine], minlength=n))
        series = data[symbol]
        if series.ts is timeline:
            closes = series.close  # one symbol: the timeline is its own bars
        else:
            # The close in force at each time of the timeline (the symbol's last bar so far).
            last = np.searchsorted(series.ts, timeline, side="right") - 1
            closes = np.where(last >= 0, series.close[np.clip(last, 0, None)], 0.0)
        equity += qty * closes * float(multiplier)
        exposure |= qty != 0
    return EquityCurve(timeline, equity.astype(np.float64)), exposure


def _trade_dict(trade: TradeRecord) -> dict[str, Any]:
    return {
        "strategy": trade.strategy,
        "symbol": trade.symbol,
        "side": trade.side,
        "qty": format(trade.qty, "f"),
        "entry_time": _iso(trade.entry_time),
        "exit_time": _iso(trade.exit_time),
        "entry_price": format(trade.entry_price, "f"),
        "exit_price": format(trade.exit_price, "f"),
        "pnl": format(trade.pnl, "f"),
        "fees": format(trade.fees, "f"),
    }


def _open_dict(position: OpenPosition) -> dict[str, Any]:
    return {
        "strategy": position.strategy,
        "symbol": position.symbol,
        "side": position.side,
        "qty": format(position.qty, "f"),
        "entry_time": _iso(position.entry_time),
        "avg_price": format(position.avg_price, "f"),
        "mark": format(position.mark, "f"),
        "unrealized_pnl": format(position.unrealized_pnl, "f"),
    }


def _instrument_dict(instrument: Instrument) -> dict[str, str]:
    return {
        "exchange": instrument.exchange,
        "currency": instrument.currency,
        "tick_size": str(instrument.tick_size),
        "lot_size": str(instrument.lot_size),
        "min_qty": str(instrument.min_qty),
        "max_qty": str(instrument.max_qty) if instrument.max_qty is not None else "",
        "multiplier": str(instrument.multiplier),
        "source": instrument.source,
    }


def _iso(ts: int) -> str:
    return str(np.datetime_as_string(np.datetime64(ts, "ns"), unit="s")) + "Z"
