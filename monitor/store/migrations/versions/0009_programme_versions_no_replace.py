"""programme versions cannot be rewritten by SQLite's REPLACE either (0006 hardened the other
audit tables; 0008 came from a branch without it)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 04:10:00
"""
from alembic import op


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

TABLE = "programme_versions"


def upgrade() -> None:
    # On PostgreSQL, INSERT ... ON CONFLICT DO UPDATE fires the UPDATE trigger of 0008 already.
    if op.get_bind().dialect.name == "sqlite":
        op.execute(f"CREATE TRIGGER {TABLE}_no_replace BEFORE INSERT ON {TABLE} "
                   f"WHEN EXISTS (SELECT 1 FROM {TABLE} WHERE id = NEW.id) "
                   f"BEGIN SELECT RAISE(ABORT, '{TABLE} is append-only'); END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute(f"DROP TRIGGER IF EXISTS {TABLE}_no_replace")
