"""Repositories: rows in, plain domain objects out. The only place that writes SQL.

One concern over ~600 lines: the registry's, policy's, accounts' and lockout's tables and the
unit of work that spans them all (the call-timing model's repositories are in
``call_store.py``). The certificate read path (``CertificateReader``) sits here because it
compiles the same queries as ``CertificateRepository`` once and runs them on the driver.
"""

from __future__ import annotations

import asyncio
import sqlite3
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from types import SimpleNamespace
from typing import Any, ClassVar

from sqlalchemy import (
    Connection,
    Date,
    and_,
    bindparam,
    delete,
    func,
    insert,
    literal_column,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncSession,
    async_sessionmaker,
)

from callcenter.adapters import db
from callcenter.adapters import tables as t
from callcenter.adapters.agent_store import last_calls_select
from callcenter.adapters.event_sql import from_sqlite_instant, sqlite_instant, upsert
from callcenter.domain.calls import (
    Extension,
    OralWindow,
    Ticket,
    TicketStatus,
    WindowStatus,
    timeline,
)
from callcenter.domain.certificates import (
    Certificate,
    Contact,
    HolderType,
    LookupStatus,
    Service,
)
from callcenter.domain.events import CallEvent
from callcenter.domain.policy import PolicyVersion


def _cert_from_row(row: Mapping, contacts: list[Contact]) -> Certificate:
    first = row["first_request_at"]
    return Certificate(
        number=row["number"],
        holder_type=HolderType(row["holder_type"]),
        holder_name=row["holder_name"],
        organisation=row["organisation"],
        product=row["product"],
        version=row["version"],
        valid_from=row["valid_from"],
        valid_to=row["valid_to"],
        services=tuple(Service(s) for s in row["services"].split(";") if s),
        contacts=contacts,
        first_request_at=first.astimezone(UTC) if first is not None else None,
    )


def _certificate_query(number):
    c, k = t.certificates, t.certificate_contacts
    return (
        select(c, k.c.full_name, k.c.phone)
        .outerjoin(k, k.c.certificate_id == c.c.id)
        .where(c.c.number == number)
        .order_by(k.c.id)
    )


def _phone_query(phone):
    k, c = t.certificate_contacts, t.certificates.c
    ids = select(k.c.certificate_id).where(k.c.phone == phone)
    return select(c.number).where(c.id.in_(ids)).order_by(c.number)


def _phone_certificates_query(phone):
    """Every certificate naming ``phone`` as a contact, with all its contacts: one query."""
    c, k = t.certificates, t.certificate_contacts
    ids = select(k.c.certificate_id).where(k.c.phone == phone)
    return (
        select(c, k.c.full_name, k.c.phone)
        .outerjoin(k, k.c.certificate_id == c.c.id)
        .where(c.c.id.in_(ids))
        .order_by(c.c.number, k.c.id)
    )


def _certificates_from_rows(rows: Sequence[Mapping]) -> list[Certificate]:
    """Rows of several certificates, each with its contacts, ordered by number."""
    out: list[Certificate] = []
    start = 0
    for i in range(1, len(rows) + 1):
        if i == len(rows) or rows[i]["number"] != rows[start]["number"]:
            out.append(_certificate_from_rows(rows[start:i]))
            start = i
    return out


def _certificate_from_rows(rows: Sequence[Mapping]) -> Certificate | None:
    if not rows:
        return None
    contacts = [Contact(r["full_name"], r["phone"]) for r in rows if r["phone"] is not None]
    return _cert_from_row(rows[0], contacts)


# Built once with bound parameters: building a statement per call (and its cache key from
# the literal) cost more Python than running it.
_CERTIFICATE_Q = _certificate_query(bindparam("number"))
_PHONE_Q = _phone_query(bindparam("phone"))
_PHONE_CERTIFICATES_Q = _phone_certificates_query(bindparam("phone"))


