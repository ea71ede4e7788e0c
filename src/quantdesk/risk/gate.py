"""The pre-trade risk gate: every entry passes `can_enter`, which lists every hard limit it breaks."""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import MappingProxyType
from typing import Final, TypeGuard, TypeVar

from quantdesk.clock.calendar import MarketCalendar
from quantdesk.model import Instrument, Side
from quantdesk.risk.config import RiskConfig
from quantdesk.risk.messages import (
    BlockReason,
    Decision,
    LastDataTimes,
    OpenPositionView,
    RiskState,
    TradePlan,
)
from quantdesk.risk.session import EndOfDay

# Enum members as C statics: compiled, `Side.BUY` is a call of EnumType's __getattr__ hook
# on Python 3.11 (~80 ns); see _compiled.py.
_BUY: Final = Side.BUY

_ZERO: Final = Decimal(0)
_HUNDRED: Final = Decimal(100)
_NANOS_PER_SECOND: Final = 1_000_000_000
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
# Mappings known without asking the ABC machinery (an `isinstance` against `Mapping` is slow).
_PLAIN_MAPPINGS: Final = frozenset({dict, MappingProxyType, LastDataTimes})

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Facts:
    """What the checks share, worked out once; None where the input was too broken to compute it."""

    plan: TradePlan
    state: RiskState
    instrument: Instrument | None
    plan_risk: Decimal | None  # loss if stopped; the whole notional without a stop
    equity: Decimal | None
    positions: tuple[OpenPositionView, ...] | None  # the non-flat ones, if all are well-formed
    now: int | None


