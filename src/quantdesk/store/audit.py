"""Audit rows written outside the engine's event stream: the effective configuration when it changes."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from quantdesk.store.models import AuditLogRow

CONFIG_ACTION = "config"


def record_config(
    sessions: sessionmaker[Session], *, sha: str, config: dict[str, Any], ts: int, actor: str
) -> bool:
    """Write a "config" audit row if `sha` differs from the last one recorded (or none is);
    return whether it wrote one. The row holds the whole effective configuration and the
    hash it replaces, so any decision's `config_sha` can be traced to the limits it ran under."""
    with sessions.begin() as session:
        last = session.scalars(
            select(AuditLogRow)
            .where(AuditLogRow.action == CONFIG_ACTION)
            .order_by(AuditLogRow.ts.desc(), AuditLogRow.id.desc())
            .limit(1)
        ).first()
        previous = None if last is None else last.details.get("sha")
        if previous == sha:
            return False
        reason = "first configuration" if previous is None else f"configuration changed from {previous[:12]}"
        session.add(
            AuditLogRow(
                ts=ts,
                actor=actor,
                action=CONFIG_ACTION,
                reason=reason,
                details={"sha": sha, "previous_sha": previous, "config": config},
            )
        )
    return True
