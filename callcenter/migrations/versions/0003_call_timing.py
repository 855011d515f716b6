"""calls, oral windows, tickets, outbox, reviews

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 02:19:08.026262
"""

from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('calls',
    sa.Column('call_id', sa.String(length=64), nullable=False),
    sa.Column('caller_number', sa.String(length=40), nullable=True),
    sa.Column('channel', sa.String(length=200), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('certificate_number', sa.String(length=32), nullable=True),
    sa.Column('certificate_status', sa.String(length=16), nullable=True),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('queue', sa.String(length=80), nullable=True),
    sa.Column('queued_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('agent', sa.String(length=200), nullable=True),
    sa.Column('agent_name', sa.String(length=200), nullable=True),
    sa.Column('connected_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('hangup_by', sa.String(length=16), nullable=True),
    sa.Column('hangup_cause', sa.String(length=40), nullable=True),
    sa.Column('abandoned', sa.String(length=8), nullable=True),
    sa.Column('caller_name', sa.String(length=300), server_default='', nullable=False),
    sa.Column('organisation', sa.String(length=300), server_default='', nullable=False),
    sa.Column('description', sa.Text(), server_default='', nullable=False),
    sa.Column('category', sa.String(length=20), nullable=True),
    sa.Column('outcome', sa.String(length=16), nullable=True),
    sa.Column('outcome_reason', sa.String(length=32), nullable=True),
    sa.Column('outcome_note', sa.Text(), server_default='', nullable=False),
    sa.Column('outcome_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('outcome_by', sa.String(length=100), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('call_id', name=op.f('pk_calls'))
    )
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.create_index('ix_calls_agent', ['agent'], unique=False)
        batch_op.create_index('ix_calls_started_at', ['started_at'], unique=False)

    op.create_table('outbox',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('topic', sa.String(length=40), nullable=False),
    sa.Column('idempotency_key', sa.String(length=100), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('claimed_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_outbox_idempotency_key'))
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_delivered_at_next_attempt_at', ['delivered_at', 'next_attempt_at'], unique=False)

    op.create_table('reviews',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=12), nullable=False),
    sa.Column('call_id', sa.String(length=64), nullable=True),
    sa.Column('note', sa.Text(), server_default='', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=100), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reviews'))
    )
    with op.batch_alter_table('reviews', schema=None) as batch_op:
        batch_op.create_index('ix_reviews_created_at', ['created_at'], unique=False)

    op.create_table('tickets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=8), nullable=False),
    sa.Column('call_id', sa.String(length=64), nullable=True),
    sa.Column('certificate_number', sa.String(length=32), nullable=True),
    sa.Column('full_name', sa.String(length=300), server_default='', nullable=False),
    sa.Column('organisation', sa.String(length=300), server_default='', nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('category', sa.String(length=20), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('warn75_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('warn90_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('warned75_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('warned90_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('answered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('answer', sa.Text(), nullable=True),
    sa.Column('escalation_reason', sa.String(length=16), nullable=True),
    sa.Column('policy_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tickets')),
    sa.UniqueConstraint('call_id', name=op.f('uq_tickets_call_id'))
    )
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.create_index('ix_tickets_received_at', ['received_at'], unique=False)
        batch_op.create_index('ix_tickets_status_due_at', ['status', 'due_at'], unique=False)

    op.create_table('oral_windows',
    sa.Column('call_id', sa.String(length=64), nullable=False),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('deadline_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('warn_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('warned_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('length_seconds', sa.Integer(), nullable=False),
    sa.Column('policy_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['call_id'], ['calls.call_id'], name=op.f('fk_oral_windows_call_id_calls'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('call_id', name=op.f('pk_oral_windows'))
    )
    with op.batch_alter_table('oral_windows', schema=None) as batch_op:
        batch_op.create_index('ix_oral_windows_status_deadline_at', ['status', 'deadline_at'], unique=False)

    op.create_table('window_extensions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('call_id', sa.String(length=64), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('seconds', sa.Integer(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('by', sa.String(length=100), nullable=False),
    sa.ForeignKeyConstraint(['call_id'], ['oral_windows.call_id'], name=op.f('fk_window_extensions_call_id_oral_windows'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_window_extensions'))
    )
    with op.batch_alter_table('window_extensions', schema=None) as batch_op:
        batch_op.create_index('ix_window_extensions_call_id', ['call_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('window_extensions', schema=None) as batch_op:
        batch_op.drop_index('ix_window_extensions_call_id')

    op.drop_table('window_extensions')
    with op.batch_alter_table('oral_windows', schema=None) as batch_op:
        batch_op.drop_index('ix_oral_windows_status_deadline_at')

    op.drop_table('oral_windows')
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_index('ix_tickets_status_due_at')
        batch_op.drop_index('ix_tickets_received_at')

    op.drop_table('tickets')
    with op.batch_alter_table('reviews', schema=None) as batch_op:
        batch_op.drop_index('ix_reviews_created_at')

    op.drop_table('reviews')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_delivered_at_next_attempt_at')

    op.drop_table('outbox')
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.drop_index('ix_calls_started_at')
        batch_op.drop_index('ix_calls_agent')

    op.drop_table('calls')
