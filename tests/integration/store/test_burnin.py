"""Burn-in acceptance criteria read from the store on both back ends: a passing paper day, and
one day failing each criterion alone."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from rich.console import Console
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from quantdesk.engine.messages import DecisionRecord
from quantdesk.errors import UserError
from quantdesk.execution.client_ids import ClientIdRegistry, Leg, plan_client_id
from quantdesk.model import Fill, Instrument, Order, OrderStatus, OrderType, Side, Signal
from quantdesk.risk.kill_switch import StateChange
from quantdesk.risk.messages import Mode
from quantdesk.store import (
    AuditLogRow,
    DecisionRow,
    FillRow,
    InstrumentRow,
    OrderRow,
    RiskEventRow,
    SignalRow,
    make_engine,
    session_factory,
)
from quantdesk.store.burnin import (
    EXIT_FAILED,
    EXIT_PASSED,
    MAX_FLATTEN_MS,
    MIN_PLANNED_DECISIONS,
    MIN_SIGNALS,
    Criterion,
    burnin_check,
    burnin_check_command,
)
from quantdesk.store.reports import daily_report
from quantdesk.venues.base import VenueCapabilities

DAY = date(2024, 1, 2)
TZ = "Asia/Kolkata"
SECOND = 1_000_000_000
MINUTE = 60 * SECOND
MS = 1_000_000
OPEN = 1_704_167_100_000_000_000  # 2024-01-02 09:15 IST (03:45 UTC)
PRE_OPEN_TEST = OPEN - 10 * MINUTE  # the protocol's kill-switch test, 09:05 IST
EOD = OPEN + 370 * MINUTE  # 15:25 IST, the NSE end-of-day flatten
NIGHT_SIGNAL = 1_704_139_200_000_000_000  # 2024-01-01 20:00 UTC = 2024-01-02 01:30 IST
SHA = "c0ffee" * 10 + "abcd"


def _accepted(order: Order, ts: int) -> Order:
    order.transition(OrderStatus.PENDING_SUBMIT, ts)
    order.transition(OrderStatus.SUBMITTED, ts)
    order.transition(OrderStatus.ACCEPTED, ts + MS)
    order.venue_order_id = f"V-{order.client_order_id[-12:]}"
    return order


def _cancel(order: Order, ts: int) -> None:
    order.transition(OrderStatus.PENDING_CANCEL, ts)
    order.transition(OrderStatus.CANCELED, ts + MS)


@dataclass
class PaperDay:
    """A paper session as the writer would store it: real signals, decisions, orders and fills."""

    signals: list[Signal] = field(default_factory=list)
    decisions: list[DecisionRecord] = field(default_factory=list)
    orders: list[tuple[Order, str, str | None]] = field(default_factory=list)
    fills: list[Fill] = field(default_factory=list)
    flattens: list[RiskEventRow] = field(default_factory=list)
    audit: list[StateChange] = field(default_factory=list)
    instruments: list[Instrument] = field(default_factory=list)
    ids: ClientIdRegistry = field(default_factory=lambda: ClientIdRegistry(VenueCapabilities("SIM")))

    def signal(self, signal: Signal) -> Signal:
        self.signals.append(signal)
        return signal

    def decide(self, signal: Signal, qty: str, *, reasons: tuple[str, ...] = ()) -> str:
        """Record the gate's decision; returns the plan id ("" for a block before planning)."""
        plan_id = (
            ""
            if "ZERO_SIZE" in reasons
            else plan_client_id(
                strategy=signal.strategy,
                symbol=signal.symbol,
                side=signal.side.value,
                entry=signal.entry,
                stop=signal.stop,
                targets=signal.targets,
                qty=Decimal(qty),
                signal_ts=signal.ts,
                config_sha=SHA,
            )
        )
        self.decisions.append(
            DecisionRecord(
                plan_id=plan_id,
                signal=signal,
                approved=not reasons,
                reasons=reasons,
                details=tuple(f"{r.lower()} refused it" for r in reasons),
                qty=Decimal(qty) if not reasons else Decimal(0),
                risk_amount=Decimal("800.00"),
                risk_pct=Decimal("0.25"),
                ts=signal.ts + MS,
            )
        )
        return plan_id

    def order(
        self,
        plan_id: str | None,
        leg: Leg | None,
        symbol: str,
        side: Side,
        qty: str,
        ts: int,
        *,
        strategy: str,
        order_type: OrderType = OrderType.LIMIT,
        price: str | None = None,
        stop: str | None = None,
        reason: str = "",
        client_order_id: str | None = None,
    ) -> Order:
        if client_order_id is None:
            assert plan_id is not None and leg is not None
            client_order_id = self.ids.issue(plan_id, leg)
        order = Order(
            client_order_id=client_order_id,
            symbol=symbol,
            side=side,
            order_type=order_type,
            qty=Decimal(qty),
            price=Decimal(price) if price is not None else None,
            stop_price=Decimal(stop) if stop is not None else None,
            tag=leg.value if leg is not None else "",
            ts_created=ts,
            reason=reason,
        )
        self.orders.append((order, strategy, plan_id))
        return _accepted(order, ts)

    def fill(self, order: Order, qty: str, price: str, fee: str, ts: int) -> None:
        fill = Fill(
            execution_id=f"X{len(self.fills) + 1:04d}",
            client_order_id=order.client_order_id,
            venue_order_id=order.venue_order_id,
            symbol=order.symbol,
            side=order.side,
            qty=Decimal(qty),
            price=Decimal(price),
            fee=Decimal(fee),
            ts_event=ts,
            ts_init=ts + MS,
        )
        order.apply_fill(fill.qty, fill.price, fill.fee, ts)
        self.fills.append(fill)

    def flatten(self, ts: int, reason: str, actor: str, details: dict[str, object]) -> None:
        self.flattens.append(RiskEventRow(ts=ts, kind="flatten", reason=reason, details=details))

    def save(self, sessions: sessionmaker[Session]) -> None:
        with sessions.begin() as session:
            session.add_all(InstrumentRow.from_instrument(i) for i in self.instruments)
            signal_ids: dict[int, int] = {}
            for signal in self.signals:
                row = SignalRow.from_signal(signal, config_sha=SHA, score=0.5)
                session.add(row)
                session.flush()
                signal_ids[id(signal)] = row.id
            decision_ids: dict[str, int] = {}
            for record in self.decisions:
                decision = DecisionRow.from_record(
                    record, signal_id=signal_ids[id(record.signal)], mode=Mode.PAPER, config_sha=SHA
                )
                session.add(decision)
                session.flush()
                if record.plan_id:
                    decision_ids[record.plan_id] = decision.id
            order_ids: dict[str, int] = {}
            for order, strategy, plan_id in self.orders:
                # Entries carry their decision; children, exits and flattens only their group.
                decision_id = decision_ids.get(plan_id or "") if order.tag == Leg.ENTRY.value else None
                row = OrderRow.from_order(
                    order, strategy=strategy, decision_id=decision_id, oco_group=plan_id
                )
                session.add(row)
                session.flush()
                order_ids.setdefault(order.client_order_id, row.id)
            session.add_all(FillRow.from_fill(f, order_id=order_ids[f.client_order_id]) for f in self.fills)
            session.add_all(self.flattens)
            session.add_all(AuditLogRow.from_state_change(change) for change in self.audit)


