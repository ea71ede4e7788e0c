"""The simulated exchange: accepts, rejects, matches and fills orders against market data.

It keeps its own account and positions, as a broker does, so insufficient cash
is refused here and reconciliation later has a venue-side truth to compare with.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from decimal import Decimal
from typing import Any, Final

from mypy_extensions import mypyc_attr

from quantdesk.model import (
    Bar,
    Fill,
    Instrument,
    Order,
    OrderAccepted,
    OrderCanceled,
    OrderEvent,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderStatus,
    OrderTriggered,
    OrderType,
    Quote,
    Side,
    Tick,
    TimeInForce,
)
from quantdesk.venues.base import VenueCapabilities, VenueListener, VenueOrderState
from quantdesk.venues.sim.config import FillAt, LimitFill, SimVenueConfig
from quantdesk.venues.sim.fees import FeeModel, NoFees
from quantdesk.venues.sim.matching import PathHit, bar_path, match_on_bar, match_on_price
from quantdesk.venues.sim.resting import Resting

# Enum members as C statics: compiled, `Side.BUY` is a call of EnumType's __getattr__ hook
# on Python 3.11 (~80 ns); see _compiled.py.
_ACCEPTED: Final = OrderStatus.ACCEPTED
_CANCELED: Final = OrderStatus.CANCELED
_EXPIRED: Final = OrderStatus.EXPIRED
_FILLED: Final = OrderStatus.FILLED
_PARTIALLY_FILLED: Final = OrderStatus.PARTIALLY_FILLED
_REJECTED: Final = OrderStatus.REJECTED
_LIMIT: Final = OrderType.LIMIT
_MARKET: Final = OrderType.MARKET
_STOP: Final = OrderType.STOP
_STOP_LIMIT: Final = OrderType.STOP_LIMIT
_BUY: Final = Side.BUY
_SELL: Final = Side.SELL
_DAY: Final = TimeInForce.DAY
_IOC: Final = TimeInForce.IOC

# The name state files written before Resting had a module of its own pickled it under.
_Resting = Resting

SessionKey = Callable[[int], Hashable]


_ZERO: Final = Decimal(0)
_LIMITED: Final = frozenset({_LIMIT, _STOP_LIMIT})
_STOPPED: Final = frozenset({_STOP, _STOP_LIMIT})
_SLIPPING: Final = frozenset({_MARKET, _STOP})
_TERMINAL_STATUS: dict[type, OrderStatus] = {
    OrderCanceled: _CANCELED,
    OrderExpired: _EXPIRED,
    OrderRejected: _REJECTED,
}


def _path_order(hit: tuple[float, int, PathHit | None, Resting]) -> tuple[float, int]:
    return hit[0], hit[1]


# What outlives the process (`state`/`restore`): everything but references to the running one
# (clock, calendar, listener, price feed) and what `derive_state` works out again.
_SAVED_STATE = (
    "_instruments",
    "config",
    "_fees",
    "cash",
    "currency",
    "positions",
    "_resting",
    "_by_id",
    "_seen_ids",
    "_book",
    "_last_price",
    "_sequence",
    "_execution_sequence",
    "_executions",
    "_latency_ns",
    "_through",
    "_fill_at_close",
    "_capabilities",
)
# Worked out again by `derive_state`; files written before `state` existed hold them too.
_DERIVED_STATE = frozenset(
    {
        "_enforce_session",
        "_allow_short",
        "_check_cash",
        "_cash_buffer",
        "_slippage_ticks",
        "_volume_share",
        "_day_orders",
    }
)


def _utc_day(ts: int) -> int:
    return ts // 86_400_000_000_000


# Subclassable from Python when compiled: tests and users build fault-injecting venues on it.
@mypyc_attr(allow_interpreted_subclasses=True)
class SimulatedExchange:
    """Matches orders on bars (with the intrabar path of `matching.py`), ticks and quotes.

    Example::

        venue = SimulatedExchange({"AAPL": aapl}, cash=Decimal(100_000))
        venue.connect(engine_execution)
        venue.on_bar(bar)        # before strategies see the bar: fills at its open
        venue.on_bar_close(bar)  # after them: fills market orders at the close if fill_at=close
    """

    def __init__(
        self,
        instruments: dict[str, Instrument],
        *,
        cash: Decimal,
        currency: str = "USD",
        config: SimVenueConfig | None = None,
        fee_model: FeeModel | None = None,
        session_key: SessionKey | None = None,
        is_open: Callable[[int], bool] | None = None,
        clock_ns: Callable[[], int] = lambda: 0,
    ) -> None:
        self._instruments = instruments
        self.config = config or SimVenueConfig()
        self._fees = fee_model or NoFees()
        self._session_key = session_key or _utc_day
        self._is_open = is_open
        self._now = clock_ns
        self.cash = Decimal(cash)
        self.currency = currency
        self.positions: dict[str, Decimal] = {}
        self._listener: VenueListener | None = None
        self._resting: dict[str, list[Resting]] = {}
        self._by_id: dict[str, Resting] = {}
        self._seen_ids: set[str] = set()
        # Every order the venue has seen: [venue id, symbol, side, qty, filled, status, ts].
        self._book: dict[str, list[Any]] = {}
        self._last_price: dict[str, float] = {}
        self._price_source: Mapping[str, Bar] = {}
        self._sequence = 0
        self._execution_sequence = 0
        # Every execution, as a broker's trade list keeps them (Alpaca's activities, Kite's /trades).
        self._executions: list[Fill] = []
        self._latency_ns = int(self.config.latency_ms * 1_000_000)
        self._through = self.config.limit_fill is LimitFill.THROUGH
        self._fill_at_close = self.config.fill_at is FillAt.CLOSE
        self._capabilities = VenueCapabilities(name="SIM")
        self.derive_state()

    def derive_state(self) -> None:
        """Work out again what is kept only to save time per order and per bar: the config's
        values (it is frozen, so they are read once, not per order) and how many DAY orders
        rest (with none, no bar looks for stale ones). After restoring saved state, call it."""
        config = self.config
        self._enforce_session = config.enforce_session
        self._allow_short = config.allow_short
        self._check_cash = config.check_cash
        self._cash_buffer = config.cash_buffer
        self._slippage_ticks = config.slippage_ticks
        self._volume_share = config.max_volume_share
        self._day_orders = sum(1 for resting in self._by_id.values() if resting.tif is _DAY)

    def state(self) -> dict[str, Any]:
        """The account and book as plain data, for a venue whose state outlives its process."""
        return {name: getattr(self, name) for name in _SAVED_STATE}

    def restore(self, state: Mapping[str, Any]) -> None:
        """Take back what `state` returned (a state saved by an older version may lack a part)."""
        unknown = set(state) - set(_SAVED_STATE) - _DERIVED_STATE
        if unknown:
            raise ValueError(f"not part of a simulated exchange's state: {sorted(unknown)}")
        for name in _SAVED_STATE:
            if name in state:
                setattr(self, name, state[name])
        self.derive_state()

    # -- Venue interface ----------------------------------------------------------------------

    @property
    def capabilities(self) -> VenueCapabilities:
        return self._capabilities

    def connect(self, listener: VenueListener) -> None:
        self._listener = listener

    def submit_order(self, order: Order) -> None:
        """Accept or reject `order` at once; fills come with later market data."""
        now = self._now()
        reason = self._refusal(order, now)
        # Read once: each field of the order (a msgspec Struct) is a generic lookup from here.
        client_order_id, symbol, side, qty = order.client_order_id, order.symbol, order.side, order.qty
        # Like Alpaca, an id is spent once submitted, even if the order was refused.
        first_time = client_order_id not in self._seen_ids
        self._seen_ids.add(client_order_id)
        if reason:
            if first_time:
                self._book[client_order_id] = ["", symbol, side, qty, _ZERO, _REJECTED, now]
            self._emit(OrderRejected(client_order_id, now, reason))
            return
        self._sequence += 1
        sequence = self._sequence
        price, stop_price, tif = order.price, order.stop_price, order.time_in_force
        venue_order_id = f"SIM-{sequence}"
        # Positional, in field order: keywords cost a name match per field, per order.
        resting = Resting(
            client_order_id,
            venue_order_id,
            symbol,
            side,
            order.order_type,
            qty,
            float(price) if price is not None else None,
            float(stop_price) if stop_price is not None else None,
            price,
            stop_price,
            tif,
            now + self._latency_ns,
            self._session_key(now),
            sequence,
        )
        self._resting.setdefault(symbol, []).append(resting)
        if tif is _DAY:
            self._day_orders += 1
        self._by_id[client_order_id] = resting
        self._book[client_order_id] = [venue_order_id, symbol, side, qty, _ZERO, _ACCEPTED, now]
        self._emit(OrderAccepted(client_order_id, venue_order_id, now))

    def cancel_order(self, client_order_id: str) -> None:
        resting = self._by_id.get(client_order_id)
        if resting is None:
            return  # Already terminal at the venue: nothing to cancel, as a broker would answer.
        self._remove(resting)
        self._emit(OrderCanceled(client_order_id, self._now(), "canceled by request"))

    # -- queries a broker also answers ----------------------------------------------------------

    def open_orders(self) -> list[VenueOrderState]:
        """The venue's open orders, as a broker's order book lists them."""
        return [self._state(cid) for cid in self._by_id]

    def query_order(self, client_order_id: str) -> VenueOrderState | None:
        """What became of `client_order_id` at this venue, or None if it never arrived."""
        return self._state(client_order_id) if client_order_id in self._book else None

    def _state(self, client_order_id: str) -> VenueOrderState:
        venue_id, symbol, side, qty, filled, status, ts = self._book[client_order_id]
        return VenueOrderState(client_order_id, venue_id, symbol, side, qty, filled, status, ts)

    def clock_ns(self) -> int:
        """The venue's notion of now (the clock it was given)."""
        return self._now()

    def executions(self) -> list[Fill]:
        """Every fill the venue made, oldest first: what a restarted node checks it has booked."""
        return list(self._executions)

    def open_order_ids(self) -> list[str]:
        return list(self._by_id)

    def has_working_orders(self) -> bool:
        return bool(self._by_id)

    def working_index(self) -> Mapping[str, object]:
        """A live, read-only view that is truthy while any order works: lets a feed loop skip
        the exchange on bars where it has nothing to do."""
        return self._by_id

    def set_price_source(self, last_bars: Mapping[str, Bar]) -> None:
        """Where to read the last price for checking a market order's cost (the feed's last bars)."""
        self._price_source = last_bars

    # -- market data ----------------------------------------------------------------------------

    def on_bar(self, bar: Bar) -> None:
        """Match working orders of the bar's symbol along its path, at the bar's open onwards."""
        book = self._resting.get(bar.symbol)
        if book:
            self._match_bar(bar, book)

    def on_bar_close(self, bar: Bar) -> None:
        """After strategies saw the bar: fill market orders at its close when `fill_at=close`."""
        if not self._fill_at_close:
            return
        book = self._resting.get(bar.symbol)
        if not book:
            return
        ts = bar.ts_event
        capacity = self._volume_capacity(bar)
        for resting in [r for r in book if r.order_type is _MARKET]:
            # A fill's listener may have canceled this one (a sibling) earlier in the loop.
            if resting.eligible_ts > ts or resting.client_order_id not in self._by_id:
                continue
            qty = resting.leaves if capacity is None else min(resting.leaves, capacity)
            if qty > _ZERO:
                self._fill(resting, qty, bar.close, ts, slip=True)
                if capacity is not None:
                    capacity -= qty
            if resting.tif is _IOC and resting.client_order_id in self._by_id:
                self._cancel_ioc(resting, ts)

    def on_tick(self, tick: Tick) -> None:
        self._last_price[tick.symbol] = tick.price
        book = self._resting.get(tick.symbol)
        if book:
            self._match_price(tick.symbol, book, tick.price, tick.price, tick.ts_event, None)

    def on_quote(self, quote: Quote) -> None:
        self._last_price[quote.symbol] = (quote.bid + quote.ask) / 2.0
        book = self._resting.get(quote.symbol)
        if book:
            self._match_price(
                quote.symbol,
                book,
                quote.ask,
                quote.bid,
                quote.ts_event,
                (quote.ask_size, quote.bid_size),
            )

    # -- internals ----------------------------------------------------------------------------

    def _refusal(self, order: Order, now: int) -> str:
        symbol, side, qty, stop_price = order.symbol, order.side, order.qty, order.stop_price
        instrument = self._instruments.get(symbol)
        if instrument is None:
            return f"unknown symbol {symbol}"
        if order.client_order_id in self._seen_ids:
            return f"duplicate client order id {order.client_order_id}"
        order_type = order.order_type
        limited = order_type in _LIMITED
        price = order.price if limited else None
        if price is None and limited:
            return f"{symbol}: {order_type.value} order needs a limit price"
        if stop_price is None and order_type in _STOPPED:
            return f"{symbol}: {order_type.value} order needs a stop price"
        check = instrument.validate_order(qty, price, side)
        if not check.ok:
            return check.reason
        if stop_price is not None:
            stop_check = instrument.validate_order(qty, stop_price, side)
            if not stop_check.ok:
                return stop_check.reason.replace("price", "stop price", 1)
        if self._enforce_session and self._is_open is not None and not self._is_open(now):
            return f"{symbol}: outside the trading session"
        position = self.positions.get(symbol, _ZERO)
        if side is _SELL and not self._allow_short:
            pending = sum(
                (r.leaves for r in self._resting.get(symbol, ()) if r.side is _SELL),
                Decimal(0),
            )
            if qty + pending > position:
                return f"{symbol}: insufficient position to sell {qty} (short selling off)"
        if side is _BUY and self._check_cash and position >= 0:
            reference = order.price or stop_price
            if reference is None:
                last = self._last_price.get(symbol)
                bar = self._price_source.get(symbol)
                if bar is not None:
                    last = bar.close
                reference = instrument.price_from_float(last) if last is not None else None
            if reference is not None:
                cost = qty * reference * instrument.multiplier
                cost += cost * self._cash_buffer
                if cost > self.cash:
                    return (
                        f"{symbol}: insufficient cash: needs {cost:.2f} {self.currency}, has {self.cash:.2f}"
                    )
        return ""

    def _expire_stale(self, book: list[Resting], ts: int) -> None:
        if not self._day_orders or not any(resting.tif is _DAY for resting in book):
            return
        session = None
        for resting in list(book):
            if resting.tif is _DAY:
                if session is None:
                    session = self._session_key(ts)
                if resting.session != session:
                    self._remove(resting)
                    self._emit(OrderExpired(resting.client_order_id, ts, "DAY order: session ended"))

    def _match_bar(self, bar: Bar, book: list[Resting]) -> None:
        ts = bar.ts_event
        self._expire_stale(book, ts)
        path = bar_path(bar.open, bar.high, bar.low, bar.close)
        hits: list[tuple[float, int, PathHit | None, Resting]] = []
        for resting in book:
            if resting.eligible_ts > ts:
                continue
            hit = match_on_bar(
                resting.order_type,
                resting.side,
                resting.limit,
                resting.stop,
                resting.triggered,
                path,
                through=self._through,
            )
            if hit is not None:
                hits.append((hit.position, resting.sequence, hit, resting))
            elif resting.tif is _IOC:
                hits.append((9.0, resting.sequence, None, resting))
        if not hits:
            return
        if len(hits) > 1:
            hits.sort(key=_path_order)
        capacity = self._volume_capacity(bar) if self._volume_share is not None else None
        for _, _, hit, resting in hits:
            if resting.client_order_id not in self._by_id:
                continue  # canceled by a fill earlier on this bar (an OCO sibling)
            if hit is None:
                self._cancel_ioc(resting, ts)
                continue
            if hit.triggered_only:
                if not resting.triggered:
                    resting.triggered = True
                    self._emit(OrderTriggered(resting.client_order_id, ts))
                continue
            if resting.order_type is _STOP_LIMIT and not resting.triggered:
                resting.triggered = True
                self._emit(OrderTriggered(resting.client_order_id, ts))
            elif resting.order_type is _STOP:
                resting.triggered = True  # what this bar cannot fill waits as a market order
            qty = resting.leaves if capacity is None else min(resting.leaves, capacity)
            if qty > _ZERO:
                self._fill(resting, qty, hit.price, ts, slip=resting.order_type in _SLIPPING)
                if capacity is not None:
                    capacity -= qty
            if resting.tif is _IOC and resting.client_order_id in self._by_id:
                self._cancel_ioc(resting, ts)

    def _volume_capacity(self, bar: Bar) -> Decimal | None:
        share = self._volume_share
        if share is None:
            return None
        instrument = self._instruments[bar.symbol]
        # In Decimal: float 0.29 * 100 is 28.999999999999996, which would round down a whole lot.
        return instrument.round_qty(Decimal(repr(bar.volume)) * Decimal(repr(share)))

    def _match_price(
        self,
        symbol: str,
        book: list[Resting],
        buy_price: float,
        sell_price: float,
        ts: int,
        sizes: tuple[float, float] | None,
    ) -> None:
        self._expire_stale(book, ts)
        for resting in sorted(book, key=lambda r: r.sequence):
            if resting.eligible_ts > ts or resting.client_order_id not in self._by_id:
                continue
            was_triggered = resting.triggered
            price, triggered = match_on_price(
                resting.order_type,
                resting.side,
                resting.limit,
                resting.stop,
                resting.triggered,
                buy_price,
                sell_price,
                through=self._through,
            )
            if triggered and not was_triggered:
                resting.triggered = True
                if resting.order_type is _STOP_LIMIT:
                    self._emit(OrderTriggered(resting.client_order_id, ts))
            if price is None:
                if resting.tif is _IOC:
                    self._cancel_ioc(resting, ts)
                continue
            qty = resting.leaves
            if sizes is not None:
                available = sizes[0] if resting.side is _BUY else sizes[1]
                qty = min(qty, self._instruments[symbol].round_qty(Decimal(repr(available))))
            if qty > _ZERO:
                slip = resting.order_type in (_MARKET, _STOP)
                self._fill(resting, qty, price, ts, slip=slip)
            if resting.tif is _IOC and resting.client_order_id in self._by_id:
                self._cancel_ioc(resting, ts)

    def _cancel_ioc(self, resting: Resting, ts: int) -> None:
        self._remove(resting)
        self._emit(OrderCanceled(resting.client_order_id, ts, "IOC: unfilled remainder canceled"))

    def _fill(self, resting: Resting, qty: Decimal, raw_price: float, ts: int, *, slip: bool) -> None:
        instrument = self._instruments[resting.symbol]
        if resting.limit_dec is not None and raw_price == resting.limit:
            price = resting.limit_dec
        elif resting.stop_dec is not None and raw_price == resting.stop:
            price = resting.stop_dec
        else:
            price = instrument.price_from_float(raw_price)
        if slip and self._slippage_ticks:
            offset = instrument.tick_size * self._slippage_ticks
            price = price + offset if resting.side is _BUY else max(price - offset, instrument.tick_size)
        fee = self._fees.fee_for_fill(instrument, resting.side, qty, price, resting.client_order_id)
        signed = qty if resting.side is _BUY else -qty
        self.cash -= signed * price * instrument.multiplier + fee
        self.positions[resting.symbol] = self.positions.get(resting.symbol, _ZERO) + signed
        resting.leaves -= qty
        if resting.leaves == _ZERO:
            self._remove(resting)
        self._execution_sequence += 1
        fill = Fill(  # positional, in field order (see `submit_order`)
            f"SIM-E{self._execution_sequence}",
            resting.client_order_id,
            resting.venue_order_id,
            resting.symbol,
            resting.side,
            qty,
            price,
            fee,
            ts,
            ts,
        )
        self._executions.append(fill)
        self._emit(OrderFilled(fill))

    def _remove(self, resting: Resting) -> None:
        if self._by_id.pop(resting.client_order_id, None) is not None and resting.tif is _DAY:
            self._day_orders -= 1
        self._fees.forget_order(resting.client_order_id)
        book = self._resting.get(resting.symbol)
        if book is not None and resting in book:
            book.remove(resting)
            if not book:
                del self._resting[resting.symbol]

    def _emit(self, event: OrderEvent) -> None:
        kind = type(event)
        if kind is OrderFilled:
            fill = event.fill  # type: ignore[union-attr]
            entry = self._book.get(fill.client_order_id)
            if entry is not None:
                entry[4] += fill.qty
                entry[5] = _FILLED if entry[4] == entry[3] else _PARTIALLY_FILLED
                entry[6] = fill.ts_event
        elif kind in _TERMINAL_STATUS:
            entry = self._book.get(event.client_order_id)
            if entry is not None:
                entry[5] = _TERMINAL_STATUS[kind]
                entry[6] = event.ts_event  # type: ignore[union-attr]
        if self._listener is not None:
            self._listener.on_order_event(event)
