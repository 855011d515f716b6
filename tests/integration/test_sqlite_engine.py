"""The SQLite engine behind db.create_engine: SQLAlchemy's own aiosqlite dialect, with the
folder made, the pragmas set, and units of work taking turns."""

import asyncio

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, select, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.sqlite import insert

from callcenter.adapters import db
from callcenter.adapters.repositories import UnitOfWork

scratch = MetaData()
items = Table(
    "items",
    scratch,
    Column("id", Integer, primary_key=True),
    Column("name", String(32), nullable=False, unique=True),
    Column("qty", Integer, nullable=False, default=0),
)


@pytest.fixture
async def engine(tmp_path):
    # A user-facing aiosqlite URL, in a folder that does not exist yet.
    eng = db.create_engine(f"sqlite+aiosqlite:///{tmp_path}/sub/dir/engine.sqlite3")
    async with eng.begin() as conn:
        await conn.run_sync(scratch.create_all)
    yield eng
    await eng.dispose()


async def count(conn) -> int:
    return (await conn.execute(select(func.count()).select_from(items))).scalar_one()


async def test_stock_aiosqlite_with_the_pragmas(engine, tmp_path):
    assert engine.dialect.driver == "aiosqlite"
    assert (tmp_path / "sub" / "dir" / "engine.sqlite3").exists()
    async with engine.connect() as conn:
        pragmas = [
            (await conn.execute(text(f"PRAGMA {p}"))).scalar_one()
            for p in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
        ]
    assert pragmas == ["wal", 1, 1, 5000]  # synchronous=NORMAL is 1


async def test_rollback_leaves_nothing(engine):
    with pytest.raises(RuntimeError):
        async with engine.begin() as conn:
            await conn.execute(items.insert().values(name="a"))
            assert await count(conn) == 1
            raise RuntimeError("abort")
    sessions = db.session_factory(engine)
    async with sessions() as session:
        await session.execute(items.insert().values(name="b"))
        await session.rollback()
    async with engine.connect() as conn:
        assert await count(conn) == 0


async def test_returning_and_upserts(engine):
    async with engine.begin() as conn:
        new_id = (
            await conn.execute(items.insert().values(name="a", qty=1).returning(items.c.id))
        ).scalar_one()
        assert new_id == 1
        res = await conn.execute(
            insert(items).values(name="a", qty=5).on_conflict_do_nothing(index_elements=["name"])
        )
        assert res.rowcount == 0
        stmt = insert(items).values(name="a", qty=7)
        qty = (
            await conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["name"], set_={"qty": items.c.qty + stmt.excluded.qty}
                ).returning(items.c.qty)
            )
        ).scalar_one()
        assert qty == 8
        many = await conn.execute(
            items.insert().returning(items.c.name),
            [{"name": "b"}, {"name": "c"}],
        )
        assert sorted(many.scalars()) == ["b", "c"]


async def test_sql_errors_raise_sqlalchemy_exceptions_and_the_connection_survives(engine):
    async with engine.connect() as conn:
        await conn.execute(items.insert().values(name="a"))
        await conn.commit()
        with pytest.raises(sa_exc.IntegrityError):
            await conn.execute(items.insert().values(name="a"))
        await conn.rollback()
        with pytest.raises(sa_exc.OperationalError):
            await conn.execute(text("SELEKT 1"))
        await conn.rollback()
        await conn.execute(items.insert().values(name="b"))
        await conn.commit()
        assert await count(conn) == 2
    sessions = db.session_factory(engine)
    async with sessions() as session:
        with pytest.raises(sa_exc.IntegrityError):
            await session.execute(items.insert().values(name="b"))
        await session.rollback()
        assert (await session.execute(select(func.count()).select_from(items))).scalar() == 2


