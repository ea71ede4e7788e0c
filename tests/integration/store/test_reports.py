"""The daily report read from the store on both back ends: counts, exact P&L, OCO lifecycles,
flattens, trades, and its terminal and HTML renderings."""

from __future__ import annotations

import io
import re
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from rich.console import Console
from sqlalchemy.orm import Session, sessionmaker
from test_burnin import DAY, EOD, MINUTE, OPEN, SECOND, TZ, PaperDay, Variant, paper_day

from quantdesk.errors import UserError
from quantdesk.execution.client_ids import Leg
from quantdesk.model import Instrument, OrderType, Side, Signal
from quantdesk.store.burnin import report_daily
from quantdesk.store.report_html import render_html, render_terminal
from quantdesk.store.reports import (
    DailyReport,
    OrderCount,
    PnlLine,
    daily_report,
    day_window,
    latest_day,
)

DAY_NS = 86_400 * SECOND


@pytest.fixture
def day_report(sessions: sessionmaker[Session]) -> DailyReport:
    paper_day().save(sessions)
    return daily_report(sessions, DAY, TZ)


def test_day_window_is_local_midnight_to_midnight() -> None:
    start, end = day_window(DAY, TZ)

    assert start == 1_704_133_800 * SECOND  # 2024-01-01 18:30 UTC
    assert end - start == DAY_NS
    assert day_window(DAY, "UTC") == (1_704_153_600 * SECOND, 1_704_153_600 * SECOND + DAY_NS)


def test_unknown_time_zone_is_a_user_error() -> None:
    with pytest.raises(UserError, match="unknown time zone 'Mars/Olympus'"):
        day_window(DAY, "Mars/Olympus")


def test_report_counts_signals_decisions_blocks_orders_and_fills(day_report: DailyReport) -> None:
    assert (day_report.signals, day_report.signals_by_strategy) == (50, (("orb", 39), ("vwap", 11)))
    assert (day_report.decisions, day_report.approved, day_report.blocked) == (7, 3, 4)
    assert day_report.blocks_by_reason == (
        ("PAUSED", 2),
        ("ENTRY_CUTOFF", 1),
        ("PORTFOLIO_HEAT", 1),
        ("ZERO_SIZE", 1),
    )
    assert day_report.orders == (
        OrderCount("ENTRY", "FILLED", 2),
        OrderCount("ENTRY", "CANCELED", 1),
        OrderCount("STOP", "CANCELED", 3),
        OrderCount("TP1", "FILLED", 1),
        OrderCount("TP1", "CANCELED", 1),
        OrderCount("TP2", "FILLED", 1),
        OrderCount("EXIT", "FILLED", 1),
    )
    assert (day_report.order_total, day_report.fills) == (10, 6)


def test_pnl_is_exact_per_strategy_and_symbol(day_report: DailyReport) -> None:
    # A: sells 20 x 2540.10 + 20 x 2580.15 against buys 15 x 2500.05 + 25 x 2500.10 = 2401.75;
    # B: short 10 from 1500.25, bought back at 1490.75 = 95.00. Fees 0.1 + 0.2 + 0.3 + 0.4 and
    # 0.05 + 0.05: in binary floats they would not sum to 1.10.
    assert day_report.pnl == (
        PnlLine("orb", "RELIANCE", 1, Decimal("2401.75"), Decimal("1.0"), Decimal("2400.75"), Decimal(0)),
        PnlLine("vwap", "INFY", 1, Decimal("95.00"), Decimal("0.10"), Decimal("94.90"), Decimal(0)),
    )
    assert day_report.realized_net == Decimal("2495.65")
    assert day_report.fill_fees == Decimal("1.10")
    assert all(isinstance(line.net, Decimal) for line in day_report.pnl)


def test_trades_are_built_from_fills_with_how_they_ended(day_report: DailyReport) -> None:
    assert [
        (t.strategy, t.symbol, t.side, t.qty, t.entry_price, t.exit_price, t.pnl, t.exit_reason)
        for t in day_report.trades
    ] == [
        (
            "orb",
            "RELIANCE",
            "LONG",
            40,
            Decimal("2500.08125"),
            Decimal("2560.125"),
            Decimal("2400.75"),
            "target",
        ),
        ("vwap", "INFY", "SHORT", 10, Decimal("1500.25"), Decimal("1490.75"), Decimal("94.90"), "flatten"),
    ]
    assert [(t.entry_time, t.exit_time) for t in day_report.trades] == [
        (OPEN + MINUTE, OPEN + 60 * MINUTE),
        (OPEN + 5 * MINUTE + SECOND, EOD + 400_000_000),
    ]


def test_oco_lifecycles_say_what_was_placed_filled_cancelled_and_how_each_ended(
    day_report: DailyReport,
) -> None:
    by_symbol = {group.symbol: group for group in day_report.oco}
    a, b, c = by_symbol["RELIANCE"], by_symbol["INFY"], by_symbol["TCS"]

    assert (a.entry_filled_qty, a.children, a.filled_children, a.canceled_children) == (
        Decimal(40),
        ("STOP", "TP1", "TP2", "STOP"),
        ("TP1", "TP2"),
        ("STOP", "STOP"),
    )
    assert (a.ended, a.exited, a.siblings_canceled, a.full, a.orphaned) == ("target", True, True, True, False)
    assert (b.ended, b.filled_children, b.canceled_children, b.full) == (
        "flatten",
        (),
        ("STOP", "TP1"),
        False,
    )
    assert (c.ended, c.entry_filled, c.children, c.exited) == ("entry canceled", False, (), False)