def select_certificate(conn: Connection, number: str) -> Certificate | None:
    """One certificate with its contacts, in one indexed query."""
    rows = conn.execute(_CERTIFICATE_Q, {"number": number}).mappings().all()
    return _certificate_from_rows(rows)


def select_by_phone(conn: Connection, phone: str) -> list[Certificate]:
    numbers = conn.execute(_PHONE_Q, {"phone": phone}).scalars().all()
    return [cert for n in numbers if (cert := select_certificate(conn, n)) is not None]


#: inlined, not bound: the reader's compiled queries take only their named parameters
UNKNOWN_STATUS = literal_column(f"'{LookupStatus.UNKNOWN.value}'")


def _failures_query(since, caller, number):
    """Guesses (UNKNOWN numbers) since ``since``: by this caller ('' = every caller without a
    caller ID, one shared bucket) and against this number. A real certificate's lookups
    (EXPIRED, NOT_COVERED, ...) are not guesses and are not counted."""
    f = t.ivr_failures.c
    guess = f.status == UNKNOWN_STATUS
    by_caller = (
        select(func.count()).where(f.caller == caller, f.at >= since, guess).scalar_subquery()
    )
    by_number = (
        select(func.count())
        .where(f.certificate_number == number, f.at >= since, guess)
        .scalar_subquery()
    )
    return select(by_caller.label("by_caller"), by_number.label("by_number"))


_FAILURES_Q = _failures_query(bindparam("since"), bindparam("caller"), bindparam("number"))


class _PgQuery:
    """A Core statement compiled once for asyncpg ($n parameters, in their SQL order)."""

    def __init__(self, stmt) -> None:
        compiled = stmt.compile(dialect=postgresql.dialect(paramstyle="numeric_dollar"))
        self.sql = str(compiled)
        self.names = list(compiled.positiontup or [])

    def args(self, **values) -> list:
        return [values[n] for n in self.names]


#: the screen-pop's reads, each by the call's id alone: on PostgreSQL one statement (_PgPop)
POP_READS = ("pop_call", "pop_window", "pop_ticket", "pop_last_calls", "pop_open_tickets")


def _pop_queries() -> dict:
    """The screen-pop's reads (AgentDesk.pop): the call's row, its window with its extensions
    (one row each, joined), its ticket; the certificate's other calls and unsettled tickets
    (the certificate found by the call's id in the same statement). Constants are inlined:
    the reader's compiled queries take only their named parameters."""
    c, w, e, k = t.calls.c, t.oral_windows.c, t.window_extensions.c, t.tickets.c
    call_id = bindparam("call_id")
    this = t.calls.alias("this_call")  # an alias: not correlated with the outer calls
    number = (
        select(this.c.certificate_number)
        .where(this.c.call_id == call_id, this.c.certificate_number != literal_column("''"))
        .scalar_subquery()
    )
    unsettled = and_(
        k.answered_at.is_(None),
        k.status != literal_column(f"'{TicketStatus.WITHDRAWN.value}'"),
    )
    return {
        "pop_call": select(t.calls).where(c.call_id == call_id),
        "pop_window": select(
            t.oral_windows,
            e.at.label("ext_at"),
            e.seconds.label("ext_seconds"),
            e.reason.label("ext_reason"),
            e.by.label("ext_by"),
            e.id.label("ext_id"),
        )
        .outerjoin(t.window_extensions, e.call_id == w.call_id)
        .where(w.call_id == call_id)
        .order_by(e.id),
        "pop_ticket": select(t.tickets).where(k.call_id == call_id),
        "pop_last_calls": last_calls_select(number, call_id, literal_column("5")),
        "pop_open_tickets": select(t.tickets)
        .where(k.certificate_number == number, unsettled)
        .order_by(k.due_at, k.id)
        .limit(literal_column("20"))
        .offset(literal_column("0")),
    }


