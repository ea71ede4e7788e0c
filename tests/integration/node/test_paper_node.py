"""The paper node as a whole: built from its config, replays a session, trades, stops in order."""

from __future__ import annotations

import asyncio
import json
import os
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from structlog.testing import capture_logs

from quantdesk.clock.calendar import MarketCalendar
from quantdesk.engine.messages import FlattenCompleted
from quantdesk.engine.runtime import is_spinning, spinning_event_loop
from quantdesk.errors import ConfigError
from quantdesk.node import NodeConfig, NodeFailed, NodeParts, PaperNode, build
from quantdesk.node.feed import _instants, iso_utc
from quantdesk.node.paper import fill_closing_orders_at_last_price, load_series, node_status
from quantdesk.store.database import StoreUnavailable, make_engine, session_factory
from quantdesk.store.writer_process import ProcessStoreWriter

FAST_CONFIG = """
[risk]
max_data_age_seconds = 600
"""


def settings(tmp_path: Path, **kw: object) -> NodeConfig:
    config = tmp_path / "risk.toml"
    config.write_text(FAST_CONFIG)
    base: dict[str, object] = {
        "speed": 20_000.0,
        "var_dir": tmp_path / "var",
        "exit_at_end": True,
        "config_file": str(config),
        "port": 0,  # any free port: 8000 may be a node running beside the suite (`make run`)
    }
    base.update(kw)
    return NodeConfig(**base)  # type: ignore[arg-type]


def run(node: PaperNode) -> None:
    asyncio.run(asyncio.wait_for(node.run(handle_signals=False, configure_logs=False), timeout=60))


def test_instants_merge_symbols_in_time_order_and_group_equal_times(tmp_path: Path) -> None:
    series, _ = load_series(NodeConfig(symbols=("A", "B"), days=1))
    instants = list(_instants(series))
    assert len(instants) == 390  # one NYSE session of minute bars, both symbols each minute
    times = [ts for ts, _ in instants]
    assert times == sorted(times) and len(set(times)) == len(times)
    assert all([b.symbol for b in bars] == ["A", "B"] for _, bars in instants)
    assert all(b.ts_event == ts for ts, bars in instants for b in bars)


@pytest.mark.parametrize("writer", ["thread", "process"])
def test_a_paper_session_trades_persists_and_shuts_down_in_order(tmp_path: Path, writer: str) -> None:
    node = PaperNode(settings(tmp_path, store_writer=writer))
    with capture_logs() as logs:
        run(node)
    parts = node.parts
    assert parts is not None
    assert parts.feed.state == "finished" and parts.feed.delivered == parts.feed.total == 3 * 390
    engine = parts.engine
    assert engine.signals > 0 and engine.pipeline.approved > 0
    filled = [o for o in engine.orders.orders.values() if o.filled_qty > 0]
    assert any(o.tag == "ENTRY" for o in filled) and any(o.tag != "ENTRY" for o in filled)
    # The shutdown flattened what was open and said so, step by step, in order.
    assert engine.open_strategy_positions() == [] and engine.orders.working_orders() == []
    events = [entry["event"] for entry in logs]
    steps = [
        "Trading PAUSED",
        "Positions flattened",
        "Replay feed stopped",
        "OrderWatcher stopped",
        "Engine stopped",
        "Store flushed",
        "Node stopped",
    ]
    assert [e for e in events if e in steps] == steps
    # Everything reached the store: every order the engine knows, with its fills.
    db = make_engine(parts.db_url)
    with db.connect() as connection:
        stored = connection.execute(sa.text("SELECT count(*) FROM orders")).scalar_one()
        fills = connection.execute(sa.text("SELECT count(*) FROM fills")).scalar_one()
    db.dispose()
    assert stored == len(engine.orders.orders)
    assert isinstance(parts.writer, ProcessStoreWriter) is (writer == "process")
    db = make_engine(parts.db_url)
    with db.connect() as connection:
        connection_sum = connection.execute(sa.text("SELECT sum(qty) FROM fills")).scalar_one()
    db.dispose()
    filled_qty = sum(o.filled_qty for o in engine.orders.orders.values())
    assert fills > 0 and Decimal(str(connection_sum)) == filled_qty


