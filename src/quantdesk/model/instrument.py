"""Instrument and its symbol properties: tick grid, lot grid, quantity limits, multiplier."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Final

from quantdesk.model.enums import Side

# Enum members as C statics: compiled, `Side.BUY` is a call of EnumType's __getattr__ hook
# on Python 3.11 (~80 ns); see _compiled.py.
_SELL: Final = Side.SELL


@dataclass(frozen=True, slots=True)
class OrderCheck:
    """The answer of `Instrument.validate_order`: ok, or the reason it is not."""

    ok: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.ok


_OK: Final = OrderCheck(True)
_ZERO: Final = Decimal(0)
_PRICE_CACHE_SIZE: Final = 4_096


@dataclass(frozen=True, slots=True)
class Instrument:
    """A tradable symbol with the properties every order must respect.

    Example: an NSE equity trading in 0.05 ticks, lots of 1, freeze at 100,000::

        Instrument("RELIANCE", exchange="XNSE", currency="INR",
                   tick_size=Decimal("0.05"), max_qty=Decimal(100000))

    `source` records where the properties came from ("instruments file",
    "flags", "inferred from data") so a report can say it.
    """

    symbol: str
    exchange: str = "SIM"
    currency: str = "USD"
    tick_size: Decimal = Decimal("0.01")
    lot_size: Decimal = Decimal(1)
    min_qty: Decimal = Decimal(1)
    max_qty: Decimal | None = None
    multiplier: Decimal = Decimal(1)
    source: str = "default"
    _tick_float: float = field(init=False, repr=False, compare=False)
    # Market-data float -> its exact grid price: prices recur (they sit on the grid), and
    # marking positions, reference prices and fills all ask for them. Bounded, see below.
    _prices: dict[float, Decimal] = field(init=False, repr=False, compare=False)

    def __reduce__(self) -> tuple[type[Instrument], tuple[object, ...]]:
        # Pickled by its defining fields (a venue's saved state, records to the writer process):
        # compiled, a frozen class cannot be restored attribute by attribute. Caches start afresh.
        fields = (self.exchange, self.currency, self.tick_size, self.lot_size, self.min_qty, self.max_qty)
        return (Instrument, (self.symbol, *fields, self.multiplier, self.source))

    def __post_init__(self) -> None:
        for name in ("tick_size", "lot_size", "min_qty", "multiplier"):
            value = getattr(self, name)
            if not isinstance(value, Decimal):
                object.__setattr__(self, name, Decimal(str(value)))
                value = getattr(self, name)
            if not value.is_finite() or value <= 0:
                raise ValueError(f"{self.symbol}: {name} must be positive, got {value}")
        if self.max_qty is not None:
            max_qty = Decimal(str(self.max_qty))
            if max_qty < self.min_qty:
                raise ValueError(f"{self.symbol}: max_qty {max_qty} below min_qty {self.min_qty}")
            object.__setattr__(self, "max_qty", max_qty)
        object.__setattr__(self, "_tick_float", float(self.tick_size))
        object.__setattr__(self, "_prices", {})

    @property
    def precision(self) -> int:
        """Decimal places of a price on the tick grid."""
        exponent = self.tick_size.normalize().as_tuple().exponent
        return max(0, -int(exponent))

    @property
    def size_precision(self) -> int:
        exponent = self.lot_size.normalize().as_tuple().exponent
        return max(0, -int(exponent))

    # -- prices -------------------------------------------------------------------------------

    def price(self, value: float | Decimal | str) -> Decimal:
        """The tick-grid price nearest to `value` (ties to even): for prices from market data."""
        if type(value) is Decimal and value.is_finite() and not value % self.tick_size:
            return value.quantize(self.tick_size)  # already on the grid: the common case
        ticks = (_to_decimal(value) / self.tick_size).to_integral_value(ROUND_HALF_EVEN)
        return self._from_ticks(ticks)

    def price_from_float(self, value: float) -> Decimal:
        """Fast path of `price` for floats that sit on the grid up to float noise."""
        price = self._prices.get(value)
        if price is None:
            price = self._from_ticks(Decimal(round(value / self._tick_float)))
            prices = self._prices
            if len(prices) >= _PRICE_CACHE_SIZE:
                prices.clear()  # a runaway walk over many prices: start over rather than grow
            prices[value] = price
        return price

    def round_price(self, price: float | Decimal | str, side: Side) -> Decimal:
        """Round a limit price onto the tick grid without making it more aggressive.

        A buy never rounds up and a sell never rounds down, so rounding can only
        cost a fill, never pay more than the user asked.
        """
        if type(price) is Decimal and price.is_finite() and not price % self.tick_size:
            return price.quantize(self.tick_size)  # on the grid: no direction to round in
        return self._from_ticks(_whole_steps(_to_decimal(price), self.tick_size, up=side is _SELL))

    def is_on_grid(self, price: Decimal) -> bool:
        return (price % self.tick_size) == 0

    def _from_ticks(self, ticks: Decimal) -> Decimal:
        return (ticks * self.tick_size).quantize(self.tick_size)

    # -- quantities ---------------------------------------------------------------------------

    def round_qty(self, qty: float | Decimal | int | str) -> Decimal:
        """Round a quantity down to a whole number of lots."""
        lots = _whole_steps(_to_decimal(qty), self.lot_size, up=False)
        return (lots * self.lot_size).quantize(self.lot_size)

    def validate_order(self, qty: Decimal | int, price: Decimal | None, side: Side) -> OrderCheck:
        """Check an order against the symbol properties; the answer names the first problem."""
        # Every order is checked two or three times on its way out: the plain case of an
        # order that passes is answered first, without conversions.
        if (
            type(qty) is Decimal
            and type(side) is Side
            and qty.is_finite()
            and qty > _ZERO
            and not qty % self.lot_size
            and qty >= self.min_qty
            and (self.max_qty is None or qty <= self.max_qty)
            and (
                price is None
                or (
                    type(price) is Decimal
                    and price.is_finite()
                    and price > _ZERO
                    and not price % self.tick_size
                )
            )
        ):
            return _OK
        if not isinstance(side, Side):
            return OrderCheck(False, f"{self.symbol}: unknown side {side!r}")
        qty = _to_decimal(qty)
        if not qty.is_finite() or qty <= 0:
            return OrderCheck(False, f"{self.symbol}: quantity must be positive, got {qty}")
        if qty % self.lot_size != 0:
            return OrderCheck(
                False, f"{self.symbol}: quantity {qty} is not a multiple of the lot {self.lot_size}"
            )
        if qty < self.min_qty:
            return OrderCheck(False, f"{self.symbol}: quantity {qty} below minimum {self.min_qty}")
        if self.max_qty is not None and qty > self.max_qty:
            return OrderCheck(False, f"{self.symbol}: quantity {qty} above freeze quantity {self.max_qty}")
        if price is not None:
            price = _to_decimal(price)
            if not price.is_finite() or price <= 0:
                return OrderCheck(False, f"{self.symbol}: price must be positive, got {price}")
            if not self.is_on_grid(price):
                return OrderCheck(
                    False, f"{self.symbol}: price {price} is off the tick grid {self.tick_size}"
                )
        return _OK


def _to_decimal(value: float | Decimal | int | str) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return Decimal("NaN")
        return Decimal(repr(value))
    return Decimal(value)


def _whole_steps(value: Decimal, step: Decimal, *, up: bool) -> Decimal:
    """`value / step` rounded down (or up) to a whole number, exactly.

    Plain division rounds to the context's 28 digits, so a value a hair below a
    grid point (as 28-digit Decimal arithmetic produces) would land on that point
    and round the wrong way; divmod's quotient and remainder are exact.
    """
    if not value.is_finite():
        return value / step
    steps, remainder = divmod(value, step)
    # divmod truncates toward zero; step away from zero where floor/ceiling differ.
    if up and remainder > 0:
        steps += 1
    elif not up and remainder < 0:
        steps -= 1
    return steps


def tick_size_for_precision(decimals: int) -> Decimal:
    """The tick implied by a price shown with `decimals` places: 2 -> 0.01."""
    return Decimal(1).scaleb(-decimals)
