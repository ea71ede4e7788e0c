"""The event log: every decision-relevant event as a canonical line, hashed as it is written.

Two runs with the same inputs and config must produce the same SHA-256; a test
and `quantdesk backtest --json` both show it.
"""

from __future__ import annotations

import hashlib
from typing import Final

# Lines hashed together: one update per batch instead of per line, and a batch small enough
# (~7 µs of joining and hashing) that the event it lands in does not notice (4,096 lines took
# ~0.9 ms, inside whichever decision happened to fill the batch: the tick-to-decision max).
_BATCH: Final = 64


class EventLog:
    """Appends canonical `kind value value ...` lines to a running SHA-256 (and optionally keeps them)."""

    def __init__(self, *, keep: bool = False) -> None:
        self._hash = hashlib.sha256()
        self._pending: list[str] = []
        self.count = 0
        self.lines: list[str] | None = [] if keep else None

    def record(self, line: str) -> None:
        """Append one event, written by the caller as `kind field field ...` in a fixed order."""
        self.count += 1
        pending = self._pending
        pending.append(line)
        if len(pending) >= _BATCH:
            self._flush()
        if self.lines is not None:
            self.lines.append(line + "\n")

    def _flush(self) -> None:
        if self._pending:
            # Each line's newline is added here, by the join, not by a copy of every line as
            # it is recorded: the same bytes are hashed.
            self._hash.update(("\n".join(self._pending) + "\n").encode())
            self._pending.clear()

    @property
    def sha256(self) -> str:
        """The SHA-256 of every line recorded so far (the same as hashing them one by one)."""
        self._flush()
        return self._hash.hexdigest()
