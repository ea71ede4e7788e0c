"""The `quantdesk` command as a user runs it: summaries, outputs, and one-line errors with exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

QUANTDESK = str(Path(sys.executable).with_name("quantdesk"))


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([QUANTDESK, *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_backtest_prints_a_summary_and_writes_json_and_report(tmp_path: Path) -> None:
    result = _run(
        "backtest",
        "--strategy",
        "sma_cross",
        "--data",
        "sample:GOOG",
        "--qty",
        "10",
        "--param",
        "fast=10",
        "--param",
        "slow=30",
        "--json",
        str(tmp_path / "r.json"),
        "--report",
        str(tmp_path / "r.html"),
    )
    assert result.returncode == 0, result.stderr
    assert "net P&L" in result.stdout and "Sharpe" in result.stdout
    summary = json.loads((tmp_path / "r.json").read_text())
    assert summary["trades"] and summary["event_log_sha256"]
    assert (tmp_path / "r.html").read_text().startswith("<!DOCTYPE html>")


def test_a_csv_file_with_flags_for_the_instrument(tmp_path: Path) -> None:
    lines = ["timestamp,open,high,low,close,volume"]
    price = 100.0
    for minute in range(120):
        price += 1.0 if (minute // 10) % 2 == 0 else -1.0
        stamp = f"2024-01-02 {14 + (30 + minute) // 60:02d}:{(30 + minute) % 60:02d}:00"
        lines.append(f"{stamp},{price},{price + 0.5},{price - 0.5},{price},100")
    path = tmp_path / "bars.csv"
    path.write_text("\n".join(lines) + "\n")
    result = _run(
        "backtest",
        "--strategy",
        "sma_cross",
        "--data",
        str(path),
        "--symbol",
        "BARS",
        "--tick-size",
        "0.5",
        "--lot-size",
        "5",
        "--qty",
        "10",
        "--json",
        str(tmp_path / "o.json"),
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "o.json").read_text())
    assert summary["instruments"]["BARS"]["source"] == "flags"
    assert summary["instruments"]["BARS"]["tick_size"] == "0.5"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--strategy", "nope", "--data", "sample:GOOG"], "unknown strategy 'nope' (known:"),
        (["--strategy", "sma_cross", "--data", "sample:GOOG", "--param", "fast=x"], "fast='x'"),
        (["--strategy", "sma_cross", "--data", "sample:GOOG", "--param", "fast"], "expected NAME=VALUE"),
        (["--strategy", "sma_cross", "--data", "missing.csv"], "missing.csv"),
        (["--strategy", "sma_cross", "--data", "sample:NOPE"], "NOPE"),
        (["--strategy", "sma_cross", "--data", "sample:GOOG", "--qty", "-1"], "--qty must be a positive"),
        (["--strategy", "sma_cross", "--data", "sample:GOOG", "--fill", "later"], "--fill 'later'"),
    ],
)
def test_user_errors_are_one_clear_line_without_a_traceback(args: list[str], message: str) -> None:
    result = _run("backtest", *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_a_malformed_data_file_names_file_row_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(
        "timestamp,open,high,low,close,volume\n"
        "2024-01-02 14:30:00,10,11,9,10.5,100\n"
        "2024-01-02 14:31:00,10,9,11,10.5,100\n"
    )
    result = _run("backtest", "--strategy", "sma_cross", "--data", str(path))
    assert result.returncode == 2
    assert "bad.csv" in result.stderr and "row 3" in result.stderr and "high" in result.stderr
    assert "Traceback" not in result.stderr


def test_strategies_and_samples_are_listed() -> None:
    strategies = _run("strategies")
    assert strategies.returncode == 0 and "vwap_micro_mean_reversion" in strategies.stdout
    samples = _run("samples")
    assert "sample:GOOG" in samples.stdout and "sample:EURUSD_1H" in samples.stdout


def test_db_upgrade_current_and_downgrade_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'q.db'}"
    assert "at revision 0001" in _run("db", "upgrade", "--db", url).stdout
    assert "revision 0001 (head 0001)" in _run("db", "current", "--db", url).stdout
    assert "at revision base" in _run("db", "downgrade", "--db", url).stdout


def test_db_upgrade_with_the_database_down_is_one_line_and_exit_2() -> None:
    result = _run("db", "upgrade", "--db", "postgresql+psycopg://postgres@127.0.0.1:1/test")
    assert result.returncode == 2
    assert "cannot reach postgresql+psycopg://postgres@127.0.0.1:1/test" in result.stderr
    assert "Traceback" not in result.stderr
