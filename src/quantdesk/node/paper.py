"""The composition root of a paper node: builds every part, starts them in order, stops them in reverse."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import asdict, dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Any

import structlog
import uvicorn
from fastapi import FastAPI

from quantdesk.bus import MessageBus
from quantdesk.clock import PacedClock, monotonic_ns
from quantdesk.clock.calendar import MarketCalendar
from quantdesk.config import TradingConfig, load_config
from quantdesk.data.instruments import instrument_for
from quantdesk.data.samples import resolve_data
from quantdesk.data.series import BarSeries
from quantdesk.data.synthetic import synthetic_intraday
from quantdesk.engine import Engine, EngineConfig
from quantdesk.engine.pipeline import PipelineConfig
from quantdesk.engine.runtime import cpus_besides, is_spinning, pin_this_thread, tune_gc_for_trading
from quantdesk.errors import ConfigError, FatalError, UserError
from quantdesk.execution.order_manager import ExitPolicy
from quantdesk.execution.recovery import Reconciler, RecoveryReport
from quantdesk.execution.throttle import ALPACA_LIMITS, KITE_LIMITS, Throttler
from quantdesk.execution.tracker import OrderTracker
from quantdesk.model import Instrument, OrderType, Tick
from quantdesk.node.config import NodeConfig
from quantdesk.node.feed import ReplayFeed, closed_hours_on, iso_utc, session_close_on, sleep_unless
from quantdesk.risk.config import RiskConfig, SizingConfig
from quantdesk.risk.messages import Mode
from quantdesk.service import EngineControl, create_app, resolve_token
from quantdesk.service.redis_events import RedisEventPublisher
from quantdesk.store.audit import record_config
from quantdesk.store.database import connect, database_url, safe_url, session_factory, upgrade
from quantdesk.store.recovery import load_stored_state, stored_client_ids, stored_pause
from quantdesk.store.writer import StoreWriter
from quantdesk.store.writer_process import ProcessStoreWriter
from quantdesk.strategies import get_strategy
from quantdesk.telemetry import (
    AlertConfig,
    Alerter,
    AlertRules,
    OrderLogger,
    TraderMetrics,
    configure_logging,
)
from quantdesk.venues.sim import SimulatedExchange
from quantdesk.venues.sim.persistent import PersistentExchange

log = structlog.get_logger("quantdesk.node")

# Orders held back by the rate limits within one reconciliation interval that make an alert.
SUSTAINED_THROTTLE_WAITS = 10
# Protective orders still go out while the store is down (their outbox rows are buffered):
# a dead database must never leave a position without its stop or its exit.
_SEND_WHEN_STORE_DOWN = frozenset({"STOP", "TP1", "TP2", "EXIT"})
# The order watcher's period at most: alarms between bars, the writer's pump, reconciliation.
WATCH_PERIOD_S = 0.1
WATCH_PERIOD_NS = int(WATCH_PERIOD_S * 1e9)
# Turns of the loop the writer's pump gives away between two chunks. A bar due during a chunk
# is the feed's two turns later (`sleep_unless`'s timer, then the feed's task), and asyncio runs
# a turn's callbacks in the order they came, the pump's first: with one turn given away, two more
# chunks went before the bar; with three, it waits only for the chunk under way.
PUMP_YIELDS = 3


async def pump_writer(writer: StoreWriter) -> bool:
    """Records to the writer process, one chunk at a time (a feed event due goes in between,
    after the chunk under way), for one watch period at most: a writer that has stopped reading
    must not keep the alarms and the reconciliation waiting. Returns whether there is more to ship."""
    until = monotonic_ns() + WATCH_PERIOD_NS
    while writer.pump():
        if monotonic_ns() >= until:
            return True
        if writer.pump_wait_s:
            await asyncio.sleep(writer.pump_wait_s)
        for _ in range(PUMP_YIELDS):
            await asyncio.sleep(0)
    return False


@dataclass
class _Step:
    """One shutdown step: its log line and what it does."""

    message: str
    run: Callable[[], Any]


@dataclass
class NodeParts:
    """What the composition root built, for the API, tests and shutdown."""

    clock: PacedClock
    engine: Engine
    venue: SimulatedExchange | PersistentExchange
    feed: ReplayFeed
    writer: StoreWriter
    db_url: str
    trading: TradingConfig
    data_label: str
    metrics: TraderMetrics
    alerter: Alerter
    alerts: AlertRules
    app: FastAPI
    token: str
    redis: RedisEventPublisher | None
    recovery: RecoveryReport | None
    reconciler: Reconciler
    throttler: Throttler


def load_series(config: NodeConfig) -> tuple[dict[str, BarSeries], str]:
    """The bars to replay and how to describe them (a file, a sample, or seeded synthetic sessions)."""
    if config.data is not None:
        series = resolve_data(config.data)
        if not series:
            raise UserError(f"{config.data}: no bars to replay")
        return series, config.data
    series = {
        symbol: synthetic_intraday(
            symbol, days=config.days, start=config.start, exchange=_exchange(config), seed=7 + i
        )
        for i, symbol in enumerate(config.symbols)
    }
    return series, f"SYNTHETIC intraday bars of {', '.join(config.symbols)} from {config.start}"


def _exchange(config: NodeConfig) -> Any:
    return "XNSE" if config.calendar in {"XNSE", "XBOM"} else "XNYS"


def build(config: NodeConfig) -> NodeParts:
    """Build and wire every part of a paper node; touches the store (migrates it) but sends nothing."""
    strategy_class = get_strategy(config.strategy)
    strategy_class.parse_params(config.params)  # a bad parameter fails before any I/O
    # The same for a CPU the engine cannot have: the writer process needs the others.
    helper_cpus = cpus_besides(config.engine_cpu) if config.engine_cpu is not None else None
    trading = load_config(config.config_file) if config.config_file else default_trading_config(config.cash)
    series, label = load_series(config)

    url = database_url(config.db_url, data_dir=config.var_dir)
    if url.startswith("sqlite:///"):
        config.var_dir.mkdir(parents=True, exist_ok=True)
    db = connect(url)  # StoreUnavailable here: a clear error, nothing started
    logging.getLogger("alembic").setLevel(logging.WARNING)  # one line per migration step is noise
    upgrade(url)
    log.info("store_ready", url=safe_url(url))

    calendar = MarketCalendar(config.calendar)
    instruments: dict[str, Instrument] = {
        symbol: instrument_for(
            symbol, price_decimals=s.price_decimals, exchange=config.calendar, currency=config.currency
        )
        for symbol, s in series.items()
    }
    first_ts = min(int(s.ts[0]) for s in series.values() if len(s))
    clock = PacedClock(first_ts, speed=config.speed, running=False)  # the replay starts it
    if record_config(
        session_factory(db),
        sha=trading.sha256(),
        config=trading.model_dump(mode="json"),
        ts=clock.now_ns(),
        actor="node",
    ):
        log.info("config_recorded", config_sha=trading.sha256()[:12])
    exchange = SimulatedExchange(
        instruments,
        cash=config.cash,
        currency=config.currency,
        is_open=calendar.is_open,
        clock_ns=clock.now_ns,
    )
    venue: SimulatedExchange | PersistentExchange = exchange
    resume_after: int | None = None
    if config.venue_state is not None:
        venue = PersistentExchange(exchange, config.venue_state)
        if venue.restored and venue.last_ts is not None:
            resume_after = venue.last_ts
            clock.start_ns = venue.last_ts
            log.info("venue_state_restored", path=str(config.venue_state), resume_after=venue.last_ts)
    throttler = Throttler(
        KITE_LIMITS if config.calendar in {"XNSE", "XBOM"} else ALPACA_LIMITS, clock_ns=clock.now_ns
    )
    paused_by_store: list[Engine] = []  # the engine, once built: the writer is built first

    def pause_entries() -> None:
        for engine in paused_by_store:
            engine.pause("store buffer full", "store")

    alerter = Alerter(AlertConfig(urls=config.alert_urls))
    writer_options: dict[str, Any] = {
        "mode": Mode.PAPER,
        "config_sha": trading.sha256(),
        "send_when_down": _SEND_WHEN_STORE_DOWN,
        "max_buffer": config.store_max_buffer,
        # Past its bound the buffer would start losing the audit trail: stop new entries instead.
        "on_overflow": pause_entries,
        "on_alert": alerter.callback(),
    }
    writer = (
        # The store's work in a process of its own, off the engine's GIL (a core to spare).
        ProcessStoreWriter(session_factory(db), url, cpus=helper_cpus, **writer_options)
        if config.store_writer == "process"
        else StoreWriter(session_factory(db), **writer_options)
    )
    engine = Engine(
        clock=clock,
        bus=MessageBus(),
        venue=venue,
        instruments=instruments,
        cash=config.cash,
        config=EngineConfig(
            account_currency=config.currency,
            timezone=calendar.tz,
            pipeline=PipelineConfig(
                risk=trading.risk,
                ranking=trading.ranking,
                protections=trading.protections,
                mode=Mode.PAPER,
                config_sha=trading.sha256(),
            ),
        ),
        calendar=calendar,
        before_send=writer.persist_before_send,
        on_alert=alerter.callback(),  # refused stops, overfills, orphans, shadows: to the operator
        # The broker's own rate limits, so a paper day shows what live would be allowed to send.
        throttler=throttler,
    )
    paused_by_store.append(engine)
    engine.orders.exit_policy = ExitPolicy(config.exit_policy)
    venue.set_price_source(engine.last_bar)
    for symbol in series:
        engine.add_strategy(strategy_class(symbol, **config.params))
    writer.attach(engine)
    recovery = None
    # Its alerts join the order manager's: the event log, the metrics and the operator's channels.
    reconciler = Reconciler(venue, engine, trading.recovery, on_alert=engine.orders.alert)
    if isinstance(venue, PersistentExchange) and venue.restored:
        # The same account as before the restart: take back what the store knew, reconcile.
        stored = load_stored_state(session_factory(db), since_ts=venue.created_ts)
        engine.restore(stored.fills)
        paused = stored_pause(session_factory(db))
        if paused is not None:
            engine.pause(f"restored: {paused}", "recovery")  # a kill switch outlives a crash
        recovery = reconciler.recover(stored)
        log.info("recovered", **recovery.to_dict())
    else:
        # A new paper account: nothing of the store's belongs to it but the ids already spent.
        engine.orders.ids.preload(stored_client_ids(session_factory(db)))
    metrics = TraderMetrics()
    metrics.attach(engine, writer=writer, throttler=throttler)
    OrderLogger.attach(engine)
    alerts = AlertRules.attach(engine, alerter)
    feed = ReplayFeed(
        engine,
        venue,
        clock,
        series,
        after_ts=resume_after,
        on_cycle=lambda _made, elapsed_ns: metrics.observe_tick_to_decision_ms(elapsed_ns / 1e6),
        behind_limit_s=trading.risk.max_data_age_seconds,
        on_behind=lambda message: alerter.callback()("replay_behind_clock", message),
        skip_closed=closed_hours_on(calendar) if config.skip_closed else None,
        session_close=session_close_on(calendar),
    )
    publisher = None
    if config.redis_url:
        publisher = RedisEventPublisher(
            config.redis_url, on_disconnect=lambda reason: alerts.stream_disconnected("redis", reason)
        )
        publisher.attach(engine)  # trading never waits on it: events queue while Redis is away
    token = resolve_token(config.api_token, config.token_path)
    holder: list[NodeParts] = []
    control = EngineControl(
        engine,
        writer=writer,
        after_flatten=lambda: [fill_closing_orders_at_last_price(p) for p in holder],
        extra_status=lambda: node_status(holder[0]),
        throttler=throttler,
    )
    app = create_app(control, token=token, metrics=metrics.render)
    parts = NodeParts(
        clock,
        engine,
        venue,
        feed,
        writer,
        url,
        trading,
        label,
        metrics,
        alerter,
        alerts,
        app,
        token,
        publisher,
        recovery,
        reconciler,
        throttler,
    )
    holder.append(parts)
    return parts


def node_status(parts: NodeParts) -> dict[str, Any]:
    """The node's own figures for /status: the replay stream, the alerter, the data, the order
    tracker with the last reconciliation, and the instruments traded (their symbol properties)."""
    feed = parts.feed.stats()
    alerts = parts.alerter.stats()
    last = parts.reconciler.last_report
    return {
        "order_tracker": {
            **asdict(OrderTracker(parts.engine.orders.orders).stats()),
            "last_reconciliation": None if last is None else last.to_dict(),
        },
        "instruments": {
            symbol: {
                "exchange": i.exchange,
                "currency": i.currency,
                "tick_size": str(i.tick_size),
                "lot_size": str(i.lot_size),
                "min_qty": str(i.min_qty),
                "max_qty": None if i.max_qty is None else str(i.max_qty),
                "source": i.source,
            }
            for symbol, i in sorted(parts.engine.instruments.items())
        },
        "replay": {
            "state": feed.state,
            "delivered": feed.delivered,
            "total": feed.total,
            "last_bar": None if feed.last_ts is None else iso_utc(feed.last_ts),
            "speed": parts.clock.speed,
            "behind_s": round(feed.lag_s, 3),
            "skipped_closed_s": round(feed.skipped_s, 3),
            "clock_held_at": None if feed.held_at is None else iso_utc(feed.held_at),
            "data": parts.data_label,
        },
        "alerts": asdict(alerts),
        "redis": None if parts.redis is None else asdict(parts.redis.stats()),
        "store_url": safe_url(parts.db_url),
        "recovery": None if parts.recovery is None else parts.recovery.to_dict(),
    }


def default_trading_config(cash: Decimal) -> TradingConfig:
    """Paper defaults: `RiskConfig`'s limits and risk-based sizing, with each position's notional
    capped at an equal share of the starting cash, so a tight stop never buys leverage."""
    risk = RiskConfig()
    share = (cash / risk.max_open_positions).quantize(Decimal(1), rounding=ROUND_DOWN)
    return TradingConfig(risk=RiskConfig(sizing=SizingConfig(mode="risk", max_notional=share)))


def fill_closing_orders_at_last_price(parts: NodeParts) -> int:
    """Paper fills a flatten's market orders at each symbol's last price at once, as a paper
    broker does, instead of waiting for the next bar; returns how many symbols it priced."""
    engine, venue = parts.engine, parts.venue
    now = parts.clock.now_ns()
    symbols = {o.symbol for o in engine.orders.working_orders() if o.order_type is OrderType.MARKET}
    priced = 0
    for symbol in sorted(symbols):
        last = engine.last_bar.get(symbol)
        if last is not None:
            venue.on_tick(Tick(symbol, now, last.close, 0.0, now))
            priced += 1
    return priced


class NodeFailed(FatalError):
    """A task of the running node (the replay feed, the order watcher) failed: the node stopped."""


class PaperNode:
    """A paper-trading node: replay -> engine -> simulated venue, with the store and the API.

    `run()` starts the parts in dependency order and, when asked to stop
    (SIGINT/SIGTERM or `request_stop`), stops them in reverse: pause, flatten
    if configured, stop the feed, stop the order watcher, flush the store — one
    log line per step.
    """

    def __init__(
        self,
        config: NodeConfig,
        *,
        on_built: Callable[[NodeParts], None] | None = None,
        on_started: Callable[[PaperNode], None] | None = None,
    ) -> None:
        """`on_built` sees the wired parts before anything starts (extra subscribers, test probes);
        `on_started` is called once everything runs (the command line prints the address there)."""
        self.config = config
        self._on_built = on_built
        self._on_started = on_started
        self.parts: NodeParts | None = None
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        # "<task>: <error>" once one of the node's tasks failed; `run` raises NodeFailed with it.
        self.failure = ""
        self.started = asyncio.Event()
        self.api: _ApiServer | None = None
        self.reconciliations = 0
        self.api_url = ""
        # The CPUs the event loop's thread could use before `engine_cpu` pinned it (restored at the end).
        self._cpus_before: set[int] | None = None

    def request_stop(self) -> None:
        self._stop.set()

    def _check_spin(self) -> None:
        """`engine_spin` needs a CPU of the engine's own and a loop that polls: refused before
        anything is built otherwise (a loop that polls beside other threads takes their CPU)."""
        if not self.config.engine_spin:
            return
        if self.config.engine_cpu is None:
            raise ConfigError(
                "engine_spin needs engine_cpu: a loop that never sleeps must have a CPU to itself"
            )
        if not is_spinning(asyncio.get_running_loop()):
            raise ConfigError(
                "engine_spin: this event loop sleeps; run the node with "
                "asyncio.Runner(loop_factory=quantdesk.engine.runtime.spinning_event_loop)"
            )

    def _bound_port(self) -> int:
        """The port the API got (the configured one, or the one the OS chose for port 0)."""
        for server in self.api.servers if self.api is not None else []:
            for sock in server.sockets:
                return int(sock.getsockname()[1])
        return self.config.port

    async def run(self, *, handle_signals: bool = True, configure_logs: bool = True) -> None:
        """Run until asked to stop. `configure_logs` installs the process-wide log sinks (JSON lines
        in `var_dir/logs`, readable lines on stderr); embedders with their own logging pass False."""
        sinks = configure_logging(json_path=self.config.log_path) if configure_logs else None
        try:
            await self._run(handle_signals)
        finally:
            if self._cpus_before is not None:
                os.sched_setaffinity(0, self._cpus_before)  # an embedder's thread gets its CPUs back
                self._cpus_before = None
            if sinks is not None:
                sinks.close()

    async def _run(self, handle_signals: bool) -> None:
        self._check_spin()
        parts = self.parts = build(self.config)
        if self._on_built is not None:
            self._on_built(parts)
        loop = asyncio.get_running_loop()
        if handle_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self.request_stop)
        parts.engine.start()
        tune_gc_for_trading()  # after start-up built everything: collections skip it from here on
        parts.writer.start_background(self.config.store_flush_interval_s)
        if self.config.engine_cpu is not None:
            # After the writer's threads started: they keep every CPU; the loop's thread takes one.
            self._cpus_before = pin_this_thread(self.config.engine_cpu)
            log.info(
                "engine_pinned",
                cpu=self.config.engine_cpu,
                others=sorted(self._cpus_before - {self.config.engine_cpu}),
                spinning=self.config.engine_spin,
            )
        log.info(
            "node_started",
            mode="PAPER",
            data=parts.data_label,
            speed=self.config.speed,
            config_sha=parts.trading.sha256()[:12],
        )
        self.api = _ApiServer(
            uvicorn.Config(
                parts.app,
                host=self.config.host,
                port=self.config.port,
                log_config=None,
                access_log=False,
                lifespan="off",
            )
        )
        api_task = asyncio.create_task(self.api.serve(), name="api")
        while not self.api.started:
            if api_task.done():  # the port is taken, or the address is wrong
                await self._shutdown(parts)
                raise UserError(f"the API cannot listen on {self.config.host}:{self.config.port}")
            await asyncio.sleep(0.01)
        self.api_url = f"http://{self.config.host}:{self._bound_port()}"
        log.info("api_listening", url=self.api_url, token_file=str(self.config.token_path))
        self._tasks = [
            api_task,
            asyncio.create_task(self._guarded("replay", parts, self._replay(parts)), name="replay"),
            asyncio.create_task(
                self._guarded("order-watcher", parts, self._watch(parts)), name="order-watcher"
            ),
        ]
        self.started.set()
        if self._on_started is not None:
            self._on_started(self)
        try:
            await self._stop.wait()
        finally:
            await self._shutdown(parts)
        if self.failure:
            raise NodeFailed(f"the node stopped on an error in its {self.failure}")

    async def _guarded(self, name: str, parts: NodeParts, work: Coroutine[Any, Any, None]) -> None:
        """Run one of the node's tasks. If it fails, the error is logged with its traceback, alerted,
        and the node stops (its shutdown pauses and flattens): a feed or watcher that died must not
        leave a node that looks alive while nothing manages its positions."""
        try:
            await work
        except Exception as error:
            self.failure = f"{name}: {type(error).__name__}: {error}"
            log.exception("task_failed", task=name, error=str(error))
            parts.alerter.callback()("task_failed", self.failure)
            self.request_stop()

    async def _replay(self, parts: NodeParts) -> None:
        await parts.feed.run(self._stop)
        if parts.feed.state == "finished":
            log.info("replay_finished", bars=parts.feed.delivered)
            if self.config.exit_at_end:
                self.request_stop()
            else:
                await parts.feed.hold_at_close(self._stop)

    async def _watch(self, parts: NodeParts) -> None:
        """Alarms between bars, lookups of orders whose outcome is unknown, and every
        `reconcile_interval_s` a check against the venue (orphans, shadows, missed fills)."""
        next_check = monotonic_ns()
        waits_before = 0
        while not self._stop.is_set():
            parts.clock.fire_due()
            parts.engine.orders.resolve_unknown()
            more = await self._pump_writer(parts.writer)
            if monotonic_ns() >= next_check:
                next_check = monotonic_ns() + int(self.config.reconcile_interval_s * 1e9)
                found = parts.reconciler.reconcile()
                self.reconciliations += 1
                waits = parts.throttler.stats().waits
                if waits - waits_before >= SUSTAINED_THROTTLE_WAITS:
                    parts.alerts.throttling_sustained(
                        f"{waits - waits_before} orders waited for a rate-limit slot in "
                        f"{self.config.reconcile_interval_s:g} s"
                    )
                waits_before = waits
                if not found.in_sync:
                    log.warning("reconciliation", **found.to_dict())
            await sleep_unless(self._stop, 0.0 if more else min(self.config.watch_interval_s, WATCH_PERIOD_S))

    async def _pump_writer(self, writer: StoreWriter) -> bool:
        return await pump_writer(writer)

    async def _shutdown(self, parts: NodeParts) -> None:
        engine = parts.engine
        steps = [_Step("Trading PAUSED", lambda: engine.pause("shutdown", "node"))]
        if self.config.flatten_on_stop:
            steps.append(_Step("Positions flattened", lambda: self._flatten(parts)))
        steps += [
            _Step("Replay feed stopped", lambda: self._cancel("replay")),
            _Step("API stopped", self._stop_api),
            _Step("OrderWatcher stopped", lambda: self._cancel("order-watcher")),
            _Step("Engine stopped", engine.stop),
            _Step("Store flushed", parts.writer.stop),
            _Step("Alerter stopped", lambda: parts.alerter.close(5.0)),
        ]
        if parts.redis is not None:
            steps.append(_Step("Redis bus disconnected", parts.redis.close))
        for step in steps:
            try:
                result = step.run()
                if asyncio.iscoroutine(result):
                    result = await result
                log.info(step.message, result=result if isinstance(result, int | str | bool) else None)
            except Exception as error:  # one failed step must not leave the rest undone
                log.error(f"{step.message} failed", error=str(error))
        log.info("Node stopped")

    def _flatten(self, parts: NodeParts) -> str:
        if not (parts.engine.open_strategy_positions() or parts.engine.orders.working_orders()):
            return "nothing open"
        report = parts.engine.flatten("shutdown", "node")
        fill_closing_orders_at_last_price(parts)
        left = len(parts.engine.open_strategy_positions())
        return f"{report.canceled} cancelled, {report.closing_orders} closing, {left} left open"

    async def _stop_api(self) -> str:
        if self.api is not None:
            self.api.should_exit = True
        for task in self._tasks:
            if task.get_name() == "api":
                await asyncio.wait_for(task, timeout=5.0)
        return self.api_url

    async def _cancel(self, name: str) -> str:
        for task in self._tasks:
            if task.get_name() == name and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        return name


class _ApiServer(uvicorn.Server):
    """uvicorn on the node's loop; the node, not uvicorn, handles SIGINT/SIGTERM and the stop order."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def equity(parts: NodeParts) -> Decimal:
    """Cash plus open positions at the last prices."""
    return parts.engine.portfolio.equity(parts.engine.marks())
