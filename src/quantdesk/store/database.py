"""Where the store lives and how to reach it: the URL, engines for SQLite and PostgreSQL, migrations."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from quantdesk.errors import ConfigError, FatalError
from quantdesk.store.models import install_audit_guard

DB_URL_ENV = "QUANTDESK_DB_URL"
DEFAULT_DATA_DIR = Path("var")
DEFAULT_DB_FILE = "quantdesk.db"
# Loaded as a package resource, so migrations run from an installed wheel too.
SCRIPT_LOCATION = "quantdesk.store:migrations"
# A server that is down should fail the start quickly, not after the OS's TCP timeout.
PG_CONNECT_TIMEOUT_S = 5
# How long a SQLite writer waits for another's lock before "database is locked".
SQLITE_BUSY_TIMEOUT_S = 5.0

_BACKENDS = {
    "sqlite": "sqlite",
    "sqlite+pysqlite": "sqlite",
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "postgresql+psycopg": "postgresql+psycopg",
}


class StoreUnavailable(FatalError):
    """The database cannot be reached or opened: the node must not start half-way."""


def database_url(
    explicit: str | None = None,
    *,
    data_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> str:
    """The store's URL: `explicit` (the --db flag), else $QUANTDESK_DB_URL, else a SQLite file.

    The default is ``sqlite:///<data_dir>/quantdesk.db`` with `data_dir`
    ``./var`` (resolved against the working directory), e.g.
    ``sqlite:////home/me/desk/var/quantdesk.db``. ``postgresql://`` and
    ``postgres://`` URLs are read as ``postgresql+psycopg://`` (psycopg 3).
    """
    env = os.environ if environ is None else environ
    chosen = explicit or env.get(DB_URL_ENV) or ""
    if not chosen:
        folder = (data_dir if data_dir is not None else DEFAULT_DATA_DIR).resolve()
        return f"sqlite:///{folder / DEFAULT_DB_FILE}"
    return _parse(chosen).render_as_string(hide_password=False)


def _parse(url: str) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(
            f"invalid database URL {url!r}: expected sqlite:///path or postgresql+psycopg://user@host/db"
        ) from None
    driver = _BACKENDS.get(parsed.drivername)
    if driver is None:
        raise ConfigError(
            f"unsupported database {parsed.drivername!r} in {_safe(parsed)}: use sqlite or postgresql+psycopg"
        )
    return parsed.set(drivername=driver)


def safe_url(url: str) -> str:
    """`url` with its password masked, for logs and messages."""
    return _safe(_parse(url))


def _safe(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def make_engine(url: str) -> Engine:
    """An engine for `url`; nothing is connected yet (see `connect`).

    SQLite: the file's folder is created, each connection runs in WAL mode with
    foreign keys enforced, and SQLAlchemy emits BEGIN itself so DDL and
    savepoints are transactional. PostgreSQL: psycopg 3 with a 5 s connect timeout; a
    transaction begun with `KEYED_BATCH` finds its rows by index (see there).
    """
    return _make_engine(_parse(url), foreign_keys=True)


def _make_engine(url: URL, *, foreign_keys: bool) -> Engine:
    if url.get_backend_name() == "postgresql":
        connect_args: dict[str, Any] = {}
        if "connect_timeout" not in url.query:
            connect_args["connect_timeout"] = PG_CONNECT_TIMEOUT_S
        engine = create_engine(url, connect_args=connect_args, pool_pre_ping=True)
        _configure_postgresql(engine)
        return engine
    database = url.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})
    _configure_sqlite(engine, foreign_keys=foreign_keys)
    return engine


def _configure_sqlite(engine: Engine, *, foreign_keys: bool) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take BEGIN away from the sqlite3 module, whose legacy mode skips it
        # before DDL and SELECT; PRAGMAs below then run outside any transaction.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
            # FULL: a committed PENDING_SUBMIT order survives a power cut, not just a crash.
            cursor.execute("PRAGMA synchronous=FULL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Connection) -> None:
        # Writers ask for IMMEDIATE (see `WRITE`): the write lock is taken at BEGIN, waiting
        # out the busy timeout for another process's writer.
        connection.exec_driver_sql(connection.get_execution_options().get(_BEGIN, "BEGIN"))


def _configure_postgresql(engine: Engine) -> None:
    @event.listens_for(engine, "begin")
    def on_begin(connection: Connection) -> None:
        if connection.get_execution_options().get(_KEYED):
            connection.exec_driver_sql("SET LOCAL enable_seqscan = off")


_BEGIN = "quantdesk_sqlite_begin"
_KEYED = "quantdesk_keyed"
# Execution options for a transaction that will write: on SQLite it begins IMMEDIATE. A deferred
# transaction that has read cannot start writing once another connection (the writer process,
# the outbox) has committed since its read: SQLite answers "database is locked" at once, with
# no busy wait. Other back ends ignore the option.
WRITE: Final = {_BEGIN: "BEGIN IMMEDIATE"}
# A writer's batch: it writes (`WRITE`), and every row it reads it finds by a unique key, tens to
# hundreds of keys in one IN list ("is this plan, order, fill already stored?"). PostgreSQL's
# planner answers such a list with a scan of the whole table whenever it costs the table below the
# list's index probes (a table of a few thousand rows, or one not analyzed yet): measured on this
# project's store benchmark, the scans were half the server's CPU per persisted record (75 us of
# it; 38 us with index probes), CPU taken from the engine on a small machine. The batch's
# transaction forbids them; no statement in it wants one (SQLite plans such lists by index anyway).
KEYED_BATCH: Final = {**WRITE, _KEYED: True}


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions bound to `engine` that keep loaded values after commit and refuse audit-log changes."""
    factory = sessionmaker(engine, expire_on_commit=False)
    install_audit_guard(factory)
    return factory


