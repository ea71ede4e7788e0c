"""The event log: every decision-relevant event as a canonical line, hashed as it is written.

Two runs with the same inputs and config must produce the same SHA-256; a test
and `quantdesk backtest --json` both show it.
"""

from __future__ import annotations

import hashlib
from typing import Any


class EventLog:
    """Appends canonical `kind key=value ...` lines to a running SHA-256 (and optionally keeps them)."""

    def __init__(self, *, keep: bool = False) -> None:
        self._hash = hashlib.sha256()
        self.count = 0
        self.lines: list[str] | None = [] if keep else None

    def record(self, kind: str, **fields: Any) -> None:
        line = kind + "".join(f" {key}={fields[key]}" for key in sorted(fields)) + "\n"
        self._hash.update(line.encode())
        self.count += 1
        if self.lines is not None:
            self.lines.append(line)

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()
