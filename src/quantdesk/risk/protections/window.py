"""The lookback windows of closed trades, kept up to date as a session's trade list grows.

A protection asks on every signal which trades closed in its lookback, for all
symbols and for the symbol being entered. Read afresh, that costs time in
proportion to the trades in the window (a session-long lookback: every trade of
the session). A session's closed trades only ever grow at the end, in exit
order, and time only moves forward, so the windows can follow them instead: each
new trade is taken in once and handed to the windows it belongs to, trades that
fell out of the lookback are dropped from the front, and a question costs O(1)
amortised, whatever the number of symbols. Whatever breaks those assumptions
(another list, a shorter one, the last trade taken in no longer in its place,
time going back, trades out of exit order) makes the windows start over from
the list itself, so the answer is always the one `closed_between` (in `base`)
gives for the same input. One thing is not detected, since it cannot be in O(1):
the same list reordered in place with the last trade taken in left at its index.
The engine's list is append-only; anyone else reorders a copy.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:  # base imports this module; the protocol is only needed for annotations
    from quantdesk.risk.protections.base import TradeView

_ZERO: Final = Decimal(0)
_Key = tuple[str | None, str | None]


class TradeWindow:
    """One window: kept trades of a symbol and side (None: any) with `start < exit_time <= now`,
    in exit order, and the summed `pnl` of kept trades that closed at or before `start`
    (MaxDrawdown's balance at the window's start, when nothing is filtered)."""

    __slots__ = ("_deque", "pnl_before", "trades")

    def __init__(self) -> None:
        self._deque: deque[TradeView] = deque()
        self.pnl_before = _ZERO
        self.trades: Sequence[TradeView] = self._deque

    def _drop_before(self, start: int) -> None:
        window = self._deque
        while window and (window[0].exit_time or 0) <= start:
            self.pnl_before += window.popleft().pnl
        self.trades = window


class TradeWindows:
    """Every window one protection keeps over one trade list, fed from a single pass over it.

    `keep(trade)` says which trades count for the protection (all, by default).
    """

    __slots__ = ("_consumed", "_keep", "_last", "_last_exit", "_now", "_source", "_windows")

    def __init__(self, keep: Callable[[TradeView], bool] | None = None) -> None:
        self._keep = keep
        self._windows: dict[_Key, TradeWindow] = {}
        self._source: Sequence[TradeView] | None = None
        self._consumed = 0
        self._last: TradeView | None = None
        self._last_exit = 0
        self._now = 0

    def window(
        self, trades: Sequence[TradeView], start: int, now: int, symbol: str | None, side: str | None
    ) -> TradeWindow:
        """The window of `symbol` and `side` at `now` over `trades`; read its `trades` and
        `pnl_before` right away (they change with the next question)."""
        if not self._follows(trades, now):
            self._restart(trades)
        if self._source is None or not self._take_in(trades, now):
            # Not in exit order after all: read the list as a whole, every time.
            self._source = None
            return self._read_whole(trades, start, now, symbol, side)
        self._now = now
        window = self._windows.get((symbol, side))
        if window is None:
            window = self._windows[(symbol, side)] = self._built(trades, symbol, side)
        window._drop_before(start)
        return window

    def _follows(self, trades: Sequence[TradeView], now: int) -> bool:
        consumed = self._consumed
        return (
            trades is self._source
            and now >= self._now
            and len(trades) >= consumed
            and (consumed == 0 or trades[consumed - 1] is self._last)
        )

    def _restart(self, trades: Sequence[TradeView]) -> None:
        self._source = trades
        self._windows = {}
        self._consumed = 0
        self._last = None
        self._last_exit = 0
        self._now = 0

    def _take_in(self, trades: Sequence[TradeView], now: int) -> bool:
        """Hand each trade closed by `now` to the windows it belongs to; False if the list is
        not in exit order."""
        index, count = self._consumed, len(trades)
        if index == count:
            return True
        windows, keep = self._windows, self._keep
        last_exit = self._last_exit
        while index < count:
            trade = trades[index]
            exit_time = trade.exit_time
            if exit_time and exit_time > now:
                # Closes later than now: taken in when time gets there, if what follows is in order.
                if not _in_exit_order(trades, index, last_exit):
                    return False
                break
            exit_time = exit_time or 0
            if exit_time < last_exit:
                return False
            last_exit = exit_time
            index += 1
            if exit_time and windows and (keep is None or keep(trade)):
                for key in _keys_of(trade.symbol, trade.side):
                    window = windows.get(key)
                    if window is not None:
                        window._deque.append(trade)
        if index > self._consumed:
            self._consumed, self._last, self._last_exit = index, trades[index - 1], last_exit
        return True

    def _built(self, trades: Sequence[TradeView], symbol: str | None, side: str | None) -> TradeWindow:
        """A new window, from the trades taken in so far."""
        window = TradeWindow()
        keep = self._keep
        window._deque.extend(
            [
                trade
                for trade in trades[: self._consumed]
                if trade.exit_time
                and (symbol is None or trade.symbol == symbol)
                and (side is None or trade.side == side)
                and (keep is None or keep(trade))
            ]
        )
        return window

    def _read_whole(
        self, trades: Sequence[TradeView], start: int, now: int, symbol: str | None, side: str | None
    ) -> TradeWindow:
        """The window from the whole list, whatever its order (as `closed_between` reads it)."""
        keep = self._keep
        mine = [
            trade
            for trade in trades
            if trade.exit_time
            and trade.exit_time <= now
            and (symbol is None or trade.symbol == symbol)
            and (side is None or trade.side == side)
            and (keep is None or keep(trade))
        ]
        window = TradeWindow()
        window.pnl_before = sum((trade.pnl for trade in mine if (trade.exit_time or 0) <= start), _ZERO)
        window.trades = sorted((trade for trade in mine if (trade.exit_time or 0) > start), key=_exit_time)
        return window


def _keys_of(symbol: str | None, side: str | None) -> tuple[_Key, ...]:
    """The windows a trade of `symbol` and `side` belongs to, each once."""
    if symbol is None or side is None:
        return tuple({(None, None), (symbol, None), (None, side), (symbol, side)})
    return ((None, None), (symbol, None), (None, side), (symbol, side))


def _exit_time(trade: TradeView) -> int:
    return trade.exit_time or 0


def _in_exit_order(trades: Sequence[TradeView], index: int, last_exit: int) -> bool:
    previous = last_exit
    for position in range(index, len(trades)):
        exit_time = trades[position].exit_time or 0
        if exit_time < previous:
            return False
        previous = exit_time
    return True