class RiskGate:
    """Answers `can_enter(plan, state)` with a Decision naming every limit the entry would break.

    The checks run in a fixed order and all of them run, so a blocked decision
    lists every reason (codes in `reasons`, sentences in `details`):

    1. INVALID_PLAN: unknown symbol, bad side, entry/stop/qty/targets not positive
       finite Decimals, qty off the lot grid or outside min/freeze quantity, stop
       or a target on the wrong side of the entry.
    2. INVALID_STATE: equity or start-of-day equity not positive, P&L not finite,
       a malformed open position, `now` not an int.
    3. PAUSED, 4. KILL_SWITCH.
    5. TRADE_RISK: qty x |entry - stop| x multiplier above `max_risk_per_trade_pct`
       of equity. Without a stop the risk is unbounded and the entry is refused,
       unless `allow_stopless_entries`, when it risks its whole notional.
    6. PORTFOLIO_HEAT: open risk plus this plan's above `max_portfolio_heat_pct`.
       An open position risks qty x max(0, loss from average price to stop) x
       multiplier (a stop at break-even or in profit risks nothing), and its
       whole notional when it has no stop.
    7. DAILY_LOSS: realised today + unrealised at or below -`max_daily_loss_pct`
       of start-of-day equity.
    8. MAX_POSITIONS: `max_open_positions` already open.
    9. MAX_PER_SYMBOL: `max_positions_per_symbol` already open in the symbol.
    10. ALREADY_IN_POSITION: the plan's strategy (or one not known) holds the symbol.
    11. ENTRY_CUTOFF: past the day's entry cutoff (needs a calendar).
    12. STALE_DATA: no data for the symbol, or older than `max_data_age_seconds`.
    13. NOT_TRADABLE: the calendar says the exchange is shut, or the state says
        the symbol is not tradable.

    Limits compare exactly (amount x 100 against cap x equity): a trade at the
    cap passes, one unit of currency over it does not. The gate never raises on
    bad input: a check that cannot be evaluated blocks under its own code.
    One gate serves one exchange's calendar; without a calendar the cutoff and
    session checks rely on `RiskState.tradable` alone.
    """

    __slots__ = (
        "_calendar",
        "_checks",
        "_config",
        "_end_of_day",
        "_instruments",
        "_max_age_ns",
        "_positions",
        "_positions_summary",
    )

    def __init__(
        self,
        config: RiskConfig,
        instruments: Mapping[str, Instrument],
        calendar: MarketCalendar | None = None,
    ) -> None:
        self._config = config
        self._instruments = instruments
        self._calendar = calendar
        self._end_of_day = EndOfDay(config, calendar) if calendar is not None else None
        # The open positions last judged and what the fast path worked out from them: a caller
        # that passes the very same tuple again (nothing changed) is not summed again.
        self._positions: object = None
        self._positions_summary: _Summary | None = None
        age = config.max_data_age_seconds
        self._max_age_ns = None if age is None else round(age * _NANOS_PER_SECOND)
        self._checks: tuple[tuple[BlockReason, Callable[[_Facts], str | None]], ...] = (
            (BlockReason.INVALID_PLAN, self._invalid_plan),
            (BlockReason.INVALID_STATE, _invalid_state),
            (BlockReason.PAUSED, _paused),
            (BlockReason.KILL_SWITCH, _kill_switch),
            (BlockReason.TRADE_RISK, self._trade_risk),
            (BlockReason.PORTFOLIO_HEAT, self._portfolio_heat),
            (BlockReason.DAILY_LOSS, self._daily_loss),
            (BlockReason.MAX_POSITIONS, self._max_positions),
            (BlockReason.MAX_PER_SYMBOL, self._max_per_symbol),
            (BlockReason.ALREADY_IN_POSITION, _already_in_position),
            (BlockReason.ENTRY_CUTOFF, self._entry_cutoff),
            (BlockReason.STALE_DATA, self._stale_data),
            (BlockReason.NOT_TRADABLE, self._not_tradable),
        )

    @property
    def config(self) -> RiskConfig:
        return self._config

    def can_enter(self, plan: TradePlan, state: RiskState) -> Decision:
        """Approve `plan` against `state`, or block it with every reason that applies."""
        approved = self._approve_fast(plan, state)
        if approved is not None:
            return approved
        return self._judge(plan, state)

    def _judge(self, plan: TradePlan, state: RiskState) -> Decision:
        """Every check, one by one, each fail-closed, with the sentence of each that blocks."""
        facts = self._facts(plan, state)
        reasons: list[BlockReason] = []
        details: list[str] = []
        for reason, check in self._checks:
            try:
                detail = check(facts)
            except Exception as exc:  # fail closed: a check that cannot run is a block
                detail = f"could not be checked ({exc!r})"
            if detail is not None:
                reasons.append(reason)
                details.append(detail)
        risk = facts.plan_risk if facts.plan_risk is not None else _ZERO
        pct = risk * _HUNDRED / facts.equity if facts.equity is not None else _ZERO
        return Decision(
            approved=not reasons,
            plan=plan,
            reasons=tuple(reasons),
            details=tuple(details),
            risk_amount=risk,
            risk_pct=pct,
        )

    def _approve_fast(self, plan: TradePlan, state: RiskState) -> Decision | None:
        """The approval of a well-formed plan that passes every check, or None.

        The same thirteen rules as `_judge`, in one pass and without the sentences a
        block needs: an approval is what nearly every signal gets, so it is worth
        having cheap. Input of any other type than the plain ones (Decimal, int,
        tuple, Side), anything that raises, and every rule that would block returns
        None, and `_judge` then decides, so a block and its reasons always come from
        there. The fast path is only ever stricter: a test checks that it never
        approves what `_judge` blocks.
        """
        try:
            return self._approve_or_none(plan, state)
        except Exception:  # malformed input: `_judge` blocks it with its reason
            return None

    def _approve_or_none(self, plan: TradePlan, state: RiskState) -> Decision | None:
        config = self._config
        symbol = plan.symbol
        instrument = self._instruments.get(symbol)
        side = plan.side
        entry, qty, stop, targets = plan.entry, plan.qty, plan.stop, plan.targets
        # 1. INVALID_PLAN
        if instrument is None or type(side) is not Side or type(targets) is not tuple:
            return None
        if not (_plain_positive(entry) and _plain_positive(qty)):
            return None
        if not instrument.validate_order(qty, None, side).ok:
            return None
        sign = 1 if side is _BUY else -1
        multiplier = instrument.multiplier
        if stop is None:
            # 5. TRADE_RISK without a stop
            if not config.allow_stopless_entries:
                return None
            plan_risk = qty * entry * multiplier
        else:
            if not _plain_positive(stop):
                return None
            distance = sign * (entry - stop)
            if distance <= 0:
                return None
            plan_risk = qty * distance * multiplier
        for target in targets:
            if not _plain_positive(target) or sign * (target - entry) <= 0:
                return None
        # 2. INVALID_STATE, 3. PAUSED, 4. KILL_SWITCH
        equity, start = state.equity, state.start_of_day_equity
        realized, unrealized = state.realized_pnl_today, state.unrealized_pnl
        now = state.now
        if not (_plain_positive(equity) and _plain_positive(start)) or type(now) is not int:
            return None
        if not (_plain_finite(realized) and _plain_finite(unrealized)):
            return None
        if state.paused is not False or state.kill_switch is not False:
            return None
        positions = state.open_positions
        summary = self._positions_summary if positions is self._positions else None
        if summary is None:
            summary = _summarize(positions)
            if summary is None:
                return None
            # Keeps the tuple alive, so its identity cannot be reused by another one.
            self._positions, self._positions_summary = positions, summary
        open_heat, open_count, owners_by_symbol = summary
        owners = owners_by_symbol.get(symbol, ())
        # 10. ALREADY_IN_POSITION
        if None in owners or plan.strategy in owners:
            return None
        in_symbol = len(owners)
        # 5. TRADE_RISK, 6. PORTFOLIO_HEAT, 7. DAILY_LOSS
        if plan_risk * _HUNDRED > config.max_risk_per_trade_pct * equity:
            return None
        if (open_heat + plan_risk) * _HUNDRED > config.max_portfolio_heat_pct * equity:
            return None
        if (realized + unrealized) * _HUNDRED <= -config.max_daily_loss_pct * start:
            return None
        # 8. MAX_POSITIONS, 9. MAX_PER_SYMBOL
        if open_count >= config.max_open_positions or in_symbol >= config.max_positions_per_symbol:
            return None
        # 11. ENTRY_CUTOFF
        if self._end_of_day is not None:
            cutoff = self._end_of_day.cutoff_of(now)
            if cutoff is not None and now >= cutoff:
                return None
        # 12. STALE_DATA
        if self._max_age_ns is not None:
            times = state.last_data_ts
            if type(times) not in _PLAIN_MAPPINGS and not isinstance(times, Mapping):
                return None
            last = times.get(symbol)
            if type(last) is not int or now - last > self._max_age_ns:
                return None
        # 13. NOT_TRADABLE
        if state.tradable is False or (self._calendar is not None and not self._calendar.is_open(now)):
            return None
        return Decision(
            approved=True, plan=plan, risk_amount=plan_risk, risk_pct=plan_risk * _HUNDRED / equity
        )

    # ---- shared facts -------------------------------------------------------------

    def _facts(self, plan: TradePlan, state: RiskState) -> _Facts:
        instrument = _safe(lambda: self._instruments.get(plan.symbol))
        equity = _safe(lambda: state.equity if _positive(state.equity) else None)
        plan_risk = _safe(lambda: _plan_risk(plan, instrument))
        positions = _safe(lambda: _open_positions(state.open_positions))
        now = _safe(lambda: _as_ns(state.now))
        return _Facts(plan, state, instrument, plan_risk, equity, positions, now)

    # ---- the checks, in order -----------------------------------------------------

    def _invalid_plan(self, f: _Facts) -> str | None:
        plan, problems = f.plan, []
        if f.instrument is None:
            problems.append(f"unknown symbol {plan.symbol!r}")
        if not isinstance(plan.side, Side):
            problems.append(f"side must be BUY or SELL, got {plan.side!r}")
        if not _positive(plan.entry):
            problems.append(f"entry must be a positive price, got {plan.entry!r}")
        if not _positive(plan.qty):
            problems.append(f"quantity must be positive, got {plan.qty!r}")
        elif f.instrument is not None and isinstance(plan.side, Side):
            check = f.instrument.validate_order(plan.qty, None, plan.side)
            if not check:
                problems.append(check.reason)
        if plan.stop is not None and not _positive(plan.stop):
            problems.append(f"stop must be a positive price, got {plan.stop!r}")
        targets = plan.targets
        if not isinstance(targets, tuple):
            problems.append(f"targets must be a tuple of prices, got {targets!r}")
            targets = ()
        bad_targets = [t for t in targets if not _positive(t)]
        if bad_targets:
            problems.append(f"targets must be positive prices, got {bad_targets!r}")
        if isinstance(plan.side, Side) and _positive(plan.entry):
            sign = plan.side.sign
            if _positive(plan.stop) and sign * (plan.entry - plan.stop) <= 0:
                where = "below" if sign > 0 else "above"
                problems.append(f"a {plan.side} stop must be {where} the entry {plan.entry}, got {plan.stop}")
            wrong = [t for t in targets if _positive(t) and sign * (t - plan.entry) <= 0]
            if wrong:
                where = "above" if sign > 0 else "below"
                problems.append(f"{plan.side} targets must be {where} the entry {plan.entry}, got {wrong}")
        return "; ".join(problems) or None

    def _trade_risk(self, f: _Facts) -> str | None:
        if f.plan.stop is None and not self._config.allow_stopless_entries:
            return "no stop: the risk is unbounded (allow_stopless_entries is off)"
        if f.plan_risk is None or f.equity is None:
            return None  # reported as INVALID_PLAN / INVALID_STATE
        cap = self._config.max_risk_per_trade_pct
        if f.plan_risk * _HUNDRED > cap * f.equity:
            return (
                f"risk {f.plan_risk:.2f} is {_pct(f.plan_risk, f.equity)}% of equity {f.equity:.2f}, "
                f"above the {cap}% per-trade cap"
            )
        return None

    def _portfolio_heat(self, f: _Facts) -> str | None:
        if f.plan_risk is None or f.equity is None or f.positions is None:
            return None
        open_heat = sum((position_risk(p) for p in f.positions), _ZERO)
        heat = open_heat + f.plan_risk
        cap = self._config.max_portfolio_heat_pct
        if heat * _HUNDRED > cap * f.equity:
            return (
                f"heat would be {heat:.2f} ({_pct(heat, f.equity)}% of equity: open {open_heat:.2f} "
                f"+ this {f.plan_risk:.2f}), above the {cap}% cap"
            )
        return None

    def _daily_loss(self, f: _Facts) -> str | None:
        start = f.state.start_of_day_equity
        realized, unrealized = f.state.realized_pnl_today, f.state.unrealized_pnl
        if not (_positive(start) and _finite(realized) and _finite(unrealized)):
            return None  # reported as INVALID_STATE
        pnl = realized + unrealized
        cap = self._config.max_daily_loss_pct
        if pnl * _HUNDRED <= -cap * start:
            return (
                f"today's P&L {pnl:.2f} (realised {realized:.2f}, unrealised {unrealized:.2f}) is "
                f"{_pct(pnl, start)}% of start-of-day equity {start:.2f}, at or beyond the {cap}% loss cap"
            )
        return None

    def _max_positions(self, f: _Facts) -> str | None:
        cap = self._config.max_open_positions
        if f.positions is not None and len(f.positions) >= cap:
            return f"{len(f.positions)} positions open, the cap is {cap}"
        return None

    def _max_per_symbol(self, f: _Facts) -> str | None:
        if f.positions is None:
            return None
        cap = self._config.max_positions_per_symbol
        count = sum(1 for p in f.positions if p.symbol == f.plan.symbol)
        if count >= cap:
            return f"{count} position(s) open in {f.plan.symbol}, the cap per symbol is {cap}"
        return None

    def _entry_cutoff(self, f: _Facts) -> str | None:
        if self._end_of_day is None or f.now is None:
            return None
        cutoff = self._end_of_day.cutoff_of(f.now)
        if cutoff is not None and f.now >= cutoff:
            return f"{_iso(f.now)} is past the day's entry cutoff at {_iso(cutoff)}"
        return None

    def _stale_data(self, f: _Facts) -> str | None:
        if self._max_age_ns is None or f.now is None:
            return None
        symbol, times = f.plan.symbol, f.state.last_data_ts
        if not isinstance(times, Mapping):
            return f"last data times must map symbol to int UTC ns, got {times!r}"
        raw = times.get(symbol)
        if raw is None:
            return f"no market data for {symbol}"
        last = _as_ns(raw)
        if last is None:
            return f"bad data time {raw!r} for {symbol}"
        age = f.now - last
        if age > self._max_age_ns:
            return (
                f"last data for {symbol} is {age / _NANOS_PER_SECOND:.1f} s old, "
                f"the limit is {self._config.max_data_age_seconds} s"
            )
        return None

    def _not_tradable(self, f: _Facts) -> str | None:
        problems = []
        if f.state.tradable is False:
            problems.append(f"{f.plan.symbol} is marked not tradable now")
        if self._calendar is not None and f.now is not None and not self._calendar.is_open(f.now):
            problems.append(f"{self._calendar.code} is not in regular session at {_iso(f.now)}")
        return "; ".join(problems) or None


