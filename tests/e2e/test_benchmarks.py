"""The store benchmarks run end to end on a small scale and report every arm they name; the crash
sweep runs one kill and checks it."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH_STORE = ROOT / "benchmarks" / "bench_store.py"
BENCH_TURNS = ROOT / "benchmarks" / "bench_store_turns.py"
CRASH_SWEEP = ROOT / "benchmarks" / "crash_sweep.py"


def _bench_store(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BENCH_STORE), "--no-pg", *args],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
    )


def test_bench_store_reports_each_writer_and_the_capture_alone_against_no_writer(tmp_path: Path) -> None:
    out = tmp_path / "store.json"
    small = ["--bars", "300", "--latency-bars", "600", "--outbox", "3", "--repeat", "1"]
    done = _bench_store(*small, "--parts", "--json", str(out))
    assert done.returncode == 0, done.stderr[-2000:]

    sqlite = json.loads(out.read_text())["results"]["sqlite"]
    assert sqlite["throughput"]["records"] > 0
    assert sqlite["throughput"]["events_per_s"] > 0
    for run in ("paced", "unpaced"):
        latency = sqlite[run]
        assert latency["decisions"] > 0
        for arm in ("thread", "process", "control", "capture"):
            for quantile in ("p50", "p99"):
                figures = latency[arm][quantile]
                assert figures["off_us"] > 0 and figures["on_us"] > 0
                # One pair: the median ratio is that pair's (rounded to 3 places, the range to 2).
                low, high = figures["ratio_range"]
                assert low == high and abs(low - figures["ratio"]) <= 0.006
    assert "from_due" in sqlite["paced"]["capture"]
    assert "from_due" not in sqlite["unpaced"]["capture"]
    assert "the capture alone" in done.stdout
    # Paced, the node's 0.1 s pumps fall inside a 0.3 s run; unpaced, 600 bars may end before one.
    for arm in ("process", "capture"):
        assert 0 < sqlite["paced"][arm]["after_pump"]["share"] < 1
        assert 0 <= sqlite["unpaced"][arm]["after_pump"]["share"] < 1
    assert "after_pump" not in sqlite["paced"]["thread"]
    assert "right after a pump" in done.stdout


def _load(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_after_pump_split_compares_the_decisions_of_one_run() -> None:
    bench = _load(BENCH_STORE)

    samples = [10_000, 10_000, 20_000, 20_000, 20_000]
    split = bench.after_pump_split(samples, [False, False, True, True, False])

    # After a pump: 20 us against the others' 10 us; the run's p50 (20 us) is 10 us above theirs.
    assert split == {"share": 0.4, "p50_ratio": 2.0, "p50_shift_us": 10.0}
    assert bench.after_pump_split([10_000], [False])["share"] == 0.0


def test_bench_store_refuses_spinning_without_a_cpu_of_its_own() -> None:
    done = _bench_store("--spin")
    assert done.returncode == 2
    assert "--spin needs --engine-cpu" in done.stderr


def test_bench_store_turns_reports_each_arm_against_off_with_its_interval(tmp_path: Path) -> None:
    out = tmp_path / "turns.json"
    small = [
        "--bars",
        "2000",
        "--unpaced-bars",
        "2000",
        "--block",
        "100",
        "--rate",
        "4000",
        "--parts",
        "--twin",
        "--replicas",
        "2",
        "--json",
        str(out),
    ]
    done = subprocess.run(
        [sys.executable, str(BENCH_TURNS), *small], capture_output=True, text=True, timeout=180, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr[-2000:]

    report = json.loads(out.read_text())
    assert report["settle"] is True  # each writer arm's work done within its own turns
    for run in ("paced", "unpaced"):
        summary = report[run]
        assert summary["blocks"] == 18  # 20 blocks, the first tenth left out
        assert summary["workers_per_arm"] == 2
        assert summary["decisions"] > 0
        for arm in ("process", "capture", "twin"):
            for quantile in ("p50", "p99"):
                figures = summary[arm][quantile]
                low, high = figures["interval"]
                assert figures["off_us"] > 0 and figures["on_us"] > 0
                assert 0 < low <= high
                assert figures["verdict"] in ("within", "over", "undecided")
        for arm in ("process", "capture"):
            assert 0 <= summary[arm]["after_pump"]["share"] < 1
        assert "after_pump" not in summary["twin"]  # no writer, never pumped
    assert "from_due" in report["paced"]["process"]
    assert "from_due" not in report["unpaced"]["process"]
    assert "the capture alone, engine time" in done.stdout
    assert "a twin of off, from due" in done.stdout
    assert "95% x" in done.stdout


def test_turns_compare_gives_the_ratio_of_the_pooled_blocks_and_its_interval(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.syspath_prepend(str(BENCH_TURNS.parent))  # it imports bench_store, as when run
    turns = _load(BENCH_TURNS)
    rng = np.random.default_rng(1)
    off = [rng.uniform(10.0, 30.0, size=50) for _ in range(30)]

    same = turns.compare([off], [off])
    doubled = turns.compare([[block * 2 for block in off]], [off])

    assert same["p50"]["ratio"] == 1.0 and same["p50"]["interval"] == [1.0, 1.0]
    assert same["p50"]["verdict"] == "within" and doubled["p99"]["verdict"] == "over"
    # Every draw pairs each block with itself, so twice as slow is x2 in every draw.
    assert doubled["p50"]["ratio"] == 2.0 and doubled["p99"]["interval"] == [2.0, 2.0]
    assert doubled["p50"]["on_us"] == pytest.approx(2 * doubled["p50"]["off_us"], abs=0.2)


def test_turns_intervals_hold_the_spread_between_an_arms_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    """With one process per arm the interval sees only the blocks; with two that differ by 6%,
    it spans them, as a second run of one process each could have landed on either."""
    monkeypatch.syspath_prepend(str(BENCH_TURNS.parent))
    turns = _load(BENCH_TURNS)
    rng = np.random.default_rng(2)
    off = [rng.uniform(10.0, 30.0, size=50) for _ in range(30)]

    one = turns.compare([[block * 1.03 for block in off]], [off])
    two = turns.compare([[block * 1.03 for block in off], [block * 1.09 for block in off]], [off, off])

    assert one["p50"]["interval"] == [1.03, 1.03]
    assert two["p50"]["ratio"] == pytest.approx(1.06, abs=0.01)
    low, high = two["p50"]["interval"]
    assert low == pytest.approx(1.03, abs=0.005) and high == pytest.approx(1.09, abs=0.005)
    assert two["p50"]["verdict"] == "within" and one["p50"]["verdict"] == "within"
    wide = turns.compare([[block * 1.05 for block in off], [block * 1.15 for block in off]], [off, off])
    assert wide["p50"]["verdict"] == "undecided"  # one process alone would have said within, or over


def test_turns_name_an_arms_further_processes_and_pool_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(BENCH_TURNS.parent))
    turns = _load(BENCH_TURNS)
    names = turns.worker_names(["off", "process"], 2)
    assert names == ["off", "process", "off.2", "process.2"]
    assert [turns.arm_of(name) for name in names] == ["off", "process", "off", "process"]
    worker = {
        "samples": list(range(1, 41)),
        "arrivals": [],
        "after_pump": [False] * 40,
        "blocks": list(range(2, 42, 2)),
    }
    summary = turns.summarize({name: worker for name in names}, paced=False)
    assert summary["workers_per_arm"] == 2
    assert summary["process"]["p50"]["ratio"] == 1.0
    assert summary["process"]["after_pump"]["share"] == 0


def test_turns_refuse_arms_that_decided_differently(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(BENCH_TURNS.parent))
    turns = _load(BENCH_TURNS)
    arm = {
        "samples": list(range(1, 41)),
        "arrivals": [],
        "after_pump": [False] * 40,
        "blocks": list(range(2, 42, 2)),
    }
    other = dict(arm, blocks=[*arm["blocks"][:-1], 41])

    with pytest.raises(RuntimeError, match="the process arm decided differently"):
        turns.summarize({"off": arm, "process": other}, paced=False)


def test_the_crash_sweep_kills_restarts_and_checks_a_run_with_a_flatten() -> None:
    one_kill = ["--runs", "1", "--max-kills", "1", "--max-point", "3", "--flatten"]
    done = subprocess.run(
        [sys.executable, str(CRASH_SWEEP), *one_kill],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    # any:1..3 comes early in every session: the kill lands, and the restarted node, which
    # flattens at its third entry fill, is checked.
    assert "run 1/1: any:" in done.stdout and "1 kill(s) landed, ok" in done.stdout
    assert "1 of 1 runs consistent, 1 kills landed" in done.stdout and "flattening" in done.stdout