@dataclass(frozen=True)
class Variant:
    """What to change in the passing day so that exactly one criterion fails."""

    signals: int = MIN_SIGNALS
    plan_c: bool = True
    a_exits_by_targets: bool = True
    eod_flatten_ms: float | None = 850.0
    kill_switch_test: bool = True
    duplicate_id: bool = False
    orphan_b_target: bool = False
    manual_trade: bool = False


def paper_day(variant: Variant = Variant()) -> PaperDay:
    """The passing day (times in IST), with `variant`'s change.

    A: orb RELIANCE long 40 @ 2500.05/2500.10, stop 2480, TP1 20 @ 2540.10 then TP2 20 @ 2580.15,
       the stop resized after TP1 and cancelled after TP2: a full OCO lifecycle, ended by target.
    B: vwap INFY short 10 at market 1500.25, stop 1520, TP1 1480; the 15:25 flatten cancels both
       children and buys back at 1490.75: ended by flatten.
    C: orb TCS long 5 limit 3700, never filled, cancelled by the flatten.
    Blocks: PAUSED, PAUSED + PORTFOLIO_HEAT, ENTRY_CUTOFF, ZERO_SIZE. One signal comes at 01:30
    IST (the evening before in UTC). A kill-switch test flattens at 09:05 (120 ms, nothing open);
    the end-of-day flatten takes 850 ms.
    """
    day = PaperDay(
        instruments=[Instrument("INFY", exchange="XNSE", currency="INR", tick_size=Decimal("0.05"))]
    )
    symbols = ("RELIANCE", "INFY", "TCS", "HDFCBANK")
    signals = [
        day.signal(
            Signal(
                strategy="orb" if i % 5 else "vwap",
                symbol=symbols[i % 4],
                side=Side.BUY,
                ts=OPEN + i * MINUTE,
                entry=Decimal("100.00"),
                stop=Decimal("99.00"),
                targets=(Decimal("102.00"),),
                rationale="background signal",
            )
        )
        for i in range(10, 10 + variant.signals - 3 - variant.plan_c)
    ]
    day.signal(Signal("orb", "RELIANCE", Side.BUY, NIGHT_SIGNAL, rationale="pre-market gap scan"))
    for signal, reasons in zip(
        signals,
        [("PAUSED",), ("PAUSED", "PORTFOLIO_HEAT"), ("ENTRY_CUTOFF",), ("ZERO_SIZE",)],
        strict=False,
    ):
        day.decide(signal, "10", reasons=reasons)

    # A: the full lifecycle.
    a_signal = day.signal(
        Signal(
            "orb",
            "RELIANCE",
            Side.BUY,
            OPEN,
            entry=Decimal("2500.05"),
            stop=Decimal("2480.00"),
            targets=(Decimal("2540.10"), Decimal("2580.15")),
        )
    )
    a = day.decide(a_signal, "40")
    a_entry = day.order(
        a, Leg.ENTRY, "RELIANCE", Side.BUY, "40", OPEN + SECOND, strategy="orb", price="2500.10"
    )
    day.fill(a_entry, "15", "2500.05", "0.1", OPEN + MINUTE)
    day.fill(a_entry, "25", "2500.10", "0.2", OPEN + MINUTE + SECOND)
    a_stop = day.order(
        a,
        Leg.STOP,
        "RELIANCE",
        Side.SELL,
        "40",
        OPEN + 62 * SECOND,
        order_type=OrderType.STOP,
        stop="2480",
        strategy="orb",
    )
    a_tp1 = day.order(
        a, Leg.TP1, "RELIANCE", Side.SELL, "20", OPEN + 62 * SECOND, price="2540.10", strategy="orb"
    )
    a_tp2 = day.order(
        a, Leg.TP2, "RELIANCE", Side.SELL, "20", OPEN + 62 * SECOND, price="2580.15", strategy="orb"
    )

    # B: ends in the end-of-day flatten.
    b_signal = day.signal(
        Signal("vwap", "INFY", Side.SELL, OPEN + 5 * MINUTE, stop=Decimal("1520"), targets=(Decimal("1480"),))
    )
    b = day.decide(b_signal, "10")
    b_entry = day.order(
        b, Leg.ENTRY, "INFY", Side.SELL, "10", OPEN + 5 * MINUTE, strategy="vwap", order_type=OrderType.MARKET
    )
    day.fill(b_entry, "10", "1500.25", "0.05", OPEN + 5 * MINUTE + SECOND)
    b_stop = day.order(
        b, Leg.STOP, "INFY", Side.BUY, "10", OPEN + 5 * MINUTE + 2 * SECOND, strategy="vwap",
        order_type=OrderType.STOP, stop="1520",
    )  # fmt: skip
    b_tp1 = day.order(
        b, Leg.TP1, "INFY", Side.BUY, "10", OPEN + 5 * MINUTE + 2 * SECOND, strategy="vwap", price="1480"
    )

    # C: approved, never filled.
    if variant.plan_c:
        c_signal = day.signal(
            Signal("orb", "TCS", Side.BUY, OPEN + 20 * MINUTE, entry=Decimal("3700"), stop=Decimal("3650"))
        )
        c = day.decide(c_signal, "5")
        c_entry = day.order(
            c, Leg.ENTRY, "TCS", Side.BUY, "5", OPEN + 20 * MINUTE, strategy="orb", price="3700"
        )
        if variant.duplicate_id:
            # The same id written twice (a resend after a restart): only the check may notice.
            duplicate = day.order(
                c, Leg.ENTRY, "TCS", Side.BUY, "5", OPEN + 21 * MINUTE, strategy="orb", price="3700",
                client_order_id=c_entry.client_order_id,
            )  # fmt: skip
            duplicate.transition(OrderStatus.CANCELED, OPEN + 22 * MINUTE, "duplicate client id")
    else:
        c_entry = None

    if variant.a_exits_by_targets:
        day.fill(a_tp1, "20", "2540.10", "0.3", OPEN + 30 * MINUTE)
        _cancel(a_stop, OPEN + 30 * MINUTE + SECOND)
        a_stop_2 = day.order(
            a, Leg.STOP, "RELIANCE", Side.SELL, "20", OPEN + 30 * MINUTE + 2 * SECOND,
            order_type=OrderType.STOP, stop="2480", strategy="orb",
        )  # fmt: skip
        day.fill(a_tp2, "20", "2580.15", "0.4", OPEN + 60 * MINUTE)
        _cancel(a_stop_2, OPEN + 60 * MINUTE + SECOND)

    if variant.kill_switch_test:
        day.audit.append(StateChange("flatten", "alice", "kill switch test", PRE_OPEN_TEST))
        day.flatten(
            PRE_OPEN_TEST,
            "kill switch test",
            "alice",
            {"duration_ms": 120, "actor": "alice", "canceled": 0, "closing_orders": 0},
        )

    # 15:25 IST: the end-of-day flatten cancels what works and closes what is open.
    _cancel(b_stop, EOD + 100 * MS)
    if not variant.orphan_b_target:
        _cancel(b_tp1, EOD + 100 * MS)
    if c_entry is not None:
        _cancel(c_entry, EOD + 100 * MS)
    b_exit = day.order(
        b, Leg.EXIT, "INFY", Side.BUY, "10", EOD + 200 * MS, strategy="vwap", order_type=OrderType.MARKET,
        reason="end of day",
    )  # fmt: skip
    day.fill(b_exit, "10", "1490.75", "0.05", EOD + 400 * MS)
    if not variant.a_exits_by_targets:
        for child in (a_stop, a_tp1, a_tp2):
            _cancel(child, EOD + 100 * MS)
        a_exit = day.order(
            a, Leg.EXIT, "RELIANCE", Side.SELL, "40", EOD + 200 * MS, strategy="orb",
            order_type=OrderType.MARKET, reason="end of day",
        )  # fmt: skip
        day.fill(a_exit, "40", "2510.00", "0.5", EOD + 400 * MS)
    details: dict[str, object] = {"actor": "system", "canceled": 3, "closing_orders": 1}
    if variant.eod_flatten_ms is not None:
        details["duration_ms"] = variant.eod_flatten_ms
    day.flatten(EOD, "end of day", "system", details)

    if variant.manual_trade:
        # Someone traded by hand in the paper account: no decision, no group.
        for n, side in enumerate((Side.BUY, Side.SELL)):
            manual = day.order(
                None, None, "HDFCBANK", side, "1", OPEN + (90 + n) * MINUTE, strategy="manual",
                order_type=OrderType.MARKET, client_order_id=f"manual-{n}",
            )  # fmt: skip
            day.fill(manual, "1", "1650.00", "0", OPEN + (90 + n) * MINUTE + SECOND)
    return day