# ---- checks that need no configuration ------------------------------------------------


def _invalid_state(f: _Facts) -> str | None:
    state, problems = f.state, []
    if f.equity is None:
        problems.append(f"equity must be positive, got {state.equity!r}")
    if not _positive(state.start_of_day_equity):
        problems.append(f"start-of-day equity must be positive, got {state.start_of_day_equity!r}")
    for name in ("realized_pnl_today", "unrealized_pnl"):
        if not _finite(getattr(state, name)):
            problems.append(f"{name} must be a finite Decimal, got {getattr(state, name)!r}")
    if f.positions is None:
        problems.append("open positions are malformed (need sign +-1, qty >= 0, positive prices)")
    if f.now is None:
        problems.append(f"now must be int UTC nanoseconds, got {state.now!r}")
    return "; ".join(problems) or None


def _paused(f: _Facts) -> str | None:
    return "trading is paused: no new entries" if f.state.paused is not False else None


def _kill_switch(f: _Facts) -> str | None:
    return "the kill switch is engaged" if f.state.kill_switch is not False else None


def _already_in_position(f: _Facts) -> str | None:
    if f.positions is None:
        return None
    plan = f.plan
    for p in f.positions:
        if p.symbol == plan.symbol and (p.strategy is None or p.strategy == plan.strategy):
            owner = "a strategy not known" if p.strategy is None else plan.strategy
            return f"{owner} already holds {p.qty} {plan.symbol}"
    return None


