"""Migrations up and down on SQLite and PostgreSQL, the audit log's triggers, and reaching the database."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import IntegrityError

from quantdesk.errors import ConfigError
from quantdesk.store import (
    Base,
    StoreUnavailable,
    connect,
    current_revision,
    database_url,
    downgrade,
    head_revision,
    make_engine,
    safe_url,
    upgrade,
)

STORE_TABLES = {
    "instruments",
    "signals",
    "decisions",
    "orders",
    "fills",
    "positions",
    "risk_events",
    "audit_log",
}

INSERT_AUDIT = (
    "INSERT INTO audit_log (ts, actor, action, reason, details) VALUES (1, 'me', 'flatten', '', '{}')"
)


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return set(inspect(connection).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_from_empty_creates_every_table(db_url: str) -> None:
    assert current_revision(db_url) is None

    upgrade(db_url)

    assert set(Base.metadata.tables) == STORE_TABLES
    assert _tables(db_url) == STORE_TABLES | {"alembic_version"}
    assert current_revision(db_url) == head_revision()


def test_migrated_schema_matches_the_models(store_engine: Engine) -> None:
    with store_engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_downgrade_to_base_removes_every_table(db_url: str) -> None:
    upgrade(db_url)

    downgrade(db_url)

    assert _tables(db_url) == {"alembic_version"}
    assert current_revision(db_url) is None


def test_upgrade_after_downgrade_rebuilds_a_working_schema(db_url: str) -> None:
    upgrade(db_url)
    downgrade(db_url)
    upgrade(db_url)
    upgrade(db_url)  # already at head: nothing to do, no error

    assert current_revision(db_url) == head_revision()
    engine = make_engine(db_url)
    try:
        with engine.begin() as connection:
            connection.execute(text(INSERT_AUDIT))
            assert connection.execute(text("SELECT count(*) FROM audit_log")).scalar_one() == 1
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    "statement",
    ["UPDATE audit_log SET actor = 'someone else'", "DELETE FROM audit_log"],
)
def test_database_refuses_to_change_audit_rows(store_engine: Engine, statement: str) -> None:
    with store_engine.begin() as connection:
        connection.execute(text(INSERT_AUDIT))

    with pytest.raises(IntegrityError, match="append-only"), store_engine.begin() as connection:
        connection.execute(text(statement))

    with store_engine.connect() as connection:
        assert connection.execute(text("SELECT actor FROM audit_log")).scalars().all() == ["me"]


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # SQLite has no TRUNCATE
def test_postgresql_refuses_to_truncate_the_audit_log(store_engine: Engine) -> None:
    assert store_engine.dialect.name == "postgresql"
    with pytest.raises(IntegrityError, match="append-only"), store_engine.begin() as connection:
        connection.execute(text("TRUNCATE audit_log"))


def test_sqlite_connections_use_wal_and_enforce_foreign_keys(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'new' / 'dir' / 'q.db'}")
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1
    finally:
        engine.dispose()


def test_unreachable_postgresql_is_one_line_store_unavailable() -> None:
    url = "postgresql+psycopg://postgres:secret@localhost:1/test"

    with pytest.raises(StoreUnavailable) as raised:
        connect(url)

    message = str(raised.value)
    assert message == f"cannot reach {safe_url(url)}: connection refused"
    assert message == "cannot reach postgresql+psycopg://postgres:***@localhost:1/test: connection refused"
    with pytest.raises(StoreUnavailable, match=r"^cannot reach .*: connection refused$"):
        upgrade(url)


def test_sqlite_file_that_cannot_be_opened_is_store_unavailable(tmp_path: Path) -> None:
    # A directory where the database file should be.
    with pytest.raises(StoreUnavailable, match=r"^cannot reach sqlite:///.*: unable to open database file$"):
        current_revision(f"sqlite:///{tmp_path}")


def test_database_url_prefers_flag_then_environment_then_sqlite_in_var(tmp_path: Path) -> None:
    env = {"QUANTDESK_DB_URL": "postgresql://u@db:5432/desk"}

    assert database_url("sqlite:///x.db", environ=env) == "sqlite:///x.db"
    assert database_url(None, environ=env) == "postgresql+psycopg://u@db:5432/desk"
    assert database_url(None, environ={}, data_dir=tmp_path) == f"sqlite:///{tmp_path}/quantdesk.db"
    assert database_url(None, environ={}) == f"sqlite:///{Path('var').resolve()}/quantdesk.db"


@pytest.mark.parametrize("url", ["mysql://u@h/db", "not a url"])
def test_database_url_refuses_what_the_store_cannot_use(url: str) -> None:
    with pytest.raises(ConfigError, match="database"):
        database_url(url, environ={})
