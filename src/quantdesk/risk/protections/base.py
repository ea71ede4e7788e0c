"""What every protection shares: the trade view it reads, the lock it returns, its config and base class."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property
from typing import ClassVar, Generic, Protocol, Self, TypeVar

from pydantic import BaseModel, ConfigDict, PositiveInt, model_validator

from quantdesk.risk.protections.window import TradeWindow, TradeWindows

NS_PER_MINUTE = 60 * 1_000_000_000
SIDES: tuple[str, str] = ("LONG", "SHORT")


class TradeView(Protocol):
    """The least a protection needs to know about a trade; times are UTC nanoseconds.

    `exit_time` is None (or 0) while the trade is open; `pnl` is net of fees; `return_pct` is
    the profit ratio (0.02 = +2 %); `exit_reason` is how it closed ("stop", "target", ...).
    """

    @property
    def symbol(self) -> str: ...
    @property
    def side(self) -> str: ...
    @property
    def entry_time(self) -> int: ...
    @property
    def exit_time(self) -> int | None: ...
    @property
    def pnl(self) -> Decimal: ...
    @property
    def return_pct(self) -> float: ...
    @property
    def exit_reason(self) -> str: ...


@dataclass(frozen=True, slots=True)
class ClosedTrade:
    """A closed round trip as protections see it (implements `TradeView`)."""

    symbol: str
    side: str
    entry_time: int
    exit_time: int
    pnl: Decimal
    return_pct: float
    exit_reason: str

    def __post_init__(self) -> None:
        if self.side not in SIDES:
            raise ValueError(f"ClosedTrade.side must be LONG or SHORT, got {self.side!r}")
        if self.exit_time < self.entry_time:
            raise ValueError("ClosedTrade.exit_time is before entry_time")


@dataclass(frozen=True, slots=True)
class ProtectionLock:
    """A block on new entries until `until` (UTC ns, exclusive): for one symbol, or all when None.

    `side` is None for both directions, or "LONG"/"SHORT" when the protection runs per side.
    """

    until: int
    reason: str
    symbol: str | None
    protection: str
    side: str | None = None

    def is_active(self, now: int) -> bool:
        return now < self.until

    def applies_to(self, side: str | None) -> bool:
        """Whether this lock blocks an entry on `side` (None asks about either side)."""
        return self.side is None or side is None or self.side == side


class ProtectionConfig(BaseModel):
    """Lock duration, in minutes or in candles of `candle_minutes`; 60 minutes when neither is set."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    stop_duration_minutes: PositiveInt | None = None
    stop_duration_candles: PositiveInt | None = None
    candle_minutes: PositiveInt | None = None

    @model_validator(mode="after")
    def _check_durations(self) -> Self:
        _check_minutes_or_candles(self, "stop_duration")
        return self

    @cached_property  # the config is frozen; every check asks
    def stop_duration_ns(self) -> int:
        return _minutes(self, "stop_duration") * NS_PER_MINUTE

    @property
    def stop_duration_text(self) -> str:
        return _text(self, "stop_duration")


class LookbackConfig(ProtectionConfig):
    """A protection config with a lookback window: trades closed within it are evaluated."""

    lookback_minutes: PositiveInt | None = None
    lookback_period_candles: PositiveInt | None = None

    @model_validator(mode="after")
    def _check_lookback(self) -> Self:
        _check_minutes_or_candles(self, "lookback")
        return self

    @cached_property  # the config is frozen; every check asks
    def lookback_ns(self) -> int:
        return _minutes(self, "lookback") * NS_PER_MINUTE

    @property
    def lookback_text(self) -> str:
        return _text(self, "lookback")


_DEFAULT_MINUTES = 60


def _fields(prefix: str) -> tuple[str, str]:
    candles = "lookback_period_candles" if prefix == "lookback" else f"{prefix}_candles"
    return f"{prefix}_minutes", candles


def _check_minutes_or_candles(config: ProtectionConfig, prefix: str) -> None:
    minutes_field, candles_field = _fields(prefix)
    if getattr(config, minutes_field) is not None and getattr(config, candles_field) is not None:
        raise ValueError(f"give {minutes_field} or {candles_field}, not both")
    if getattr(config, candles_field) is not None and config.candle_minutes is None:
        raise ValueError(f"{candles_field} needs candle_minutes")


def _minutes(config: ProtectionConfig, prefix: str) -> int:
    minutes_field, candles_field = _fields(prefix)
    candles: int | None = getattr(config, candles_field)
    if candles is not None and config.candle_minutes is not None:
        return candles * config.candle_minutes
    minutes: int | None = getattr(config, minutes_field)
    return _DEFAULT_MINUTES if minutes is None else minutes


def _text(config: ProtectionConfig, prefix: str) -> str:
    candles: int | None = getattr(config, _fields(prefix)[1])
    if candles is not None:
        return f"{candles} candle{'s' if candles != 1 else ''}"
    return f"{_minutes(config, prefix)} min"


