"""Netting position: average price, realised P&L on reduce and flip, unrealised P&L, exact in Decimal."""

from __future__ import annotations

import itertools
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from quantdesk.model import Fill, Position, Side

D = Decimal
_ids = itertools.count(1)


def _fill(side: Side, qty: Decimal | int | str, price: Decimal | str, fee: str = "0", ts: int = 0) -> Fill:
    n = next(_ids)
    return Fill(f"exec-{n}", f"ord-{n}", f"venue-{n}", "ES", side, D(qty), D(price), D(fee), ts, ts)


def _position(*fills: Fill, multiplier: Decimal | int = 1) -> Position:
    position = Position("ES", multiplier=D(multiplier))
    for fill in fills:
        position.apply(fill)
    return position


# -- long -------------------------------------------------------------------------------------------


def test_opening_a_long_sets_quantity_average_and_open_time() -> None:
    position = Position("ES")
    realized = position.apply(_fill(Side.BUY, 10, "100.00", ts=7))
    assert realized == 0
    assert (position.qty, position.avg_price, position.realized_pnl) == (D(10), D(100), D(0))
    assert position.is_long and not position.is_short and not position.is_flat
    assert (position.ts_opened, position.ts_last) == (7, 7)


def test_adding_to_a_long_moves_the_average_price() -> None:
    position = _position(_fill(Side.BUY, 10, "100.00", ts=1), _fill(Side.BUY, 30, "104.00", ts=2))
    assert position.qty == 40
    assert position.avg_price == D("103.00")  # (10 * 100 + 30 * 104) / 40
    assert position.realized_pnl == 0
    assert (position.ts_opened, position.ts_last) == (1, 2)


def test_partial_close_realises_against_the_average_and_keeps_it() -> None:
    position = _position(_fill(Side.BUY, 10, "100.00"), _fill(Side.BUY, 30, "104.00"))
    realized = position.apply(_fill(Side.SELL, 10, "110.50"))
    assert realized == D("75.00")  # (110.50 - 103) * 10
    assert position.realized_pnl == D("75.00")
    assert (position.qty, position.avg_price) == (D(30), D(103))


def test_full_close_realises_the_rest_and_resets_the_average() -> None:
    position = _position(_fill(Side.BUY, 40, "103.00"), _fill(Side.SELL, 10, "110.50"))
    realized = position.apply(_fill(Side.SELL, 30, "99.00"))
    assert realized == D("-120.00")  # (99 - 103) * 30
    assert position.realized_pnl == D("-45.00")
    assert position.is_flat
    assert (position.qty, position.avg_price) == (D(0), D(0))
    assert position.unrealized_pnl(D("500.00")) == 0


def test_a_round_trip_at_a_non_terminating_average_realises_exactly() -> None:
    # The average is 31/3; realised P&L used to come out as 5.00000000000000000000000001.
    position = _position(_fill(Side.BUY, 1, "10"), _fill(Side.BUY, 1, "10"), _fill(Side.BUY, 1, "11"))
    assert position.avg_price == D(31) / D(3)
    position.apply(_fill(Side.SELL, 1, "12"))
    position.apply(_fill(Side.SELL, 2, "12"))
    assert position.realized_pnl == D(5)


def test_reopening_after_flat_starts_a_fresh_average_and_open_time() -> None:
    position = _position(_fill(Side.BUY, 5, "50.00", ts=1), _fill(Side.SELL, 5, "55.00", ts=2))
    position.apply(_fill(Side.BUY, 2, "60.00", ts=3))
    assert (position.qty, position.avg_price, position.ts_opened) == (D(2), D(60), 3)
    assert position.realized_pnl == D(25)


# -- short and flips ----------------------------------------------------------------------------


def test_short_realises_when_bought_back_below_the_average() -> None:
    position = _position(_fill(Side.SELL, 10, "50.00"))
    assert position.is_short and position.qty == -10 and position.avg_price == D(50)
    assert position.apply(_fill(Side.BUY, 4, "45.00")) == D("20.00")
    position.apply(_fill(Side.SELL, 6, "53.00"))
    assert (position.qty, position.avg_price) == (D(-12), D("51.50"))  # (6 * 50 + 6 * 53) / 12
    assert position.apply(_fill(Side.BUY, 12, "52.00")) == D("-6.00")
    assert position.realized_pnl == D("14.00")
    assert position.is_flat


