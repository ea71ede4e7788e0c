"""Store write path: persisted events per second, the outbox's cost, and tick-to-decision with it on.

1. Throughput. Ten symbols; a strategy per symbol enters long (market, a stop and a
   target 0.10 away) on every 3rd bar of its symbol when flat, so a run makes the
   whole chain: signals, decisions, entry/stop/target orders with every status
   update, fills and positions. A `StoreWriter` attached in synchronous mode buffers
   all of it; the run is then written by one timed `flush()` (batches of
   `--batch-size`, one transaction each). Persisted events/s = records written /
   seconds of that flush (a record is one bus event: it may touch several rows).
2. Outbox. `persist_before_send` for `--outbox` orders, each committed on its own
   (SQLite runs with synchronous=FULL: every commit is an fsync): p50/p99 per order.
3. Tick-to-decision. The bar run of part 1, timed per event (`engine.on_bar` +
   `engine.end_cycle()`, perf_counter_ns) for events that produced a decision, with
   no writer, and with a writer attached and flushing as the node's does (every
   `FLUSH_INTERVAL_S`, 1 s): on a thread of the engine's process (`StoreWriter`), and in
   a process of its own (`ProcessStoreWriter`, the node's default). Target: p50 and p99 with
   persistence within 10% of without. Each repeat runs the three back to back, in rotating
   order, and gives one paired ratio; the median ratio over `--repeat` pairs and the range
   of the pairs are reported (the machine's drift makes unpaired medians misleading).
   Paced runs also report each decision's time **from when its event was due** ("from
   due"): what a live node's tick sees, including waking up, getting the interpreter lock
   and a CPU back, and waiting behind a late event; the engine time alone misses all of it.
4. The machine's share (control). Each repeat also runs the engine without a writer beside
   a **burner**: a process of no concern to the engine that streams through memory, in 0.1 s
   periods, for the share of a CPU the writer process and the database server took in a
   calibration run (all CPU time of the machine during the run, from /proc/stat, minus the
   engine's own, with the writer against without). What the writer's runs lose beyond the
   burner's is the writer's design; what the burner loses too is the machine's answer to
   memory-heavy work beside the engine (on this 2-vCPU VM it delays the engine's wake-ups).
5. The writer's parts (`--parts`). Each repeat also runs the engine with the **capture** alone:
   the handlers the engine's thread runs per bus event, their records let go a chunk per pump
   as the writer process lets go of written ones, with nothing encoded, shipped or written.
   The process writer's cost beyond the capture's is the pump's and the child's.
6. After a pump. For the process writer (and the capture alone), each run also splits its
   decisions by whether a pump ran on the engine's thread in the gap just before them: their
   share, their p50 over the others' and how far they move the run's p50. Within one run, so
   the machine's drift between runs cancels.

`--engine-cpu N` runs every latency run as a node with `engine_cpu = N` does: this thread (the
engine's) on CPU N alone, the writer process (and the control's burner) on the others. The thread
writer's thread, started here, shares CPU N with the engine then (it shares its GIL anyway).
`--spin` (with `--engine-cpu`) paces as a node with `engine_spin` does: instead of sleeping until
each event is due, the drive polls the clock, so the engine's thread never leaves its CPU.

Back ends: a SQLite file in a temporary folder, and PostgreSQL at
$QUANTDESK_TEST_PG_URL (default postgresql+psycopg://postgres@localhost:5432/test)
in a schema of its own, dropped afterwards; skipped if the server is not there.

    .venv/bin/python benchmarks/bench_store.py
    .venv/bin/python benchmarks/bench_store.py --bars 40000 --json out/store.json
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine as SqlEngine
from sqlalchemy.engine import make_url

from quantdesk.bus import MessageBus
from quantdesk.clock import SimulatedClock
from quantdesk.engine import Engine, EngineConfig
from quantdesk.engine.messages import DecisionRecord
from quantdesk.engine.pipeline import PipelineConfig, research_risk_config
from quantdesk.engine.runtime import cpus_besides, pin_this_thread, tune_gc_for_trading
from quantdesk.model import Bar, Instrument, Order, OrderStatus, OrderType, Side, Signal
from quantdesk.risk import Mode
from quantdesk.store import StoreUnavailable, connect, make_engine, session_factory, upgrade
from quantdesk.store.writer import StoreWriter
from quantdesk.store.writer_process import MAX_PUMP_CHUNK, PUMP_FRACTION, SHIP_CHUNK, ProcessStoreWriter
from quantdesk.strategies import Strategy
from quantdesk.venues.sim import SimulatedExchange

SECOND = 1_000_000_000
T0 = 1_704_205_800_000_000_000
SYMBOLS = [f"S{i}" for i in range(10)]
# The CPUs of the writer process and the burner with `--engine-cpu` (None: the system places them).
HELPER_CPUS: frozenset[int] | None = None
PG_DEFAULT_URL = "postgresql+psycopg://postgres@localhost:5432/test"
SHA = "bench" * 12 + "abcd"


class EveryThirdBar(Strategy):
    """A market long with a stop and a target 0.10 away on every 3rd bar of its symbol when flat."""

    name = "every_third_bar"

    def on_start(self) -> None:
        self.count = 0

    def on_bar(self, bar: Bar) -> None:
        self.count += 1
        if self.count % 3 == 0 and self.is_flat:
            close = bar.close
            self.enter_long(stop=round(close - 0.10, 2), targets=[round(close + 0.10, 2)])


def build() -> tuple[Engine, SimulatedExchange, SimulatedClock]:
    instruments = {s: Instrument(s) for s in SYMBOLS}
    clock = SimulatedClock(T0 - SECOND)
    venue = SimulatedExchange(instruments, cash=Decimal(10_000_000), clock_ns=clock.now_ns)
    pipeline = PipelineConfig(risk=research_risk_config(Decimal(10)), mode=Mode.PAPER, config_sha=SHA)
    engine = Engine(
        clock=clock,
        bus=MessageBus(),
        venue=venue,
        instruments=instruments,
        cash=Decimal(10_000_000),
        config=EngineConfig(pipeline=pipeline),
    )
    venue.set_price_source(engine.last_bar)
    for symbol in SYMBOLS:
        engine.add_strategy(EveryThirdBar(symbol))
    return engine, venue, clock


def make_bars(n: int) -> list[Bar]:
    rng = np.random.default_rng(7)
    per_symbol = n // len(SYMBOLS) + 2
    cents = 10_000 + np.cumsum(rng.integers(-6, 7, size=(per_symbol, len(SYMBOLS))), axis=0)
    prices = (cents / 100.0).tolist()
    bars = []
    for i in range(n):
        k, row = i % len(SYMBOLS), i // len(SYMBOLS)
        o, c = prices[row][k], prices[row + 1][k]
        ts = T0 + i * SECOND // 2
        bars.append(Bar(SYMBOLS[k], ts, o, max(o, c) + 0.05, min(o, c) - 0.05, c, 1_000.0, ts))
    return bars


class CaptureOnly:
    """`--parts`: a writer's capture on the engine, its records dropped as they would be shipped."""

    pump_wait_s = 0.0

    def __init__(self, url: str, engine: Engine) -> None:
        self.db = make_engine(url)
        self.writer = StoreWriter(session_factory(self.db), mode=Mode.PAPER, config_sha=SHA)
        self.writer.attach(engine)

    def pump(self) -> bool:
        capture = self.writer._capture
        buffer = capture.buffer
        capture.drain(min(MAX_PUMP_CHUNK, max(SHIP_CHUNK, -(-len(buffer) // PUMP_FRACTION))))
        return bool(buffer)


PUMP_NS = 100_000_000  # the node's loop pumps the writer process every 0.1 s
PARTS = False  # --parts: a run with the capture alone beside the others
SPIN = False  # --spin: the paced drive polls the clock until each event is due, as engine_spin's loop does


class Drive:
    """Feeds bars to an engine as the node's loop does, and times each event that produced a
    decision: `samples`, the engine's own time (`on_bar` + `end_cycle`, ns). Paced (one event
    every `pace_ns` of real time, sleeping or spinning between; 0: as fast as possible),
    `arrivals` gets the same events' time from when they were due: waking up, taking the
    interpreter lock and a CPU back, the events queued behind a late one, and the engine's time.
    Between events, as the node's loop does, the writer is pumped every 0.1 s (the process
    writer ships then, chunk after chunk while no event is due, until it has shipped all).
    `after_pump` gets, per sample, whether a pump ran in the gap just before its event.

    `run` may be called again with the bars that follow (`bench_store_turns.py` feeds its blocks
    so): they are paced from that call, and the pump's schedule carries on from where the last
    call left it, the time between calls not counted (the drive was not running then)."""

    def __init__(
        self,
        engine: Engine,
        venue: SimulatedExchange,
        clock: SimulatedClock,
        pace_ns: int = 0,
        writer: StoreWriter | CaptureOnly | None = None,
    ) -> None:
        self.engine, self.venue, self.clock = engine, venue, clock
        self.pace_ns = pace_ns
        self.writer = writer
        self.samples: list[int] = []
        self.arrivals: list[int] = []
        self.after_pump: list[bool] = []
        self._next_pump: int | None = None
        self._stopped_at = 0
        self._pumped = False

    def run(self, bars: list[Bar]) -> None:
        engine, venue, clock, writer, pace_ns = self.engine, self.venue, self.clock, self.writer, self.pace_ns
        samples, arrivals, after_pump = self.samples, self.arrivals, self.after_pump
        pumped = self._pumped
        clock_ns = time.perf_counter_ns
        start = clock_ns()
        next_pump = start + PUMP_NS if self._next_pump is None else self._next_pump + start - self._stopped_at
        for i, bar in enumerate(bars):
            due = start + i * pace_ns
            if pace_ns:
                # Sleeping releases the GIL, as a live engine waiting on its feed's socket does;
                # spinning is `engine_spin`'s loop, which polls instead.
                wait = due - clock_ns()
                if wait > 0 and SPIN:
                    while clock_ns() < due:
                        pass
                elif wait > 0:
                    time.sleep(wait / 1e9)
            clock.advance_to(bar.ts_event)
            venue.on_bar(bar)
            signals = engine.signals
            t0 = clock_ns()
            engine.on_bar(bar)
            engine.end_cycle()
            t1 = clock_ns()
            venue.on_bar_close(bar)
            if engine.signals != signals:
                samples.append(t1 - t0)
                if pace_ns:
                    arrivals.append(t1 - due)
                after_pump.append(pumped)
            pumped = False
            if writer is not None and t1 >= next_pump:
                pumped = True
                # Chunk after chunk until the next event is due, as the node's loop: it yields to
                # its feed between chunks, so an event due goes first (after the chunk under way),
                # and it waits `pump_wait_s` while the writer process has not read its pipe.
                # Unpaced, an event is always due: one chunk per gap.
                next_due = start + (i + 1) * pace_ns
                more = writer.pump()
                while more and not writer.pump_wait_s and clock_ns() < next_due:
                    more = writer.pump()
                next_pump = clock_ns() + (int(writer.pump_wait_s * SECOND) if more else PUMP_NS)
        self._next_pump, self._stopped_at, self._pumped = next_pump, clock_ns(), pumped


def drive(
    engine: Engine,
    venue: SimulatedExchange,
    clock: SimulatedClock,
    bars: list[Bar],
    pace_ns: int = 0,
    writer: StoreWriter | CaptureOnly | None = None,
    arrivals: list[int] | None = None,
    after_pump: list[bool] | None = None,
) -> list[int]:
    """`bars` through a `Drive` in one go: its samples, and its arrivals and after-pump flags
    into the lists given."""
    feed = Drive(engine, venue, clock, pace_ns, writer)
    feed.run(bars)
    if arrivals is not None:
        arrivals.extend(feed.arrivals)
    if after_pump is not None:
        after_pump.extend(feed.after_pump)
    return feed.samples


def percentiles_us(values: list[int]) -> dict[str, float]:
    a = np.asarray(values, dtype=np.float64) / 1_000.0
    p50, p99 = np.percentile(a, [50, 99])
    return {"count": len(values), "p50": round(float(p50), 1), "p99": round(float(p99), 1)}


class Backends:
    """Fresh, migrated databases: SQLite files in a temporary folder, PostgreSQL schemas dropped at exit."""

    def __init__(self, pg_url: str | None) -> None:
        self._folder = tempfile.TemporaryDirectory()
        self._admin: SqlEngine | None = None
        self._schemas: list[str] = []
        self.names = ["sqlite"]
        if pg_url:
            try:
                self._admin = connect(pg_url).execution_options(isolation_level="AUTOCOMMIT")
                self._pg_url = pg_url
                self.names.append("postgresql")
            except StoreUnavailable as error:
                print(f"postgresql skipped: {error}")

    def fresh(self, name: str) -> str:
        if name == "sqlite":
            url = f"sqlite:///{Path(self._folder.name) / f'{uuid.uuid4().hex}.db'}"
        else:
            assert self._admin is not None
            schema = f"qd_bench_{uuid.uuid4().hex[:10]}"
            with self._admin.connect() as connection:
                connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
            self._schemas.append(schema)
            options = {"options": f"-csearch_path={schema}"}
            url = make_url(self._pg_url).update_query_dict(options).render_as_string(hide_password=False)
        upgrade(url)
        return url

    def close(self) -> None:
        if self._admin is not None:
            with self._admin.connect() as connection:
                for schema in self._schemas:
                    connection.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
            self._admin.engine.dispose()
        self._folder.cleanup()


def bench_throughput(url: str, bars: list[Bar], batch_size: int) -> dict[str, Any]:
    db = make_engine(url)
    writer = StoreWriter(session_factory(db), mode=Mode.PAPER, config_sha=SHA, batch_size=batch_size)
    engine, venue, clock = build()
    writer.attach(engine)
    engine.start()
    drive(engine, venue, clock, bars)
    engine.end_cycle()
    buffered = writer.stats().buffered
    started = time.perf_counter()
    written = writer.flush()
    seconds = time.perf_counter() - started
    stats = writer.stats()
    db.dispose()
    assert written == buffered and stats.quarantined == 0 and not stats.degraded
    return {
        "records": written,
        "seconds": round(seconds, 3),
        "events_per_s": round(written / seconds),
        "batches": stats.flushes,
        "orders": len(engine.orders.orders),
        "decisions": len(engine.pipeline.decisions),
    }


def bench_outbox(url: str, n: int, kind: str = "thread", decided: bool = False) -> dict[str, Any]:
    """`persist_before_send` per order, p50/p99 (ms). `decided`: each order is an entry whose
    signal and decision are still buffered, as on a live entry, so the outbox first has them
    written (the thread writer in this thread, the writer process in its child: a round trip)."""
    db = make_engine(url)
    writer: StoreWriter
    if kind == "process":
        writer = ProcessStoreWriter(session_factory(db), url, mode=Mode.PAPER, config_sha=SHA)
        writer.flush()  # the child is up
    else:
        writer = StoreWriter(session_factory(db), mode=Mode.PAPER, config_sha=SHA)
    samples = []
    for i in range(n):
        plan_id = f"OUTBOX{i}"
        if decided:
            signal = Signal("bench", "S0", Side.BUY, T0 + i, stop=Decimal("99.5"), targets=(Decimal(101),))
            writer._capture.on_signal(signal)
            ten, risk = Decimal(10), Decimal(5)
            writer._capture.on_decision(
                DecisionRecord(plan_id, signal, True, (), (), ten, risk, Decimal("0.05"), T0 + i)
            )
        order = Order(f"qd-{plan_id}-entry-0", "S0", Side.BUY, OrderType.MARKET, Decimal(10), tag="ENTRY")
        order.transition(OrderStatus.PENDING_SUBMIT, T0)
        t0 = time.perf_counter_ns()
        writer.persist_before_send(order, strategy="bench", plan_id=plan_id)
        samples.append(time.perf_counter_ns() - t0)
    if kind == "process":
        writer.stop()
    db.dispose()
    a = np.asarray(samples[n // 10 :], dtype=np.float64) / 1e6
    return {
        "orders": n,
        "p50_ms": round(float(np.percentile(a, 50)), 3),
        "p99_ms": round(float(np.percentile(a, 99)), 3),
    }


# Streams through 64 MB (twice this machine's L3), as the writer's row building and the database's
# pages go through memory: a loop that only spins (`pass`) costs the engine nothing measurable
# here, while memory traffic beside it delays its wake-ups (a scratch run: 53 late-episode heads
# against 83 off for the spinning loop, 215 for this one, at 60% of a CPU).
_BURNER = """
import sys, time
import numpy as np
share, period = float(sys.argv[1]), 0.1
a = np.ones(8_000_000)
while True:
    start = time.perf_counter()
    while time.perf_counter() - start < share * period:
        a += 1.0
    time.sleep(max(0.0, period - (time.perf_counter() - start)))
"""
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _machine_cpu_s() -> float:
    """CPU seconds every process of the machine has used (Linux /proc/stat; 0 elsewhere)."""
    try:
        first = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in first[1:8])
    return (user + nice + system + irq + softirq) / _TICKS


class Burner:
    """A process that keeps `share` of one CPU busy, in bursts every 0.1 s, until closed."""

    def __init__(self, share: float) -> None:
        self._process = None
        if share > 0:
            self._process = subprocess.Popen([sys.executable, "-c", _BURNER, f"{share:.4f}"])
            if HELPER_CPUS is not None:
                os.sched_setaffinity(self._process.pid, HELPER_CPUS)
        time.sleep(0.2)

    def close(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()


def latency_run(
    url: str | None,
    bars: list[Bar],
    pace_ns: int,
    kind: str = "thread",
    arrivals: list[int] | None = None,
    cpu: dict[str, float] | None = None,
    after_pump: list[bool] | None = None,
) -> list[int]:
    """One run; `cpu` (if given) gets the run's wall seconds and the CPU seconds the rest of the
    machine used meanwhile (everything but this process); `after_pump` as `drive`'s."""
    engine, venue, clock = build()
    writer: StoreWriter | None = None
    capture: CaptureOnly | None = None
    db = None
    if kind == "capture":
        assert url is not None
        capture = CaptureOnly(url, engine)
        db = capture.db
    elif url is not None:
        db = make_engine(url)
        if kind == "process":
            writer = ProcessStoreWriter(
                session_factory(db), url, mode=Mode.PAPER, config_sha=SHA, cpus=HELPER_CPUS
            )
        else:
            writer = StoreWriter(session_factory(db), mode=Mode.PAPER, config_sha=SHA)
        writer.attach(engine)
    engine.start()
    tune_gc_for_trading()
    if writer is not None:
        writer.start_background()  # the node's period (store.writer.FLUSH_INTERVAL_S)
    wall, machine, own = time.perf_counter(), _machine_cpu_s(), time.process_time()
    samples = drive(engine, venue, clock, bars, pace_ns, writer or capture, arrivals, after_pump)
    if cpu is not None:
        cpu["wall_s"] = time.perf_counter() - wall
        cpu["others_s"] = _machine_cpu_s() - machine - (time.process_time() - own)
    if writer is not None:
        writer.stop()
    if db is not None:
        db.dispose()
    gc.unfreeze()
    if arrivals is not None:
        del arrivals[: len(arrivals) // 10]
    if after_pump is not None:
        del after_pump[: len(after_pump) // 10]
    return samples[len(samples) // 10 :]  # the first tenth warms caches


def after_pump_split(samples: list[int], after_pump: list[bool]) -> dict[str, float]:
    """What the pumps cost the decisions right after them, within one run (so the machine's
    drift between runs cancels): their share, their p50 over the others' p50, and how far they
    move the run's p50 (µs)."""
    after = np.asarray([s for s, a in zip(samples, after_pump, strict=True) if a], dtype=np.float64)
    others = np.asarray([s for s, a in zip(samples, after_pump, strict=True) if not a], dtype=np.float64)
    if not len(after) or not len(others):
        return {"share": len(after) / max(1, len(samples)), "p50_ratio": 1.0, "p50_shift_us": 0.0}
    rest = float(np.median(others))
    return {
        "share": len(after) / len(samples),
        "p50_ratio": float(np.median(after)) / rest,
        "p50_shift_us": (float(np.median(np.asarray(samples, dtype=np.float64))) - rest) / 1_000.0,
    }


def bench_latency(backends: Backends, name: str, bars: list[Bar], repeat: int, rate: int) -> dict[str, Any]:
    """Per repeat, one run without a writer, one with the thread writer and one with the process
    writer, back to back, their order rotating from one repeat to the next; each repeat gives a
    paired ratio (with / without), and the result is the median of those ratios with their range.

    Pairing matters on a shared machine: its speed drifts by tens of percent over seconds, so
    medians of separate runs (the earlier method) can differ by more than the 10% being judged."""
    pace_ns = SECOND // rate if rate else 0
    share = calibrate_share(backends, name, bars, pace_ns)
    kinds = ("off", "thread", "process", "control") + (("capture",) if PARTS else ())
    runs: dict[str, list[dict[str, float]]] = {kind: [] for kind in kinds}
    due: dict[str, list[dict[str, float]]] = {kind: [] for kind in kinds}
    splits: dict[str, list[dict[str, float]]] = {kind: [] for kind in ("process", "capture")}
    for i in range(repeat):
        for kind in kinds[i % len(kinds) :] + kinds[: i % len(kinds)]:
            url = None if kind in ("off", "control") else backends.fresh(name)
            arrivals: list[int] | None = [] if pace_ns else None
            burner = Burner(share) if kind == "control" else None
            pumped: list[bool] = []
            try:
                samples = latency_run(url, bars, pace_ns, kind, arrivals, after_pump=pumped)
            finally:
                if burner is not None:
                    burner.close()
            runs[kind].append(percentiles_us(samples))
            if kind in splits:
                splits[kind].append(after_pump_split(samples, pumped))
            if arrivals is not None:
                due[kind].append(percentiles_us(arrivals))
    off = runs["off"]
    result: dict[str, Any] = {
        "events_per_s": rate or "unpaced",
        "decisions": off[0]["count"],
        "repeat": repeat,
        "control_cpu_share": round(share, 3),
    }
    for kind in kinds[1:]:
        result[kind] = _paired(runs[kind], off)
        if pace_ns:
            result[kind]["from_due"] = _paired(due[kind], due["off"])
        if splits.get(kind):
            result[kind]["after_pump"] = {
                key: round(statistics.median(split[key] for split in splits[kind]), 3)
                for key in ("share", "p50_ratio", "p50_shift_us")
            }
    return result


def calibrate_share(backends: Backends, name: str, bars: list[Bar], pace_ns: int, pairs: int = 2) -> float:
    """The share of one CPU the writer process and the database take beside the engine: the
    rest of the machine's CPU per second with the writer process, less without (the mean of
    `pairs` pairs: the rest of the machine is not idle either)."""
    extra = []
    for _ in range(pairs):
        shares = []
        for url, kind in ((None, "off"), (backends.fresh(name), "process")):
            cpu: dict[str, float] = {}
            latency_run(url, bars, pace_ns, kind, cpu=cpu)
            shares.append(cpu["others_s"] / cpu["wall_s"])
        extra.append(shares[1] - shares[0])
    return min(1.0, max(0.0, statistics.fmean(extra)))


def _paired(on_runs: list[dict[str, float]], off_runs: list[dict[str, float]]) -> dict[str, Any]:
    paired: dict[str, Any] = {}
    for key in ("p50", "p99"):
        ratios = [on[key] / without[key] for on, without in zip(on_runs, off_runs, strict=True)]
        paired[key] = {
            "off_us": round(statistics.median(r[key] for r in off_runs), 1),
            "on_us": round(statistics.median(r[key] for r in on_runs), 1),
            "ratio": round(statistics.median(ratios), 3),
            "ratio_range": [round(min(ratios), 2), round(max(ratios), 2)],
        }
    return paired


def _line(label: str, latency: dict[str, Any]) -> str:
    lines = []
    for kind in [k for k in ("thread", "process", "control", "capture") if k in latency]:
        who = f"writer {kind}"
        if kind == "control":
            who = f"no writer, burner at {latency['control_cpu_share']:.0%} of a CPU"
        elif kind == "capture":
            who = "the capture alone"
        for what, figures in (("engine time", latency[kind]), ("from due", latency[kind].get("from_due"))):
            if figures is None:
                continue
            p50, p99 = figures["p50"], figures["p99"]
            lines.append(
                f"  tick-to-decision {label}, {who}, {what}: "
                f"p50 {p50['off_us']} -> {p50['on_us']} us "
                f"(x{p50['ratio']}, pairs {p50['ratio_range'][0]}-{p50['ratio_range'][1]}), "
                f"p99 {p99['off_us']} -> {p99['on_us']} us "
                f"(x{p99['ratio']}, pairs {p99['ratio_range'][0]}-{p99['ratio_range'][1]})"
            )
        split = latency[kind].get("after_pump")
        if split is not None and split["share"] > 0:
            lines.append(
                f"    engine time of the decisions right after a pump ({split['share']:.1%}): p50 "
                f"x{split['p50_ratio']} the others', moving the run's p50 {split['p50_shift_us']:+.2f} us"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bars", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--outbox", type=int, default=300)
    parser.add_argument("--latency-bars", type=int, default=10_000)
    parser.add_argument("--rate", type=int, default=2_000, help="paced run: bar events per second")
    parser.add_argument("--repeat", type=int, default=9, help="paired repeats for latency")
    parser.add_argument("--switch-interval-us", type=float, help="sys.setswitchinterval for the run")
    parser.add_argument("--no-pg", action="store_true")
    parser.add_argument("--only", choices=["sqlite", "postgresql"], help="one back end")
    parser.add_argument("--engine-cpu", type=int, help="the engine's CPU alone, the writer on the others")
    parser.add_argument("--spin", action="store_true", help="with --engine-cpu: poll until due, no sleep")
    parser.add_argument("--parts", action="store_true", help="also time the capture alone")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    global HELPER_CPUS, PARTS, SPIN
    if args.spin and args.engine_cpu is None:
        parser.error("--spin needs --engine-cpu: a thread that never sleeps must have a CPU to itself")
    if args.engine_cpu is not None:
        HELPER_CPUS = cpus_besides(args.engine_cpu)
        pin_this_thread(args.engine_cpu)
    SPIN = args.spin
    PARTS = args.parts
    if args.switch_interval_us:
        sys.setswitchinterval(args.switch_interval_us / 1e6)
    pg_url = None if args.no_pg else os.environ.get("QUANTDESK_TEST_PG_URL", PG_DEFAULT_URL)
    bars = make_bars(args.bars)
    latency_bars = make_bars(args.latency_bars)
    report: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "switch_interval_us": sys.getswitchinterval() * 1e6,
        "engine_cpu": args.engine_cpu,
        "spin": args.spin,
        "parts": args.parts,
        "results": {},
    }
    backends = Backends(pg_url)
    try:
        for name in [n for n in backends.names if args.only in (None, n)]:
            result = {
                "throughput": bench_throughput(backends.fresh(name), bars, args.batch_size),
                "outbox": bench_outbox(backends.fresh(name), args.outbox),
                "entry_outbox": {
                    kind: bench_outbox(backends.fresh(name), args.outbox, kind, decided=True)
                    for kind in ("thread", "process")
                },
                "paced": bench_latency(backends, name, latency_bars, args.repeat, args.rate),
                "unpaced": bench_latency(backends, name, latency_bars, args.repeat, 0),
            }
            report["results"][name] = result
            t, o = result["throughput"], result["outbox"]
            print(
                f"{name}: {t['events_per_s']:,} events/s ({t['records']:,} records in {t['batches']} "
                f"batches, {t['seconds']} s); outbox p50 {o['p50_ms']} ms, p99 {o['p99_ms']} ms"
            )
            for kind, e in result["entry_outbox"].items():
                print(
                    f"  entry outbox with its signal and decision, writer {kind}: "
                    f"p50 {e['p50_ms']} ms, p99 {e['p99_ms']} ms"
                )
            print(_line(f"at {args.rate:,} events/s", result["paced"]))
            print(_line("unpaced", result["unpaced"]))
    finally:
        backends.close()
    write_report(args.json, report)


def write_report(path: Path | None, report: dict[str, Any]) -> None:
    """`report` as JSON at `path` (its folder made if missing); nothing without a path."""
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
