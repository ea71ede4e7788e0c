"""The trading engine: routes market data to strategies, signals through the pipeline, fills to the
portfolio; owns pause, flatten and the end-of-day schedule.

It is the same object in every mode; only the clock, the feed and the venue
given to it differ. It is synchronous and does no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Final
from zoneinfo import ZoneInfo

from quantdesk.bus import MessageBus
from quantdesk.clock import Clock, TimeEvent, monotonic_ns
from quantdesk.clock.calendar import MarketCalendar
from quantdesk.engine.messages import FlattenCompleted, FlattenReport, SignalBlocked
from quantdesk.engine.pipeline import PipelineConfig, TradingPipeline
from quantdesk.execution import EventLog, OrderManager
from quantdesk.execution.order_manager import AlertHandler, BeforeSend, ExitPolicy
from quantdesk.execution.recovery import StoredFill
from quantdesk.execution.throttle import Throttler
from quantdesk.model import Account, Bar, ExitSignal, Fill, Instrument, Order, Quote, Side, Signal, Tick
from quantdesk.portfolio import Portfolio
from quantdesk.portfolio.trades import TradeBuilder, TradeRecord
from quantdesk.risk.kill_switch import TradingState
from quantdesk.risk.session import EndOfDay
from quantdesk.strategies import Strategy
from quantdesk.venues.base import Venue

# Enum members as C statics: compiled, `Side.BUY` is a call of EnumType's __getattr__ hook
# on Python 3.11 (~80 ns); see _compiled.py.
_STOP_RESTING: Final = ExitPolicy.STOP_RESTING
_BUY: Final = Side.BUY

_ZERO: Final = Decimal(0)
_DAY_NS: Final = 86_400_000_000_000
_RECONCILIATION: Final = "reconciliation"
_EXIT_REASONS: Final = {"STOP": "stop", "TP1": "target", "TP2": "target", "EXIT": "exit", "ENTRY": "entry"}


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """Engine settings: account currency, the time zone of session days, the pipeline's config."""

    account_currency: str = "USD"
    timezone: str = "UTC"
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)


