"""Risk messages: the trade plan the gate judges, the state it judges against, and its decision.

They are frozen msgspec Structs rather than frozen dataclasses: as immutable, and built
several times faster (a frozen dataclass sets each field through `object.__setattr__`),
which counts when every signal builds a plan, a state, a view per open position and a
decision. `msgspec.structs.replace` copies one with changes.

Structs here are declared `gc=False`: they hold only scalars, strings and immutable
containers, so they cannot be part of a reference cycle, and untracked they cost the
cyclic collector nothing (fewer and shorter pauses on the hot path).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType
from typing import Any

import msgspec

from quantdesk.model import Bar, Side, Signal

_ZERO = Decimal(0)
_NO_DATA: Mapping[str, int] = MappingProxyType({})


class Mode(StrEnum):
    """How the node runs: on history, on paper against real data, or with real money."""

    BACKTEST = "BACKTEST"
    PAPER = "PAPER"
    LIVE = "LIVE"


class BlockReason(StrEnum):
    """Stable codes of why an entry was refused; metrics count blocks by these values.

    The gate reports all but three itself: ZERO_SIZE (the sizer found no whole lot),
    PROTECTION (a protection holds a lock) and RANKING (dropped by the ranker) come
    from the pipeline through
    `Decision.block`, so every refusal has the same shape.
    """

    INVALID_PLAN = "INVALID_PLAN"
    INVALID_STATE = "INVALID_STATE"
    PAUSED = "PAUSED"
    KILL_SWITCH = "KILL_SWITCH"
    TRADE_RISK = "TRADE_RISK"
    PORTFOLIO_HEAT = "PORTFOLIO_HEAT"
    DAILY_LOSS = "DAILY_LOSS"
    MAX_POSITIONS = "MAX_POSITIONS"
    MAX_PER_SYMBOL = "MAX_PER_SYMBOL"
    ALREADY_IN_POSITION = "ALREADY_IN_POSITION"
    ENTRY_CUTOFF = "ENTRY_CUTOFF"
    STALE_DATA = "STALE_DATA"
    NOT_TRADABLE = "NOT_TRADABLE"
    ZERO_SIZE = "ZERO_SIZE"
    PROTECTION = "PROTECTION"
    RANKING = "RANKING"


class TradePlan(msgspec.Struct, frozen=True, gc=False):
    """A sized entry with its protective stop and targets, ready for the gate and then execution.

    `entry` is the limit price, or for a market entry (`is_market`) the reference
    price the risk is measured from (last trade or quote). `qty` is positive; the
    direction is `side`. `signal_ts` is the time of the bar or tick behind the
    signal and `config_sha` the hash of the configuration that produced it, so
    the audit chain can tie the decision to both.
    """

    strategy: str
    symbol: str
    side: Side
    entry: Decimal
    stop: Decimal | None
    qty: Decimal
    signal_ts: int
    targets: tuple[Decimal, ...] = ()
    config_sha: str = ""
    is_market: bool = False

    @classmethod
    def from_signal(
        cls, signal: Signal, *, qty: Decimal, reference_price: Decimal | None = None, config_sha: str = ""
    ) -> TradePlan:
        """The plan for `signal` at `qty`; a market signal (entry None) needs `reference_price`."""
        is_market = signal.entry is None
        entry = reference_price if is_market else signal.entry
        return cls(
            strategy=signal.strategy,
            symbol=signal.symbol,
            side=signal.side,
            entry=entry if entry is not None else Decimal("NaN"),
            stop=signal.stop,
            qty=qty,
            signal_ts=signal.ts,
            targets=signal.targets,
            config_sha=config_sha,
            is_market=is_market,
        )


class OpenPositionView(msgspec.Struct, frozen=True, gc=False):
    """What the gate needs of one open position: size, direction, cost, protective stop.

    `sign` is +1 for a long and -1 for a short; `qty` is the absolute quantity.
    `strategy` None means "not known", which the gate treats as the plan's own.
    """

    symbol: str
    sign: int
    qty: Decimal
    avg_price: Decimal
    stop: Decimal | None = None
    multiplier: Decimal = Decimal(1)
    strategy: str | None = None


class RiskState(msgspec.Struct, frozen=True, gc=False):
    """The account as the gate sees it at `now` (UTC ns): equity, today's P&L, positions, switches.

    `last_data_ts` maps a symbol to the time of its latest tick or bar.
    `tradable` lets a caller without a calendar say the symbol's session is shut
    (False blocks; None leaves it to the gate's calendar, if any).
    """

    equity: Decimal
    start_of_day_equity: Decimal
    now: int
    realized_pnl_today: Decimal = _ZERO
    unrealized_pnl: Decimal = _ZERO
    open_positions: tuple[OpenPositionView, ...] = ()
    paused: bool = False
    kill_switch: bool = False
    last_data_ts: Mapping[str, int] = _NO_DATA
    tradable: bool | None = None


class Decision(msgspec.Struct, frozen=True, gc=False):
    """The gate's answer: approved, or blocked with every reason that applies.

    `reasons` holds stable codes (for metrics and reports) and `details` the
    human sentence for each, in the same order. `risk_amount` is what the plan
    loses if stopped (its whole notional without a stop; 0 when it cannot be
    computed) and `risk_pct` that amount as a percent of equity.
    """

    approved: bool
    plan: TradePlan
    reasons: tuple[BlockReason, ...] = ()
    details: tuple[str, ...] = ()
    risk_amount: Decimal = _ZERO
    risk_pct: Decimal = _ZERO

    @property
    def blocked(self) -> bool:
        return not self.approved

    @classmethod
    def block(cls, plan: TradePlan, reason: BlockReason, detail: str) -> Decision:
        """A refusal from outside the gate, e.g. ZERO_SIZE from the sizer or PROTECTION from a lock."""
        return cls(approved=False, plan=plan, reasons=(reason,), details=(detail,))


class LastDataTimes(Mapping[str, int]):
    """Symbol -> time (`ts_init`) of its last bar, read from a live map of last bars when asked.

    A view, not a copy: the pipeline hands one to every `RiskState`; building a mapping of
    every symbol for every decision would cost in proportion to the symbols traded, and the
    gate looks up one.
    """

    __slots__ = ("_bars",)

    def __init__(self, bars: Mapping[str, Bar]) -> None:
        self._bars = bars

    def __getitem__(self, symbol: str) -> int:
        return self._bars[symbol].ts_init

    def get(self, symbol: str, default: Any = None) -> Any:
        bar = self._bars.get(symbol)
        return default if bar is None else bar.ts_init

    def __iter__(self) -> Iterator[str]:
        return iter(self._bars)

    def __len__(self) -> int:
        return len(self._bars)
