"""Engine creation and migrations: one code path for embedded SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


class DatabaseUnavailable(RuntimeError):
    """The configured database cannot be reached or opened."""


CONNECT_TIMEOUT_SECONDS = 5.0


def is_unavailable(exc: BaseException) -> bool:
    """The database cannot be reached or used right now, as opposed to: this data is wrong.

    Every failure to store that sending again may cure is "unavailable" (a 503 the AGI
    drivers and the spool retry), never a 500: a lost or terminated connection, a driver
    whose protocol state a dropped backend left broken (asyncpg's "cannot switch to state
    ...; another operation is in progress", an ``InternalClientError``), the server shutting
    down or out of connections, a deadlock or serialisation failure, a query cancelled.
    What stays a 500 is what sending again cannot cure: a constraint broken, a value the
    column refuses, an SQL bug. SQLAlchemy's wrapped errors are judged by the driver error
    they wrap (``orig`` and ``__cause__``); the driver-SQL paths (``event_sql``, the
    certificate reader) raise the drivers' own errors unwrapped.
    """

    chain: list[BaseException] = []
    while exc is not None and all(exc is not seen for seen in chain):
        chain.append(exc)
        exc = getattr(exc, "orig", None) or exc.__cause__
    if any(_wrong_data(e) for e in chain):
        return False
    return any(_unavailable_here(e) for e in chain)


_CLOSED = "This connection is closed"


def _wrong_data(exc: BaseException) -> bool:
    """asyncpg's DataError (a value it cannot send) derives from its InterfaceError, which
    SQLAlchemy wraps as an InterfaceError: it must not pass for a lost connection."""
    if type(exc).__module__.startswith("asyncpg"):
        from asyncpg import exceptions as pg

        return isinstance(exc, pg.DataError)
    return False


def _unavailable_here(exc: BaseException) -> bool:
    import sqlite3

    from sqlalchemy import exc as sa

    if isinstance(exc, OSError | TimeoutError | DatabaseUnavailable | sqlite3.OperationalError):
        return True
    if isinstance(exc, sa.DBAPIError) and exc.connection_invalidated:
        return True
    if type(exc) is sa.InvalidRequestError and _CLOSED in str(exc):
        # the pool's checkout found each connection it tried dead (our checkout listener's
        # DisconnectionError) and gave up, with no cause attached
        return True
    if isinstance(
        exc,
        sa.OperationalError
        | sa.InterfaceError
        | sa.InternalError
        | sa.DisconnectionError
        | sa.TimeoutError  # the pool had no connection to give
        | sa.PendingRollbackError,  # the transaction's connection was lost under it
    ):
        return True
    if type(exc).__module__.startswith("asyncpg"):
        from asyncpg import exceptions as pg

        return isinstance(
            exc,
            pg.PostgresConnectionError  # 08xxx, the connection is gone
            | pg.InterfaceError  # the connection was closed or is in use
            | pg.InternalClientError  # the protocol state a dropped backend left
            | pg.OperatorInterventionError  # 57xxx: terminated, shut down, cancelled
            | pg.InsufficientResourcesError  # 53xxx: too many connections, disk full
            | pg.TransactionRollbackError  # 40xxx: deadlock, serialisation failure
            | pg.LockNotAvailableError
            | pg.InternalServerError,
        )
    return False


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()
    # SQLite's own lower() knows ASCII only: the call log's search by organisation is Cyrillic
    dbapi_conn.create_function(UNICODE_LOWER, 1, _unicode_lower, deterministic=True)


#: a Unicode-aware lower() on SQLite (PostgreSQL's own lower() is one)
UNICODE_LOWER = "cc_lower"


def _unicode_lower(value):
    return value.lower() if isinstance(value, str) else value


def _sqlite_reset(dbapi_conn, record, _state) -> None:
    """A connection back in the pool is rolled back only if a transaction is still open.

    A unit of work that committed leaves none, and on aiosqlite every rollback is a trip to
    its worker thread: one of the five a batch of events would otherwise make.
    """
    if record.driver_connection.in_transaction:
        dbapi_conn.rollback()


def create_engine(url: str, *, pool_size: int = 10, echo: bool = False) -> AsyncEngine:
    """An async engine; SQLite files get their folder, WAL mode and foreign keys."""
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        if u.database and u.database != ":memory:" and not u.database.startswith("file:"):
            Path(u.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(u, echo=echo, pool_reset_on_return=None)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "reset", _sqlite_reset)
        return engine
    engine = create_async_engine(
        u,
        echo=echo,
        pool_size=pool_size,
        max_overflow=pool_size,
        connect_args={"timeout": CONNECT_TIMEOUT_SECONDS},  # asyncpg's own default is 60 s
    )
    _ping_when_idle(engine)
    return engine


IDLE_PING_SECONDS = 10.0


def _ping_when_idle(engine: AsyncEngine) -> None:
    """Pessimistic disconnect handling that costs busy connections nothing.

    ``pool_pre_ping`` spends a round trip on every checkout, a sixth of a batch of events.
    A connection used within the last few seconds is alive as far as anyone can tell; one
    that sat idle (the database may have restarted meanwhile) is pinged, and replaced if dead.
    """
    dialect = engine.dialect

    @event.listens_for(engine.sync_engine, "checkout")
    def _checkout(dbapi_conn, record, _proxy) -> None:
        driver = dialect.get_driver_connection(dbapi_conn)
        if getattr(driver, "is_closed", lambda: False)():
            # the server went away (asyncpg saw the socket close): free to know, no ping
            raise DisconnectionError("database connection closed")
        if time.monotonic() - record.info.get("cc_last_used", 0.0) <= IDLE_PING_SECONDS:
            return
        try:
            alive = dialect.do_ping(dbapi_conn)
        except Exception as exc:
            raise DisconnectionError(f"stale database connection: {exc}") from exc
        if alive is False:
            raise DisconnectionError("stale database connection")

    @event.listens_for(engine.sync_engine, "checkin")
    def _checkin(_dbapi_conn, record) -> None:
        record.info["cc_last_used"] = time.monotonic()


def session_factory(engine: AsyncEngine) -> async_sessionmaker:
    return async_sessionmaker(engine, expire_on_commit=False)


def _alembic_config(connection):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def _upgrade(connection, revision: str) -> None:
    from alembic import command

    command.upgrade(_alembic_config(connection), revision)


def _current(connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Apply Alembic migrations on ``engine`` up to ``revision``."""
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_upgrade, revision)
    except OSError as exc:
        raise DatabaseUnavailable(f"cannot reach the database: {exc}") from exc


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(_current)


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    cfg = _alembic_config(None)
    return ScriptDirectory.from_config(cfg).get_current_head()


async def ping(engine: AsyncEngine) -> None:
    """Raise unless the database answers ``SELECT 1`` (the liveness probe's question)."""
    async with engine.connect() as conn:
        await conn.exec_driver_sql("SELECT 1")
