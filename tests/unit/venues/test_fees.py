"""Fee models of the simulated exchange, checked against charges computed by hand."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from quantdesk.errors import ConfigError
from quantdesk.model import Instrument, Side
from quantdesk.venues.sim.fees import (
    NoFees,
    NseEquityIntradayFees,
    NseFeeConfig,
    UsEquityFeeConfig,
    UsEquityFees,
    currency_unit,
    fee_model_from_name,
)

D = Decimal
AAPL = Instrument("AAPL", exchange="XNAS", currency="USD")
RELIANCE = Instrument("RELIANCE", exchange="XNSE", currency="INR", tick_size=D("0.05"))
SONY = Instrument("6758", exchange="XTKS", currency="JPY", tick_size=D("1"))
_MODELS: dict[str, Callable[[], NoFees | UsEquityFees | NseEquityIntradayFees]] = {
    "none": NoFees,
    "us": UsEquityFees,
    "ibkr": UsEquityFees.ibkr_fixed,
    "nse": NseEquityIntradayFees,
}


# -- US equities ----------------------------------------------------------------------------------


def test_us_sell_pays_sec_fee_and_taf_rounded_up_to_the_cent() -> None:
    fees = UsEquityFees()
    parts = fees.breakdown(AAPL, Side.SELL, D(100), D("150.00"))
    # notional 100 * 150.00 = 15,000.00
    # SEC = 15,000 * 0.0000278 = 0.417 -> up -> 0.42
    # TAF = 100 * 0.000166 = 0.0166 -> up -> 0.02
    assert parts == {"commission": D("0.00"), "sec_fee": D("0.42"), "finra_taf": D("0.02")}
    assert fees.fee(AAPL, Side.SELL, D(100), D("150.00")) == D("0.44")


def test_us_regulatory_fees_round_up_even_a_fraction_of_a_cent() -> None:
    parts = UsEquityFees().breakdown(AAPL, Side.SELL, D(1), D("1.00"))
    # SEC = 1.00 * 0.0000278 = 0.0000278 -> 0.01; TAF = 1 * 0.000166 = 0.000166 -> 0.01
    assert parts["sec_fee"] == D("0.01")
    assert parts["finra_taf"] == D("0.01")


def test_us_buy_pays_no_sec_fee_or_taf() -> None:
    fees = UsEquityFees()
    parts = fees.breakdown(AAPL, Side.BUY, D(100), D("150.00"))
    assert parts == {"commission": D("0.00"), "sec_fee": D("0.00"), "finra_taf": D("0.00")}
    assert fees.fee(AAPL, Side.BUY, D(100), D("150.00")) == D("0.00")


def test_us_taf_is_capped_per_trade() -> None:
    fees = UsEquityFees()
    capped = fees.breakdown(AAPL, Side.SELL, D(60_000), D("10.00"))
    # TAF = 60,000 * 0.000166 = 9.96 -> cap 8.30
    assert capped["finra_taf"] == D("8.30")
    # SEC = 600,000 * 0.0000278 = 16.68 exactly
    assert capped["sec_fee"] == D("16.68")
    # the cap is reached at 50,000 shares: 50,000 * 0.000166 = 8.30
    assert fees.breakdown(AAPL, Side.SELL, D(50_000), D("10.00"))["finra_taf"] == D("8.30")
    # below the cap: 40,000 * 0.000166 = 6.64
    assert fees.breakdown(AAPL, Side.SELL, D(40_000), D("10.00"))["finra_taf"] == D("6.64")


def test_us_sec_fee_rate_override_models_the_zero_rate_from_may_2025() -> None:
    fees = UsEquityFees(UsEquityFeeConfig(sec_fee_rate=D(0)))
    # only the TAF is left: 100 * 0.000166 = 0.0166 -> 0.02
    assert fees.fee(AAPL, Side.SELL, D(100), D("150.00")) == D("0.02")


def test_ibkr_fixed_charges_the_minimum_on_a_small_order() -> None:
    fees = UsEquityFees.ibkr_fixed()
    # 100 * 0.005 = 0.50 -> minimum 1.00 (1% of 5,000 = 50.00 does not bind)
    assert fees.fee(AAPL, Side.BUY, D(100), D("50.00")) == D("1.00")
    # 1,000 * 0.005 = 5.00
    assert fees.fee(AAPL, Side.BUY, D(1_000), D("50.00")) == D("5.00")


def test_ibkr_fixed_caps_commission_at_one_percent_of_trade_value_even_below_the_minimum() -> None:
    fees = UsEquityFees.ibkr_fixed()
    # 300 * 0.005 = 1.50, minimum 1.00, but 1% of 300 * 0.25 = 75.00 is 0.75
    assert fees.fee(AAPL, Side.BUY, D(300), D("0.25")) == D("0.75")


def test_ibkr_fixed_sell_adds_regulatory_fees_to_the_commission() -> None:
    parts = UsEquityFees.ibkr_fixed().breakdown(AAPL, Side.SELL, D(1_000), D("50.00"))
    # commission 1,000 * 0.005 = 5.00; SEC 50,000 * 0.0000278 = 1.39; TAF 0.166 -> 0.17
    assert parts == {"commission": D("5.00"), "sec_fee": D("1.39"), "finra_taf": D("0.17")}


def test_ibkr_minimum_applies_once_per_order_across_partial_fills() -> None:
    fees = UsEquityFees.ibkr_fixed()
    # first fill: 100 * 0.005 = 0.50 -> the order's minimum 1.00
    assert fees.fee_for_fill(AAPL, Side.BUY, D(100), D("50.00"), "O-1") == D("1.00")
    # second fill: the order is now 300 shares, 300 * 0.005 = 1.50, 1.00 already paid
    assert fees.fee_for_fill(AAPL, Side.BUY, D(200), D("50.00"), "O-1") == D("0.50")
    assert fees.order_breakdown("O-1")["commission"] == D("1.50")
    assert fees.fee(AAPL, Side.BUY, D(300), D("50.00")) == D("1.50")


# -- NSE equity intraday --------------------------------------------------------------------------


def test_nse_brokerage_is_point_zero_three_percent_below_the_cap() -> None:
    parts = NseEquityIntradayFees().breakdown(RELIANCE, Side.BUY, D(10), D("2500"))
    # turnover 10 * 2,500 = 25,000; 0.03% = 7.50 < 20
    assert parts["brokerage"] == D("7.50")


def test_nse_brokerage_is_capped_at_twenty_rupees() -> None:
    parts = NseEquityIntradayFees().breakdown(RELIANCE, Side.BUY, D(100), D("2500"))
    # turnover 2,50,000; 0.03% = 75.00 -> cap 20.00
    assert parts["brokerage"] == D("20.00")


def test_nse_buy_pays_stamp_duty_and_no_stt() -> None:
    fees = NseEquityIntradayFees()
    parts = fees.breakdown(RELIANCE, Side.BUY, D(100), D("2500"))
    # turnover 100 * 2,500 = 2,50,000
    # brokerage min(2,50,000 * 0.0003 = 75, 20)      = 20.00
    # STT: buy side                                  =  0.00
    # exchange 2,50,000 * 0.0000297 = 7.425 -> half up = 7.43
    # SEBI 2,50,000 * 0.000001                       =  0.25
    # stamp 2,50,000 * 0.00003                       =  7.50
    # GST 0.18 * (20.00 + 7.43 + 0.25) = 4.9824      =  4.98
    assert parts == {
        "brokerage": D("20.00"),
        "stt": D("0.00"),
        "exchange_txn": D("7.43"),
        "sebi_fee": D("0.25"),
        "stamp_duty": D("7.50"),
        "gst": D("4.98"),
    }
    # 20.00 + 7.43 + 0.25 + 7.50 + 4.98 = 40.16
    assert fees.fee(RELIANCE, Side.BUY, D(100), D("2500")) == D("40.16")


def test_nse_sell_pays_stt_and_no_stamp_duty() -> None:
    fees = NseEquityIntradayFees()
    parts = fees.breakdown(RELIANCE, Side.SELL, D(100), D("2510"))
    # turnover 100 * 2,510 = 2,51,000
    # brokerage min(75.30, 20)                          = 20.00
    # STT 2,51,000 * 0.00025 = 62.75 -> nearest rupee   = 63.00
    # exchange 2,51,000 * 0.0000297 = 7.4547            =  7.45
    # SEBI 2,51,000 * 0.000001 = 0.251                  =  0.25
    # stamp: sell side                                  =  0.00
    # GST 0.18 * (20.00 + 7.45 + 0.25) = 4.986          =  4.99
    assert parts == {
        "brokerage": D("20.00"),
        "stt": D("63.00"),
        "exchange_txn": D("7.45"),
        "sebi_fee": D("0.25"),
        "stamp_duty": D("0.00"),
        "gst": D("4.99"),
    }
    # 20.00 + 63.00 + 7.45 + 0.25 + 4.99 = 95.69
    assert fees.fee(RELIANCE, Side.SELL, D(100), D("2510")) == D("95.69")


def test_nse_round_trip_of_100_reliance_costs_the_hand_computed_total() -> None:
    fees = NseEquityIntradayFees()
    buy = fees.fee(RELIANCE, Side.BUY, D(100), D("2500"))
    sell = fees.fee(RELIANCE, Side.SELL, D(100), D("2510"))
    # buy 40.16 + sell 95.69 = 135.85, against a gross profit of 100 * 10 = 1,000
    assert buy + sell == D("135.85")


def test_nse_stt_is_rounded_to_the_rupee_unless_configured_to_paise() -> None:
    # sell 20 at 103.55: turnover 2,071.00; STT 2,071 * 0.00025 = 0.51775
    rupee = NseEquityIntradayFees().breakdown(RELIANCE, Side.SELL, D(20), D("103.55"))
    assert rupee["stt"] == D("1.00")
    config = NseFeeConfig(stt_rounding_unit=D("0.01"))
    paise = NseEquityIntradayFees(config).breakdown(RELIANCE, Side.SELL, D(20), D("103.55"))
    assert paise["stt"] == D("0.52")


def test_nse_brokerage_cap_applies_once_per_order_across_partial_fills() -> None:
    fees = NseEquityIntradayFees()
    charged = [fees.fee_for_fill(RELIANCE, Side.BUY, D(25), D("2500"), "O-7") for _ in range(4)]
    brokerage = fees.order_breakdown("O-7")["brokerage"]
    # each fill turns over 25 * 2,500 = 62,500: 0.03% = 18.75, under the cap on its own,
    # but the order's 2,50,000 pays min(75, 20) = 20.00, not 4 * 18.75 = 75.00
    assert brokerage == D("20.00")
    # and the fills add up to one fill of the whole order: 40.16 (see the buy example)
    assert sum(charged) == D("40.16")
    assert sum(charged) == fees.fee(RELIANCE, Side.BUY, D(100), D("2500"))
    # the single-fill path treats each fill as its own order
    alone = NseEquityIntradayFees().breakdown(RELIANCE, Side.BUY, D(25), D("2500"))
    assert alone["brokerage"] == D("18.75")


def test_nse_first_partial_fill_pays_brokerage_and_later_fills_only_the_rest_of_the_cap() -> None:
    fees = NseEquityIntradayFees()
    fees.fee_for_fill(RELIANCE, Side.SELL, D(25), D("2500"), "O-8")
    first = fees.order_breakdown("O-8")["brokerage"]
    second = fees.fill_breakdown(RELIANCE, Side.SELL, D(25), D("2500"), "O-8")["brokerage"]
    third = fees.fill_breakdown(RELIANCE, Side.SELL, D(25), D("2500"), "O-8")["brokerage"]
    # 18.75, then min(37.50, 20) - 18.75 = 1.25, then nothing
    assert (first, second, third) == (D("18.75"), D("1.25"), D("0.00"))


def test_separate_orders_each_pay_their_own_brokerage() -> None:
    fees = NseEquityIntradayFees()
    fees.fee_for_fill(RELIANCE, Side.BUY, D(100), D("2500"), "A")
    fees.fee_for_fill(RELIANCE, Side.BUY, D(100), D("2500"), "B")
    assert fees.order_breakdown("A")["brokerage"] == D("20.00")
    assert fees.order_breakdown("B")["brokerage"] == D("20.00")


def test_forgotten_order_starts_afresh() -> None:
    fees = NseEquityIntradayFees()
    fees.fee_for_fill(RELIANCE, Side.BUY, D(100), D("2500"), "A")
    fees.forget_order("A")
    assert fees.order_breakdown("A") == {}
    assert fees.fee_for_fill(RELIANCE, Side.BUY, D(100), D("2500"), "A") == D("40.16")


def test_fill_on_the_other_side_of_a_known_order_is_refused() -> None:
    fees = NseEquityIntradayFees()
    fees.fee_for_fill(RELIANCE, Side.BUY, D(10), D("2500"), "A")
    with pytest.raises(ValueError, match="does not match"):
        fees.fee_for_fill(RELIANCE, Side.SELL, D(10), D("2500"), "A")


def test_zero_quantity_fill_is_a_bug_not_a_free_trade() -> None:
    with pytest.raises(ValueError, match="quantity must be positive"):
        NseEquityIntradayFees().fee(RELIANCE, Side.BUY, D(0), D("2500"))


def test_nse_config_overrides_change_the_rates() -> None:
    config = NseFeeConfig(brokerage_max_per_order=D(0), gst_rate=D(0))
    parts = NseEquityIntradayFees(config).breakdown(RELIANCE, Side.BUY, D(100), D("2500"))
    assert parts["brokerage"] == D("0.00")
    assert parts["gst"] == D("0.00")
    # 7.43 exchange + 0.25 SEBI + 7.50 stamp = 15.18
    assert sum(parts.values()) == D("15.18")


# -- configuration and factory --------------------------------------------------------------------


def test_config_refuses_unknown_keys() -> None:
    with pytest.raises(ValidationError, match="commision_per_share"):
        UsEquityFeeConfig(commision_per_share=D("0.005"))  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="stt_rate"):
        NseFeeConfig(stt_rate=D("0.001"))  # type: ignore[call-arg]


def test_config_refuses_negative_rates_and_is_frozen() -> None:
    with pytest.raises(ValidationError):
        NseFeeConfig(gst_rate=D("-0.18"))
    config = UsEquityFeeConfig()
    with pytest.raises(ValidationError):
        config.sec_fee_rate = D(0)


def test_factory_builds_each_model_by_name() -> None:
    assert isinstance(fee_model_from_name("none"), NoFees)
    assert isinstance(fee_model_from_name("us_equity"), UsEquityFees)
    assert isinstance(fee_model_from_name("nse_equity_intraday"), NseEquityIntradayFees)


def test_factory_applies_overrides() -> None:
    model = fee_model_from_name("us_equity", commission_per_share="0.005", per_order_min="1")
    assert isinstance(model, UsEquityFees)
    assert model.config.commission_per_share == D("0.005")
    # 10 * 0.005 = 0.05 -> minimum 1.00
    assert model.fee(AAPL, Side.BUY, D(10), D("20.00")) == D("1.00")


def test_factory_rejects_an_unknown_name_listing_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="unknown fee model 'zerodha'") as caught:
        fee_model_from_name("zerodha")
    for name in ("none", "us_equity", "nse_equity_intraday"):
        assert name in str(caught.value)


def test_factory_turns_a_bad_override_into_a_config_error_naming_the_field() -> None:
    with pytest.raises(ConfigError, match="stt_rate"):
        fee_model_from_name("nse_equity_intraday", stt_rate="0.001")
    with pytest.raises(ConfigError, match="sec_fee_rate"):
        fee_model_from_name("us_equity", sec_fee_rate="-1")
    with pytest.raises(ConfigError, match="none"):
        fee_model_from_name("none", gst_rate="0")


# -- exponents ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["none", "us", "ibkr", "nse"])
@pytest.mark.parametrize("side", [Side.BUY, Side.SELL])
@pytest.mark.parametrize("instrument", [AAPL, RELIANCE, SONY], ids=["usd", "inr", "jpy"])
def test_every_amount_is_a_decimal_in_the_currency_exponent(
    name: str, side: Side, instrument: Instrument
) -> None:
    model = _MODELS[name]()
    exponent = currency_unit(instrument.currency).as_tuple().exponent
    amounts = [model.fee(instrument, side, D(7), D("1234.50"))]
    amounts += model.breakdown(instrument, side, D(7), D("1234.50")).values()
    amounts.append(model.fee_for_fill(instrument, side, D(7), D("1234.50"), "X"))
    for amount in amounts:
        assert isinstance(amount, Decimal)
        assert amount.as_tuple().exponent == exponent


def test_breakdown_keys_are_the_declared_components() -> None:
    for model in (NoFees(), UsEquityFees(), NseEquityIntradayFees()):
        parts = model.breakdown(RELIANCE, Side.SELL, D(10), D("100"))
        assert tuple(parts) == model.COMPONENTS


def test_currency_units() -> None:
    assert currency_unit("USD") == D("0.01")
    assert currency_unit("INR") == D("0.01")
    assert currency_unit("JPY") == D("1")


def test_no_fees_costs_nothing() -> None:
    assert NoFees().fee(AAPL, Side.SELL, D(1_000), D("150.00")) == D("0.00")


# -- properties -----------------------------------------------------------------------------------

_model_names = st.sampled_from(sorted(_MODELS))
_sides = st.sampled_from([Side.BUY, Side.SELL])
# prices in cents from 0.01 to 100,000.00, quantities from 1 to 1,000,000 shares
_prices = st.integers(min_value=1, max_value=10_000_000).map(lambda cents: D(cents).scaleb(-2))
_quantities = st.integers(min_value=1, max_value=1_000_000)


@settings(max_examples=300, deadline=None)
@given(_model_names, _sides, _prices, _quantities, _quantities)
def test_fee_is_never_negative_and_never_falls_as_quantity_grows(
    name: str, side: Side, price: Decimal, qty_a: int, qty_b: int
) -> None:
    model = _MODELS[name]()
    instrument = RELIANCE if name == "nse" else AAPL
    small, large = sorted((D(qty_a), D(qty_b)))
    fee_small = model.fee(instrument, side, small, price)
    fee_large = model.fee(instrument, side, large, price)
    assert fee_small >= 0
    assert fee_small <= fee_large


@settings(max_examples=200, deadline=None)
@given(_model_names, _sides, _prices, st.lists(_quantities, min_size=1, max_size=6))
def test_fills_of_one_order_add_up_to_one_fill_of_the_whole_order(
    name: str, side: Side, price: Decimal, quantities: list[int]
) -> None:
    model = _MODELS[name]()
    instrument = RELIANCE if name == "nse" else AAPL
    charged = [model.fee_for_fill(instrument, side, D(qty), price, "O") for qty in quantities]
    assert all(charge >= 0 for charge in charged)
    assert sum(charged) == model.fee(instrument, side, D(sum(quantities)), price)


@settings(max_examples=200, deadline=None)
@given(_model_names, _sides, st.lists(st.tuples(_quantities, _prices), min_size=1, max_size=6))
def test_fills_at_different_prices_are_never_negative_and_add_up_to_the_order_total(
    name: str, side: Side, fills: list[tuple[int, Decimal]]
) -> None:
    model = _MODELS[name]()
    instrument = RELIANCE if name == "nse" else AAPL
    charged = [model.fee_for_fill(instrument, side, D(qty), price, "O") for qty, price in fills]
    assert all(charge >= 0 for charge in charged)
    assert sum(charged) == sum(model.order_breakdown("O").values())
