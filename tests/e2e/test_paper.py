"""`quantdesk paper` as a user runs it: a child process, its API, trades, a flatten, SIGTERM."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

QUANTDESK = str(Path(sys.executable).with_name("quantdesk"))
FAST = "[risk]\nmax_data_age_seconds = 600\n"  # at 3,000x a bar is 5 s of market old after 2 ms
SHUTDOWN = [
    "Trading PAUSED",
    "Positions flattened",
    "Replay feed stopped",
    "API stopped",
    "OrderWatcher stopped",
    "Engine stopped",
    "Store flushed",
    "Alerter stopped",
    "Node stopped",
]


def wait_for(what: str, check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_paper_trades_serves_flattens_and_stops_cleanly(tmp_path: Path) -> None:
    config = tmp_path / "risk.toml"
    config.write_text(FAST)
    var = tmp_path / "var"
    args = [QUANTDESK, "paper", "--speed", "3000", "--port", "0", "--var-dir", str(var)]
    node = subprocess.Popen(
        [*args, "--config", str(config)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert node.stdout is not None
        banner = ""
        while "Ctrl+C" not in banner:
            line = node.stdout.readline()
            assert line, f"the node ended early: {node.stderr.read() if node.stderr else ''}"
            banner += line
        url = re.search(r"API\s+(http://127\.0\.0\.1:\d+)", banner)
        token = re.search(r"token\s+(\S+)", banner)
        assert url and token, banner
        assert (var / "api-token").read_text().strip() == token.group(1)
        api = httpx.Client(base_url=url.group(1), timeout=10)
        auth = {"Authorization": f"Bearer {token.group(1)}"}

        assert api.get("/health").json()["mode"] == "PAPER"
        wait_for("a position", lambda: api.get("/positions").json())
        filled = [o for o in api.get("/orders").json()["recent"] if o["status"] == "FILLED"]
        assert filled

        started = time.monotonic()
        flat = api.post("/flatten", headers=auth).json()
        took = time.monotonic() - started
        assert flat["done"] is True and flat["open_positions"] == 0 and flat["working_orders"] == 0
        assert flat["duration_ms"] < 2_000 and took < 2.0
        assert api.post("/flatten").status_code == 401

        families = {f.name: f for f in text_string_to_metric_families(api.get("/metrics").text)}
        assert families["trader_signals"].samples[0].value > 0
        assert families["trader_orders_filled"].samples[0].value >= len(filled)

        node.send_signal(signal.SIGTERM)
        assert node.wait(timeout=30) == 0
    finally:
        if node.poll() is None:
            node.kill()
    log = [json.loads(line) for line in (var / "logs" / "quantdesk.jsonl").read_text().splitlines()]
    events = [entry["event"] for entry in log]
    assert [e for e in events if e in SHUTDOWN] == SHUTDOWN


def test_a_paper_day_passes_the_burn_in_check(tmp_path: Path) -> None:
    config = tmp_path / "risk.toml"
    config.write_text(FAST)
    var = tmp_path / "var"
    args = ["--port", "0", "--var-dir", str(var), "--config", str(config), "--exit-at-end"]
    day = subprocess.run(
        [QUANTDESK, "paper", "--speed", "3000", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert day.returncode == 0, day.stderr[-2000:]
    db = f"sqlite:///{var / 'quantdesk.db'}"
    check = subprocess.run(
        [QUANTDESK, "burnin", "check", "--db", db, "--date", "2024-01-02"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stdout[-3000:]
    assert "burn-in day PASSED" in check.stdout


@pytest.mark.parametrize(
    ("flags", "why"),
    [
        (["--engine-cpu", "4096"], "engine_cpu 4096"),  # a CPU the machine does not have
        (["--engine-spin"], "engine_spin needs engine_cpu"),
    ],
)
def test_an_engine_placement_the_node_cannot_have_is_one_clear_line(
    tmp_path: Path, flags: list[str], why: str
) -> None:
    var = tmp_path / "var"
    result = subprocess.run(
        [QUANTDESK, "paper", *flags, "--port", "0", "--var-dir", str(var)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert why in result.stderr and "Traceback" not in result.stderr
    assert not (var / "quantdesk.db").exists()  # refused before the store was touched


@pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs CPU affinity (Linux) and two CPUs this process may use",
)
def test_a_paper_day_on_a_spinning_engine_runs_to_the_end_and_stops_in_order(tmp_path: Path) -> None:
    config = tmp_path / "risk.toml"
    config.write_text(FAST)
    cpu = str(min(os.sched_getaffinity(0)))
    args = ["--port", "0", "--var-dir", str(tmp_path / "var"), "--config", str(config), "--exit-at-end"]
    day = subprocess.run(
        [QUANTDESK, "paper", "--speed", "3000", "--engine-cpu", cpu, "--engine-spin", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert day.returncode == 0, day.stderr[-2000:]
    assert re.search(rf"engine_pinned .*cpu={cpu}.*spinning=True", day.stderr), day.stderr[-2000:]
    stops = [line for line in SHUTDOWN if line in day.stderr]
    assert stops[-3:] == ["Store flushed", "Alerter stopped", "Node stopped"]