async def test_run_sync_results_and_stream(engine):
    def sync_work(conn):
        conn.execute(items.insert(), [{"name": f"n{i}"} for i in range(5)])
        return conn.execute(select(items.c.name).order_by(items.c.id)).scalars().all()

    async with engine.begin() as conn:
        assert await conn.run_sync(sync_work) == [f"n{i}" for i in range(5)]
    sessions = db.session_factory(engine)
    async with sessions() as session:
        result = await session.execute(select(items.c.name).order_by(items.c.id))
    # Rows are read at execute time (as with aiosqlite): still there after the session.
    assert result.fetchmany(2) == [("n0",), ("n1",)]
    assert result.scalars().all() == ["n2", "n3", "n4"]
    async with engine.connect() as conn:
        streamed = await conn.stream(select(items.c.name).order_by(items.c.id))
        assert [row.name async for row in streamed] == [f"n{i}" for i in range(5)]


async def test_a_half_read_result_holds_no_stale_snapshot(engine):
    async with engine.begin() as conn:
        await conn.execute(items.insert(), [{"name": f"n{i}"} for i in range(3)])
    async with engine.connect() as reader:
        half = await reader.execute(select(items.c.name))
        assert half.fetchone() is not None  # the rest left unread
        await reader.commit()
        async with engine.begin() as writer:
            await writer.execute(items.insert().values(name="late"))
        # A statement left open would keep its WAL read snapshot: the count would be 3.
        assert await count(reader) == 4


async def test_concurrent_units_of_work_stay_consistent(engine):
    sessions = db.session_factory(engine)

    async def add_next(fail: bool = False) -> None:
        async with UnitOfWork(sessions) as uow:
            top = (await uow.session.execute(select(func.max(items.c.qty)))).scalar() or 0
            await asyncio.sleep(0.002)  # let the others run: they must wait their turn
            await uow.session.execute(items.insert().values(name=f"q{top + 1}", qty=top + 1))
            if fail:
                raise RuntimeError("abort")
            await uow.commit()

    results = await asyncio.gather(
        *(add_next(fail=i == 3) for i in range(8)), return_exceptions=True
    )
    assert [type(r) for r in results].count(RuntimeError) == 1
    assert all(r is None for r in results if not isinstance(r, RuntimeError))
    async with engine.connect() as conn:
        qty = (await conn.execute(select(items.c.qty).order_by(items.c.qty))).scalars().all()
    assert qty == list(range(1, 8))


async def test_alembic_upgrade_on_a_fresh_file(tmp_path):
    engine = db.create_engine(f"sqlite+aiosqlite:///{tmp_path}/fresh/cc.sqlite3")
    try:
        assert await db.current_revision(engine) is None
        await db.upgrade(engine)
        assert await db.current_revision(engine) == db.head_revision()
        async with engine.connect() as conn:
            names = (
                (await conn.execute(text("SELECT name FROM sqlite_master WHERE type='table'")))
                .scalars()
                .all()
            )
        assert {"call_events", "certificates", "alembic_version"} <= set(names)
    finally:
        await engine.dispose()


async def test_memory_database():
    engine = db.create_engine("sqlite+aiosqlite:///:memory:")
    try:
        async with engine.begin() as conn:
            await conn.run_sync(scratch.create_all)
            await conn.execute(items.insert().values(name="a"))
        async with engine.connect() as conn:
            assert await count(conn) == 1
    finally:
        await engine.dispose()


async def test_a_connection_returned_mid_transaction_is_rolled_back(engine):
    """The pool rolls back only connections with a transaction open (a committed unit of
    work costs no extra trip to aiosqlite's thread), but those it must."""
    async with engine.connect() as conn:
        driver = (await conn.get_raw_connection()).driver_connection
        await driver.execute("INSERT INTO items (name, qty) VALUES ('left open', 1)")
        assert driver.in_transaction
    async with engine.begin() as conn:  # the one pooled connection again
        assert not (await conn.get_raw_connection()).driver_connection.in_transaction
        await conn.execute(items.insert().values(name="committed"))
    async with engine.connect() as conn:
        names = (await conn.execute(select(items.c.name))).scalars().all()
    assert names == ["committed"]
