"""Engine throughput: sma_cross over seeded synthetic minute bars, quantdesk beside its peers.

Each run happens in a fresh child process, so no run warms another's caches. Peak
RSS is the engine's own: the watermark is reset (Linux /proc/self/clear_refs) after
the data are generated, so it counts the run plus the interpreter and its imports;
the process peak including data generation is kept as `process_peak_rss_mb`.
For each engine and size the benchmark reports the median of `--repeat` runs:
bars per second, wall seconds, peak RSS, trades and net P&L. Trade counts differ
on tick-grid prices: float SMAs see phantom crosses where the two averages are
exactly equal, quantdesk's exact SMA does not (see docs/PERFORMANCE.md).

    .venv/bin/python benchmarks/bench_engine.py                  # 100k and 1M bars
    .venv/bin/python benchmarks/bench_engine.py --bars 100000 --repeat 5 --json out/bench.json
    # NautilusTrader pins pandas<3: run its side from a venv of its own, in the same run
    .venv/bin/python benchmarks/bench_engine.py --peer-python nautilus=/tmp/naut-venv/bin/python

quantdesk runs as built: compiled after `make build` (`make bench` builds first), pure
after `make pure`; each run's JSON says which (`compiled`). Its timing is
`run_backtest` as a user calls it: the full engine (strategy callbacks, signals, order
state machine, simulated matching, portfolio, event log hash) plus building trades,
the equity curve and statistics. Data generation is
excluded for every engine; peers' own data wrangling is reported apart.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SEED = 7
FAST, SLOW = 10, 20


def _bars(n: int) -> Any:
    from quantdesk.data.synthetic import synthetic_intraday

    series = synthetic_intraday("SYN", bars=n, seed=SEED)
    _reset_peak_rss()
    return series


def _reset_peak_rss() -> None:
    """Start the peak-RSS watermark afresh (Linux), so it measures the engine, not data generation."""
    import ctypes
    import gc

    gc.collect()
    with contextlib.suppress(OSError):
        # Hand the generator's freed temporaries back to the OS (glibc keeps them otherwise).
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child_quantdesk(n: int) -> dict[str, Any]:
    from quantdesk.backtest import run_backtest
    from quantdesk.model import Instrument
    from quantdesk.strategies import get_strategy

    series = _bars(n)
    strategy = get_strategy("sma_cross")("SYN", fast=FAST, slow=SLOW)
    started = time.perf_counter()
    result = run_backtest(
        [strategy],
        {"SYN": series},
        {"SYN": Instrument("SYN")},
        cash=Decimal(10**12),
        default_qty=Decimal(1),
    )
    seconds = time.perf_counter() - started
    import quantdesk
    import quantdesk.engine.engine

    return {
        "name": "quantdesk",
        "version": quantdesk.__version__,
        "compiled": not str(quantdesk.engine.engine.__file__).endswith(".py"),
        "seconds": seconds,
        "prepare_seconds": 0.0,
        "trades": len(result.trades),
        "net_pnl": float(result.stats.realized_pnl),
        "orders": len(result.orders),
    }


def _child_peer(name: str, n: int) -> dict[str, Any]:
    sys.path.insert(0, str(HERE))
    module = __import__(f"peers.{name}", fromlist=["run", "available"])
    if not module.available():
        return {"name": name, "unavailable": True}
    series = _bars(n)
    result = module.run(series.ts, series.open, series.high, series.low, series.close, series.volume)
    return {
        "name": result.name,
        "version": result.version,
        "seconds": result.seconds,
        "prepare_seconds": result.prepare_seconds,
        "trades": result.trades,
        "net_pnl": result.net_pnl,
    }


def _child(engine: str, n: int) -> None:
    payload = _child_quantdesk(n) if engine == "quantdesk" else _child_peer(engine, n)
    payload["bars"] = n
    payload["peak_rss_mb"] = _peak_rss_mb()
    payload["process_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(payload))


def _run_child(engine: str, n: int, python: str | None = None) -> dict[str, Any]:
    """One run in a fresh process: this interpreter, or `python` (a peer's own venv), which then
    finds quantdesk (for the data) and the peer harnesses on PYTHONPATH."""
    env = None
    if python is not None:
        paths = [str(HERE.parent / "src"), str(HERE), os.environ.get("PYTHONPATH", "")]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    completed = subprocess.run(
        [python or sys.executable, __file__, "--child", engine, str(n)],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    if completed.returncode != 0:
        return {"name": engine, "error": completed.stderr.strip().splitlines()[-1:]}
    return dict(json.loads(completed.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bars", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--engines", nargs="+", default=["quantdesk", "backtesting_py", "nautilus"])
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--peer-python",
        action="append",
        default=[],
        metavar="ENGINE=PYTHON",
        help="run ENGINE's runs with another interpreter, e.g. nautilus=/tmp/naut-venv/bin/python "
        "(a peer whose pins clash with quantdesk's lives in a venv of its own)",
    )
    parser.add_argument("--child", nargs=2, metavar=("ENGINE", "BARS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child[0], int(args.child[1]))
        return
    interpreters = dict(item.split("=", 1) for item in args.peer_python)

    rows: list[dict[str, Any]] = []
    for n in args.bars:
        for engine in args.engines:
            runs = []
            # Interleave nothing: repeats of one engine back to back, each in its own process.
            for _ in range(args.repeat):
                outcome = _run_child(engine, n, interpreters.get(engine))
                if "seconds" not in outcome:
                    print(
                        f"{engine} at {n:,} bars: {outcome.get('error') or 'not installed'}", file=sys.stderr
                    )
                    break
                runs.append(outcome)
            if not runs:
                continue
            seconds = [r["seconds"] for r in runs]
            median = statistics.median(seconds)
            row = {
                **runs[0],
                "seconds_runs": seconds,
                "seconds": median,
                "bars_per_second": n / median,
                "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
            }
            rows.append(row)
            print(
                f"{engine:>15} {n:>9,} bars  {row['bars_per_second']:>11,.0f} bars/s  "
                f"median {median:7.3f}s  (min {min(seconds):.3f}, max {max(seconds):.3f})  "
                f"rss {row['peak_rss_mb']:6.0f} MB  trades {row['trades']:,}",
                flush=True,
            )
    print()
    for n in args.bars:
        ours = next((r for r in rows if r["name"] == "quantdesk" and r["bars"] == n), None)
        if ours is None:
            continue
        for row in rows:
            if row["bars"] == n and row is not ours:
                print(
                    f"{n:>9,} bars: quantdesk is {ours['bars_per_second'] / row['bars_per_second']:.1f}x "
                    f"{row['name']} ({row['version']}); trades {ours['trades']} vs {row['trades']}"
                )
    machine = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "system": f"{platform.system()} {platform.release()}",
    }
    print(f"\n{machine}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"machine": machine, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
