"""Tick-to-decision with the store on against off, by turns: engines in processes of their own
take turns on the engine's CPU, block by block, so the machine's drift falls on all of them alike.

`bench_store.py` pairs whole runs, each ~5-10 s long. On a host whose speed drifts by half or
more within seconds (2026-12-05, an Intel Xeon under KVM: the same pure-Python loop took 261-481
ms in twelve runs back to back), its pairs spread from x0.4 to x2.7 and a median of nine cannot
tell x1.05 from x1.15. Here:

- One worker process per arm (`--replicas N`: N), each with an engine of its own, built the
  same and fed the same bars: **off** (no writer), **process** (the node's default writer, a
  process of its own), with `--parts` **capture** (its handlers alone, records drained as they
  would be shipped) and, with `--twin`, **twin** (a second engine without a writer: what two
  processes doing the same work differ by, the spread the writer's ratios are read against).
- The bars are cut into blocks of `--block`. Block k goes to every worker in turn, the order
  rotating from one block to the next; a worker waits for its turn asleep, so only one engine
  runs at a time. A worker paces its block from when its turn began (its first event due then,
  each next one a gap later), and pumps the writer as the node's loop does, every 0.1 s of its
  own running: the time it waits for its turn is not counted (`bench_store.Drive`).
- Each arm's decisions are pooled over its blocks (the first tenth of the blocks warms caches)
  and compared with the off arm's: p50 and p99 of the engine's time and, paced, of the time
  from when each event was due. Blocks are seconds apart at most, so a drift of the machine
  reaches every arm within the same few blocks.
- The precision of each ratio: a block bootstrap, paired (the same blocks drawn for every arm),
  gives its 95% interval. A cell is within the target when the whole interval is below x1.10.
- Two processes doing the same work differ by up to ~3% (heap layout, caches; not the hash
  seed: docs/PERFORMANCE.md, "Late morning of 2026-12-05"), which blocks alone cannot show.
  `--twin` shows it; `--replicas N` runs N processes per arm, and each bootstrap draw then also
  draws each arm's processes (with replacement), so the interval holds it.

With `--engine-cpu N` the workers run on CPU N, and the writer process, this coordinating
process and the database (if you pin it) on the others; `--spin` as in `bench_store.py`.

A writer arm settles before it hands the CPU on: at the end of its turn it ships what it holds
and waits until its writer process has written it (`flush`, outside the timed events). Without
that (`--no-settle`, as T1-T28 ran), a writer's work could run on into the next arms' turns: its
child still writing, and its shipper thread, which ships when nobody has pumped for a second,
shipping on the engine's CPU while the other workers took theirs. That cost fell on the arms
without a writer too and took it out of the ratio: SQLite, spinning, paced p50 x1.066 unsettled
(T25) against x1.103 settled (S1), x1.095-1.10 in whole runs (docs/PERFORMANCE.md, "Afternoon
of 2026-12-05"). Every turn still starts with caches other engines used: each block's first
decisions are slower in every arm alike.

    .venv/bin/python benchmarks/bench_store_turns.py --engine-cpu 0 --spin --parts --twin
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import sys
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

import bench_store as bench
from quantdesk.engine.runtime import cpus_besides, pin_this_thread, tune_gc_for_trading
from quantdesk.risk import Mode
from quantdesk.store import make_engine, session_factory
from quantdesk.store.writer_process import ProcessStoreWriter

BOOTSTRAP = 2_000
TARGET = 1.10
# `--twin`: a second arm without a writer, built and fed as `off` is. Its ratio to `off` is what
# two processes doing the same work differ by (heap layout, caches, when each got the CPU):
# a writer's ratio means something only beyond that.
TWIN = "twin"


def _worker(
    conn: Connection,
    kind: str,
    url: str | None,
    n_bars: int,
    pace_ns: int,
    engine_cpu: int | None,
    helpers: frozenset[int] | None,
    spin: bool,
    settle: bool,
) -> None:
    """One arm: its engine, fed each block it is sent; at the end, its samples per block."""
    if engine_cpu is not None:
        bench.HELPER_CPUS = helpers
        pin_this_thread(engine_cpu)
    bench.SPIN = spin
    bars = bench.make_bars(n_bars)
    engine, venue, clock = bench.build()
    writer: ProcessStoreWriter | bench.CaptureOnly | None = None
    db = None
    if kind == "process":
        assert url is not None
        db = make_engine(url)
        writer = ProcessStoreWriter(
            session_factory(db), url, mode=Mode.PAPER, config_sha=bench.SHA, cpus=bench.HELPER_CPUS
        )
        writer.attach(engine)
    elif kind == "capture":
        assert url is not None
        writer = bench.CaptureOnly(url, engine)
        db = writer.db
    engine.start()
    tune_gc_for_trading()
    if isinstance(writer, ProcessStoreWriter):
        writer.start_background()
    feed = bench.Drive(engine, venue, clock, pace_ns, writer)
    blocks: list[int] = []  # the sample count after each block
    conn.send("ready")
    while (turn := conn.recv()) is not None:
        low, high = turn
        feed.run(bars[low:high])
        blocks.append(len(feed.samples))
        if settle and isinstance(writer, ProcessStoreWriter):
            writer.flush()  # its work done in its own turn, not in the next arm's
        conn.send("done")
    if isinstance(writer, ProcessStoreWriter):
        writer.stop()
    if db is not None:
        db.dispose()
    conn.send(
        {"samples": feed.samples, "arrivals": feed.arrivals, "after_pump": feed.after_pump, "blocks": blocks}
    )


def run_turns(
    names: list[str],
    urls: dict[str, str | None],
    n_bars: int,
    block: int,
    pace_ns: int,
    engine_cpu: int | None,
    helpers: frozenset[int] | None,
    spin: bool,
    settle: bool = True,
) -> dict[str, dict[str, Any]]:
    """Every worker's samples, cut per block, after all blocks went to every worker in rotating
    order; the workers on `engine_cpu`, their writer processes on `helpers`. A worker's name is
    its arm's kind, and `.2`, `.3`... for the arm's further processes (`--replicas`)."""
    spawn = multiprocessing.get_context("spawn")
    links: dict[str, Connection] = {}
    workers = []
    for name in names:
        here, there = spawn.Pipe()
        process = spawn.Process(
            target=_worker,
            args=(there, arm_of(name), urls.get(name), n_bars, pace_ns, engine_cpu, helpers, spin, settle),
        )
        process.start()
        links[name] = here
        workers.append(process)
    try:
        for name in names:
            _answer(links, name)
        starts = list(range(0, n_bars, block))
        for k, low in enumerate(starts):
            order = names[k % len(names) :] + names[: k % len(names)]
            for name in order:
                links[name].send((low, min(n_bars, low + block)))
                _answer(links, name)
            if k % max(1, len(starts) // 10) == 0:
                print(f"    block {k + 1} of {len(starts)}", file=sys.stderr, flush=True)
        results = {}
        for name in names:
            links[name].send(None)
            results[name] = _answer(links, name)
    finally:
        for link in links.values():
            link.close()  # a worker still waiting for a turn (another failed) ends on it
        for process in workers:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    return results


def _answer(links: dict[str, Connection], name: str) -> Any:
    try:
        return links[name].recv()
    except EOFError:
        raise RuntimeError(f"the {name} worker failed (its traceback is above)") from None


def arm_of(name: str) -> str:
    """The arm a worker belongs to: `process.2` is the process arm's second worker."""
    return name.split(".")[0]