def test_a_replay_behind_its_clock_still_lets_the_nodes_other_tasks_in_between_instants(
    tmp_path: Path,
) -> None:
    # A replay faster than the engine (or an instant slower than its bar) finds every instant
    # already due. It must still yield to the loop between instants: the API and its kill
    # switch, and the watcher that feeds the store's writer, share the loop with it.
    parts = build(settings(tmp_path, speed=1_000_000.0))
    parts.feed._clock = _Behind(parts.clock)  # type: ignore[assignment]
    seen: list[int] = []

    async def beside_the_feed() -> None:
        while parts.feed.state != "finished":
            seen.append(parts.feed.delivered)
            await asyncio.sleep(0)

    async def replay() -> None:
        parts.engine.start()
        await asyncio.gather(parts.feed.run(asyncio.Event()), beside_the_feed())

    asyncio.run(asyncio.wait_for(replay(), timeout=60))
    parts.writer.stop()
    assert parts.feed.state == "finished" and parts.feed.total == 3 * 390
    # Between every two instants (three bars each), the other task ran.
    assert sorted({n for n in seen if 0 < n < parts.feed.total}) == list(range(3, parts.feed.total, 3))


def test_a_replay_too_fast_for_the_machine_says_so_once_and_shows_how_far_behind(tmp_path: Path) -> None:
    # Past max_data_age_seconds behind its clock, every entry is refused as stale: the node
    # must say why (a log line and an alert, once) rather than leave the user to find the blocks.
    parts = build(settings(tmp_path, speed=1_000_000.0))
    parts.feed._clock = _Behind(parts.clock, seconds=0.001)  # type: ignore[assignment]
    alerts: list[tuple[str, str]] = []
    parts.feed._on_behind = lambda message: alerts.append(("replay_behind_clock", message))
    parts.engine.start()
    with capture_logs() as logs:
        asyncio.run(asyncio.wait_for(parts.feed.run(asyncio.Event()), timeout=60))
    parts.writer.stop()
    warnings = [entry for entry in logs if entry["event"] == "replay_behind_clock"]
    assert len(warnings) == 1 and warnings[0]["lag_s"] == pytest.approx(1_000.0)
    assert len(alerts) == 1 and "1000.0 s of market time behind" in alerts[0][1] and "600 s" in alerts[0][1]
    assert node_status(parts)["replay"]["behind_s"] == pytest.approx(1_000.0)


class _Behind:
    """The node's paced clock, but every instant is already due (`seconds` ago, real time)."""

    def __init__(self, clock: object, seconds: float = 0.0) -> None:
        self._clock = clock
        self._seconds = seconds

    def seconds_until(self, ts: int) -> float:
        return -self._seconds

    def __getattr__(self, name: str) -> object:
        return getattr(self._clock, name)


def replay_by_hand(parts: NodeParts, *, until_open: bool = False) -> None:
    """Deliver the session instant by instant, moving the paced clock (speed 1) to each bar."""
    parts.engine.start()
    for ts, bars in list(_instants(parts.feed._series)):
        parts.clock.start_ns = ts - (parts.clock.now_ns() - parts.clock.start_ns)
        parts.feed._deliver(ts, bars)
        if until_open and parts.engine.open_strategy_positions():
            return


def test_stop_resting_never_rests_exits_beyond_the_position_and_releases_targets(tmp_path: Path) -> None:
    parts = build(settings(tmp_path, speed=1.0, exit_policy="stop_resting"))
    venue = parts.venue
    beyond: list[str] = []
    deliver = parts.feed._deliver

    def checked(ts: int, bars: object) -> None:
        deliver(ts, bars)  # type: ignore[arg-type]
        ours = parts.engine.orders.orders
        for symbol, held in venue.positions.items():
            resting = sum(
                (
                    s.qty - s.filled_qty
                    for s in venue.open_orders()
                    if s.symbol == symbol and ours[s.client_order_id].tag != "ENTRY"
                ),
                Decimal(0),
            )
            if resting > abs(held):
                beyond.append(f"{ts} {symbol}: {resting} resting for {held}")

    parts.feed._deliver = checked  # type: ignore[method-assign]
    replay_by_hand(parts)
    targets = [o for o in parts.engine.orders.orders.values() if o.tag in ("TP1", "TP2")]
    assert beyond == []
    assert targets and all(o.order_type.value == "MARKET" for o in targets)  # released on touch
    assert any(o.filled_qty > 0 for o in targets)
    parts.writer.stop()


