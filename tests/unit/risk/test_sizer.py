"""The sizer: fixed, signal, notional and risk modes, rounded down to the lot, capped, zero with a reason."""

from __future__ import annotations

from decimal import Decimal
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantdesk.errors import ConfigError
from quantdesk.model import Instrument
from quantdesk.risk.config import RiskConfig, SizingConfig
from quantdesk.risk.messages import Mode
from quantdesk.risk.sizer import Sizer

D = Decimal
INSTRUMENTS = MappingProxyType(
    {
        "AAA": Instrument("AAA"),
        "NIFTY": Instrument("NIFTY", exchange="XNSE", lot_size=D(25), min_qty=D(25), max_qty=D(1810)),
        "ES": Instrument("ES", multiplier=D(50), tick_size=D("0.25")),
        "BTC": Instrument("BTC", lot_size=D("0.001"), min_qty=D("0.001")),
        "MIN10": Instrument("MIN10", min_qty=D(10)),
    }
)


HALF_PCT = D("0.5")


def sizer(max_risk_pct: Decimal | None = HALF_PCT, **sizing: Any) -> Sizer:
    return Sizer(SizingConfig(**sizing), INSTRUMENTS, max_risk_pct=max_risk_pct)


def size(s: Sizer, symbol: str = "AAA", **kw: Any) -> tuple[Decimal, str]:
    fields: dict[str, Any] = {"entry": D(100), "stop": D(98), "equity": D(100_000)}
    fields.update(kw)
    result = s.size(symbol=symbol, **fields)
    return result.qty, result.reason


# ---- risk mode -------------------------------------------------------------------------------


def test_risk_sizing_spends_the_risk_budget_on_the_stop_distance() -> None:
    # 0.5% of 100,000 = 500; 2 per unit -> 250.
    qty, reason = size(sizer(mode="risk"))
    assert qty == D(250)
    assert reason == "risk 500.00 at 2 per unit -> 250"


def test_risk_sizing_rounds_down_to_whole_lots() -> None:
    # 500 / 3 = 166.67 units -> 6 lots of 25 = 150 (7 lots would risk 525).
    assert size(sizer(mode="risk"), "NIFTY", stop=D(97))[0] == D(150)


def test_risk_sizing_counts_the_multiplier() -> None:
    # 10 points x 50 = 500 per contract: one contract; 9.75 points buys one too (487.5).
    assert size(sizer(mode="risk"), "ES", entry=D(5000), stop=D(4990))[0] == D(1)
    assert size(sizer(mode="risk"), "ES", entry=D(5000), stop=D("4989.75"))[0] == D(0)


def test_risk_sizing_rounds_to_a_fractional_lot() -> None:
    # 500 / 1,500 per coin = 0.3333... -> 0.333
    assert size(sizer(mode="risk"), "BTC", entry=D(60_000), stop=D(58_500))[0] == D("0.333")


def test_less_than_one_lot_of_risk_sizes_to_zero_with_the_reason() -> None:
    # 0.5% of 10,000 = 50; 3 per unit buys 16 units, short of one lot of 25.
    qty, reason = size(sizer(mode="risk"), "NIFTY", stop=D(97), equity=D(10_000))
    assert qty == 0
    assert reason == "NIFTY: risk 50.00 at 3 per unit buys less than one lot of 25"


def test_the_risk_percent_defaults_to_the_per_trade_cap_and_never_exceeds_it() -> None:
    assert sizer(mode="risk", max_risk_pct=D("0.25")).risk_pct == D("0.25")
    assert sizer(mode="risk", risk_pct=D("0.1")).risk_pct == D("0.1")
    assert sizer(mode="risk", risk_pct=D("1.0"), max_risk_pct=D("0.25")).risk_pct == D("0.25")
    assert size(sizer(mode="risk", max_risk_pct=D("0.25")))[0] == D(125)


def test_risk_mode_without_any_risk_percent_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="risk_pct"):
        Sizer(SizingConfig(mode="risk"), INSTRUMENTS)


def test_a_sizer_built_from_the_risk_config_follows_the_live_caps() -> None:
    live = RiskConfig().for_mode(Mode.LIVE)
    built = Sizer(live.sizing, INSTRUMENTS, max_risk_pct=live.max_risk_per_trade_pct)
    assert size(built)[0] == D(125)


