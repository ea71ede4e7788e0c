"""The daily report of one trading day, read from the store: counts, blocks, orders, P&L, OCO, flattens."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, localcontext
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import func, select, tuple_
from sqlalchemy.orm import Session, sessionmaker

from quantdesk.errors import DataError, UserError
from quantdesk.execution.client_ids import Leg
from quantdesk.model import Fill, OrderStatus, Side
from quantdesk.portfolio.trades import TradeBuilder, TradeRecord
from quantdesk.store.models import (
    AuditLogRow,
    DecisionRow,
    FillRow,
    InstrumentRow,
    OrderRow,
    RiskEventRow,
    SignalRow,
)

# The measured flatten, one row per flatten, written by the store writer from the engine's flatten:
#   RiskEventRow(kind="flatten", ts=<clock ns when the flatten started>, symbol=None,
#                reason=<the flatten's reason>, details={"duration_ms": <number>, "actor": <str>,
#                "canceled": <int>, "closing_orders": <int>})
# `duration_ms` runs from the command to the last cancel acknowledged and the last position
# closed. AuditLogRow.from_state_change stores no duration (details={}), and a flatten records
# only a "pause" state change, so the audit log cannot answer "how long did it take".
FLATTEN_EVENT_KIND = "flatten"
# Who asked for a flatten: an audit_log row with this action (API, CLI, manual), shown as a count.
FLATTEN_AUDIT_ACTION = "flatten"

CHILD_LEGS = frozenset({Leg.STOP, Leg.TP1, Leg.TP2})
NO_LEG = "-"
NO_REASON = "(none)"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NS_PER_MS = 1_000_000
_ZERO = Decimal(0)
_ONE = Decimal(1)
_ENDINGS = {Leg.STOP: "stop", Leg.TP1: "target", Leg.TP2: "target", Leg.EXIT: "exit", Leg.ENTRY: "entry"}
# Enough digits that sums of price x quantity products on the store's 10-decimal grid stay exact.
_EXACT_DIGITS = 80
# A child never placed at the venue: it cannot count as placed, nor be left working there.
_NOT_PLACED = frozenset({OrderStatus.INITIALIZED, OrderStatus.REJECTED})


# -- the report ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrderCount:
    """How many of the day's orders of one leg ended the day in one status."""

    leg: str
    status: str
    count: int


@dataclass(frozen=True, slots=True)
class PnlLine:
    """Realised P&L of one strategy in one symbol: trades closed in the day, exact.

    `gross` is before fees, `net` after; `open_qty` is the signed position left at the day's end.
    """

    strategy: str
    symbol: str
    trades: int
    gross: Decimal
    fees: Decimal
    net: Decimal
    open_qty: Decimal


@dataclass(frozen=True, slots=True)
class OcoLifecycle:
    """One OCO group (one plan id): its entry, the children placed, how it ended.

    `ended` is "stop", "target", "exit", "flatten" (the group's last fill that made it flat),
    "open" (entry filled, still holding), "closed elsewhere" (flat only through an order of
    another group), or "entry <status>" when the entry never filled. `open_orders` are the
    client ids of the group's orders, other than the entry, not in a terminal status.
    """

    group: str
    strategy: str
    symbol: str
    side: str
    entry_filled_qty: Decimal
    entry_open: bool
    children: tuple[str, ...]
    filled_children: tuple[str, ...]
    canceled_children: tuple[str, ...]
    open_orders: tuple[str, ...]
    flat: bool
    ended: str

    @property
    def entry_filled(self) -> bool:
        return self.entry_filled_qty > 0

    @property
    def label(self) -> str:
        """The group as reports show it: its plan id's first 16 characters (what Kite's client
        ids keep of it)."""
        return self.group[:16]

    @property
    def exited(self) -> bool:
        """The entry filled, the position is back to zero and the entry no longer works."""
        return self.entry_filled and self.flat and not self.entry_open

    @property
    def siblings_canceled(self) -> bool:
        """A child filled and the group's other children were cancelled, none left working."""
        return bool(self.filled_children) and bool(self.canceled_children) and not self.open_orders

    @property
    def full(self) -> bool:
        """Entry filled, children placed, one child filled, siblings cancelled, position flat."""
        return self.exited and bool(self.children) and self.siblings_canceled

    @property
    def orphaned(self) -> bool:
        """Exited, yet an order of the group may still work at the venue."""
        return self.exited and bool(self.open_orders)


