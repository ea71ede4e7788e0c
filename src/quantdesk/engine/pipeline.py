"""The trading pipeline: a cycle's signals -> ranking -> protections -> risk gate -> sizing -> execution.

This is the only path from a strategy's idea to an entry order: `OrderManager.enter`
is called from `_approve` and nowhere else (a test checks the source). Every
signal ends in exactly one recorded decision, approved or blocked with all its
reasons, published on the bus and written to the event log.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

from quantdesk.clock.calendar import MarketCalendar
from quantdesk.engine.messages import DecisionRecord
from quantdesk.execution.client_ids import plan_client_id
from quantdesk.model import Signal
from quantdesk.portfolio.trades import TradeRecord
from quantdesk.ranking import Ranker, RankingConfig
from quantdesk.risk.config import RiskConfig, SizingConfig
from quantdesk.risk.gate import RiskGate
from quantdesk.risk.kill_switch import TradingState
from quantdesk.risk.messages import (
    BlockReason,
    Decision,
    LastDataTimes,
    Mode,
    OpenPositionView,
    RiskState,
    TradePlan,
)
from quantdesk.risk.protections import ProtectionLock, ProtectionManager, protections_from_config
from quantdesk.risk.sizer import Sizer

if TYPE_CHECKING:
    from quantdesk.engine.engine import Engine

_ZERO: Final = Decimal(0)
_NAN: Final = Decimal("NaN")


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    """Risk limits, ranking and protections for one run; `config_sha` ties decisions to it."""

    risk: RiskConfig = field(default_factory=RiskConfig)
    ranking: RankingConfig | None = None
    protections: tuple[dict[str, Any], ...] = ()
    mode: Mode = Mode.PAPER
    config_sha: str = ""


def research_risk_config(qty: Decimal) -> RiskConfig:
    """Limits for research backtests: every check still runs, but caps are wide open, entries
    without a stop are allowed and stale-data checks are off; `qty` units per entry unless the
    signal gives its own. Live and paper use `RiskConfig` defaults or the user's file."""
    return RiskConfig(
        max_risk_per_trade_pct=Decimal(100),
        max_portfolio_heat_pct=Decimal(100),
        max_daily_loss_pct=Decimal(100),
        max_open_positions=1_000,
        max_positions_per_symbol=1,
        allow_stopless_entries=True,
        max_data_age_seconds=None,
        sizing=SizingConfig(mode="fixed", fixed_qty=qty, risk_pct=None),
    )


