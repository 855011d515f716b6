"""the agent's desk: queue member interfaces, pause state, subject, identity check, wrap-up

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 18:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agent_interfaces",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("interface", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_agent_interfaces_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_interfaces")),
        sa.UniqueConstraint("interface", name=op.f("uq_agent_interfaces_interface")),
    )
    with op.batch_alter_table("agent_interfaces", schema=None) as batch_op:
        batch_op.create_index("ix_agent_interfaces_user_id", ["user_id"], unique=False)
    op.create_table(
        "agent_states",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=8), nullable=False, server_default="page"),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_agent_states_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_agent_states")),
    )
    op.add_column("calls", sa.Column("subject", sa.Text(), nullable=False, server_default=""))
    op.add_column("calls", sa.Column("identity_check", sa.String(length=16), nullable=True))
    op.add_column("calls", sa.Column("wrapup_done_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("wrapup_done_at")
        batch.drop_column("identity_check")
        batch.drop_column("subject")
    op.drop_table("agent_states")
    with op.batch_alter_table("agent_interfaces", schema=None) as batch_op:
        batch_op.drop_index("ix_agent_interfaces_user_id")
    op.drop_table("agent_interfaces")
