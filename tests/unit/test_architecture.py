"""The project's structural promises: time only from the clock, dependencies pointing inward."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "quantdesk"
WALL_CLOCK = re.compile(
    r"datetime\.now\(|datetime\.utcnow\(|\butcnow\(|time\.time\(|time\.time_ns\(|date\.today\("
    r"|time\.monotonic\(|time\.perf_counter"
)


def test_only_the_clock_module_reads_wall_time() -> None:
    offenders = [
        f"{path.relative_to(SRC)}:{number}: {line.strip()}"
        for path in SRC.rglob("*.py")
        if path.parent.name != "clock"
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if WALL_CLOCK.search(line)
    ]
    assert offenders == []


def test_the_wall_clock_check_catches_a_read(tmp_path: Path) -> None:
    assert WALL_CLOCK.search("stamp = datetime.now(tz=UTC)")
    assert WALL_CLOCK.search("t0 = time.time()")
    assert not WALL_CLOCK.search("self.clock.now_ns()")


def test_import_contracts_hold() -> None:
    linter = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(linter)], capture_output=True, text=True, cwd=SRC.parents[1])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "broken" not in result.stdout.lower().replace("0 broken", "")


def test_every_module_says_what_it_owns() -> None:
    missing = []
    for path in SRC.rglob("*.py"):
        text = path.read_text().lstrip()
        if not text.startswith('"""'):
            missing.append(str(path.relative_to(SRC)))
    assert missing == []
