"""Structured logs: JSON lines in a file, readable lines on stderr, order lines bound to their ids."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import structlog

from kit import flat_bar, instrument, rig
from quantdesk.engine.pipeline import PipelineConfig
from quantdesk.model import Bar
from quantdesk.risk import Mode, RiskConfig, SizingConfig
from quantdesk.store import writer  # its module-level logger exists before logging is configured
from quantdesk.strategies import Strategy
from quantdesk.telemetry import OrderLogger, configure_logging


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


class EnterOnce(Strategy):
    def on_start(self) -> None:
        self.entered = False

    def on_bar(self, bar: Bar) -> None:
        if not self.entered:
            self.entered = True
            self.enter_long(stop=bar.close * 0.98, targets=[bar.close * 1.04])


def test_existing_structlog_loggers_and_stdlib_loggers_write_json_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "logs" / "quantdesk.jsonl"
    sinks = configure_logging(json_path=path, console=True, level="info")
    writer.log.info("store_ready", url="sqlite:///x.db", amount=Decimal("12.50"))
    writer.log.debug("too_detailed")  # below the level: dropped
    logging.getLogger("uvicorn.error").warning("Started server process")
    try:
        raise ValueError("boom")
    except ValueError:
        structlog.get_logger("quantdesk.node").exception("step_failed", step="flush")
    sinks.close()

    ours = {"quantdesk.store.writer", "uvicorn.error", "quantdesk.node"}
    lines = [line for line in read_lines(path) if line["logger"] in ours]
    assert [line["event"] for line in lines] == ["store_ready", "Started server process", "step_failed"]
    stamps = [datetime.fromisoformat(line["timestamp"]) for line in lines]
    assert stamps == sorted(stamps)  # a stdlib record keeps the time it was made
    first = lines[0]
    assert first["logger"] == "quantdesk.store.writer" and first["level"] == "info"
    assert first["amount"] == "12.50"  # exact, not a float
    assert datetime.fromisoformat(first["timestamp"]).utcoffset() is not None
    assert lines[1]["logger"] == "uvicorn.error" and lines[1]["level"] == "warning"
    assert lines[2]["level"] == "error" and "boom" in json.dumps(lines[2]["exception"])
    assert "locals" not in json.dumps(lines[2]["exception"])  # they may hold secrets
    console = capsys.readouterr().err
    assert "store_ready" in console and "Started server process" in console
    assert "ValueError: boom" in console
    assert not console.lstrip().startswith("{")  # readable, not JSON


def test_each_order_update_and_fill_is_one_line_bound_to_its_ids(tmp_path: Path) -> None:
    path = tmp_path / "orders.jsonl"
    sinks = configure_logging(json_path=path, console=False)
    r = rig(
        [instrument("AAA")],
        cash=Decimal(100_000),
        pipeline=PipelineConfig(
            risk=RiskConfig(max_data_age_seconds=None, sizing=SizingConfig(mode="risk")), mode=Mode.PAPER
        ),
    )
    r.engine.add_strategy(EnterOnce("AAA"))
    OrderLogger.attach(r.engine)
    r.engine.start()
    r.feed(flat_bar(0, 100.0), flat_bar(1, 100.0))
    sinks.close()

    lines = [line for line in read_lines(path) if line["logger"] == "quantdesk.orders"]
    orders = r.engine.orders
    entry = next(o for o in orders.orders.values() if o.tag == "ENTRY")
    plan_id = orders.plan_of(entry.client_order_id)
    assert plan_id and plan_id in entry.client_order_id
    fills = [line for line in lines if line["event"] == "fill"]
    assert len(fills) == 1 and fills[0]["client_order_id"] == entry.client_order_id
    assert fills[0]["qty"] == "250" and fills[0]["status"] == "FILLED"
    updates = [line for line in lines if line["event"] == "order_update"]
    # The entry (accepted, filled), then its stop and target (accepted).
    assert {u["client_order_id"] for u in updates} == set(orders.orders)
    for line in lines:
        assert line["plan_id"] == plan_id
        assert line["strategy"] == orders.strategy_of(line["client_order_id"]) != ""
        assert line["symbol"] == "AAA"
        assert line["status"] in {"ACCEPTED", "FILLED"}


def test_a_bad_level_is_refused() -> None:
    with pytest.raises(ValueError, match="log level"):
        configure_logging(console=False, level="loud")
