"""Fee models of the simulated exchange: what one fill costs, by component, in exact money.

Every model answers in the instrument's currency as a `Decimal` quantized to the
currency's smallest unit (cents, paise). Components are rounded one by one, each
by its own rule, and the total is their sum, so a report's breakdown always adds
up to the fee charged.

Two ways to ask:

* `fee` / `breakdown`: one fill that is a whole order. Stateless.
* `fee_for_fill(..., order_id)`: one fill of an order that may fill in parts.
  The model remembers what it has charged each order, and charges each fill the
  increase of the order's charges, computed on the order's cumulative quantity
  and notional. Per-order caps and minimums (₹20 brokerage, IBKR's $1 minimum,
  FINRA's $8.30 TAF cap) therefore apply once per order, and the fills of an
  order always add up to what one fill of the whole order would have cost. Call
  `forget_order` once the order is terminal to drop its state.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from quantdesk.errors import ConfigError
from quantdesk.model import Instrument, Side

__all__ = [
    "FeeModel",
    "NoFees",
    "NseEquityIntradayFees",
    "NseFeeConfig",
    "UsEquityFeeConfig",
    "UsEquityFees",
    "currency_unit",
    "fee_model_from_name",
]

# ISO 4217 minor units of the currencies we meet; anything else is assumed to use cents.
_CURRENCY_EXPONENTS: dict[str, int] = {
    "USD": 2,
    "INR": 2,
    "EUR": 2,
    "GBP": 2,
    "CHF": 2,
    "CAD": 2,
    "AUD": 2,
    "HKD": 2,
    "SGD": 2,
    "CNY": 2,
    "JPY": 0,
    "KRW": 0,
}
_DEFAULT_EXPONENT = 2
_ZERO = Decimal(0)
_HUNDRED = Decimal(100)


def currency_unit(currency: str) -> Decimal:
    """The smallest unit of `currency` as a Decimal: 0.01 for USD and INR, 1 for JPY."""
    unit = _UNITS.get(currency)
    if unit is None:
        exponent = _CURRENCY_EXPONENTS.get(currency.upper(), _DEFAULT_EXPONENT)
        unit = _UNITS[currency] = Decimal(1).scaleb(-exponent)
    return unit


# Currency code -> its unit, as asked for: every fill asks (Decimals are immutable, so sharing is safe).
_UNITS: dict[str, Decimal] = {}


def _half_up(amount: Decimal, unit: Decimal) -> Decimal:
    return amount.quantize(unit, rounding=ROUND_HALF_UP)


def _up(amount: Decimal, unit: Decimal) -> Decimal:
    return amount.quantize(unit, rounding=ROUND_CEILING)


class FeeModel(Protocol):
    """What the simulated exchange asks of a fee model."""

    def fee(self, instrument: Instrument, side: Side, qty: Decimal, price: Decimal) -> Decimal:
        """Total charges of one fill that is a whole order, in the instrument's currency."""
        ...

    def fee_for_fill(
        self, instrument: Instrument, side: Side, qty: Decimal, price: Decimal, order_id: str
    ) -> Decimal:
        """Charges of one fill of order `order_id`, with per-order caps applied across its fills."""
        ...

    def forget_order(self, order_id: str) -> None:
        """Drop what the model remembers of a terminal order."""
        ...


@dataclass(slots=True)
class _OrderCharges:
    symbol: str
    side: Side
    qty: Decimal = _ZERO
    notional: Decimal = _ZERO
    charged: dict[str, Decimal] = field(default_factory=dict)


