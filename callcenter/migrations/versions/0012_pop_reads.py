"""pop reads: the screen-pop's unsettled tickets of a certificate by index

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-28 01:00:00

The pop shows a certificate's unsettled tickets, earliest due first; without an index on the
ticket's certificate every pop read every ticket (200,000 of them in the reports' bench).
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

NAME = "ix_tickets_certificate_number_due_at"


def upgrade() -> None:
    op.create_index(NAME, "tickets", ["certificate_number", "due_at"])


def downgrade() -> None:
    op.drop_index(NAME, table_name="tickets")