def _drop_unique_client_order_id(engine: Engine) -> None:
    """Take away the constraint so a duplicate can be stored at all (batch mode for SQLite)."""
    with engine.begin() as connection:
        operations = Operations(MigrationContext.configure(connection))
        with operations.batch_alter_table("orders") as batch:
            batch.drop_constraint("uq_orders_client_order_id", type_="unique")


def test_paper_day_passes_every_criterion(sessions: sessionmaker[Session]) -> None:
    paper_day().save(sessions)

    result = burnin_check(sessions, DAY, TZ)

    assert result.passed, result
    assert [(r.criterion, r.figure) for r in result.criteria] == [
        (Criterion.SIGNALS, "50"),
        (Criterion.PLANNED_DECISIONS, "3"),
        (Criterion.FULL_OCO_LIFECYCLE, "1 of 3 groups"),
        (Criterion.FLATTEN_WITHIN_2S, "2 flattens, slowest 850 ms"),
        (Criterion.NO_DUPLICATE_CLIENT_ORDER_ID, "0 duplicated"),
        (Criterion.NO_ORPHAN_OCO_SIBLING, "0 of 2 exited groups"),
        (Criterion.COMPLETE_CHAIN, "6 of 6 fills chained"),
    ]


def test_full_lifecycles_are_named_as_the_daily_report_names_them(sessions: sessionmaker[Session]) -> None:
    day = paper_day()
    day.save(sessions)
    (a_plan,) = (d.plan_id for d in day.decisions if d.signal.symbol == "RELIANCE" and d.qty == 40)

    result = burnin_check(sessions, DAY, TZ)

    # A's group by its first 16 characters, as the daily report's OCO table shows it, not the
    # whole 52-character plan id: the detail of a passing day must stay readable in a terminal.
    assert result.result(Criterion.FULL_OCO_LIFECYCLE).detail == a_plan[:16]
    assert a_plan[:16] in [group.label for group in daily_report(sessions, DAY, TZ).oco]


