"""The SMA cross benchmark run on NautilusTrader's low-level BacktestEngine (optional extra `peers`)."""
# mypy: disable-error-code="import-not-found"

from __future__ import annotations

import time
from decimal import Decimal
from importlib import metadata
from typing import Any

import numpy as np
import numpy.typing as npt

from . import PeerResult

FAST = 10
SLOW = 20
BAR_NS = 60_000_000_000
VENUE = "XNAS"
SYMBOL = "SYN"
# Enough that buying 1 share on a cash account is never refused, whatever the price.
STARTING_USD = 1_000_000_000
MAX_PRICE_PRECISION = 9


def available() -> bool:
    """Whether nautilus_trader imports in this environment (`unavailable_reason` says why not)."""
    return not unavailable_reason()


def unavailable_reason() -> str:
    """Why NautilusTrader cannot run here, or an empty string when it can."""
    try:
        import nautilus_trader.backtest.engine  # noqa: F401
    except ImportError as error:
        return f"nautilus_trader does not import ({error}); see benchmarks/peers/README.md"
    return ""


def price_precision(*prices: npt.NDArray[np.float64]) -> int:
    """The fewest decimals that carry every price exactly, else 9 (the most every Nautilus build takes).

    Nautilus prices are fixed-point; choosing the precision from the data keeps its prices
    the ones the other engines see (to 1e-9 when the data is on no decimal grid).
    """
    values = np.concatenate(prices)
    for decimals in range(MAX_PRICE_PRECISION + 1):
        if np.allclose(np.round(values, decimals), values, rtol=0.0, atol=1e-9 * 10.0**-decimals):
            return decimals
    return MAX_PRICE_PRECISION


def _buffer(values: npt.NDArray[Any], dtype: type[np.generic]) -> npt.NDArray[Any]:
    """A writable C-contiguous copy: Nautilus' array constructors take no read-only buffer."""
    return np.array(values, dtype=dtype, order="C", copy=True)


def _strategy_class() -> tuple[type[Any], type[Any]]:
    from nautilus_trader.config import StrategyConfig
    from nautilus_trader.indicators import SimpleMovingAverage
    from nautilus_trader.model.data import Bar, BarType, TradeTick
    from nautilus_trader.model.enums import OrderSide
    from nautilus_trader.model.events import OrderFilled, PositionClosed
    from nautilus_trader.model.identifiers import InstrumentId
    from nautilus_trader.model.objects import Quantity
    from nautilus_trader.trading.strategy import Strategy

    class SmaCrossConfig(StrategyConfig, frozen=True):  # type: ignore[misc,call-arg,unused-ignore]
        instrument_id: InstrumentId
        bar_type: BarType
        next_open: bool

    class SmaCross(Strategy):  # type: ignore[misc]
        """Long 1 share on a strict cross above, flat on a strict cross below.

        With `next_open` the signal of a bar is acted on at the next bar's opening
        trade tick (the fill is at that open); without it the order goes out in
        `on_bar` and Nautilus fills it at the signal bar's close.
        """

        def __init__(self, config: SmaCrossConfig) -> None:
            super().__init__(config)
            self.fast = SimpleMovingAverage(FAST)
            self.slow = SimpleMovingAverage(SLOW)
            self.fast_prev = float("nan")
            self.slow_prev = float("nan")
            self.pending: OrderSide | None = None
            self.quantity = Quantity.from_int(1)
            self.closed_trades = 0
            self.entry_price = Decimal(0)
            self.realized = Decimal(0)

        def on_start(self) -> None:
            self.register_indicator_for_bars(self.config.bar_type, self.fast)
            self.register_indicator_for_bars(self.config.bar_type, self.slow)
            self.subscribe_bars(self.config.bar_type)
            if self.config.next_open:
                self.subscribe_trade_ticks(self.config.instrument_id)

        def on_bar(self, bar: Bar) -> None:
            fast, slow = self.fast.value, self.slow.value
            if not self.slow.initialized:
                return
            fast_prev, slow_prev = self.fast_prev, self.slow_prev
            self.fast_prev, self.slow_prev = fast, slow
            # NaN before the slow average had a previous value: every comparison is False.
            if fast_prev < slow_prev and fast > slow:
                self._act(OrderSide.BUY)
            elif fast_prev > slow_prev and fast < slow:
                self._act(OrderSide.SELL)

        def _act(self, side: OrderSide) -> None:
            if self.config.next_open:
                self.pending = side
            else:
                self._trade(side)

        def on_trade_tick(self, tick: TradeTick) -> None:
            if self.pending is not None:
                side, self.pending = self.pending, None
                self._trade(side)

        def _trade(self, side: OrderSide) -> None:
            instrument_id = self.config.instrument_id
            if side == OrderSide.BUY:
                if self.portfolio.is_flat(instrument_id):
                    order = self.order_factory.market(instrument_id, OrderSide.BUY, self.quantity)
                    self.submit_order(order)
            elif self.portfolio.is_net_long(instrument_id):
                # Not close_all_positions: in 1.221 its cost grows with the trades already made
                # (1M bars ran 355 s with it, 57 s with this order; the fills are the same).
                order = self.order_factory.market(
                    instrument_id, OrderSide.SELL, self.quantity, reduce_only=True
                )
                self.submit_order(order)

        def on_order_filled(self, event: OrderFilled) -> None:
            # P&L from the fill prices: the position's realized_pnl is Money, rounded to the
            # USD cent on every round trip, which would not compare with the other engines.
            price = event.last_px.as_decimal()
            if event.order_side == OrderSide.BUY:
                self.entry_price = price
            else:
                self.realized += price - self.entry_price

        def on_position_closed(self, event: PositionClosed) -> None:
            self.closed_trades += 1

    return SmaCross, SmaCrossConfig


