"""The daily report rendered: rich tables for the terminal, and one self-contained HTML page."""

from __future__ import annotations

import os
from collections.abc import Sequence
from decimal import Decimal, localcontext
from html import escape
from pathlib import Path

from rich.console import Group
from rich.table import Table

from quantdesk.backtest.report import page_start, write_html
from quantdesk.portfolio.trades import TradeRecord
from quantdesk.store.reports import (
    DailyReport,
    FlattenRecord,
    OcoLifecycle,
    PnlLine,
    leg_rank,
    local_time,
    status_rank,
)

# Enough digits to print any stored value, or a division of two, without rounding it first.
_EXACT_DIGITS = 80

# -- formatting -----------------------------------------------------------------------------------


def format_decimal(value: Decimal, places: int = 2) -> str:
    """`value` in plain notation with at least `places` decimals and no trailing zeros beyond them.

    Example: 2401.75000000000000000000 -> "2401.75"; 0.30 -> "0.30"; 1.23456 -> "1.23456".
    """
    if not value.is_finite():
        return str(value)
    with localcontext(prec=_EXACT_DIGITS):
        text = format(value.normalize(), "f")
    whole, _, decimals = text.partition(".")
    decimals = decimals.ljust(places, "0")
    return f"{whole}.{decimals}" if decimals else whole


def _format_price(value: Decimal) -> str:
    """An average price, cut to the store's 10 decimals (a division may give many more)."""
    with localcontext(prec=_EXACT_DIGITS):
        return format_decimal(value.quantize(Decimal("1E-10")))


def _format_time(ts_ns: int, tz: str, pattern: str = "%H:%M:%S") -> str:
    return local_time(ts_ns, tz).strftime(pattern)


def _format_ms(value: float | None) -> str:
    return "unmeasured" if value is None else f"{value:,.0f} ms"


def _yes_no(value: bool) -> str:
    return "yes" if value else "no"


def _order_matrix(report: DailyReport) -> tuple[list[str], list[tuple[str, list[int]]]]:
    """Orders by leg (rows) and status (columns): the status names and one count list per leg."""
    statuses = sorted({line.status for line in report.orders}, key=status_rank)
    legs = sorted({line.leg for line in report.orders}, key=leg_rank)
    cells = {(line.leg, line.status): line.count for line in report.orders}
    return statuses, [(leg, [cells.get((leg, s), 0) for s in statuses]) for leg in legs]


def _summary_lines(report: DailyReport) -> list[tuple[str, str]]:
    """The headline figures, label and text, in reading order."""
    return [
        ("Signals", f"{report.signals:,}"),
        ("Decisions", f"{report.decisions:,} ({report.approved:,} approved, {report.blocked:,} blocked)"),
        ("Orders", f"{report.order_total:,}"),
        ("Fills", f"{report.fills:,} (fees {format_decimal(report.fill_fees)})"),
        ("Trades closed", f"{len(report.trades):,}"),
        (
            "Realised P&L",
            f"{format_decimal(report.realized_net)} net of {format_decimal(report.realized_fees)}",
        ),
        ("OCO groups", f"{len(report.oco):,} ({sum(g.full for g in report.oco):,} with a full lifecycle)"),
        ("Flattens", f"{len(report.flattens):,} measured, {report.flatten_requests:,} requested (audit log)"),
    ]


def _oco_row(group: OcoLifecycle) -> list[str]:
    return [
        group.label,
        group.strategy,
        group.symbol,
        group.side,
        format_decimal(group.entry_filled_qty, 0),
        " ".join(group.children) or "-",
        " ".join(group.filled_children) or "-",
        group.ended,
        _yes_no(group.siblings_canceled),
        " ".join(group.open_orders) or "-",
        _yes_no(group.full),
    ]


_OCO_COLUMNS = (
    "Group",
    "Strategy",
    "Symbol",
    "Side",
    "Entry filled",
    "Children",
    "Child filled",
    "Ended",
    "Siblings cancelled",
    "Left working",
    "Full",
)
_PNL_COLUMNS = ("Strategy", "Symbol", "Trades", "Gross", "Fees", "Net", "Open qty")
_TRADE_COLUMNS = (
    "Strategy",
    "Symbol",
    "Side",
    "Qty",
    "Entry",
    "Exit",
    "Entry price",
    "Exit price",
    "P&L",
    "Fees",
    "Ended",
)
_FLATTEN_COLUMNS = ("Time", "Reason", "Actor", "Duration", "Cancelled", "Closing orders")