def test_status_shows_the_order_tracker_its_last_reconciliation_and_the_instruments(tmp_path: Path) -> None:
    parts = build(settings(tmp_path, speed=1.0))
    replay_by_hand(parts, until_open=True)
    parts.reconciler.reconcile()
    status = node_status(parts)
    tracker = status["order_tracker"]
    orders = parts.engine.orders.orders
    assert tracker["total"] == len(orders) > 0
    assert tracker["in_flight"] == sum(1 for o in orders.values() if o.is_open) > 0  # a stop works
    assert tracker["last_reconciliation"]["stage"] == "periodic"
    assert tracker["last_reconciliation"]["in_sync"] is True
    assert set(status["instruments"]) == set(parts.engine.instruments)
    assert all(i["tick_size"] == "0.01" for i in status["instruments"].values())
    parts.writer.stop()


def test_the_effective_config_is_audited_once_and_again_when_it_changes(tmp_path: Path) -> None:
    from sqlalchemy import select

    from quantdesk.store import AuditLogRow, make_engine, session_factory

    build(settings(tmp_path)).writer.stop()
    build(settings(tmp_path)).writer.stop()  # the same config: nothing new
    changed = tmp_path / "changed.toml"
    changed.write_text(FAST_CONFIG.replace("[risk]", "[risk]\nmax_open_positions = 2", 1))
    parts = build(settings(tmp_path, config_file=str(changed)))
    parts.writer.stop()
    db = make_engine(parts.db_url)
    with session_factory(db)() as session:
        rows = session.scalars(select(AuditLogRow).where(AuditLogRow.action == "config")).all()
    db.dispose()
    assert len(rows) == 2 and rows[1].details["sha"] == parts.trading.sha256()
    assert rows[1].details["config"]["risk"]["max_open_positions"] == 2


def test_default_sizing_never_buys_more_than_an_equal_share_of_cash(tmp_path: Path) -> None:
    parts = build(settings(tmp_path, config_file=None, speed=1.0))
    replay_by_hand(parts)
    cap = parts.trading.risk.sizing.max_notional
    assert cap == Decimal(100_000) / parts.trading.risk.max_open_positions
    entries = [o for o in parts.engine.orders.orders.values() if o.tag == "ENTRY" and o.filled_qty > 0]
    assert len(entries) >= 3
    for order in entries:
        # Sized on the signal's price, filled at the next open: a few ticks of slack.
        assert order.filled_qty * order.avg_fill_price <= cap * Decimal("1.01")
    parts.writer.stop()


def test_a_flatten_in_paper_fills_at_the_last_price_at_once(tmp_path: Path) -> None:
    parts = build(settings(tmp_path, speed=1.0))
    engine = parts.engine
    replay_by_hand(parts, until_open=True)
    assert engine.open_strategy_positions(), "the session should open a position"
    engine.flatten("test", "tester")
    assert fill_closing_orders_at_last_price(parts) >= 1
    assert engine.open_strategy_positions() == [] and engine.orders.working_orders() == []
    parts.writer.stop()


def test_a_store_lost_mid_session_pauses_entries_past_its_buffer_but_keeps_every_record(
    tmp_path: Path,
) -> None:
    parts = build(settings(tmp_path, speed=1.0, store_max_buffer=20))
    parts.writer.replace_session_factory(
        session_factory(make_engine("postgresql+psycopg://postgres@127.0.0.1:1/nowhere"))
    )
    replay_by_hand(parts)
    assert parts.engine.state.paused
    assert parts.engine.state.changes[0].reason == "store buffer full"
    assert parts.writer.buffered >= 20  # nothing dropped: all of it waits for the store
    # Positions opened before the pause kept their protective stops working.
    for strategy, symbol, _ in parts.engine.open_strategy_positions():
        assert parts.engine.orders.stop_for(strategy, symbol) is not None


def test_a_store_that_is_down_stops_the_node_before_anything_starts(tmp_path: Path) -> None:
    config = settings(tmp_path, db_url="postgresql+psycopg://postgres@127.0.0.1:1/nowhere")
    node = PaperNode(config)
    with pytest.raises(StoreUnavailable, match=r"127\.0\.0\.1"):
        run(node)
    assert node.parts is None


