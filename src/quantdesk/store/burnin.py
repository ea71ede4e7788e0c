"""Burn-in of a paper day: the acceptance criteria read from the store, and the commands the CLI calls.

The criteria and thresholds are the paper burn-in protocol's "Acceptance Criteria (Each Day)"
(the Kite seeds, ../shared/seeds/001): at least 50 signals generated, at least 3 decisions
planned, at least one full OCO lifecycle observed, `/flatten` completes within 2 s, no
duplicate client_order_id, no orphan OCO sibling after exit, and a complete chain
signal -> decision -> orders -> trades. Three sessions that pass open the LIVE gate.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from pathlib import Path

from rich.console import Console, RenderableType
from rich.table import Table
from sqlalchemy import Engine, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, aliased, sessionmaker

from quantdesk.errors import UserError
from quantdesk.store.database import (
    connect,
    current_revision,
    database_url,
    head_revision,
    safe_url,
    session_factory,
)
from quantdesk.store.models import DecisionRow, FillRow, OrderRow, SignalRow
from quantdesk.store.report_html import render_terminal, write_report_html
from quantdesk.store.reports import DailyReport, daily_report, day_window, latest_day

MIN_SIGNALS = 50
"""Signals generated in the day (seed: "≥ 50 signals generated")."""
MIN_PLANNED_DECISIONS = 3
"""Approved decisions, each a sized trade plan (seed: "≥ 3 decisions planned")."""
MIN_FULL_OCO_LIFECYCLES = 1
"""Groups that went entry fill -> children -> a child fill -> siblings cancelled, flat (seed: "≥ 1")."""
MAX_FLATTEN_MS = 2_000.0
"""Slowest allowed flatten, command to flat (seed: "`/flatten` completes ≤ 2s"; DESIGN section 5)."""
MIN_FLATTENS = 1
"""Measured flattens: the protocol runs the kill-switch test every session, and the day ends flat.
Without one, "every flatten within 2 s" would pass on a day that never tried."""
MAX_DUPLICATE_CLIENT_ORDER_IDS = 0
"""Client order ids of the day found more than once (seed: "No duplicate `client_order_id`")."""
MAX_ORPHAN_GROUPS = 0
"""Exited OCO groups with an order still working (seed: "No orphan OCO sibling after exit")."""
MAX_UNCHAINED_FILLS = 0
"""Fills with no approved decision and signal behind them (seed: "Complete DB chain")."""

EXIT_PASSED = 0
EXIT_FAILED = 1
_LISTED = 5


class Criterion(StrEnum):
    """One acceptance criterion of a burn-in day."""

    SIGNALS = "signals"
    PLANNED_DECISIONS = "planned_decisions"
    FULL_OCO_LIFECYCLE = "full_oco_lifecycle"
    FLATTEN_WITHIN_2S = "flatten_within_2s"
    NO_DUPLICATE_CLIENT_ORDER_ID = "no_duplicate_client_order_id"
    NO_ORPHAN_OCO_SIBLING = "no_orphan_oco_sibling"
    COMPLETE_CHAIN = "complete_chain"

    @property
    def label(self) -> str:
        return _LABELS[self]


_LABELS = {
    Criterion.SIGNALS: "signals generated",
    Criterion.PLANNED_DECISIONS: "decisions planned",
    Criterion.FULL_OCO_LIFECYCLE: "full OCO lifecycles",
    Criterion.FLATTEN_WITHIN_2S: "every flatten within 2 s",
    Criterion.NO_DUPLICATE_CLIENT_ORDER_ID: "no duplicate client_order_id",
    Criterion.NO_ORPHAN_OCO_SIBLING: "no orphan OCO sibling after exit",
    Criterion.COMPLETE_CHAIN: "chain signal -> decision -> orders -> fills",
}


@dataclass(frozen=True, slots=True)
class CriterionResult:
    """One criterion's figure against its threshold; `detail` names the first offenders."""

    criterion: Criterion
    figure: str
    threshold: str
    passed: bool
    detail: str = ""


@dataclass(frozen=True, slots=True)
class BurninResult:
    """Every criterion of one day, in the protocol's order; `passed` only when all pass."""

    day: date
    tz: str
    criteria: tuple[CriterionResult, ...]

    @property
    def passed(self) -> bool:
        return all(result.passed for result in self.criteria)

    @property
    def failed(self) -> tuple[Criterion, ...]:
        return tuple(result.criterion for result in self.criteria if not result.passed)

    def result(self, criterion: Criterion) -> CriterionResult:
        return next(result for result in self.criteria if result.criterion is criterion)


# -- the queries only the criteria need ----------------------------------------------------------


def duplicate_client_order_ids(sessions: sessionmaker[Session], day: date, tz: str = "UTC") -> dict[str, int]:
    """Client order ids of the day's orders that appear more than once in the whole orders table.

    Counted by query although the column is unique: the check must not rest on the constraint
    it verifies (a migration or a hand-made table could lack it).
    """
    start, end = day_window(day, tz)
    todays = select(OrderRow.client_order_id).where(OrderRow.ts_created >= start, OrderRow.ts_created < end)
    with sessions() as session:
        rows = session.execute(
            select(OrderRow.client_order_id, func.count())
            .where(OrderRow.client_order_id.in_(todays))
            .group_by(OrderRow.client_order_id)
            .having(func.count() > 1)
            .order_by(OrderRow.client_order_id)
        ).all()
    return {str(client_order_id): int(count) for client_order_id, count in rows}


