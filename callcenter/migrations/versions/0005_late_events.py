"""late events: when a window was recorded, withdrawn tickets, cancelled forwarding

Revision ID: 0005
Revises: 0003
Create Date: 2026-11-27 15:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("oral_windows", sa.Column("recorded_at", sa.DateTime(timezone=True)))
    op.add_column("tickets", sa.Column("withdrawn_at", sa.DateTime(timezone=True)))
    op.add_column("tickets", sa.Column("withdrawn_reason", sa.Text()))
    op.add_column("outbox", sa.Column("cancelled_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("cancelled_at")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("withdrawn_reason")
        batch.drop_column("withdrawn_at")
    with op.batch_alter_table("oral_windows") as batch:
        batch.drop_column("recorded_at")
