"""What the API reads from and does to a running engine: read models and commands, on the engine's thread."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import asdict
from decimal import Decimal
from typing import Any

from quantdesk.engine import Engine
from quantdesk.engine.messages import FlattenCompleted
from quantdesk.errors import UserError
from quantdesk.execution.throttle import Throttler
from quantdesk.risk.kill_switch import LIVE_CONFIRMATION, ModeChangeRefused
from quantdesk.risk.messages import Mode
from quantdesk.service import schemas
from quantdesk.service.events import decision_event, iso, order_dict
from quantdesk.store.writer import StoreWriter
from quantdesk.telemetry import risk_figures

FLATTEN_WAIT_S = 2.0
RECENT_ORDERS = 200
LATEST_SIGNALS = 50


class LiveUnavailable(UserError):
    """LIVE was confirmed, but this node has no live venue to trade through."""


class EngineControl:
    """The engine as the API sees it. Every method runs on the engine's thread (the node's event
    loop): the engine is single-threaded and never locked.

    `after_flatten` runs right after a flatten is issued (a paper node fills the closing market
    orders at the last price there); `extra_status` adds the node's own figures to /status.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        writer: StoreWriter | None = None,
        live_available: bool = False,
        after_flatten: Callable[[], object] | None = None,
        extra_status: Callable[[], dict[str, Any]] | None = None,
        throttler: Throttler | None = None,
    ) -> None:
        self.engine = engine
        self._writer = writer
        self._live_available = live_available
        self._after_flatten = after_flatten
        self._extra_status = extra_status
        self._throttler = throttler
        self._flatten_done: asyncio.Event | None = None
        self._last_flatten: FlattenCompleted | None = None
        engine.bus.subscribe(FlattenCompleted, self._on_flatten_done)

    # -- reads --------------------------------------------------------------------------------

    def health(self) -> schemas.Health:
        extra = self._extra_status() if self._extra_status else {}
        replay = str(extra.get("replay", {}).get("state", "n/a"))
        now = self.engine.clock.now_ns()
        return schemas.Health(status="ok", mode=self.engine.state.mode.value, clock=iso(now), replay=replay)

    def state(self) -> schemas.State:
        state = self.engine.state
        last = state.changes[-1] if state.changes else None
        return schemas.State(
            mode=state.mode.value,
            paused=state.paused,
            kill_switch=state.kill_switch,
            entries_allowed=state.entries_allowed,
            last_change=(
                {"action": last.action, "actor": last.actor, "reason": last.reason, "time": iso(last.ts)}
                if last
                else None
            ),
        )

    def risk(self) -> schemas.Risk:
        engine = self.engine
        heat, pnl = risk_figures(engine)
        marks = engine.marks()
        limits = engine.pipeline.risk.model_dump(mode="json")
        return schemas.Risk(
            currency=engine.portfolio.account.currency,
            equity=str(engine.portfolio.equity(marks)),
            cash=str(engine.portfolio.account.cash),
            portfolio_heat=str(heat),
            daily_pnl=str(pnl),
            open_positions=len(engine.open_strategy_positions()),
            limits=limits,
        )

    def positions(self) -> list[schemas.PositionOut]:
        engine = self.engine
        marks = engine.marks()
        out = []
        for strategy, symbol, qty in engine.open_strategy_positions():
            position = engine.portfolio.positions.get(symbol)
            avg = position.avg_price if position is not None else Decimal(0)
            mark = marks.get(symbol)
            unrealized = (
                (mark - avg) * qty * engine.instruments[symbol].multiplier if mark is not None else None
            )
            stop = engine.orders.stop_for(strategy, symbol)
            out.append(
                schemas.PositionOut(
                    strategy=strategy,
                    symbol=symbol,
                    qty=str(qty),
                    avg_price=str(avg),
                    last_price=None if mark is None else str(mark),
                    unrealized_pnl=None if unrealized is None else str(unrealized),
                    stop=None if stop is None else str(stop),
                )
            )
        return out

    def orders(self) -> schemas.Orders:
        orders = self.engine.orders
        recent = list(orders.orders.values())[-RECENT_ORDERS:]
        return schemas.Orders(
            working=[schemas.OrderOut(**order_dict(o)) for o in orders.working_orders()],
            recent=[schemas.OrderOut(**order_dict(o)) for o in reversed(recent)],
        )

    def signals(self) -> list[schemas.SignalOut]:
        """The latest decided candidates, newest first, with their scores' outcome."""
        decisions = self.engine.pipeline.decisions[-LATEST_SIGNALS:]
        return [schemas.SignalOut(**decision_event(record)[1]) for record in reversed(decisions)]

    def status(self) -> schemas.Status:
        engine = self.engine
        now = engine.clock.now_ns()
        calendar = engine.calendar
        clock: dict[str, Any] = {"time": iso(now), "ts": now}
        if calendar is not None:
            clock.update(
                calendar=calendar.code,
                session_open=calendar.is_open(now),
                minutes_to_close=engine.minutes_to_close(now),
            )
        by_status: dict[str, int] = {}
        for order in engine.orders.orders.values():
            by_status[order.status.value] = by_status.get(order.status.value, 0) + 1
        throttler = self._throttler.stats() if self._throttler is not None else None
        protections = engine.pipeline.protections
        locks = protections.active_locks(now) if protections is not None else []
        return schemas.Status(
            clock=clock,
            orders={"by_status": by_status, "working": len(engine.orders.working_orders())},
            throttler=None if throttler is None else asdict(throttler),
            protections=[
                {
                    "protection": lock.protection,
                    "symbol": lock.symbol,
                    "reason": lock.reason,
                    "until": iso(lock.until),
                }
                for lock in locks
            ],
            store=None if self._writer is None else asdict(self._writer.stats()),
            node=self._extra_status() if self._extra_status else {},
        )

    # -- commands -----------------------------------------------------------------------------

    def pause(self, actor: str, reason: str) -> schemas.State:
        self.engine.pause(reason or "paused from the API", actor)
        return self.state()

    def resume(self, actor: str, reason: str) -> schemas.State:
        self.engine.resume(reason or "resumed from the API", actor)
        return self.state()

    async def flatten(self, actor: str, reason: str) -> schemas.FlattenResult:
        """Cancel everything and close every position; answer when done or after 2 s, with the time."""
        engine = self.engine
        self._flatten_done = done = asyncio.Event()
        self._last_flatten = None
        report = engine.flatten(reason or "flatten from the API", actor)
        if self._after_flatten is not None:
            self._after_flatten()
        if self._last_flatten is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), timeout=FLATTEN_WAIT_S)
        finished = self._last_flatten
        return schemas.FlattenResult(
            done=finished is not None,
            duration_ms=(finished.duration_ns if finished else report.duration_ns) / 1e6,
            canceled=report.canceled,
            closing_orders=report.closing_orders,
            open_positions=len(engine.open_strategy_positions()),
            working_orders=len(engine.orders.working_orders()),
        )

    def set_mode(self, mode: str, confirm: str, actor: str) -> schemas.State:
        """PAPER at once; LIVE only with the exact phrase and a live venue. Each refusal is audited."""
        target = Mode(mode)
        state = self.engine.state
        if target is Mode.LIVE and confirm == LIVE_CONFIRMATION and not self._live_available:
            reason = "no live venue: this node trades on the simulated venue"
            state.refuse_mode(target, reason, actor)
            raise LiveUnavailable(f"LIVE refused: {reason}")
        state.set_mode(target, confirm, actor)  # a wrong phrase raises ModeChangeRefused, audited
        return self.state()

    def _on_flatten_done(self, done: FlattenCompleted) -> None:
        self._last_flatten = done
        if self._flatten_done is not None:
            self._flatten_done.set()


__all__ = ["EngineControl", "LiveUnavailable", "ModeChangeRefused"]