def test_day_is_local_to_the_time_zone(sessions: sessionmaker[Session]) -> None:
    paper_day().save(sessions)

    # In UTC the 01:30 IST signal belongs to January 1st: one short of the threshold.
    result = burnin_check(sessions, DAY, "UTC")

    assert result.failed == (Criterion.SIGNALS,)
    assert result.result(Criterion.SIGNALS).figure == str(MIN_SIGNALS - 1)


@pytest.mark.parametrize(
    ("variant", "failing", "figure"),
    [
        pytest.param(Variant(signals=MIN_SIGNALS - 1), Criterion.SIGNALS, "49", id="signals"),
        pytest.param(Variant(plan_c=False), Criterion.PLANNED_DECISIONS, "2", id="planned"),
        pytest.param(
            Variant(a_exits_by_targets=False), Criterion.FULL_OCO_LIFECYCLE, "0 of 3 groups", id="oco"
        ),
        pytest.param(
            Variant(eod_flatten_ms=MAX_FLATTEN_MS + 500),
            Criterion.FLATTEN_WITHIN_2S,
            "2 flattens, slowest 2,500 ms",
            id="slow-flatten",
        ),
        pytest.param(
            Variant(eod_flatten_ms=None),
            Criterion.FLATTEN_WITHIN_2S,
            "2 flattens, slowest 120 ms, 1 unmeasured",
            id="unmeasured-flatten",
        ),
        pytest.param(
            Variant(orphan_b_target=True),
            Criterion.NO_ORPHAN_OCO_SIBLING,
            "1 of 2 exited groups",
            id="orphan",
        ),
        pytest.param(
            Variant(manual_trade=True), Criterion.COMPLETE_CHAIN, "6 of 8 fills chained", id="chain"
        ),
    ],
)
def test_each_criterion_fails_alone(
    sessions: sessionmaker[Session], variant: Variant, failing: Criterion, figure: str
) -> None:
    paper_day(variant).save(sessions)

    result = burnin_check(sessions, DAY, TZ)

    assert not result.passed
    assert result.failed == (failing,)
    assert result.result(failing).figure == figure


