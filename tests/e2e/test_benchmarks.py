"""The store benchmark runs end to end on a small scale and reports every arm it names."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCH_STORE = ROOT / "benchmarks" / "bench_store.py"


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


def test_after_pump_split_compares_the_decisions_of_one_run() -> None:
    spec = importlib.util.spec_from_file_location("bench_store", BENCH_STORE)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)

    samples = [10_000, 10_000, 20_000, 20_000, 20_000]
    split = bench.after_pump_split(samples, [False, False, True, True, False])

    # After a pump: 20 us against the others' 10 us; the run's p50 (20 us) is 10 us above theirs.
    assert split == {"share": 0.4, "p50_ratio": 2.0, "p50_shift_us": 10.0}
    assert bench.after_pump_split([10_000], [False])["share"] == 0.0


def test_bench_store_refuses_spinning_without_a_cpu_of_its_own() -> None:
    done = _bench_store("--spin")
    assert done.returncode == 2
    assert "--spin needs --engine-cpu" in done.stderr