def ping(engine: Engine) -> None:
    """Run ``SELECT 1``, or raise `StoreUnavailable` with a one-line reason."""
    with _open(engine) as connection:
        connection.execute(text("SELECT 1"))


def connect(url: str) -> Engine:
    """`make_engine(url)` after it answered a ping: the check to run before trading starts."""
    engine = make_engine(url)
    try:
        ping(engine)
    except StoreUnavailable:
        engine.dispose()
        raise
    return engine


def _open(engine: Engine) -> Connection:
    """A connection from `engine`, or `StoreUnavailable`: only connecting is guarded, not statements."""
    try:
        return engine.connect()
    except DBAPIError as error:
        raise StoreUnavailable(f"cannot reach {_safe(engine.url)}: {_reason(error)}") from None


def _reason(error: DBAPIError) -> str:
    """The driver's message cut to its first line and its last cause, e.g. "connection refused"."""
    message = (
        str(error.orig).strip().splitlines()[0] if str(error.orig).strip() else type(error.orig).__name__
    )
    message = message.rsplit(" failed: ", 1)[-1].strip()
    for prefix in ("FATAL:", "ERROR:"):
        message = message.removeprefix(prefix).strip()
    return message[:1].lower() + message[1:]


# -- migrations -------------------------------------------------------------------------------


def alembic_config() -> Config:
    """Alembic's configuration for the store's migrations, with no alembic.ini."""
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    return config


def head_revision() -> str:
    """The newest migration this code knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise FatalError("the store has no migrations: the package is incomplete")
    return head


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at `url` up to `revision` (created if it is an absent SQLite file)."""
    _migrate(url, lambda config: command.upgrade(config, revision))


def downgrade(url: str, revision: str = "base") -> None:
    """Migrate the database at `url` down to `revision`; "base" drops every table of the store."""
    _migrate(url, lambda config: command.downgrade(config, revision))


def current_revision(url: str) -> str | None:
    """The revision the database at `url` is at; None for a database never migrated."""
    engine = make_engine(url)
    try:
        with _open(engine) as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def _migrate(url: str, run: Callable[[Config], object]) -> None:
    # Foreign keys off on SQLite while migrating: batch mode rebuilds a table by
    # copying and dropping it, which enforcement would refuse. Checked afterwards.
    engine = _make_engine(_parse(url), foreign_keys=False)
    try:
        with _open(engine) as connection, connection.begin():
            config = alembic_config()
            config.attributes["connection"] = connection
            run(config)
            if connection.dialect.name == "sqlite":
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise FatalError(f"migration left {len(broken)} broken foreign keys, first: {broken[0]}")
    finally:
        engine.dispose()