# ---- arithmetic -----------------------------------------------------------------------


def _plan_risk(plan: TradePlan, instrument: Instrument | None) -> Decimal | None:
    """Loss if stopped (whole notional without a stop); None when the plan's numbers are unusable."""
    if instrument is None or not (_positive(plan.entry) and _positive(plan.qty)):
        return None
    if plan.stop is None:
        return plan.qty * plan.entry * instrument.multiplier
    if not (_positive(plan.stop) and isinstance(plan.side, Side)):
        return None
    distance = plan.entry - plan.stop if plan.side is _BUY else plan.stop - plan.entry
    return plan.qty * distance * instrument.multiplier if distance > 0 else None


def position_risk(p: OpenPositionView) -> Decimal:
    """What a position can lose down to its stop (all its notional without one): its share of heat."""
    if p.stop is None:
        return p.qty * p.avg_price * p.multiplier
    return p.qty * max(_ZERO, p.sign * (p.avg_price - p.stop)) * p.multiplier


def _open_positions(positions: tuple[OpenPositionView, ...]) -> tuple[OpenPositionView, ...] | None:
    """The non-flat positions, or None when any is malformed."""
    if not isinstance(positions, tuple):
        return None
    kept = []
    for p in positions:
        if not isinstance(p, OpenPositionView) or p.sign not in (1, -1):
            return None
        if not (_finite(p.qty) and p.qty >= 0 and _positive(p.avg_price) and _positive(p.multiplier)):
            return None
        if p.stop is not None and not _positive(p.stop):
            return None
        if p.qty > 0:
            kept.append(p)
    return tuple(kept)