def _pnl_row(line: PnlLine) -> list[str]:
    return [
        line.strategy,
        line.symbol,
        str(line.trades),
        format_decimal(line.gross),
        format_decimal(line.fees),
        format_decimal(line.net),
        format_decimal(line.open_qty, 0),
    ]


def _trade_row(trade: TradeRecord, tz: str) -> list[str]:
    return [
        trade.strategy,
        trade.symbol,
        trade.side,
        format_decimal(trade.qty, 0),
        _format_time(trade.entry_time, tz),
        _format_time(trade.exit_time, tz),
        _format_price(trade.entry_price),
        _format_price(trade.exit_price),
        format_decimal(trade.pnl),
        format_decimal(trade.fees),
        trade.exit_reason,
    ]


def _flatten_row(flatten: FlattenRecord, tz: str) -> list[str]:
    return [
        _format_time(flatten.ts, tz),
        flatten.reason,
        flatten.actor,
        _format_ms(flatten.duration_ms),
        "-" if flatten.canceled is None else str(flatten.canceled),
        "-" if flatten.closing_orders is None else str(flatten.closing_orders),
    ]


# -- the terminal -------------------------------------------------------------------------------


def render_terminal(report: DailyReport) -> Group:
    """The report as rich tables: summary, blocks, orders, P&L, OCO lifecycles, flattens, trades."""
    summary = Table(title=f"Daily report {report.day.isoformat()} ({report.tz})", show_header=False)
    summary.add_column("", style="bold")
    summary.add_column("")
    for label, text in _summary_lines(report):
        summary.add_row(label, text)

    blocks = _rich_table("Blocks by reason", ("Reason", "Count"), numeric={1})
    for reason, count in report.blocks_by_reason:
        blocks.add_row(reason, str(count))

    statuses, legs = _order_matrix(report)
    orders = _rich_table(
        "Orders by leg and status", ("Leg", *statuses), numeric=set(range(1, len(statuses) + 1))
    )
    for leg, counts in legs:
        orders.add_row(leg, *(str(c) if c else "" for c in counts))

    pnl = _rich_table("Realised P&L", _PNL_COLUMNS, numeric={2, 3, 4, 5, 6})
    for line in report.pnl:
        pnl.add_row(*_pnl_row(line))
    if report.pnl:
        pnl.add_row(
            "Total",
            "",
            str(len(report.trades)),
            format_decimal(report.realized_gross),
            format_decimal(report.realized_fees),
            format_decimal(report.realized_net),
            "",
            style="bold",
        )

    oco = _rich_table("OCO lifecycles", _OCO_COLUMNS, numeric={4})
    for group in report.oco:
        oco.add_row(*_oco_row(group))

    flattens = _rich_table("Flattens", _FLATTEN_COLUMNS, numeric={3, 4, 5})
    for flatten in report.flattens:
        flattens.add_row(*_flatten_row(flatten, report.tz))

    trades = _rich_table(f"Trades ({report.tz})", _TRADE_COLUMNS, numeric={3, 6, 7, 8, 9})
    for trade in report.trades:
        trades.add_row(*_trade_row(trade, report.tz))
    return Group(summary, blocks, orders, pnl, oco, flattens, trades)


def _rich_table(title: str, columns: Sequence[str], *, numeric: set[int]) -> Table:
    table = Table(title=title, title_justify="left")
    for index, name in enumerate(columns):
        table.add_column(name, justify="right" if index in numeric else "left")
    return table


# -- the HTML page ---------------------------------------------------------------------------------

# The backtest report's palette and type, so the two read as one product; system fonts only.
# Only what the daily report adds to the shared report style.
_EXTRA_CSS = """
tr.total td { font-weight:600; }
.small td, .small th { font-size:12.5px; padding:3px 6px; }
"""


