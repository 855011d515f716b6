"""SQLAlchemy Core tables. Repositories map rows to the plain domain classes.

Every timestamp is stored as UTC through :class:`UTCDateTime`, so SQLite (which keeps no
time zone) and PostgreSQL give back the same aware datetimes.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    Time,
    TypeDecorator,
    UniqueConstraint,
)


class UTCDateTime(TypeDecorator):
    """Aware datetimes in, aware UTC datetimes out, on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

certificates = Table(
    "certificates",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("number", String(32), nullable=False, unique=True),
    Column("holder_type", String(16), nullable=False),
    Column("holder_name", String(300), nullable=False, server_default=""),
    Column("organisation", String(300), nullable=False, server_default=""),
    Column("product", String(200), nullable=False, server_default=""),
    Column("version", String(64), nullable=False, server_default=""),
    Column("valid_from", Date, nullable=False),
    Column("valid_to", Date, nullable=False),
    Column("services", String(200), nullable=False),
    Column("first_request_at", UTCDateTime, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

certificate_contacts = Table(
    "certificate_contacts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "certificate_id",
        Integer,
        ForeignKey("certificates.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("full_name", String(300), nullable=False),
    Column("phone", String(20), nullable=False),
    Index("ix_certificate_contacts_phone", "phone"),
    Index("ix_certificate_contacts_certificate_id", "certificate_id"),
)

policy_versions = Table(
    "policy_versions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("effective_from", Date, nullable=False),
    Column("published_at", UTCDateTime, nullable=False),
    Column("oral_window_seconds", Integer, nullable=False),
    Column("warning_seconds", Integer, nullable=False),
    Column("written_answer_hours", Integer, nullable=False),
    Column("day_start", Time, nullable=False),
    Column("day_end", Time, nullable=False),
    Column("window_start", String(32), nullable=False),
    Column("note", Text, nullable=False, server_default=""),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(100), nullable=False),
    Column("role", String(20), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime, nullable=True),
)

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("login", String(100), nullable=False),
    Column("display_name", String(300), nullable=False, server_default=""),
    Column("role", String(20), nullable=False),
    Column("password_hash", String(300), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("disabled_at", UTCDateTime, nullable=True),
    UniqueConstraint("login", name="uq_users_login"),
)

call_events = Table(
    "call_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("call_id", String(64), nullable=False),
    Column("event", String(32), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Column("source", String(16), nullable=False),
    Column("data", Text, nullable=False),
    Column("dedup_key", String(64), nullable=False, unique=True),
    Index("ix_call_events_call_id", "call_id"),
)

ivr_failures = Table(
    "ivr_failures",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("at", UTCDateTime, nullable=False),
    Column("call_id", String(64), nullable=False),
    Column("caller", String(20), nullable=True),
    Column("certificate_number", String(32), nullable=True),
    Column("status", String(16), nullable=False),
    Index("ix_ivr_failures_caller_at", "caller", "at"),
    Index("ix_ivr_failures_certificate_number_at", "certificate_number", "at"),
)
