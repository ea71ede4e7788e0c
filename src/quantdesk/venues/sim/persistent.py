"""A simulated exchange whose account and order book survive the process that drives it.

A broker keeps its state when the trading node dies; a paper account should too,
and crash tests need a venue that remembers what it was sent. This wrapper saves
the exchange's state to a file after every change, atomically, *before* the node
hears of the change: like a broker, the venue commits first and answers second,
so a node killed mid-answer finds, on restart, what the venue really did.
"""

from __future__ import annotations

import os
import pickle
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from quantdesk.errors import DataError
from quantdesk.model import Bar, Fill, Order, OrderEvent, OrderFilled, Quote, Tick
from quantdesk.venues.base import VenueCapabilities, VenueListener, VenueOrderState
from quantdesk.venues.sim.exchange import SimulatedExchange

_FORMAT = 1


class PersistentExchange:
    """Wraps a `SimulatedExchange`; `path` holds its state between processes.

    Events are delivered in the order the venue produced them, after the state
    that produced them is on disk. `submitted` lists every client order id ever
    sent, repeats included (the crash tests' "never sent twice" evidence);
    `fills` lists every execution, and `last_ts` the last market data time seen.

    Example::

        venue = PersistentExchange(SimulatedExchange(instruments, cash=cash), Path("var/venue.pickle"))
    """

    def __init__(self, exchange: SimulatedExchange, path: Path) -> None:
        self._exchange = exchange
        self.path = path
        self.submitted: list[str] = []
        self.fills: list[tuple[str, str, str, str]] = []
        self.last_ts: int | None = None
        # When this account was opened (venue clock): older store rows are not its own.
        self.created_ts: int | None = None
        self._events: deque[OrderEvent] = deque()
        self._listener: VenueListener | None = None
        self._delivering = False
        self.restored = self._load()
        if self.created_ts is None:
            # Opened now, before anything is sent: an order stamped a moment before the first
            # save must still count as this account's.
            self.created_ts = exchange.clock_ns()
        exchange.connect(self)

    # -- the Venue interface --------------------------------------------------------------------

    @property
    def capabilities(self) -> VenueCapabilities:
        return self._exchange.capabilities

    def connect(self, listener: VenueListener) -> None:
        self._listener = listener

    def submit_order(self, order: Order) -> None:
        self.submitted.append(order.client_order_id)
        self._exchange.submit_order(order)
        self._commit()

    def cancel_order(self, client_order_id: str) -> None:
        self._exchange.cancel_order(client_order_id)
        self._commit()

    def open_orders(self) -> list[VenueOrderState]:
        return self._exchange.open_orders()

    def query_order(self, client_order_id: str) -> VenueOrderState | None:
        return self._exchange.query_order(client_order_id)

    def executions(self) -> list[Fill]:
        return self._exchange.executions()

    @property
    def positions(self) -> dict[str, Any]:
        return self._exchange.positions

    @property
    def cash(self) -> Any:
        return self._exchange.cash

    def set_price_source(self, last_bars: Mapping[str, Bar]) -> None:
        self._exchange.set_price_source(last_bars)

    def working_index(self) -> Mapping[str, object]:
        return self._exchange.working_index()

    # -- market data ----------------------------------------------------------------------------

    def on_bar(self, bar: Bar) -> None:
        self._market(self._exchange.on_bar, bar, bar.ts_event)

    def on_bar_close(self, bar: Bar) -> None:
        self._market(self._exchange.on_bar_close, bar, bar.ts_event)

    def on_tick(self, tick: Tick) -> None:
        self._market(self._exchange.on_tick, tick, tick.ts_event)

    def on_quote(self, quote: Quote) -> None:
        self._market(self._exchange.on_quote, quote, quote.ts_event)

    def _market(self, handler: Callable[[Any], None], data: Any, ts: int) -> None:
        handler(data)
        if self.last_ts is None or ts > self.last_ts:
            self.last_ts = ts
        if self._events:
            self._commit()

    # -- the exchange's listener: queue, save, then answer -----------------------------------------

    def on_order_event(self, event: OrderEvent) -> None:
        if type(event) is OrderFilled:
            fill = event.fill
            self.fills.append((fill.execution_id, fill.client_order_id, str(fill.qty), str(fill.price)))
        self._events.append(event)

    def _commit(self) -> None:
        self.save()
        if self._delivering:
            return  # the outer delivery loop answers these in order
        self._delivering = True
        try:
            while self._events:
                self._answer(self._events.popleft())
        finally:
            self._delivering = False

    def _answer(self, event: OrderEvent) -> None:
        if self._listener is not None:
            self._listener.on_order_event(event)

    # -- the state file -------------------------------------------------------------------------

    def save(self) -> None:
        """Write the state next to `path` and rename it over `path` (atomic on POSIX)."""
        if self.created_ts is None:
            self.created_ts = self._exchange.clock_ns()
        state = self._exchange.state()
        blob = pickle.dumps(
            {
                "format": _FORMAT,
                "exchange": state,
                "submitted": self.submitted,
                "fills": self.fills,
                "last_ts": self.last_ts,
                "created_ts": self.created_ts,
            },
            protocol=pickle.HIGHEST_PROTOCOL,
        )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(self.path.suffix + ".tmp")
        with open(temporary, "wb") as handle:
            handle.write(blob)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.path)

    def _load(self) -> bool:
        if not self.path.exists():
            return False
        try:
            # The file is the node's own, written by `save` above; never load one from elsewhere.
            saved = pickle.loads(self.path.read_bytes())
        except (OSError, pickle.UnpicklingError, EOFError) as error:
            raise DataError(f"{self.path}: cannot read the venue state: {error}") from None
        if not isinstance(saved, dict) or saved.get("format") != _FORMAT:
            raise DataError(f"{self.path}: not a venue state file of format {_FORMAT}")
        self._exchange.restore(saved["exchange"])
        self.submitted = list(saved["submitted"])
        self.fills = list(saved["fills"])
        self.last_ts = saved["last_ts"]
        self.created_ts = saved.get("created_ts")
        return True