@dataclass(frozen=True, slots=True)
class FlattenRecord:
    """One measured flatten (a risk_events row of kind "flatten"); None where the row lacks a field."""

    ts: int
    reason: str
    actor: str
    duration_ms: float | None
    canceled: int | None
    closing_orders: int | None

    @property
    def end_ns(self) -> int:
        """When its last order was issued or settled: orders created up to here belong to it."""
        return self.ts + (round(self.duration_ms * _NS_PER_MS) if self.duration_ms is not None else 0)


@dataclass(frozen=True, slots=True)
class DailyReport:
    """Everything the store says about one local day `[start_ns, end_ns)` in time zone `tz`."""

    day: date
    tz: str
    start_ns: int
    end_ns: int
    signals: int
    signals_by_strategy: tuple[tuple[str, int], ...]
    decisions: int
    approved: int
    blocked: int
    blocks_by_reason: tuple[tuple[str, int], ...]
    orders: tuple[OrderCount, ...]
    fills: int
    fill_fees: Decimal
    pnl: tuple[PnlLine, ...]
    oco: tuple[OcoLifecycle, ...]
    flattens: tuple[FlattenRecord, ...]
    flatten_requests: int
    trades: tuple[TradeRecord, ...]

    @property
    def order_total(self) -> int:
        return sum(line.count for line in self.orders)

    @property
    def realized_gross(self) -> Decimal:
        return sum((line.gross for line in self.pnl), _ZERO)

    @property
    def realized_fees(self) -> Decimal:
        return sum((line.fees for line in self.pnl), _ZERO)

    @property
    def realized_net(self) -> Decimal:
        return sum((line.net for line in self.pnl), _ZERO)


# -- days and time zones ------------------------------------------------------------------------


def zone(tz: str) -> ZoneInfo:
    """The IANA time zone `tz`, or a UserError naming it."""
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise UserError(f"unknown time zone {tz!r}: use an IANA name such as UTC or Asia/Kolkata") from None


def day_window(day: date, tz: str) -> tuple[int, int]:
    """UTC nanoseconds of local midnight starting `day` in `tz` and of the next local midnight.

    Example: 2024-01-02 in Asia/Kolkata is [2024-01-01T18:30Z, 2024-01-02T18:30Z).
    """
    local = zone(tz)
    start = datetime.combine(day, time(0), tzinfo=local)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=local)
    return _to_ns(start), _to_ns(end)


def _to_ns(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1) * 1_000


