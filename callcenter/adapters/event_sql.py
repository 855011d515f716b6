"""The call log's four hot statements as driver SQL, inside the unit of work's transaction.

A batch of events costs four statements: store the events, create-and-lock their calls,
read the calls' histories, write the projected calls (on PostgreSQL the first three are one
call of ``cc_record_events``, migration 0011: BEGIN, that call, the UPDATE, COMMIT).
Through SQLAlchemy each costs 0.15-0.3 ms of Python (statement caching, parameter
processing, result wrapping), ten times the SQL
itself on SQLite, and that Python was most of what event ingest spent per event. Here the same
statements go straight to the driver (aiosqlite or asyncpg), reached through SQLAlchemy's
public ``AsyncConnection.get_raw_connection().driver_connection``: the very connection, and so
the very transaction, of the unit of work, so what follows in that transaction (opening a
window, escalating) still commits or rolls back with them. On SQLite each statement is one
trip to aiosqlite's worker thread (three a batch), against one per DBAPI call and a greenlet
switch through SQLAlchemy.

Values are stored exactly as the SQLAlchemy tables store them (UTC instants: naive ISO text
on SQLite, ``timestamptz`` on PostgreSQL); ``tests/integration/test_event_sql.py`` reads
them back both ways. Another driver gets :class:`CoreEvents`, the same four statements
through SQLAlchemy Core (also what tests compare the fast ones with).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import String, any_, bindparam, select, update
from sqlalchemy import event as sa_event
from sqlalchemy.dialects import postgresql, sqlite

from callcenter.adapters import tables as t
from callcenter.domain.calls import CallRecord
from callcenter.domain.events import CallEvent

log = logging.getLogger(__name__)

EVENT_COLUMNS = ("call_id", "event", "at", "received_at", "source", "data", "dedup_key")
#: CallRecord fields stored in ``calls`` (all but the key), and which of them are instants
RECORD_FIELDS = tuple(f for f in CallRecord.__dataclass_fields__ if f != "call_id")
_INSTANTS = frozenset(c.name for c in t.calls.columns if isinstance(c.type, t.UTCDateTime))


def event_rows(items: Sequence[tuple[CallEvent, datetime]]) -> list[dict[str, Any]]:
    """Rows of (event, received_at) pairs, by dedup key: every writer takes the unique
    index's locks in one order."""
    rows = [_event_row(ev, received_at) for ev, received_at in items]
    rows.sort(key=lambda r: r["dedup_key"])
    return rows


def _event_row(ev: CallEvent, received_at: datetime) -> dict[str, Any]:
    return {
        "call_id": ev.call_id,
        "event": ev.event,
        "at": ev.at,
        "received_at": received_at,
        "source": ev.source,
        "data": json.dumps(ev.data, ensure_ascii=False, sort_keys=True),
        "dedup_key": ev.dedup_key(),
    }


#: False: always SQLAlchemy Core (tests compare the two)
DRIVER_SQL = True


async def for_session(session) -> SqliteEvents | PostgresEvents | CoreEvents:
    """The four statements on this session's connection, in its transaction."""
    if DRIVER_SQL:
        conn = await session.connection()
        driver = (await conn.get_raw_connection()).driver_connection
        if conn.dialect.driver == "aiosqlite":
            return SqliteEvents(driver)
        if conn.dialect.driver == "asyncpg":
            return PostgresEvents(driver, conn)
    return CoreEvents(session)


def _by_call(
    call_ids: Sequence[str], rows, instant: Callable[[Any], datetime]
) -> dict[str, list[CallEvent]]:
    """History rows (event, call_id, at, data, source, dedup_key) as each call's events;
    ``instant`` turns the driver's ``at`` into an aware UTC datetime."""
    out: dict[str, list[CallEvent]] = {cid: [] for cid in call_ids}
    for event, call_id, at, data, source, key in rows:
        out[call_id].append(
            CallEvent.stored(event, call_id, instant(at), json.loads(data), source, key)
        )
    return out


