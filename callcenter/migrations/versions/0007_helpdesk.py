"""helpdesk: where each ticket lives, where its answer came from, the poller's sync state

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27 18:15:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tickets", sa.Column("helpdesk_ref", sa.String(length=64)))
    op.add_column("tickets", sa.Column("helpdesk_url", sa.String(length=500)))
    op.add_column("tickets", sa.Column("answer_source", sa.String(length=12)))
    op.create_table(
        "helpdesk_sync",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("cursor", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_error_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_helpdesk_sync")),
    )


def downgrade() -> None:
    op.drop_table("helpdesk_sync")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("answer_source")
        batch.drop_column("helpdesk_url")
        batch.drop_column("helpdesk_ref")
