"""Bar matching: where along a bar's assumed price path a resting order first becomes fillable.

The intrabar path assumption: a bar moves open -> the extreme nearer the open ->
the other extreme -> close (a tie goes to the low first, the pessimistic choice
for a long's stop). Orders fill in the order the path reaches them, so when a
stop and a target of one bracket both lie inside a bar, the one nearer the open
fills first.

Compiled (per working order per bar); its result type, `PathHit`, is a Struct and lives in
`venues/sim/resting.py` (re-exported here).
"""

from __future__ import annotations

from typing import Final

from quantdesk.model import OrderType, Side
from quantdesk.venues.sim.resting import PathHit

# Enum members as C statics: compiled, `Side.BUY` is a call of EnumType's __getattr__ hook
# on Python 3.11 (~80 ns); see _compiled.py.
_LIMIT: Final = OrderType.LIMIT
_MARKET: Final = OrderType.MARKET
_STOP: Final = OrderType.STOP
_STOP_LIMIT: Final = OrderType.STOP_LIMIT
_BUY: Final = Side.BUY

__all__ = ["PathHit", "bar_path", "match_on_bar", "match_on_price"]


def bar_path(open_: float, high: float, low: float, close: float) -> tuple[float, float, float, float]:
    if open_ - low <= high - open_:
        return (open_, low, high, close)
    return (open_, high, low, close)


def _price_at(path: tuple[float, ...], position: float) -> float:
    i = min(int(position), len(path) - 2)
    return path[i] + (path[i + 1] - path[i]) * (position - i)


def _reached(price: float, level: float, downward: bool, strict: bool) -> bool:
    if downward:
        return price < level if strict else price <= level
    return price > level if strict else price >= level


def _first_reach(
    path: tuple[float, ...], start: float, level: float, downward: bool, strict: bool
) -> float | None:
    """First position >= `start` where price reaches `level` going down (or up)."""
    if _reached(_price_at(path, start), level, downward, strict):
        return start
    for i in range(int(start), len(path) - 1):
        a, b = path[i], path[i + 1]
        if _reached(b, level, downward, strict):
            # The segment is linear and was not at the level at `start`, so it crosses after it.
            return max(start, i + (level - a) / (b - a))
    return None


def match_on_bar(
    order_type: OrderType,
    side: Side,
    limit: float | None,
    stop: float | None,
    triggered: bool,
    path: tuple[float, float, float, float],
    *,
    through: bool,
) -> PathHit | None:
    """Where this order fills on this bar, or None. Prices are raw; the caller rounds and slips."""
    buy = side is _BUY
    open_ = path[0]
    # A stop that triggered on an earlier bar (and filled only in part) is a market order now.
    if order_type is _MARKET or (order_type is _STOP and triggered):
        return PathHit(0.0, open_)
    if order_type is _LIMIT or (order_type is _STOP_LIMIT and triggered):
        assert limit is not None
        return _limit_from(path, 0.0, limit, buy, through)
    assert stop is not None
    # A buy stop triggers when price rises to it; a gap through it triggers at the open.
    trigger_at = _first_reach(path, 0.0, stop, downward=not buy, strict=False)
    if trigger_at is None:
        return None
    trigger_price = open_ if trigger_at == 0.0 and ((open_ >= stop) if buy else (open_ <= stop)) else stop
    if order_type is _STOP:
        return PathHit(trigger_at, trigger_price)
    assert limit is not None
    if (trigger_price <= limit) if buy else (trigger_price >= limit):
        return PathHit(trigger_at, trigger_price)
    hit = _limit_from(path, trigger_at, limit, buy, through)
    return hit if hit is not None else PathHit(trigger_at, trigger_price, True)  # triggered only


def _limit_from(
    path: tuple[float, ...], start: float, limit: float, buy: bool, through: bool
) -> PathHit | None:
    if start == 0.0:
        open_ = path[0]
        # Marketable at the open: fill at the open, which is at or better than the limit.
        if (open_ < limit) if buy else (open_ > limit):
            return PathHit(0.0, open_)
    position = _first_reach(path, start, limit, downward=buy, strict=through)
    if position is None:
        return None
    return PathHit(position, limit)


def match_on_price(
    order_type: OrderType,
    side: Side,
    limit: float | None,
    stop: float | None,
    triggered: bool,
    buy_price: float,
    sell_price: float,
    *,
    through: bool,
) -> tuple[float | None, bool]:
    """Match against one trade price (buy_price == sell_price) or a quote (ask, bid).

    Returns (fill price or None, triggered now).
    """
    buy = side is _BUY
    price = buy_price if buy else sell_price
    if order_type is _MARKET or (order_type is _STOP and triggered):
        return price, triggered
    if order_type in (_STOP, _STOP_LIMIT) and not triggered:
        assert stop is not None
        if not ((price >= stop) if buy else (price <= stop)):
            return None, False
        if order_type is _STOP:
            return price, True
        triggered = True
    assert limit is not None
    if buy:
        ok = price < limit if through else price <= limit
    else:
        ok = price > limit if through else price >= limit
    return (price if ok else None), triggered
