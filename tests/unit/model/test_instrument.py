"""Instrument symbol properties: direction-aware price rounding, lot rounding and order validation."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantdesk.model import Instrument, OrderCheck, Side

D = Decimal


def _nse(min_qty: int = 25) -> Instrument:
    """An NSE-like F&O contract: 0.05 ticks, lots of 25, freeze at 1800."""
    return Instrument(
        "NIFTY24JUNFUT",
        exchange="XNSE",
        currency="INR",
        tick_size=D("0.05"),
        lot_size=D(25),
        min_qty=D(min_qty),
        max_qty=D(1800),
    )


BTC = Instrument("BTCUSD", exchange="SIM", tick_size=D("0.5"), lot_size=D("0.001"), min_qty=D("0.001"))


# -- round_price -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("price", "buy", "sell"),
    [
        ("100.03", "100.00", "100.05"),
        ("100.07", "100.05", "100.10"),
        ("100.049", "100.00", "100.05"),
        ("100.051", "100.05", "100.10"),
        ("0.01", "0.00", "0.05"),
    ],
)
def test_round_price_never_makes_a_limit_more_aggressive(price: str, buy: str, sell: str) -> None:
    nifty = _nse()
    assert nifty.round_price(D(price), Side.BUY) == D(buy)
    assert nifty.round_price(D(price), Side.SELL) == D(sell)


@pytest.mark.parametrize("price", ["100.05", "100.00", "100", "0.05", "22450.95"])
def test_round_price_leaves_a_price_on_the_grid_unchanged(price: str) -> None:
    nifty = _nse()
    assert nifty.round_price(D(price), Side.BUY) == D(price)
    assert nifty.round_price(D(price), Side.SELL) == D(price)


def test_round_price_accepts_float_and_str_and_returns_tick_precision() -> None:
    nifty = _nse()
    assert str(nifty.round_price(100.07, Side.BUY)) == "100.05"
    assert str(nifty.round_price("100.07", Side.SELL)) == "100.10"
    # 0.1 + 0.2 is 0.30000000000000004 as a float: a hair above the grid point 0.30.
    assert str(nifty.round_price(0.1 + 0.2, Side.BUY)) == "0.30"
    assert str(nifty.round_price(100, Side.SELL)) == "100.00"


def test_round_price_of_a_28_digit_decimal_just_below_the_grid_still_rounds_a_buy_down() -> None:
    # 10 / 3 * 3 is 9.999999999999999999999999999: dividing it by the tick rounds to
    # 28 digits and lands on 200 ticks exactly, which used to round the buy *up* to 10.00.
    nifty = _nse()
    price = D(10) / D(3) * D(3)
    assert price < 10
    assert nifty.round_price(price, Side.BUY) == D("9.95")
    assert nifty.round_price(price, Side.SELL) == D("10.00")


def test_round_price_handles_negative_prices_direction_aware() -> None:
    # Spreads and some futures trade below zero; the rule is the same.
    spread = Instrument("CLSPREAD", tick_size=D("0.01"))
    assert spread.round_price(D("-1.234"), Side.BUY) == D("-1.24")
    assert spread.round_price(D("-1.234"), Side.SELL) == D("-1.23")


_TICKS = st.sampled_from(
    [D("0.05"), D("0.01"), D("0.25"), D("0.5"), D(1), D(5), D("0.0001"), D("0.005"), D("0.1"), D(10)]
)
_PRICES = st.one_of(
    st.builds(lambda units, places: D(units).scaleb(-places), st.integers(1, 10**9), st.integers(0, 8)),
    # Quotients carry 28 significant digits, the most a Decimal computation produces.
    st.builds(lambda a, b: D(a) / D(b), st.integers(1, 10**9), st.integers(1, 10**6)),
)


@settings(max_examples=300, deadline=None)
@given(price=_PRICES, tick=_TICKS)
def test_round_price_brackets_the_price_within_one_tick_on_the_grid(price: Decimal, tick: Decimal) -> None:
    instrument = Instrument("X", tick_size=tick)
    buy = instrument.round_price(price, Side.BUY)
    sell = instrument.round_price(price, Side.SELL)
    assert buy <= price <= sell
    assert price - buy < tick
    assert sell - price < tick
    assert instrument.is_on_grid(buy)
    assert instrument.is_on_grid(sell)
    assert (buy == sell) == instrument.is_on_grid(price)


# -- price (nearest tick) -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (D("100.02"), "100.00"),
        (D("100.03"), "100.05"),
        (D("100.074"), "100.05"),
        (100.05, "100.05"),
        ("22450.96", "22450.95"),
        # Ties go to the even tick: 2000.5 ticks -> 2000, 2001.5 ticks -> 2002.
        (D("100.025"), "100.00"),
        (D("100.075"), "100.10"),
    ],
)
def test_price_is_the_nearest_tick(value: Decimal | float | str, expected: str) -> None:
    assert str(_nse().price(value)) == expected


@settings(max_examples=200, deadline=None)
@given(price=_PRICES, tick=_TICKS)
def test_price_is_on_the_grid_within_half_a_tick(price: Decimal, tick: Decimal) -> None:
    instrument = Instrument("X", tick_size=tick)
    nearest = instrument.price(price)
    assert instrument.is_on_grid(nearest)
    assert abs(nearest - price) <= tick / 2


# -- round_qty ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("qty", "expected"),
    [(D(74), "50"), (D(75), "75"), (D(24), "0"), (D("99.9"), "75"), (100, "100"), ("49.99", "25")],
)
def test_round_qty_rounds_down_to_whole_lots(qty: Decimal | int | str, expected: str) -> None:
    assert str(_nse().round_qty(qty)) == expected


@pytest.mark.parametrize(
    ("qty", "expected"),
    [(D("1.23456"), "1.234"), (D("0.0009"), "0.000"), (D(2), "2.000"), (0.1 + 0.2, "0.300")],
)
def test_round_qty_rounds_fractional_quantities_down_to_the_lot(qty: Decimal | float, expected: str) -> None:
    assert str(BTC.round_qty(qty)) == expected


def test_round_qty_of_a_28_digit_decimal_just_below_a_lot_rounds_down() -> None:
    qty = D(50) - D("1E-26")
    assert _nse().round_qty(qty) == D(25)


@settings(max_examples=200, deadline=None)
@given(qty=_PRICES, lot=st.sampled_from([D(1), D(25), D(75), D("0.001"), D("0.01"), D("0.5")]))
def test_round_qty_is_the_largest_lot_multiple_not_above_qty(qty: Decimal, lot: Decimal) -> None:
    instrument = Instrument("X", lot_size=lot, min_qty=lot)
    rounded = instrument.round_qty(qty)
    assert rounded <= qty < rounded + lot
    assert rounded % lot == 0


# -- validate_order ------------------------------------------------------------------------------


def test_validate_order_accepts_an_order_on_both_grids() -> None:
    nifty = _nse()
    check = nifty.validate_order(D(50), D("22450.05"), Side.BUY)
    assert check == OrderCheck(True, "")
    assert check
    assert nifty.validate_order(D(25), None, Side.SELL)
    assert nifty.validate_order(D(1800), D("0.05"), Side.SELL)


@pytest.mark.parametrize(
    ("qty", "price", "side", "expected"),
    [
        (D(0), None, Side.BUY, "quantity must be positive, got 0"),
        (D(-25), None, Side.BUY, "quantity must be positive, got -25"),
        (D("NaN"), None, Side.BUY, "quantity must be positive, got NaN"),
        (D("Infinity"), None, Side.BUY, "quantity must be positive, got Infinity"),
        (D(30), None, Side.BUY, "quantity 30 is not a multiple of the lot 25"),
        (D(25), None, Side.BUY, "quantity 25 below minimum 50"),
        (D(1825), None, Side.SELL, "quantity 1825 above freeze quantity 1800"),
        (D(50), D("100.03"), Side.BUY, "price 100.03 is off the tick grid 0.05"),
        (D(50), D("NaN"), Side.BUY, "price must be positive, got NaN"),
        (D(50), D("-100.05"), Side.SELL, "price must be positive, got -100.05"),
        (D(50), D(0), Side.SELL, "price must be positive, got 0"),
        (D(50), None, "BUY", "unknown side 'BUY'"),
        (D(50), None, None, "unknown side None"),
    ],
)
def test_validate_order_names_the_symbol_and_the_offending_value(
    qty: Decimal, price: Decimal | None, side: Side, expected: str
) -> None:
    check = _nse(min_qty=50).validate_order(qty, price, side)
    assert not check
    assert check.ok is False
    assert check.reason == f"NIFTY24JUNFUT: {expected}"


def test_validate_order_reports_the_quantity_problem_before_the_price_problem() -> None:
    check = _nse().validate_order(D(30), D("100.03"), Side.BUY)
    assert check.reason == "NIFTY24JUNFUT: quantity 30 is not a multiple of the lot 25"


def test_validate_order_checks_fractional_lots() -> None:
    assert BTC.validate_order(D("0.015"), D("64000.5"), Side.BUY)
    check = BTC.validate_order(D("0.0155"), None, Side.BUY)
    assert check.reason == "BTCUSD: quantity 0.0155 is not a multiple of the lot 0.001"


def test_validate_order_without_a_freeze_quantity_accepts_any_size() -> None:
    assert Instrument("AAPL").validate_order(D(10_000_000), D("189.99"), Side.BUY)


# -- construction and precision ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tick", "precision"),
    [("0.05", 2), ("0.01", 2), ("0.10", 1), ("0.5", 1), ("1", 0), ("5", 0), ("10", 0), ("0.0001", 4)],
)
def test_precision_counts_the_decimal_places_of_the_tick(tick: str, precision: int) -> None:
    assert Instrument("X", tick_size=D(tick)).precision == precision


def test_size_precision_counts_the_decimal_places_of_the_lot() -> None:
    assert BTC.size_precision == 3
    assert _nse().size_precision == 0


@pytest.mark.parametrize("name", ["tick_size", "lot_size", "min_qty", "multiplier"])
@pytest.mark.parametrize("value", [D(0), D("-0.05"), D("NaN"), D("Infinity")])
def test_constructor_refuses_a_non_positive_or_non_finite_property(name: str, value: Decimal) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(f'BAD: {name} must be positive, got {value}')}$"):
        Instrument("BAD", **{name: value})  # type: ignore[arg-type]


def test_constructor_refuses_a_freeze_quantity_below_the_minimum() -> None:
    with pytest.raises(ValueError, match=r"^BAD: max_qty 10 below min_qty 25$"):
        Instrument("BAD", lot_size=D(25), min_qty=D(25), max_qty=D(10))


def test_constructor_keeps_defaults_of_a_us_equity() -> None:
    aapl = Instrument("AAPL")
    assert (aapl.tick_size, aapl.lot_size, aapl.min_qty, aapl.multiplier) == (D("0.01"), D(1), D(1), D(1))
    assert aapl.max_qty is None
    assert aapl.precision == 2


@settings(max_examples=50, deadline=None)
@given(st.integers(min_value=-(10**9), max_value=10**9), st.sampled_from(["0.01", "0.05", "0.25", "1"]))
def test_price_from_float_is_the_grid_price_every_time_it_is_asked(ticks: int, tick: str) -> None:
    instrument = Instrument("X", tick_size=Decimal(tick))
    exact = ticks * Decimal(tick)
    value = float(exact)
    first = instrument.price_from_float(value)
    again = instrument.price_from_float(value)  # answered from the instrument's price cache
    assert first == again == instrument.price(value) == exact
    assert str(first) == str(again) == str(instrument.price(value))


def test_the_price_cache_stays_bounded() -> None:
    instrument = Instrument("X")
    for cents in range(5_000):
        assert instrument.price_from_float(cents / 100) == Decimal(cents) / 100
    assert len(instrument._prices) <= 4_096
