"""Portfolio: realised P&L, open positions, equity and unrealised P&L kept up to date by fills."""

from __future__ import annotations

import random
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from quantdesk.model import Account, Fill, Instrument, Side
from quantdesk.portfolio import Portfolio

D = Decimal
INSTRUMENTS = {
    "AAA": Instrument("AAA"),
    "ES": Instrument("ES", tick_size=D("0.25"), multiplier=D(50)),
    "NIFTY": Instrument("NIFTY", lot_size=D(25), min_qty=D(25)),
}


NO_FEE = D("0.00")


def _fill(n: int, symbol: str, side: Side, qty: Decimal, price: Decimal, fee: Decimal = NO_FEE) -> Fill:
    return Fill(f"e{n}", f"c{n}", f"v{n}", symbol, side, qty, price, fee, n, n)


def test_a_round_trip_realises_its_pnl_and_leaves_nothing_open() -> None:
    portfolio = Portfolio(INSTRUMENTS, Account("USD", D(100_000)))
    portfolio.apply_fill(_fill(1, "ES", Side.BUY, D(2), D("5000.25"), D("1.10")))
    assert [p.symbol for p in portfolio.open_positions()] == ["ES"]
    marks = {"ES": D("5010.00")}
    # 2 x 9.75 points x 50 = 975 unrealised; equity = cash + 2 x 5010 x 50.
    assert portfolio.unrealized_pnl(marks) == D("975.00")
    assert portfolio.marked(marks) == (portfolio.equity(marks), portfolio.unrealized_pnl(marks))
    portfolio.apply_fill(_fill(2, "ES", Side.SELL, D(2), D("5010.00"), D("1.10")))
    assert portfolio.open_positions() == []
    assert portfolio.realized_pnl == D("975.00")
    assert portfolio.account.cash == D(100_000) + D("975.00") - D("2.20")


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=0, max_value=10_000))
def test_the_running_figures_equal_a_walk_over_every_position(seed: int) -> None:
    """What the portfolio keeps as fills arrive is what summing every position would give."""
    rng = random.Random(seed)
    portfolio = Portfolio(INSTRUMENTS, Account("USD", D(1_000_000)))
    for n in range(rng.randint(1, 60)):
        symbol = rng.choice(list(INSTRUMENTS))
        instrument = INSTRUMENTS[symbol]
        qty = instrument.lot_size * rng.randint(1, 4)
        price = instrument.tick_size * rng.randint(3_000, 5_000)
        portfolio.apply_fill(_fill(n, symbol, rng.choice([Side.BUY, Side.SELL]), qty, price))
        marks = {s: INSTRUMENTS[s].tick_size * rng.randint(3_000, 5_000) for s in INSTRUMENTS}
        every = list(portfolio.positions.values())
        assert portfolio.realized_pnl == sum((p.realized_pnl for p in every), D(0))
        assert {p.symbol for p in portfolio.open_positions()} == {p.symbol for p in every if p.qty != 0}
        expected_equity = portfolio.account.cash + sum(
            (p.qty * marks[p.symbol] * p.multiplier for p in every if p.qty != 0), D(0)
        )
        expected_unrealized = sum((p.unrealized_pnl(marks[p.symbol]) for p in every if p.qty != 0), D(0))
        assert portfolio.equity(marks) == expected_equity
        assert portfolio.unrealized_pnl(marks) == expected_unrealized
        assert portfolio.marked(marks) == (expected_equity, expected_unrealized)
