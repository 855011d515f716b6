"""Registry, policy, auth and migrations on real SQLite and real PostgreSQL."""

import asyncio
from datetime import date, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from callcenter.adapters import db
from callcenter.adapters.tables import CALLER_TRIGRAM_INDEX, compared, metadata
from callcenter.domain.certificates import (
    Certificate,
    Contact,
    HolderType,
    LookupStatus,
    Service,
)
from callcenter.domain.errors import Conflict, PolicyRefused, Unauthorized
from callcenter.domain.policy import PolicyVersion


async def test_models_and_migrations_agree(container):
    def diff(conn):
        ctx = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_object": compared}
        )
        return compare_metadata(ctx, metadata)

    async with container.engine.connect() as conn:
        assert await conn.run_sync(diff) == []
    assert await db.current_revision(container.engine) == db.head_revision()


async def test_upgrade_twice_is_harmless(container):
    await db.upgrade(container.engine)
    assert await db.current_revision(container.engine) == db.head_revision()


async def test_the_caller_trigram_migration_goes_down_and_up_again(container):
    """0010 builds the caller number's trigram index on PostgreSQL (the box's postgres may
    create pg_trgm) and nothing on SQLite; it downgrades to 0009 and upgrades again cleanly."""
    from alembic import command

    def indexes(conn) -> set[str]:
        if conn.dialect.name == "postgresql":
            sql = "SELECT indexname FROM pg_indexes WHERE tablename = 'calls'"
        else:
            sql = "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'calls'"
        return {name for (name,) in conn.exec_driver_sql(sql).all()}

    def down(conn) -> None:
        command.downgrade(db._alembic_config(conn), "0009")

    pg = container.engine.dialect.name == "postgresql"
    async with container.engine.connect() as conn:
        assert (CALLER_TRIGRAM_INDEX in await conn.run_sync(indexes)) is pg
    async with container.engine.begin() as conn:
        await conn.run_sync(down)
    assert await db.current_revision(container.engine) == "0009"
    async with container.engine.connect() as conn:
        assert CALLER_TRIGRAM_INDEX not in await conn.run_sync(indexes)
    await db.upgrade(container.engine)
    assert await db.current_revision(container.engine) == db.head_revision()
    async with container.engine.connect() as conn:
        assert (CALLER_TRIGRAM_INDEX in await conn.run_sync(indexes)) is pg


@pytest.mark.postgres
async def test_without_pg_trgm_the_migration_skips_the_index_and_goes_on(caplog):
    """Where pg_trgm cannot be created (here: the schema already holds a function of that
    name, as an extension of another make might leave it), 0010 logs why, creates no
    trigram index and the database still reaches the head; the filter then scans."""
    from tests.conftest import PG_SKIP, PG_URL, reset_postgres

    if not PG_URL:
        pytest.skip(PG_SKIP)
    await reset_postgres(PG_URL)
    engine = db.create_engine(PG_URL)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "CREATE FUNCTION public.similarity(text, text) RETURNS real"
                    " LANGUAGE sql IMMUTABLE AS 'SELECT 0.0::real'"
                )
            )
        with caplog.at_level("WARNING", logger="callcenter.migrations"):
            await db.upgrade(engine)
        assert await db.current_revision(engine) == db.head_revision()
        async with engine.connect() as conn:
            names = {
                name
                for (name,) in (
                    await conn.execute(
                        text("SELECT indexname FROM pg_indexes WHERE tablename = 'calls'")
                    )
                ).all()
            }
            trgm = (
                await conn.execute(
                    text("SELECT count(*) FROM pg_extension WHERE extname = 'pg_trgm'")
                )
            ).scalar_one()
        assert CALLER_TRIGRAM_INDEX not in names and trgm == 0
        assert "ix_calls_caller_number_started_at" in names  # the rest of 0009/0010 is there
        assert any("pg_trgm cannot be created" in r.getMessage() for r in caplog.records)
    finally:
        await engine.dispose()


def cert(number="123456", **kw):
    base = dict(
        number=number,
        holder_type=HolderType.PERSON,
        holder_name="Щербаков Ёжик Эдуардович",
        organisation="",
        product="Продукт",
        version="5.0.13000",
        valid_from=date(2026, 1, 1),
        valid_to=date(2026, 12, 31),
        contacts=[Contact("Щербаков Ёжик Эдуардович", "+79001234567")],
    )
    base.update(kw)
    return Certificate(**base)


async def test_cyrillic_round_trip_and_lookup(container, clock):
    await container.registry.import_certificates([cert()], clock.now())
    got = await container.registry.lookup("123456", clock.now())
    assert got.status is LookupStatus.VALID
    assert got.certificate.holder_name == "Щербаков Ёжик Эдуардович"
    assert got.certificate.product == "Продукт"
    assert got.certificate.contacts == [Contact("Щербаков Ёжик Эдуардович", "+79001234567")]
    assert got.to_dict()["build"] == "0.13000"


