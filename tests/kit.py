"""Test kit: deterministic builders for instruments, bars, series and an engine on the simulated venue."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np

from quantdesk.bus import MessageBus
from quantdesk.clock import SimulatedClock
from quantdesk.data.series import BarSeries
from quantdesk.engine import Engine, EngineConfig
from quantdesk.engine.pipeline import PipelineConfig, research_risk_config
from quantdesk.execution import EventLog
from quantdesk.execution.client_ids import plan_client_id
from quantdesk.execution.order_manager import BeforeSend
from quantdesk.model import Bar, Instrument
from quantdesk.risk.messages import Mode
from quantdesk.venues.sim import SimulatedExchange, SimVenueConfig

MINUTE = 60_000_000_000
T0 = 1_704_205_800_000_000_000  # 2024-01-02 14:30 UTC, the NYSE open


_PLAN_TS = itertools.count()


def a_plan_id(
    qty: Decimal | str,
    *,
    strategy: str = "s",
    symbol: str = "AAA",
    side: str = "BUY",
    signal_ts: int | None = None,
) -> str:
    """A plan id shaped as the pipeline makes them, for orders entered straight into the order
    manager: a fresh one per call (a new signal time), or the one of `signal_ts`."""
    return plan_client_id(
        strategy=strategy,
        symbol=symbol,
        side=side,
        entry=None,
        stop=None,
        targets=(),
        qty=Decimal(qty),
        signal_ts=next(_PLAN_TS) if signal_ts is None else signal_ts,
        config_sha="",
    )


def instrument(symbol: str = "AAA", **kw: object) -> Instrument:
    return Instrument(symbol, **kw)  # type: ignore[arg-type]


def bar(ts: int, o: float, h: float, low: float, c: float, v: float = 1_000.0, symbol: str = "AAA") -> Bar:
    return Bar(symbol, ts, o, h, low, c, v, ts)


def flat_bar(i: int, price: float, symbol: str = "AAA") -> Bar:
    """Bar number `i` (one minute apart) with every price at `price`."""
    return bar(T0 + i * MINUTE, price, price, price, price, symbol=symbol)


def series_from_closes(closes: Sequence[float], symbol: str = "AAA", spread: float = 0.0) -> BarSeries:
    """A minute-bar series whose bars open at the previous close and close at `closes`."""
    c = np.asarray(closes, dtype=np.float64)
    o = np.concatenate([[c[0]], c[:-1]])
    ts = T0 + np.arange(len(c), dtype=np.int64) * MINUTE
    return BarSeries(
        symbol=symbol,
        ts=ts,
        open=o,
        high=np.maximum(o, c) + spread,
        low=np.minimum(o, c) - spread,
        close=c,
        volume=np.full(len(c), 1_000.0),
        source="kit",
        price_decimals=2,
        skipped=0,
    )


@dataclass
class Rig:
    """An engine on a simulated exchange with a simulated clock, fed bar by bar."""

    engine: Engine
    venue: SimulatedExchange
    clock: SimulatedClock
    bus: MessageBus
    log: EventLog
    events: list[object] = field(default_factory=list)

    def feed(self, *bars: Bar) -> None:
        for b in bars:
            if b.ts_event != self.clock.now_ns():
                self.engine.end_cycle()
            self.clock.advance_to(b.ts_event)
            self.venue.on_bar(b)
            self.engine.on_bar(b)
            self.venue.on_bar_close(b)


def rig(
    instruments: Sequence[Instrument] = (),
    *,
    cash: Decimal = Decimal(1_000_000),
    config: SimVenueConfig | None = None,
    default_qty: Decimal = Decimal(1),
    is_open: Callable[[int], bool] | None = None,
    pipeline: PipelineConfig | None = None,
    before_send: BeforeSend | None = None,
    venue_class: type[SimulatedExchange] = SimulatedExchange,
) -> Rig:
    """An engine on a simulated venue (`venue_class`: a subclass that watches or injects faults)."""
    instruments = list(instruments) or [instrument()]
    by_symbol = {i.symbol: i for i in instruments}
    clock = SimulatedClock(T0 - MINUTE)
    bus = MessageBus()
    log = EventLog(keep=True)
    venue = venue_class(by_symbol, cash=cash, config=config, clock_ns=clock.now_ns, is_open=is_open)
    engine = Engine(
        clock=clock,
        bus=bus,
        venue=venue,
        instruments=by_symbol,
        cash=cash,
        config=EngineConfig(
            pipeline=pipeline or PipelineConfig(risk=research_risk_config(default_qty), mode=Mode.BACKTEST)
        ),
        event_log=log,
        before_send=before_send,
    )
    venue.set_price_source(engine.last_bar)
    return Rig(engine, venue, clock, bus, log)