def test_flip_long_to_short_realises_the_closed_part_and_opens_at_the_fill_price() -> None:
    position = _position(_fill(Side.BUY, 10, "100.00", ts=1))
    realized = position.apply(_fill(Side.SELL, 25, "90.00", ts=2))
    assert realized == D("-100.00")  # only the 10 long units close
    assert (position.qty, position.avg_price, position.ts_opened) == (D(-15), D(90), 2)
    assert position.unrealized_pnl(D("88.00")) == D("30.00")


def test_flip_short_to_long_realises_the_closed_part_and_opens_at_the_fill_price() -> None:
    position = _position(_fill(Side.SELL, 3, "20.00"), _fill(Side.SELL, 1, "24.00"))
    realized = position.apply(_fill(Side.BUY, 6, "19.00"))
    assert realized == D("8.00")  # (21 - 19) * 4
    assert (position.qty, position.avg_price) == (D(2), D(19))


# -- multiplier, fees, marks ------------------------------------------------------------------


def test_multiplier_scales_realised_and_unrealised_pnl() -> None:
    position = _position(_fill(Side.BUY, 2, "4500.25"), multiplier=D(50))
    assert position.unrealized_pnl(D("4501.00")) == D("75.00")  # 0.75 * 2 * 50
    assert position.notional(D("4501.00")) == D("450100.00")
    assert position.apply(_fill(Side.SELL, 2, "4502.75")) == D("250.00")  # 2.50 * 2 * 50
    assert position.realized_pnl == D("250.00")


def test_fees_accumulate_apart_from_realised_pnl() -> None:
    position = _position(_fill(Side.BUY, 10, "100.00", fee="1.25"))
    realized = position.apply(_fill(Side.SELL, 10, "101.00", fee="0.75"))
    assert realized == D("10.00")
    assert position.realized_pnl == D("10.00")
    assert position.fees == D("2.00")


def test_unrealised_pnl_is_signed_by_direction() -> None:
    long = _position(_fill(Side.BUY, 10, "100.00"))
    short = _position(_fill(Side.SELL, 10, "100.00"))
    assert long.unrealized_pnl(D("103.50")) == D("35.00")
    assert short.unrealized_pnl(D("103.50")) == D("-35.00")
    assert short.notional(D("103.50")) == D("1035.00")
    assert Position("ES").unrealized_pnl(D("103.50")) == 0


def test_a_position_built_from_quantity_and_average_marks_consistently() -> None:
    position = Position("ES", qty=D(-4), avg_price=D("250.00"))
    assert position.unrealized_pnl(D("240.00")) == D("40.00")
    assert position.apply(_fill(Side.BUY, 4, "245.00")) == D("20.00")


# -- properties over random fills -----------------------------------------------------------------

_FILLS = st.lists(
    st.tuples(
        st.sampled_from([Side.BUY, Side.SELL]),
        st.integers(1, 5000).map(lambda units: D(units).scaleb(-1)),  # lots of 0.1
        st.integers(1, 1_000_000).map(lambda cents: D(cents).scaleb(-2)),
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=300, deadline=None)
@given(
    fills=_FILLS,
    mark=st.integers(1, 1_000_000).map(lambda cents: D(cents).scaleb(-2)),
    multiplier=st.sampled_from([D(1), D(50), D("0.1"), D(25)]),
)
def test_realised_plus_unrealised_equals_the_cash_flow_exactly(
    fills: list[tuple[Side, Decimal, Decimal]], mark: Decimal, multiplier: Decimal
) -> None:
    position = Position("ES", multiplier=multiplier)
    cash_flow = D(0)
    realized = D(0)
    for side, qty, price in fills:
        fill = _fill(side, qty, price, fee="0.01")
        realized += position.apply(fill)
        cash_flow -= fill.signed_qty * price * multiplier
    assert position.qty == sum((qty if side is Side.BUY else -qty for side, qty, _ in fills), D(0))
    assert position.realized_pnl == realized
    assert (
        position.realized_pnl + position.unrealized_pnl(mark) == cash_flow + position.qty * mark * multiplier
    )
    assert position.fees == D("0.01") * len(fills)
    if position.is_flat:
        assert position.avg_price == 0
        assert position.realized_pnl == cash_flow
