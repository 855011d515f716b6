"""call events and IVR failures

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 02:10:51.926558
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "call_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.String(length=64), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("dedup_key", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_events")),
        sa.UniqueConstraint("dedup_key", name=op.f("uq_call_events_dedup_key")),
    )
    with op.batch_alter_table("call_events", schema=None) as batch_op:
        batch_op.create_index("ix_call_events_call_id", ["call_id"], unique=False)

    op.create_table(
        "ivr_failures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("call_id", sa.String(length=64), nullable=False),
        sa.Column("caller", sa.String(length=20), nullable=True),
        sa.Column("certificate_number", sa.String(length=32), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ivr_failures")),
    )
    with op.batch_alter_table("ivr_failures", schema=None) as batch_op:
        batch_op.create_index("ix_ivr_failures_caller_at", ["caller", "at"], unique=False)
        batch_op.create_index(
            "ix_ivr_failures_certificate_number_at", ["certificate_number", "at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("ivr_failures", schema=None) as batch_op:
        batch_op.drop_index("ix_ivr_failures_certificate_number_at")
        batch_op.drop_index("ix_ivr_failures_caller_at")

    op.drop_table("ivr_failures")
    with op.batch_alter_table("call_events", schema=None) as batch_op:
        batch_op.drop_index("ix_call_events_call_id")

    op.drop_table("call_events")
