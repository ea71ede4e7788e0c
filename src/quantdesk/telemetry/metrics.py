"""Prometheus metrics of a trading engine (`trader_*`), in a registry of their own."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from quantdesk.engine.messages import DecisionRecord, SignalBlocked
from quantdesk.execution.client_ids import Leg
from quantdesk.model import Order, OrderStatus, Signal
from quantdesk.risk.gate import position_risk  # the gate's own heat formula, not a copy of it
from quantdesk.risk.messages import BlockReason, OpenPositionView

if TYPE_CHECKING:
    from quantdesk.engine import Engine
    from quantdesk.execution.throttle import Throttler
    from quantdesk.store.writer import StoreWriter

log = structlog.get_logger(__name__)

T = TypeVar("T")
_ZERO = Decimal(0)
_NANOS_PER_MS = 1_000_000
_MALFORMED = "MALFORMED_SIGNAL"
_CHILD_TAGS = frozenset({Leg.STOP.value, Leg.TP1.value, Leg.TP2.value})
# The statuses that prove the venue has the order: it took it (or already filled or triggered it).
_ACKNOWLEDGED = frozenset(
    {OrderStatus.ACCEPTED, OrderStatus.TRIGGERED, OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED}
)
# Ended orders remembered so a late duplicate update is not counted again; bounded, oldest forgotten.
_FINISHED_KEPT = 10_000
TICK_TO_DECISION_BUCKETS_MS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0)
ORDER_LATENCY_BUCKETS_MS = (
    0.1,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    25.0,
    50.0,
    100.0,
    250.0,
    500.0,
    1000.0,
    2500.0,
    5000.0,
)


class TraderMetrics:
    """The engine's `trader_*` metrics, rendered as Prometheus text by `render()`.

    Counters and histograms move with the engine's events (O(1) handlers that
    never raise: a failure is logged and counted in `trader_telemetry_errors_total`).
    Point-in-time values — open positions, portfolio heat, today's P&L, active
    protections, throttler waits, store queue depth — are read from the engine
    when scraped, never on the hot path. `render()` therefore reads engine state,
    which is single-threaded: call it on the engine's thread, as every API read
    of the engine must be (an ``async def`` route on the node's event loop). A
    read that fails is left out of that scrape, logged and counted.

    The node measures what the engine cannot see: `observe_tick_to_decision_ms`,
    `stream_reconnected`, `retried`.
    """

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.signals = Counter("trader_signals_total", "Signals emitted by strategies.", registry=r)
        self.decisions = Counter(
            "trader_decisions_total", "Pipeline decisions, by result.", ["result"], registry=r
        )
        self.orders_placed = Counter(
            "trader_orders_placed_total", "Orders the venue acknowledged (accepted or filled).", registry=r
        )
        self.orders_filled = Counter("trader_orders_filled_total", "Orders completely filled.", registry=r)
        self.oco_children = Counter(
            "trader_oco_children_created_total", "Protective stops and targets created.", registry=r
        )
        self.risk_blocks = Counter(
            "trader_risk_blocks_total",
            "Refused entries, by reason (a decision with several reasons counts under each).",
            ["reason"],
            registry=r,
        )
        self.stream_reconnects = Counter(
            "trader_stream_reconnects_total", "Reconnections of a market or order stream.", registry=r
        )
        self.errors = Counter(
            "trader_telemetry_errors_total", "Failures inside telemetry (logged, never raised).", registry=r
        )
        self.tick_to_decision = Histogram(
            "trader_tick_to_decision_ms",
            "From a market event's arrival to the decisions it caused, in milliseconds.",
            buckets=TICK_TO_DECISION_BUCKETS_MS,
            registry=r,
        )
        self.order_latency = Histogram(
            "trader_order_latency_ms",
            "From an order's creation to the venue's acknowledgement, in clock milliseconds.",
            buckets=ORDER_LATENCY_BUCKETS_MS,
            registry=r,
        )
        # Every series exists from the start (a dashboard shows 0, not "no data"), and the
        # handlers use these children directly instead of looking labels up per event.
        self._approved = self.decisions.labels("approved")
        self._blocked = self.decisions.labels("blocked")
        self._blocks = {str(reason): self.risk_blocks.labels(reason) for reason in [*BlockReason, _MALFORMED]}
        self._retries = 0
        self._lock = threading.Lock()
        # client order id -> acknowledged yet, for orders seen and not yet ended.
        self._live: dict[str, bool] = {}
        self._finished: set[str] = set()
        self._finished_order: deque[str] = deque()
        self._engine: Engine | None = None

    # -- wiring ---------------------------------------------------------------------------------

    def attach(
        self, engine: Engine, *, writer: StoreWriter | None = None, throttler: Throttler | None = None
    ) -> None:
        """Count `engine`'s events and read its state at scrape time.

        Call it before `engine.start()`: the engine publishes signals only to
        subscribers present at start. `writer` adds the store's queue depth and its
        retried writes; `throttler` (the one the order manager uses) its waits.
        """
        if self._engine is not None:
            raise RuntimeError("these metrics are already attached to an engine")
        self._engine = engine
        engine.bus.subscribe(Signal, self._on_signal)
        engine.bus.subscribe(SignalBlocked, self._on_refused)
        engine.bus.subscribe(Order, self._on_order)
        engine.pipeline.subscribe(self._on_decision)
        self.registry.register(_StateCollector(self, engine, writer, throttler))

    # -- what the node measures -----------------------------------------------------------------

    def observe_tick_to_decision_ms(self, ms: float) -> None:
        self._guard(self.tick_to_decision.observe, ms)

    def stream_reconnected(self) -> None:
        self._guard(self.stream_reconnects.inc)

    def retried(self) -> None:
        """One more retry of a failed venue or broker call (the store's retries are read from it)."""
        with self._lock:
            self._retries += 1

    def render(self) -> bytes:
        """The exposition text of every metric (serve with `content_type`)."""
        return generate_latest(self.registry)

    # -- event handlers (the engine's thread; O(1), never raise) --------------------------------

    def _on_signal(self, signal: Signal) -> None:
        self._guard(self.signals.inc)

    def _on_refused(self, blocked: SignalBlocked) -> None:
        self._guard(self._blocks[_MALFORMED].inc)

    def _on_decision(self, record: DecisionRecord) -> None:
        try:
            if record.approved:
                self._approved.inc()
                return
            self._blocked.inc()
            for reason in record.reasons:
                counter = self._blocks.get(reason)
                if counter is None:
                    counter = self._blocks[reason] = self.risk_blocks.labels(reason)
                counter.inc()
        except Exception:
            self._failed("decision")

    def _on_order(self, order: Order) -> None:
        try:
            self._count_order(order)
        except Exception:
            self._failed("order")

    def _count_order(self, order: Order) -> None:
        client_order_id, status = order.client_order_id, order.status
        acknowledged = self._live.get(client_order_id)
        if acknowledged is None:
            if client_order_id in self._finished:
                return  # a late update of an order that ended: counted already
            if order.tag in _CHILD_TAGS:
                self.oco_children.inc()
            acknowledged = False
        if not acknowledged and status in _ACKNOWLEDGED:
            acknowledged = True
            self.orders_placed.inc()
            latency_ns = max(0, (order.ts_last or order.ts_created) - order.ts_created)
            self.order_latency.observe(latency_ns / _NANOS_PER_MS)
        if status is OrderStatus.FILLED:
            self.orders_filled.inc()
        if status.is_terminal:
            self._live.pop(client_order_id, None)
            self._remember_finished(client_order_id)
        else:
            self._live[client_order_id] = acknowledged

    def _remember_finished(self, client_order_id: str) -> None:
        self._finished.add(client_order_id)
        self._finished_order.append(client_order_id)
        if len(self._finished_order) > _FINISHED_KEPT:
            self._finished.discard(self._finished_order.popleft())

    def _retries_reported(self) -> int:
        with self._lock:
            return self._retries

    def _guard(self, action: Callable[..., None], *args: Any) -> None:
        try:
            action(*args)
        except Exception:
            self._failed(getattr(action, "__name__", "metric"))

    def _failed(self, where: str, error: BaseException | None = None) -> None:
        try:
            self.errors.inc()
            log.error("metrics_failed", where=where, exc_info=error or True)
        except Exception:  # logging itself broke: nothing left to tell, and nothing may raise
            pass


class _StateCollector(Collector):
    """The point-in-time `trader_*` values, read from the engine when Prometheus scrapes."""

    def __init__(
        self,
        metrics: TraderMetrics,
        engine: Engine,
        writer: StoreWriter | None,
        throttler: Throttler | None,
    ) -> None:
        self._metrics = metrics
        self._engine = engine
        self._writer = writer
        self._throttler = throttler

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        engine = self._engine
        currency = engine.config.account_currency
        positions = self._read("positions", lambda: len(engine.open_strategy_positions()))
        if positions is not None:
            yield GaugeMetricFamily(
                "trader_positions_open", "Open positions (per strategy and symbol).", value=positions
            )
        risk = self._read("risk", lambda: risk_figures(engine))
        if risk is not None:
            heat = GaugeMetricFamily(
                "trader_portfolio_heat",
                "Loss if every open position is stopped out, as the risk gate counts it.",
                labels=["currency"],
            )
            heat.add_metric([currency], float(risk[0]))
            yield heat
            pnl = GaugeMetricFamily(
                "trader_daily_pnl",
                "Today's P&L (realised after fees, plus unrealised), as the risk gate counts it.",
                labels=["currency"],
            )
            pnl.add_metric([currency], float(risk[1]))
            yield pnl
        locks = self._read("protections", lambda: _active_protections(engine))
        if locks is not None:
            yield GaugeMetricFamily("trader_protections_active", "Protection locks in force.", value=locks)
        waits = self._read("throttler", lambda: self._throttler.stats().waits if self._throttler else 0)
        if waits is not None:
            yield CounterMetricFamily(
                "trader_throttler_waits", "Order submissions that waited for a rate limit.", value=waits
            )
        writer = self._writer
        depth = self._read("store", lambda: writer.buffered if writer is not None else 0)
        if depth is not None:
            yield GaugeMetricFamily(
                "trader_store_queue_depth", "Records waiting to be written to the store.", value=depth
            )
        store_retries = self._read("store", lambda: writer.stats().failures if writer is not None else 0)
        if store_retries is not None:
            yield CounterMetricFamily(
                "trader_retries",
                "Failed calls tried again: store writes, and venue calls the node reports.",
                value=self._metrics._retries_reported() + store_retries,
            )

    def _read(self, what: str, read: Callable[[], T]) -> T | None:
        """`read()`, or None (logged and counted) when it fails: the scrape goes on without it."""
        try:
            return read()
        except Exception as error:
            self._metrics._failed(f"scrape {what}", error)
            return None


def risk_figures(engine: Engine) -> tuple[Decimal, Decimal]:
    """Portfolio heat and today's P&L as the risk gate would count them now, changing nothing.

    Heat uses the gate's per-position formula on the views the pipeline builds;
    today's P&L is realised (after fees) since the pipeline's start-of-day mark
    plus unrealised at the last prices. Before the day's first decision there is
    no mark yet, so realised today is 0, as the gate will see it then.
    """
    portfolio = engine.portfolio
    instruments = engine.instruments
    heat = _ZERO
    for strategy, symbol, qty in engine.open_strategy_positions():
        position = portfolio.positions.get(symbol)
        if position is None:
            continue
        view = OpenPositionView(
            symbol,
            1 if qty > 0 else -1,
            abs(qty),
            position.avg_price,
            engine.orders.stop_for(strategy, symbol),
            instruments[symbol].multiplier,
            strategy,
        )
        heat += position_risk(view)
    open_positions = portfolio.open_positions()
    marks = engine.marks(p.symbol for p in open_positions)
    # A position with no price yet (none seen since a restart) adds nothing until one comes.
    unrealized = sum((p.unrealized_pnl(marks[p.symbol]) for p in open_positions if p.symbol in marks), _ZERO)
    pipeline = engine.pipeline
    realized = portfolio.realized_pnl - portfolio.account.fees_paid
    # The pipeline's start-of-day mark (read, never moved: the gate owns when it is taken).
    today = engine.session_key(engine.clock.now_ns()) == pipeline._day
    realized_today = realized - pipeline._day_realized if today else _ZERO
    return heat, realized_today + unrealized


def _active_protections(engine: Engine) -> int:
    protections = engine.pipeline.protections
    return len(protections.active_locks(engine.clock.now_ns())) if protections is not None else 0
