"""The store writer's part on the engine's thread: each bus event appended to a buffer, as it is.

Compiled (see `quantdesk._compiled`): with persistence on, these handlers run inside every
decision's tick-to-decision time, several per order. Everything else about writing (batches,
transactions, retries) stays in `store.writer`, off the hot path.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

import msgspec

from quantdesk.engine.messages import DecisionRecord, FlattenCompleted, SignalBlocked
from quantdesk.model import Fill, Order, Signal
from quantdesk.risk.kill_switch import StateChange

if TYPE_CHECKING:
    from quantdesk.execution import OrderManager

# Kinds of buffered records: a tag and the immutable data, nothing formatted on the hot path.
SIGNAL: Final = 0
DECISION: Final = 1
ORDER: Final = 2
FILL: Final = 3
STATE: Final = 4
REFUSED: Final = 5
FLATTEN: Final = 6
Record = tuple[Any, ...]
# What the buffer holds: the event itself for the kinds in KIND_OF (an Order: its copy), or a
# tuple: (FILL, fill, the order's copy) from `on_fill`, or a Record put there by the writer (an
# outbox row buffered while the store is down, records put back after a failed write). What
# `Capture.drain` gives out: the event itself, or a Record (an order's first sighting with its
# identity); a bare Order there is a repeat. The event alone is one allocation less per event
# on the engine's thread, and none the garbage collector tracks (each is a `gc=False` Struct; a
# tuple is tracked): with a tuple per event, the writer made young collections (3-4 ms each on
# the bench) come 9 times in 40,000 bars against 4 without it. A fill's entry is a tuple (its
# order's copy rides with it), one per fill, not per event: the capture alone still made 4
# (2026-12-05). `as_record` gives the tuple back to whoever takes the entry.
Entry = Any

KIND_OF: Final[dict[type, int]] = {
    Signal: SIGNAL,
    DecisionRecord: DECISION,
    Order: ORDER,
    Fill: FILL,
    StateChange: STATE,
    SignalBlocked: REFUSED,
    FlattenCompleted: FLATTEN,
}

_copy: Final = msgspec.structs.replace


def as_record(entry: Entry) -> Record:
    """The record a buffered entry stands for: (kind, event), or (ORDER, order, strategy, plan_id)."""
    if isinstance(entry, tuple):
        return entry
    kind = KIND_OF[type(entry)]
    if kind == ORDER:
        return (ORDER, entry, None, None)
    return (kind, entry)


def kind_of(entry: Entry) -> int:
    """The kind of a buffered entry, without building its record."""
    if isinstance(entry, tuple):
        return int(entry[0])
    return KIND_OF[type(entry)]


def event_of(entry: Entry) -> Any:
    """The event a buffered entry holds (a signal, a decision, an order's copy...)."""
    if isinstance(entry, tuple):
        return entry[1]
    return entry


def plan_of_client_id(client_order_id: str) -> str:
    """The plan part of a client order id (`order_client_id`'s layouts), or '' for a foreign id.

    The whole plan id on venues with room for it (the simulated venue, Alpaca); its first
    characters on alphanumeric venues (Kite: 16).
    """
    if client_order_id.startswith("qd-"):
        return client_order_id.split("-")[1]
    if client_order_id.startswith("Q") and len(client_order_id) > 4:
        return client_order_id[1:-3]
    return ""


class Capture:
    """The buffer the engine's thread appends to, the handlers that append, and `drain`, which
    takes entries out for writing.

    The handlers do the least they can: each event, or an order's copy, goes in as it is. Which
    sighting of an order is its first, and whose order it is (strategy, plan), is worked out by
    `drain`, off the tick: asked in each handler, it cost ~0.9 us of a 32 us tick (set and map
    lookups, a tuple; docs/PERFORMANCE.md, "Late morning of 2026-12-05"), two fifths of the
    capture's cost, for an answer nobody needs before writing.

    `on_full` is called once when the buffer (plus `elsewhere`: what a writer process holds)
    reaches `max_buffer`, checked on every decision, order, fill and refusal (a signal goes
    straight in: its decision follows and checks); the writer clears `overflowed` when it has
    drained. The writer's thread drains (under its own lock) and updates `unwritten_plans`:
    single deque and set operations, each atomic under the interpreter lock.
    """

    def __init__(self, max_buffer: int, on_full: Callable[[], None]) -> None:
        self.buffer: deque[Entry] = deque()
        self.max_buffer = max_buffer
        self.elsewhere = 0
        self.overflowed = False
        # Orders `drain` has given out: the next sighting of one is a repeat. Owned by the drainer.
        self.seen_orders: set[str] = set()
        # Plans decided but not yet written: their entry's outbox write brings them first.
        self.unwritten_plans: set[str] = set()
        self.orders: OrderManager | None = None
        self._on_full = on_full
        # The deque's own append: no call of ours on the tick for the commonest event.
        self.on_signal: Callable[[Signal], None] = self.buffer.append

    def append(self, entry: Entry) -> None:
        buffer = self.buffer
        buffer.append(entry)
        if len(buffer) + self.elsewhere >= self.max_buffer and not self.overflowed:
            self.overflowed = True
            self._on_full()

    def on_decision(self, record: DecisionRecord) -> None:
        if record.approved and record.plan_id:
            self.unwritten_plans.add(record.plan_id)
        self.append(record)

    def on_refused(self, refused: SignalBlocked) -> None:
        self.append(refused)

    def on_flatten(self, done: FlattenCompleted) -> None:
        self.append(done)

    def on_state_change(self, change: StateChange) -> None:
        self.append(change)

    def on_order(self, order: Order) -> None:
        # A copy: the order mutates after this, the record must not.
        self.append(_copy(order))

    def on_fill(self, fill: Fill) -> None:
        orders = self.orders
        order = orders.orders.get(fill.client_order_id) if orders is not None else None
        if order is None:
            self.append(fill)
        else:
            # The engine publishes a fill before the order update it causes: should the store
            # not have the order yet (never published before), `drain` writes this copy first.
            self.append((FILL, fill, _copy(order)))

    def drain(self, count: int) -> list[Entry]:
        """Take up to `count` entries, oldest first, as they are to be written: an order's
        first sighting as (ORDER, order, strategy, plan_id), a later one bare; a fill with its
        order's copy in front if the order was not seen before. May return more than `count`.

        Identity comes from the order manager's maps, which keep every order of the session:
        whoever prunes them must do so only after the store has drained the order.
        """
        popleft = self.buffer.popleft
        out: list[Entry] = []
        for _ in range(min(count, len(self.buffer))):
            entry = popleft()
            kind = type(entry)
            if kind is Order:
                entry = self._sighted(entry)
            elif kind is tuple:
                if entry[0] == ORDER:  # a first sighting already (the outbox, a record put back)
                    self.seen_orders.add(entry[1].client_order_id)
                elif entry[0] == FILL and len(entry) == 3:
                    order = self._sighted(entry[2])
                    if order is not entry[2]:  # its first sighting: the order goes in before its fill
                        out.append(order)
                    entry = entry[1]
            out.append(entry)
        return out

    def _sighted(self, order: Order) -> Entry:
        """`order` as it is to be written: bare if seen before, else with its identity."""
        client_order_id = order.client_order_id
        if client_order_id in self.seen_orders:
            return order
        self.seen_orders.add(client_order_id)
        strategy, plan_id = self.identity(client_order_id)
        return (ORDER, order, strategy, plan_id)

    def identity(self, client_order_id: str) -> tuple[str, str]:
        """The strategy and plan id of an order."""
        orders = self.orders
        if orders is None:
            return "", plan_of_client_id(client_order_id)
        group = orders.group_of(client_order_id)
        plan_id = group.plan_id if group is not None else plan_of_client_id(client_order_id)
        return orders.strategy_of(client_order_id), plan_id
