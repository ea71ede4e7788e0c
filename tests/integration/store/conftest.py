"""Store fixtures: an empty database per test, on a SQLite file and on a real PostgreSQL server."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import NoReturn

import pytest
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from quantdesk.store import StoreUnavailable, connect, make_engine, session_factory, upgrade

PG_URL_ENV = "QUANTDESK_TEST_PG_URL"
PG_DEFAULT_URL = "postgresql+psycopg://postgres@localhost:5432/test"


def _pg_unavailable(reason: str) -> NoReturn:
    # Under CI a missing server is a broken setup, not a reason to go green.
    if os.environ.get("CI") == "true":
        pytest.fail(f"PostgreSQL is required when CI=true: {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL not available ({reason}); set {PG_URL_ENV} to run these tests")


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[Engine]:
    """An autocommit engine on the test server, tried once per session."""
    url = os.environ.get(PG_URL_ENV, PG_DEFAULT_URL)
    try:
        engine = connect(url)
    except StoreUnavailable as error:
        _pg_unavailable(str(error))
    admin = engine.execution_options(isolation_level="AUTOCOMMIT")
    yield admin
    engine.dispose()


def _pg_schema_url(admin: Engine) -> Iterator[str]:
    """A URL whose connections see only a fresh schema of their own, dropped afterwards."""
    schema = f"qd_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    url = make_url(admin.url.render_as_string(hide_password=False))
    yield url.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)
    with admin.connect() as connection:
        # A test that left a transaction open must not hang the suite.
        connection.exec_driver_sql("SET lock_timeout = '5s'")
        connection.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of an empty database: a new SQLite file, or a new schema on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('store') / 'quantdesk.db'}"
        return
    yield from _pg_schema_url(request.getfixturevalue("pg_admin"))


@pytest.fixture
def other_db_url(
    db_url: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A second empty database on `db_url`'s back end."""
    if make_url(db_url).get_backend_name() == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('other') / 'quantdesk.db'}"
        return
    yield from _pg_schema_url(request.getfixturevalue("pg_admin"))


@pytest.fixture
def store_engine(db_url: str) -> Iterator[Engine]:
    """An engine on a database migrated to head."""
    upgrade(db_url)
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(store_engine: Engine) -> sessionmaker[Session]:
    return session_factory(store_engine)