def run(
    ts: npt.NDArray[np.int64],
    open_: npt.NDArray[np.float64],
    high: npt.NDArray[np.float64],
    low: npt.NDArray[np.float64],
    close: npt.NDArray[np.float64],
    volume: npt.NDArray[np.float64],
    *,
    next_open: bool = True,
) -> PeerResult:
    """Run the benchmark on NautilusTrader; `seconds` times `BacktestEngine.run()` alone.

    `ts` is each bar's open time. With `next_open` (the benchmark's rule) each bar is
    preceded by a trade tick at its open, so Nautilus sees 2 events a bar; without it
    Nautilus fills at the signal bar's close, 1 event a bar. `prepare_seconds` covers
    building the engine, instrument, bars and ticks and `add_data`'s sort.
    """
    from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
    from nautilus_trader.config import LoggingConfig
    from nautilus_trader.model.currencies import USD
    from nautilus_trader.model.data import Bar, BarType, TradeTick
    from nautilus_trader.model.enums import AccountType, AggressorSide, OmsType
    from nautilus_trader.model.identifiers import InstrumentId, Symbol, Venue
    from nautilus_trader.model.instruments import Equity
    from nautilus_trader.model.objects import Money, Price, Quantity

    strategy_class, config_class = _strategy_class()
    started = time.perf_counter()
    precision = price_precision(open_, high, low, close)
    instrument_id = InstrumentId(Symbol(SYMBOL), Venue(VENUE))
    instrument = Equity(
        instrument_id=instrument_id,
        raw_symbol=Symbol(SYMBOL),
        currency=USD,
        price_precision=precision,
        price_increment=Price(10.0**-precision, precision),
        lot_size=Quantity.from_int(1),
        ts_event=0,
        ts_init=0,
    )
    engine = BacktestEngine(
        config=BacktestEngineConfig(
            logging=LoggingConfig(log_level="ERROR", bypass_logging=True),
            run_analysis=False,
        )
    )
    try:
        engine.add_venue(
            venue=Venue(VENUE),
            oms_type=OmsType.NETTING,
            account_type=AccountType.CASH,
            starting_balances=[Money(STARTING_USD, USD)],
            base_currency=USD,
            bar_execution=True,
        )
        engine.add_instrument(instrument)
        bar_type = BarType.from_str(f"{instrument_id}-1-MINUTE-LAST-EXTERNAL")
        opened = _buffer(ts, np.uint64)
        # Nautilus wants a bar at its close time (ts_init) so it is never seen before it formed.
        bars = Bar.from_raw_arrays_to_list(
            bar_type,
            precision,
            0,
            _buffer(open_, np.float64),
            _buffer(high, np.float64),
            _buffer(low, np.float64),
            _buffer(close, np.float64),
            _buffer(volume, np.float64),
            opened,
            opened + np.uint64(BAR_NS),
        )
        engine.add_data(bars, sort=not next_open)
        if next_open:
            # The opening tick is seen 1 ns after the bar opens: after the previous bar's
            # close (ts_init), which is when that bar's signal was made.
            ticks = TradeTick.from_raw_arrays_to_list(
                instrument_id,
                precision,
                0,
                _buffer(open_, np.float64),
                np.maximum(_buffer(volume, np.float64), 1.0),
                np.full(len(open_), int(AggressorSide.NO_AGGRESSOR), dtype=np.uint8),
                [str(index) for index in range(len(open_))],
                opened,
                opened + np.uint64(1),
            )
            engine.add_data(ticks, sort=True)
        strategy = strategy_class(
            config_class(instrument_id=instrument_id, bar_type=bar_type, next_open=next_open)
        )
        engine.add_strategy(strategy)
        prepare_seconds = time.perf_counter() - started

        started = time.perf_counter()
        engine.run()
        seconds = time.perf_counter() - started

        return PeerResult(
            name="nautilus_trader" if next_open else "nautilus_trader (fill at close)",
            bars=len(close),
            seconds=seconds,
            trades=strategy.closed_trades,
            net_pnl=float(strategy.realized),
            version=metadata.version("nautilus_trader"),
            prepare_seconds=prepare_seconds,
        )
    finally:
        engine.dispose()
