"""The API token: configured, from the environment, stored, or generated with owner-only permissions."""

from __future__ import annotations

import stat
from pathlib import Path

from quantdesk.service.auth import TOKEN_ENV, resolve_token


def test_a_configured_token_wins(tmp_path: Path) -> None:
    assert resolve_token("abc", tmp_path / "t", environ={TOKEN_ENV: "env"}) == "abc"
    assert not (tmp_path / "t").exists()


def test_the_environment_comes_next(tmp_path: Path) -> None:
    assert resolve_token(None, tmp_path / "t", environ={TOKEN_ENV: "from-env"}) == "from-env"


def test_a_generated_token_is_stored_owner_only_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "var" / "api-token"
    first = resolve_token(None, path, environ={})
    assert len(first) >= 40
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert resolve_token(None, path, environ={}) == first  # a restart keeps it