class _ComponentFeeModel(ABC):
    """Shared mechanics: validation, single-fill and per-order paths over `_components`."""

    # The keys of every breakdown, in report order.
    COMPONENTS: ClassVar[tuple[str, ...]] = ()

    def __init__(self) -> None:
        self._orders: dict[str, _OrderCharges] = {}

    @abstractmethod
    def _components(self, side: Side, qty: Decimal, notional: Decimal, unit: Decimal) -> dict[str, Decimal]:
        """Each component, rounded by its rule, for an order of `qty` worth `notional`.

        Every component must be non-decreasing in `qty` and in `notional`: the
        per-order path charges a fill the difference between two calls.
        """

    def breakdown(
        self, instrument: Instrument, side: Side, qty: Decimal, price: Decimal
    ) -> dict[str, Decimal]:
        """Charges of one fill that is a whole order, component by component."""
        notional = _notional(instrument, qty, price)
        return self._components(side, qty, notional, currency_unit(instrument.currency))

    def fee(self, instrument: Instrument, side: Side, qty: Decimal, price: Decimal) -> Decimal:
        """Total charges of one fill that is a whole order: the sum of `breakdown`."""
        unit = currency_unit(instrument.currency)
        return _total(self.breakdown(instrument, side, qty, price), unit)

    def fill_breakdown(
        self, instrument: Instrument, side: Side, qty: Decimal, price: Decimal, order_id: str
    ) -> dict[str, Decimal]:
        """Record one fill of `order_id` and return its charges component by component.

        Records the fill: call this or `fee_for_fill` once per fill, not both.
        """
        notional = _notional(instrument, qty, price)
        unit = currency_unit(instrument.currency)
        state = self._orders.get(order_id)
        if state is None:
            state = _OrderCharges(instrument.symbol, side)
            self._orders[order_id] = state
        elif state.side is not side or state.symbol != instrument.symbol:
            raise ValueError(
                f"order {order_id}: fill {instrument.symbol} {side.value} does not match "
                f"earlier fills {state.symbol} {state.side.value}"
            )
        state.qty += qty
        state.notional += notional
        now = self._components(side, state.qty, state.notional, unit)
        this_fill = {name: amount - state.charged.get(name, _ZERO) for name, amount in now.items()}
        state.charged = now
        return this_fill

    def fee_for_fill(
        self, instrument: Instrument, side: Side, qty: Decimal, price: Decimal, order_id: str
    ) -> Decimal:
        """Record one fill of `order_id` and return its total charges.

        The fills of one order add up to `fee` of a single fill of the whole
        order (same quantity, same notional), so the ₹20 brokerage cap or a
        $1.00 minimum commission is paid once per order, not once per fill.
        """
        unit = currency_unit(instrument.currency)
        return _total(self.fill_breakdown(instrument, side, qty, price, order_id), unit)

    def order_breakdown(self, order_id: str) -> dict[str, Decimal]:
        """What the fills of `order_id` recorded so far have been charged, by component."""
        state = self._orders.get(order_id)
        return dict(state.charged) if state is not None else {}

    def forget_order(self, order_id: str) -> None:
        """Drop the state of a terminal order; a later fill under the same id starts afresh."""
        self._orders.pop(order_id, None)


def _notional(instrument: Instrument, qty: Decimal, price: Decimal) -> Decimal:
    # A fill with no quantity or a non-positive price is a bug upstream, not a free trade.
    if not qty.is_finite() or qty <= 0:
        raise ValueError(f"{instrument.symbol}: fill quantity must be positive, got {qty}")
    if not price.is_finite() or price <= 0:
        raise ValueError(f"{instrument.symbol}: fill price must be positive, got {price}")
    return qty * price * instrument.multiplier


def _total(components: dict[str, Decimal], unit: Decimal) -> Decimal:
    # Starting from a quantized zero keeps the exponent when there are no components.
    return sum(components.values(), _ZERO.quantize(unit))


class _FeeConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# -- no fees --------------------------------------------------------------------------------------


class NoFees(_ComponentFeeModel):
    """A frictionless venue: every fill costs zero (in the currency's exponent)."""

    def __init__(self) -> None:
        super().__init__()
        self._zeros: dict[str, Decimal] = {}

    def _components(self, side: Side, qty: Decimal, notional: Decimal, unit: Decimal) -> dict[str, Decimal]:
        return {}

    def fee_for_fill(
        self, instrument: Instrument, side: Side, qty: Decimal, price: Decimal, order_id: str
    ) -> Decimal:
        # Nothing to accumulate per order: skip the bookkeeping on the backtest hot path.
        zero = self._zeros.get(instrument.currency)
        if zero is None:
            zero = self._zeros[instrument.currency] = _ZERO.quantize(currency_unit(instrument.currency))
        return zero


# -- US equities ----------------------------------------------------------------------------------