def local_time(ts_ns: int, tz: str) -> datetime:
    """The moment `ts_ns` (UTC ns) on the wall clock of `tz`."""
    return (_EPOCH + timedelta(microseconds=ts_ns // 1_000)).astimezone(zone(tz))


def latest_day(sessions: sessionmaker[Session], tz: str = "UTC") -> date | None:
    """The local day of the newest signal, order or fill in the store; None for an empty store."""
    with sessions() as session:
        stamps = [
            session.scalar(select(func.max(SignalRow.ts))),
            session.scalar(select(func.max(OrderRow.ts_created))),
            session.scalar(select(func.max(FillRow.ts))),
        ]
    newest = max((int(ts) for ts in stamps if ts is not None), default=None)
    return None if newest is None else local_time(newest, tz).date()


# -- the queries --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _FillView:
    """A fill with the order facts the report needs (the fill row itself carries no side)."""

    fill_id: int
    execution_id: str
    qty: Decimal
    price: Decimal
    fee: Decimal
    ts: int
    ts_init: int
    client_order_id: str
    broker_order_id: str
    strategy: str
    symbol: str
    side: Side
    leg: Leg | None
    oco_group: str | None
    order_ts: int

    def to_fill(self) -> Fill:
        return Fill(
            execution_id=self.execution_id,
            client_order_id=self.client_order_id,
            venue_order_id=self.broker_order_id,
            symbol=self.symbol,
            side=self.side,
            qty=self.qty,
            price=self.price,
            fee=self.fee,
            ts_event=self.ts,
            ts_init=self.ts_init,
        )

    @property
    def signed_qty(self) -> Decimal:
        return self.qty if self.side is Side.BUY else -self.qty


_FILL_COLUMNS = (
    FillRow.id,
    FillRow.execution_id,
    FillRow.qty,
    FillRow.price,
    FillRow.fee,
    FillRow.ts,
    FillRow.ts_init,
    OrderRow.client_order_id,
    OrderRow.broker_order_id,
    OrderRow.strategy,
    OrderRow.symbol,
    OrderRow.side,
    OrderRow.leg,
    OrderRow.oco_group,
    OrderRow.ts_created,
)


def _fill_views(session: Session, *conditions: Any) -> list[_FillView]:
    rows = session.execute(
        select(*_FILL_COLUMNS)
        .join(OrderRow, FillRow.order_id == OrderRow.id)
        .where(*conditions)
        .order_by(FillRow.ts, FillRow.id)
    ).all()
    return [
        _FillView(
            fill_id=r[0],
            execution_id=r[1],
            qty=r[2],
            price=r[3],
            fee=r[4],
            ts=r[5],
            ts_init=r[6],
            client_order_id=r[7],
            broker_order_id=r[8] or "",
            strategy=r[9],
            symbol=r[10],
            side=r[11],
            leg=r[12],
            oco_group=r[13],
            order_ts=r[14],
        )
        for r in rows
    ]


def daily_report(sessions: sessionmaker[Session], day: date, tz: str = "UTC") -> DailyReport:
    """Read the report of local `day` in `tz` from the store behind `sessions`.

    Money is summed in Python (SQLite keeps it as text). Trades and P&L come from fills
    through `TradeBuilder`: a trade counts on the day it closes, so the fills of each
    strategy and symbol traded that day are read from the beginning, to open what an
    earlier day left open. OCO groups are those with an order created that day.
    """
    start, end = day_window(day, tz)
    with sessions() as session:
        signals_by_strategy = _counted(
            session.execute(
                select(SignalRow.strategy, func.count())
                .where(SignalRow.ts >= start, SignalRow.ts < end)
                .group_by(SignalRow.strategy)
            ).all()
        )
        decisions = session.execute(
            select(DecisionRow.approved, DecisionRow.block_reasons).where(
                DecisionRow.ts >= start, DecisionRow.ts < end
            )
        ).all()
        orders = session.execute(
            select(OrderRow.leg, OrderRow.status, func.count())
            .where(OrderRow.ts_created >= start, OrderRow.ts_created < end)
            .group_by(OrderRow.leg, OrderRow.status)
        ).all()
        day_fills = _fill_views(session, FillRow.ts >= start, FillRow.ts < end)
        flattens = _flattens(session, start, end)
        flatten_requests = session.scalar(
            select(func.count())
            .select_from(AuditLogRow)
            .where(AuditLogRow.action == FLATTEN_AUDIT_ACTION, AuditLogRow.ts >= start, AuditLogRow.ts < end)
        )
        pairs = sorted({(f.strategy, f.symbol) for f in day_fills})
        history = (
            _fill_views(session, tuple_(OrderRow.strategy, OrderRow.symbol).in_(pairs), FillRow.ts < end)
            if pairs
            else []
        )
        multipliers = _multipliers(session, {symbol for _, symbol in pairs})
        oco = _oco_lifecycles(session, start, end, flattens)

    blocks: Counter[str] = Counter()
    for approved, reasons in decisions:
        if not approved:
            blocks.update(reasons or [NO_REASON])
    pnl, trades = _pnl_and_trades(history, pairs, multipliers, flattens, start)
    return DailyReport(
        day=day,
        tz=tz,
        start_ns=start,
        end_ns=end,
        signals=sum(count for _, count in signals_by_strategy),
        signals_by_strategy=signals_by_strategy,
        decisions=len(decisions),
        approved=sum(1 for approved, _ in decisions if approved),
        blocked=sum(1 for approved, _ in decisions if not approved),
        blocks_by_reason=tuple(sorted(blocks.items(), key=lambda item: (-item[1], item[0]))),
        orders=tuple(
            sorted(
                (
                    OrderCount(leg.value if leg is not None else NO_LEG, status.value, count)
                    for leg, status, count in orders
                ),
                key=lambda line: (leg_rank(line.leg), status_rank(line.status)),
            )
        ),
        fills=len(day_fills),
        fill_fees=sum((f.fee for f in day_fills), _ZERO),
        pnl=pnl,
        oco=oco,
        flattens=flattens,
        flatten_requests=int(flatten_requests or 0),
        trades=trades,
    )


def status_rank(status: str) -> int:
    """Where an order status sorts: in its life-cycle order."""
    return list(OrderStatus).index(OrderStatus(status))


def leg_rank(leg: str) -> tuple[int, str]:
    """Where a leg sorts: entry, stop, targets, exit, then anything else by name."""
    order = [leg.value for leg in Leg]
    return (order.index(leg), leg) if leg in order else (len(order), leg)


def _counted(rows: Iterable[Any]) -> tuple[tuple[str, int], ...]:
    return tuple(sorted(((str(key), int(count)) for key, count in rows), key=lambda kv: (-kv[1], kv[0])))


def _flattens(session: Session, start: int, end: int) -> tuple[FlattenRecord, ...]:
    rows = session.scalars(
        select(RiskEventRow)
        .where(RiskEventRow.kind == FLATTEN_EVENT_KIND, RiskEventRow.ts >= start, RiskEventRow.ts < end)
        .order_by(RiskEventRow.ts, RiskEventRow.id)
    ).all()
    return tuple(
        FlattenRecord(
            ts=row.ts,
            reason=row.reason,
            actor=str(row.details.get("actor", "")),
            duration_ms=_number(row.details.get("duration_ms")),
            canceled=_integer(row.details.get("canceled")),
            closing_orders=_integer(row.details.get("closing_orders")),
        )
        for row in rows
    )


def _number(value: object) -> float | None:
    # bool is an int to Python, but `true` is no duration.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _integer(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _multipliers(session: Session, symbols: set[str]) -> dict[str, Decimal]:
    """Each symbol's contract multiplier from the instruments table (1 when it has no row)."""
    if not symbols:
        return {}
    found: dict[str, set[Decimal]] = {}
    for symbol, multiplier in session.execute(
        select(InstrumentRow.symbol, InstrumentRow.multiplier).where(InstrumentRow.symbol.in_(symbols))
    ):
        found.setdefault(symbol, set()).add(multiplier)
    for symbol, values in found.items():
        if len(values) > 1:
            listed = ", ".join(sorted(format(v.normalize(), "f") for v in values))
            raise DataError(
                f"instruments: symbol {symbol} has several multipliers ({listed}); P&L is ambiguous"
            )
    return {symbol: next(iter(found[symbol])) if symbol in found else _ONE for symbol in symbols}


def _exit_label(leg: Leg | None, order_ts: int, flattens: Sequence[FlattenRecord]) -> str:
    """Why a closing fill happened: stop, target, exit, or flatten (an exit issued during one)."""
    if leg is None:
        return "manual"
    if leg is Leg.EXIT and any(f.ts <= order_ts <= f.end_ns for f in flattens):
        return "flatten"
    return _ENDINGS[leg]


def _pnl_and_trades(
    history: list[_FillView],
    pairs: list[tuple[str, str]],
    multipliers: dict[str, Decimal],
    flattens: Sequence[FlattenRecord],
    start: int,
) -> tuple[tuple[PnlLine, ...], tuple[TradeRecord, ...]]:
    builders = {pair: TradeBuilder(pair[0], pair[1], multipliers[pair[1]]) for pair in pairs}
    positions = dict.fromkeys(pairs, _ZERO)
    # Exact: the builder's sums and products run in this context, never rounded at 28 digits.
    with localcontext(prec=_EXACT_DIGITS):
        for view in history:
            pair = (view.strategy, view.symbol)
            builders[pair].add(view.to_fill(), _exit_label(view.leg, view.order_ts, flattens))
            positions[pair] += view.signed_qty
        lines = []
        trades: list[TradeRecord] = []
        for pair in pairs:
            closed = [t for t in builders[pair].closed if t.exit_time >= start]
            trades.extend(closed)
            fees = sum((t.fees for t in closed), _ZERO)
            net = sum((t.pnl for t in closed), _ZERO)
            lines.append(PnlLine(pair[0], pair[1], len(closed), net + fees, fees, net, positions[pair]))
    trades.sort(key=lambda t: (t.exit_time, t.entry_time, t.strategy, t.symbol))
    return tuple(lines), tuple(trades)


def _oco_lifecycles(
    session: Session, start: int, end: int, flattens: Sequence[FlattenRecord]
) -> tuple[OcoLifecycle, ...]:
    groups = (
        select(OrderRow.oco_group)
        .where(OrderRow.ts_created >= start, OrderRow.ts_created < end, OrderRow.oco_group.is_not(None))
        .distinct()
    )
    members = session.scalars(
        select(OrderRow).where(OrderRow.oco_group.in_(groups)).order_by(OrderRow.ts_created, OrderRow.id)
    ).all()
    if not members:
        return ()
    fills = _fill_views(session, OrderRow.oco_group.in_(groups), FillRow.ts < end)
    by_group: dict[str, list[OrderRow]] = {}
    for order in members:
        by_group.setdefault(order.oco_group or "", []).append(order)
    fills_by_group: dict[str, list[_FillView]] = {}
    for view in fills:
        fills_by_group.setdefault(view.oco_group or "", []).append(view)
    pair_flat = _pairs_flat(session, {(o.strategy, o.symbol) for o in members}, end)
    lifecycles = [
        _lifecycle(group, orders, fills_by_group.get(group, []), pair_flat, flattens)
        for group, orders in by_group.items()
    ]
    return tuple(sorted(lifecycles, key=lambda g: (g.strategy, g.symbol, g.group)))


def _pairs_flat(session: Session, pairs: set[tuple[str, str]], end: int) -> dict[tuple[str, str], bool]:
    """Whether each (strategy, symbol) holds nothing at `end`, from every fill before it."""
    net = dict.fromkeys(pairs, _ZERO)
    if pairs:
        for view in _fill_views(
            session, tuple_(OrderRow.strategy, OrderRow.symbol).in_(pairs), FillRow.ts < end
        ):
            net[(view.strategy, view.symbol)] += view.signed_qty
    return {pair: qty == 0 for pair, qty in net.items()}


def _lifecycle(
    group: str,
    orders: list[OrderRow],
    fills: list[_FillView],
    pair_flat: dict[tuple[str, str], bool],
    flattens: Sequence[FlattenRecord],
) -> OcoLifecycle:
    entries = [o for o in orders if o.leg is Leg.ENTRY]
    head = entries[0] if entries else orders[0]
    children = [o for o in orders if o.leg in CHILD_LEGS]
    filled_ids = {view.client_order_id for view in fills}
    entry_filled = sum((f.qty for f in fills if f.leg is Leg.ENTRY), _ZERO)

    net = _ZERO
    last_flat_by: _FillView | None = None
    for view in fills:
        before = net
        net += view.signed_qty
        if net == 0 and before != 0:
            last_flat_by = view
    group_flat = entry_filled > 0 and net == 0
    flat = group_flat or (entry_filled > 0 and pair_flat.get((head.strategy, head.symbol), False))

    if entry_filled == 0:
        ended = f"entry {head.status.value.lower()}" if entries else "no entry"
    elif not flat:
        ended = "open"
    elif group_flat and last_flat_by is not None:
        ended = _exit_label(last_flat_by.leg, last_flat_by.order_ts, flattens)
    else:
        ended = "closed elsewhere"

    return OcoLifecycle(
        group=group,
        strategy=head.strategy,
        symbol=head.symbol,
        side=head.side.value,
        entry_filled_qty=entry_filled,
        entry_open=any(not o.status.is_terminal for o in entries),
        children=tuple(_leg(o) for o in children if o.status not in _NOT_PLACED),
        filled_children=tuple(
            _leg(o) for o in children if o.filled_qty > 0 or o.client_order_id in filled_ids
        ),
        canceled_children=tuple(_leg(o) for o in children if o.status is OrderStatus.CANCELED),
        open_orders=tuple(
            o.client_order_id for o in orders if o.leg is not Leg.ENTRY and not o.status.is_terminal
        ),
        flat=flat,
        ended=ended,
    )


def _leg(order: OrderRow) -> str:
    return order.leg.value if order.leg is not None else NO_LEG
