"""SQLAlchemy Core tables. Repositories map rows to the plain domain classes.

Every timestamp is stored as UTC through :class:`UTCDateTime`, so SQLite (which keeps no
time zone) and PostgreSQL give back the same aware datetimes.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    Boolean,
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

#: UI sessions: only a SHA-256 of the cookie's 256 random bits is kept, so a copy of this table
#: opens no session; the cookie is checked by one read on the unique hash joined to its user.
sessions = Table(
    "sessions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Index("ix_sessions_user_id", "user_id"),
    Index("ix_sessions_expires_at", "expires_at"),
)

#: the queue member interfaces (``PJSIP/101``) Asterisk knows an agent user by: each
#: interface belongs to at most one user, compared exactly
agent_interfaces = Table(
    "agent_interfaces",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("interface", String(200), nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_agent_interfaces_user_id", "user_id"),
)

#: an agent's pause (from the page or the phone through AMI); no row: available
agent_states = Table(
    "agent_states",
    metadata,
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("paused", Boolean, nullable=False, server_default="0"),
    Column("reason", Text, nullable=True),
    Column("since", UTCDateTime, nullable=False),
    Column("source", String(8), nullable=False, server_default="page"),
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

calls = Table(
    "calls",
    metadata,
    Column("call_id", String(64), primary_key=True),
    Column("caller_number", String(40), nullable=True),
    Column("channel", String(200), nullable=True),
    Column("started_at", UTCDateTime, nullable=True),
    Column("certificate_number", String(32), nullable=True),
    Column("certificate_status", String(16), nullable=True),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("queue", String(80), nullable=True),
    Column("queued_at", UTCDateTime, nullable=True),
    Column("agent", String(200), nullable=True),
    Column("agent_name", String(200), nullable=True),
    Column("connected_at", UTCDateTime, nullable=True),
    Column("ended_at", UTCDateTime, nullable=True),
    Column("hangup_by", String(16), nullable=True),
    Column("hangup_cause", String(40), nullable=True),
    Column("abandoned", String(8), nullable=True),
    Column("caller_name", String(300), nullable=False, server_default=""),
    Column("organisation", String(300), nullable=False, server_default=""),
    Column("description", Text, nullable=False, server_default=""),
    Column("category", String(20), nullable=True),
    Column("outcome", String(16), nullable=True),
    Column("outcome_reason", String(32), nullable=True),
    Column("outcome_note", Text, nullable=False, server_default=""),
    Column("outcome_at", UTCDateTime, nullable=True),
    Column("outcome_by", String(100), nullable=True),
    Column("updated_at", UTCDateTime, nullable=False),
    #: what the request is about (R-3), the agent's identity mark (R-10), end of wrap-up
    Column("subject", Text, nullable=False, server_default=""),
    Column("identity_check", String(16), nullable=True),
    Column("wrapup_done_at", UTCDateTime, nullable=True),
    Index("ix_calls_started_at", "started_at"),
    Index("ix_calls_agent", "agent"),
    # the history's filters, newest first (migration 0009)
    Index("ix_calls_agent_started_at", "agent", "started_at"),
    Index("ix_calls_certificate_number_started_at", "certificate_number", "started_at"),
    Index("ix_calls_outcome_started_at", "outcome", "started_at"),
    Index("ix_calls_caller_number_started_at", "caller_number", "started_at"),
)

#: migration 0010's trigram index on ``calls.caller_number`` (the history's "number contains"
#: filter): PostgreSQL only, and only where the ``pg_trgm`` extension could be created, so it
#: is not part of the model; comparisons of the model with a database leave it out
CALLER_TRIGRAM_INDEX = "ix_calls_caller_number_trgm"
OPTIONAL_INDEXES = frozenset({CALLER_TRIGRAM_INDEX})


def compared(obj, name, type_, reflected, compare_to) -> bool:
    """Alembic's ``include_object``: everything but the optional indexes."""
    return not (type_ == "index" and name in OPTIONAL_INDEXES)


