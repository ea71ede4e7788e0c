"""The API's bearer token: where it comes from, how it is stored, and the check on mutating calls."""

from __future__ import annotations

import hmac
import os
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path

from fastapi import HTTPException, Request, status

TOKEN_ENV = "QUANTDESK_API_TOKEN"


def resolve_token(configured: str | None, path: Path, *, environ: Mapping[str, str] | None = None) -> str:
    """The token: `configured`, else $QUANTDESK_API_TOKEN, else the one stored at `path`, else a new
    one written there readable by its owner only (0600), so a restart keeps the same token."""
    env = os.environ if environ is None else environ
    token = configured or env.get(TOKEN_ENV, "")
    if token:
        return token
    if path.exists():
        stored = path.read_text(encoding="utf-8").strip()
        if stored:
            return stored
    token = secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Created with owner-only permissions from the start: never world-readable, not even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(token + "\n")
    os.chmod(path, 0o600)
    return token


def bearer_guard(token: str) -> Callable[[Request], None]:
    """A FastAPI dependency: 401 without a bearer token, 403 with a wrong one (compared in constant time)."""
    expected = token.encode()

    def check(request: Request) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "this call changes state: send Authorization: Bearer <token>",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not hmac.compare_digest(given.strip().encode(), expected):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "wrong API token")

    return check