ConfigT = TypeVar("ConfigT", bound=ProtectionConfig)


class Protection(ABC, Generic[ConfigT]):
    """One protection: looks at closed trades and answers with a lock, or None.

    `check(symbol=None, ...)` is the global question (may all symbols be entered?),
    `check(symbol="X", ...)` the per-symbol one. A protection answers only the kinds its
    `has_global_stop` / `has_local_stop` flags declare. It returns only a lock still active
    at `now`. The same inputs give the same answer: the only state it keeps is the lookback
    windows of the trade list it was last given (`TradeWindows`), which follow that list as it
    grows and are read afresh from any other.
    """

    has_global_stop: ClassVar[bool] = False
    has_local_stop: ClassVar[bool] = False

    def __init__(self, config: ConfigT) -> None:
        self.config = config
        keeps_all = type(self)._keeps is Protection._keeps
        self._windows = TradeWindows(None if keeps_all else self._keeps)

    @property
    def name(self) -> str:
        return type(self).__name__

    @property
    def only_per_side(self) -> bool:
        """Whether trades and locks are split by side (LONG / SHORT)."""
        return False

    def check(
        self,
        symbol: str | None,
        now: int,
        open_trades: Sequence[TradeView],
        closed_trades: Sequence[TradeView],
        *,
        side: str | None = None,
    ) -> ProtectionLock | None:
        """The lock this protection imposes at `now`, or None.

        `side` is the direction about to be entered; it matters only with `only_per_side`,
        where None evaluates both sides and returns the longer lock. Open trades are accepted
        for the interface's sake: like freqtrade's, these protections read closed trades only.
        """
        if (symbol is None and not self.has_global_stop) or (symbol is not None and not self.has_local_stop):
            return None
        sides: Iterable[str | None] = (side,) if side is not None or not self.only_per_side else SIDES
        best: ProtectionLock | None = None
        for one_side in sides:
            lock = self._evaluate(symbol, now, closed_trades, one_side if self.only_per_side else None)
            if lock is not None and lock.is_active(now) and (best is None or lock.until > best.until):
                best = lock
        return best

    @abstractmethod
    def _evaluate(
        self, symbol: str | None, now: int, closed_trades: Sequence[TradeView], side: str | None
    ) -> ProtectionLock | None:
        """The lock implied by `closed_trades` for `symbol` (None: all) and `side` (None: both)."""

    def _window(
        self, closed_trades: Sequence[TradeView], start: int, now: int, symbol: str | None, side: str | None
    ) -> TradeWindow:
        """The window of `symbol` and `side` brought up to `now`; its trades are those `_keeps`.

        Read its result right away: the trades it returns change with the next question.
        """
        return self._windows.window(closed_trades, start, now, symbol, side)

    def _keeps(self, trade: TradeView) -> bool:
        """Which trades of the window count for this protection (all, unless overridden)."""
        return True

    def _lock(self, last_exit: int, reason: str, symbol: str | None, side: str | None) -> ProtectionLock:
        # freqtrade's calculate_lock_end: the lock runs from the last relevant exit, not from now.
        until = last_exit + self.config.stop_duration_ns
        return ProtectionLock(until=until, reason=reason, symbol=symbol, protection=self.name, side=side)


def closed_between(
    trades: Iterable[TradeView], start: int, now: int, symbol: str | None = None, side: str | None = None
) -> list[TradeView]:
    """Closed trades with `start < exit_time <= now`, of `symbol` and `side` when given, by exit time.

    The window's start is exclusive like freqtrade's `close_date > now - lookback`; trades that
    close after `now` are left out so a backtest may pass its whole trade list.
    """
    if isinstance(trades, Sequence):
        window = _tail_window(trades, start, now, symbol, side)
        if window is not None:
            return window
    selected = [
        trade
        for trade in trades
        if trade.exit_time
        and start < trade.exit_time <= now
        and (symbol is None or trade.symbol == symbol)
        and (side is None or trade.side == side)
    ]
    return sorted(selected, key=_exit_time)


def _tail_window(
    trades: Sequence[TradeView], start: int, now: int, symbol: str | None, side: str | None
) -> list[TradeView] | None:
    """The window read from the end of a list kept in exit order (as a session's closed trades
    are), stopping at the window's start; None if the list turns out not to be in exit order."""
    selected: list[TradeView] = []
    later = None
    for trade in reversed(trades):
        exit_time = trade.exit_time or 0
        if later is not None and exit_time > later:
            return None
        later = exit_time
        if exit_time <= start:
            break
        if (
            exit_time <= now
            and (symbol is None or trade.symbol == symbol)
            and (side is None or trade.side == side)
        ):
            selected.append(trade)
    selected.reverse()
    return selected


def _exit_time(trade: TradeView) -> int:
    return trade.exit_time or 0