def sqlite_instant(value: datetime | None) -> str | None:
    """As SQLAlchemy's SQLite DateTime stores UTCDateTime values: naive UTC, microseconds
    (so text order is time order)."""
    if value is None:
        return None
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def from_sqlite_instant(value: str) -> datetime:
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


class SqliteEvents:
    """Statements on aiosqlite's connection, one worker-thread trip each.

    sqlite3 opens the transaction itself before the first INSERT (its legacy mode, the one
    SQLAlchemy's aiosqlite and pysqlite dialects rely on); SQLAlchemy's commit ends it.
    """

    _UPSERT_CALLS = (
        f"INSERT INTO calls (call_id, updated_at, {', '.join(RECORD_FIELDS)}) "
        f"VALUES ({', '.join('?' * (len(RECORD_FIELDS) + 2))}) "
        "ON CONFLICT (call_id) DO UPDATE SET updated_at = excluded.updated_at, "
        + ", ".join(f"{f} = excluded.{f}" for f in RECORD_FIELDS)
    )

    def __init__(self, conn) -> None:
        self.conn = conn  # aiosqlite's connection

    async def insert_events(self, items: Sequence[tuple[CallEvent, datetime]]) -> set[str]:
        """Store the events not stored yet; the dedup keys of those that were new."""
        stored = await self.conn.execute_fetchall(*_sqlite_insert(items))
        return {k for (k,) in stored}

    async def lock_calls(self, call_ids: Sequence[str], now: datetime) -> None:
        """Nothing to do: SQLite units of work take turns, and save_calls creates the rows."""

    async def history(self, call_ids: Sequence[str]) -> dict[str, list[CallEvent]]:
        rows = await self.conn.execute_fetchall(*_sqlite_history(call_ids))
        return _by_call(call_ids, rows, from_sqlite_instant)

    async def save_calls(self, records: Sequence[CallRecord], now: datetime) -> None:
        await self.conn.executemany(self._UPSERT_CALLS, _sqlite_call_rows(records, now))


