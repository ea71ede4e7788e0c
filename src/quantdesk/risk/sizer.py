"""The sizer: how many units an entry gets, by the configured mode, in whole lots and under the caps."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from functools import partial
from typing import Final, TypeGuard

from quantdesk.errors import ConfigError
from quantdesk.model import Instrument
from quantdesk.risk.config import SizingConfig

_ZERO: Final = Decimal(0)
_HUNDRED: Final = Decimal(100)


class SizeResult:
    """A quantity (0 when no whole lot fits) and the sentence that explains it.

    The sentence of a size that fits is written only when someone reads it: nearly every
    entry is sized, and formatting its numbers would cost more than sizing it.
    """

    __slots__ = ("_explain", "_reason", "qty")

    def __init__(self, qty: Decimal, reason: str = "", *, explain: Callable[[], str] | None = None) -> None:
        self.qty = qty
        self._reason = reason
        self._explain = explain

    @property
    def reason(self) -> str:
        if self._explain is not None:
            self._reason, self._explain = self._explain(), None
        return self._reason

    @property
    def ok(self) -> bool:
        return self.qty > _ZERO

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SizeResult):
            return NotImplemented
        return (self.qty, self.reason) == (other.qty, other.reason)

    def __hash__(self) -> int:
        return hash((self.qty, self.reason))

    def __repr__(self) -> str:
        return f"SizeResult(qty={self.qty!r}, reason={self.reason!r})"


class Sizer:
    """Turns an entry into a quantity, always rounded down to the lot, never above a cap.

    Risk mode: quantity = equity x risk_pct / 100 / (|entry - stop| x multiplier).
    With equity 100,000, risk 0.5% (500), entry 100, stop 98 and lots of 25:
    500 / 2 = 250 units = 10 lots. The result is then capped by `max_notional`
    and by the instrument's freeze quantity (`max_qty`), each rounded down to
    the lot. The quotient is taken with `divmod`, which is exact, so a size never
    rounds up into more risk than budgeted.

    `max_risk_pct` is the gate's per-trade cap: the risk percent when
    `sizing.risk_pct` is None, and an upper bound on it otherwise. Bad input
    (unknown symbol, NaN or non-positive prices, no stop in risk mode) gives
    quantity 0 with the reason, never an exception.
    """

    __slots__ = ("_instruments", "_risk_pct", "_sizing")

    def __init__(
        self,
        sizing: SizingConfig,
        instruments: Mapping[str, Instrument],
        *,
        max_risk_pct: Decimal | None = None,
    ) -> None:
        risk_pct = sizing.risk_pct if sizing.risk_pct is not None else max_risk_pct
        if risk_pct is not None and max_risk_pct is not None:
            risk_pct = min(risk_pct, max_risk_pct)
        if sizing.mode == "risk" and risk_pct is None:
            raise ConfigError("sizing mode 'risk' needs sizing.risk_pct or the per-trade cap (max_risk_pct)")
        self._sizing = sizing
        self._instruments = instruments
        self._risk_pct = risk_pct

    @property
    def risk_pct(self) -> Decimal | None:
        """The percent of equity a risk-sized entry risks, after the per-trade cap."""
        return self._risk_pct

    def size(
        self,
        *,
        symbol: str,
        entry: Decimal,
        stop: Decimal | None,
        equity: Decimal,
        signal_qty: Decimal | None = None,
    ) -> SizeResult:
        """The quantity for an entry in `symbol` at `entry` (the reference price if at market)."""
        try:
            return self._size(symbol, entry, stop, equity, signal_qty)
        except (ArithmeticError, AttributeError, TypeError, ValueError) as exc:
            return SizeResult(_ZERO, f"{symbol}: cannot size ({exc!r})")

    def _size(
        self, symbol: str, entry: Decimal, stop: Decimal | None, equity: Decimal, signal_qty: Decimal | None
    ) -> SizeResult:
        instrument = self._instruments.get(symbol)
        if instrument is None:
            return SizeResult(_ZERO, f"unknown symbol {symbol}")
        if not _positive(entry):
            return SizeResult(_ZERO, f"{symbol}: entry price must be positive, got {entry!r}")
        lot = instrument.lot_size
        unit_value = entry * instrument.multiplier
        mode = self._sizing.mode
        budget = per_unit = _ZERO
        if mode == "fixed":
            wanted = self._sizing.fixed_qty or _ZERO
            lots = _floor(wanted, lot)
        elif mode == "signal":
            if signal_qty is None or not _positive(signal_qty):
                return SizeResult(_ZERO, f"{symbol}: the signal carries no positive quantity ({signal_qty})")
            wanted = signal_qty
            lots = _floor(signal_qty, lot)
        elif mode == "notional":
            wanted = self._sizing.notional or _ZERO
            lots = _floor(wanted, unit_value * lot)
        else:
            if not _positive(equity):
                return SizeResult(_ZERO, f"{symbol}: equity must be positive to size by risk, got {equity}")
            if stop is None:
                return SizeResult(_ZERO, f"{symbol}: risk sizing needs a stop")
            if not _positive(stop):
                return SizeResult(_ZERO, f"{symbol}: stop must be a positive price, got {stop!r}")
            per_unit = abs(entry - stop) * instrument.multiplier
            if per_unit == 0:
                return SizeResult(_ZERO, f"{symbol}: stop equals entry {entry}, risk per unit is zero")
            budget = equity * (self._risk_pct or _ZERO) / _HUNDRED
            lots = _floor(budget, per_unit * lot)
            wanted = budget

        if lots <= _ZERO:
            basis = _basis(mode, wanted, entry, budget, per_unit)
            return SizeResult(_ZERO, f"{symbol}: {basis} buys less than one lot of {lot}")
        qty = lots * lot
        caps: list[str] = []
        max_notional = self._sizing.max_notional
        if max_notional is not None:
            cap = _floor(max_notional, unit_value * lot) * lot
            if cap < qty:
                qty = cap
                caps.append(f"max notional {max_notional}")
        if instrument.max_qty is not None:
            cap = _floor(instrument.max_qty, lot) * lot
            if cap < qty:
                qty = cap
                caps.append(f"freeze quantity {instrument.max_qty}")
        capped = f", capped by {' and '.join(caps)}" if caps else ""
        if qty < instrument.min_qty or qty <= _ZERO:
            basis = _basis(mode, wanted, entry, budget, per_unit)
            return SizeResult(
                _ZERO, f"{symbol}: {basis}{capped} gives {qty}, below the minimum {instrument.min_qty}"
            )
        # Worded only if asked (most approvals are never explained); a module function bound with
        # `partial`, not a lambda: compiled, a lambda moves every local of this function into a
        # heap object (each use an attribute access), and that object and the lambda form a cycle
        # per sized plan, garbage only the cyclic collector frees.
        return SizeResult(
            qty, explain=partial(_explanation, mode, wanted, entry, budget, per_unit, qty, capped)
        )


def _explanation(
    mode: str,
    wanted: Decimal,
    entry: Decimal,
    budget: Decimal,
    per_unit: Decimal,
    sized: Decimal,
    capped: str,
) -> str:
    return f"{_basis(mode, wanted, entry, budget, per_unit)} -> {sized}{capped}"


def _basis(mode: str, wanted: Decimal, entry: Decimal, budget: Decimal, per_unit: Decimal) -> str:
    """What a size was worked out from, in words."""
    if mode == "fixed":
        return f"fixed {wanted}"
    if mode == "signal":
        return f"signal {wanted}"
    if mode == "notional":
        return f"notional {wanted:.2f} at {entry}"
    return f"risk {budget:.2f} at {per_unit} per unit"


def _positive(value: object) -> TypeGuard[Decimal]:
    return isinstance(value, Decimal) and value.is_finite() and value > _ZERO


def _floor(amount: Decimal, step: Decimal) -> Decimal:
    """Whole `step`s in `amount`, rounded down, exactly (divmod does not round like `/` does)."""
    if step <= _ZERO:
        return _ZERO
    whole, _ = divmod(amount, step)
    return whole if whole > _ZERO else _ZERO
