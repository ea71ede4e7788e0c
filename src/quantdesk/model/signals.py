"""Signals: what a strategy wants (enter long/short with stop and targets, or exit), never how.

Structs here are declared `gc=False`: they hold only scalars, strings and immutable
containers, so they cannot be part of a reference cycle, and untracked they cost the
cyclic collector nothing (fewer and shorter pauses on the hot path).
"""

from __future__ import annotations

from decimal import Decimal
from types import MappingProxyType
from typing import Any

import msgspec

from quantdesk.model.enums import Side

_EMPTY: MappingProxyType[str, float] = MappingProxyType({})


class Signal(msgspec.Struct, frozen=True, gc=False):
    """An idea to open a position. Ranking, risk and sizing decide whether and how much.

    `entry` None means "at market"; a price means a limit entry. `qty` None leaves
    the size to the sizer. `ts` is the time of the bar or tick that produced it.
    """

    strategy: str
    symbol: str
    side: Side
    ts: int
    entry: Decimal | None = None
    stop: Decimal | None = None
    targets: tuple[Decimal, ...] = ()
    qty: Decimal | None = None
    features: MappingProxyType[str, float] = msgspec.field(default_factory=lambda: _EMPTY)
    rationale: str = ""

    @staticmethod
    def freeze_features(features: dict[str, Any] | None) -> MappingProxyType[str, float]:
        if not features:
            return _EMPTY
        return MappingProxyType({str(k): float(v) for k, v in sorted(features.items())})


class ExitSignal(msgspec.Struct, frozen=True, gc=False):
    """A wish to close the strategy's position in a symbol (and cancel its working exits)."""

    strategy: str
    symbol: str
    ts: int
    reason: str = ""