oral_windows = Table(
    "oral_windows",
    metadata,
    Column(
        "call_id", String(64), ForeignKey("calls.call_id", ondelete="CASCADE"), primary_key=True
    ),
    Column("opened_at", UTCDateTime, nullable=False),
    Column("deadline_at", UTCDateTime, nullable=False),
    Column("warn_at", UTCDateTime, nullable=True),
    Column("warned_at", UTCDateTime, nullable=True),
    Column("status", String(12), nullable=False),
    Column("closed_at", UTCDateTime, nullable=True),
    Column("length_seconds", Integer, nullable=False),
    Column("policy_id", Integer, nullable=True),
    Column("recorded_at", UTCDateTime, nullable=True),
    Index("ix_oral_windows_status_deadline_at", "status", "deadline_at"),
    Index("ix_oral_windows_opened_at", "opened_at"),  # a report's period (migration 0009)
)

window_extensions = Table(
    "window_extensions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "call_id",
        String(64),
        ForeignKey("oral_windows.call_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("at", UTCDateTime, nullable=False),
    Column("seconds", Integer, nullable=False),
    Column("reason", Text, nullable=False),
    Column("by", String(100), nullable=False),
    Index("ix_window_extensions_call_id", "call_id"),
)

tickets = Table(
    "tickets",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("source", String(16), nullable=False),
    Column("call_id", String(64), nullable=True, unique=True),
    Column("certificate_number", String(32), nullable=True),
    Column("full_name", String(300), nullable=False, server_default=""),
    Column("organisation", String(300), nullable=False, server_default=""),
    Column("description", Text, nullable=False),
    Column("category", String(20), nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Column("due_at", UTCDateTime, nullable=False),
    Column("warn75_at", UTCDateTime, nullable=True),
    Column("warn90_at", UTCDateTime, nullable=True),
    Column("warned75_at", UTCDateTime, nullable=True),
    Column("warned90_at", UTCDateTime, nullable=True),
    Column("status", String(12), nullable=False),
    Column("answered_at", UTCDateTime, nullable=True),
    Column("answer", Text, nullable=True),
    Column("escalation_reason", String(16), nullable=True),
    Column("policy_id", Integer, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("withdrawn_at", UTCDateTime, nullable=True),
    Column("withdrawn_reason", Text, nullable=True),
    #: the helpdesk's own id and link of the ticket, once delivered (Redmine: the issue)
    Column("helpdesk_ref", String(64), nullable=True),
    Column("helpdesk_url", String(500), nullable=True),
    #: where the written answer was recorded: "helpdesk" or "here" (this service's API)
    Column("answer_source", String(12), nullable=True),
    Column("recording", String(200), nullable=True),
    Index("ix_tickets_status_due_at", "status", "due_at"),
    Index("ix_tickets_received_at", "received_at"),
    Index("ix_tickets_certificate_number_due_at", "certificate_number", "due_at"),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("topic", String(40), nullable=False),
    Column("idempotency_key", String(100), nullable=False, unique=True),
    Column("payload", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("claimed_until", UTCDateTime, nullable=True),
    Column("delivered_at", UTCDateTime, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("cancelled_at", UTCDateTime, nullable=True),
    Index("ix_outbox_delivered_at_next_attempt_at", "delivered_at", "next_attempt_at"),
)

#: the answer poller's progress, one row per helpdesk: the newest change seen there (the
#: helpdesk's clock) and when a poll last succeeded (ours), kept across restarts
helpdesk_sync = Table(
    "helpdesk_sync",
    metadata,
    Column("name", String(40), primary_key=True),
    Column("cursor", UTCDateTime, nullable=True),
    Column("last_success_at", UTCDateTime, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("last_error_at", UTCDateTime, nullable=True),
)

reviews = Table(
    "reviews",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("kind", String(12), nullable=False),
    Column("call_id", String(64), nullable=True),
    Column("note", Text, nullable=False, server_default=""),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(100), nullable=False),
    Column("resolved_at", UTCDateTime, nullable=True),
    #: the supervisor's review (R-12): who, when, what was decided and why (migration 0009)
    Column("reviewed_at", UTCDateTime, nullable=True),
    Column("reviewed_by", String(100), nullable=True),
    Column("decision", String(20), nullable=True),
    Column("decision_note", Text, nullable=True),
    Index("ix_reviews_created_at", "created_at"),
)