class PostgresEvents:
    """asyncpg statements prepared once whatever the batch size (arrays, not VALUES lists)."""

    # Store the events and create-and-lock the calls of those that were new, in one round
    # trip: a data-modifying WITH runs in full even though the outer query only reads `ins`.
    # DO UPDATE takes each call row's lock, in call_id order: two batches cannot deadlock.
    _INSERT = (
        "WITH ins AS ("
        f"INSERT INTO call_events ({', '.join(EVENT_COLUMNS)}) "
        "SELECT * FROM unnest($1::varchar[], $2::varchar[], $3::timestamptz[], "
        "$4::timestamptz[], $5::varchar[], $6::text[], $7::varchar[]) "
        "ON CONFLICT (dedup_key) DO NOTHING RETURNING dedup_key, call_id), "
        "locked AS (INSERT INTO calls (call_id, updated_at) "
        "SELECT DISTINCT call_id, $8::timestamptz FROM ins ORDER BY call_id "
        "ON CONFLICT (call_id) DO UPDATE SET updated_at = EXCLUDED.updated_at) "
        "SELECT dedup_key, call_id FROM ins"
    )
    _LOCK = (
        "INSERT INTO calls (call_id, updated_at) SELECT unnest($1::varchar[]), $2 "
        "ON CONFLICT (call_id) DO UPDATE SET updated_at = EXCLUDED.updated_at"
    )
    _HISTORY = (
        "SELECT event, call_id, at, data, source, dedup_key FROM call_events "
        "WHERE call_id = ANY($1::varchar[]) ORDER BY call_id, at, id"
    )
    _SAVE = (
        "UPDATE calls SET updated_at = $2, "
        + ", ".join(f"{f} = ${i}" for i, f in enumerate(RECORD_FIELDS, start=3))
        + " WHERE call_id = $1"
    )

    # The same, and the touched calls' histories read after their locks are held, in one
    # round trip: a PL/pgSQL function runs each statement with a fresh snapshot (0011)
    _RECORD = (
        "SELECT * FROM cc_record_events($1::varchar[], $2::varchar[], $3::timestamptz[], "
        "$4::timestamptz[], $5::varchar[], $6::text[], $7::varchar[], $8::timestamptz)"
    )
    _HAS_RECORD = (
        "SELECT to_regprocedure('cc_record_events(varchar[], varchar[], timestamptz[], "
        "timestamptz[], varchar[], text[], varchar[], timestamptz)') IS NOT NULL"
    )

    def __init__(self, conn, owner) -> None:
        self.conn = conn  # asyncpg's connection
        self._owner = owner  # SQLAlchemy's AsyncConnection on it
        self._locked: set[str] = set()  # calls already locked by insert_events
        #: the calls whose histories insert_events read, and those rows (one use)
        self._histories: tuple[set[str], list[tuple]] | None = None

    def _joined(self) -> bool:
        """Whether SQLAlchemy's transaction is open on the connection, for the driver to join.

        SQLAlchemy's asyncpg adapter begins its transaction lazily, at its first statement.
        Until then a statement goes through ``exec_driver_sql`` (same SQL, same round trips),
        so that the transaction it begins is SQLAlchemy's and ends with the unit of work.
        """
        return self.conn.is_in_transaction()

    async def _fetch(self, sql: str, *args) -> Sequence:
        if self._joined():
            return await self._guard(self.conn.fetch(sql, *args))
        return (await self._owner.exec_driver_sql(sql, args)).all()

    async def _execute(self, sql: str, *args) -> None:
        if self._joined():
            await self._guard(self.conn.execute(sql, *args))
        else:
            await self._owner.exec_driver_sql(sql, args)

    async def _executemany(self, sql: str, rows: list[tuple]) -> None:
        if self._joined():
            await self._guard(self.conn.executemany(sql, rows))
        else:
            await self._owner.exec_driver_sql(sql, rows)

    async def _guard(self, pending):
        """Run one driver call; a connection found dead is invalidated, not pooled again.

        These calls bypass SQLAlchemy's Connection, which would otherwise notice a
        disconnect (a database restart) and drop the connection from the pool.
        """
        try:
            return await pending
        except Exception:
            if self.conn.is_closed():
                await self._owner.invalidate()
            raise

    async def insert_events(self, items: Sequence[tuple[CallEvent, datetime]]) -> set[str]:
        rows = event_rows(items)
        cols = [[r[c] for r in rows] for c in EVENT_COLUMNS]
        now = max(r["received_at"] for r in rows)
        if await self._has_function():
            # stored, locked and the touched calls' histories read: one round trip
            found = await self._fetch(self._RECORD, *cols, now)
            fresh = {r[6] for r in found if r[0]}
            self._locked.update(r[2] for r in found)
            self._histories = {r[2] for r in found}, [tuple(r)[1:] for r in found]
            return fresh
        stored = await self._fetch(self._INSERT, *cols, now)
        self._locked.update(r[1] for r in stored)
        return {r[0] for r in stored}

    async def _has_function(self) -> bool:
        """Whether the database has ``cc_record_events`` (migration 0011), asked once per
        engine."""
        engine = self._owner.engine.sync_engine
        known = _HAS_FUNCTION.get(engine)
        if known is None:
            (row,) = await self._fetch(self._HAS_RECORD)
            known = _HAS_FUNCTION[engine] = bool(row[0])
        return known

    async def lock_calls(self, call_ids: Sequence[str], now: datetime) -> None:
        missing = sorted(set(call_ids) - self._locked)
        if missing:  # usually none: insert_events locked the calls of the new events
            await self._execute(self._LOCK, missing, now)
            self._locked.update(missing)

    async def history(self, call_ids: Sequence[str]) -> dict[str, list[CallEvent]]:
        if self._histories is not None:
            read, rows = self._histories
            self._histories = None
            if read.issuperset(call_ids):  # read by insert_events, under the calls' locks
                wanted = set(call_ids)
                rows = [r for r in rows if r[1] in wanted]
                return _by_call(call_ids, rows, lambda at: at.astimezone(UTC))
        rows = await self._fetch(self._HISTORY, list(call_ids))
        return _by_call(call_ids, rows, lambda at: at.astimezone(UTC))

    async def save_calls(self, records: Sequence[CallRecord], now: datetime) -> None:
        rows = [(rec.call_id, now, *(getattr(rec, f) for f in RECORD_FIELDS)) for rec in records]
        await self._executemany(self._SAVE, rows)


