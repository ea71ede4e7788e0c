"""Trading state: pause, kill switch and mode — PAPER by default, LIVE only with the typed phrase."""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from quantdesk.errors import UserError
from quantdesk.risk.messages import Mode

LIVE_CONFIRMATION = "CONFIRM LIVE TRADING"


class ModeChangeRefused(UserError):
    """A switch to LIVE without the exact confirmation phrase."""


class StateChange(msgspec.Struct, frozen=True, gc=False):
    """One change of trading state, for the audit trail: what, who, why, when (UTC ns)."""

    action: str
    actor: str
    reason: str
    ts: int


class TradingState:
    """Whether new entries may start, and in which mode.

    `paused` stops new entries while exits are still managed; the kill switch is a
    pause that only an explicit `resume` lifts. The mode starts as PAPER in every
    process: LIVE is never persisted, so a restart always falls back to PAPER.
    """

    def __init__(self, clock_ns: Callable[[], int], mode: Mode = Mode.PAPER) -> None:
        if mode is Mode.LIVE:
            raise ModeChangeRefused("LIVE cannot be a starting mode: switch with the confirmation phrase")
        self._now = clock_ns
        self.mode: Mode = mode
        self.paused = False
        self.kill_switch = False
        self.changes: list[StateChange] = []
        self._listeners: list[Callable[[StateChange], None]] = []

    def subscribe(self, listener: Callable[[StateChange], None]) -> None:
        self._listeners.append(listener)

    @property
    def entries_allowed(self) -> bool:
        return not (self.paused or self.kill_switch)

    def pause(self, reason: str = "", actor: str = "system") -> None:
        self.paused = True
        self._record("pause", actor, reason)

    def resume(self, reason: str = "", actor: str = "system") -> None:
        self.paused = False
        self.kill_switch = False
        self._record("resume", actor, reason)

    def engage_kill_switch(self, reason: str = "", actor: str = "system") -> None:
        self.kill_switch = True
        self.paused = True
        self._record("kill_switch", actor, reason)

    def set_mode(self, mode: Mode, confirm: str = "", actor: str = "system") -> None:
        """Change mode; LIVE needs `confirm` to be exactly CONFIRM LIVE TRADING."""
        if mode is Mode.LIVE and confirm != LIVE_CONFIRMATION:
            self._record("mode_refused", actor, f"to {mode.value}: wrong confirmation phrase")
            raise ModeChangeRefused(f"switching to LIVE needs confirm={LIVE_CONFIRMATION!r}")
        self.mode = mode
        self._record("mode", actor, mode.value)

    def refuse_mode(self, mode: Mode, reason: str, actor: str = "system") -> None:
        """Record a mode change refused for a reason other than the phrase (e.g. no live venue)."""
        self._record("mode_refused", actor, f"to {mode.value}: {reason}")

    def _record(self, action: str, actor: str, reason: str) -> None:
        change = StateChange(action, actor, reason, self._now())
        self.changes.append(change)
        for listener in self._listeners:
            listener(change)
