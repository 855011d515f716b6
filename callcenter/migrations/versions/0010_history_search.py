"""history search: a trigram index on the caller's number, so that the history's "number
contains" filter reads the matching calls instead of scanning the period (PostgreSQL only)

``pg_trgm`` is a contrib extension and creating it needs privileges the service's database
user may lack: the attempt runs in a savepoint, and when it fails the index is skipped with a
warning (the filter still works, by scanning). SQLite keeps its plan: nothing is created.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-27 21:10:00
"""

import logging

from alembic import op
from sqlalchemy.exc import DBAPIError

from callcenter.adapters.tables import CALLER_TRIGRAM_INDEX

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

log = logging.getLogger("callcenter.migrations")


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    try:
        with bind.begin_nested():
            op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except DBAPIError as exc:
        log.warning(
            "pg_trgm cannot be created (%s): no %s; the history's caller-number filter "
            "scans the period instead",
            str(exc.orig).splitlines()[0],
            CALLER_TRIGRAM_INDEX,
        )
        return
    op.create_index(
        CALLER_TRIGRAM_INDEX,
        "calls",
        ["caller_number"],
        postgresql_using="gin",
        postgresql_ops={"caller_number": "gin_trgm_ops"},
    )


def downgrade() -> None:
    # the extension stays: it may have been there before, and other objects may use it
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP INDEX IF EXISTS {CALLER_TRIGRAM_INDEX}")