def test_a_day_without_any_flatten_fails_the_flatten_criterion(sessions: sessionmaker[Session]) -> None:
    day = paper_day(Variant(kill_switch_test=False))
    day.flattens.clear()
    day.save(sessions)

    result = burnin_check(sessions, DAY, TZ)

    assert result.failed == (Criterion.FLATTEN_WITHIN_2S,)
    assert result.result(Criterion.FLATTEN_WITHIN_2S).figure == "0 flattens"


def test_duplicate_client_order_id_is_found_by_query(store_engine: Engine) -> None:
    _drop_unique_client_order_id(store_engine)
    sessions = session_factory(store_engine)
    day = paper_day(Variant(duplicate_id=True))
    day.save(sessions)
    ids = [order.client_order_id for order, _, _ in day.orders]
    (duplicated,) = {cid for cid in ids if ids.count(cid) > 1}

    result = burnin_check(sessions, DAY, TZ)

    assert result.failed == (Criterion.NO_DUPLICATE_CLIENT_ORDER_ID,)
    assert result.result(Criterion.NO_DUPLICATE_CLIENT_ORDER_ID).figure == "1 duplicated"
    assert result.result(Criterion.NO_DUPLICATE_CLIENT_ORDER_ID).detail == f"{duplicated} x2"


def test_fill_of_a_blocked_decision_breaks_the_chain(sessions: sessionmaker[Session]) -> None:
    day = paper_day()
    # An entry sent although its plan was blocked: a bypassed gate must not count as a chain.
    blocked = next(record for record in day.decisions if record.reasons == ("PAUSED",))
    sneaked = day.order(
        blocked.plan_id, Leg.ENTRY, blocked.signal.symbol, Side.BUY, "10", OPEN + 100 * MINUTE,
        strategy=blocked.signal.strategy, order_type=OrderType.MARKET,
    )  # fmt: skip
    day.fill(sneaked, "10", "100.00", "0", OPEN + 100 * MINUTE + SECOND)
    day.save(sessions)

    result = burnin_check(sessions, DAY, TZ)

    assert Criterion.COMPLETE_CHAIN in result.failed
    assert result.result(Criterion.COMPLETE_CHAIN).figure == "6 of 7 fills chained"


