"""Trading-pipeline latency on the simulated venue: flatten of 50 positions, and tick-to-decision.

1. Flatten. A fresh engine trades 50 symbols; each strategy's one signal passes
   the real pipeline (gate, sizer, OCO), its market entry fills on the next bar
   and gets a protective stop and a target: 50 positions, 100 working orders.
   `engine.flatten()` is timed with perf_counter_ns (it issues every cancel and
   every closing market order; the simulated venue answers synchronously), and
   so is the time from the call until the venue reports every position flat:
   one more bar per symbol is fed (venue matching + engine dispatch) so the
   closing market orders fill, and the clock stops when
   `engine.open_strategy_positions()` and `engine.orders.working_orders()` are
   both empty. Target: under 250 ms. Median and max of `--flatten-repeat` runs.

2. Tick-to-decision. Ten symbols; a strategy per symbol asks to enter long
   (stop and target 0.10 away, a ranking feature) on every Nth event of its
   symbol when flat. The pipeline runs everything: ranking, a StoplossGuard
   protection, risk sizing capped by notional, all 13 gate checks (stale-data
   check on; entry cutoff and session checks from the XNYS calendar unless
   `--no-calendar`), the decision record, and for approved plans the entry
   order submitted to the simulated venue. Per event, perf_counter_ns brackets
   `engine.on_bar(bar)` (or `engine.on_tick(tick)`) plus the `engine.end_cycle()`
   called right after it, so each event is its own decision cycle. The venue's
   matching of working orders against the event runs just before, outside the
   window (its time is reported apart). Latency is reported for events that
   produced a decision and for events that produced none, and for the decisions
   of the first and last quarter of the run (the protection reads every closed
   trade, so its cost grows through a session). Target: p99 under 200
   microseconds for decision events. Variants: `bar` and `tick` (limit entries
   at the print; each symbol's aggregated bar is delivered untimed once a
   minute, since the stale-data check reads bar times) run the full pipeline;
   `bar-unprotected` is `bar` without the protection, to show its share.

    .venv/bin/python benchmarks/bench_pipeline.py
    .venv/bin/python benchmarks/bench_pipeline.py --events 20000 --every 5 --json out/pipeline.json
    .venv/bin/python benchmarks/bench_pipeline.py --profile    # cProfile of both parts

Garbage collection stays on: its pauses are part of what a live process sees.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import platform
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

from quantdesk.bus import MessageBus
from quantdesk.clock import SimulatedClock
from quantdesk.clock.calendar import MarketCalendar
from quantdesk.engine import Engine, EngineConfig
from quantdesk.engine.pipeline import PipelineConfig
from quantdesk.engine.runtime import tune_gc_for_trading
from quantdesk.model import Bar, Instrument, Tick
from quantdesk.ranking import RankingConfig
from quantdesk.risk import Mode, RiskConfig, SizingConfig
from quantdesk.strategies import Strategy
from quantdesk.venues.sim import SimulatedExchange

SEED = 11
SECOND = 1_000_000_000
MINUTE = 60 * SECOND
T0 = 1_704_205_800_000_000_000  # 2024-01-02 14:30 UTC, the NYSE open
FLATTEN_TARGET_MS = 250.0
DECISION_P99_TARGET_US = 200.0
FLATTEN_SYMBOLS = 50
LATENCY_SYMBOLS = 10
BAR_SPACING_NS = SECOND // 2  # 10 symbols interleaved: each symbol gets a 5-second bar
TICK_SPACING_NS = SECOND // 10  # each symbol ticks once a second
TICK_BAR_EVERY = 60  # a symbol's aggregated bar every 60 of its ticks (max data age is 120 s)
DISTANCE = 0.10  # stop and target distance from the signal's price (10 ticks)


# -- strategies ---------------------------------------------------------------------------------


class BracketOnce(Strategy):
    """Asks once, on its first bar, for a market long with a stop 5 below and a target 10 above."""

    name = "bracket_once"

    def on_start(self) -> None:
        self.sent = False

    def on_bar(self, bar: Bar) -> None:
        if not self.sent:
            self.sent = True
            self.enter_long(stop=bar.close - 5.0, targets=[bar.close + 10.0], rationale="bench")


class EveryNthBar(Strategy):
    """Asks for a market long with a bracket on every `every`-th bar of its symbol when flat."""

    name = "every_nth_bar"
    every: int = 5

    def on_start(self) -> None:
        self.count = 0

    def on_bar(self, bar: Bar) -> None:
        self.count += 1
        if self.count % self.every == 0 and self.is_flat:
            close = bar.close
            self.enter_long(
                stop=round(close - DISTANCE, 2),
                targets=[round(close + DISTANCE, 2)],
                features={"momentum": 0.6},
            )


class EveryNthTick(Strategy):
    """Asks for a limit long at the print with a bracket on every `every`-th tick when flat."""

    name = "every_nth_tick"
    every: int = 5

    def on_start(self) -> None:
        self.count = 0

    def on_tick(self, tick: Tick) -> None:
        self.count += 1
        if self.count % self.every == 0 and self.is_flat:
            price = tick.price
            self.enter_long(
                entry=price,
                stop=round(price - DISTANCE, 2),
                targets=[round(price + DISTANCE, 2)],
                features={"momentum": 0.6},
            )


# -- the rig ------------------------------------------------------------------------------------


@dataclass
class Rig:
    """An engine on a simulated exchange with a simulated clock."""

    engine: Engine
    venue: SimulatedExchange
    clock: SimulatedClock

    def feed_instant(self, bars: list[Bar]) -> None:
        """Bars of one timestamp, as the backtest feed delivers them; the cycle is decided at the end."""
        self.engine.end_cycle()
        self.clock.advance_to(bars[0].ts_event)
        for bar in bars:
            self.venue.on_bar(bar)
            self.engine.on_bar(bar)
            self.venue.on_bar_close(bar)
        self.engine.end_cycle()


def build(
    symbols: list[str],
    strategies: list[Strategy],
    pipeline: PipelineConfig,
    *,
    cash: Decimal,
    calendar: MarketCalendar | None = None,
) -> Rig:
    instruments = {s: Instrument(s) for s in symbols}
    clock = SimulatedClock(T0 - MINUTE)
    venue = SimulatedExchange(instruments, cash=cash, clock_ns=clock.now_ns)
    engine = Engine(
        clock=clock,
        bus=MessageBus(),
        venue=venue,
        instruments=instruments,
        cash=cash,
        config=EngineConfig(timezone="America/New_York", pipeline=pipeline),
        calendar=calendar,
    )
    venue.set_price_source(engine.last_bar)
    for strategy in strategies:
        engine.add_strategy(strategy)
    engine.start()
    # As a node does after start-up: freeze what start-up built, make young collections rare.
    tune_gc_for_trading()
    return Rig(engine, venue, clock)


def flat_bars(symbols: list[str], ts: int, price: float) -> list[Bar]:
    return [Bar(s, ts, price, price, price, price, 1_000.0, ts) for s in symbols]


# -- part 1: flatten ------------------------------------------------------------------------------


def flatten_once(profiler: cProfile.Profile | None = None) -> dict[str, float]:
    symbols = [f"S{i:02d}" for i in range(FLATTEN_SYMBOLS)]
    risk = RiskConfig(
        max_open_positions=FLATTEN_SYMBOLS,
        max_data_age_seconds=120,
        sizing=SizingConfig(mode="fixed", fixed_qty=Decimal(10)),
    )
    rig = build(
        symbols,
        [BracketOnce(s) for s in symbols],
        PipelineConfig(risk=risk, mode=Mode.BACKTEST),
        cash=Decimal(10_000_000),
    )
    engine = rig.engine
    rig.feed_instant(flat_bars(symbols, T0, 100.0))  # 50 signals -> 50 approved market entries
    rig.feed_instant(flat_bars(symbols, T0 + MINUTE, 100.0))  # entries fill; stops and targets rest
    working = engine.orders.working_orders()
    positions = engine.open_strategy_positions()
    if len(positions) != FLATTEN_SYMBOLS or len(working) != 2 * FLATTEN_SYMBOLS:
        raise RuntimeError(f"set-up gave {len(positions)} positions and {len(working)} working orders")
    if engine.pipeline.approved != FLATTEN_SYMBOLS:
        raise RuntimeError(f"the gate approved {engine.pipeline.approved} of {FLATTEN_SYMBOLS} entries")

    exit_bars = flat_bars(symbols, T0 + 2 * MINUTE, 100.0)
    if profiler is not None:
        profiler.enable()
    started = time.perf_counter_ns()
    report = engine.flatten("benchmark")
    issued = time.perf_counter_ns()
    rig.feed_instant(exit_bars)  # the closing market orders fill at these bars' open
    if engine.open_strategy_positions() or engine.orders.working_orders():
        raise RuntimeError("not flat after one bar per symbol")
    flat = time.perf_counter_ns()
    if profiler is not None:
        profiler.disable()
    if any(rig.venue.positions.values()):
        raise RuntimeError(f"the venue still holds positions: {rig.venue.positions}")
    if (report.canceled, report.closing_orders) != (2 * FLATTEN_SYMBOLS, FLATTEN_SYMBOLS):
        raise RuntimeError(f"flatten canceled {report.canceled} and closed {report.closing_orders}")
    return {
        "flatten_call_ms": (issued - started) / 1e6,
        "engine_reported_ms": report.duration_ns / 1e6,
        "until_flat_ms": (flat - started) / 1e6,
        "canceled": report.canceled,
        "closing_orders": report.closing_orders,
    }


def bench_flatten(repeat: int) -> dict[str, Any]:
    flatten_once()  # warm-up: imports, first-call costs
    runs = [flatten_once() for _ in range(repeat)]
    out: dict[str, Any] = {
        "repeat": repeat,
        "positions": FLATTEN_SYMBOLS,
        "working_orders": 2 * FLATTEN_SYMBOLS,
    }
    for key in ("flatten_call_ms", "engine_reported_ms", "until_flat_ms"):
        values = [r[key] for r in runs]
        out[key] = {"median": statistics.median(values), "max": max(values), "runs": values}
    return out


# -- part 2: tick-to-decision ---------------------------------------------------------------------


def latency_pipeline(*, protections: bool) -> PipelineConfig:
    """Limits that approve most entries while every gate check runs (stops required, stale check on).

    The StoplossGuard's trade limit is out of reach: it evaluates on every signal and never locks.
    """
    risk = RiskConfig(
        max_risk_per_trade_pct=Decimal("0.5"),
        max_portfolio_heat_pct=Decimal("2.0"),
        max_daily_loss_pct=Decimal("2.0"),
        max_open_positions=LATENCY_SYMBOLS,
        max_positions_per_symbol=1,
        allow_stopless_entries=False,
        max_data_age_seconds=120,
        sizing=SizingConfig(mode="risk", risk_pct=Decimal("0.25"), max_notional=Decimal(50_000)),
    )
    return PipelineConfig(
        risk=risk,
        ranking=RankingConfig(weights={"momentum": 1.0}, top_n=5),
        protections=(
            {
                "method": "StoplossGuard",
                "lookback_minutes": 60,
                "trade_limit": 10_000,
                "stop_duration_minutes": 30,
            },
        )
        if protections
        else (),
        mode=Mode.BACKTEST,
        config_sha="bench",
    )


def random_walks(n_events: int, n_symbols: int, seed: int) -> np.ndarray[Any, np.dtype[np.float64]]:
    """Prices on the 0.01 grid, one column per symbol: steps of -4..+4 ticks, starting at 100."""
    rng = np.random.default_rng(seed)
    per_symbol = n_events // n_symbols + 2
    steps = rng.integers(-4, 5, size=(per_symbol, n_symbols))
    cents = 10_000 + np.cumsum(steps, axis=0)
    return np.asarray(np.round(cents / 100.0, 2), dtype=np.float64)


@dataclass
class Samples:
    """Per-event latencies in ns, split by what the event produced."""

    decision: list[int] = field(default_factory=list)
    decision_at: list[int] = field(default_factory=list)  # the event's index, to show drift
    approved: list[int] = field(default_factory=list)
    none: list[int] = field(default_factory=list)
    venue: list[int] = field(default_factory=list)
    closed_trades: int = 0
    blocked: dict[str, int] = field(default_factory=dict)


def run_bars(
    n_events: int,
    warmup: int,
    every: int,
    calendar: MarketCalendar | None,
    *,
    protections: bool = True,
    profiler: cProfile.Profile | None = None,
) -> Samples:
    symbols = [f"L{i}" for i in range(LATENCY_SYMBOLS)]
    rig = build(
        symbols,
        [EveryNthBar(s, every=every) for s in symbols],
        latency_pipeline(protections=protections),
        cash=Decimal(10_000_000),
        calendar=calendar,
    )
    engine, venue, clock = rig.engine, rig.venue, rig.clock
    prices = random_walks(n_events + warmup, LATENCY_SYMBOLS, SEED).tolist()
    # Every bar built before timing starts: the window holds the engine only.
    bars: list[Bar] = []
    for i in range(n_events + warmup):
        k = i % LATENCY_SYMBOLS
        row = i // LATENCY_SYMBOLS
        o, c = prices[row][k], prices[row + 1][k]
        ts = T0 + i * BAR_SPACING_NS
        bars.append(Bar(symbols[k], ts, o, max(o, c) + 0.01, min(o, c) - 0.01, c, 1_000.0, ts))
    return _drive(engine, clock.advance_to, bars, venue.on_bar, engine.on_bar, warmup, profiler)


def run_ticks(
    n_events: int,
    warmup: int,
    every: int,
    calendar: MarketCalendar | None,
    *,
    protections: bool = True,
    profiler: cProfile.Profile | None = None,
) -> Samples:
    symbols = [f"L{i}" for i in range(LATENCY_SYMBOLS)]
    rig = build(
        symbols,
        [EveryNthTick(s, every=every) for s in symbols],
        latency_pipeline(protections=protections),
        cash=Decimal(10_000_000),
        calendar=calendar,
    )
    engine, venue, clock = rig.engine, rig.venue, rig.clock
    # The gate's stale-data check reads the last bar's time, so the feed also delivers each
    # symbol's aggregated bar (outside the timed window), as a live tick-to-bar aggregator would.
    first = [Bar(s, T0 - SECOND, 100.0, 100.0, 100.0, 100.0, 1_000.0, T0 - SECOND) for s in symbols]
    clock.advance_to(T0 - SECOND)
    for b in first:
        engine.on_bar(b)
    prices = random_walks(n_events + warmup, LATENCY_SYMBOLS, SEED).tolist()
    ticks: list[Tick] = []
    for i in range(n_events + warmup):
        k = i % LATENCY_SYMBOLS
        ts = T0 + i * TICK_SPACING_NS
        ticks.append(Tick(symbols[k], ts, prices[i // LATENCY_SYMBOLS + 1][k], 100.0, ts))

    def before(tick: Tick) -> None:
        venue.on_tick(tick)
        count = (tick.ts_event - T0) // TICK_SPACING_NS // LATENCY_SYMBOLS
        if count % TICK_BAR_EVERY == 0:
            p = tick.price
            engine.on_bar(Bar(tick.symbol, tick.ts_event, p, p, p, p, 1_000.0, tick.ts_event))

    return _drive(engine, clock.advance_to, ticks, before, engine.on_tick, warmup, profiler)


def _drive(
    engine: Engine,
    advance: Callable[[int], int],
    events: list[Any],
    venue_side: Callable[[Any], None],
    dispatch: Callable[[Any], None],
    warmup: int,
    profiler: cProfile.Profile | None = None,
) -> Samples:
    """Feed `events` one by one, timing dispatch + end_cycle; `profiler` sees only that window."""
    samples = Samples()
    enable = profiler.enable if profiler is not None else _nothing
    disable = profiler.disable if profiler is not None else _nothing
    pipeline = engine.pipeline
    end_cycle = engine.end_cycle
    clock_ns = time.perf_counter_ns
    for i, event in enumerate(events):
        advance(event.ts_event)
        v0 = clock_ns()
        venue_side(event)  # fills of working orders: before the strategies see the event
        signals, approved = engine.signals, pipeline.approved
        enable()
        t0 = clock_ns()
        dispatch(event)
        end_cycle()
        t1 = clock_ns()
        disable()
        if i < warmup:
            continue
        samples.venue.append(t0 - v0)
        if engine.signals != signals:
            samples.decision.append(t1 - t0)
            samples.decision_at.append(i - warmup)
            if pipeline.approved != approved:
                samples.approved.append(t1 - t0)
        else:
            samples.none.append(t1 - t0)
    if pipeline.approved == 0:
        raise RuntimeError(f"no entry was approved; blocks: {pipeline.blocked}")
    samples.closed_trades = len(engine.closed_trades)
    samples.blocked = dict(pipeline.blocked)
    return samples


def _nothing() -> None:
    return None


def percentiles_us(values: list[int]) -> dict[str, float]:
    if not values:
        return {"count": 0}
    a = np.asarray(values, dtype=np.float64) / 1_000.0
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return {
        "count": len(values),
        "p50": float(p50),
        "p90": float(p90),
        "p99": float(p99),
        "max": float(a.max()),
        "mean": float(a.mean()),
    }


VARIANTS = {
    "bar": ("bar events, full pipeline", "bar", True),
    "tick": ("tick events, full pipeline", "tick", True),
    "bar-unprotected": ("bar events, no protection configured", "bar", False),
}


def bench_latency(variant: str, n_events: int, every: int, calendar: MarketCalendar | None) -> dict[str, Any]:
    title, kind, protections = VARIANTS[variant]
    gc.collect()  # start each variant from a clean heap, not the previous one's garbage
    warmup = max(1_000, n_events // 20)
    run = run_bars if kind == "bar" else run_ticks
    samples = run(n_events, warmup, every, calendar, protections=protections)
    quarter = n_events // 4
    first = [ns for ns, at in zip(samples.decision, samples.decision_at, strict=True) if at < quarter]
    last = [
        ns for ns, at in zip(samples.decision, samples.decision_at, strict=True) if at >= n_events - quarter
    ]
    return {
        "title": title,
        "kind": kind,
        "protections": ["StoplossGuard"] if protections else [],
        "events": n_events,
        "warmup": warmup,
        "every": every,
        "closed_trades": samples.closed_trades,
        "blocked": samples.blocked,
        "decision": percentiles_us(samples.decision),
        "decision_first_quarter": percentiles_us(first),
        "decision_last_quarter": percentiles_us(last),
        "approved": percentiles_us(samples.approved),
        "no_decision": percentiles_us(samples.none),
        "venue_matching": percentiles_us(samples.venue),
    }


# -- report -----------------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def print_report(
    flatten: dict[str, Any], latency: dict[str, dict[str, Any]], machine: dict[str, str]
) -> None:
    print(
        f"\nFlatten: {flatten['positions']} positions, {flatten['working_orders']} working orders, "
        f"simulated venue, {flatten['repeat']} fresh engines"
    )
    print(f"  {'':34} {'median':>10} {'max':>10}   target")
    labels = {
        "flatten_call_ms": "engine.flatten() call",
        "engine_reported_ms": "  as FlattenReport.duration_ns",
        "until_flat_ms": "until flat (+1 bar per symbol)",
    }
    for key, label in labels.items():
        row = flatten[key]
        target = "" if key == "engine_reported_ms" else f"< {FLATTEN_TARGET_MS:.0f} ms"
        mark = "" if not target else verdict(row["max"] < FLATTEN_TARGET_MS)
        print(f"  {label:34} {row['median']:8.2f}ms {row['max']:8.2f}ms   {target} {mark}")
    for result in latency.values():
        print(
            f"\nTick-to-decision, {result['title']}: {result['events']:,} events timed after "
            f"{result['warmup']:,} warm-up, {LATENCY_SYMBOLS} symbols, a signal every "
            f"{result['every']}th event of a symbol when flat (microseconds)"
        )
        print(f"  {'':30} {'count':>7} {'p50':>8} {'p90':>8} {'p99':>8} {'max':>9}   target")
        rows = (
            ("decision events", "decision"),
            ("  of which approved + sent", "approved"),
            ("  in the first quarter", "decision_first_quarter"),
            ("  in the last quarter", "decision_last_quarter"),
            ("no-decision events", "no_decision"),
            ("venue matching (outside)", "venue_matching"),
        )
        for label, key in rows:
            s = result[key]
            if not s["count"]:
                print(f"  {label:30} {0:>7}")
                continue
            target = ""
            if key == "decision":
                target = f"p99 < {DECISION_P99_TARGET_US:.0f} {verdict(s['p99'] < DECISION_P99_TARGET_US)}"
            print(
                f"  {label:30} {s['count']:>7,} {s['p50']:8.1f} {s['p90']:8.1f} {s['p99']:8.1f} "
                f"{s['max']:9.1f}   {target}"
            )
        blocked = ", ".join(f"{k} {v}" for k, v in sorted(result["blocked"].items())) or "none"
        print(f"  closed trades by the end: {result['closed_trades']:,}; blocks by reason: {blocked}")
    print(f"\n{machine}")


def profile(every: int, calendar: MarketCalendar | None, n_events: int) -> str:
    """cProfile of each timed window: flatten (call + exit bars) and bar events (dispatch + decision)."""
    out = io.StringIO()
    windows: list[tuple[str, Callable[[cProfile.Profile], object]]] = [
        ("flatten, 5 runs", lambda p: [flatten_once(p) for _ in range(5)]),
        ("bar events, full pipeline", lambda p: run_bars(n_events, 0, every, calendar, profiler=p)),
        (
            "bar events, no protection",
            lambda p: run_bars(n_events, 0, every, calendar, protections=False, profiler=p),
        ),
    ]
    for title, run in windows:
        profiler = cProfile.Profile()
        run(profiler)
        print(f"\n==== cProfile: {title} ====", file=out)
        stats = pstats.Stats(profiler, stream=out).strip_dirs()
        stats.sort_stats("tottime").print_stats(15)
        stats.sort_stats("cumulative").print_stats(25)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--flatten-repeat", type=int, default=15)
    parser.add_argument("--events", type=int, default=20_000, help="timed events per variant")
    parser.add_argument("--every", type=int, default=5, help="a signal every Nth event of a symbol")
    parser.add_argument("--variants", nargs="+", choices=tuple(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--no-calendar", action="store_true", help="skip the gate's calendar checks")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of both parts")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    calendar = None if args.no_calendar else MarketCalendar("XNYS", start="2023-12-01", end="2024-12-31")
    started = time.perf_counter()
    flatten = bench_flatten(args.flatten_repeat)
    latency = {name: bench_latency(name, args.events, args.every, calendar) for name in args.variants}
    import quantdesk

    machine = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "system": f"{platform.system()} {platform.release()}",
        "quantdesk": quantdesk.__version__,
    }
    print_report(flatten, latency, machine)
    print(
        f"calendar checks: {'off' if calendar is None else 'XNYS'}; wall {time.perf_counter() - started:.1f}s"
    )
    if args.profile:
        print(profile(args.every, calendar, min(args.events, 10_000)))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "machine": machine,
            "calendar": None if calendar is None else "XNYS",
            "targets": {"flatten_ms": FLATTEN_TARGET_MS, "decision_p99_us": DECISION_P99_TARGET_US},
            "flatten": flatten,
            "latency": latency,
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
