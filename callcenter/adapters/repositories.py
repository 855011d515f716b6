"""Repositories: rows in, plain domain objects out. The only place that writes SQL."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from callcenter.adapters import tables as t
from callcenter.domain.certificates import Certificate, Contact, HolderType, Service
from callcenter.domain.policy import PolicyVersion


def _cert_from_row(row, contacts: list[Contact]) -> Certificate:
    return Certificate(
        number=row.number,
        holder_type=HolderType(row.holder_type),
        holder_name=row.holder_name,
        organisation=row.organisation,
        product=row.product,
        version=row.version,
        valid_from=row.valid_from,
        valid_to=row.valid_to,
        services=tuple(Service(s) for s in row.services.split(";") if s),
        contacts=contacts,
        first_request_at=row.first_request_at,
    )


def _upsert(dialect: str, table):
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"upsert is not written for {dialect}")


class CertificateRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, number: str) -> Certificate | None:
        c, k = t.certificates, t.certificate_contacts
        stmt = (
            select(c, k.c.full_name, k.c.phone)
            .outerjoin(k, k.c.certificate_id == c.c.id)
            .where(c.c.number == number)
            .order_by(k.c.id)
        )
        rows = (await self.session.execute(stmt)).all()
        if not rows:
            return None
        contacts = [Contact(r.full_name, r.phone) for r in rows if r.phone is not None]
        return _cert_from_row(rows[0], contacts)

    async def find_by_phone(self, phone: str) -> list[Certificate]:
        k = t.certificate_contacts
        ids = select(k.c.certificate_id).where(k.c.phone == phone)
        numbers = (
            await self.session.execute(
                select(t.certificates.c.number).where(t.certificates.c.id.in_(ids))
            )
        ).scalars()
        return [cert for n in numbers if (cert := await self.get(n)) is not None]

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
        stmt = _upsert(dialect, t.certificates)
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
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

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


class UnitOfWork:
    """One AsyncSession per use case: load, act, commit; rolled back unless committed."""

    def __init__(self, sessions: async_sessionmaker) -> None:
        self._sessions = sessions

    async def __aenter__(self) -> UnitOfWork:
        self.session = self._sessions()
        self.certificates = CertificateRepository(self.session)
        self.policies = PolicyRepository(self.session)
        self.auth = AuthRepository(self.session)
        return self

    async def __aexit__(self, *exc) -> None:
        try:
            await self.session.rollback()
        finally:
            await self.session.close()

    async def commit(self) -> None:
        await self.session.commit()


def chunks(items: Sequence, size: int) -> Iterable[Sequence]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