def test_command_prints_every_criterion_and_exits_zero_on_a_passing_day(
    db_url: str, sessions: sessionmaker[Session]
) -> None:
    paper_day().save(sessions)
    console = Console(record=True, width=200)

    code = burnin_check_command(db_url, DAY, TZ, console=console)

    text = console.export_text()
    assert code == EXIT_PASSED
    for label, figure in [
        ("signals generated", "50"),
        ("decisions planned", f">= {MIN_PLANNED_DECISIONS}"),
        ("every flatten within 2 s", "slowest 850 ms"),
        ("chain signal -> decision -> orders -> fills", "6 of 6 fills chained"),
    ]:
        line = next(line for line in text.splitlines() if label in line)
        assert figure in line
    assert "PASSED" in text


def test_command_picks_the_newest_day_and_exits_one_when_a_criterion_fails(
    db_url: str, sessions: sessionmaker[Session]
) -> None:
    paper_day(Variant(orphan_b_target=True)).save(sessions)
    console = Console(record=True, width=200)

    code = burnin_check_command(db_url, None, TZ, console=console)

    text = console.export_text()
    assert code == EXIT_FAILED
    assert "2024-01-02" in text
    assert "FAILED (1)" in text
    assert next(line for line in text.splitlines() if "orphan" in line).strip("│ ").startswith("FAIL")


def test_command_refuses_a_store_that_is_missing_or_not_migrated(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no store at"):
        burnin_check_command(f"sqlite:///{tmp_path / 'absent.db'}", DAY, TZ)
    empty = tmp_path / "empty.db"
    engine = make_engine(f"sqlite:///{empty}")
    engine.connect().close()  # creates the file, with no tables
    engine.dispose()
    with pytest.raises(UserError, match="no tables: run `quantdesk db upgrade`"):
        burnin_check_command(f"sqlite:///{empty}", DAY, TZ)


def test_command_on_an_empty_store_asks_for_a_date(db_url: str, sessions: sessionmaker[Session]) -> None:
    with pytest.raises(UserError, match="pass --date"):
        burnin_check_command(db_url, None, TZ)