_Summary = tuple[Decimal, int, dict[str, list[str | None]]]


def _summarize(positions: object) -> _Summary | None:
    """Open heat, open count and the owners (strategies) of open positions by symbol; None when
    any position is malformed (then `_judge` reports it)."""
    if type(positions) is not tuple:
        return None
    open_heat = _ZERO
    open_count = 0
    owners: dict[str, list[str | None]] = {}
    for p in positions:
        if type(p) is not OpenPositionView:
            return None
        p_qty, avg, p_multiplier, p_stop, p_sign = p.qty, p.avg_price, p.multiplier, p.stop, p.sign
        # Written out (no helper calls): this runs for every open position on every signal.
        if not (
            p_sign in (1, -1)
            and type(p_qty) is Decimal
            and type(avg) is Decimal
            and type(p_multiplier) is Decimal
            and p_qty.is_finite()
            and avg.is_finite()
            and p_multiplier.is_finite()
            and p_qty >= _ZERO
            and avg > _ZERO
            and p_multiplier > _ZERO
        ):
            return None
        if p_stop is not None and not (type(p_stop) is Decimal and p_stop.is_finite() and p_stop > _ZERO):
            return None
        if p_qty:
            open_count += 1
            owners.setdefault(p.symbol, []).append(p.strategy)
            if p_stop is None:
                open_heat += p_qty * avg * p_multiplier
            else:
                loss = p_sign * (avg - p_stop)
                if loss > _ZERO:
                    open_heat += p_qty * loss * p_multiplier
    return open_heat, open_count, owners


def _plain_positive(value: object) -> TypeGuard[Decimal]:
    """A positive finite Decimal of exactly that type (the fast path leaves subclasses to `_judge`)."""
    return type(value) is Decimal and value.is_finite() and value > _ZERO


def _plain_finite(value: object) -> TypeGuard[Decimal]:
    return type(value) is Decimal and value.is_finite()


def _positive(value: object) -> TypeGuard[Decimal]:
    return isinstance(value, Decimal) and value.is_finite() and value > _ZERO


def _finite(value: object) -> TypeGuard[Decimal]:
    return isinstance(value, Decimal) and value.is_finite()


def _as_ns(value: object) -> int | None:
    """An integer time (int or numpy integer), else None; a bool or float is not a time."""
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        return None


def _pct(amount: Decimal, base: Decimal) -> str:
    return f"{amount * _HUNDRED / base:.3f}"


def _iso(ts_ns: int) -> str:
    return (_EPOCH + timedelta(microseconds=ts_ns // 1000)).strftime("%Y-%m-%d %H:%M:%S UTC")


def _safe(compute: Callable[[], T]) -> T | None:
    """`compute()`, or None when malformed input makes it raise (the checks then report it)."""
    try:
        return compute()
    except Exception:
        return None