def test_a_bad_strategy_parameter_fails_before_any_io(tmp_path: Path) -> None:
    from quantdesk.errors import UserError

    node = PaperNode(settings(tmp_path, params={"k": "lots"}))
    with pytest.raises(UserError, match="k"):
        run(node)
    assert not (tmp_path / "var").exists()


@pytest.mark.redis
def test_with_redis_the_node_publishes_events_and_disconnects_on_stop(tmp_path: Path) -> None:
    import redis

    url = "redis://127.0.0.1:6379/0"
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.RedisError as error:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Redis is required when CI=true: {error}", pytrace=False)
        pytest.skip(f"Redis is not reachable at {url}: {error}")
    node = PaperNode(settings(tmp_path, redis_url=url))
    with capture_logs() as logs:
        run(node)
    assert node.parts is not None and node.parts.redis is not None
    stats = node.parts.redis.stats()
    assert stats.published > 0 and stats.queued == 0 and not stats.connected
    assert "Redis bus disconnected" in [entry["event"] for entry in logs]


def test_the_node_logs_json_lines_and_counts_what_it_did(tmp_path: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    node = PaperNode(settings(tmp_path))
    asyncio.run(asyncio.wait_for(node.run(handle_signals=False, configure_logs=True), timeout=60))
    parts = node.parts
    assert parts is not None
    lines = [json.loads(line) for line in node.config.log_path.read_text().splitlines()]
    events = [line["event"] for line in lines]
    assert "store_ready" in events and events[-1] == "Node stopped"
    assert all("timestamp" in line and "level" in line for line in lines)
    # Order lines carry their ids bound.
    orders = [line for line in lines if line.get("client_order_id")]
    assert orders and all(line["plan_id"] for line in orders)

    families = {f.name: f for f in text_string_to_metric_families(parts.metrics.render().decode())}
    signals = families["trader_signals"].samples[0].value
    assert signals == parts.engine.signals > 0
    decided = {
        s.labels["result"]: s.value for s in families["trader_decisions"].samples if "result" in s.labels
    }
    assert decided.get("approved") == parts.engine.pipeline.approved
    observed = [s for s in families["trader_tick_to_decision_ms"].samples if s.name.endswith("_count")]
    assert observed[0].value > 0


@pytest.mark.filterwarnings("ignore:'imghdr' is deprecated:DeprecationWarning")
def test_an_orphan_found_while_running_reaches_the_alert_urls(tmp_path: Path) -> None:
    from http_receiver import serving
    from quantdesk.model import Order, OrderType, Side

    with serving() as receiver:
        parts = build(settings(tmp_path, speed=1.0, alert_urls=(receiver.url,)))
        replay_by_hand(parts, until_open=True)
        stranger = Order("stranger-1", "SYNA", Side.BUY, OrderType.LIMIT, Decimal(1), Decimal("50.00"))
        parts.venue.submit_order(stranger)
        parts.reconciler.reconcile()  # seen once: it may be an answer still on its way
        found = parts.reconciler.reconcile()  # seen twice: acted on
        assert found.orphans_cancelled == ("stranger-1",)
        posts = receiver.wait_for(1)
        assert any(
            "orphan order(s) at the venue: cancelled stranger-1" in post.get("message", "") for post in posts
        )
        parts.alerter.close(5.0)
        parts.writer.stop()


def test_a_replay_that_fails_stops_the_node_with_a_logged_and_alerted_error(tmp_path: Path) -> None:
    """An exception in the hot path must not leave a node that looks alive with a dead feed."""
    from http_receiver import serving
    from quantdesk.model import Bar

    def broken(ts: int, bars: list[Bar]) -> None:
        raise RuntimeError("matching blew up")

    def on_built(parts: NodeParts) -> None:
        parts.feed._deliver = broken  # type: ignore[method-assign]

    with serving() as receiver:
        node = PaperNode(settings(tmp_path, alert_urls=(receiver.url,)), on_built=on_built)
        with (
            capture_logs() as logs,
            pytest.raises(NodeFailed, match="replay: RuntimeError: matching blew up"),
        ):
            run(node)
        failed = [entry for entry in logs if entry["event"] == "task_failed"]
        assert [entry["task"] for entry in failed] == ["replay"]
        assert any("matching blew up" in post.get("message", "") for post in receiver.wait_for(1))
    assert node.parts is not None and node.parts.engine.state.paused
    assert any(entry["event"] == "Node stopped" for entry in logs)


@pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs CPU affinity (Linux) and two CPUs this process may use",
)
def test_engine_cpu_gives_the_loop_one_cpu_and_the_writer_process_the_rest_until_the_node_stops(
    tmp_path: Path,
) -> None:
    mine = os.sched_getaffinity(0)
    cpu = min(mine)
    seen: dict[str, set[int]] = {}

    def started(node: PaperNode) -> None:
        assert node.parts is not None and isinstance(node.parts.writer, ProcessStoreWriter)
        process = node.parts.writer._process
        assert process is not None and process.pid is not None
        seen["loop"] = os.sched_getaffinity(0)
        seen["writer"] = os.sched_getaffinity(process.pid)

    node = PaperNode(settings(tmp_path, engine_cpu=cpu), on_started=started)
    run(node)
    assert seen == {"loop": {cpu}, "writer": mine - {cpu}}
    assert os.sched_getaffinity(0) == mine  # given back to the thread that ran the node
    assert node.parts is not None and node.parts.feed.state == "finished"