@dataclass(frozen=True, slots=True)
class ChainCheck:
    """How many of the day's fills trace back to an approved decision and its signal."""

    fills: int
    unchained: tuple[str, ...]

    @property
    def chained(self) -> int:
        return self.fills - len(self.unchained)


def chain_check(sessions: sessionmaker[Session], day: date, tz: str = "UTC") -> ChainCheck:
    """Check signal -> decision -> order -> fill for every fill of the day.

    A fill is chained when its order names an approved decision (entries), or its order's
    OCO group is the plan id of an approved decision (children, exits, flattens), and that
    decision's signal exists. `unchained` lists the execution ids that are not.
    """
    start, end = day_window(day, tz)
    by_id, by_plan = aliased(DecisionRow), aliased(DecisionRow)
    signal_by_id, signal_by_plan = aliased(SignalRow), aliased(SignalRow)
    with sessions() as session:
        rows = session.execute(
            select(FillRow.execution_id, signal_by_id.id, signal_by_plan.id)
            .select_from(FillRow)
            .outerjoin(OrderRow, FillRow.order_id == OrderRow.id)
            .outerjoin(by_id, (OrderRow.decision_id == by_id.id) & by_id.approved)
            .outerjoin(signal_by_id, by_id.signal_id == signal_by_id.id)
            .outerjoin(by_plan, (OrderRow.oco_group == by_plan.client_plan_id) & by_plan.approved)
            .outerjoin(signal_by_plan, by_plan.signal_id == signal_by_plan.id)
            .where(FillRow.ts >= start, FillRow.ts < end)
            .order_by(FillRow.ts, FillRow.id)
        ).all()
    unchained = tuple(str(execution_id) for execution_id, a, b in rows if a is None and b is None)
    return ChainCheck(fills=len(rows), unchained=unchained)


# -- the criteria ----------------------------------------------------------------------------------


def burnin_check(
    sessions: sessionmaker[Session], day: date, tz: str = "UTC", *, report: DailyReport | None = None
) -> BurninResult:
    """Evaluate the acceptance criteria of local `day` in `tz` from the store behind `sessions`.

    `report`, when given, must be `daily_report(sessions, day, tz)` (saves reading it twice).
    """
    report = report if report is not None else daily_report(sessions, day, tz)
    duplicates = duplicate_client_order_ids(sessions, day, tz)
    chain = chain_check(sessions, day, tz)
    full = [group for group in report.oco if group.full]
    orphans = [group for group in report.oco if group.orphaned]
    measured = [f.duration_ms for f in report.flattens if f.duration_ms is not None]
    unmeasured = len(report.flattens) - len(measured)
    slow = [d for d in measured if d > MAX_FLATTEN_MS]
    slowest = max(measured, default=None)
    flatten_figure = f"{len(report.flattens)} flattens" + (
        f", slowest {slowest:,.0f} ms" if slowest is not None else ""
    )
    if unmeasured:
        flatten_figure += f", {unmeasured} unmeasured"

    criteria = (
        CriterionResult(
            Criterion.SIGNALS,
            f"{report.signals}",
            f">= {MIN_SIGNALS}",
            report.signals >= MIN_SIGNALS,
        ),
        CriterionResult(
            Criterion.PLANNED_DECISIONS,
            f"{report.approved}",
            f">= {MIN_PLANNED_DECISIONS}",
            report.approved >= MIN_PLANNED_DECISIONS,
            f"{report.blocked} blocked",
        ),
        CriterionResult(
            Criterion.FULL_OCO_LIFECYCLE,
            f"{len(full)} of {len(report.oco)} groups",
            f">= {MIN_FULL_OCO_LIFECYCLES}",
            len(full) >= MIN_FULL_OCO_LIFECYCLES,
            _listed(g.label for g in full),
        ),
        CriterionResult(
            Criterion.FLATTEN_WITHIN_2S,
            flatten_figure,
            f">= {MIN_FLATTENS} measured, each <= {MAX_FLATTEN_MS:,.0f} ms",
            len(measured) >= MIN_FLATTENS and not slow and not unmeasured,
            _listed(f"{d:,.0f} ms" for d in slow),
        ),
        CriterionResult(
            Criterion.NO_DUPLICATE_CLIENT_ORDER_ID,
            f"{len(duplicates)} duplicated",
            f"<= {MAX_DUPLICATE_CLIENT_ORDER_IDS}",
            len(duplicates) <= MAX_DUPLICATE_CLIENT_ORDER_IDS,
            _listed(f"{cid} x{n}" for cid, n in duplicates.items()),
        ),
        CriterionResult(
            Criterion.NO_ORPHAN_OCO_SIBLING,
            f"{len(orphans)} of {sum(g.exited for g in report.oco)} exited groups",
            f"<= {MAX_ORPHAN_GROUPS}",
            len(orphans) <= MAX_ORPHAN_GROUPS,
            _listed(cid for g in orphans for cid in g.open_orders),
        ),
        CriterionResult(
            Criterion.COMPLETE_CHAIN,
            f"{chain.chained} of {chain.fills} fills chained",
            f"<= {MAX_UNCHAINED_FILLS} unchained",
            len(chain.unchained) <= MAX_UNCHAINED_FILLS,
            _listed(chain.unchained),
        ),
    )
    return BurninResult(day=day, tz=tz, criteria=criteria)