#: per engine: whether its database has ``cc_record_events`` (migration 0011)
_HAS_FUNCTION: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class CoreEvents:
    """The same statements through SQLAlchemy Core, for any dialect it speaks."""

    def __init__(self, session) -> None:
        self.session = session
        self.dialect = session.bind.dialect.name

    async def insert_events(self, items: Sequence[tuple[CallEvent, datetime]]) -> set[str]:
        rows = event_rows(items)
        # executemany: compiled once, sent as multi-row INSERTs ("insertmanyvalues")
        result = await self.session.execute(_insert_events(self.dialect), rows)
        return set(result.scalars().all())

    async def lock_calls(self, call_ids: Sequence[str], now: datetime) -> None:
        await self.session.execute(
            lock_calls_statement(self.dialect),
            [{"call_id": cid, "updated_at": now} for cid in sorted(set(call_ids))],
        )

    async def history(self, call_ids: Sequence[str]) -> dict[str, list[CallEvent]]:
        rows = await self.session.execute(_history(self.dialect), {"ids": list(call_ids)})
        return _by_call(call_ids, rows.all(), lambda at: at)  # UTCDateTime converted it

    async def save_calls(self, records: Sequence[CallRecord], now: datetime) -> None:
        rows = [
            {
                "b_call_id": rec.call_id,
                "updated_at": now,
                **{f: getattr(rec, f) for f in RECORD_FIELDS},
            }
            for rec in records
        ]
        await self.session.execute(_SAVE_CALL, rows)


def upsert(dialect: str, table):
    """INSERT ... ON CONFLICT for the two supported dialects."""
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise ValueError(f"database {dialect!r} is not supported: use SQLite or PostgreSQL")


@functools.cache
def _insert_events(dialect: str):
    return (
        upsert(dialect, t.call_events)
        .on_conflict_do_nothing(index_elements=[t.call_events.c.dedup_key])
        .returning(t.call_events.c.dedup_key)
    )


@functools.cache
def lock_calls_statement(dialect: str):
    """Create a call's row if needed and lock it: ``DO UPDATE`` takes the row lock on
    PostgreSQL (serialising concurrent writers of one call), rows in the order given."""
    stmt = upsert(dialect, t.calls)
    return stmt.on_conflict_do_update(
        index_elements=[t.calls.c.call_id], set_={"updated_at": stmt.excluded.updated_at}
    )


@functools.cache
def _history(dialect: str):
    e = t.call_events.c
    if dialect == "postgresql":  # one prepared statement whatever the number of calls
        among = e.call_id == any_(bindparam("ids", type_=postgresql.ARRAY(String)))
    else:
        among = e.call_id.in_(bindparam("ids", expanding=True))
    return (
        select(e.event, e.call_id, e.at, e.data, e.source, e.dedup_key)
        .where(among)
        .order_by(e.call_id, e.at, e.id)
    )


_SAVE_CALL = update(t.calls).where(t.calls.c.call_id == bindparam("b_call_id"))