def test_an_engine_cpu_the_node_cannot_have_stops_it_before_anything_starts(tmp_path: Path) -> None:
    node = PaperNode(settings(tmp_path, engine_cpu=4096))
    with pytest.raises(ConfigError, match=r"engine_cpu"):
        run(node)
    assert node.parts is None and not (tmp_path / "var").exists()


@pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs CPU affinity (Linux) and two CPUs this process may use",
)
def test_engine_spin_runs_a_whole_session_on_a_loop_that_polls(tmp_path: Path) -> None:
    mine = os.sched_getaffinity(0)
    cpu = min(mine)
    seen: dict[str, object] = {}

    def started(node: PaperNode) -> None:
        seen["spinning"] = is_spinning(asyncio.get_running_loop())
        seen["loop"] = os.sched_getaffinity(0)

    node = PaperNode(settings(tmp_path, engine_cpu=cpu, engine_spin=True), on_started=started)
    with capture_logs() as logs, asyncio.Runner(loop_factory=spinning_event_loop) as runner:
        runner.run(asyncio.wait_for(node.run(handle_signals=False, configure_logs=False), timeout=60))
    assert seen == {"spinning": True, "loop": {cpu}}
    assert os.sched_getaffinity(0) == mine
    assert node.parts is not None and node.parts.feed.state == "finished"
    assert node.parts.engine.signals > 0  # it traded: timers, the feed and the writer all ran
    pinned = [entry for entry in logs if entry["event"] == "engine_pinned"]
    assert [entry["spinning"] for entry in pinned] == [True]
    assert logs[-1]["event"] == "Node stopped"


@pytest.mark.parametrize(
    ("engine_cpu", "why"),
    [(None, r"engine_spin needs engine_cpu"), (0, r"engine_spin: this event loop sleeps")],
)
def test_engine_spin_without_a_cpu_of_its_own_or_a_polling_loop_stops_the_node_before_anything_starts(
    tmp_path: Path, engine_cpu: int | None, why: str
) -> None:
    node = PaperNode(settings(tmp_path, engine_cpu=engine_cpu, engine_spin=True))
    with pytest.raises(ConfigError, match=why):
        run(node)  # on asyncio's own loop, which sleeps
    assert node.parts is None and not (tmp_path / "var").exists()


def test_the_nodes_store_flush_period_is_the_writers(tmp_path: Path) -> None:
    # NodeConfig spells the writer's period out (it stays free of the store's imports): they must agree,
    # and a period of zero or less is refused by name.
    from pydantic import ValidationError

    from quantdesk.store.writer import FLUSH_INTERVAL_S

    assert NodeConfig(var_dir=tmp_path).store_flush_interval_s == FLUSH_INTERVAL_S
    with pytest.raises(ValidationError, match="store_flush_interval_s"):
        NodeConfig(var_dir=tmp_path, store_flush_interval_s=0)


