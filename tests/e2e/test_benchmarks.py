"""The store benchmark runs end to end on a small scale and reports every arm it names."""

from __future__ import annotations

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


def test_bench_store_refuses_spinning_without_a_cpu_of_its_own() -> None:
    done = _bench_store("--spin")
    assert done.returncode == 2
    assert "--spin needs --engine-cpu" in done.stderr