class TradingPipeline:
    """Turns each cycle's signals into decisions, and approved decisions into entries."""

    def __init__(
        self,
        engine: Engine,
        config: PipelineConfig,
        calendar: MarketCalendar | None = None,
        *,
        keep_decisions: int = 10_000,
    ) -> None:
        self._engine = engine
        self.config = config
        self.risk = config.risk.for_mode(config.mode)
        self.gate = RiskGate(self.risk, engine.instruments, calendar)
        self._sizer = Sizer(
            self.risk.sizing, engine.instruments, max_risk_pct=self.risk.max_risk_per_trade_pct
        )
        self._signal_sizer = Sizer(SizingConfig(mode="signal"), engine.instruments)
        self._ranker = Ranker(config.ranking) if config.ranking is not None else None
        self.protections: ProtectionManager | None = (
            protections_from_config(list(config.protections), starting_balance=engine.portfolio.account.cash)
            if config.protections
            else None
        )
        self.pending: list[Signal] = []
        self.decisions: list[DecisionRecord] = []
        self._keep = keep_decisions
        self.approved = 0
        self.blocked: dict[str, int] = {}
        self._day = -1
        self._day_equity = engine.portfolio.account.cash
        self._day_realized = _ZERO
        self._listeners: list[Callable[[DecisionRecord], None]] = []
        # (position qty, average price, stop, view) by (strategy, symbol), and the last tuple of views.
        self._views: dict[tuple[str, str], tuple[Decimal, Decimal, Decimal | None, OpenPositionView]] = {}
        self._positions: tuple[OpenPositionView, ...] = ()
        self._last_data: LastDataTimes | None = None  # the engine's last bars exist after its set-up

    @property
    def state(self) -> TradingState:
        return self._engine.state

    def subscribe(self, listener: Callable[[DecisionRecord], None]) -> None:
        self._listeners.append(listener)

    # -- the cycle ------------------------------------------------------------------------------

    def on_signal(self, signal: Signal) -> None:
        self.pending.append(signal)

    def end_cycle(self) -> None:
        """Decide every signal of the cycle (the events of one timestamp)."""
        # Cleared in place: a feed loop holds this list to test it cheaply.
        signals = list(self.pending)
        self.pending.clear()
        if self._ranker is not None:
            kept, dropped = self._ranker.rank_all(signals)
            for drop in dropped:
                plan = self._plan(drop.ranked.signal, _ZERO)
                self._record(
                    drop.ranked.signal, plan, Decision.block(plan, BlockReason.RANKING, str(drop.reason))
                )
            ordered: Sequence[Signal] = [ranked.signal for ranked in kept]
        else:
            ordered = signals
        for signal in ordered:
            self._decide(signal)

    def _decide(self, signal: Signal) -> None:
        state = self.risk_state(signal.ts)
        reference = self._reference_price(signal)
        lock = self._lock(signal)
        if lock is not None:
            plan = self._plan(signal, _ZERO, reference)
            self._record(signal, plan, Decision.block(plan, BlockReason.PROTECTION, lock.reason))
            return
        entry = signal.entry if signal.entry is not None else reference
        if signal.qty is not None:
            size = self._signal_sizer.size(
                symbol=signal.symbol,
                entry=entry if entry is not None else _NAN,
                stop=signal.stop,
                equity=state.equity,
                signal_qty=signal.qty,
            )
        else:
            size = self._sizer.size(
                symbol=signal.symbol,
                entry=entry if entry is not None else _NAN,
                stop=signal.stop,
                equity=state.equity,
            )
        plan = self._plan(signal, size.qty, reference)
        if size.qty <= _ZERO:
            self._record(signal, plan, Decision.block(plan, BlockReason.ZERO_SIZE, size.reason))
            return
        decision = self.gate.can_enter(plan, state)
        plan_id = self._plan_id(plan)
        self._record(signal, plan, decision, plan_id)
        if decision.approved:
            self._approve(plan, signal, plan_id)

    def _approve(self, plan: TradePlan, signal: Signal, plan_id: str) -> None:
        """The one place an entry order is created: after the gate approved `plan`."""
        self._engine.orders.enter(
            plan.strategy,
            plan.symbol,
            plan.side,
            plan.qty,
            plan_id=plan_id,
            entry=signal.entry,
            stop=plan.stop,
            targets=plan.targets,
        )

    # -- helpers ------------------------------------------------------------------------------

    def _plan(self, signal: Signal, qty: Decimal, reference: Decimal | None = None) -> TradePlan:
        is_market = signal.entry is None
        entry = reference if is_market else signal.entry
        # TradePlan.from_signal, spelled out: one plan per signal.
        return TradePlan(
            signal.strategy,
            signal.symbol,
            signal.side,
            entry if entry is not None else _NAN,
            signal.stop,
            qty,
            signal.ts,
            signal.targets,
            self.config.config_sha,
            is_market,
        )

    def _plan_id(self, plan: TradePlan) -> str:
        return plan_client_id(
            strategy=plan.strategy,
            symbol=plan.symbol,
            side=str(plan.side),  # its value: `.value` is a Python descriptor, per entry
            entry=None if plan.is_market else plan.entry,
            stop=plan.stop,
            targets=plan.targets,
            qty=plan.qty,
            signal_ts=plan.signal_ts,
            config_sha=plan.config_sha,
        )

    def _reference_price(self, signal: Signal) -> Decimal | None:
        bar = self._engine.last_bar.get(signal.symbol)
        if bar is None:
            return None
        return self._engine.instruments[signal.symbol].price_from_float(bar.close)

    def _lock(self, signal: Signal) -> ProtectionLock | None:
        if self.protections is None:
            return None
        closed: Sequence[TradeRecord] = self._engine.closed_trades
        return self.protections.entry_lock(
            signal.symbol, signal.ts, (), closed, side="LONG" if signal.side.sign > 0 else "SHORT"
        )

    def begin_day(self, day: int, equity: Decimal) -> None:
        """Start session `day` at `equity`; what is realised from here on counts as today's.

        The engine calls it while restoring fills after a restart, before each day's first
        one, so a crash mid-session does not wipe the day's losses from the daily-loss cap."""
        portfolio = self._engine.portfolio
        self._day, self._day_equity = day, equity
        self._day_realized = portfolio.realized_pnl - portfolio.account.fees_paid

    def risk_state(self, now: int) -> RiskState:
        """What the gate sees at `now`: equity, the day's start and P&L, open positions, pause."""
        engine = self._engine
        portfolio = engine.portfolio
        instruments = engine.instruments
        last_bar = engine.last_bar
        open_positions = engine.open_strategy_positions()
        marks: dict[str, Decimal] = {}
        for _, symbol, _ in open_positions:
            if symbol not in marks and symbol in last_bar:
                marks[symbol] = instruments[symbol].price_from_float(last_bar[symbol].close)
        if open_positions:
            equity, unrealized = portfolio.marked(marks)
            positions = self._open_views(open_positions)
        else:
            equity, unrealized, positions = portfolio.equity(marks), _ZERO, ()
        realized = portfolio.realized_pnl - portfolio.account.fees_paid
        day = engine.session_key(now)
        if day != self._day:
            self._day, self._day_equity, self._day_realized = day, equity, realized
        return RiskState(
            equity=equity,
            start_of_day_equity=self._day_equity,
            now=now,
            realized_pnl_today=realized - self._day_realized,
            unrealized_pnl=unrealized,
            open_positions=positions,
            paused=engine.state.paused,
            kill_switch=engine.state.kill_switch,
            last_data_ts=self._last_data if self._last_data is not None else self._last_data_view(),
        )

    def _open_views(self, open_positions: list[tuple[str, str, Decimal]]) -> tuple[OpenPositionView, ...]:
        """The gate's view of each open position; the same tuple as last time when nothing in it
        changed (the gate then reuses what it summed), a view rebuilt only when its position,
        average price or stop changed (each is replaced, never mutated, when it changes)."""
        engine = self._engine
        portfolio = engine.portfolio
        stop_for = engine.orders.stop_for
        cache = self._views
        previous = self._positions
        unchanged = len(previous) == len(open_positions)
        views = []
        for index, (strategy, symbol, qty) in enumerate(open_positions):
            avg = portfolio.position(symbol).avg_price
            stop = stop_for(strategy, symbol)
            cached = cache.get((strategy, symbol))
            if cached is not None and cached[0] is qty and cached[1] is avg and cached[2] is stop:
                view = cached[3]
            else:
                view = OpenPositionView(
                    symbol,
                    1 if qty > 0 else -1,
                    abs(qty),
                    avg,
                    stop,
                    engine.instruments[symbol].multiplier,
                    strategy,
                )
                cache[(strategy, symbol)] = (qty, avg, stop, view)
            if unchanged and previous[index] is not view:
                unchanged = False
            views.append(view)
        if not unchanged:
            self._positions = tuple(views)
        return self._positions

    def _last_data_view(self) -> LastDataTimes:
        self._last_data = LastDataTimes(self._engine.last_bar)
        return self._last_data

    def _record(self, signal: Signal, plan: TradePlan, decision: Decision, plan_id: str = "") -> None:
        approved = decision.approved
        reasons = tuple([r.value for r in decision.reasons]) if decision.reasons else ()
        record = DecisionRecord(
            plan_id=plan_id,
            signal=signal,
            approved=approved,
            reasons=reasons,
            details=decision.details,
            qty=plan.qty,
            risk_amount=decision.risk_amount,
            risk_pct=decision.risk_pct,
            ts=self._engine.clock.now_ns(),
        )
        if approved:
            self.approved += 1
        else:
            blocked = self.blocked
            for reason in reasons:
                blocked[reason] = blocked.get(reason, 0) + 1
        if len(self.decisions) < self._keep:
            self.decisions.append(record)
        self._engine.event_log.record(
            f"decision {plan_id} {signal.strategy} {signal.symbol} {signal.ts} "
            # str(): see Engine.submit_signal
            f"{'approved' if approved else 'blocked'} {str(plan.qty)} {','.join(reasons)}"
        )
        for listener in self._listeners:
            listener(record)
        if self._engine.bus.has_subscribers(DecisionRecord):
            self._engine.bus.publish(record)