def worker_names(kinds: list[str], replicas: int) -> list[str]:
    """Each arm's workers, the first named as the arm, interleaved so that turns alternate arms."""
    return [kind if r == 1 else f"{kind}.{r}" for r in range(1, replicas + 1) for kind in kinds]


def _per_block(values: list[int], ends: list[int], skip: int) -> list[np.ndarray]:
    """`values` cut at each block's end, the first `skip` blocks left out (µs)."""
    array = np.asarray(values, dtype=np.float64) / 1_000.0
    return np.split(array, ends[:-1])[skip:]


def compare(on: list[list[np.ndarray]], off: list[list[np.ndarray]], seed: int = 7) -> dict[str, Any]:
    """p50 and p99 of the pooled blocks of an arm's workers (`on`: per worker, its blocks),
    against off's, each ratio with its 95% interval and its verdict against the target: within
    (the whole interval below it), over (all of it at or above), or undecided.

    The interval is a bootstrap: each draw takes blocks (the same for both arms: they ran side
    by side) and, where an arm has several workers, as many of its workers with replacement
    (apart for each arm: two processes share nothing but the machine), so that it holds what
    one process differs from another by as well as the blocks' own spread."""
    rng = np.random.default_rng(seed)
    quantiles = (50, 99)
    blocks = len(on[0])
    pooled_on = np.percentile(np.concatenate([b for worker in on for b in worker]), quantiles)
    pooled_off = np.percentile(np.concatenate([b for worker in off for b in worker]), quantiles)
    ratios = np.empty((BOOTSTRAP, len(quantiles)))
    for n, draw in enumerate(rng.integers(0, blocks, size=(BOOTSTRAP, blocks))):
        workers_on = rng.integers(0, len(on), size=len(on)) if len(on) > 1 else (0,)
        workers_off = rng.integers(0, len(off), size=len(off)) if len(off) > 1 else (0,)
        drawn_on = np.percentile(np.concatenate([on[w][i] for w in workers_on for i in draw]), quantiles)
        drawn_off = np.percentile(np.concatenate([off[w][i] for w in workers_off for i in draw]), quantiles)
        ratios[n] = drawn_on / drawn_off
    result: dict[str, Any] = {}
    for k, name in enumerate(("p50", "p99")):
        low, high = np.percentile(ratios[:, k], [2.5, 97.5])
        result[name] = {
            "off_us": round(float(pooled_off[k]), 1),
            "on_us": round(float(pooled_on[k]), 1),
            "ratio": round(float(pooled_on[k] / pooled_off[k]), 3),
            "interval": [round(float(low), 3), round(float(high), 3)],
            "verdict": "within" if high < TARGET else ("over" if low >= TARGET else "undecided"),
        }
    return result