def _listed(items: Iterable[object]) -> str:
    names = [str(item) for item in items]
    shown = ", ".join(names[:_LISTED])
    return shown + (f" (+{len(names) - _LISTED} more)" if len(names) > _LISTED else "")


def render_burnin(result: BurninResult) -> Table:
    """The criteria as a rich table, one row each, with the overall verdict in the caption."""
    verdict = "[bold green]PASSED[/]" if result.passed else f"[bold red]FAILED[/] ({len(result.failed)})"
    table = Table(
        title=f"Burn-in check {result.day.isoformat()} ({result.tz})",
        title_justify="left",
        caption=f"burn-in day {verdict}",
        caption_justify="left",
    )
    for name in ("", "Criterion", "Figure", "Threshold", "Detail"):
        table.add_column(name)
    for row in result.criteria:
        mark = "[green]PASS[/]" if row.passed else "[red]FAIL[/]"
        table.add_row(mark, row.criterion.label, row.figure, row.threshold, row.detail)
    return table


# -- the commands -------------------------------------------------------------------------------


def report_daily(
    db_url: str | None,
    day: date | None,
    tz: str = "UTC",
    html_out: str | None = None,
    *,
    console: Console | None = None,
) -> DailyReport:
    """`quantdesk report daily`: print the day's report as tables, and write it as HTML if asked.

    `day` None means the newest day with a signal, order or fill in the store.
    """
    out = console or Console()
    engine, sessions = _open_store(db_url)
    try:
        chosen = day if day is not None else _newest_day(sessions, tz)
        report = daily_report(sessions, chosen, tz)
    finally:
        engine.dispose()
    print_whole(out, render_terminal(report))
    if html_out is not None:
        written = write_report_html(html_out, report)
        out.print(f"HTML report written to {written}", highlight=False)
    return report


def burnin_check_command(
    db_url: str | None, day: date | None, tz: str = "UTC", *, console: Console | None = None
) -> int:
    """`quantdesk burnin check`: print every criterion with its figure; 0 when all pass, else 1.

    `day` None means the newest day with a signal, order or fill in the store. A store that
    cannot be opened raises (the CLI shows one line and exits 2).
    """
    out = console or Console()
    engine, sessions = _open_store(db_url)
    try:
        chosen = day if day is not None else _newest_day(sessions, tz)
        result = burnin_check(sessions, chosen, tz)
    finally:
        engine.dispose()
    print_whole(out, render_burnin(result))
    return EXIT_PASSED if result.passed else EXIT_FAILED


_WIDEST = 1_000  # columns: more than any table of the report needs


def print_whole(out: Console, renderable: RenderableType) -> None:
    """Print `renderable` on `out`; to a file or a pipe, as wide as its widest table needs.

    Rich lays out for 80 columns where it finds no terminal (and no COLUMNS), which cut the
    OCO table's headers of a report saved with `> report.txt`: a file has no width to keep to.
    """
    if out.is_terminal or "COLUMNS" in os.environ:
        out.print(renderable)
        return
    width = out.width
    # Measured without the console's width as a bound (it would give back 80).
    wanted = out.measure(renderable, options=out.options.update_width(_WIDEST)).maximum
    out.width = max(width, wanted)
    try:
        out.print(renderable)
    finally:
        out.width = width


def _open_store(db_url: str | None) -> tuple[Engine, sessionmaker[Session]]:
    """An engine and sessions on a store migrated to head, or a one-line UserError/StoreUnavailable."""
    url = database_url(db_url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = parsed.database or ""
        # Opening a missing SQLite file would create an empty store and report an empty day.
        if path and path != ":memory:" and not path.startswith("file:") and not Path(path).is_file():
            raise UserError(f"no store at {path}: pass --db or set QUANTDESK_DB_URL")
    engine = connect(url)
    try:
        revision = current_revision(url)
        head = head_revision()
        if revision is None:
            raise UserError(f"the store at {safe_url(url)} has no tables: run `quantdesk db upgrade`")
        if revision != head:
            raise UserError(
                f"the store at {safe_url(url)} is at revision {revision}, this quantdesk reads {head}: "
                "run `quantdesk db upgrade`"
            )
    except BaseException:
        engine.dispose()
        raise
    return engine, session_factory(engine)


def _newest_day(sessions: sessionmaker[Session], tz: str) -> date:
    newest = latest_day(sessions, tz)
    if newest is None:
        raise UserError("the store holds no signals, orders or fills: pass --date or run a session first")
    return newest
