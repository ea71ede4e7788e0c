"""Deterministic client ids: a plan id hashed from a trade plan, per-leg order ids that fit each venue."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal
from enum import StrEnum
from typing import Final

from quantdesk.errors import FatalError
from quantdesk.venues.base import VenueCapabilities

# Bump when the encoding below changes: ids from different versions must never
# be compared as if they named the same plan. v1 was base32(sha256(JSON of the fields)).
PLAN_ID_VERSION: Final = "quantdesk.plan/v2"
# 52 characters of [A-Z2-7], each carrying 5 bits of the hash: 260 bits.
PLAN_ID_LENGTH: Final = 52
# 2 base36 characters in the alphanumeric layout; the readable layout uses the same bound
# so that both layouts accept exactly the same attempts.
MAX_ATTEMPT: Final = 36**2 - 1
# Fewer hash characters than this (60 bits) would make a collision plausible
# within a desk's lifetime, so a venue that leaves less room is refused.
MIN_PLAN_CHARS: Final = 12

_ALPHANUMERIC_PREFIX: Final = "Q"
_READABLE_PREFIX: Final = "qd-"
_BASE36: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_BASE32: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
# Byte b -> the base32 letter of its low 5 bits: one uniformly distributed letter per hash byte.
_LETTER_OF_BYTE: Final = bytes([ord(_BASE32[b % 32]) for b in range(256)])
_PERSON: Final = b"quantdesk.plan"
# Decimals are written exactly whatever their digits: normalize() in the default context
# would round them to 28 significant digits.
_EXACT: Final = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)


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


_LEG_CODES: Final = {Leg.ENTRY: "E", Leg.STOP: "S", Leg.TP1: "1", Leg.TP2: "2", Leg.EXIT: "X"}
_LONGEST_LEG: Final = max(len(leg.value) for leg in Leg)
_READABLE_LEG: Final = {leg: leg.value.lower() for leg in Leg}
# What the readable layout adds around the plan part, for the longest leg and attempt.
_READABLE_OVERHEAD: Final = len(_READABLE_PREFIX) + len(f"-{'x' * _LONGEST_LEG}-{MAX_ATTEMPT}")


class DuplicateClientId(FatalError):
    """A client id that was already issued: sending it again could double an order."""


class ClientIdsExhausted(FatalError):
    """Every attempt number of a plan's leg is used: a runaway re-placement loop, not a market event."""


def _canonical_decimal(value: Decimal, field: str) -> str:
    """Exact canonical text of a Decimal: 1.50, 1.5 and 15E-1 give the same string."""
    if not value.is_finite():
        raise ValueError(f"plan field {field} must be a finite price or quantity, got {value}")
    if not value:
        return "0"  # -0 is 0
    return str(value.normalize(_EXACT))


def _optional_decimal(value: Decimal | None, field: str) -> str:
    # "-" is never the text of a Decimal, so a market entry (None) and any price differ.
    return "-" if value is None else _canonical_decimal(value, field)


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
    """The id of a trade plan: 52 characters of [A-Z2-7] from a BLAKE2b hash of its defining fields.

    The same plan always gets the same id, so a restart that rebuilds the plan from
    the same bar and config finds its orders instead of sending new ones. Decimals
    are compared by value (`1.50` and `1.5` are one plan); `entry=None` (market) and
    `entry=0` differ; target order matters (TP1 before TP2). Non-finite numbers and
    sides other than BUY/SELL raise `ValueError`: they are bugs upstream of here.

    The fields are written as one line in which every free-text field carries its
    length, so no two field lists share a text; the line is hashed with BLAKE2b
    (52-byte digest, personalised for plan ids) and each digest byte gives one letter
    of the id from its low five bits. That costs about a tenth of sha256 over JSON
    with base32 (v1), and every prefix keeps five bits of hash per character, which
    is what the venue layouts of `order_client_id` cut to.
    """
    if side not in ("BUY", "SELL"):
        raise ValueError(f"plan field side must be BUY or SELL, got {side!r}")
    targets_text = ",".join([_canonical_decimal(target, f"targets[{i}]") for i, target in enumerate(targets)])
    line = (
        f"{PLAN_ID_VERSION}|{len(strategy)}:{strategy}|{len(symbol)}:{symbol}|{side}|"
        f"{_optional_decimal(entry, 'entry')}|{_optional_decimal(stop, 'stop')}|"
        f"{len(targets)}:{targets_text}|{_canonical_decimal(qty, 'qty')}|{int(signal_ts)}|"
        f"{len(config_sha)}:{config_sha}"
    )
    digest = hashlib.blake2b(
        line.encode("utf-8", "surrogatepass"), digest_size=PLAN_ID_LENGTH, person=_PERSON
    )
    return digest.digest().translate(_LETTER_OF_BYTE).decode("ascii")


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
    if not 0 <= attempt <= MAX_ATTEMPT:
        raise ValueError(f"attempt must be in 0..{MAX_ATTEMPT}, got {attempt}")
    head, attempts = _id_layout(plan_id, leg, capabilities)
    return head + attempts[attempt]


