"""reports: the indexes the supervisor's reports and the history's filters need, and the
review of an abuse case or a complaint (who reviewed it, when, what was decided)

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-27 19:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

#: (name, table, columns): the history's filters in the page's order (newest first);
#: ``ix_calls_started_at`` already serves a report's period and the unfiltered history
INDEXES = (
    ("ix_calls_agent_started_at", "calls", ["agent", "started_at"]),
    ("ix_calls_certificate_number_started_at", "calls", ["certificate_number", "started_at"]),
    ("ix_calls_outcome_started_at", "calls", ["outcome", "started_at"]),
    ("ix_calls_caller_number_started_at", "calls", ["caller_number", "started_at"]),
    # a report reads only its period's windows (a window opens after its call starts)
    ("ix_oral_windows_opened_at", "oral_windows", ["opened_at"]),
)


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)
    with op.batch_alter_table("reviews") as batch:
        batch.add_column(sa.Column("reviewed_at", sa.DateTime(timezone=True)))
        batch.add_column(sa.Column("reviewed_by", sa.String(100)))
        batch.add_column(sa.Column("decision", sa.String(20)))
        batch.add_column(sa.Column("decision_note", sa.Text()))


def downgrade() -> None:
    with op.batch_alter_table("reviews") as batch:
        for column in ("decision_note", "decision", "reviewed_by", "reviewed_at"):
            batch.drop_column(column)
    for name, table, _columns in reversed(INDEXES):
        op.drop_index(name, table_name=table)