def test_a_writer_that_stops_reading_does_not_hold_up_the_watchers_reconciliation(tmp_path: Path) -> None:
    # A writer process whose pipe stays full: every pump has more to ship and asks for a short
    # wait. The watcher must still reconcile (and fire alarms) between rounds of pumping.
    def pipe_always_full(parts: NodeParts) -> None:
        parts.writer.pump = lambda: True  # type: ignore[method-assign]
        parts.writer.pump_wait_s = 0.0005

    node = PaperNode(settings(tmp_path, reconcile_interval_s=0.05), on_built=pipe_always_full)
    run(node)
    parts = node.parts
    assert parts.feed.state == "finished"
    assert node.reconciliations >= 5  # ~1.2 s of replay: one every watch period (0.1 s) at least
    assert parts.writer.stats().buffered == 0  # the stop's flush wrote everything


@pytest.mark.parametrize("skip", [True, False])
def test_skip_closed_jumps_the_night_after_the_close_has_run_as_live(tmp_path: Path, skip: bool) -> None:
    # Two sessions at speed 20,000: the night between them is 63,000 s of market time, ~3 s real.
    flattens: list[FlattenCompleted] = []
    node = PaperNode(
        settings(tmp_path, days=2, skip_closed=skip),
        on_built=lambda parts: parts.engine.bus.subscribe(FlattenCompleted, flattens.append),
    )
    with capture_logs() as logs:
        run(node)
    parts = node.parts
    assert parts.feed.state == "finished" and parts.feed.delivered == 2 * 3 * 390
    calendar = MarketCalendar("XNYS")
    close, next_open = calendar.close_time("2024-01-02"), calendar.session_bounds("2024-01-03")[0]
    skips = [entry for entry in logs if entry["event"] == "replay_skipped_closed_hours"]
    night_s = (next_open - close) / 1e9
    if skip:
        assert [(s["close"], s["resume"]) for s in skips] == [(iso_utc(close), iso_utc(next_open))]
        # The clock ran to the close before it jumped (at most the time the jump itself took).
        assert night_s - 3_000 < parts.feed.skipped_s <= night_s
    else:
        assert skips == [] and parts.feed.skipped_s == 0.0
    assert node_status(parts)["replay"]["skipped_closed_s"] == pytest.approx(parts.feed.skipped_s, abs=1e-3)
    # Each day's end-of-day flatten ran on its own day, before its close: the jump did not skip it.
    end_of_day = [f.ts for f in flattens if f.reason == "end of day"]
    assert len(end_of_day) == 2
    assert calendar.session_bounds("2024-01-02")[0] < end_of_day[0] < close
    assert next_open < end_of_day[1] < calendar.close_time("2024-01-03")


def test_a_node_left_running_after_its_replay_holds_its_clock_at_the_last_sessions_close(
    tmp_path: Path,
) -> None:
    flattens: list[FlattenCompleted] = []
    node = PaperNode(
        settings(tmp_path, days=1, exit_at_end=False),
        on_built=lambda parts: parts.engine.bus.subscribe(FlattenCompleted, flattens.append),
    )
    readings: list[int] = []

    async def main() -> None:
        task = asyncio.create_task(node.run(handle_signals=False, configure_logs=False))
        loop = asyncio.get_running_loop()
        until = loop.time() + 10  # the replay is 1.2 s at this speed; a node that never holds fails below
        while (node.parts is None or node.parts.feed.held_at is None) and loop.time() < until:
            await asyncio.sleep(0.01)
        assert node.parts is not None
        readings.append(node.parts.clock.now_ns())
        await asyncio.sleep(0.5)  # 10,000 market seconds, five periods of the watcher
        readings.append(node.parts.clock.now_ns())
        node.request_stop()
        await task

    with capture_logs() as logs:
        asyncio.run(asyncio.wait_for(main(), timeout=60))
    close = MarketCalendar("XNYS").close_time("2024-01-02")
    held = readings[0]
    assert readings[1] == held  # no market time past the data: no empty days after it
    # It ran to the close: the sleep overshoots by a few ms, a minute or so of market at this speed.
    assert close <= held < close + 3_600 * 10**9
    assert [e["at"] for e in logs if e["event"] == "replay_clock_held"] == [iso_utc(held)]
    assert node.parts is not None and node_status(node.parts)["replay"]["clock_held_at"] == iso_utc(held)
    # The day ended as live, once: its end-of-day flatten, and none for a day with no bars.
    assert len([f for f in flattens if f.reason == "end of day"]) == 1