# Attempt number -> its text in each layout.
_ALPHANUMERIC_ATTEMPTS: Final = tuple(a + b for a in _BASE36 for b in _BASE36)
_READABLE_ATTEMPTS: Final = tuple(str(attempt) for attempt in range(MAX_ATTEMPT + 1))
_PLAN_PART_CACHE_SIZE: Final = 1_024


def _id_layout(plan_id: str, leg: Leg, capabilities: VenueCapabilities) -> tuple[str, tuple[str, ...]]:
    """What every attempt's id of this leg starts with, and the texts of the attempts."""
    return _leg_layout(_checked_plan_part(plan_id, capabilities), leg, capabilities)


def _checked_plan_part(plan_id: str, capabilities: VenueCapabilities) -> str:
    """The part of `plan_id` the venue's ids keep, after checking it is a plan id."""
    # `[A-Z2-7]+`: not empty, and nothing left once every base32 letter is stripped (a regex
    # match costs several times more, and every order id asks).
    if not plan_id or plan_id.strip(_BASE32):
        raise ValueError(f"plan id must be base32 [A-Z2-7]+ from plan_client_id, got {plan_id!r}")
    limit = capabilities.max_client_id_length
    if capabilities.client_id_alphanumeric:
        return _plan_part(plan_id, limit - len(_ALPHANUMERIC_PREFIX) - 1 - 2, capabilities)
    # Room is computed for the longest leg name and attempt so that the plan part's
    # length depends on the venue alone, never on the leg or attempt.
    return _plan_part(plan_id, limit - _READABLE_OVERHEAD, capabilities)


def _leg_layout(plan_part: str, leg: Leg, capabilities: VenueCapabilities) -> tuple[str, tuple[str, ...]]:
    if capabilities.client_id_alphanumeric:
        return f"{_ALPHANUMERIC_PREFIX}{plan_part}{_LEG_CODES[leg]}", _ALPHANUMERIC_ATTEMPTS
    return f"{_READABLE_PREFIX}{plan_part}-{_READABLE_LEG[leg]}-", _READABLE_ATTEMPTS


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
        # Plan id -> the part of it the venue's ids keep: each order of a plan asks again.
        self._plan_parts: dict[str, str] = {}
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
        head, attempts = _id_layout(plan_id, leg, self._capabilities)
        issued = self._issued
        for attempt, text in enumerate(attempts):
            if head + text not in issued:
                return attempt
        raise ClientIdsExhausted(f"plan {plan_id} leg {leg.value}: all {MAX_ATTEMPT + 1} attempts are used")

    def issue(self, plan_id: str, leg: Leg) -> str:
        """Reserve and return the id of a new order for this plan's leg (its next unused attempt)."""
        plan_part = self._plan_parts.get(plan_id)
        if plan_part is None:
            if len(self._plan_parts) >= _PLAN_PART_CACHE_SIZE:
                self._plan_parts.clear()
            plan_part = self._plan_parts[plan_id] = _checked_plan_part(plan_id, self._capabilities)
        head, attempts = _leg_layout(plan_part, leg, self._capabilities)
        issued = self._issued
        for text in attempts:
            client_id = head + text
            if client_id not in issued:
                issued.add(client_id)
                return client_id
        raise ClientIdsExhausted(f"plan {plan_id} leg {leg.value}: all {MAX_ATTEMPT + 1} attempts are used")
