"""trader_* metrics: a real engine on the simulated venue, scraped and parsed as Prometheus would."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import msgspec
from prometheus_client.parser import text_string_to_metric_families

from kit import T0, Rig, flat_bar, instrument, rig
from quantdesk.clock import SimulatedClock
from quantdesk.engine.messages import FlattenCompleted
from quantdesk.engine.pipeline import PipelineConfig
from quantdesk.execution.throttle import KITE_LIMITS, Throttler
from quantdesk.model import Bar, Order, OrderStatus, OrderType, Side
from quantdesk.risk import Mode, RiskConfig, SizingConfig
from quantdesk.store import make_engine, session_factory, upgrade
from quantdesk.store.writer import StoreWriter
from quantdesk.strategies import Strategy
from quantdesk.telemetry import TraderMetrics

D = Decimal
RISK = RiskConfig(max_data_age_seconds=None, sizing=SizingConfig(mode="risk"))
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


class OnCue(Strategy):
    """Enters long (stop 2% below, target 4% above) when told to; `bad` sends a stop above the price."""

    def on_start(self) -> None:
        self.go = False
        self.bad = False

    def on_bar(self, bar: Bar) -> None:
        if self.go:
            self.go = False
            self.enter_long(stop=bar.close * 0.98, targets=[bar.close * 1.04])
        if self.bad:
            self.bad = False
            self.enter_long(stop=bar.close * 1.05)


def scrape(metrics: TraderMetrics) -> Samples:
    text = metrics.render().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def _started(metrics: TraderMetrics, **attach: object) -> tuple[Rig, dict[str, OnCue]]:
    r = rig(
        [instrument("AAA"), instrument("BBB")],
        cash=D(100_000),
        pipeline=PipelineConfig(risk=RISK, mode=Mode.PAPER),
    )
    strategies = {symbol: OnCue(symbol) for symbol in ("AAA", "BBB")}
    for strategy in strategies.values():
        r.engine.add_strategy(strategy)
    metrics.attach(r.engine, **attach)  # type: ignore[arg-type]
    r.engine.start()
    return r, strategies


def both(i: int, price: float) -> tuple[Bar, Bar]:
    return flat_bar(i, price, "AAA"), flat_bar(i, price, "BBB")


def test_a_session_of_entries_a_block_and_a_flatten_is_counted_as_it_happened() -> None:
    metrics = TraderMetrics()
    r, strategies = _started(metrics)
    flattened: list[FlattenCompleted] = []
    r.bus.subscribe(FlattenCompleted, flattened.append)

    r.feed(*both(0, 100.0))
    strategies["AAA"].go = strategies["BBB"].go = True
    r.feed(*both(1, 100.0), *both(2, 100.0))  # two entries of 250 (500 at risk each), filled at 100
    strategies["AAA"].go = True  # already in AAA: blocked
    strategies["BBB"].bad = True  # stop above the price: refused before the pipeline
    r.feed(*both(3, 101.0), *both(4, 101.0))

    s = scrape(metrics)
    assert value(s, "trader_signals_total") == r.engine.signals == 4
    assert value(s, "trader_decisions_total", result="approved") == 2
    assert value(s, "trader_decisions_total", result="blocked") == 1
    blocked = r.engine.pipeline.blocked
    assert "ALREADY_IN_POSITION" in blocked
    for reason, count in blocked.items():
        assert value(s, "trader_risk_blocks_total", reason=reason) == count
    assert value(s, "trader_risk_blocks_total", reason="MALFORMED_SIGNAL") == 1
    assert value(s, "trader_risk_blocks_total", reason="DAILY_LOSS") == 0
    assert value(s, "trader_positions_open") == 2
    # Each position: 250 x (100 - 98) at risk; marked at 101: 250 x 1 unrealised.
    assert value(s, "trader_portfolio_heat", currency="USD") == 1000
    assert value(s, "trader_daily_pnl", currency="USD") == 500
    assert value(s, "trader_oco_children_created_total") == 4  # a stop and a target each
    assert value(s, "trader_orders_placed_total") == 6
    assert value(s, "trader_orders_filled_total") == 2

    r.engine.flatten("test")
    r.feed(*both(5, 102.0))  # the closing orders fill at 102
    assert flattened and r.engine.open_strategy_positions() == []

    s = scrape(metrics)
    orders = list(r.engine.orders.orders.values())
    assert value(s, "trader_orders_placed_total") == sum(1 for o in orders if o.venue_order_id) == 8
    assert value(s, "trader_orders_filled_total") == sum(o.status is OrderStatus.FILLED for o in orders) == 4
    assert value(s, "trader_positions_open") == 0
    assert value(s, "trader_portfolio_heat", currency="USD") == 0
    realized = r.engine.portfolio.realized_pnl - r.engine.portfolio.account.fees_paid
    assert value(s, "trader_daily_pnl", currency="USD") == float(realized) == 1000
    # The simulated venue acknowledges at the instant of the submit: every latency is 0 ms.
    assert value(s, "trader_order_latency_ms_count") == 8
    assert value(s, "trader_order_latency_ms_sum") == 0
    assert value(s, "trader_telemetry_errors_total") == 0


def test_a_late_repeat_of_an_ended_order_is_not_counted_twice() -> None:
    metrics = TraderMetrics()
    r, strategies = _started(metrics)
    r.feed(*both(0, 100.0))
    strategies["AAA"].go = True
    r.feed(*both(1, 100.0), *both(2, 100.0))
    entry = next(o for o in r.engine.orders.orders.values() if o.tag == "ENTRY")
    assert entry.status is OrderStatus.FILLED
    r.bus.publish(entry)  # the same terminal update again
    s = scrape(metrics)
    assert value(s, "trader_orders_filled_total") == 1
    assert value(s, "trader_orders_placed_total") == 3  # the entry, its stop, its target


def test_what_the_node_measures_lands_in_the_histograms_and_counters() -> None:
    metrics = TraderMetrics()
    _started(metrics)
    for ms in (0.02, 0.3, 0.3, 7.0):
        metrics.observe_tick_to_decision_ms(ms)
    metrics.stream_reconnected()
    metrics.retried()
    metrics.retried()
    s = scrape(metrics)
    assert value(s, "trader_tick_to_decision_ms_count") == 4
    assert value(s, "trader_tick_to_decision_ms_bucket", le="0.025") == 1
    assert value(s, "trader_tick_to_decision_ms_bucket", le="0.5") == 3
    assert value(s, "trader_tick_to_decision_ms_bucket", le="10.0") == 4
    assert value(s, "trader_stream_reconnects_total") == 1
    assert value(s, "trader_retries_total") == 2


def test_throttler_waits_and_store_queue_depth_are_read_when_scraped(tmp_path: Path) -> None:
    clock = SimulatedClock(T0)
    throttler = Throttler(KITE_LIMITS, clock_ns=clock.now_ns)
    url = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade(url)
    writer = StoreWriter(session_factory(make_engine(url)), mode=Mode.PAPER, config_sha="a" * 64)
    metrics = TraderMetrics()
    r, strategies = _started(metrics, writer=writer, throttler=throttler)
    writer.attach(r.engine)
    r.feed(*both(0, 100.0))
    strategies["AAA"].go = True
    r.feed(*both(1, 100.0), *both(2, 100.0))
    for _ in range(12):  # Kite: 10 orders a second, so the 11th and 12th wait
        throttler.acquire("orders")

    s = scrape(metrics)
    assert value(s, "trader_throttler_waits_total") == throttler.stats().waits == 2
    assert value(s, "trader_store_queue_depth") == writer.buffered > 0
    writer.flush()
    assert value(scrape(metrics), "trader_store_queue_depth") == 0


def test_a_handler_that_fails_counts_and_logs_instead_of_raising() -> None:
    metrics = TraderMetrics()
    r, _ = _started(metrics)
    broken = msgspec.structs.replace(
        Order("x-1", "AAA", Side.BUY, OrderType.MARKET, D(1)),
        status="NOT A STATUS",
    )
    r.bus.publish(broken)  # reaches the handler through the bus, as a real update would
    assert value(scrape(metrics), "trader_telemetry_errors_total") == 1


def test_a_state_read_that_fails_is_left_out_of_the_scrape() -> None:
    class BrokenWriter:
        @property
        def buffered(self) -> int:
            raise OSError("gone")

        def stats(self) -> object:
            raise OSError("gone")

    metrics = TraderMetrics()
    _started(metrics, writer=BrokenWriter())
    s = scrape(metrics)
    assert ("trader_store_queue_depth", ()) not in s
    assert value(s, "trader_positions_open") == 0
    assert value(s, "trader_telemetry_errors_total") >= 1


def test_each_instance_has_its_own_registry() -> None:
    first, second = TraderMetrics(), TraderMetrics()
    first.stream_reconnected()
    assert value(scrape(second), "trader_stream_reconnects_total") == 0
    assert first.content_type.startswith("text/plain")
