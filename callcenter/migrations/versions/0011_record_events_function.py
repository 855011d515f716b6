"""record_events: on PostgreSQL, one function that stores a batch of call events, locks
their calls and returns the calls' histories, so a batch costs one round trip less

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-27 21:10:00

The history must be read after the calls' row locks are held (in READ COMMITTED a statement
sees what was committed before it began, so a history read in the statement that takes the
locks could miss the events of a batch that held them meanwhile). A PL/pgSQL function runs
each of its statements with a fresh snapshot: storing and locking, then reading, in one call.
SQLite has no such thing and needs none (its batches run in-process): nothing to do there.
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

SIGNATURE = (
    "cc_record_events(varchar[], varchar[], timestamptz[], timestamptz[], varchar[], text[],"
    " varchar[], timestamptz)"
)

CREATE = """
CREATE OR REPLACE FUNCTION cc_record_events(
    p_call_id varchar[], p_event varchar[], p_at timestamptz[], p_received_at timestamptz[],
    p_source varchar[], p_data text[], p_dedup_key varchar[], p_now timestamptz)
RETURNS TABLE (o_fresh boolean, o_event varchar, o_call_id varchar, o_at timestamptz,
               o_data text, o_source varchar, o_dedup_key varchar)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    new_keys varchar[];
    touched varchar[];
BEGIN
    -- the events not stored yet (the unique dedup key decides), and the calls they touch
    WITH ins AS (
        INSERT INTO call_events (call_id, event, at, received_at, source, data, dedup_key)
        SELECT * FROM unnest(p_call_id, p_event, p_at, p_received_at, p_source, p_data,
                             p_dedup_key)
        ON CONFLICT (dedup_key) DO NOTHING
        RETURNING call_events.dedup_key AS k, call_events.call_id AS c)
    SELECT coalesce(array_agg(ins.k), '{}'), coalesce(array_agg(DISTINCT ins.c), '{}')
    INTO new_keys, touched FROM ins;
    -- create-and-lock the touched calls, in call_id order: two batches cannot deadlock
    INSERT INTO calls (call_id, updated_at)
    SELECT u.c, p_now FROM unnest(touched) AS u(c) ORDER BY u.c
    ON CONFLICT (call_id) DO UPDATE SET updated_at = EXCLUDED.updated_at;
    -- a new snapshot: every batch that held these locks before has committed
    RETURN QUERY
    SELECT e.dedup_key = ANY(new_keys), e.event, e.call_id, e.at, e.data, e.source,
           e.dedup_key
    FROM call_events e WHERE e.call_id = ANY(touched) ORDER BY e.call_id, e.at, e.id;
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(CREATE)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION IF EXISTS {SIGNATURE}")