def test_orphaned_group_lists_the_order_left_working(sessions: sessionmaker[Session]) -> None:
    day = paper_day(Variant(orphan_b_target=True))
    day.save(sessions)
    left = next(o.client_order_id for o, _, _ in day.orders if o.symbol == "INFY" and o.tag == Leg.TP1.value)

    report = daily_report(sessions, DAY, TZ)

    (infy,) = [group for group in report.oco if group.symbol == "INFY"]
    assert (infy.orphaned, infy.open_orders, infy.siblings_canceled) == (True, (left,), False)


def test_flatten_durations_come_from_flatten_risk_events(day_report: DailyReport) -> None:
    assert [
        (f.reason, f.actor, f.duration_ms, f.canceled, f.closing_orders) for f in day_report.flattens
    ] == [("kill switch test", "alice", 120.0, 0, 0), ("end of day", "system", 850.0, 3, 1)]
    assert day_report.flatten_requests == 1


def test_trade_opened_the_day_before_counts_on_the_day_it_closes_with_the_multiplier(
    sessions: sessionmaker[Session],
) -> None:
    day = PaperDay(
        instruments=[Instrument("NIFTYFUT", exchange="XNSE", currency="INR", multiplier=Decimal(50))]
    )
    signal = day.signal(Signal("swing", "NIFTYFUT", Side.BUY, OPEN - DAY_NS, stop=Decimal("21000")))
    plan = day.decide(signal, "2")
    entry = day.order(
        plan,
        Leg.ENTRY,
        "NIFTYFUT",
        Side.BUY,
        "2",
        OPEN - DAY_NS,
        strategy="swing",
        order_type=OrderType.MARKET,
    )
    day.fill(entry, "2", "21500.5", "1.25", OPEN - DAY_NS + SECOND)
    leave = day.order(
        plan, Leg.EXIT, "NIFTYFUT", Side.SELL, "2", OPEN, strategy="swing", order_type=OrderType.MARKET
    )
    day.fill(leave, "2", "21520.25", "1.25", OPEN + SECOND)
    day.save(sessions)

    before = daily_report(sessions, date(2024, 1, 1), TZ)
    today = daily_report(sessions, DAY, TZ)

    assert (before.trades, before.pnl[0].open_qty, before.pnl[0].net) == ((), Decimal(2), Decimal(0))
    # (21520.25 - 21500.5) x 2 x 50 = 1975.00, less 2.50 of fees.
    assert today.pnl[0] == PnlLine(
        "swing", "NIFTYFUT", 1, Decimal("1975.00"), Decimal("2.50"), Decimal("1972.50"), Decimal(0)
    )
    assert latest_day(sessions, TZ) == DAY


def test_empty_day_reports_zeros(sessions: sessionmaker[Session]) -> None:
    report = daily_report(sessions, DAY, TZ)

    assert (report.signals, report.decisions, report.orders, report.fills, report.oco, report.trades) == (
        0,
        0,
        (),
        0,
        (),
        (),
    )
    assert report.realized_net == Decimal(0)
    assert latest_day(sessions, TZ) is None


def test_terminal_report_shows_every_section_with_its_figures(day_report: DailyReport) -> None:
    console = Console(record=True, width=240)

    console.print(render_terminal(day_report))

    text = console.export_text()
    for expected in (
        "Daily report 2024-01-02 (Asia/Kolkata)",
        "3 approved, 4 blocked",
        "PORTFOLIO_HEAT",
        "Orders by leg and status",
        "2400.75",
        "2495.65",
        "850 ms",
        "entry canceled",
        "2500.08125",
    ):
        assert expected in text, expected


def test_html_report_is_self_contained_and_shows_the_figures(day_report: DailyReport) -> None:
    html = render_html(day_report)

    assert html.startswith("<!DOCTYPE html>")
    for external in ("http:", "https:", "<script", "<link", "<img", "url(", "@import", "src="):
        assert external not in html.lower(), external
    for expected in (
        "2400.75",
        "2495.65",
        "94.90",
        "850 ms",
        "kill switch test",
        "flatten",
        "PORTFOLIO_HEAT",
    ):
        assert expected in html, expected


def test_html_report_escapes_every_text(day_report: DailyReport) -> None:
    hostile = "<script>alert(1)</script>"
    line = day_report.pnl[0]
    report = DailyReport(
        **{
            **{name: getattr(day_report, name) for name in DailyReport.__dataclass_fields__},
            "tz": TZ,
            "blocks_by_reason": ((hostile, 1),),
            "pnl": (PnlLine(hostile, line.symbol, 0, line.gross, line.fees, line.net, line.open_qty),),
        }
    )

    html = render_html(report)

    assert hostile not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert not re.search(r"<script", html, re.IGNORECASE)


def test_report_command_prints_the_tables_and_writes_the_html(
    db_url: str, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    paper_day().save(sessions)
    console = Console(record=True, width=240)
    out = tmp_path / "reports" / "2024-01-02.html"

    report = report_daily(db_url, None, TZ, str(out), console=console)

    assert (report.day, report.signals, report.realized_net) == (DAY, 50, Decimal("2495.65"))
    assert out.read_text(encoding="utf-8") == render_html(report)
    assert "Daily report 2024-01-02" in console.export_text()


def test_report_written_to_a_file_keeps_every_column_whole(
    db_url: str, sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    paper_day().save(sessions)
    piped = io.StringIO()
    console = Console(file=piped)  # no terminal: rich alone would lay the tables out in 80 columns

    report_daily(db_url, None, TZ, None, console=console)

    lines = piped.getvalue().splitlines()
    assert max(len(line) for line in lines) > 80
    assert not [line for line in lines if "…" in line]
    assert console.width == 80  # the console is the caller's: left as it was
