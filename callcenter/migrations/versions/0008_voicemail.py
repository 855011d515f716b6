"""voicemail tickets: a longer source ("voicemail") and the recording kept with the ticket

Revision ID: 0008
Revises: 0005 on this branch; to be re-chained after 0007 (h-helpdesk) at merge
Create Date: 2026-11-27 18:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.alter_column("source", type_=sa.String(16), existing_nullable=False)
        batch.add_column(sa.Column("recording", sa.String(200)))


def downgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("recording")
        batch.alter_column("source", type_=sa.String(8), existing_nullable=False)