@settings(max_examples=200, deadline=None)
@given(
    entry=st.decimals(min_value=D("0.05"), max_value=D(10_000), places=2),
    distance=st.decimals(min_value=D("0.01"), max_value=D(500), places=2),
    equity=st.decimals(min_value=D(1_000), max_value=D(10_000_000), places=2),
    lot=st.sampled_from([D(1), D(25), D("0.001")]),
)
def test_risk_sizing_never_exceeds_the_budget_and_leaves_less_than_a_lot(
    entry: Decimal, distance: Decimal, equity: Decimal, lot: Decimal
) -> None:
    instruments = {"X": Instrument("X", lot_size=lot, min_qty=lot)}
    s = Sizer(SizingConfig(mode="risk", risk_pct=D("0.5")), instruments)
    qty = s.size(symbol="X", entry=entry, stop=entry + distance, equity=equity).qty
    budget = equity * D("0.005")
    assert qty * distance <= budget
    assert (qty + lot) * distance > budget
    assert qty % lot == 0


# ---- fixed, signal and notional modes ------------------------------------------------------------


def test_fixed_quantity_is_rounded_down_to_the_lot() -> None:
    assert size(sizer(mode="fixed", fixed_qty=D(130)), "NIFTY")[0] == D(125)
    assert size(sizer(mode="fixed", fixed_qty=D(130)), "AAA", stop=None)[0] == D(130)


def test_signal_mode_uses_the_signals_own_quantity() -> None:
    assert size(sizer(mode="signal"), "NIFTY", signal_qty=D(60))[0] == D(50)
    qty, reason = size(sizer(mode="signal"), "NIFTY", signal_qty=None)
    assert qty == 0 and "carries no positive quantity" in reason


def test_notional_mode_buys_what_the_notional_pays_for() -> None:
    # 10,000 / 30 = 333.3 -> 333 units; with lots of 25 -> 325.
    assert size(sizer(mode="notional", notional=D(10_000)), entry=D(30))[0] == D(333)
    assert size(sizer(mode="notional", notional=D(10_000)), "NIFTY", entry=D(30))[0] == D(325)


def test_notional_counts_the_multiplier() -> None:
    # One ES contract at 5,000 is worth 250,000.
    assert size(sizer(mode="notional", notional=D(500_000)), "ES", entry=D(5000))[0] == D(2)
    qty, reason = size(sizer(mode="notional", notional=D(200_000)), "ES", entry=D(5000))
    assert qty == 0 and "buys less than one lot of 1" in reason


# ---- caps ------------------------------------------------------------------------------------------


def test_max_notional_caps_the_size() -> None:
    # Risk would buy 250 (25,000 of notional); the cap of 10,000 allows 100.
    qty, reason = size(sizer(mode="risk", max_notional=D(10_000)))
    assert qty == D(100)
    assert reason == "risk 500.00 at 2 per unit -> 100, capped by max notional 10000"


def test_max_notional_cap_rounds_down_to_the_lot() -> None:
    # 10,000 / 30 = 333 units -> 13 lots of 25 = 325.
    s = sizer(mode="fixed", fixed_qty=D(1000), max_notional=D(10_000))
    assert size(s, "NIFTY", entry=D(30))[0] == D(325)


def test_the_freeze_quantity_caps_the_size_on_the_lot_grid() -> None:
    # Freeze 1,810 is not a whole number of lots: the cap is 72 lots = 1,800.
    qty, reason = size(sizer(mode="fixed", fixed_qty=D(5000)), "NIFTY")
    assert qty == D(1800)
    assert "capped by freeze quantity 1810" in reason


def test_a_size_below_the_minimum_quantity_is_zero() -> None:
    qty, reason = size(sizer(mode="fixed", fixed_qty=D(5)), "MIN10")
    assert qty == 0
    assert "below the minimum 10" in reason


# ---- bad input -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("symbol", "fields", "fragment"),
    [
        ("ZZZ", {}, "unknown symbol ZZZ"),
        ("AAA", {"entry": D("NaN")}, "entry price must be positive"),
        ("AAA", {"entry": D(0)}, "entry price must be positive"),
        ("AAA", {"stop": None}, "risk sizing needs a stop"),
        ("AAA", {"stop": D("NaN")}, "stop must be a positive price"),
        ("AAA", {"stop": "98"}, "stop must be a positive price"),
        ("AAA", {"stop": D(100)}, "risk per unit is zero"),
        ("AAA", {"equity": D(0)}, "equity must be positive"),
        ("AAA", {"equity": D("-Infinity")}, "equity must be positive"),
        ("AAA", {"entry": 100.0}, "entry price must be positive"),
    ],
)
def test_bad_input_sizes_to_zero_with_a_reason(symbol: str, fields: dict[str, Any], fragment: str) -> None:
    qty, reason = size(sizer(mode="risk"), symbol, **fields)
    assert qty == 0
    assert fragment in reason


def test_arithmetic_that_fails_is_a_zero_size_not_an_exception() -> None:
    # A quotient too large for the decimal context cannot be taken exactly.
    qty, reason = size(sizer(mode="risk"), entry=D(100), stop=D(98), equity=D("1E+40"))
    assert qty == 0 and "cannot size" in reason