class _PgPop:
    """The pop's reads (:data:`POP_READS`) as one PostgreSQL statement: each read an array of
    its rows as anonymous records, which asyncpg decodes with their columns' own types. One
    round trip instead of five: a round trip's send alone cost ~100 µs of CPU here."""

    #: each read's order again outside its subquery (an array keeps the order it is given)
    ORDER: ClassVar[dict[str, str]] = {
        "pop_window": "q.ext_id",
        "pop_last_calls": "q.started_at DESC, q.call_id DESC",
        "pop_open_tickets": "q.due_at, q.id",
    }

    def __init__(self, queries: Mapping) -> None:
        parts, self.keys = [], []
        for name in POP_READS:
            stmt = queries[name]
            q = _PgQuery(stmt)
            if set(q.names) != {"call_id"} or "$2" in q.sql:
                raise ValueError(f"{name}: a pop read takes the call's id alone, as $1")
            order = f" ORDER BY {self.ORDER[name]}" if name in self.ORDER else ""
            parts.append(f"ARRAY(SELECT q FROM ({q.sql}) AS q{order}) AS {name}")
            self.keys.append([c.key for c in stmt.selected_columns])
        self.sql = "SELECT " + ",\n".join(parts)

    def rows(self, record) -> list[list[dict]]:
        """The reads' rows, by column name, from the statement's one row."""
        return [
            [dict(zip(keys, r, strict=True)) for r in record[i]] for i, keys in enumerate(self.keys)
        ]


_READER_QUERIES = {
    "certificate": _CERTIFICATE_Q,
    "phone": _PHONE_CERTIFICATES_Q,
    "failures": _FAILURES_Q,
    **_pop_queries(),
}


class _SqliteQuery:
    """A Core statement compiled once for sqlite3 (``?`` parameters), with its columns'
    conversions done by hand as SQLAlchemy would: dates and UTC instants are stored as text.
    Running it on a raw sqlite3 connection costs ~20 µs against ~150 µs through a Connection.
    """

    def __init__(self, stmt) -> None:
        compiled = stmt.compile(dialect=sqlite.dialect())
        self.sql = str(compiled)
        self.names = list(compiled.positiontup or [])
        self.keys = [c.key for c in stmt.selected_columns]
        self._convert = [_sqlite_reader(c.type) for c in stmt.selected_columns]

    def rows(self, conn, **values) -> list[dict]:
        args = [_sqlite_param(values[n]) for n in self.names]
        keys, convert = self.keys, self._convert
        return [
            {
                k: (f(v) if f is not None and v is not None else v)
                for k, f, v in zip(keys, convert, r, strict=True)
            }
            for r in conn.execute(self.sql, args).fetchall()
        ]


def _sqlite_reader(type_):
    if isinstance(type_, t.UTCDateTime):
        return from_sqlite_instant
    if isinstance(type_, Date):
        return date.fromisoformat
    return None


def _sqlite_param(value):
    return sqlite_instant(value) if isinstance(value, datetime) else value


@dataclass(frozen=True)
class PopParts:
    """The stored rows a screen-pop is built of (``CertificateReader.pop_parts``)."""

    call: dict[str, Any]
    window: OralWindow | None
    ticket: Ticket | None
    last_calls: list[dict]
    open_tickets: list[Ticket]


def _pop_parts(results: Sequence[Sequence[Mapping]]) -> PopParts | None:
    """The pop's parts from the rows of :data:`POP_READS`, in that order."""
    from callcenter.adapters.call_store import _ticket_from

    rows, found, ticket_rows, last_rows, open_rows = results
    if not rows:
        return None
    call = dict(rows[0])
    window = None
    if found:
        w = found[0]
        ext = [x for x in found if x["ext_at"] is not None]
        window = OralWindow(
            w["call_id"],
            w["opened_at"],
            w["deadline_at"],
            w["warn_at"],
            WindowStatus(w["status"]),
            policy_id=w["policy_id"],
            length_seconds=w["length_seconds"],
            warned_at=w["warned_at"],
            closed_at=w["closed_at"],
            extensions=[
                Extension(x["ext_at"], x["ext_seconds"], x["ext_reason"], x["ext_by"]) for x in ext
            ],
            recorded_at=w["recorded_at"],
        )
    ticket = _ticket_from(SimpleNamespace(**ticket_rows[0])) if ticket_rows else None
    last = [dict(r) for r in last_rows]
    tickets: list[Ticket] = [_ticket_from(SimpleNamespace(**r)) for r in open_rows]
    return PopParts(call, window, ticket, last, tickets)