class Engine:
    """Wires strategies, the trading pipeline, execution and the portfolio around one clock,
    bus and venue.

    Positions are tracked per strategy and symbol, so two strategies on one
    symbol never close each other's trades.
    """

    def __init__(
        self,
        *,
        clock: Clock,
        bus: MessageBus,
        venue: Venue,
        instruments: dict[str, Instrument],
        cash: Decimal,
        config: EngineConfig | None = None,
        event_log: EventLog | None = None,
        calendar: MarketCalendar | None = None,
        before_send: BeforeSend | None = None,
        on_alert: AlertHandler | None = None,
        throttler: Throttler | None = None,
    ) -> None:
        self.config = config or EngineConfig()
        self.clock = clock
        self.bus = bus
        self.instruments = instruments
        self.event_log = event_log or EventLog()
        self.calendar = calendar
        self.portfolio = Portfolio(instruments, Account(self.config.account_currency, cash))
        self.state = TradingState(clock.now_ns, self.config.pipeline.mode)
        self.state.subscribe(
            lambda change: self.event_log.record(
                f"state {change.action} {change.actor} {change.ts} {change.reason}"
            )
        )
        self.orders = OrderManager(
            venue,
            instruments,
            clock,
            self.event_log,
            on_fill=self._on_fill,
            on_order_update=self._on_order_update,
            before_send=before_send,
            on_alert=on_alert,
            throttler=throttler,
        )
        # Symbols with a target held by the order manager (STOP_RESTING only): a live view, empty
        # in every other case, so market data pays one truth test for it.
        self._held_targets = self.orders.held_targets
        self.pipeline = TradingPipeline(self, self.config.pipeline, calendar)
        self._strategies: list[Strategy] = []
        self._bar_handlers: dict[str, list[Callable[[Bar], None]]] = {}
        self._tick_handlers: dict[str, list[Callable[[Tick], None]]] = {}
        self._quote_handlers: dict[str, list[Callable[[Quote], None]]] = {}
        self._by_id: dict[tuple[str, str], Strategy] = {}
        self._fill_listeners: dict[tuple[str, str], Strategy] = {}
        self._order_listeners: dict[tuple[str, str], Strategy] = {}
        self._strategy_qty: dict[tuple[str, str], Decimal] = {}
        self._trade_builders: dict[tuple[str, str], TradeBuilder] = {}
        self.closed_trades: list[TradeRecord] = []
        self.last_bar: dict[str, Bar] = {}
        self._tz = ZoneInfo(self.config.timezone)
        self._session_cache: dict[int, int] = {}
        self.signals = 0
        self.malformed: dict[str, int] = {}
        self.flattens: list[FlattenReport] = []
        self._end_of_day = EndOfDay(self.config.pipeline.risk, calendar) if calendar is not None else None
        self._publish_signals = False
        self._publish_bars = False
        # (clock ts, monotonic start, actor, reason, canceled, closing) of a flatten not yet done.
        self._flatten_pending: tuple[int, int, str, str, int, int] | None = None

    # -- set-up ---------------------------------------------------------------------------------

    def add_strategy(self, strategy: Strategy) -> None:
        instrument = self.instruments.get(strategy.symbol)
        if instrument is None:
            known = ", ".join(sorted(self.instruments))
            raise KeyError(f"strategy {strategy.name}: unknown symbol {strategy.symbol!r} ({known})")
        strategy.bind(self, self.clock, instrument)
        key = (strategy.id, strategy.symbol)
        if key in self._by_id:
            raise ValueError(f"strategy {strategy.id} already trades {strategy.symbol}")
        self._by_id[key] = strategy
        self._strategies.append(strategy)
        cls = type(strategy)
        # Only callbacks a strategy overrides are dispatched: nothing is sent to nobody.
        if cls.on_bar is not Strategy.on_bar:
            self._bar_handlers.setdefault(strategy.symbol, []).append(strategy.on_bar)
        if cls.on_tick is not Strategy.on_tick:
            self._tick_handlers.setdefault(strategy.symbol, []).append(strategy.on_tick)
        if cls.on_fill is not Strategy.on_fill:
            self._fill_listeners[key] = strategy
        if cls.on_order_update is not Strategy.on_order_update:
            self._order_listeners[key] = strategy
        if cls.on_quote is not Strategy.on_quote:
            self._quote_handlers.setdefault(strategy.symbol, []).append(strategy.on_quote)

    def start(self) -> None:
        self._publish_signals = self.bus.has_subscribers(Signal)
        self._publish_bars = self.bus.has_subscribers(Bar)
        for strategy in self._strategies:
            strategy.on_start()
        self._schedule_flatten()

    def stop(self) -> None:
        self.end_cycle()
        for strategy in self._strategies:
            strategy.on_stop()

    @property
    def strategies(self) -> list[Strategy]:
        return list(self._strategies)

    # -- market data ------------------------------------------------------------------------------

    def on_bar(self, bar: Bar) -> None:
        self.last_bar[bar.symbol] = bar
        if self._held_targets and bar.symbol in self._held_targets:
            self.orders.on_price(bar.symbol, bar.high, bar.low, bar.ts_event)
        if self._publish_bars:
            self.bus.publish(bar)
        handlers = self._bar_handlers.get(bar.symbol)
        if handlers:
            for handler in handlers:
                handler(bar)

    def bar_dispatcher(self, symbol: str) -> Callable[[Bar], None]:
        """The cheapest callable doing what `on_bar` does for `symbol`; a feed calls it per bar.

        Valid until strategies or bus subscriptions change (the feed asks after `start`).
        """
        handlers = self._bar_handlers.get(symbol, [])
        if self._publish_bars or len(handlers) > 1 or self.orders.exit_policy is _STOP_RESTING:
            return self.on_bar
        last_bar = self.last_bar
        if not handlers:

            def remember(bar: Bar) -> None:
                last_bar[symbol] = bar

            return remember
        handler = handlers[0]

        def dispatch(bar: Bar) -> None:
            last_bar[symbol] = bar
            handler(bar)

        return dispatch

    def bar_handler(self, symbol: str) -> Callable[[Bar], None] | None:
        """The one strategy callback for `symbol`'s bars when nothing else needs them (no other
        strategy, no bus subscriber): a feed that also keeps `last_bar[symbol]` may call it
        directly, one call per bar instead of two. None otherwise (use `bar_dispatcher`).

        Valid until strategies or bus subscriptions change (the feed asks after `start`).
        """
        handlers = self._bar_handlers.get(symbol, [])
        if self._publish_bars or len(handlers) != 1 or self.orders.exit_policy is _STOP_RESTING:
            return None
        return handlers[0]

    def on_tick(self, tick: Tick) -> None:
        if self._held_targets and tick.symbol in self._held_targets:
            self.orders.on_price(tick.symbol, tick.price, tick.price, tick.ts_event)
        for handler in self._tick_handlers.get(tick.symbol, ()):
            handler(tick)

    def on_quote(self, quote: Quote) -> None:
        if self._held_targets and quote.symbol in self._held_targets:
            # A long's target is a sale (touched at the bid), a short's a purchase (at the ask).
            self.orders.on_price(quote.symbol, quote.bid, quote.ask, quote.ts_event)
        for handler in self._quote_handlers.get(quote.symbol, ()):
            handler(quote)

    def end_cycle(self) -> None:
        """Decide the signals of the instant just processed (a feed calls it when time moves on)."""
        if self.pipeline.pending:
            self.pipeline.end_cycle()

    # -- StrategyContext ----------------------------------------------------------------------

    def submit_signal(self, signal: Signal) -> None:
        self.signals += 1
        # `str(...)` writes what the plain field does (str of a Decimal, None or StrEnum) without
        # the much slower `__format__` of Decimal and Enum: several lines per order go through
        # here. Not `!s`: compiled, a conversion anywhere makes every field a `str.format` call.
        self.event_log.record(
            f"signal {signal.strategy} {signal.symbol} {str(signal.side)} {str(signal.entry)} "
            f"{str(signal.stop)} {','.join(map(str, signal.targets))} {str(signal.qty)} {signal.ts}"
        )
        if self._publish_signals:
            self.bus.publish(signal)
        problem = self.signal_problem(signal)
        if problem is not None:
            self._refuse(signal, *problem)
            return
        self.pipeline.on_signal(signal)

    def submit_exit(self, signal: ExitSignal) -> None:
        self.event_log.record(f"exit_signal {signal.strategy} {signal.symbol} {signal.ts} {signal.reason}")
        qty = self._strategy_qty.get((signal.strategy, signal.symbol), _ZERO)
        self.orders.exit(signal.strategy, signal.symbol, qty, signal.reason)

    def position_qty(self, strategy: str, symbol: str) -> Decimal:
        return self._strategy_qty.get((strategy, symbol), _ZERO)

    def session_key(self, ts: int) -> int:
        """The local calendar day (days since epoch in the engine's time zone) of `ts`."""
        utc_day = ts // _DAY_NS
        offset = self._session_cache.get(utc_day)
        if offset is None:
            moment = datetime.fromtimestamp(utc_day * 86_400 + 43_200, tz=self._tz)
            delta = moment.utcoffset() or timedelta(0)
            offset = int(delta.total_seconds() * 1_000_000_000)
            self._session_cache[utc_day] = offset
        return (ts + offset) // _DAY_NS

    def minutes_to_close(self, ts: int) -> float | None:
        return self.calendar.minutes_to_close(ts) if self.calendar is not None else None

    # -- control --------------------------------------------------------------------------------

    def pause(self, reason: str = "", actor: str = "system") -> None:
        """No new entries; working exits and protective stops stay managed."""
        self.state.pause(reason, actor)

    def resume(self, reason: str = "", actor: str = "system") -> None:
        self.state.resume(reason, actor)

    def flatten(self, reason: str = "flatten", actor: str = "system", *, pause: bool = True) -> FlattenReport:
        """Cancel every working order, then close every position at market. Idempotent.

        `pause` (the kill-switch flatten) also stops new entries until `resume`;
        the end-of-day flatten leaves entries to the cutoff instead.
        """
        started = monotonic_ns()
        if self._flatten_pending is not None:
            started = self._flatten_pending[1]  # a repeat continues the flatten in progress
        if pause:
            self.state.pause(reason, actor)
        issued_before = len(self.orders.orders)
        canceled = self.orders.cancel_all()
        for strategy, symbol, qty in self.open_strategy_positions():
            self.orders.exit(strategy, symbol, qty, reason)
        closing = len(self.orders.orders) - issued_before  # every order a flatten issues closes
        report = FlattenReport(canceled, closing, monotonic_ns() - started)
        self.flattens.append(report)
        self._flatten_pending = (self.clock.now_ns(), started, actor, reason, canceled, closing)
        self._check_flatten_done()
        self.event_log.record(f"flatten {actor} {self.clock.now_ns()} {canceled} {closing} {reason}")
        return report

    def _schedule_flatten(self) -> None:
        if self._end_of_day is None:
            return
        try:
            at = self._end_of_day.next_flatten(self.clock.now_ns())
        except Exception as error:  # past the calendar's range: no more sessions to flatten
            self.event_log.record(f"no_flatten_schedule {error}")
            return
        self.clock.set_alarm("end_of_day_flatten", at, self._on_flatten_alarm)

    def _on_flatten_alarm(self, event: TimeEvent) -> None:
        self.end_cycle()
        self.flatten("end of day", pause=False)
        self._schedule_flatten()

    # -- signals and fills ----------------------------------------------------------------------

    def _refuse(self, signal: Signal, kind: str, reason: str) -> None:
        self.malformed[kind] = self.malformed.get(kind, 0) + 1
        self.event_log.record(f"refused {signal.strategy} {signal.symbol} {signal.ts} {reason}")
        if self.bus.has_subscribers(SignalBlocked):
            self.bus.publish(SignalBlocked(signal, reason))

    def signal_problem(self, signal: Signal) -> tuple[str, str] | None:
        """Why a signal is malformed — its kind (what `malformed` counts) and the full sentence
        (what the log and the refusal say) — or None: an unknown symbol, a price or quantity that
        is not a positive number, a stop on the wrong side of the entry (or the last close)."""
        if signal.symbol not in self.instruments:
            return "unknown symbol", f"unknown symbol {signal.symbol}"
        for name, value in (("entry", signal.entry), ("stop", signal.stop), ("qty", signal.qty)):
            if value is not None and (not value.is_finite() or value <= _ZERO):
                return f"{name} not a positive number", f"{name} must be a positive number, got {value}"
        for target in signal.targets:
            if not target.is_finite() or target <= _ZERO:
                return "target not a positive number", f"target must be a positive number, got {target}"
        if signal.stop is None:
            return None
        reference = signal.entry
        if reference is None:
            last = self.last_bar.get(signal.symbol)
            reference = Decimal(repr(last.close)) if last is not None else None
        if reference is not None:
            wrong = signal.stop >= reference if signal.side.sign > 0 else signal.stop <= reference
            if wrong:
                text = f"stop {signal.stop} is on the wrong side of entry {reference}"
                return "stop on the wrong side", text
        return None

    def _on_fill(self, order: Order, fill: Fill) -> None:
        key = self._book(self.orders.strategy_of(order.client_order_id), order.tag, fill)
        strategy = self._fill_listeners.get(key)
        if strategy is not None:
            strategy.on_fill(order, fill)
        self.bus.publish(fill)  # one lookup, and nothing sent when nobody subscribed

    def _book(self, strategy_id: str, tag: str, fill: Fill) -> tuple[str, str]:
        """A fill into the portfolio, the strategy's quantity and its trades; returns the key."""
        self.portfolio.apply_fill(fill)
        key = (strategy_id, fill.symbol)
        signed = fill.qty if fill.side is _BUY else -fill.qty  # Fill.signed_qty, without the call
        self._strategy_qty[key] = self._strategy_qty.get(key, _ZERO) + signed
        builder = self._trade_builders.get(key)
        if builder is None:
            multiplier = self.instruments[fill.symbol].multiplier
            builder = self._trade_builders[key] = TradeBuilder(strategy_id, fill.symbol, multiplier)
        closed = builder.add(fill, _EXIT_REASONS.get(tag) or tag.lower())
        if closed is not None:
            self.closed_trades.append(closed)
        return key

    # -- recovery -------------------------------------------------------------------------------

    def restore(self, fills: Iterable[StoredFill]) -> int:
        """Book the store's fills again, in booking order: cash, positions and P&L, each strategy's
        quantity, and its trades (open ones go on, closed ones count for the protections).

        For an engine built fresh after a restart, before `Reconciler.recover` and `start`:
        nothing is published, no strategy is called, nothing is sent. Returns how many fills.

        Each session day begins, for the daily-loss cap, at the equity before its first fill
        (positions marked at their last fill price): a restart mid-session keeps the day's
        losses counted."""
        count = 0
        day = -1
        last_price: dict[str, Decimal] = {}
        for stored in fills:
            fill = stored.fill
            fill_day = self.session_key(fill.ts_event)
            if fill_day != day:
                day = fill_day
                self.pipeline.begin_day(day, self.portfolio.equity(last_price))
            self._book(stored.strategy, stored.tag, fill)
            last_price[fill.symbol] = fill.price
            count += 1
        self.event_log.record(f"restored {count} fills")
        return count

    def schedule_reconciliation(self, interval_seconds: float, reconcile: Callable[[], object]) -> None:
        """Call `reconcile` every `interval_seconds` of clock time (the node passes
        `Reconciler.reconcile`); scheduling again replaces the previous timer."""
        interval_ns = int(interval_seconds * 1_000_000_000)
        self.clock.cancel(_RECONCILIATION)

        def on_timer(_event: TimeEvent) -> None:
            reconcile()

        self.clock.set_timer(_RECONCILIATION, interval_ns, on_timer)

    def _check_flatten_done(self) -> None:
        pending = self._flatten_pending
        if pending is None or self.open_strategy_positions() or self.orders.working_orders():
            return
        self._flatten_pending = None
        ts, started, actor, reason, canceled, closing = pending
        done = FlattenCompleted(ts, actor, reason, canceled, closing, monotonic_ns() - started)
        self.event_log.record(f"flatten_done {ts} {canceled} {closing}")
        if self.bus.has_subscribers(FlattenCompleted):
            self.bus.publish(done)

    def _on_order_update(self, order: Order) -> None:
        if self._flatten_pending is not None:
            self._check_flatten_done()
        if self._order_listeners:
            key = (self.orders.strategy_of(order.client_order_id), order.symbol)
            strategy = self._order_listeners.get(key)
            if strategy is not None:
                strategy.on_order_update(order)
        if self.bus.has_subscribers(Order):
            self.bus.publish(order)

    def marks(self, symbols: Iterable[str] | None = None) -> dict[str, Decimal]:
        """The last close of `symbols` (default: every symbol seen) as exact prices."""
        last_bar = self.last_bar
        wanted = last_bar if symbols is None else [s for s in symbols if s in last_bar]
        return {
            symbol: self.instruments[symbol].price_from_float(last_bar[symbol].close) for symbol in wanted
        }

    def open_strategy_positions(self) -> list[tuple[str, str, Decimal]]:
        return [(s, sym, q) for (s, sym), q in self._strategy_qty.items() if q != _ZERO]

    def trade_builders(self) -> dict[tuple[str, str], TradeBuilder]:
        return dict(self._trade_builders)