class InlineSqliteEvents:
    """A batch of events stored and committed in one go on the event loop's thread.

    On the stock aiosqlite dialect every statement is a trip to aiosqlite's worker thread and
    back through the loop, and under load each trip waits for the loop and for the GIL: a
    batch's four trips (store, read histories, save, COMMIT) cost a FastAGI dialogue, which
    waits for its events at its end, 4-9 ms at 300 calls/s, against ~0.3 ms of SQLite work.
    So a batch that needs nothing but the call log (no window to open or decide: the IVR's
    events) runs those statements synchronously here, on a sqlite3 connection of this
    engine's own (the standard library's public API; the certificate reader does the same
    for reads), inside the unit of work that holds the engine's one-writer lock.

    It never makes the loop wait for another writer: ``busy_timeout`` is 0, and a database
    that is locked (another process, such as an import, writing) sends the batch back to the
    unit of work's own connection, which waits on aiosqlite's thread instead. The same
    happens to a batch one of whose calls has its window to follow: that work is the
    session's, in the session's transaction.
    """

    #: commits between two checkpoints (a batch of the IVR's events writes ~5 pages; SQLite's
    #: own automatic checkpoint comes at 1,000)
    CHECKPOINT_EVERY = 200

    def __init__(self, connect: Callable[[], Any]) -> None:
        self._connect = connect
        self._conn = None
        self._commits = 0
        self._checkpointer: ThreadPoolExecutor | None = None
        self._checkpoint_conn = None
        self._checkpointing: Future | None = None

    def _connection(self):
        if self._conn is None:
            conn = self._connect()
            try:
                conn.execute("PRAGMA busy_timeout=0")
                conn.execute("PRAGMA foreign_keys=ON")
                conn.execute("PRAGMA synchronous=NORMAL")
                # never on the loop: a checkpoint writes the database file and syncs it (tens
                # to hundreds of ms on a busy disk); _committed has it done on a thread
                conn.execute("PRAGMA wal_autocheckpoint=0")
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def warm(self) -> None:
        """Open the connection now (at start-up), not at the first batch while callers wait."""
        import sqlite3

        with contextlib.suppress(sqlite3.OperationalError):  # the first batch tries again
            self._connection()

    def _committed(self) -> None:
        """Every :attr:`CHECKPOINT_EVERY` commits, a passive checkpoint on a thread of its own
        (it waits for no reader or writer, and none waits for it)."""
        self._commits += 1
        if self._commits < self.CHECKPOINT_EVERY:
            return
        if self._checkpointing is not None and not self._checkpointing.done():
            return
        self._commits = 0
        if self._checkpointer is None:
            self._checkpointer = ThreadPoolExecutor(1, thread_name_prefix="sqlite-checkpoint")
        self._checkpointing = self._checkpointer.submit(self._checkpoint)

    def _checkpoint(self) -> None:
        try:
            if self._checkpoint_conn is None:
                self._checkpoint_conn = self._connect()
                self._checkpoint_conn.execute("PRAGMA busy_timeout=0")
            self._checkpoint_conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except Exception as exc:  # the next one, or SQLite's own at 1,000 pages, catches up
            log.warning("WAL checkpoint failed: %s", exc)

    def _close_checkpointer(self) -> None:
        if self._checkpoint_conn is not None:
            self._checkpoint_conn.close()
            self._checkpoint_conn = None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._checkpointer is not None:
            self._checkpointer.submit(self._close_checkpointer)
            self._checkpointer.shutdown(wait=True)
            self._checkpointer = None

    def record(
        self,
        items: Sequence[tuple[CallEvent, datetime]],
        project: Callable[[dict[str, list[CallEvent]]], list[CallRecord] | None],
    ) -> set[str] | None:
        """Store the events and save their calls as ``project`` makes them from their
        histories, committed; the dedup keys of the events that were new. ``None``, with
        nothing written, when the database is locked or ``project`` declines (returns
        ``None``: a call whose window must be followed in the unit of work)."""
        import sqlite3

        try:
            conn = self._connection()
        except sqlite3.OperationalError:  # cannot open it now: the unit of work's way
            return None
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:  # locked by another process: the unit of work waits
            return None
        try:
            stored = self._insert(conn, items)
            touched = sorted({ev.call_id for ev, _ in items if ev.dedup_key() in stored})
            if touched:
                records = project(self._history(conn, touched))
                if records is None:
                    conn.execute("ROLLBACK")
                    return None
                self._save(conn, records, max(n for _, n in items))
            conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            self._rollback(conn)
            if "locked" in str(exc) or "busy" in str(exc):
                return None
            raise
        except BaseException:
            self._rollback(conn)
            raise
        self._committed()
        return stored

    def _rollback(self, conn) -> None:
        if conn.in_transaction:
            conn.execute("ROLLBACK")

    @staticmethod
    def _insert(conn, items) -> set[str]:
        return {k for (k,) in conn.execute(*_sqlite_insert(items)).fetchall()}

    @staticmethod
    def _history(conn, call_ids: Sequence[str]) -> dict[str, list[CallEvent]]:
        rows = conn.execute(*_sqlite_history(call_ids)).fetchall()
        return _by_call(call_ids, rows, from_sqlite_instant)

    @staticmethod
    def _save(conn, records: Sequence[CallRecord], now: datetime) -> None:
        conn.executemany(SqliteEvents._UPSERT_CALLS, _sqlite_call_rows(records, now))