class CertificateReader:
    """The lookup hot path, and the screen-pop's (``pop_parts``), outside any unit of work.

    SQLAlchemy's async engine costs about 0.7 ms a query here (greenlet and thread hops, pool
    checkout, BEGIN and ROLLBACK round trips), which caps lookups near 1,500/s. A point read
    needs none of it: the Core queries are compiled once to SQL text and run on the driver
    itself, on SQLite synchronously on the loop thread through a read-only sqlite3 connection
    of their own (~20-30 µs; WAL readers never wait for the writer), on PostgreSQL on asyncpg's
    own pool as prepared statements.
    """

    def __init__(self, url: str, pool_size: int = 5) -> None:
        u = make_url(url)
        self._path: str | None = None
        self._conn: sqlite3.Connection | None = None
        self._pool = None
        self._pool_lock = asyncio.Lock()
        self._pool_size = pool_size
        if u.get_backend_name() == "sqlite":
            # the URL's own options (uri=true, mode=..., timeout=...) as SQLAlchemy reads them
            self._path = u.database or ":memory:"
            self._connect_args = SQLiteDialect_pysqlite().create_connect_args(u)
            self._sqlite_q = {name: _SqliteQuery(q) for name, q in _READER_QUERIES.items()}
        elif u.get_backend_name() == "postgresql":
            self._dsn = u.set(drivername="postgresql").render_as_string(hide_password=False)
            self._pg_q = {name: _PgQuery(q) for name, q in _READER_QUERIES.items()}
            self._pg_pop = _PgPop(_READER_QUERIES)
        else:
            raise ValueError(
                f"database {u.get_backend_name()!r} is not supported: use SQLite or PostgreSQL"
            )

    async def _pg(self):
        if self._pool is None:
            async with self._pool_lock:
                if self._pool is None:
                    import asyncpg

                    self._pool = await asyncpg.create_pool(
                        self._dsn,
                        min_size=1,
                        max_size=self._pool_size,
                        max_inactive_connection_lifetime=300,
                        timeout=db.CONNECT_TIMEOUT_SECONDS,
                        reset=_reader_reset,
                    )
        return self._pool

    def _sqlite(self) -> sqlite3.Connection:
        """One read-only connection, autocommit: every read sees the latest commit."""
        if self._conn is None:
            args, kwargs = self._connect_args
            kwargs = {**kwargs, "isolation_level": None, "check_same_thread": False}
            conn = sqlite3.connect(*args, **kwargs)
            conn.execute("PRAGMA busy_timeout=200")
            conn.execute("PRAGMA query_only=ON")
            self._conn = conn
        return self._conn

    async def _fetch(self, name: str, **values) -> Sequence[Mapping]:
        """Rows of one of the reader's queries, by column name, on whichever database."""
        if self._path is not None:
            return self._sqlite_q[name].rows(self._sqlite(), **values)
        q = self._pg_q[name]
        return await (await self._pg()).fetch(q.sql, *q.args(**values))

    async def get(self, number: str) -> Certificate | None:
        return _certificate_from_rows(await self._fetch("certificate", number=number))

    async def pop_parts(self, call_id: str) -> PopParts | None:
        """What the screen-pop shows of a call (None: no such call), read as the lookups are:
        on SQLite on the loop thread in one read transaction (no worker-thread trips, which
        under load were most of a pop's time), on PostgreSQL in one statement (``_PgPop``: one
        round trip, one snapshot, no BEGIN/COMMIT).
        The same rows as the units of work's repositories read (AgentDesk.pop's fallback)."""
        if self._path is not None:
            conn = self._sqlite()
            conn.execute("BEGIN")  # one snapshot for the five reads
            try:  # synchronous: no suspension
                return _pop_parts(
                    [self._sqlite_q[n].rows(conn, call_id=call_id) for n in POP_READS]
                )
            finally:
                conn.execute("COMMIT")
        # the five reads in one statement, one snapshot (no BEGIN/COMMIT round trips); run
        # at once on five connections instead, they cost more CPU than the trips they saved
        pop = self._pg_pop
        return _pop_parts(pop.rows(await (await self._pg()).fetchrow(pop.sql, call_id)))

    async def failures(self, since: datetime, caller: str, number: str) -> tuple[int, int]:
        """Guessed IVR numbers since ``since``: (from this caller, against this number); the
        caller ``""`` is every caller without a caller ID together."""
        (row,) = await self._fetch("failures", since=since, caller=caller, number=number)
        return row["by_caller"], row["by_number"]

    async def by_phone(self, phone: str) -> list[Certificate]:
        """The caller-ID shortcut's read: the certificates and their contacts in one query
        (not one for the numbers and then one per certificate)."""
        return _certificates_from_rows(await self._fetch("phone", phone=phone))

    async def warm(self, connections: int = 2) -> None:
        """Open what the first lookups would otherwise open while callers wait (a burst of
        calls right after a start): on PostgreSQL ``connections`` of the pool, each with the
        reader's statements prepared; on SQLite its one connection and statements."""
        values = {
            "number": "",
            "phone": "",
            "caller": "",
            "call_id": "",
            "since": datetime.now(UTC),
        }
        if self._path is not None:
            for q in self._sqlite_q.values():
                q.rows(self._sqlite(), **values)
            return
        pool = await self._pg()
        n = max(1, min(connections, self._pool_size))
        got = await asyncio.gather(*(pool.acquire() for _ in range(n)), return_exceptions=True)
        held = [conn for conn in got if not isinstance(conn, BaseException)]
        try:
            for conn in held:
                for q in self._pg_q.values():
                    await conn.fetch(q.sql, *q.args(**values))
        finally:
            for conn in held:
                await pool.release(conn)
        for failed in got:
            if isinstance(failed, BaseException):
                raise failed

    async def dispose(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._pool is not None:
            await self._pool.close()


async def _reader_reset(conn) -> None:
    """The reader's connections only read, one statement at a time in autocommit: there is
    nothing to undo when one goes back to the pool. asyncpg's default reset would send
    ``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`` after every read: a
    second round trip for each lookup a caller waits on."""
    if conn.is_in_transaction():  # never, unless a read was cut short mid-transaction
        await conn.execute("ROLLBACK")


class CertificateRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, number: str) -> Certificate | None:
        return await self.session.run_sync(lambda ss: select_certificate(ss.connection(), number))

    async def find_by_phone(self, phone: str) -> list[Certificate]:
        return await self.session.run_sync(lambda ss: select_by_phone(ss.connection(), phone))

    async def count(self) -> int:
        return (
            await self.session.execute(select(func.count()).select_from(t.certificates))
        ).scalar_one()

    async def existing_numbers(self, numbers: Sequence[str]) -> set[str]:
        c = t.certificates.c
        rows = await self.session.execute(select(c.number).where(c.number.in_(numbers)))
        return set(rows.scalars())

    async def upsert_many(self, certs: Sequence[Certificate], now: datetime) -> None:
        """Insert or replace whole certificates (with their contacts) by number."""
        if not certs:
            return
        dialect = self.session.bind.dialect.name
        rows = [
            {
                "number": x.number,
                "holder_type": x.holder_type.value,
                "holder_name": x.holder_name,
                "organisation": x.organisation,
                "product": x.product,
                "version": x.version,
                "valid_from": x.valid_from,
                "valid_to": x.valid_to,
                "services": ";".join(s.value for s in x.services),
                "created_at": now,
                "updated_at": now,
            }
            for x in certs
        ]
        stmt = upsert(dialect, t.certificates)
        stmt = stmt.on_conflict_do_update(
            index_elements=[t.certificates.c.number],
            set_={
                col: stmt.excluded[col]
                for col in (
                    "holder_type",
                    "holder_name",
                    "organisation",
                    "product",
                    "version",
                    "valid_from",
                    "valid_to",
                    "services",
                    "updated_at",
                )
            },
        )
        await self.session.execute(stmt, rows)
        c = t.certificates.c
        id_rows = await self.session.execute(
            select(c.id, c.number).where(c.number.in_([x.number for x in certs]))
        )
        ids = {number: cid for cid, number in id_rows.all()}
        k = t.certificate_contacts
        await self.session.execute(delete(k).where(k.c.certificate_id.in_(list(ids.values()))))
        contact_rows = [
            {"certificate_id": ids[x.number], "full_name": ct.full_name, "phone": ct.phone}
            for x in certs
            for ct in x.contacts
        ]
        if contact_rows:
            await self.session.execute(insert(k), contact_rows)

    async def mark_first_request(self, number: str, at: datetime) -> None:
        """R-7: remember the first request of a holder (only the first one sticks)."""
        c = t.certificates.c
        await self.session.execute(
            update(t.certificates)
            .where(c.number == number, c.first_request_at.is_(None))
            .values(first_request_at=at)
        )


class PolicyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def list(self) -> list[PolicyVersion]:
        p = t.policy_versions
        rows = (await self.session.execute(select(p).order_by(p.c.effective_from, p.c.id))).all()
        return [
            PolicyVersion(
                id=r.id,
                effective_from=r.effective_from,
                published_at=r.published_at,
                oral_window_seconds=r.oral_window_seconds,
                warning_seconds=r.warning_seconds,
                written_answer_hours=r.written_answer_hours,
                day_start=r.day_start,
                day_end=r.day_end,
                window_start=r.window_start,
                note=r.note,
            )
            for r in rows
        ]

    async def add(self, v: PolicyVersion) -> int:
        result = await self.session.execute(
            insert(t.policy_versions).values(
                effective_from=v.effective_from,
                published_at=v.published_at,
                oral_window_seconds=v.oral_window_seconds,
                warning_seconds=v.warning_seconds,
                written_answer_hours=v.written_answer_hours,
                day_start=v.day_start,
                day_end=v.day_end,
                window_start=v.window_start,
                note=v.note,
            )
        )
        return result.inserted_primary_key[0]


class AuthRepository:
    """API tokens, UI users and their sessions."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- tokens ---

    async def add_token(self, name: str, role: str, token_hash: str, now: datetime) -> None:
        await self.session.execute(
            insert(t.api_tokens).values(name=name, role=role, token_hash=token_hash, created_at=now)
        )

    async def token_role(self, token_hash: str) -> tuple[str, str] | None:
        a = t.api_tokens.c
        row = (
            await self.session.execute(
                select(a.name, a.role).where(a.token_hash == token_hash, a.revoked_at.is_(None))
            )
        ).first()
        return (row.name, row.role) if row else None

    async def live_token_named(self, name: str) -> bool:
        a = t.api_tokens.c
        query = select(a.id).where(a.name == name, a.revoked_at.is_(None)).limit(1)
        return (await self.session.execute(query)).first() is not None

    async def tokens(self) -> list:
        """Every token, never its hash: name, role, created_at, revoked_at."""
        a = t.api_tokens.c
        query = select(a.name, a.role, a.created_at, a.revoked_at).order_by(a.created_at, a.id)
        return list((await self.session.execute(query)).all())

    async def revoke_tokens(self, name: str, now: datetime) -> list[str]:
        """Revokes the live tokens of that name; returns their hashes (to drop from caches)."""
        a = t.api_tokens.c
        live = (a.name == name, a.revoked_at.is_(None))
        hashes = list((await self.session.execute(select(a.token_hash).where(*live))).scalars())
        if hashes:
            await self.session.execute(update(t.api_tokens).where(*live).values(revoked_at=now))
        return hashes

    # --- users ---

    async def add_user(
        self, login: str, role: str, password_hash: str, display_name: str, now: datetime
    ) -> None:
        await self.session.execute(
            insert(t.users).values(
                login=login,
                role=role,
                password_hash=password_hash,
                display_name=display_name,
                created_at=now,
            )
        )

    async def user(self, login: str):
        """An enabled user's row, or None."""
        u = t.users.c
        return (
            await self.session.execute(
                select(t.users).where(u.login == login, u.disabled_at.is_(None))
            )
        ).first()

    async def user_exists(self, login: str) -> bool:
        u = t.users.c
        return (
            await self.session.execute(select(u.id).where(u.login == login))
        ).first() is not None

    async def users(self) -> list:
        u = t.users.c
        query = select(u.login, u.display_name, u.role, u.created_at, u.disabled_at).order_by(
            u.login
        )
        return list((await self.session.execute(query)).all())

    async def set_disabled(self, login: str, at: datetime | None) -> bool | None:
        """Disables (``at``) or enables (None) a user; None if there is no such user, else
        whether anything changed."""
        u = t.users.c
        found = (
            await self.session.execute(select(u.id, u.disabled_at).where(u.login == login))
        ).first()
        if found is None:
            return None
        if (found.disabled_at is None) == (at is None):
            return False
        await self.session.execute(update(t.users).where(u.id == found.id).values(disabled_at=at))
        return True

    async def set_password(self, login: str, password_hash: str) -> bool:
        u = t.users.c
        result = await self.session.execute(
            update(t.users).where(u.login == login).values(password_hash=password_hash)
        )
        return result.rowcount > 0

    # --- sessions ---

    async def add_session(
        self, token_hash: str, user_id: int, now: datetime, expires_at: datetime
    ) -> None:
        await self.session.execute(
            insert(t.sessions).values(
                token_hash=token_hash, user_id=user_id, created_at=now, expires_at=expires_at
            )
        )

    async def session_user(self, token_hash: str, now: datetime):
        """(login, role, expires_at) of a live session of an enabled user, or None: one read
        on the unique hash joined to the user by its primary key."""
        s, u = t.sessions.c, t.users.c
        query = (
            select(u.login, u.role, s.expires_at)
            .join_from(t.sessions, t.users, s.user_id == u.id)
            .where(s.token_hash == token_hash, s.expires_at > now, u.disabled_at.is_(None))
        )
        return (await self.session.execute(query)).first()

    async def live_sessions(self, token_hashes: Sequence[str], now: datetime) -> set[str]:
        """Which of these session hashes are live sessions of enabled users: one read for
        many (the push sockets' periodic re-check)."""
        s, u = t.sessions.c, t.users.c
        query = (
            select(s.token_hash)
            .join_from(t.sessions, t.users, s.user_id == u.id)
            .where(s.token_hash.in_(token_hashes), s.expires_at > now, u.disabled_at.is_(None))
        )
        return set((await self.session.execute(query)).scalars())

    async def delete_session(self, token_hash: str) -> None:
        await self.session.execute(delete(t.sessions).where(t.sessions.c.token_hash == token_hash))

    async def delete_sessions_of(self, login: str) -> int:
        users = select(t.users.c.id).where(t.users.c.login == login).scalar_subquery()
        result = await self.session.execute(delete(t.sessions).where(t.sessions.c.user_id == users))
        return result.rowcount

    async def delete_expired_sessions(self, now: datetime) -> None:
        await self.session.execute(delete(t.sessions).where(t.sessions.c.expires_at <= now))


class EventRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def for_call(self, call_id: str) -> list[CallEvent]:
        """The call's events in the order they happened (see ``timeline``)."""
        from callcenter.adapters.event_sql import CoreEvents

        return timeline((await CoreEvents(self.session).history([call_id]))[call_id])


class LockoutRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add_failure(
        self, call_id: str, caller: str | None, number: str | None, status: str, at: datetime
    ) -> None:
        await self.session.execute(
            insert(t.ivr_failures).values(
                call_id=call_id, caller=caller, certificate_number=number, status=status, at=at
            )
        )


class _TaskLock:
    """An asyncio lock the holding task may take again (a use case that reads the policy
    inside its own unit of work must not wait for itself)."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._owner: asyncio.Task | None = None
        self._depth = 0

    async def acquire(self) -> None:
        me = asyncio.current_task()
        if self._owner is me:
            self._depth += 1
            return
        await self._lock.acquire()
        self._owner, self._depth = me, 1

    def release(self) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._owner = None
            self._lock.release()


_SQLITE_WRITERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class UnitOfWork:
    """One AsyncSession per use case: load, act, commit; rolled back unless committed.

    On SQLite, units of work of one engine take turns: SQLite has one writer at a time, and a
    WAL read transaction that later writes fails at once (SQLITE_BUSY_SNAPSHOT, which
    busy_timeout does not retry) if another writer committed in between. PostgreSQL units run
    concurrently and serialise per call with row locks.
    """

    def __init__(self, sessions: async_sessionmaker, *, read_only: bool = False) -> None:
        self._sessions = sessions
        self._lock: _TaskLock | None = None
        #: a unit that only reads (the agent's pop) need not wait its turn on SQLite: WAL
        #: readers never block the writer nor wait for it; it must never commit
        self._read_only = read_only

    async def __aenter__(self) -> UnitOfWork:
        from callcenter.adapters.agent_store import AgentRepository
        from callcenter.adapters.board_sql import SupervisorReads
        from callcenter.adapters.call_store import (
            CallRepository,
            HelpdeskSyncRepository,
            OutboxRepository,
            ReviewRepository,
            TicketRepository,
            WindowRepository,
        )
        from callcenter.adapters.retention_store import RetentionRepository

        bind = self._sessions.kw.get("bind")
        if bind is not None and bind.dialect.name == "sqlite" and not self._read_only:
            self._lock = _SQLITE_WRITERS.setdefault(bind.sync_engine, _TaskLock())
            await self._lock.acquire()
        self.session = self._sessions()
        self.calls = CallRepository(self.session)
        self.windows = WindowRepository(self.session)
        self.tickets = TicketRepository(self.session)
        self.outbox = OutboxRepository(self.session)
        self.helpdesk_sync = HelpdeskSyncRepository(self.session)
        self.reviews = ReviewRepository(self.session)
        self.certificates = CertificateRepository(self.session)
        self.policies = PolicyRepository(self.session)
        self.auth = AuthRepository(self.session)
        self.events = EventRepository(self.session)
        self.lockouts = LockoutRepository(self.session)
        self.agents = AgentRepository(self.session)
        self.retention = RetentionRepository(self.session)
        self.supervisor = SupervisorReads(self.session)
        return self

    async def __aexit__(self, *exc) -> None:
        try:
            await self.session.rollback()
        finally:
            await self.session.close()
            if self._lock is not None:
                self._lock.release()

    async def call_log(self):
        """The call log's batch statements, in this unit of work's transaction."""
        from callcenter.adapters.event_sql import for_session

        return await for_session(self.session)

    async def commit(self) -> None:
        if self._read_only:
            raise RuntimeError("a read-only unit of work does not commit")
        await self.session.commit()

    def inline_call_log(self):
        """The call log's batch run synchronously on the loop thread, where this engine has
        it (a SQLite file: :class:`~callcenter.adapters.event_sql.InlineSqliteEvents`), else
        ``None``. Only inside this unit of work: it holds the engine's one-writer lock."""
        from callcenter.adapters.event_sql import inline_sqlite

        bind = self._sessions.kw.get("bind")
        return inline_sqlite(bind) if bind is not None else None


def chunks(items: Sequence, size: int) -> Iterable[Sequence]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
