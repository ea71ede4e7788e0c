"""Deterministic client ids: a plan id hashed from a trade plan, per-leg order ids that fit each venue."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterable
from decimal import Decimal
from enum import StrEnum

from quantdesk.errors import FatalError
from quantdesk.venues.base import VenueCapabilities

# Bump when the encoding below changes: ids from different versions must never
# be compared as if they named the same plan.
PLAN_ID_VERSION = "quantdesk.plan/v1"
# sha256 is 256 bits; unpadded base32 needs 52 characters (the last one carries one bit).
PLAN_ID_LENGTH = 52
# 2 base36 characters in the alphanumeric layout; the readable layout uses the same bound
# so that both layouts accept exactly the same attempts.
MAX_ATTEMPT = 36**2 - 1
# Fewer hash characters than this (60 bits) would make a collision plausible
# within a desk's lifetime, so a venue that leaves less room is refused.
MIN_PLAN_CHARS = 12

_ALPHANUMERIC_PREFIX = "Q"
_READABLE_PREFIX = "qd-"
_BASE36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_PLAN_ID = re.compile(r"[A-Z2-7]+")


class Leg(StrEnum):
    """Which order of a trade plan an id names: the entry, its stop, its targets, or an exit/flatten."""

    ENTRY = "ENTRY"
    STOP = "STOP"
    TP1 = "TP1"
    TP2 = "TP2"
    EXIT = "EXIT"

    @property
    def code(self) -> str:
        """One character for layouts with no room for the name."""
        return _LEG_CODES[self]


_LEG_CODES = {Leg.ENTRY: "E", Leg.STOP: "S", Leg.TP1: "1", Leg.TP2: "2", Leg.EXIT: "X"}
_LONGEST_LEG = max(len(leg.value) for leg in Leg)


class DuplicateClientId(FatalError):
    """A client id that was already issued: sending it again could double an order."""


class ClientIdsExhausted(FatalError):
    """Every attempt number of a plan's leg is used: a runaway re-placement loop, not a market event."""


def _canonical_decimal(value: Decimal, field: str) -> str:
    """Exact canonical text of a Decimal: 1.50, 1.5 and 15E-1 give the same string.

    `Decimal.normalize()` would round to the context precision (28 digits), so
    trailing zeros are stripped by hand instead.
    """
    if not value.is_finite():
        raise ValueError(f"plan field {field} must be a finite price or quantity, got {value}")
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite, checked above
    if not any(digits):
        return "0"
    trimmed = list(digits)
    while trimmed[-1] == 0:
        trimmed.pop()
        exponent += 1
    return f"{'-' if sign else ''}{''.join(map(str, trimmed))}e{exponent}"


def _optional_decimal(value: Decimal | None, field: str) -> str | None:
    return None if value is None else _canonical_decimal(value, field)