class UsEquityFeeConfig(_FeeConfig):
    """Rates of `UsEquityFees`. Defaults: commission-free (Alpaca) plus the regulatory fees.

    * Commission: `commission_per_share` x shares, at least `per_order_min`, at
      most `per_order_max_pct` percent of the order's notional (None: no cap);
      the cap wins over the minimum, as in IBKR's schedule. Default 0: Alpaca's
      stock trading is commission-free (alpaca.markets, checked 2025).
      `UsEquityFees.ibkr_fixed()` sets IBKR Pro Fixed: $0.005/share, $1.00
      minimum, 1% of trade value maximum (interactivebrokers.com, 2024-2025).
    * `sec_fee_rate`: SEC Section 31 fee per dollar sold. Default 0.0000278
      ($27.80 per million), set by SEC Release 34-99973 (FY2024 order,
      2024-04-17) and in force 2024-05-22 to 2025-05-13; Alpaca's
      regulatory-fees page lists the same rate. SEC Release 34-102779
      (2025-04-08) set the rate to $0.00 from 2025-05-14: set 0 to model that.
    * `finra_taf_per_share` / `finra_taf_max_per_trade`: FINRA Trading Activity
      Fee on shares sold, $0.000166 per share capped at $8.30 per trade (FINRA
      By-Laws Schedule A section 1, rates in force since 2024-01-01; Alpaca's
      regulatory-fees page, checked 2025).
    """

    commission_per_share: Decimal = Field(default=Decimal(0), ge=0)
    per_order_min: Decimal = Field(default=Decimal(0), ge=0)
    per_order_max_pct: Decimal | None = Field(default=None, ge=0)
    sec_fee_rate: Decimal = Field(default=Decimal("0.0000278"), ge=0)
    finra_taf_per_share: Decimal = Field(default=Decimal("0.000166"), ge=0)
    finra_taf_max_per_trade: Decimal = Field(default=Decimal("8.30"), ge=0)


