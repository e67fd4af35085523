"""drop ix_observations_cell: the unique (service_id, indicator, period, version) index already
serves lookups by cell, and every extra index slows bulk ingestion

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 16:40:00
"""
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('observations', schema=None) as batch_op:
        batch_op.drop_index('ix_observations_cell')


def downgrade() -> None:
    with op.batch_alter_table('observations', schema=None) as batch_op:
        batch_op.create_index('ix_observations_cell', ['service_id', 'indicator', 'period'], unique=False)
