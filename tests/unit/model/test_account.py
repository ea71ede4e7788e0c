"""Cash account: fills move cash by their signed value times the multiplier, and fees always cost."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from quantdesk.model import Account, Fill, Side

D = Decimal


def _fill(side: Side, qty: Decimal | str, price: Decimal | str, fee: Decimal | str = "0") -> Fill:
    return Fill("exec-1", "ord-1", "venue-1", "RELIANCE", side, D(qty), D(price), D(fee), 1, 1)


def test_new_account_starts_with_its_cash_and_no_fees() -> None:
    account = Account("INR", D("1000000.00"))
    assert account.starting_cash == D("1000000.00")
    assert account.fees_paid == 0


def test_explicit_starting_cash_is_kept() -> None:
    account = Account("USD", D("90000"), starting_cash=D("100000"))
    assert account.starting_cash == D(100000)


def test_buying_spends_price_times_quantity_plus_fee() -> None:
    account = Account("INR", D("100000.00"))
    account.apply(_fill(Side.BUY, "10", "2950.05", fee="20.37"), multiplier=D(1))
    assert account.cash == D("70479.13")  # 100000 - 29500.50 - 20.37
    assert account.fees_paid == D("20.37")


def test_selling_adds_price_times_quantity_minus_fee() -> None:
    account = Account("INR", D("100000.00"))
    account.apply(_fill(Side.SELL, "10", "2950.05", fee="20.37"), multiplier=D(1))
    assert account.cash == D("129480.13")  # 100000 + 29500.50 - 20.37
    assert account.fees_paid == D("20.37")


def test_multiplier_scales_the_cash_moved_but_not_the_fee() -> None:
    account = Account("USD", D("500000.00"))
    account.apply(_fill(Side.BUY, "2", "4500.25", fee="4.50"), multiplier=D(50))
    assert account.cash == D("49970.50")  # 500000 - 2 * 4500.25 * 50 - 4.50
    account.apply(_fill(Side.SELL, "2", "4502.75", fee="4.50"), multiplier=D(50))
    assert account.cash == D("500241.00")  # a 250.00 gain less 9.00 of fees
    assert account.fees_paid == D("9.00")
    assert account.starting_cash == D("500000.00")


def test_fractional_quantities_move_exact_cash() -> None:
    account = Account("USD", D("10000"))
    account.apply(_fill(Side.BUY, "0.015", "64000.5", fee="0.96"), multiplier=D(1))
    assert account.cash == D("9039.0325")  # 10000 - 960.0075 - 0.96


@settings(max_examples=200, deadline=None)
@given(
    fills=st.lists(
        st.tuples(
            st.sampled_from([Side.BUY, Side.SELL]),
            st.integers(1, 10_000),
            st.integers(1, 10_000_000).map(lambda paise: D(paise).scaleb(-2)),
            st.integers(0, 10_000).map(lambda paise: D(paise).scaleb(-2)),
        ),
        max_size=40,
    ),
    multiplier=st.sampled_from([D(1), D(50), D("0.1")]),
)
def test_cash_is_start_minus_signed_notional_minus_fees(
    fills: list[tuple[Side, int, Decimal, Decimal]], multiplier: Decimal
) -> None:
    account = Account("INR", D("1000000.00"))
    for side, qty, price, fee in fills:
        account.apply(_fill(side, D(qty), price, fee), multiplier)
    signed_notional = sum((side.sign * qty * price * multiplier for side, qty, price, _ in fills), D(0))
    fees = sum((fee for *_, fee in fills), D(0))
    assert account.fees_paid == fees
    assert account.cash == D("1000000.00") - signed_notional - fees
    assert account.starting_cash == D("1000000.00")