class UsEquityFees(_ComponentFeeModel):
    """US equities: broker commission on both sides; SEC fee and FINRA TAF on sells only.

    Rounding: the commission to the nearest cent (half up); the SEC fee and the
    TAF up to the next cent, as brokers pass them on (Alpaca rounds up the
    day's total; many brokers round up each trade). The regulators charge the
    broker on aggregate sales and set no customer rounding; rounding each order
    up slightly overstates the cost, the safe side for a backtest.

    Example: sell 100 shares at $150.00 with the defaults: SEC fee
    15,000 x 0.0000278 = 0.417 -> $0.42, TAF 100 x 0.000166 = 0.0166 -> $0.02,
    fee $0.44. The same buy costs $0.00.
    """

    COMPONENTS: ClassVar[tuple[str, ...]] = ("commission", "sec_fee", "finra_taf")

    def __init__(self, config: UsEquityFeeConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else UsEquityFeeConfig()

    @classmethod
    def ibkr_fixed(cls, **overrides: Any) -> UsEquityFees:
        """IBKR Pro Fixed: $0.005/share, $1.00 minimum, 1% of trade value maximum, plus SEC/TAF."""
        rates: dict[str, Any] = {
            "commission_per_share": Decimal("0.005"),
            "per_order_min": Decimal("1.00"),
            "per_order_max_pct": Decimal("1"),
        }
        rates.update(overrides)
        return cls(UsEquityFeeConfig(**rates))

    def _components(self, side: Side, qty: Decimal, notional: Decimal, unit: Decimal) -> dict[str, Decimal]:
        config = self.config
        commission = max(config.commission_per_share * qty, config.per_order_min)
        if config.per_order_max_pct is not None:
            commission = min(commission, notional * config.per_order_max_pct / _HUNDRED)
        if side is Side.SELL:
            sec_fee = _up(notional * config.sec_fee_rate, unit)
            taf = min(qty * config.finra_taf_per_share, config.finra_taf_max_per_trade)
            finra_taf = _up(taf, unit)
        else:
            sec_fee = finra_taf = _ZERO.quantize(unit)
        return {
            "commission": _half_up(commission, unit),
            "sec_fee": sec_fee,
            "finra_taf": finra_taf,
        }


# -- NSE equity intraday --------------------------------------------------------------------------


class NseFeeConfig(_FeeConfig):
    """Rates of `NseEquityIntradayFees`, as fractions of turnover unless named otherwise.

    Defaults are Zerodha's equity intraday (MIS) charges on NSE from its charges
    page (zerodha.com/charges), rates in force from 2024-10-01:

    * brokerage 0.03% of turnover or ₹20 per executed order, whichever is lower;
    * STT 0.025% of the sell side's turnover;
    * NSE transaction charge 0.00297% of turnover, both sides (from 2024-10-01);
    * SEBI turnover fee ₹10 per crore (0.0001%), both sides;
    * stamp duty 0.003% (₹300 per crore) of the buy side's turnover;
    * GST 18% on brokerage + transaction charge + SEBI fee.

    `stt_rounding_unit` is the unit STT is rounded to (half up): ₹1, as
    Zerodha's brokerage calculator does; 0.01 rounds it to paise instead.
    NSE's Investor Protection Fund Trust charge (about ₹10 per crore) is not
    modelled.
    """

    brokerage_rate: Decimal = Field(default=Decimal("0.0003"), ge=0)
    brokerage_max_per_order: Decimal = Field(default=Decimal("20"), ge=0)
    stt_sell_rate: Decimal = Field(default=Decimal("0.00025"), ge=0)
    stt_rounding_unit: Decimal = Field(default=Decimal("1"), gt=0)
    exchange_txn_rate: Decimal = Field(default=Decimal("0.0000297"), ge=0)
    sebi_fee_rate: Decimal = Field(default=Decimal("0.000001"), ge=0)
    stamp_duty_buy_rate: Decimal = Field(default=Decimal("0.00003"), ge=0)
    gst_rate: Decimal = Field(default=Decimal("0.18"), ge=0)


class NseEquityIntradayFees(_ComponentFeeModel):
    """NSE equity intraday charges as a discount broker (Zerodha MIS) bills them.

    Rounding: STT to `stt_rounding_unit` (₹1 by default), every other
    component to the paisa, half up; GST is 18% of the already rounded
    brokerage + transaction charge + SEBI fee. The law rounds STT on the day's
    contract note; rounding it per order (or per fill through `fee`) moves each
    order's STT by at most half a rupee.

    Example: buy 100 at ₹2,500 (turnover ₹2,50,000): brokerage min(75, 20) =
    20.00, transaction 7.425 -> 7.43, SEBI 0.25, stamp 7.50, GST 18% of 27.68 =
    4.98; fee ₹40.16.
    """

    COMPONENTS: ClassVar[tuple[str, ...]] = (
        "brokerage",
        "stt",
        "exchange_txn",
        "sebi_fee",
        "stamp_duty",
        "gst",
    )

    def __init__(self, config: NseFeeConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else NseFeeConfig()

    def _components(self, side: Side, qty: Decimal, notional: Decimal, unit: Decimal) -> dict[str, Decimal]:
        config = self.config
        zero = _ZERO.quantize(unit)
        brokerage = _half_up(min(notional * config.brokerage_rate, config.brokerage_max_per_order), unit)
        if side is Side.SELL:
            stt = _half_up(notional * config.stt_sell_rate, config.stt_rounding_unit)
            stt = _half_up(stt, unit)
            stamp_duty = zero
        else:
            stt = zero
            stamp_duty = _half_up(notional * config.stamp_duty_buy_rate, unit)
        exchange_txn = _half_up(notional * config.exchange_txn_rate, unit)
        sebi_fee = _half_up(notional * config.sebi_fee_rate, unit)
        gst = _half_up((brokerage + exchange_txn + sebi_fee) * config.gst_rate, unit)
        return {
            "brokerage": brokerage,
            "stt": stt,
            "exchange_txn": exchange_txn,
            "sebi_fee": sebi_fee,
            "stamp_duty": stamp_duty,
            "gst": gst,
        }


# -- by name --------------------------------------------------------------------------------------

_FEE_MODEL_NAMES = ("none", "nse_equity_intraday", "us_equity")


def fee_model_from_name(name: str, **overrides: Any) -> FeeModel:
    """Build a fee model by its config name; `overrides` set fields of its rate config.

    Example: ``fee_model_from_name("us_equity", sec_fee_rate="0")``.
    Raises `ConfigError` for an unknown name or a bad override.
    """
    try:
        if name == "us_equity":
            return UsEquityFees(UsEquityFeeConfig(**overrides))
        if name == "nse_equity_intraday":
            return NseEquityIntradayFees(NseFeeConfig(**overrides))
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "config"
        raise ConfigError(f"fee model {name!r}: field {where!r}: {first['msg']}") from None
    if name == "none":
        if overrides:
            raise ConfigError(f"fee model 'none' takes no options, got {sorted(overrides)}")
        return NoFees()
    known = ", ".join(_FEE_MODEL_NAMES)
    raise ConfigError(f"unknown fee model {name!r}; known: {known}")
