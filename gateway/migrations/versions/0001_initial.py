"""Initial gateway schema: users, sessions, agents, submissions, records and their history, linkage runs, persons.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create every table."""
    op.create_table('agents',
    sa.Column('agent_id', sa.String(length=64), nullable=False),
    sa.Column('signing_key', sa.LargeBinary(length=32), nullable=False),
    sa.Column('signing_key_id', sa.String(length=80), nullable=False),
    sa.Column('network', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('registered_at', sa.DateTime(), nullable=False),
    sa.Column('revoked_at', sa.DateTime(), nullable=True),
    sa.Column('revoked_reason', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('agent_id')
    )
    op.create_table('ingest_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('status', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=48), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('agent_id', sa.String(length=64), nullable=True),
    sa.Column('sequence', sa.BigInteger(), nullable=True),
    sa.Column('submission_id', sa.Integer(), nullable=True),
    sa.Column('path', sa.String(length=256), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_ingest_events_at'), 'ingest_events', ['at'], unique=False)
    op.create_table('link_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('trigger', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=False),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.Column('records', sa.Integer(), nullable=True),
    sa.Column('sources', sa.Integer(), nullable=True),
    sa.Column('candidates', sa.Integer(), nullable=True),
    sa.Column('matched_pairs', sa.Integer(), nullable=True),
    sa.Column('review_pairs', sa.Integer(), nullable=True),
    sa.Column('persons', sa.Integer(), nullable=True),
    sa.Column('new_persons', sa.Integer(), nullable=True),
    sa.Column('merges', sa.Integer(), nullable=True),
    sa.Column('splits', sa.Integer(), nullable=True),
    sa.Column('load_seconds', sa.Float(), nullable=True),
    sa.Column('link_seconds', sa.Float(), nullable=True),
    sa.Column('store_seconds', sa.Float(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('purges',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('retention_days', sa.Integer(), nullable=False),
    sa.Column('records_removed', sa.Integer(), nullable=False),
    sa.Column('history_removed', sa.Integer(), nullable=False),
    sa.Column('tokens', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=32), nullable=False),
    sa.Column('password_hash', sa.String(length=256), nullable=False),
    sa.Column('disabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('username')
    )
    op.create_table('agent_sources',
    sa.Column('agent_id', sa.String(length=64), nullable=False),
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['agent_id'], ['agents.agent_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('agent_id', 'source')
    )
    op.create_table('assignments',
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('token', sa.String(length=128), nullable=False),
    sa.Column('person_id', sa.String(length=24), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['link_runs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_id', 'source', 'token')
    )
    op.create_index('ix_assignments_run_person', 'assignments', ['run_id', 'person_id'], unique=False)
    op.create_table('current_run',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['link_runs.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('person_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('person_id', sa.String(length=24), nullable=False),
    sa.Column('related', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['link_runs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_person_events_person_id'), 'person_events', ['person_id'], unique=False)
    op.create_index(op.f('ix_person_events_run_id'), 'person_events', ['run_id'], unique=False)
    op.create_table('persons',
    sa.Column('person_id', sa.String(length=24), nullable=False),
    sa.Column('created_run_id', sa.Integer(), nullable=False),
    sa.Column('retired_run_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['created_run_id'], ['link_runs.id'], ),
    sa.ForeignKeyConstraint(['retired_run_id'], ['link_runs.id'], ),
    sa.PrimaryKeyConstraint('person_id')
    )
    op.create_table('review_pairs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('source_a', sa.String(length=64), nullable=False),
    sa.Column('token_a', sa.String(length=128), nullable=False),
    sa.Column('source_b', sa.String(length=64), nullable=False),
    sa.Column('token_b', sa.String(length=128), nullable=False),
    sa.Column('weight', sa.Float(), nullable=False),
    sa.Column('fields', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['link_runs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_review_pairs_run_id'), 'review_pairs', ['run_id'], unique=False)
    op.create_table('sessions',
    sa.Column('token_hash', sa.LargeBinary(length=32), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('token_hash')
    )
    op.create_index(op.f('ix_sessions_expires_at'), 'sessions', ['expires_at'], unique=False)
    op.create_table('submissions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('agent_id', sa.String(length=64), nullable=False),
    sa.Column('sequence', sa.BigInteger(), nullable=False),
    sa.Column('content_sha256', sa.String(length=64), nullable=False),
    sa.Column('network', sa.String(length=16), nullable=False),
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('schema_version', sa.String(length=32), nullable=False),
    sa.Column('linkage_key_id', sa.String(length=80), nullable=False),
    sa.Column('escrow_key_id', sa.String(length=80), nullable=False),
    sa.Column('batch_id', sa.String(length=128), nullable=False),
    sa.Column('seal_header', sa.Text(), nullable=False),
    sa.Column('created_at', sa.String(length=40), nullable=False),
    sa.Column('received_at', sa.DateTime(), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('record_count', sa.Integer(), nullable=False),
    sa.Column('accepted', sa.Integer(), nullable=False),
    sa.Column('refused', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['agent_id'], ['agents.agent_id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('agent_id', 'sequence', name='uq_submissions_agent_sequence')
    )
    op.create_index(op.f('ix_submissions_source'), 'submissions', ['source'], unique=False)
    op.create_table('record_history',
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('token', sa.String(length=128), nullable=False),
    sa.Column('submission_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('attributes', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['submission_id'], ['submissions.id'], ),
    sa.PrimaryKeyConstraint('source', 'token', 'submission_id')
    )
    op.create_index('ix_record_history_submission', 'record_history', ['submission_id'], unique=False)
    op.create_table('records',
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('token', sa.String(length=128), nullable=False),
    sa.Column('submission_id', sa.Integer(), nullable=False),
    sa.Column('first_submission_id', sa.Integer(), nullable=False),
    sa.Column('clk', sa.LargeBinary(), nullable=False),
    sa.Column('present', sa.Integer(), nullable=False),
    sa.Column('blocks', sa.LargeBinary(), nullable=False),
    sa.Column('sealed', sa.LargeBinary(), nullable=False),
    sa.Column('attributes', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['first_submission_id'], ['submissions.id'], ),
    sa.ForeignKeyConstraint(['submission_id'], ['submissions.id'], ),
    sa.PrimaryKeyConstraint('source', 'token')
    )


def downgrade() -> None:
    """Drop every table."""
    op.drop_table('records')
    op.drop_index('ix_record_history_submission', table_name='record_history')
    op.drop_table('record_history')
    op.drop_index(op.f('ix_submissions_source'), table_name='submissions')
    op.drop_table('submissions')
    op.drop_index(op.f('ix_sessions_expires_at'), table_name='sessions')
    op.drop_table('sessions')
    op.drop_index(op.f('ix_review_pairs_run_id'), table_name='review_pairs')
    op.drop_table('review_pairs')
    op.drop_table('persons')
    op.drop_index(op.f('ix_person_events_run_id'), table_name='person_events')
    op.drop_index(op.f('ix_person_events_person_id'), table_name='person_events')
    op.drop_table('person_events')
    op.drop_table('current_run')
    op.drop_index('ix_assignments_run_person', table_name='assignments')
    op.drop_table('assignments')
    op.drop_table('agent_sources')
    op.drop_table('users')
    op.drop_table('purges')
    op.drop_table('link_runs')
    op.drop_index(op.f('ix_ingest_events_at'), table_name='ingest_events')
    op.drop_table('ingest_events')
    op.drop_table('agents')