def render_html(report: DailyReport) -> str:
    """Render `report` as an HTML page that opens offline; every text is HTML-escaped.

    Times are shown in the report's time zone; money exactly as stored (no float rounding).
    """
    window = (
        f"{_format_time(report.start_ns, 'UTC', '%Y-%m-%d %H:%M')} → "
        f"{_format_time(report.end_ns, 'UTC', '%Y-%m-%d %H:%M')} UTC"
    )
    title = f"quantdesk daily report {report.day.isoformat()}"
    statuses, legs = _order_matrix(report)
    parts = [
        *page_start(title, f"Local day in {report.tz} · {window}", _EXTRA_CSS),
        _meta(_summary_lines(report)),
        "<h2>Blocks by reason</h2>",
        _table(("Reason", "Count"), [[reason, str(count)] for reason, count in report.blocks_by_reason], {1}),
        "<h2>Orders by leg and status</h2>",
        _table(
            ("Leg", *statuses),
            [[leg, *(str(c) if c else "" for c in counts)] for leg, counts in legs],
            set(range(1, len(statuses) + 1)),
        ),
        "<h2>Realised P&amp;L</h2>",
        _pnl_table(report),
        "<h2>OCO lifecycles</h2>",
        _table(_OCO_COLUMNS, [_oco_row(group) for group in report.oco], {4}, small=True),
        "<h2>Flattens</h2>",
        _table(_FLATTEN_COLUMNS, [_flatten_row(f, report.tz) for f in report.flattens], {3, 4, 5}),
        f"<h2>Trades ({len(report.trades):,}, times in {escape(report.tz)})</h2>",
        _table(
            _TRADE_COLUMNS,
            [_trade_row(trade, report.tz) for trade in report.trades],
            {3, 6, 7, 8, 9},
            small=True,
            signed={8},
        ),
        "<footer>Generated by quantdesk from the store. A trade counts on the day it closes; P&amp;L "
        "is realised, net of fees, exact to the stored digits.</footer>",
        "</body>",
        "</html>",
        "",
    ]
    return "\n".join(parts)


def write_report_html(path: str | os.PathLike[str], report: DailyReport) -> Path:
    """Render `report` and write it to `path` (folders created); UserError if it cannot be written."""
    return write_html(path, render_html(report))


def _meta(lines: Sequence[tuple[str, str]]) -> str:
    rows = "".join(f"<tr><th>{escape(label)}</th><td>{escape(text)}</td></tr>" for label, text in lines)
    return f'<table class="meta">{rows}</table>'


def _pnl_table(report: DailyReport) -> str:
    rows = [_pnl_row(line) for line in report.pnl]
    total = (
        [
            "Total",
            "",
            str(len(report.trades)),
            format_decimal(report.realized_gross),
            format_decimal(report.realized_fees),
            format_decimal(report.realized_net),
            "",
        ]
        if rows
        else None
    )
    return _table(_PNL_COLUMNS, rows, {2, 3, 4, 5, 6}, signed={3, 5}, total=total)


def _table(
    columns: Sequence[str],
    rows: Sequence[Sequence[str]],
    numeric: set[int],
    *,
    small: bool = False,
    signed: frozenset[int] | set[int] = frozenset(),
    total: Sequence[str] | None = None,
) -> str:
    if not rows:
        return '<p class="sub">(none)</p>'
    head = "".join(
        f'<th class="num">{escape(name)}</th>' if i in numeric else f"<th>{escape(name)}</th>"
        for i, name in enumerate(columns)
    )
    body = [_row(row, numeric, signed) for row in rows]
    if total is not None:
        body.append(_row(total, numeric, signed, css="total"))
    table_class = ' class="small"' if small else ""
    return (
        f'<div class="scroll"><table{table_class}><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def _row(cells: Sequence[str], numeric: set[int], signed: frozenset[int] | set[int], css: str = "") -> str:
    rendered = []
    for index, text in enumerate(cells):
        classes = []
        if index in numeric:
            classes.append("num")
        if index in signed and text:
            value = Decimal(text)
            classes.append("pos" if value > 0 else "neg" if value < 0 else "")
        attr = " ".join(c for c in classes if c)
        rendered.append(f'<td class="{attr}">{escape(text)}</td>' if attr else f"<td>{escape(text)}</td>")
    row_attr = f' class="{css}"' if css else ""
    return f"<tr{row_attr}>{''.join(rendered)}</tr>"