async def test_statuses_on_the_moscow_day(container, clock):
    today = clock.now().date()
    await container.registry.import_certificates(
        [
            cert("111111", valid_to=today - timedelta(days=1)),
            cert(
                "222222", valid_from=today + timedelta(days=1), valid_to=today + timedelta(days=300)
            ),
            cert("333333", services=(Service.INSTALL,)),
        ],
        clock.now(),
    )
    lookup = container.registry.lookup
    assert (await lookup("111111", clock.now())).status is LookupStatus.EXPIRED
    assert (await lookup("222222", clock.now())).status is LookupStatus.NOT_YET_VALID
    assert (await lookup("333333", clock.now(), "install")).status is LookupStatus.VALID
    assert (await lookup("333333", clock.now(), "recovery")).status is LookupStatus.NOT_COVERED
    assert (await lookup("444444", clock.now())).status is LookupStatus.UNKNOWN


async def test_upsert_replaces_data_and_contacts(container, clock):
    created, updated = await container.registry.import_certificates(
        [cert(), cert("654321")], clock.now()
    )
    assert (created, updated) == (2, 0)
    new = cert(
        holder_name="Иванова Анна",
        contacts=[Contact("Иванова Анна", "+79990000000"), Contact("Петров Пётр", "+79991111111")],
    )
    assert await container.registry.import_certificates([new], clock.now()) == (0, 1)
    got = (await container.registry.lookup("123456", clock.now())).certificate
    assert got.holder_name == "Иванова Анна"
    assert [c.phone for c in got.contacts] == ["+79990000000", "+79991111111"]
    async with container.uow() as uow:
        assert await uow.certificates.count() == 2


async def test_find_by_caller_phone(container, clock):
    await container.registry.import_certificates(
        [cert("111111"), cert("222222", contacts=[Contact("Другой", "+79005550000")])], clock.now()
    )
    found = await container.registry.by_phone("89001234567", clock.now())
    assert [r.number for r in found] == ["111111"]
    assert await container.registry.by_phone("unknown", clock.now()) == []


async def test_caller_phone_read_gives_whole_certificates(container, clock):
    """Several certificates for one phone, each with all its contacts, read in one query."""
    both = [Contact("Первый", "+79001234567"), Contact("Второй", "+79005550001")]
    await container.registry.import_certificates(
        [cert("333333", contacts=both), cert("111111"), cert("222222", contacts=both[1:])],
        clock.now(),
    )
    found = await container.reader.by_phone("+79001234567")
    assert [c.number for c in found] == ["111111", "333333"]
    assert found == [await container.reader.get("111111"), await container.reader.get("333333")]
    assert [c.full_name for c in found[1].contacts] == ["Первый", "Второй"]


async def test_first_request_is_remembered_once(container, clock):
    await container.registry.import_certificates([cert()], clock.now())
    async with container.uow() as uow:
        await uow.certificates.mark_first_request("123456", clock.now())
        await uow.certificates.mark_first_request("123456", clock.now() + timedelta(days=1))
        await uow.commit()
        assert (await uow.certificates.get("123456")).first_request_at == clock.now()


async def test_policy_publish_and_book(container, clock):
    svc = container.policy
    soon = clock.now().date() + timedelta(days=14)
    with pytest.raises(PolicyRefused):
        await svc.publish(PolicyVersion(effective_from=soon), clock.now())
    later = clock.now().date() + timedelta(days=15)
    stored = await svc.publish(
        PolicyVersion(effective_from=later, oral_window_seconds=900), clock.now()
    )
    assert stored.id is not None
    book = await svc.book()
    assert [v.oral_window_seconds for v in book.versions] == [600, 900]
    assert (await svc.in_force_at(clock.now())).oral_window_seconds == 600
    clock.advance(15 * 86400)
    assert (await svc.in_force_at(clock.now())).oral_window_seconds == 900


async def test_policy_book_read_once_by_callers_arriving_together(container, clock):
    """Dialogues arriving together while the book is stale (start-up, or every refresh)
    share one read of it, and a version published during a read is not lost to it."""
    from callcenter.services.policy import PolicyService

    reads = 0

    class Counting:
        def __init__(self) -> None:
            self.uow = container.uow()

        async def __aenter__(self):
            nonlocal reads
            reads += 1
            return await self.uow.__aenter__()

        async def __aexit__(self, *exc):
            return await self.uow.__aexit__(*exc)

    svc = PolicyService(Counting, container.policy.base, min_notice_days=15)
    books = await asyncio.gather(*(svc.book() for _ in range(20)))
    assert reads == 1 and all(b is books[0] for b in books)
    await svc.book()
    assert reads == 1  # fresh: no read
    later = clock.now().date() + timedelta(days=15)
    svc._loaded_at = -1e9  # stale: the next caller starts a read...
    pending = asyncio.ensure_future(svc.book())
    await asyncio.sleep(0)
    # ...and a version published while it runs is in the book the next caller gets
    await svc.publish(PolicyVersion(effective_from=later, oral_window_seconds=900), clock.now())
    await pending
    assert [v.oral_window_seconds for v in (await svc.book()).versions] == [600, 900]


