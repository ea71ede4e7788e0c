"""Tests of the bar path assumption and of where an order first becomes fillable on a bar or a price."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantdesk.model import OrderType, Side
from quantdesk.venues.sim.matching import PathHit, bar_path, match_on_bar, match_on_price

BUY, SELL = Side.BUY, Side.SELL
MARKET, LIMIT, STOP, STOP_LIMIT = OrderType.MARKET, OrderType.LIMIT, OrderType.STOP, OrderType.STOP_LIMIT


def on_bar(
    order_type: OrderType,
    side: Side,
    ohlc: tuple[float, float, float, float],
    *,
    limit: float | None = None,
    stop: float | None = None,
    triggered: bool = False,
    through: bool = False,
) -> PathHit | None:
    return match_on_bar(order_type, side, limit, stop, triggered, bar_path(*ohlc), through=through)


# -- the path -------------------------------------------------------------------------------------


def test_path_visits_the_low_first_when_it_is_nearer_the_open() -> None:
    assert bar_path(100.0, 105.0, 98.0, 101.0) == (100.0, 98.0, 105.0, 101.0)


def test_path_visits_the_high_first_when_it_is_nearer_the_open() -> None:
    assert bar_path(100.0, 102.0, 95.0, 99.0) == (100.0, 102.0, 95.0, 99.0)


def test_path_tie_visits_the_low_first() -> None:
    assert bar_path(100.0, 103.0, 97.0, 100.0) == (100.0, 97.0, 103.0, 100.0)


# -- market and limit on a bar --------------------------------------------------------------------


def test_market_fills_at_the_open_at_the_start_of_the_path() -> None:
    assert on_bar(MARKET, BUY, (100.0, 102.0, 99.0, 101.0)) == PathHit(0.0, 100.0)
    assert on_bar(MARKET, SELL, (100.0, 102.0, 99.0, 101.0)) == PathHit(0.0, 100.0)


def test_limit_buy_gapped_below_fills_at_the_open() -> None:
    assert on_bar(LIMIT, BUY, (98.0, 99.0, 97.0, 98.5), limit=99.5) == PathHit(0.0, 98.0)


def test_limit_buy_touched_fills_at_the_limit_in_touch_mode() -> None:
    hit = on_bar(LIMIT, BUY, (100.0, 101.0, 99.0, 100.5), limit=99.0)
    assert hit is not None
    assert hit.price == 99.0
    assert hit.position == pytest.approx(1.0)  # at the low, the end of the first segment


def test_limit_buy_only_touched_does_not_fill_in_through_mode() -> None:
    assert on_bar(LIMIT, BUY, (100.0, 101.0, 99.0, 100.5), limit=99.0, through=True) is None


def test_limit_buy_traded_through_fills_at_the_limit_in_through_mode() -> None:
    # path 100 -> 98 -> 103: crosses 99 halfway down the first segment
    hit = on_bar(LIMIT, BUY, (100.0, 103.0, 98.0, 100.5), limit=99.0, through=True)
    assert hit is not None
    assert hit.price == 99.0
    assert hit.position == pytest.approx(0.5)


def test_limit_buy_at_the_open_fills_in_touch_mode_but_not_in_through_mode() -> None:
    assert on_bar(LIMIT, BUY, (99.0, 101.0, 99.0, 100.0), limit=99.0) == PathHit(0.0, 99.0)
    assert on_bar(LIMIT, BUY, (99.0, 101.0, 99.0, 100.0), limit=99.0, through=True) is None


def test_limit_buy_above_the_low_never_reached_does_not_fill() -> None:
    assert on_bar(LIMIT, BUY, (100.0, 101.0, 99.5, 100.5), limit=99.0) is None


def test_limit_sell_gapped_above_fills_at_the_open() -> None:
    assert on_bar(LIMIT, SELL, (103.0, 104.0, 102.5, 103.5), limit=102.0) == PathHit(0.0, 103.0)


def test_limit_sell_touched_fills_at_the_limit_only_in_touch_mode() -> None:
    ohlc = (100.0, 102.0, 99.0, 100.0)
    hit = on_bar(LIMIT, SELL, ohlc, limit=102.0)
    assert hit is not None
    assert hit.price == 102.0
    assert on_bar(LIMIT, SELL, ohlc, limit=102.0, through=True) is None
    assert on_bar(LIMIT, SELL, ohlc, limit=101.5, through=True) is not None


# -- stops on a bar -------------------------------------------------------------------------------


def test_stop_buy_gapped_above_fills_at_the_open() -> None:
    assert on_bar(STOP, BUY, (103.0, 104.0, 102.0, 103.0), stop=101.0) == PathHit(0.0, 103.0)


def test_stop_buy_touched_intrabar_fills_at_the_stop() -> None:
    hit = on_bar(STOP, BUY, (100.0, 102.0, 99.0, 101.0), stop=101.5)
    assert hit is not None
    assert hit.price == 101.5
    # path 100 -> 99 -> 102: the stop is reached 2.5/3 of the way along the second segment
    assert hit.position == pytest.approx(1 + 2.5 / 3)


def test_stop_buy_not_reached_does_not_fill() -> None:
    assert on_bar(STOP, BUY, (100.0, 101.0, 99.0, 100.5), stop=101.5) is None


def test_stop_sell_gapped_below_fills_at_the_open() -> None:
    assert on_bar(STOP, SELL, (95.0, 96.0, 94.0, 95.5), stop=97.0) == PathHit(0.0, 95.0)


def test_stop_sell_touched_intrabar_fills_at_the_stop() -> None:
    hit = on_bar(STOP, SELL, (100.0, 101.0, 96.0, 97.0), stop=97.0)
    assert hit is not None
    assert hit.price == 97.0
    assert not hit.triggered_only


def test_stop_limit_buy_triggered_below_its_limit_fills_at_the_stop() -> None:
    hit = on_bar(STOP_LIMIT, BUY, (100.0, 102.0, 99.5, 101.0), stop=101.0, limit=101.5)
    assert hit is not None
    assert hit.price == 101.0
    assert not hit.triggered_only


def test_stop_limit_buy_gapped_above_its_limit_fills_at_the_limit_when_price_returns() -> None:
    # opens above the limit (triggered at the open), then trades back down to the limit
    hit = on_bar(STOP_LIMIT, BUY, (103.0, 103.5, 100.0, 101.0), stop=101.0, limit=102.0)
    assert hit is not None
    assert hit.price == 102.0
    assert hit.position > 0.0
    assert not hit.triggered_only


def test_stop_limit_buy_gapped_above_its_limit_without_return_is_only_triggered() -> None:
    hit = on_bar(STOP_LIMIT, BUY, (103.0, 104.0, 102.5, 103.5), stop=101.0, limit=102.0)
    assert hit == PathHit(0.0, 103.0, triggered_only=True)


def test_stop_limit_sell_gapped_below_fills_at_the_limit_when_price_returns() -> None:
    # path 95 -> 94.5 -> 96.5 -> 96: triggered at the open, back up to the 96 limit 3/4 along segment 2
    hit = on_bar(STOP_LIMIT, SELL, (95.0, 96.5, 94.5, 96.0), stop=97.0, limit=96.0)
    assert hit == PathHit(1.75, 96.0)


def test_stop_limit_sell_gapped_below_its_limit_without_return_is_only_triggered() -> None:
    hit = on_bar(STOP_LIMIT, SELL, (95.0, 95.5, 94.0, 95.0), stop=97.0, limit=96.0)
    assert hit == PathHit(0.0, 95.0, triggered_only=True)


def test_triggered_stop_limit_matches_as_a_plain_limit() -> None:
    # no stop touch on this bar, but it was triggered earlier: the open below the limit fills
    hit = on_bar(STOP_LIMIT, BUY, (99.0, 99.5, 98.5, 99.0), stop=101.0, limit=102.0, triggered=True)
    assert hit == PathHit(0.0, 99.0)


def test_triggered_stop_remainder_fills_at_the_open_without_a_new_touch() -> None:
    # a stop that triggered (and partly filled) earlier is a market order now
    hit = on_bar(STOP, BUY, (100.0, 100.5, 99.0, 100.0), stop=101.0, triggered=True)
    assert hit == PathHit(0.0, 100.0)


def test_long_stop_and_target_in_one_bar_fill_in_path_order() -> None:
    # low nearer the open: the stop (97) is reached before the target (104)
    down_first = (100.0, 105.0, 96.0, 101.0)
    stop = on_bar(STOP, SELL, down_first, stop=97.0)
    target = on_bar(LIMIT, SELL, down_first, limit=104.0)
    assert stop is not None and target is not None
    assert stop.position < target.position
    # high nearer the open: the target is reached first
    up_first = (100.0, 104.5, 95.0, 99.0)
    stop = on_bar(STOP, SELL, up_first, stop=97.0)
    target = on_bar(LIMIT, SELL, up_first, limit=104.0)
    assert stop is not None and target is not None
    assert target.position < stop.position


# -- single prices and quotes ---------------------------------------------------------------------


def test_market_buy_takes_the_ask_and_market_sell_the_bid() -> None:
    assert match_on_price(MARKET, BUY, None, None, False, 100.02, 99.98, through=False) == (100.02, False)
    assert match_on_price(MARKET, SELL, None, None, False, 100.02, 99.98, through=False) == (99.98, False)


def test_limit_buy_on_a_quote_fills_at_the_ask_when_the_ask_is_at_or_below_the_limit() -> None:
    assert match_on_price(LIMIT, BUY, 100.0, None, False, 99.9, 99.8, through=False) == (99.9, False)
    assert match_on_price(LIMIT, BUY, 100.0, None, False, 100.0, 99.9, through=False) == (100.0, False)
    assert match_on_price(LIMIT, BUY, 100.0, None, False, 100.0, 99.9, through=True) == (None, False)
    assert match_on_price(LIMIT, BUY, 100.0, None, False, 100.1, 99.9, through=False) == (None, False)


def test_limit_sell_on_a_quote_fills_at_the_bid_when_the_bid_is_at_or_above_the_limit() -> None:
    assert match_on_price(LIMIT, SELL, 100.0, None, False, 100.2, 100.1, through=False) == (100.1, False)
    assert match_on_price(LIMIT, SELL, 100.0, None, False, 100.1, 99.9, through=False) == (None, False)


def test_stop_on_a_trade_price_triggers_and_fills_at_that_price() -> None:
    assert match_on_price(STOP, BUY, None, 101.0, False, 100.9, 100.9, through=False) == (None, False)
    assert match_on_price(STOP, BUY, None, 101.0, False, 101.2, 101.2, through=False) == (101.2, True)
    assert match_on_price(STOP, SELL, None, 99.0, False, 98.7, 98.7, through=False) == (98.7, True)


def test_triggered_stop_fills_at_the_next_price_even_back_across_the_stop() -> None:
    assert match_on_price(STOP, BUY, None, 101.0, True, 100.5, 100.5, through=False) == (100.5, True)


def test_stop_limit_on_a_price_beyond_its_limit_triggers_without_filling() -> None:
    assert match_on_price(STOP_LIMIT, BUY, 101.5, 101.0, False, 102.0, 102.0, through=False) == (None, True)
    assert match_on_price(STOP_LIMIT, BUY, 101.5, 101.0, True, 101.4, 101.4, through=False) == (101.4, True)


# -- property -------------------------------------------------------------------------------------


@st.composite
def bars(draw: st.DrawFn) -> tuple[float, float, float, float]:
    open_ = draw(st.integers(5_000, 15_000)) / 100
    close = draw(st.integers(5_000, 15_000)) / 100
    high = max(open_, close) + draw(st.integers(0, 500)) / 100
    low = min(open_, close) - draw(st.integers(0, 500)) / 100
    return open_, high, low, close


@settings(max_examples=300, deadline=None)
@given(bars(), st.integers(4_500, 15_500), st.booleans())
def test_limit_buy_hits_iff_the_low_reaches_it_and_never_above_it(
    ohlc: tuple[float, float, float, float], limit_cents: int, through: bool
) -> None:
    limit = limit_cents / 100
    hit = on_bar(LIMIT, BUY, ohlc, limit=limit, through=through)
    low = ohlc[2]
    reached = low < limit if through else low <= limit
    assert (hit is not None) == reached
    if hit is not None:
        assert hit.price <= limit
        assert 0.0 <= hit.position <= 3.0
