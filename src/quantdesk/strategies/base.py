"""The Strategy base: callbacks in, signals out; time from the clock, never a venue in sight.

A strategy declares its parameters as annotated class attributes with defaults
and reacts to market data by emitting signals::

    @register("breakout")
    class Breakout(Strategy):
        \"\"\"Buy a close above the 20-bar high with a stop at the 20-bar low.\"\"\"

        lookback: int = 20

        def on_start(self) -> None:
            self.highs: deque[float] = deque(maxlen=self.lookback)

        def on_bar(self, bar: Bar) -> None:
            if self.is_flat and len(self.highs) == self.lookback and bar.close > max(self.highs):
                self.enter_long(stop=bar.low, rationale="20-bar breakout")
            self.highs.append(bar.high)

`enter_long`, `enter_short` and `exit` are requests: between them and the
venue sit ranking, risk and sizing, which may refuse or resize them.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any, ClassVar, Protocol

from pydantic import TypeAdapter, ValidationError

from quantdesk.clock import Clock
from quantdesk.errors import UserError
from quantdesk.model import Bar, ExitSignal, Fill, Instrument, Order, Quote, Side, Signal, Tick


class StrategyContext(Protocol):
    """What the engine offers a strategy: signal intake and read-only portfolio queries."""

    def submit_signal(self, signal: Signal) -> None: ...

    def submit_exit(self, signal: ExitSignal) -> None: ...

    def position_qty(self, strategy: str, symbol: str) -> Decimal: ...

    def session_key(self, ts: int) -> int: ...

    def minutes_to_close(self, ts: int) -> float | None: ...


class ParameterError(UserError):
    """A strategy parameter that is unknown or of the wrong type."""


class Strategy:
    """Base class of every strategy; one instance trades one symbol (`self.symbol`)."""

    name: ClassVar[str] = ""
    _parameter_types: ClassVar[dict[str, Any]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        base_hints = typing.get_type_hints(Strategy)
        cls._parameter_types = {
            key: hint
            for key, hint in typing.get_type_hints(cls).items()
            if key not in base_hints
            and not key.startswith("_")
            and typing.get_origin(hint) is not ClassVar
            and hasattr(cls, key)
        }

    # Set by `bind`; declared here so type checkers know them.
    symbol: str
    instrument: Instrument
    clock: Clock
    _context: StrategyContext
    _id: str

    def __init__(self, symbol: str = "", **params: Any) -> None:
        self.symbol = symbol
        self.params = self.parse_params(params)
        for key, value in self.params.items():
            setattr(self, key, value)

    @classmethod
    def parameters(cls) -> dict[str, Any]:
        """Parameter names with their defaults."""
        return {key: getattr(cls, key) for key in cls._parameter_types}

    @classmethod
    def parse_params(cls, params: Mapping[str, Any]) -> dict[str, Any]:
        """Validate and convert parameters (strings from the command line included)."""
        parsed = cls.parameters()
        for key, raw in params.items():
            if key not in cls._parameter_types:
                known = ", ".join(sorted(cls._parameter_types)) or "none"
                raise ParameterError(f"strategy {cls.name!r} has no parameter {key!r} (known: {known})")
            try:
                parsed[key] = TypeAdapter(cls._parameter_types[key]).validate_python(raw, strict=False)
            except ValidationError as error:
                reason = error.errors()[0]["msg"]
                raise ParameterError(f"strategy {cls.name!r}: parameter {key}={raw!r}: {reason}") from None
        return parsed

    def bind(self, context: StrategyContext, clock: Clock, instrument: Instrument) -> None:
        """Called by the engine before `on_start`."""
        self._context = context
        self.clock = clock
        self.instrument = instrument
        self.symbol = instrument.symbol
        self._id = self.name or type(self).__name__

    @property
    def id(self) -> str:
        return self._id

    # -- callbacks (override what you need) -----------------------------------------------------

    def on_start(self) -> None:
        """Before the first event: build indicators here."""

    def on_bar(self, bar: Bar) -> None:
        """A completed bar of `self.symbol`."""

    def on_tick(self, tick: Tick) -> None:
        """A trade print of `self.symbol`."""

    def on_quote(self, quote: Quote) -> None:
        """A top-of-book change of `self.symbol`."""

    def on_order_update(self, order: Order) -> None:
        """One of this strategy's orders changed state."""

    def on_fill(self, order: Order, fill: Fill) -> None:
        """One of this strategy's orders filled (fully or in part)."""

    def on_stop(self) -> None:
        """After the last event."""

    # -- time and state -----------------------------------------------------------------------

    def now_ns(self) -> int:
        return self.clock.now_ns()

    @property
    def position(self) -> Decimal:
        """This strategy's net quantity in its symbol (negative when short)."""
        return self._context.position_qty(self._id, self.symbol)

    @property
    def is_flat(self) -> bool:
        return self._context.position_qty(self._id, self.symbol) == 0

    # -- actions ------------------------------------------------------------------------------

    def enter_long(
        self,
        *,
        qty: float | Decimal | None = None,
        entry: float | Decimal | None = None,
        stop: float | Decimal | None = None,
        targets: Iterable[float | Decimal] = (),
        features: dict[str, float] | None = None,
        rationale: str = "",
    ) -> None:
        """Ask to open a long position (at market unless `entry` is given)."""
        self._signal(Side.BUY, qty, entry, stop, targets, features, rationale)

    def enter_short(
        self,
        *,
        qty: float | Decimal | None = None,
        entry: float | Decimal | None = None,
        stop: float | Decimal | None = None,
        targets: Iterable[float | Decimal] = (),
        features: dict[str, float] | None = None,
        rationale: str = "",
    ) -> None:
        """Ask to open a short position (at market unless `entry` is given)."""
        self._signal(Side.SELL, qty, entry, stop, targets, features, rationale)

    def exit(self, reason: str = "") -> None:
        """Ask to close this strategy's position and cancel its working orders."""
        self._context.submit_exit(ExitSignal(self._id, self.symbol, self.clock.now_ns(), reason))

    def _signal(
        self,
        side: Side,
        qty: float | Decimal | None,
        entry: float | Decimal | None,
        stop: float | Decimal | None,
        targets: Iterable[float | Decimal],
        features: dict[str, float] | None,
        rationale: str,
    ) -> None:
        self._context.submit_signal(
            Signal(
                strategy=self._id,
                symbol=self.symbol,
                side=side,
                ts=self.clock.now_ns(),
                entry=None if entry is None else _price(entry),
                stop=None if stop is None else _price(stop),
                targets=()
                if type(targets) is tuple and not targets
                else tuple([p for p in map(_price, targets) if p is not None]),
                qty=None if qty is None else _decimal(qty),
                features=Signal.freeze_features(features),
                rationale=rationale,
            )
        )


def _decimal(value: float | Decimal | None) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, Decimal):
        return value
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)


def _price(value: float | Decimal | None) -> Decimal | None:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return Decimal("NaN")
    return _decimal(value)