def _sqlite_insert(items: Sequence[tuple[CallEvent, datetime]]) -> tuple[str, list[Any]]:
    """The INSERT of a batch's events, RETURNING the dedup keys of those that were new."""
    rows = event_rows(items)
    values = ", ".join(["(?, ?, ?, ?, ?, ?, ?)"] * len(rows))
    params: list[Any] = []
    for r in rows:
        params += [
            r["call_id"],
            r["event"],
            sqlite_instant(r["at"]),
            sqlite_instant(r["received_at"]),
            r["source"],
            r["data"],
            r["dedup_key"],
        ]
    sql = (
        f"INSERT INTO call_events ({', '.join(EVENT_COLUMNS)}) VALUES {values} "
        "ON CONFLICT (dedup_key) DO NOTHING RETURNING dedup_key"
    )
    return sql, params


def _sqlite_history(call_ids: Sequence[str]) -> tuple[str, list[str]]:
    sql = (
        "SELECT event, call_id, at, data, source, dedup_key FROM call_events "
        f"WHERE call_id IN ({', '.join('?' * len(call_ids))}) ORDER BY call_id, at, id"
    )
    return sql, list(call_ids)


def _sqlite_call_rows(records: Sequence[CallRecord], now: datetime) -> list[tuple]:
    stamp = sqlite_instant(now)
    return [
        (
            rec.call_id,
            stamp,
            *(
                sqlite_instant(getattr(rec, f)) if f in _INSTANTS else getattr(rec, f)
                for f in RECORD_FIELDS
            ),
        )
        for rec in records
    ]


_INLINE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def inline_sqlite(engine) -> InlineSqliteEvents | None:
    """This engine's :class:`InlineSqliteEvents`, or ``None`` where there is none to have:
    not SQLite, driver SQL off, or a database another connection would not see (in memory).
    Its connection closes when the engine is disposed."""
    if not DRIVER_SQL or engine.dialect.name != "sqlite":
        return None
    sync = engine.sync_engine
    found = _INLINE.get(sync, False)
    if found is not False:
        return found
    url = engine.url
    name = url.database or ""
    if name in ("", ":memory:") or "memory" in str(url.query.get("mode", "")):
        writer = None
    else:
        import sqlite3

        from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite

        args, kwargs = SQLiteDialect_pysqlite().create_connect_args(url)
        kwargs = {**kwargs, "isolation_level": None, "check_same_thread": False}
        writer = InlineSqliteEvents(lambda: sqlite3.connect(*args, **kwargs))
        sa_event.listen(sync, "engine_disposed", lambda _engine: writer.close())
    _INLINE[sync] = writer
    return writer