async def test_tokens_and_users(container, clock):
    token = await container.auth.create_token("asterisk-1", "pbx", clock.now())
    who = await container.auth.authenticate_token(token)
    assert (who.name, who.role) == ("asterisk-1", "pbx")
    with pytest.raises(Unauthorized):
        await container.auth.authenticate_token(token + "x")
    await container.auth.add_user(
        "оператор", "agent", "пароль-длинный", clock.now(), display_name="Оператор Один"
    )
    assert (await container.auth.login("оператор", "пароль-длинный")).role == "agent"
    with pytest.raises(Unauthorized):
        await container.auth.login("оператор", "wrong-password")
    with pytest.raises(Conflict):
        await container.auth.add_user("оператор", "agent", "другой-пароль", clock.now())


@pytest.mark.postgres
async def test_a_pooled_connection_killed_while_idle_is_replaced(monkeypatch):
    """No pre-ping on busy connections, but one that sat idle is checked before use."""
    from tests.conftest import PG_SKIP, PG_URL

    if not PG_URL:
        pytest.skip(PG_SKIP)
    engine = db.create_engine(PG_URL, pool_size=1)
    killer = db.create_engine(PG_URL, pool_size=1)
    try:
        async with engine.connect() as conn:
            pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        async with killer.connect() as k:
            assert (
                await k.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
            ).scalar_one()
        monkeypatch.setattr(db, "IDLE_PING_SECONDS", -1.0)  # "idle for long enough"
        async with engine.connect() as conn:
            again = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        assert again != pid
    finally:
        await engine.dispose()
        await killer.dispose()


@pytest.mark.postgres
async def test_events_keep_flowing_after_the_database_dropped_busy_connections(clock):
    """A connection closed by the server (a restart) while in recent use is not pooled again:
    no ping on busy connections, so the driver's own 'closed' flag must be heeded."""
    from tests.conftest import PG_SKIP, PG_URL, reset_postgres

    if not PG_URL:
        pytest.skip(PG_SKIP)
    await reset_postgres(PG_URL)
    from callcenter import bootstrap
    from callcenter.config import Settings

    c = bootstrap.build(Settings().replace(database={"url": PG_URL}), clock=clock)
    killer = db.create_engine(PG_URL, pool_size=1)
    try:
        await db.upgrade(c.engine)
        body = {"event": "call_started", "call_id": "1795480300.1", "caller_number": "7900"}
        await c.calls.record(body, clock.now())
        async with killer.connect() as k:
            await k.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
        await asyncio.sleep(0.2)  # the loop sees the sockets close
        _, new = await c.calls.record({**body, "call_id": "1795480300.2"}, clock.now())
        assert new
        assert [e.event for e in await c.calls.events("1795480300.2")] == ["call_started"]
    finally:
        await killer.dispose()
        await c.close()


async def test_the_sqlite_reader_opens_the_database_the_url_names(tmp_path, clock):
    """URL options (uri=true: a file: URI) reach the lookup's own connection too."""
    from callcenter import bootstrap
    from callcenter.config import Settings

    url = f"sqlite+aiosqlite:///file:{tmp_path}/cc.sqlite3?mode=rwc&uri=true"
    c = bootstrap.build(Settings().replace(database={"url": url}), clock=clock)
    try:
        await db.upgrade(c.engine)
        cert = Certificate(
            "1234567",
            HolderType.PERSON,
            "Иванов Иван Иванович",
            "",
            "П",
            "5.0.1",
            date(2026, 1, 1),
            date(2026, 12, 31),
        )
        await c.registry.import_certificates([cert], clock.now())
        got = await c.reader.get("1234567")
        assert got is not None and got.holder_name == "Иванов Иван Иванович"
        assert got.valid_to == date(2026, 12, 31)
    finally:
        await c.close()


async def test_warm_before_the_first_call(container, clock):
    """What FastAGI opens at start (policy book, reader's and engine's connections, the
    SQLite event writer's) opens without error, twice, and leaves everything usable."""
    await container.warm()
    await container.warm()
    await container.registry.import_certificates([cert()], clock.now())
    assert (await container.registry.lookup("123456", clock.now())).status is LookupStatus.VALID
    assert len((await container.policy.book()).versions) == 1
