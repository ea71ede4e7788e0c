"""The protection manager: runs every protection, keeps their active locks, reports each new one once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from quantdesk.errors import ConfigError
from quantdesk.risk.protections.base import SIDES, Protection, ProtectionConfig, ProtectionLock, TradeView
from quantdesk.risk.protections.cooldown_period import CooldownPeriod, CooldownPeriodConfig
from quantdesk.risk.protections.low_profit_pairs import LowProfitPairs, LowProfitPairsConfig
from quantdesk.risk.protections.max_drawdown import MaxDrawdown, MaxDrawdownConfig
from quantdesk.risk.protections.stoploss_guard import StoplossGuard, StoplossGuardConfig

_LockKey = tuple[int, str | None, str | None]


class ProtectionManager:
    """Runs protections in their configured order and holds the locks they raise until they expire.

    A lock lives in the manager until `now` reaches its `until`, even when the protection that
    raised it would no longer fire (its trades left the lookback). Each protection holds at
    most one lock per (symbol, side); a lock is new when it is the first one or ends later than
    the one held, and each new lock is handed out once by `new_locks()` so the caller can
    record and alert it once.
    """

    def __init__(self, protections: Sequence[Protection[Any]]) -> None:
        self._protections = tuple(protections)
        self._active: dict[_LockKey, ProtectionLock] = {}
        self._new: list[ProtectionLock] = []

    @property
    def protections(self) -> tuple[Protection[Any], ...]:
        return self._protections

    def global_lock(
        self,
        now: int,
        open_trades: Sequence[TradeView],
        closed_trades: Sequence[TradeView],
        *,
        side: str | None = None,
    ) -> ProtectionLock | None:
        """Evaluates the global protections; the longest active lock on all symbols, or None."""
        self._run(None, now, open_trades, closed_trades, side)
        return self._longest(now, None, side)

    def symbol_lock(
        self,
        symbol: str,
        now: int,
        open_trades: Sequence[TradeView],
        closed_trades: Sequence[TradeView],
        *,
        side: str | None = None,
    ) -> ProtectionLock | None:
        """Evaluates the per-symbol protections; the longest active lock on `symbol` itself, or None."""
        self._run(symbol, now, open_trades, closed_trades, side)
        return self._longest(now, symbol, side)

    def entry_lock(
        self,
        symbol: str,
        now: int,
        open_trades: Sequence[TradeView],
        closed_trades: Sequence[TradeView],
        *,
        side: str | None = None,
    ) -> ProtectionLock | None:
        """Both questions at once for an entry in `symbol` on `side`: the longest global or symbol lock."""
        self._run(None, now, open_trades, closed_trades, side)
        self._run(symbol, now, open_trades, closed_trades, side)
        if not self._active:
            return None  # nothing locked: the common answer, without building lists
        locks = [self._longest(now, None, side), self._longest(now, symbol, side)]
        return _longest_of([lock for lock in locks if lock is not None])

    def active_locks(self, now: int) -> list[ProtectionLock]:
        """Every lock still active at `now`, soonest to end first."""
        self._expire(now)
        locks = self._active.values()
        return sorted(locks, key=lambda lock: (lock.until, lock.symbol or "", lock.protection))

    def new_locks(self) -> list[ProtectionLock]:
        """The locks raised since the last call, in the order they were raised; each is returned once."""
        new, self._new = self._new, []
        return new

    def _run(
        self,
        symbol: str | None,
        now: int,
        open_trades: Sequence[TradeView],
        closed_trades: Sequence[TradeView],
        side: str | None,
    ) -> None:
        self._expire(now)
        for index, protection in enumerate(self._protections):
            # A per-side protection asked about no side in particular answers for each side.
            sides = SIDES if side is None and protection.only_per_side else (side,)
            for one_side in sides:
                lock = protection.check(symbol, now, open_trades, closed_trades, side=one_side)
                if lock is not None:
                    self._record((index, lock.symbol, lock.side), lock)

    def _record(self, key: _LockKey, lock: ProtectionLock) -> None:
        held = self._active.get(key)
        if held is not None and held.until >= lock.until:
            return
        self._active[key] = lock
        self._new.append(lock)

    def _expire(self, now: int) -> None:
        if not self._active:
            return
        for key in [key for key, lock in self._active.items() if not lock.is_active(now)]:
            del self._active[key]

    def _longest(self, now: int, symbol: str | None, side: str | None) -> ProtectionLock | None:
        return _longest_of(
            [
                lock
                for lock in self._active.values()
                if lock.symbol == symbol and lock.is_active(now) and lock.applies_to(side)
            ]
        )


def _longest_of(locks: Sequence[ProtectionLock]) -> ProtectionLock | None:
    # max() keeps the first of equal ends, so ties go to the earlier protection: deterministic.
    return max(locks, key=lambda lock: lock.until, default=None)


PROTECTIONS: Mapping[str, tuple[type[Protection[Any]], type[ProtectionConfig]]] = {
    "CooldownPeriod": (CooldownPeriod, CooldownPeriodConfig),
    "LowProfitPairs": (LowProfitPairs, LowProfitPairsConfig),
    "MaxDrawdown": (MaxDrawdown, MaxDrawdownConfig),
    "StoplossGuard": (StoplossGuard, StoplossGuardConfig),
}


def protections_from_config(
    configs: Sequence[Mapping[str, Any]], *, starting_balance: Decimal | None = None
) -> ProtectionManager:
    """Builds a manager from freqtrade-style entries, each naming its protection under "method".

    `starting_balance` (the account's capital) fills MaxDrawdown's field of that name when an
    entry leaves it out. Example::

        protections_from_config([
            {"method": "CooldownPeriod", "stop_duration_minutes": 5},
            {"method": "StoplossGuard", "lookback_minutes": 60, "trade_limit": 3},
        ])

    Raises ConfigError naming the entry and field for an unknown method or a bad value.
    """
    protections: list[Protection[Any]] = []
    for index, entry in enumerate(configs):
        where = f"protections[{index}]"
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{where}: expected a mapping with a 'method', got {type(entry).__name__}")
        method = entry.get("method")
        if not isinstance(method, str) or method not in PROTECTIONS:
            known = ", ".join(sorted(PROTECTIONS))
            raise ConfigError(f"{where}.method: unknown protection {method!r}; known: {known}")
        protection_type, config_type = PROTECTIONS[method]
        fields = {key: value for key, value in entry.items() if key != "method"}
        if method == "MaxDrawdown" and starting_balance is not None:
            fields.setdefault("starting_balance", starting_balance)
        try:
            config = config_type.model_validate(fields)
        except ValidationError as error:
            first = error.errors()[0]
            field = ".".join(str(part) for part in first["loc"])
            at = f"{where} ({method}).{field}" if field else f"{where} ({method})"
            raise ConfigError(f"{at}: {first['msg']}") from None
        protections.append(protection_type(config))
    return ProtectionManager(protections)
