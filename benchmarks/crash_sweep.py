"""Crash sweep: kill -9 a paper node at random points where it and the venue talk, one to three
times in a row, restart it each time, and check every run as the crash tests do.

The suite's crash tests (tests/integration/crash) kill the node at the lifecycle steps the issue
names, and at the recovery's own first order or cancel. This sweeps the rest: each run draws one
to `--max-kills` points `any:N` (the N-th submit, cancel or venue answer of that start: see
child.py), so a later kill often lands while the node is still recovering from the one before.
After the last kill the node runs to the end of the data, and the run is checked with the
tests' own `assert_consistent`: the node and the venue agree once recovered and at the end, no
client order id reached the venue twice, nothing is left working, and every execution the venue
made is in the store once. With `--flatten`, every start of the node also flattens (as
/flatten does) at the third entry fill it hears, so kills land in flattens too. Too slow for
the suite (each start is a new process: ~4 s); `--runs 40` takes a few minutes.

    python benchmarks/crash_sweep.py --runs 40 --seed 1 [--flatten]
"""

from __future__ import annotations

import argparse
import random
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration" / "crash"))

from test_crash_recovery import assert_consistent, launch, read


def sweep_one(work: Path, kills: list[str]) -> tuple[int, str | None]:
    """Run the node through `kills`, then to the end; (how many kills landed, the failure or None)."""
    landed = 0
    for point in kills:
        result = launch(work, point)
        if result.returncode == 0:  # the point never came: it ran to the end
            break
        if result.returncode != -signal.SIGKILL:
            return landed, f"start after {landed} kills exited {result.returncode}: {result.stderr[-1500:]}"
        landed += 1
    else:
        result = launch(work)
        if result.returncode != 0:
            return landed, f"the last start exited {result.returncode}: {result.stderr[-1500:]}"
    try:
        assert_consistent(work, read(work, "after_start.json"), read(work, "final.json"))
    except AssertionError as error:
        return landed, f"inconsistent: {error}"
    return landed, None


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-kills", type=int, default=3, help="kills per run, drawn from 1..this")
    parser.add_argument("--flatten", action="store_true", help="each start flattens at its third entry fill")
    parser.add_argument(
        "--max-point", type=int, default=470, help="N of any:N, drawn from 1..this (a whole session: ~470)"
    )
    args = parser.parse_args()
    if args.runs < 1 or args.max_kills < 1 or args.max_point < 1:
        parser.error("--runs, --max-kills and --max-point must be at least 1")
    rng = random.Random(args.seed)
    failed: list[tuple[list[str], str, Path]] = []
    landed_total = 0
    for run in range(1, args.runs + 1):
        kills = [f"any:{rng.randint(1, args.max_point)}" for _ in range(rng.randint(1, args.max_kills))]
        work = Path(tempfile.mkdtemp(prefix="quantdesk-crash-"))
        if args.flatten:
            (work / "flatten").touch()
        started = time.monotonic()
        landed, problem = sweep_one(work, kills)
        landed_total += landed
        verdict = "ok" if problem is None else "FAILED"
        print(
            f"run {run}/{args.runs}: {' '.join(kills)}: {landed} kill(s) landed, {verdict} "
            f"({time.monotonic() - started:.1f} s)",
            flush=True,
        )
        if problem is None:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"  {problem}\n  kept: {work}", flush=True)
            failed.append((kills, problem, work))
    print(
        f"{args.runs - len(failed)} of {args.runs} runs consistent, {landed_total} kills landed "
        f"(seed {args.seed}, any:1..{args.max_point}, 1..{args.max_kills} kills a run"
        f"{', flattening' if args.flatten else ''})"
    )
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