def summarize(raw: dict[str, dict[str, Any]], paced: bool) -> dict[str, Any]:
    """Each arm against off (engine time; paced, from due too), and (a writer's) its after-pump
    split; `raw` by worker name (`worker_names`)."""
    ends = raw["off"]["blocks"]
    skip = max(1, len(ends) // 10)
    arms: dict[str, list[dict[str, Any]]] = {}
    for name, figures in raw.items():
        if figures["blocks"] != ends:
            raise RuntimeError(f"the {name} arm decided differently from the off arm")
        arms.setdefault(arm_of(name), []).append(figures)
    summary: dict[str, Any] = {
        "decisions": sum(len(b) for b in _per_block(raw["off"]["samples"], ends, skip)),
        "blocks": len(ends) - skip,
        "workers_per_arm": len(arms["off"]),
    }

    def blocks(workers: list[dict[str, Any]], what: str) -> list[list[np.ndarray]]:
        return [_per_block(figures[what], ends, skip) for figures in workers]

    for kind, workers in arms.items():
        if kind == "off":
            continue
        arm = compare(blocks(workers, "samples"), blocks(arms["off"], "samples"))
        if paced:
            arm["from_due"] = compare(blocks(workers, "arrivals"), blocks(arms["off"], "arrivals"))
        summary[kind] = arm
        if kind == TWIN:
            continue
        first = ends[skip - 1]
        split = bench.after_pump_split(
            [x for figures in workers for x in figures["samples"][first:]],
            [x for figures in workers for x in figures["after_pump"][first:]],
        )
        arm["after_pump"] = {key: round(value, 3) for key, value in split.items()}
    return summary


def _lines(label: str, summary: dict[str, Any]) -> list[str]:
    workers = summary["workers_per_arm"]
    each = f", {workers} processes per arm" if workers > 1 else ""
    lines = [f"  {label}: {summary['decisions']:,} decisions per process in {summary['blocks']} blocks{each}"]
    for kind, who in (
        ("process", "writer process"),
        ("capture", "the capture alone"),
        (TWIN, "a twin of off"),
    ):
        if kind not in summary:
            continue
        for what, figures in (("engine time", summary[kind]), ("from due", summary[kind].get("from_due"))):
            if figures is None:
                continue
            cells = []
            for name in ("p50", "p99"):
                f = figures[name]
                low, high = f["interval"]
                interval = f"95% x{low}-{high}, {f['verdict']}"
                cells.append(f"{name} {f['off_us']} -> {f['on_us']} us (x{f['ratio']}, {interval})")
            lines.append(f"    {who}, {what}: " + "; ".join(cells))
        if kind == TWIN:
            continue
        split = summary[kind]["after_pump"]
        lines.append(
            f"      decisions right after a pump: {split['share']:.1%}, p50 x{split['p50_ratio']} "
            f"the others', moving the arm's p50 {split['p50_shift_us']:+.2f} us"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bars", type=int, default=40_000, help="bars each arm is fed, paced")
    # Unpaced, the engine makes records faster than the writer process writes them (SQLite ~30-37k
    # a second on the hosts of 2026-12-05): with 120,000 bars its backlog reached the buffer's
    # bound (100,000 records), where a node pauses, and a full pipe makes the pump come back
    # every PIPE_FULL_WAIT_S, a regime the node does not trade in; with 40,000 it did not.
    parser.add_argument("--unpaced-bars", type=int, default=40_000, help="bars each arm is fed, unpaced")
    parser.add_argument("--block", type=int, default=400, help="bars per turn")
    parser.add_argument("--rate", type=int, default=2_000, help="paced run: bar events per second")
    parser.add_argument("--only", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--engine-cpu", type=int, help="the workers' CPU; everything else on the others")
    parser.add_argument("--spin", action="store_true", help="with --engine-cpu: poll until due, no sleep")
    parser.add_argument("--parts", action="store_true", help="also the capture alone")
    parser.add_argument(
        "--twin", action="store_true", help="also a second arm without a writer: the method's own spread"
    )
    parser.add_argument(
        "--replicas",
        type=int,
        default=1,
        help="processes per arm: the intervals then hold what one process differs from another by",
    )
    parser.add_argument(
        "--settle",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="a writer arm's work is done before the next arm's turn (--no-settle: as T1-T28 ran)",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.replicas < 1:
        parser.error("--replicas must be at least 1")
    if args.spin and args.engine_cpu is None:
        parser.error("--spin needs --engine-cpu: a thread that never sleeps must have a CPU to itself")
    if args.block < 1 or min(args.bars, args.unpaced_bars) < 20 * args.block:
        parser.error(
            "--bars and --unpaced-bars must hold at least 20 blocks of --block bars "
            "(the first tenth warms caches)"
        )
    helpers = None
    if args.engine_cpu is not None:
        helpers = cpus_besides(args.engine_cpu)
        os.sched_setaffinity(0, helpers)  # this process coordinates from the other CPUs
    pg_url = (
        os.environ.get("QUANTDESK_TEST_PG_URL", bench.PG_DEFAULT_URL) if args.only == "postgresql" else None
    )
    kinds = ["off", "process"] + (["capture"] if args.parts else []) + ([TWIN] if args.twin else [])
    report: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "back_end": args.only,
        "engine_cpu": args.engine_cpu,
        "spin": args.spin,
        "block": args.block,
        "bars": args.bars,
        "unpaced_bars": args.unpaced_bars,
        "replicas": args.replicas,
        "settle": args.settle,
    }
    backends = bench.Backends(pg_url)
    if args.only not in backends.names:
        backends.close()
        sys.exit(f"{args.only}: not available")
    try:
        for label, rate in ((f"at {args.rate:,} events/s", args.rate), ("unpaced", 0)):
            names = worker_names(kinds, args.replicas)
            urls: dict[str, str | None] = {
                name: backends.fresh(args.only) for name in names if arm_of(name) not in ("off", TWIN)
            }
            pace_ns = bench.SECOND // rate if rate else 0
            print(f"{args.only}, {label}:", file=sys.stderr, flush=True)
            bars = args.bars if rate else args.unpaced_bars
            raw = run_turns(
                names, urls, bars, args.block, pace_ns, args.engine_cpu, helpers, args.spin, args.settle
            )
            summary = summarize(raw, paced=bool(rate))
            report["paced" if rate else "unpaced"] = summary
            print("\n".join(_lines(f"{args.only}, tick-to-decision {label}", summary)), flush=True)
    finally:
        backends.close()
    bench.write_report(args.json, report)


if __name__ == "__main__":
    main()
