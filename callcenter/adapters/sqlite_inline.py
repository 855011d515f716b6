"""SQLite for the async engine without a worker thread: sqlite3 runs on the event-loop thread.

Why: through ``sqlite+aiosqlite`` every DBAPI call (execute, fetch, commit...) hops to
aiosqlite's worker thread and back, plus a greenlet switch: ~0.7 ms a statement, against
~30 µs for the SQL itself. Measured: a unit of work (insert, select, commit) 1.1-1.4 ms ->
0.32-0.42 ms; ``CallTiming.record`` 3.5-6.0 ms -> 1.6-2.2 ms (the rest is SQLAlchemy's Python).
This dialect is the plain pysqlite dialect declared async: AsyncEngine still runs each
operation in a greenlet, but the greenlet never waits, so the sqlite3 calls are made inline.

It is acceptable because the service is one process and ``UnitOfWork`` already serialises
SQLite units of work with an asyncio lock: a statement blocks the loop for tens of µs, and
only an outside writer (the CLI) could make one wait on ``busy_timeout``.

``db.create_engine`` translates the user-facing ``sqlite+aiosqlite://`` URLs to ``DRIVERNAME``.
"""

from __future__ import annotations

import sqlite3
from collections import deque

from sqlalchemy import pool
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.aiosqlite import SQLiteExecutionContext_aiosqlite
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.util.concurrency import await_, in_greenlet

DRIVERNAME = "sqlite+inline"


async def _nothing() -> None:
    pass


def _awaited() -> None:
    """``AsyncConnection.execute`` raises AwaitRequired unless the driver awaited something.

    Awaiting a coroutine that returns at once satisfies it: two greenlet switches (a few µs),
    no trip through the event loop. The SQL itself runs synchronously, right here.
    """
    if in_greenlet():
        await_(_nothing())


class _Cursor(sqlite3.Cursor):
    """A server-side cursor (``AsyncConnection.stream``): rows are read lazily."""

    def execute(self, sql, parameters=()):
        _awaited()
        return super().execute(sql, parameters)

    def executemany(self, sql, seq_of_parameters):
        _awaited()
        return super().executemany(sql, seq_of_parameters)

    async def _async_soft_close(self) -> None:
        """Called by AsyncSession/AsyncConnection.execute; nothing left to release."""


class _BufferedCursor(_Cursor):
    """Reads every row at execute time, like SQLAlchemy's aiosqlite adapter does.

    So a result stays readable after its session is gone, and no statement stays open
    (holding a WAL read snapshot) on a pooled connection.
    """

    def __init__(self, connection):
        super().__init__(connection)
        self._rows: deque = deque()

    def execute(self, sql, parameters=()):
        super().execute(sql, parameters)
        self._rows = deque(sqlite3.Cursor.fetchall(self) if self.description else ())
        return self

    def executemany(self, sql, seq_of_parameters):
        self._rows = deque()
        return super().executemany(sql, seq_of_parameters)

    def fetchone(self):
        return self._rows.popleft() if self._rows else None

    def fetchmany(self, size=None):
        rows = self._rows
        return [rows.popleft() for _ in range(min(size or self.arraysize, len(rows)))]

    def fetchall(self):
        rows, self._rows = list(self._rows), deque()
        return rows

    def __iter__(self):
        return self

    def __next__(self):
        if not self._rows:
            raise StopIteration
        return self._rows.popleft()


class _Connection(sqlite3.Connection):
    def cursor(self, factory=_BufferedCursor, server_side=False):
        # Server-side cursors (``AsyncConnection.stream``) are plain, lazily read ones.
        return super().cursor(_Cursor if server_side else factory)


class SQLiteDialect_inline(SQLiteDialect_pysqlite):
    """pysqlite (sqlite3, same SQL, same exceptions) usable by ``create_async_engine``."""

    driver = "inline"
    supports_statement_cache = True
    is_async = True
    # sqlite3's close() is synchronous, so a connection the garbage collector finds
    # checked out can be closed right away rather than dropped unclosed.
    has_terminate = True
    supports_server_side_cursors = True
    execution_ctx_cls = SQLiteExecutionContext_aiosqlite  # cursor(server_side=True)

    def create_connect_args(self, url):
        args, kwargs = super().create_connect_args(url)
        kwargs["factory"] = _Connection
        return args, kwargs

    @classmethod
    def get_pool_class(cls, url):
        # Same choice as the aiosqlite dialect: async-compatible pools only.
        if cls._is_url_file_db(url):
            return pool.AsyncAdaptedQueuePool
        cls._warn_memory_mode_pool_selection(url, pool.StaticPool, pool.AsyncAdaptedQueuePool)
        return pool.StaticPool


registry.register("sqlite.inline", __name__, "SQLiteDialect_inline")
