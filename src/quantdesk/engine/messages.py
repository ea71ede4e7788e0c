"""What the engine and its pipeline publish on the bus: decision records, blocked signals, flattens.

Frozen msgspec Structs, kept apart from the compiled engine modules: mypyc drops a
class's keyword arguments (frozen, gc=False) when it compiles a Struct's definition.
They are `gc=False`: holding only scalars, strings and immutable containers they cannot
be part of a reference cycle, and untracked they cost the cyclic collector nothing.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from quantdesk.model import Signal


class DecisionRecord(msgspec.Struct, frozen=True, gc=False):
    """What happened to one signal: its plan id, approval or block reasons, and the quantity.

    One is built per signal (see `risk.messages` on why Structs).
    """

    plan_id: str
    signal: Signal
    approved: bool
    reasons: tuple[str, ...]
    details: tuple[str, ...]
    qty: Decimal
    risk_amount: Decimal
    risk_pct: Decimal
    ts: int


class SignalBlocked(msgspec.Struct, frozen=True, gc=False):
    """A malformed signal refused before it reached the pipeline (published on the bus)."""

    signal: Signal
    reason: str


class FlattenReport(msgspec.Struct, frozen=True, gc=False):
    """What a flatten did and how long it took to issue (monotonic ns)."""

    canceled: int
    closing_orders: int
    duration_ns: int


class FlattenCompleted(msgspec.Struct, frozen=True, gc=False):
    """A flatten finished: every order it cancelled is gone and every position it closed is flat.

    `ts` is when it was asked (clock time); `duration_ns` is wall time (monotonic) from the
    request to the last answer — what the burn-in's "every flatten within 2 s" measures.
    """

    ts: int
    actor: str
    reason: str
    canceled: int
    closing_orders: int
    duration_ns: int