def plan_client_id(
    *,
    strategy: str,
    symbol: str,
    side: str,
    entry: Decimal | None,
    stop: Decimal | None,
    targets: tuple[Decimal, ...],
    qty: Decimal,
    signal_ts: int,
    config_sha: str,
) -> str:
    """The id of a trade plan: 52 characters of [A-Z2-7], the base32 sha256 of its defining fields.

    The same plan always gets the same id, so a restart that rebuilds the plan from
    the same bar and config finds its orders instead of sending new ones. Decimals
    are compared by value (`1.50` and `1.5` are one plan); `entry=None` (market) and
    `entry=0` differ; target order matters (TP1 before TP2). Non-finite numbers and
    sides other than BUY/SELL raise `ValueError`: they are bugs upstream of here.
    """
    if side not in ("BUY", "SELL"):
        raise ValueError(f"plan field side must be BUY or SELL, got {side!r}")
    fields = [
        PLAN_ID_VERSION,
        strategy,
        symbol,
        str(side),
        _optional_decimal(entry, "entry"),
        _optional_decimal(stop, "stop"),
        [_canonical_decimal(target, f"targets[{i}]") for i, target in enumerate(targets)],
        _canonical_decimal(qty, "qty"),
        int(signal_ts),
        config_sha,
    ]
    # JSON of a list quotes and escapes every string, so no two field lists share an encoding.
    encoded = json.dumps(fields, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    digest = hashlib.sha256(encoded).digest()
    return base64.b32encode(digest).decode("ascii").rstrip("=")


def _to_base36(number: int, width: int) -> str:
    text = ""
    for _ in range(width):
        number, remainder = divmod(number, 36)
        text = _BASE36[remainder] + text
    return text


def order_client_id(plan_id: str, leg: Leg, *, attempt: int = 0, capabilities: VenueCapabilities) -> str:
    """The client id of one order of a plan, shaped to the venue's limits.

    Alphanumeric venues (Kite's tag: 20 characters, no separators) get a fixed layout,
    ``Q`` + the first k plan characters + 1 leg code + 2 base36 attempt characters,
    with k = min(52, max_length - 4): 16 on Kite, e.g. ``QABCDEFGHIJKLMNOPE00``.
    The ``Q`` marks the order as ours in a broker order book shared with manual trading.
    Keeping 16 base32 characters keeps 80 bits of the hash: among n plans the chance
    that two share an id is about n²/2**81 (1e6 plans: 4e-13); the registry refuses
    a repeat even then.

    Other venues (Alpaca: 128 characters) get ``qd-<plan>-<leg>-<attempt>``, e.g.
    ``qd-ABC…XYZ-tp1-0``, with the whole plan id when it fits.

    `attempt` (0..1295) numbers new orders for the same leg (a stop re-placed after a
    resize is a new order and needs a new id). Distinct legs or attempts always give
    distinct ids; equal inputs always give the same id.
    """
    if not _PLAN_ID.fullmatch(plan_id):
        raise ValueError(f"plan id must be base32 [A-Z2-7]+ from plan_client_id, got {plan_id!r}")
    if not 0 <= attempt <= MAX_ATTEMPT:
        raise ValueError(f"attempt must be in 0..{MAX_ATTEMPT}, got {attempt}")
    limit = capabilities.max_client_id_length
    if capabilities.client_id_alphanumeric:
        room = limit - len(_ALPHANUMERIC_PREFIX) - 1 - 2
        plan_part = _plan_part(plan_id, room, capabilities)
        return f"{_ALPHANUMERIC_PREFIX}{plan_part}{leg.code}{_to_base36(attempt, 2)}"
    # Room is computed for the longest leg name and attempt so that the plan part's
    # length depends on the venue alone, never on the leg or attempt.
    room = limit - len(_READABLE_PREFIX) - len(f"-{'x' * _LONGEST_LEG}-{MAX_ATTEMPT}")
    plan_part = _plan_part(plan_id, room, capabilities)
    return f"{_READABLE_PREFIX}{plan_part}-{leg.value.lower()}-{attempt}"


def _plan_part(plan_id: str, room: int, capabilities: VenueCapabilities) -> str:
    keep = min(len(plan_id), room)
    if keep < MIN_PLAN_CHARS:
        raise ValueError(
            f"venue {capabilities.name} allows {capabilities.max_client_id_length}-character client ids, "
            f"too few to keep {MIN_PLAN_CHARS} characters of the plan hash"
        )
    return plan_id[:keep]


class ClientIdRegistry:
    """Every client id issued for one venue account: none is ever handed out twice.

    Built empty for a fresh process, or from the ids a store recorded, so a restart
    never reissues an id that may already sit in the broker's order book.
    """

    def __init__(self, capabilities: VenueCapabilities, issued: Iterable[str] = ()) -> None:
        self._capabilities = capabilities
        self._issued: set[str] = set()
        self.preload(issued)

    @property
    def capabilities(self) -> VenueCapabilities:
        return self._capabilities

    def preload(self, issued: Iterable[str]) -> None:
        """Remember ids issued before (by an earlier run); repeats among them are harmless."""
        self._issued.update(issued)

    def __contains__(self, client_id: object) -> bool:
        return client_id in self._issued

    def __len__(self) -> int:
        return len(self._issued)

    def reserve(self, client_id: str) -> None:
        """Claim `client_id` before it is sent; raises `DuplicateClientId` if it was ever claimed."""
        if client_id in self._issued:
            raise DuplicateClientId(f"client id {client_id} was already issued; refusing to send it again")
        self._issued.add(client_id)

    def next_attempt(self, plan_id: str, leg: Leg) -> int:
        """The lowest attempt number whose id for this plan and leg was never issued."""
        for attempt in range(MAX_ATTEMPT + 1):
            candidate = order_client_id(plan_id, leg, attempt=attempt, capabilities=self._capabilities)
            if candidate not in self._issued:
                return attempt
        raise ClientIdsExhausted(f"plan {plan_id} leg {leg.value}: all {MAX_ATTEMPT + 1} attempts are used")

    def issue(self, plan_id: str, leg: Leg) -> str:
        """Reserve and return the id of a new order for this plan's leg (its next unused attempt)."""
        client_id = order_client_id(
            plan_id, leg, attempt=self.next_attempt(plan_id, leg), capabilities=self._capabilities
        )
        self.reserve(client_id)
        return client_id
